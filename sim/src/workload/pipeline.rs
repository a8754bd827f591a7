//! A pipeline: items arrive (Poisson), each passes through `stages` stages in order; a stage is a
//! task that, when done, spawns the item's next stage on its own CPU (a continuation). Latency is
//! measured from the item's arrival to the end of its last stage.
//!
//! `user[0]` holds the stage index.

use manycore_topology::Topology;

use super::{ArrivalCpu, Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

/// The pipeline workload.
#[derive(Clone, Debug)]
pub struct Pipeline {
    stages: u64,
    items: u64,
    stage_ns: u64,
    load: f64,
    mem_frac: f64,
    arrival: ArrivalCpu,
    mean_gap_ns: f64,
    arrived: u64,
}

impl Pipeline {
    /// Reads `stages`, `items`, `stage_ns`, `load`, `mem_frac`, `arrival`.
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<Pipeline, String> {
        let stages = p.u64("stages", 4, 1, 1_000)?;
        let items = p.u64("items", 50_000, 1, 1 << 40)?;
        let stage_ns = p.u64("stage_ns", 5_000, 1, 1_000_000_000_000)?;
        let load = p.f64("load", 0.7, 0.001, 10.0)?;
        let mem_frac = p.f64("mem_frac", 0.0, 0.0, 1.0)?;
        let arrival = ArrivalCpu::parse(p, topo)?;
        let item_work_ns = (stages * stage_ns) as f64;
        Ok(Pipeline {
            stages,
            items,
            stage_ns,
            load,
            mem_frac,
            arrival,
            mean_gap_ns: item_work_ns / (load * topo.num_cpus() as f64),
            arrived: 0,
        })
    }

    fn next_arrival(&mut self, ctx: &mut dyn Ctx) {
        if self.arrived >= self.items {
            return;
        }
        let gap = (ctx.rng().exp(self.mean_gap_ns) + 0.5) as u64;
        let cpu = self.arrival.pick(ctx);
        let t = ctx.now_ns() + gap;
        ctx.at(t, cpu, 0);
    }

    fn stage_task(&self, stage: u64, born_ns: u64) -> NewTask {
        let mut t = NewTask::new(Seg::split(self.stage_ns, self.mem_frac));
        t.born_ns = Some(born_ns);
        t.latency = stage + 1 == self.stages;
        t.user = [stage, born_ns];
        t
    }
}

impl Workload for Pipeline {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    fn describe(&self) -> String {
        format!(
            "stages={} items={} stage_ns={} load={} mem_frac={} arrival={}",
            self.stages,
            self.items,
            self.stage_ns,
            self.load,
            self.mem_frac,
            self.arrival.spelling()
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        self.next_arrival(ctx);
    }

    fn on_arrival(&mut self, ctx: &mut dyn Ctx, _tag: u64) {
        self.arrived += 1;
        let now = ctx.now_ns();
        ctx.spawn(self.stage_task(0, now));
        self.next_arrival(ctx);
    }

    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        let [stage, born] = *ctx.user(task);
        if stage + 1 < self.stages {
            let mut next = self.stage_task(stage + 1, born);
            // The item's data stays where it was first touched.
            next.home_node = Some(ctx.home_node(task));
            ctx.spawn(next);
        }
        Step::Exit
    }

    fn expected_tasks(&self) -> Option<u64> {
        Some(self.items * self.stages)
    }
}
