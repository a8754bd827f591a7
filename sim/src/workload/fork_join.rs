//! Fork-join (divide and conquer): every internal task splits, spawns `fanout` children, blocks
//! until they all finish, then joins. Leaves do the real work.
//!
//! Work and span are known exactly ([`ForkJoin::work_ns`], [`ForkJoin::span_ns`]), which is what
//! the makespan bound test `work/P <= makespan <= work/P + c·span` needs.
//!
//! Task state: `user[0]` = remaining depth << 1 | joined flag; `user[1]` = (parent id + 1) << 32 |
//! children still running.

use super::{Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

/// The fork-join workload.
#[derive(Clone, Debug)]
pub struct ForkJoin {
    depth: u64,
    fanout: u64,
    roots: u64,
    leaf_ns: u64,
    split_ns: u64,
    join_ns: u64,
    mem_frac: f64,
}

const NO_PARENT: u64 = 0;

impl ForkJoin {
    /// Reads `depth`, `fanout`, `roots`, `leaf_ns`, `split_ns`, `join_ns`, `mem_frac`.
    pub fn from_params(p: &mut Params) -> Result<ForkJoin, String> {
        let fj = ForkJoin {
            depth: p.u64("depth", 13, 0, 40)?,
            fanout: p.u64("fanout", 2, 1, 1024)?,
            roots: p.u64("roots", 1, 1, 1_000_000)?,
            leaf_ns: p.u64("leaf_ns", 20_000, 0, 1_000_000_000_000)?,
            split_ns: p.u64("split_ns", 500, 0, 1_000_000_000_000)?,
            join_ns: p.u64("join_ns", 500, 0, 1_000_000_000_000)?,
            mem_frac: p.f64("mem_frac", 0.0, 0.0, 1.0)?,
        };
        let tasks = fj.tasks_per_root().and_then(|t| t.checked_mul(fj.roots));
        match tasks {
            Some(t) if t <= 1 << 40 => Ok(fj),
            _ => Err(format!(
                "workload fork-join: depth={} fanout={} roots={} would create more than 2^40 tasks",
                fj.depth, fj.fanout, fj.roots
            )),
        }
    }

    fn tasks_per_root(&self) -> Option<u64> {
        // 1 + f + f^2 + ... + f^depth
        let mut total: u64 = 0;
        let mut level: u64 = 1;
        for _ in 0..=self.depth {
            total = total.checked_add(level)?;
            level = level.checked_mul(self.fanout)?;
        }
        Some(total)
    }

    fn leaves_per_root(&self) -> u64 {
        self.fanout.saturating_pow(self.depth as u32)
    }

    /// Total work in local-node nanoseconds (all segments of all tasks).
    pub fn work_ns(&self) -> u64 {
        let tasks = self.tasks_per_root().unwrap_or(u64::MAX);
        let leaves = self.leaves_per_root();
        let internal = tasks - leaves;
        self.roots * (leaves * self.leaf_ns + internal * (self.split_ns + self.join_ns))
    }

    /// The critical path: one root-to-leaf chain.
    pub fn span_ns(&self) -> u64 {
        self.depth * (self.split_ns + self.join_ns) + self.leaf_ns
    }

    fn seg(&self, ns: u64) -> Seg {
        Seg::split(ns, self.mem_frac)
    }

    fn first_seg(&self, depth: u64) -> Seg {
        if depth == 0 {
            self.seg(self.leaf_ns)
        } else {
            self.seg(self.split_ns)
        }
    }

    fn child_done(&self, ctx: &mut dyn Ctx, parent_plus1: u64) {
        if parent_plus1 == NO_PARENT {
            return;
        }
        let parent = TaskId((parent_plus1 - 1) as u32);
        let u = ctx.user(parent);
        u[1] -= 1;
        if u[1] & 0xffff_ffff == 0 {
            let seg = self.seg(self.join_ns);
            ctx.wake(parent, seg);
        }
    }
}

impl Workload for ForkJoin {
    fn name(&self) -> &'static str {
        "fork-join"
    }

    fn describe(&self) -> String {
        format!(
            "depth={} fanout={} roots={} leaf_ns={} split_ns={} join_ns={} mem_frac={}",
            self.depth,
            self.fanout,
            self.roots,
            self.leaf_ns,
            self.split_ns,
            self.join_ns,
            self.mem_frac
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        for _ in 0..self.roots {
            let mut t = NewTask::new(self.first_seg(self.depth));
            t.user = [self.depth << 1, NO_PARENT << 32];
            ctx.spawn_on(0, t);
        }
    }

    fn on_arrival(&mut self, _ctx: &mut dyn Ctx, _tag: u64) {}

    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        let [state, link] = *ctx.user(task);
        let depth = state >> 1;
        let joined = state & 1 == 1;
        let parent_plus1 = link >> 32;
        if depth == 0 || joined {
            self.child_done(ctx, parent_plus1);
            return Step::Exit;
        }
        // Split done: spawn the children, then wait for them.
        ctx.user(task)[0] = state | 1;
        ctx.user(task)[1] = (parent_plus1 << 32) | self.fanout;
        let home = ctx.topology().node_of(ctx.current_cpu());
        for _ in 0..self.fanout {
            let mut t = NewTask::new(self.first_seg(depth - 1));
            t.home_node = Some(home);
            t.user = [(depth - 1) << 1, (u64::from(task.0) + 1) << 32];
            ctx.spawn(t);
        }
        Step::Block
    }

    fn expected_tasks(&self) -> Option<u64> {
        self.tasks_per_root().map(|t| t * self.roots)
    }
}
