//! The one place where the simulator meets the scheduler: `manycore-sched`'s real queues and
//! policies, driven on virtual CPUs.
//!
//! The engine drives a [`SchedCore`]; its one implementation, [`RealSched`], wraps
//! [`manycore_sched::Scheduler`] with one of the crate's policies (`topology`, `random`,
//! `nosteal`, `global`) or the simulator's Linux-like balancer ([`crate::linux::LinuxPolicy`],
//! written against the crate's `Policy` trait). Nothing here re-implements a queue, a steal or a
//! wake placement: the scheduler decides, the simulator watches and prices.
//!
//! # The platform seam, simulated
//! - [`SimPlat`] is the scheduler's `Platform`: `current_cpu` is the virtual CPU the engine is
//!   acting for, `now_ns` the virtual clock, `unpark(cpu)` is logged and turned by the engine into
//!   a wake-up event after the cost model's unpark latency. `park` is never called: the engine
//!   parks a virtual CPU itself with the scheduler's two halves, `prepare_park` (announce, re-check)
//!   and `finish_park` (after the wake-up), as the crate documents for hosts whose park cannot block,
//!   and, like `Scheduler::park`, sleeps at most until `stranded_recheck_ns` (a timed wake-up).
//! - [`SimObs`] is the scheduler's `Observer`: every steal probe, steal, injector operation and
//!   placement is priced with the cost model as it happens (shared queues serve one operation at
//!   a time, so contention costs waiting) and counted.
//! - Task handles are [`SimTask`]: the engine's task id plus the home node and last CPU the
//!   scheduler reads for placement, captured when the task becomes runnable (they cannot change
//!   while it waits in a queue).
//!
//! The scheduler's `Platform` and `Observer` are `Send + Sync` (the real runtime shares them
//! between threads). The simulator is single-threaded, so their state lives in atomics accessed
//! with plain Relaxed loads and stores only (no read-modify-write: on x86 a `swap` or a mutex
//! is a locked instruction, and the bridge runs two or three times per engine event), including
//! the unpark log (`UnparkLog`); only a traced run's steal log takes a mutex.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use manycore_sched::{Config, Observer, Platform, Policy, Scheduler, SpawnHint, Task, WakeReason};
use manycore_topology::TierKind;

use crate::cost::{CostModel, Distance};
use crate::machine::Machine;
use crate::metrics::Stats;

/// What the engine offers the scheduler adapter.
pub trait SimPlatform {
    /// Virtual time as the acting CPU sees it: the event's time plus the scheduler work already
    /// charged to that CPU in this step.
    fn now_ns(&self) -> u64;
    /// A task's home node.
    fn task_home(&self, task: u32) -> usize;
    /// The CPU a task last ran on.
    fn task_last_cpu(&self, task: u32) -> Option<usize>;
    /// Charges `ns` of scheduler work to the acting CPU.
    fn charge(&mut self, ns: u64);
    /// Wake parked CPU `cpu` (the scheduler claimed it); `from` decided it.
    fn unpark(&mut self, from: usize, cpu: usize);
    /// A steal happened (for the schedule trace).
    fn trace_steal(&mut self, thief: usize, victim: usize, n: usize, tier: TierKind);
    /// Tasks runnable and not running: queued somewhere in the scheduler (ring, next slot,
    /// inbox or injector). Zero means every queue of the scheduler is empty.
    fn runnable(&self) -> u64;
}

