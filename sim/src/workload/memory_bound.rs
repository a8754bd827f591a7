//! Memory-bound tasks whose data lives on one node: one spawner per home node (on that node's
//! first CPU) creates its node's tasks in batches, at `load` times the rate its node's CPUs can
//! run them locally; each task is `cpu_ns` of computation plus `mem_ns` of memory stalls on its
//! home node's memory, which cost the cost model's remote factor when the task runs elsewhere.
//!
//! With `load` below 1 a node keeps up with its own work when tasks stay home, so the spawner's
//! queue never overflows into the node's injector: the other CPUs get work by stealing, and where
//! they steal from decides where the memory traffic goes. A policy that sends tasks to remote
//! nodes makes them slower than the spawner produces them, and the backlog shows in the makespan.
//!
//! `home=spread` (default) gives every node an equal share; `home=N` puts all data on node N
//! (a single hot node).

use manycore_topology::Topology;

use super::{Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

/// The memory-bound workload.
#[derive(Clone, Debug)]
pub struct MemoryBound {
    tasks: u64,
    cpu_ns: u64,
    mem_ns: u64,
    batch: u64,
    load: f64,
    /// `None`: spread over all nodes with CPUs.
    home: Option<usize>,
    /// Per spawner: (node, CPU, tasks still to spawn).
    spawners: Vec<(usize, usize, u64)>,
    /// Per spawner: spawn interval (ns per task) for its node's CPU count.
    interval_ns: Vec<f64>,
    /// Spawners with a non-empty share (fixed at construction).
    active_spawners: u64,
}

impl MemoryBound {
    /// Reads `tasks`, `cpu_ns`, `mem_ns`, `batch`, `load`, `home`.
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<MemoryBound, String> {
        let tasks = p.u64("tasks", 200_000, 1, 1 << 40)?;
        let cpu_ns = p.u64("cpu_ns", 2_000, 0, 1_000_000_000_000)?;
        let mem_ns = p.u64("mem_ns", 8_000, 0, 1_000_000_000_000)?;
        let batch = p.u64("batch", 16, 1, 1 << 20)?;
        let load = p.f64("load", 0.8, 0.01, 100.0)?;
        let home_s = p.string("home", "spread");
        let nodes_with_cpus: Vec<usize> = (0..topo.num_nodes())
            .filter(|&n| !topo.cpus_of_node(n).is_empty())
            .collect();
        let home = if home_s == "spread" {
            None
        } else {
            let n: usize = home_s
                .parse()
                .map_err(|_| p.bad("home", &home_s, "expected `spread` or a node number"))?;
            if !nodes_with_cpus.contains(&n) {
                return Err(p.bad(
                    "home",
                    &home_s,
                    &format!("node {n} does not exist or has no CPU"),
                ));
            }
            Some(n)
        };
        let homes: Vec<usize> = match home {
            Some(n) => vec![n],
            None => nodes_with_cpus,
        };
        let k = homes.len() as u64;
        let spawners = homes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let share = tasks / k + u64::from((i as u64) < tasks % k);
                (n, topo.cpus_of_node(n)[0], share)
            })
            .collect::<Vec<(usize, usize, u64)>>();
        let active_spawners = spawners.iter().filter(|s| s.2 > 0).count() as u64;
        let interval_ns = spawners
            .iter()
            .map(|&(n, _, _)| {
                (cpu_ns + mem_ns).max(1) as f64 / (topo.cpus_of_node(n).len() as f64 * load)
            })
            .collect();
        Ok(MemoryBound {
            tasks,
            cpu_ns,
            mem_ns,
            batch,
            load,
            home,
            spawners,
            interval_ns,
            active_spawners,
        })
    }

    fn batch_seg(&self, spawner: usize, left: u64) -> Seg {
        Seg::cpu((self.batch.min(left) as f64 * self.interval_ns[spawner] + 0.5) as u64)
    }
}

const SPAWNER: u64 = 1;

impl Workload for MemoryBound {
    fn name(&self) -> &'static str {
        "memory-bound"
    }

    fn describe(&self) -> String {
        format!(
            "tasks={} cpu_ns={} mem_ns={} batch={} load={} home={}",
            self.tasks,
            self.cpu_ns,
            self.mem_ns,
            self.batch,
            self.load,
            self.home.map_or("spread".to_string(), |n| n.to_string())
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        for (i, &(node, cpu, left)) in self.spawners.iter().enumerate() {
            if left == 0 {
                continue;
            }
            let mut t = NewTask::new(self.batch_seg(i, left));
            t.home_node = Some(node);
            t.latency = false;
            t.user = [SPAWNER, i as u64];
            ctx.spawn_on(cpu, t);
        }
    }

    fn on_arrival(&mut self, _ctx: &mut dyn Ctx, _tag: u64) {}

    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        let [kind, i] = *ctx.user(task);
        if kind != SPAWNER {
            return Step::Exit;
        }
        let (node, _, left) = self.spawners[i as usize];
        let n = self.batch.min(left);
        for _ in 0..n {
            let mut t = NewTask::new(Seg {
                cpu_ns: self.cpu_ns,
                mem_ns: self.mem_ns,
            });
            t.home_node = Some(node);
            ctx.spawn(t);
        }
        let left = left - n;
        self.spawners[i as usize].2 = left;
        if left == 0 {
            Step::Exit
        } else {
            // Keep the CPU: a yielding spawner could be stolen, and its node's tasks would then be
            // born elsewhere.
            Step::Run(self.batch_seg(i as usize, left))
        }
    }

    fn expected_tasks(&self) -> Option<u64> {
        Some(self.tasks + self.active_spawners)
    }
}
