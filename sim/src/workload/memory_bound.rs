//! Memory-bound tasks whose data lives on one node: one spawner per home node (on that node's
//! first CPU) creates its node's tasks in batches; each task is `cpu_ns` of computation plus
//! `mem_ns` of memory stalls on its home node's memory, which cost the cost model's remote factor
//! when the task runs elsewhere.
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
    spawn_ns: u64,
    /// `None`: spread over all nodes with CPUs.
    home: Option<usize>,
    /// Per spawner: (node, CPU, tasks still to spawn).
    spawners: Vec<(usize, usize, u64)>,
    /// Spawners with a non-empty share (fixed at construction).
    active_spawners: u64,
}

impl MemoryBound {
    /// Reads `tasks`, `cpu_ns`, `mem_ns`, `batch`, `spawn_ns`, `home`.
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<MemoryBound, String> {
        let tasks = p.u64("tasks", 200_000, 1, 1 << 40)?;
        let cpu_ns = p.u64("cpu_ns", 2_000, 0, 1_000_000_000_000)?;
        let mem_ns = p.u64("mem_ns", 8_000, 0, 1_000_000_000_000)?;
        let batch = p.u64("batch", 64, 1, 1 << 20)?;
        let spawn_ns = p.u64("spawn_ns", 50, 0, 1_000_000_000)?;
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
        Ok(MemoryBound {
            tasks,
            cpu_ns,
            mem_ns,
            batch,
            spawn_ns,
            home,
            spawners,
            active_spawners,
        })
    }

    fn batch_seg(&self, left: u64) -> Seg {
        Seg::cpu(self.batch.min(left) * self.spawn_ns)
    }
}

const SPAWNER: u64 = 1;

impl Workload for MemoryBound {
    fn name(&self) -> &'static str {
        "memory-bound"
    }

    fn describe(&self) -> String {
        format!(
            "tasks={} cpu_ns={} mem_ns={} batch={} spawn_ns={} home={}",
            self.tasks,
            self.cpu_ns,
            self.mem_ns,
            self.batch,
            self.spawn_ns,
            self.home.map_or("spread".to_string(), |n| n.to_string())
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        for (i, &(node, cpu, left)) in self.spawners.iter().enumerate() {
            if left == 0 {
                continue;
            }
            let mut t = NewTask::new(self.batch_seg(left));
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
            Step::Run(self.batch_seg(left))
        }
    }

    fn expected_tasks(&self) -> Option<u64> {
        Some(self.tasks + self.active_spawners)
    }
}
