//! `manycore bench --calibrate FILE`: turns this host's measurements into a simulator cost model
//! (the format of `sim/src/cost.rs`, version 1, which `manycore sim --cost-model FILE` reads).
//!
//! Only what this host can measure is written; every other field keeps the simulator's default,
//! and the file's `source` line lists which fields were measured and how. The mapping:
//!
//! | field | measured as |
//! |---|---|
//! | `yield_ns` | the scheduler's `requeue` alone (a dummy platform, one CPU, batches of 128) |
//! | `switch_ns` | `yield.manycore` minus `yield_ns`: `next_task` plus the resume/suspend pair and the worker's bookkeeping (the simulator charges `yield_ns + switch_ns` per yield) |
//! | `spawn_ns` | `rt::spawn` alone, from a task on a one-CPU runtime, in bursts of 64 (handles joined outside the timed batch) |
//! | `park_ns` | `prepare_park` + `finish_park` with no work anywhere (announce and retract idleness) |
//! | `task_ns` | a zero-work fork-join tree (depth 10, 2047 tasks, blocking joins) on a one-CPU runtime, per task, minus the spawns, switches and wakes the simulator charges for it separately. The runtime's per-task cost grows with the tasks alive (stacks beyond its stack cache are mapped afresh: ~0.2 µs per task at depth 8, ~1 µs at depth 10, ~2 µs at depth 12 on the reference VM); the simulator has one figure, taken where most stacks are fresh |
//! | `injector_ns` | one-way handoff of a task handle through an `Injector` between the two pinned CPUs |
//! | `steal_attempt.T`, `wake_task.T` | one-way cache-line handoff between the two CPUs, `T` their tier |
//! | `unpark.same_ns` | `pingpong.same_core.os_futex` (a futex wake to the wakee running) |
//! | `unpark.T` | `pingpong.cross_core.os_futex` |

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use manycore_sched::{Injector, Platform, Scheduler, Task};
use manycore_sim::cost::{CostModel, TierCosts};
use manycore_topology::{TierKind, Topology};

use super::clock::{Samples, sample};
use super::rows::{Ctx, Pin};

/// A platform for driving the scheduler on one thread: always CPU 0, never sleeps.
struct Inline;

