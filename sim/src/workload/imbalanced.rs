//! All work born on one CPU: a spawner task on `cpu` creates `tasks` tasks in batches of `batch`
//! (each spawn costing `spawn_ns` of its time), and the other CPUs only get work by taking it.
//! This is the case where a policy that does not move work (`nosteal`) leaves the machine idle.

use manycore_topology::Topology;

use super::{Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

/// The imbalanced workload.
#[derive(Clone, Debug)]
pub struct Imbalanced {
    tasks: u64,
    task_ns: u64,
    batch: u64,
    spawn_ns: u64,
    cpu: usize,
    mem_frac: f64,
    spawned: u64,
}

impl Imbalanced {
    /// Reads `tasks`, `task_ns`, `batch`, `spawn_ns`, `cpu`, `mem_frac`.
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<Imbalanced, String> {
        let w = Imbalanced {
            tasks: p.u64("tasks", 100_000, 1, 1 << 40)?,
            task_ns: p.u64("task_ns", 20_000, 0, 1_000_000_000_000)?,
            batch: p.u64("batch", 64, 1, 1 << 20)?,
            spawn_ns: p.u64("spawn_ns", 50, 0, 1_000_000_000)?,
            cpu: p.u64("cpu", 0, 0, topo.num_cpus() as u64 - 1)? as usize,
            mem_frac: p.f64("mem_frac", 0.0, 0.0, 1.0)?,
            spawned: 0,
        };
        Ok(w)
    }

    fn batch_seg(&self) -> Seg {
        Seg::cpu(self.batch.min(self.tasks - self.spawned) * self.spawn_ns)
    }
}

const SPAWNER: u64 = 1;

impl Workload for Imbalanced {
    fn name(&self) -> &'static str {
        "imbalanced"
    }

    fn describe(&self) -> String {
        format!(
            "tasks={} task_ns={} batch={} spawn_ns={} cpu={} mem_frac={}",
            self.tasks, self.task_ns, self.batch, self.spawn_ns, self.cpu, self.mem_frac
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        let mut t = NewTask::new(self.batch_seg());
        t.latency = false;
        t.user = [SPAWNER, 0];
        ctx.spawn_on(self.cpu, t);
    }

    fn on_arrival(&mut self, _ctx: &mut dyn Ctx, _tag: u64) {}

    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        if ctx.user(task)[0] != SPAWNER {
            return Step::Exit;
        }
        let n = self.batch.min(self.tasks - self.spawned);
        for _ in 0..n {
            ctx.spawn(NewTask::new(Seg::split(self.task_ns, self.mem_frac)));
        }
        self.spawned += n;
        if self.spawned >= self.tasks {
            Step::Exit
        } else {
            // Keep the CPU: a yielding spawner could be stolen, and the work would no longer be
            // born on one CPU.
            Step::Run(self.batch_seg())
        }
    }

    fn expected_tasks(&self) -> Option<u64> {
        Some(self.tasks + 1)
    }
}