/// A scheduler the engine can drive (one per run; single-threaded, deterministic).
pub trait SchedCore {
    /// A task spawned by a task running on `cpu` (`local`), or from outside the scheduler's
    /// CPUs and aimed at `cpu` (an arrival steered there by receive-side scaling, an initial
    /// placement).
    fn spawn(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32, local: bool);
    /// A blocked task woken by a task running on `cpu`.
    fn wake(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32);
    /// The running task on `cpu` yields.
    fn requeue(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32);
    /// `cpu` is free: which task runs next?
    fn next(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32>;
    /// `cpu` found nothing: announce sleep and re-check. `true`: it sleeps until unparked;
    /// `false`: work appeared, ask [`SchedCore::next`] again.
    fn park(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> bool;
    /// After [`SchedCore::park`] said sleep: the latest virtual time `cpu` should sleep until
    /// when nobody unparks it (the scheduler's `stranded_recheck_ns`: a task waiting in a busy
    /// CPU's next slot becomes stealable then), or `None`.
    fn park_deadline(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u64>;
    /// `cpu` woke up (unparked, or woken by the host).
    fn unparked(&mut self, p: &mut dyn SimPlatform, cpu: usize);
    /// Period of [`SchedCore::tick`], for policies that balance on a timer.
    fn tick_ns(&self) -> Option<u64>;
    /// A periodic balancing tick on every CPU; returns the sleeping CPUs that received work and
    /// must be woken (the host's prerogative: a park may end spuriously).
    fn tick(&mut self, p: &mut dyn SimPlatform, sleeping: &[bool]) -> Vec<usize>;
    /// Tasks queued and not running.
    fn queued(&self) -> u64;
    /// One sample of the scheduler's own wasted-core checker at `now_ns`.
    fn sample_wasted(&mut self, now_ns: u64);
    /// Adds the scheduler's counters (steals, probes, injector traffic) to the run's stats.
    fn finish(&self, stats: &mut Stats);
}

/// Policy names, in table order.
pub const POLICIES: &[&str] = &["topology", "random", "nosteal", "global", "linux"];

/// A task handle as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTask {
    /// The engine's task id.
    pub id: u32,
    home: u32,
    last: u32,
}

impl Task for SimTask {
    fn home_node(&self) -> Option<usize> {
        Some(self.home as usize)
    }

    fn last_cpu(&self) -> Option<usize> {
        (self.last != u32::MAX).then_some(self.last as usize)
    }
}

const NO_CPU: usize = usize::MAX;

/// The simulated platform: virtual clock, acting CPU, unpark log.
pub struct SimPlat(Arc<PlatState>);

struct PlatState {
    now_ns: AtomicU64,
    current: AtomicUsize,
    /// CPUs the scheduler unparked since the engine last looked.
    unparks: UnparkLog,
}

/// The CPUs the scheduler unparked during one call, in order, for the engine to turn into
/// wake-up events when the call returns.
///
/// Written by the scheduler's `Platform::unpark` and drained by [`RealSched::leave`], both on
/// the simulator's one thread, with plain loads and stores. Used from two threads at once it
/// would lose entries (never memory safety: every field is an atomic or behind the mutex); the
/// simulator never does that (a sweep gives each simulation its own scheduler).
struct UnparkLog {
    /// The first `len` entries (up to the capacity, one per CPU: a call claims each sleeping CPU
    /// at most once, so this normally never fills).
    cpus: Box<[AtomicUsize]>,
    /// Entries logged since the last drain, `overflow` included.
    len: AtomicUsize,
    /// Entries beyond `cpus`' capacity, in order (a bound kept for safety, not expected to be
    /// used).
    overflow: Mutex<Vec<usize>>,
}

impl UnparkLog {
    fn new(capacity: usize) -> UnparkLog {
        UnparkLog {
            cpus: (0..capacity).map(|_| AtomicUsize::new(0)).collect(),
            len: AtomicUsize::new(0),
            overflow: Mutex::new(Vec::new()),
        }
    }

    fn push(&self, cpu: usize) {
        let n = self.len.load(Ordering::Relaxed);
        if let Some(slot) = self.cpus.get(n) {
            slot.store(cpu, Ordering::Relaxed);
        } else if let Ok(mut o) = self.overflow.lock() {
            o.push(cpu);
        }
        self.len.store(n + 1, Ordering::Relaxed);
    }

    /// Calls `f` on each logged CPU in order and empties the log.
    #[inline]
    fn drain(&self, mut f: impl FnMut(usize)) {
        let n = self.len.load(Ordering::Relaxed);
        if n == 0 {
            return;
        }
        self.len.store(0, Ordering::Relaxed);
        for slot in &self.cpus[..n.min(self.cpus.len())] {
            f(slot.load(Ordering::Relaxed));
        }
        if n > self.cpus.len()
            && let Ok(mut o) = self.overflow.lock()
        {
            // The engine only schedules wake-up events in `f`; it never calls back into the
            // scheduler, so holding the lock (and keeping the capacity) is fine.
            for cpu in o.drain(..) {
                f(cpu);
            }
        }
    }
}

impl Platform for SimPlat {
    fn current_cpu(&self) -> Option<usize> {
        let c = self.0.current.load(Ordering::Relaxed);
        (c != NO_CPU).then_some(c)
    }

    fn now_ns(&self) -> u64 {
        self.0.now_ns.load(Ordering::Relaxed)
    }

    fn park(&self, _cpu: usize, _deadline_ns: Option<u64>) {
        // Never called: the engine uses `prepare_park` / `finish_park` (see the module doc).
        // Returning at once is a legal spurious wakeup, so even a call would be correct.
    }

    fn unpark(&self, cpu: usize) {
        self.0.unparks.push(cpu);
    }
}

/// A steal for the trace: thief, victim, tasks, tier.
type StealRecord = (usize, usize, usize, TierKind);

/// The observer: prices and counts every decision.
pub struct SimObs(Arc<ObsState>);

struct ObsState {
    machine: Machine,
    cost: CostModel,
    plat: Arc<PlatState>,
    /// Cost charged to the acting CPU, not yet handed to the engine.
    pending_ns: AtomicU64,
    /// (attempt, per task) steal costs by local tier kind (SMT, L2, LLC, node).
    local_steal_ns: [(u64, u64); 4],
    /// (attempt, per task) steal costs by node pair, row-major.
    remote_steal_ns: Vec<(u64, u64)>,
    /// Per injector (node; node 0 is also the shared queue): when it is next free.
    queue_free_ns: Box<[AtomicU64]>,
    steals: [AtomicU64; 5],
    stolen: [AtomicU64; 5],
    failed_probes: AtomicU64,
    /// `next_task` calls answered by [`RealSched::futile_search`] (every queue empty).
    futile_searches: AtomicU64,
    injector_ops: AtomicU64,
    injector_wait_ns: AtomicU64,
    /// Steals to report to the trace (only when tracing).
    trace: Option<Mutex<Vec<StealRecord>>>,
}

fn add(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl ObsState {
    /// (attempt, per task) cost of a steal at `tier` between two CPUs: local tiers from a
    /// per-tier table, remote ones from a node-pair table (probes are the hot path of a search).
    #[inline]
    fn steal_costs(&self, thief: usize, victim: usize, tier: TierKind) -> (u64, u64) {
        if tier == TierKind::Remote {
            let n = self.machine.nodes();
            self.remote_steal_ns[self.machine.node_of(thief) * n + self.machine.node_of(victim)]
        } else {
            self.local_steal_ns[tier.index()]
        }
    }
}

impl Observer for SimObs {
    fn steal(&self, thief: usize, victim: usize, tier: TierKind, count: usize) {
        let s = &self.0;
        let (attempt, per_task) = s.steal_costs(thief, victim, tier);
        let mut ns = attempt;
        if count == 0 {
            add(&s.failed_probes, 1);
        } else {
            ns += count as u64 * per_task;
            add(&s.steals[tier.index()], 1);
            add(&s.stolen[tier.index()], count as u64);
            if let Some(t) = &s.trace
                && let Ok(mut log) = t.lock()
            {
                log.push((thief, victim, count, tier));
            }
        }
        add(&s.pending_ns, ns);
    }

    fn injector(&self, _cpu: usize, node: Option<usize>, _push: bool, _count: usize) {
        // A shared queue serves one operation at a time: an operation that arrives while it is
        // busy waits its turn (a lock or a contended cache line).
        let s = &self.0;
        add(&s.injector_ops, 1);
        let k = node.unwrap_or(0).min(s.queue_free_ns.len() - 1);
        let arrive = s.plat.now_ns.load(Ordering::Relaxed) + s.pending_ns.load(Ordering::Relaxed);
        let free = s.queue_free_ns[k].load(Ordering::Relaxed);
        let start = arrive.max(free);
        let done = start + s.cost.injector_ns;
        s.queue_free_ns[k].store(done, Ordering::Relaxed);
        add(&s.injector_wait_ns, start - arrive);
        add(&s.pending_ns, done - arrive);
    }

    fn placed(&self, waker: Option<usize>, target: usize, _reason: WakeReason) {
        let s = &self.0;
        if let Some(w) = waker {
            add(
                &s.pending_ns,
                s.cost.wake_task.at(s.machine.distance(w, target)),
            );
        }
    }
}

impl ObsState {
    fn new(machine: &Machine, cost: &CostModel, plat: Arc<PlatState>, trace: bool) -> ObsState {
        ObsState {
            machine: machine.clone(),
            cost: cost.clone(),
            plat,
            pending_ns: AtomicU64::new(0),
            local_steal_ns: [Distance::Smt, Distance::L2, Distance::Llc, Distance::Node]
                .map(|d| (cost.steal_attempt.at(d), cost.steal_per_task.at(d))),
            remote_steal_ns: (0..machine.nodes() * machine.nodes())
                .map(|i| {
                    let d = machine.node_distance(i / machine.nodes(), i % machine.nodes());
                    (cost.steal_attempt.at(d), cost.steal_per_task.at(d))
                })
                .collect(),
            queue_free_ns: (0..machine.nodes().max(1))
                .map(|_| AtomicU64::new(0))
                .collect(),
            steals: Default::default(),
            stolen: Default::default(),
            failed_probes: AtomicU64::new(0),
            futile_searches: AtomicU64::new(0),
            injector_ops: AtomicU64::new(0),
            injector_wait_ns: AtomicU64::new(0),
            trace: trace.then(|| Mutex::new(Vec::new())),
        }
    }
}

/// `manycore-sched`'s scheduler on virtual CPUs.
pub struct RealSched {
    sched: Scheduler<SimTask, SimPlat, SimObs>,
    plat: Arc<PlatState>,
    obs: Arc<ObsState>,
    tick_ns: Option<u64>,
    /// Per CPU: (price in ns, probes) of a search that finds every queue empty, computed on
    /// first use from a second instance of the same policy (see [`RealSched::futile_search`]).
    futile: Vec<Option<(u64, u64)>>,
    /// The same policy as the scheduler's, for walking victim orders without the scheduler.
    policy: Box<dyn Policy>,
    /// Whether `policy` searches at all (steals, not one shared queue).
    searches: bool,
    /// Whether a `next` with every queue empty may use [`RealSched::futile_search`]: the policy
    /// searches, does not aim with the scheduler's work summary and does not skip sleeping
    /// victims (the victims such a search probes depend on the summary's or the sleeper
    /// bitmaps' state, so it is run for real; with every queue empty it is cheap).
    shortcut: bool,
}

impl RealSched {
    /// What `next_task` on `cpu` costs when every queue of the scheduler is empty, and how many
    /// probes it makes: `(price_ns, probes)`.
    ///
    /// With nothing queued anywhere, `Scheduler::next_task` finds its own queues empty, becomes
    /// a searcher (always admitted: in the simulator no other search is under way, each one
    /// begins and ends inside one call), probes each victim the policy names (every probe fails:
    /// rings, inboxes and next slots are all empty; the observer prices each at the thief-victim
    /// distance's `steal_attempt`), finds every injector empty (not priced: nothing is popped),
    /// stops searching without finding anything (no `notify`) and returns `None`. Policies that
    /// do not steal, and one shared queue, return `None` at no cost.
    ///
    /// The price does not depend on the order the policy's PRNG picks: every policy here visits a
    /// fixed set of victims, or (`topology`'s bounded remote probes) a random subset of a tier
    /// whose CPUs all sit at the same distance, so the same price. The unit test
    /// `futile_search_price_does_not_depend_on_the_rng` checks it on every preset and policy.
    /// What the shortcut does not reproduce: the skipped call does not advance the scheduler's
    /// per-CPU PRNG and decision counter (`tick`), so later random victim starts and the timing
    /// of the periodic inbox check shift; the schedule stays a schedule the real scheduler makes.
    fn futile_search(&mut self, cpu: usize) -> (u64, u64) {
        if let Some(f) = self.futile[cpu] {
            return f;
        }
        let f = futile_search_walk(
            &*self.policy,
            self.searches,
            &self.obs,
            cpu,
            &manycore_sched::rng::Rng::new(0, cpu),
        );
        self.futile[cpu] = Some(f);
        f
    }

    fn handle(p: &dyn SimPlatform, task: u32) -> SimTask {
        SimTask {
            id: task,
            home: p.task_home(task) as u32,
            last: p.task_last_cpu(task).map_or(u32::MAX, |c| c as u32),
        }
    }

    /// Sets the clock and the acting CPU before a call into the scheduler.
    fn enter(&self, p: &dyn SimPlatform, cpu: Option<usize>) {
        self.plat.now_ns.store(p.now_ns(), Ordering::Relaxed);
        self.plat
            .current
            .store(cpu.unwrap_or(NO_CPU), Ordering::Relaxed);
    }

    /// Hands the priced work and the unparks of the last call to the engine.
    fn leave(&self, p: &mut dyn SimPlatform, from: usize) {
        // A load and a store, not a `swap` (a locked instruction): one thread only.
        let ns = self.obs.pending_ns.load(Ordering::Relaxed);
        if ns > 0 {
            self.obs.pending_ns.store(0, Ordering::Relaxed);
            p.charge(ns);
        }
        self.plat.unparks.drain(|cpu| p.unpark(from, cpu));
        if let Some(t) = &self.obs.trace
            && let Ok(mut log) = t.lock()
        {
            for (thief, victim, n, tier) in log.drain(..) {
                p.trace_steal(thief, victim, n, tier);
            }
        }
    }
}

impl SchedCore for RealSched {
    fn spawn(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32, local: bool) {
        let h = Self::handle(p, task);
        if local {
            self.enter(p, Some(cpu));
            self.sched.spawn(h, SpawnHint::default());
        } else {
            self.enter(p, None);
            self.sched.spawn(
                h,
                SpawnHint {
                    cpu: Some(cpu),
                    node: None,
                },
            );
        }
        self.leave(p, cpu);
    }

    fn wake(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        let h = Self::handle(p, task);
        self.enter(p, Some(cpu));
        self.sched.wake(h);
        self.leave(p, cpu);
    }

    fn requeue(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        let h = Self::handle(p, task);
        self.enter(p, Some(cpu));
        self.sched.requeue(cpu, h);
        self.leave(p, cpu);
    }

    fn next(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32> {
        if self.shortcut && p.runnable() == 0 {
            // Every queue is empty: the call would search in vain (see `futile_search`). Its
            // price and probe count are known; the O(victims) walk is not repeated.
            let (ns, probes) = self.futile_search(cpu);
            p.charge(ns);
            add(&self.obs.failed_probes, probes);
            add(&self.obs.futile_searches, 1);
            return None;
        }
        self.enter(p, Some(cpu));
        let t = self.sched.next_task(cpu);
        self.leave(p, cpu);
        t.map(|t| t.id)
    }

    fn park(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> bool {
        self.enter(p, Some(cpu));
        let sleeps = self.sched.prepare_park(cpu);
        self.leave(p, cpu);
        sleeps
    }

    fn park_deadline(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u64> {
        self.enter(p, Some(cpu));
        let d = self.sched.stranded_recheck_ns(cpu);
        if d.is_some() {
            // The engine sleeps until `d`: the next such sleep backs off (as `Scheduler::park`).
            self.sched.note_timed_park(cpu);
        }
        self.leave(p, cpu);
        d
    }

    fn unparked(&mut self, p: &mut dyn SimPlatform, cpu: usize) {
        self.enter(p, Some(cpu));
        self.sched.finish_park(cpu);
        self.leave(p, cpu);
    }

    fn tick_ns(&self) -> Option<u64> {
        self.tick_ns
    }

    fn tick(&mut self, p: &mut dyn SimPlatform, sleeping: &[bool]) -> Vec<usize> {
        let mut wake = Vec::new();
        for (cpu, &asleep) in sleeping.iter().enumerate() {
            self.enter(p, Some(cpu));
            let moved = self.sched.balance(cpu);
            // Balancing from the tick runs in interrupt context: not charged to the CPU.
            self.obs.pending_ns.store(0, Ordering::Relaxed);
            self.leave(p, cpu);
            if moved > 0 && asleep {
                wake.push(cpu);
            }
        }
        wake
    }

    fn queued(&self) -> u64 {
        self.sched.queued() as u64
    }

    fn sample_wasted(&mut self, now_ns: u64) {
        self.plat.now_ns.store(now_ns, Ordering::Relaxed);
        self.sched.sample_wasted(now_ns);
    }

    fn finish(&self, stats: &mut Stats) {
        let o = &self.obs;
        for i in 0..5 {
            let steals = o.steals[i].load(Ordering::Relaxed);
            stats.steals[i] += steals;
            stats.sched_events += steals;
            stats.stolen_tasks[i] += o.stolen[i].load(Ordering::Relaxed);
        }
        stats.failed_probes += o.failed_probes.load(Ordering::Relaxed);
        stats.futile_searches += o.futile_searches.load(Ordering::Relaxed);
        stats.injector_ops += o.injector_ops.load(Ordering::Relaxed);
        stats.injector_wait_ns += u128::from(o.injector_wait_ns.load(Ordering::Relaxed));
        stats.sched_wasted_core_ns = self.sched.counters().wasted_core_ns;
    }
}

/// Builds the scheduler for a policy name; `wasted_threshold_ns` configures the scheduler's own
/// wasted-core checker, `trace` whether steals are logged for the schedule trace.
pub fn build(
    policy: &str,
    machine: &Machine,
    cost: &CostModel,
    seed: u64,
    wasted_threshold_ns: u64,
    trace: bool,
) -> Result<Box<dyn SchedCore>, String> {
    let pol = policy_by_name(policy, machine)?;
    let tick_ns = pol.balance_interval_ns();
    let searches = pol.steals() && !pol.shared_queue();
    let shortcut = searches && !pol.uses_work_summary() && !pol.skips_sleeping_victims();
    let walker = policy_by_name(policy, machine)?;
    let plat = Arc::new(PlatState {
        now_ns: AtomicU64::new(0),
        current: AtomicUsize::new(NO_CPU),
        unparks: UnparkLog::new(machine.cpus()),
    });
    let obs = Arc::new(ObsState::new(machine, cost, Arc::clone(&plat), trace));
    // The scheduler's remote grace keeps work near its memory; where remote memory costs the
    // same as local (the ideal machine, `CostModel::zero`) it has nothing to protect, and the
    // scheduler is then configured work-conserving, as a deployment on such a machine would be.
    let numa_penalty = cost.memory.remote_factor_near > 1.0 || cost.memory.remote_factor_far > 1.0;
    let config = Config {
        seed,
        stats: true,
        wasted_threshold_ns,
        remote_grace_ns: if numa_penalty {
            Config::default().remote_grace_ns
        } else {
            0
        },
        ..Config::default()
    };
    let sched = Scheduler::with(
        machine.topo().clone(),
        pol,
        SimPlat(Arc::clone(&plat)),
        SimObs(Arc::clone(&obs)),
        config,
    )
    .map_err(|e| format!("policy {policy}: {e}"))?;
    Ok(Box::new(RealSched {
        sched,
        plat,
        obs,
        tick_ns,
        futile: vec![None; machine.cpus()],
        policy: walker,
        searches,
        shortcut,
    }))
}

fn policy_by_name(policy: &str, machine: &Machine) -> Result<Box<dyn Policy>, String> {
    Ok(match policy {
        "linux" => Box::new(crate::linux::LinuxPolicy::new(machine.topo())),
        other => manycore_sched::policy::by_name(other).ok_or_else(|| {
            format!(
                "unknown policy {other:?}; expected one of: {}, or all",
                POLICIES.join(", ")
            )
        })?,
    })
}

/// Walks `policy`'s victims of `cpu` as `Scheduler::steal` does when every queue is empty,
/// pricing each probe like [`SimObs::steal`]: `(price_ns, probes)`.
fn futile_search_walk(
    policy: &dyn Policy,
    searches: bool,
    obs: &ObsState,
    cpu: usize,
    rng: &manycore_sched::rng::Rng,
) -> (u64, u64) {
    if !searches {
        return (0, 0);
    }
    let (mut ns, mut probes) = (0, 0);
    policy.for_each_victim(obs.machine.topo(), cpu, rng, &mut |victim, tier| {
        if victim != cpu {
            ns += obs.steal_costs(cpu, victim, tier).0;
            probes += 1;
        }
        false
    });
    (ns, probes)
}

/// Parses `all` or a comma-separated list of policy names.
pub fn parse_list(s: &str) -> Result<Vec<String>, String> {
    if s.trim() == "all" {
        return Ok(POLICIES.iter().map(|p| p.to_string()).collect());
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        if !POLICIES.contains(&name) {
            return Err(format!(
                "--policy: unknown policy {name:?}; expected a comma-separated list of {} or `all`",
                POLICIES.join(", ")
            ));
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::PRESETS;

    /// A host with every queue empty unless told otherwise; records what was charged.
    struct Idle {
        runnable: u64,
        charged_ns: u64,
    }

    impl SimPlatform for Idle {
        fn now_ns(&self) -> u64 {
            1_000_000
        }
        fn task_home(&self, _: u32) -> usize {
            0
        }
        fn task_last_cpu(&self, _: u32) -> Option<usize> {
            None
        }
        fn charge(&mut self, ns: u64) {
            self.charged_ns += ns;
        }
        fn unpark(&mut self, _: usize, _: usize) {}
        fn trace_steal(&mut self, _: usize, _: usize, _: usize, _: TierKind) {}
        fn runnable(&self) -> u64 {
            self.runnable
        }
    }

    #[test]
    fn unpark_log_keeps_order_past_its_capacity_and_empties() {
        let log = UnparkLog::new(2);
        for cpu in [5, 3, 9, 1, 4] {
            log.push(cpu);
        }
        let mut got = Vec::new();
        log.drain(|c| got.push(c));
        assert_eq!(got, vec![5, 3, 9, 1, 4], "order across the overflow");
        log.drain(|c| got.push(c));
        assert_eq!(got.len(), 5, "a drained log is empty");
        log.push(7);
        log.drain(|c| got.push(c));
        assert_eq!(got[5..], [7], "the log is reused after a drain");
    }

    #[test]
    fn futile_search_price_does_not_depend_on_the_rng() {
        for preset in PRESETS {
            let m = Machine::new(preset.build());
            let cost = CostModel::default();
            for name in POLICIES {
                let pol = policy_by_name(name, &m).expect("policy");
                let searches = pol.steals() && !pol.shared_queue();
                let plat = Arc::new(PlatState {
                    now_ns: AtomicU64::new(0),
                    current: AtomicUsize::new(NO_CPU),
                    unparks: UnparkLog::new(m.cpus()),
                });
                let obs = ObsState::new(&m, &cost, plat, false);
                for cpu in (0..m.cpus()).step_by(m.cpus() / 8 + 1) {
                    let first = futile_search_walk(
                        &*pol,
                        searches,
                        &obs,
                        cpu,
                        &manycore_sched::rng::Rng::new(0, cpu),
                    );
                    for seed in 1..16 {
                        let again = futile_search_walk(
                            &*pol,
                            searches,
                            &obs,
                            cpu,
                            &manycore_sched::rng::Rng::new(seed, cpu),
                        );
                        assert_eq!(
                            first, again,
                            "{} {name} cpu {cpu}: the futile search's price depends on the order",
                            preset.name
                        );
                    }
                }
            }
        }
    }

    /// The shortcut charges what the real scheduler's futile search charges, probe for probe.
    #[test]
    fn futile_search_shortcut_matches_the_real_search() {
        for preset in ["laptop", "dual-socket", "epyc-2s-nps4"] {
            let m = Machine::new(crate::presets::find(preset).expect("preset").build());
            let cost = CostModel::default();
            for name in POLICIES {
                let mut s = build(name, &m, &cost, 7, 100_000, false).expect("policy");
                let probes = |s: &dyn SchedCore| {
                    let mut st = Stats::default();
                    s.finish(&mut st);
                    st.failed_probes
                };
                for cpu in (0..m.cpus()).step_by(m.cpus() / 8 + 1) {
                    // `runnable` 1 forces the real call (the queues are in fact empty).
                    let mut real = Idle {
                        runnable: 1,
                        charged_ns: 0,
                    };
                    let before = probes(&*s);
                    assert_eq!(s.next(&mut real, cpu), None);
                    let real_probes = probes(&*s) - before;
                    let mut short = Idle {
                        runnable: 0,
                        charged_ns: 0,
                    };
                    assert_eq!(s.next(&mut short, cpu), None);
                    assert_eq!(
                        probes(&*s) - before - real_probes,
                        real_probes,
                        "{preset} {name} cpu {cpu}: the shortcut counts the probes the search made"
                    );
                    assert_eq!(
                        real.charged_ns, short.charged_ns,
                        "{preset} {name} cpu {cpu}: shortcut price differs from the real search"
                    );
                }
            }
        }
    }
}