impl Platform for Inline {
    fn current_cpu(&self) -> Option<usize> {
        Some(0)
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn park(&self, _cpu: usize, _deadline_ns: Option<u64>) {}
    fn unpark(&self, _cpu: usize) {}
}

struct Job;
impl Task for Job {}

const BATCH: u64 = 128;

/// (`requeue` alone, `next_task` alone), ns, on a one-CPU scheduler.
fn sched_split(c: &Ctx) -> Result<(Samples, Samples), String> {
    let _pin = Pin::to(c.os0)?;
    let topo = Topology::from_synthetic("pack:1 core:1 pu:1").map_err(|e| e.to_string())?;
    let s: Scheduler<Job, Inline> = Scheduler::new(topo, Inline);
    let (mut requeue, mut next) = (Samples::default(), Samples::default());
    for i in 0..=c.samples {
        let t0 = c.clock.now();
        for _ in 0..BATCH {
            s.requeue(0, Job);
        }
        let t1 = c.clock.now();
        for _ in 0..BATCH {
            black_box(s.next_task(0).ok_or("the ring lost a task")?);
        }
        let t2 = c.clock.now();
        if i > 0 {
            requeue.push(c.clock.ns(t0, t1), BATCH);
            next.push(c.clock.ns(t1, t2), BATCH);
        }
    }
    Ok((requeue, next))
}

/// `prepare_park` + `finish_park` on an idle one-CPU scheduler.
fn park_cost(c: &Ctx) -> Result<Samples, String> {
    let _pin = Pin::to(c.os0)?;
    let topo = Topology::from_synthetic("pack:1 core:1 pu:1").map_err(|e| e.to_string())?;
    let s: Scheduler<Job, Inline> = Scheduler::new(topo, Inline);
    Ok(sample(&c.clock, c.samples, c.ops(2_000), |n| {
        for _ in 0..n {
            if s.prepare_park(0) {
                s.finish_park(0);
            }
        }
    }))
}

/// Spawns per timed burst: below half a ring, so no burst overflows to the injector (the
/// simulator's `spawn_ns` is the push on the spawner's own queue).
const SPAWN_BURST: u64 = 64;

/// `rt::spawn` alone, from a task on a one-CPU runtime (no thief stealing the children while
/// the burst is timed).
fn spawn_only(c: &Ctx) -> Result<Samples, String> {
    let rt = manycore_sched::rt::Builder::new()
        .cpus([c.os0].into_iter().collect())
        .build()?;
    let (clock, samples, ops) = (c.clock, c.samples, SPAWN_BURST);
    let s = rt
        .spawn(move || {
            let mut s = Samples::default();
            for i in 0..=samples {
                let t0 = clock.now();
                let hs: Vec<_> = (0..ops)
                    .map(|j| manycore_sched::rt::spawn(move || black_box(j)).expect("in a task"))
                    .collect();
                let t1 = clock.now();
                for h in hs {
                    black_box(h.join().expect("child"));
                }
                if i > 0 {
                    s.push(clock.ns(t0, t1), ops);
                }
            }
            s
        })
        .join()
        .map_err(|e| e.to_string())?;
    rt.shutdown();
    Ok(s)
}

/// Levels of the zero-work fork-join tree timed for `task_ns` (2^(d+1) - 1 tasks: more than the
/// runtime's stack cache holds, so most tasks get a fresh stack).
const TREE_DEPTH: u32 = 10;

fn tree(depth: u32) {
    if depth == 0 {
        return;
    }
    let children: Vec<_> = (0..2)
        .map(|_| manycore_sched::rt::spawn(move || tree(depth - 1)).expect("in a task"))
        .collect();
    for c in children {
        c.join().expect("child");
    }
}

/// One zero-work fork-join tree of `TREE_DEPTH` on a one-CPU runtime whose joins block (every
/// child is its own task, as in the simulator's fork-join), ns per tree.
fn tree_cost(c: &Ctx) -> Result<Samples, String> {
    let rt = manycore_sched::rt::Builder::new()
        .cpus([c.os0].into_iter().collect())
        .join_inline(false)
        .build()?;
    let (clock, samples) = (c.clock, c.samples);
    let s = rt
        .spawn(move || {
            let mut s = Samples::default();
            for i in 0..=samples {
                let t0 = clock.now();
                tree(TREE_DEPTH);
                let t1 = clock.now();
                if i > 0 {
                    s.push(clock.ns(t0, t1), 1);
                }
            }
            s
        })
        .join()
        .map_err(|e| e.to_string())?;
    rt.shutdown();
    Ok(s)
}

/// One-way handoff between the two CPUs: `handoff(i)` on one side, the partner echoes.
fn two_cpu_pingpong<S: Send + Sync + 'static>(
    c: &Ctx,
    shared: Arc<S>,
    ping: impl Fn(&S, u64) + Send + 'static,
    echo: impl Fn(&S, u64) + Send + 'static,
    base: u64,
) -> Result<Samples, String> {
    let ops = c.ops(base);
    let rounds = ops * (u64::from(c.samples) + 1);
    let (s2, os1) = (shared.clone(), c.os1);
    let other = std::thread::spawn(move || -> Result<(), String> {
        let _pin = Pin::to(os1)?;
        for i in 0..rounds {
            echo(&s2, i);
        }
        Ok(())
    });
    let pin = Pin::to(c.os0)?;
    let mut i = 0;
    let s = sample(&c.clock, c.samples, ops, |n| {
        for _ in 0..n {
            ping(&shared, i);
            i += 1;
        }
    });
    drop(pin);
    other
        .join()
        .map_err(|_| "partner thread panicked".to_string())??;
    Ok(s.per(2.0))
}

fn line_handoff(c: &Ctx) -> Result<Samples, String> {
    let word = Arc::new(AtomicU64::new(0));
    two_cpu_pingpong(
        c,
        word,
        |w, i| {
            w.store(2 * i + 1, Ordering::Release);
            while w.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        },
        |w, i| {
            while w.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            w.store(2 * i + 2, Ordering::Release);
        },
        5_000,
    )
}

fn injector_handoff(c: &Ctx) -> Result<Samples, String> {
    let pair = Arc::new((Injector::<u64>::new(), Injector::<u64>::new()));
    two_cpu_pingpong(
        c,
        pair,
        |(to, from), i| {
            to.push(i);
            loop {
                if let Some(v) = from.pop() {
                    black_box(v);
                    break;
                }
                std::hint::spin_loop();
            }
        },
        |(to, from), _| {
            loop {
                if let Some(v) = to.pop() {
                    from.push(v);
                    break;
                }
                std::hint::spin_loop();
            }
        },
        2_000,
    )
}

fn set_tier(t: &mut TierCosts, tier: TierKind, ns: u64) {
    match tier {
        TierKind::Smt => t.smt_ns = ns,
        TierKind::L2 => t.l2_ns = ns,
        TierKind::Llc => t.llc_ns = ns,
        TierKind::Node => t.node_ns = ns,
        TierKind::Remote => {
            t.remote_near_ns = ns;
            t.remote_far_ns = t.remote_far_ns.max(ns);
        }
    }
}

fn tier_name(t: TierKind) -> &'static str {
    match t {
        TierKind::Smt => "smt",
        TierKind::L2 => "l2",
        TierKind::Llc => "llc",
        TierKind::Node => "node",
        TierKind::Remote => "remote_near",
    }
}

/// The medians `bench` measured that calibration uses.
pub struct Measured {
    /// `yield.manycore`.
    pub yield_manycore: f64,
    /// `pingpong.same_core.os_futex`.
    pub futex_same: f64,
    /// `pingpong.cross_core.os_futex`.
    pub futex_cross: f64,
}

/// Runs the extra measurements and writes the cost model to `path`. Returns a one-line summary.
pub fn write(c: &Ctx, host: &Topology, m: &Measured, path: &Path) -> Result<String, String> {
    let (l0, l1) = (
        host.cpu_from_os(c.os0 as u32)
            .ok_or(format!("CPU {} is not in the host topology", c.os0))?,
        host.cpu_from_os(c.os1 as u32)
            .ok_or(format!("CPU {} is not in the host topology", c.os1))?,
    );
    let tier = host.tier_between(l0, l1).ok_or_else(|| {
        "calibration needs two distinct CPUs (this host has one): the cross-CPU costs cannot be measured"
            .to_string()
    })?;
    let med = |s: &Samples| s.median_p99().0;
    let (requeue, next) = sched_split(c)?;
    let yield_ns = med(&requeue);
    let switch_ns = (m.yield_manycore - yield_ns).max(med(&next));
    let spawn_ns = med(&spawn_only(c)?);
    let park_ns = med(&park_cost(c)?);
    let injector_ns = med(&injector_handoff(c)?);
    let line_ns = med(&line_handoff(c)?);
    // Per tree the simulator already charges a spawn per child, a switch per start and per
    // parent resuming after its join, and a same-CPU wake per parent; the rest is the task's
    // lifecycle (`task_ns`), spread over every task.
    let tasks = (1u64 << (TREE_DEPTH + 1)) - 1;
    let parents = (1u64 << TREE_DEPTH) - 1;
    let charged = (tasks - 1) as f64 * spawn_ns
        + (tasks + parents) as f64 * switch_ns
        + parents as f64 * CostModel::default().wake_task.same_ns as f64;
    let task_ns = ((med(&tree_cost(c)?) - charged) / tasks as f64).max(0.0);
    let r = |x: f64| x.round().max(0.0) as u64;
    let mut model = CostModel {
        switch_ns: r(switch_ns),
        yield_ns: r(yield_ns),
        spawn_ns: r(spawn_ns),
        injector_ns: r(injector_ns),
        park_ns: r(park_ns),
        task_ns: r(task_ns),
        ..CostModel::default()
    };
    set_tier(&mut model.steal_attempt, tier, r(line_ns));
    set_tier(&mut model.wake_task, tier, r(line_ns));
    model.unpark.same_ns = r(m.futex_same);
    set_tier(&mut model.unpark, tier, r(m.futex_cross));
    let t = tier_name(tier);
    model.source = format!(
        "manycore bench --calibrate on this host (CPUs P#{} and P#{}, tier {t}, {} clock): measured \
         switch_ns, yield_ns, spawn_ns, park_ns, task_ns, injector_ns, steal_attempt.{t}_ns, wake_task.{t}_ns, \
         unpark.same_ns, unpark.{t}_ns (see src/cli/bench/calibrate.rs for how); every other field is the default",
        c.os0,
        c.os1,
        c.clock.name()
    );
    model
        .validate()
        .map_err(|e| format!("the calibrated model is invalid: {e}"))?;
    let text = format!(
        "# manycore-sim cost model, format version {} (docs/SIMULATOR.md, \"Cost model\").\n# Written by `manycore bench --calibrate`; nanoseconds of virtual time.\n{}",
        model.version,
        model.to_toml()
    );
    std::fs::write(path, text)
        .map_err(|e| format!("--calibrate {}: cannot write: {e}", path.display()))?;
    Ok(format!(
        "cost model written to {} (switch {} ns, yield {} ns, spawn {} ns, park {} ns, task {} ns, injector {} ns, {t} handoff {} ns, unpark same {} / {t} {} ns)",
        path.display(),
        model.switch_ns,
        model.yield_ns,
        model.spawn_ns,
        model.park_ns,
        model.task_ns,
        model.injector_ns,
        r(line_ns),
        model.unpark.same_ns,
        r(m.futex_cross)
    ))
}
