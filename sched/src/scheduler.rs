//! The scheduler: per-CPU rings and next slots, per-CPU inboxes, per-node injectors, stealing
//! by policy, wake placement, and the idle protocol, tied together.
//!
//! # Who touches what
//! - A CPU's `ring` and `next` slot: pushed and popped only by that CPU (its *owner*: the thread
//!   or virtual CPU that calls [`Scheduler::next_task`] with that CPU id); thieves steal from them.
//! - A CPU's yield `batch`: owner only (filled and emptied by [`Scheduler::yield_task`], flushed
//!   back to the ring by every other owner call); others read its length for accounting.
//! - A CPU's `inbox`: any CPU pushes (placement on that CPU), the owner pops, thieves may pop.
//! - Node injectors: anyone pushes (remote spawns, ring overflow, wakes with no idle CPU nearby),
//!   CPUs of the node pop in batches, other nodes' CPUs pop once their victims are exhausted.
//! - Owner-only scalars (`tick`, `streak`, the PRNG) are atomics accessed with Relaxed loads and
//!   stores: no read-modify-write on the fast path.
//!
//! # The host's loop
//! ```text
//! loop {
//!     match sched.next_task(cpu) {
//!         Some(task) => run(task),          // the task may spawn, wake, yield (requeue)
//!         None => sched.park(cpu, deadline) // announce, re-check, platform park
//!     }
//! }
//! ```

use alloc::boxed::Box;
use alloc::vec::Vec;

use manycore_topology::{TierKind, Topology};

use crate::idle::Idle;
use crate::injector::Injector;
use crate::next_slot::NextSlot;
use crate::platform::{NoObserver, Observer, Platform, WakeReason};
use crate::policy::{Policy, TopologyPolicy, WakePolicy};
use crate::ring::{RING_CAPACITY_DEFAULT, Ring, YieldBatch};
use crate::rng::Rng;
use crate::stats::{Counters, CpuCounters, add, bump};
use crate::summary::{Bits, WorkSummary};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use crate::task::Task;

/// Tunables. Every queue, batch and wait has a named bound.
#[derive(Clone, Debug)]
pub struct Config {
    /// Slots per CPU ring (a power of two).
    pub ring_capacity: usize,
    /// Every this many scheduling decisions, a CPU checks its inbox and node injector before
    /// its own ring, so injected work is not starved by a busy ring (Go and Tokio use 61).
    pub injector_interval_ticks: u32,
    /// Tasks taken from an injector at once.
    pub injector_batch_max: usize,
    /// How long a task sits in a next slot before other CPUs may take it.
    pub next_slot_grace_ns: u64,
    /// Consecutive runs from the next slot before the ring gets a turn.
    pub next_streak_max: u32,
    /// How long a CPU must have held work (its work-summary bit set) before a thief of another
    /// node that aims with the summary takes from it: a backlog its own saturated node clears
    /// sooner stays near its memory. Measured in the simulator (default cost model): 5 µs let
    /// memory-bound work on `epyc-2s-nps4` run 13% remote, 10 µs 9%, 20 µs 0%; 50 µs left a
    /// 1024-CPU fork-join's ramp 1.9% wasted core time, 20 µs 0.2%.
    pub remote_grace_ns: u64,
    /// Upper bound on searching CPUs per node (each node also caps at half its CPUs).
    pub searchers_per_node_max: usize,
    /// Seed of the per-CPU PRNGs (victim order).
    pub seed: u64,
    /// Track queue waits for the wasted-core checker (costs a timestamp per queue transition).
    pub stats: bool,
    /// A task waiting longer than this while a CPU sleeps counts as wasted-core time.
    pub wasted_threshold_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ring_capacity: RING_CAPACITY_DEFAULT,
            injector_interval_ticks: 61,
            injector_batch_max: 32,
            next_slot_grace_ns: 50_000,
            next_streak_max: 3,
            remote_grace_ns: 20_000,
            searchers_per_node_max: 4,
            seed: 0x5EED,
            stats: false,
            wasted_threshold_ns: 1_000_000,
        }
    }
}

/// Largest doubling of the grace period an idle CPU sleeps for a task in another CPU's next
/// slot (2^8 x the 50 us default grace = 12.8 ms).
const RECHECK_BACKOFF_MAX: u32 = 8;

/// Where a spawned task should go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpawnHint {
    /// Run on this logical CPU (placed in its inbox).
    pub cpu: Option<usize>,
    /// Run on this node (its injector), unless `cpu` is given.
    pub node: Option<usize>,
}

/// One walk of [`Scheduler::recheck_at`] over the loaded CPUs: what stays the same for every CPU
/// it looks at (read once), and the node memo.
struct RecheckWalk {
    /// The CPU about to sleep, and its node.
    cpu: usize,
    node: usize,
    /// The clock at the start of the walk.
    now: u64,
    /// The fewest tasks a remote ring must hold to be taken (at least 1).
    remote_min: usize,
    /// The next-slot and remote grace periods, backed off by the sleeper's `recheck_backoff`.
    next_grace_ns: u64,
    remote_grace_ns: u64,
    memo: NodeMemo,
}

/// Per search or re-check: which remote nodes (the first 64) were seen with idle CPUs (asleep or
/// searching) and which without, so each node's idle state is read once.
#[derive(Default)]
struct NodeMemo {
    idle: u64,
    busy: u64,
}

impl NodeMemo {
    fn idle<T, P: Platform, O: Observer>(&mut self, s: &Scheduler<T, P, O>, node: usize) -> bool {
        let bit = if node < 64 { 1u64 << node } else { 0 };
        if self.idle & bit != 0 {
            return true;
        }
        if self.busy & bit != 0 {
            return false;
        }
        let idle = s.idle.searching(node) > 0 || s.idle.has_sleepers(node);
        if idle {
            self.idle |= bit;
        } else {
            self.busy |= bit;
        }
        idle
    }
}

struct Cpu<T> {
    ring: Ring<T>,
    /// Owner-only: tasks claimed from `ring`'s head by the yield path, hidden from thieves
    /// until they run or the owner leaves the yield path (see [`YieldBatch`] for the bound).
    batch: YieldBatch<T>,
    next: NextSlot<T>,
    inbox: Injector<T>,
    rng: Rng,
    /// Owner-only: decisions made, for the injector interval.
    tick: AtomicU32,
    /// Owner-only: consecutive next-slot runs.
    streak: AtomicU32,
    /// The injector this CPU takes from (its node's, or the one shared queue): fixed.
    injector: usize,
    /// A waker claimed this sleeping CPU, placed a task in its inbox and unparked it; cleared by
    /// the owner's next `next_task`. Thieves leave the inbox of a waking CPU alone: the task
    /// was placed there on purpose (its last CPU, its LLC, its node) and the CPU is on its way,
    /// so a thief taking it makes the wake-up futile (found by the simulator: up to half the
    /// unparks of fork-join ended with nothing to run). A hint (Relaxed): the owner always
    /// takes its inbox after waking, so a stale value only delays a steal.
    waking: AtomicBool,
    /// Owner-only: timed sleeps in a row for a task in another CPU's next slot that ended with
    /// nothing stolen (the sleep doubles each time, see `stranded_recheck_ns`).
    recheck_backoff: AtomicU32,
    /// Stats mode: when the CPU's queues last became non-empty (0 = empty). Owner writes.
    waiting_since_ns: AtomicU64,
    /// Aiming policies: when this CPU's summary bit was last set (whoever set it writes; remote
    /// thieves read it to leave young backlogs to their own node). A hint (Relaxed).
    loaded_since_ns: AtomicU64,
    /// Owner-only: `prepare_park`'s re-check left `recheck_at_ns` (the deadline
    /// `stranded_recheck_ns` would compute, `u64::MAX` for none) for the park that follows.
    recheck_cached: AtomicBool,
    recheck_at_ns: AtomicU64,
    counters: CpuCounters,
}

/// Aiming policies, per node: the remote horizon. Until then the node's searches stop at the
/// first remote tier: a search from the node declined every loaded remote CPU it looked at
/// (their backlogs younger than `remote_grace_ns`, or their nodes with idle CPUs of their
/// own), and the earliest of those backlogs comes of age only then. What a search declines
/// depends on the remote nodes, not on which CPU of this node looks, so the node shares it
/// (per CPU, a CPU waking after a sleep found its own horizon expired and scanned every remote
/// tier again: 12-19% of the simulator's instructions on the server presets). A backlog the
/// search did not look at (the per-tier probe bound) is seen by the re-check of the next CPU
/// of the node that goes to sleep, which clears the horizon if such a backlog is ripe.
/// Written by any CPU of the node with a plain store (a hint: a racing search may replace a
/// nearer horizon by a farther one, at most `remote_grace_ns` away). 0: no horizon. Padded to
/// its own lines: searches of other nodes write theirs.
#[repr(align(128))]
#[derive(Default)]
struct NodeHorizon {
    after_ns: AtomicU64,
}

impl<T> Cpu<T> {
    /// The yield fast path's decision, shared by [`Scheduler::yield_task`] and
    /// [`YieldLane::pick`] (owner only; `injector` is this CPU's node injector, `fast` the
    /// scheduler's `yield_fast`). It applies when nothing waits in the inbox, node injector or
    /// next slot: then `requeue` would only push the yielder at the ring's back and
    /// `next_task` would take the ring's front. No tick is counted: the tick only paces
    /// `next_task`'s look at the inbox and injector, which this path makes on every yield.
    /// The next task is the batch's, or a fresh claim of up to `YIELD_BATCH_MAX` from the
    /// ring's front (one compare-exchange for them all), made before the yielder goes to the
    /// back so the yielder itself stays in the ring, stealable.
    #[inline(always)]
    fn yield_pick(&self, injector: &Injector<T>, fast: bool) -> YieldPick<T> {
        if !(fast
            && self.inbox.is_empty()
            && injector.is_empty()
            && !self.next.owner_sees_occupied())
        {
            return YieldPick::Slow;
        }
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
        match self.batch.pop_or_claim(&self.ring) {
            Some(t) => YieldPick::Next(t),
            None => YieldPick::Alone,
        }
    }
}

/// What the yield fast path decided ([`YieldLane::pick`], [`Scheduler::yield_task`]).
pub(crate) enum YieldPick<T> {
    /// The fast path does not apply; nothing was touched.
    Slow,
    /// Nothing else is runnable on this CPU: the yielder carries on.
    Alone,
    /// Run this task next; the yielder goes to [`Scheduler::yield_push`].
    Next(T),
}

/// One CPU's yield fast path resolved once ([`Scheduler::yield_lane`]): the CPU's state and its
/// node injector by address, so a yield reaches them with two independent loads instead of a
/// chain through the scheduler's fields. Kept by that CPU's owner (a runtime worker).
#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
pub(crate) struct YieldLane<T> {
    /// `&cpus[cpu]` of the scheduler that made the lane.
    me: *const Cpu<T>,
    /// `&injectors[cpus[cpu].injector]` of the same scheduler.
    injector: *const Injector<T>,
    /// The scheduler's `yield_fast`.
    fast: bool,
    /// The work-summary word holding this CPU's bit, and the bit: the landing push checks the
    /// bit with one load (a chain through the scheduler's summary cost ~1 ns per yield).
    work_word: *const AtomicU64,
    work_bit: u64,
    /// The CPU.
    cpu: usize,
}

#[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
impl<T> YieldLane<T> {
    /// The fast path of [`Scheduler::yield_task`] split in two, for a runtime that switches
    /// from the yielder straight into the next task (the yielder must not be queued, where a
    /// thief could take it, before its context is saved): the decision without the yielder's
    /// push. [`YieldPick::Next`] obliges the caller to hand the yielder to
    /// [`Scheduler::yield_push`] next, with no other owner call on `cpu` in between;
    /// [`YieldPick::Alone`] means only the yielder is runnable here (it carries on);
    /// [`YieldPick::Slow`] means the fast path does not apply and nothing was touched (use
    /// [`Scheduler::yield_task`]).
    ///
    /// # Safety
    /// 1. The scheduler that made the lane is alive, and the caller is the owner of the lane's
    ///    CPU (the same obligations as `yield_task` for that CPU).
    #[inline(always)]
    pub(crate) unsafe fn pick(&self) -> YieldPick<T> {
        // SAFETY: precondition 1: the pointers are into the live scheduler's boxed slices,
        // which never move or shrink.
        let (me, injector) = unsafe { (&*self.me, &*self.injector) };
        me.yield_pick(injector, self.fast)
    }

    /// [`Scheduler::yield_push`] through the lane: the yielder goes to the back of the CPU's
    /// ring; only a full ring takes the scheduler's general path.
    ///
    /// # Safety
    /// 1. As [`YieldLane::pick`] 1, and `sched` is the scheduler that made the lane.
    #[inline(always)]
    pub(crate) unsafe fn push<P: Platform, O: Observer>(&self, sched: &Scheduler<T, P, O>, task: T)
    where
        T: Task,
    {
        // SAFETY: precondition 1, as in `pick`.
        let me = unsafe { &*self.me };
        // No stats marking: a lane hands out `YieldPick::Next` only on the fast path, which
        // the scheduler takes only with stats off.
        match me.ring.push(task) {
            // A push that wakes nobody: advertised without a fence, as `push_quiet` does (see
            // `crate::summary`); a Relaxed load when the bit is already set.
            Ok(()) => {
                // SAFETY: precondition 1: the word is in the live scheduler's summary, a boxed
                // slice that never moves or shrinks.
                let word = unsafe { &*self.work_word };
                if word.load(Ordering::Relaxed) & self.work_bit == 0 {
                    sched.advertise_cold(self.cpu);
                }
            }
            Err(t) => sched.push_quiet(self.cpu, t),
        }
    }
}

/// A scheduler for `T` tasks on a topology, driven through a [`Platform`].
pub struct Scheduler<T, P, O = NoObserver> {
    topo: Topology,
    cpus: Box<[Cpu<T>]>,
    /// One per node; with a shared-queue policy only `[0]` is used.
    injectors: Box<[Injector<T>]>,
    /// Stats mode: when each injector became non-empty (0 = empty).
    injector_since_ns: Box<[AtomicU64]>,
    idle: Idle,
    policy: Box<dyn Policy>,
    /// `policy.shared_queue()`, read on every scheduling decision (cached: no virtual call).
    shared_queue: bool,
    /// `policy.one_injector()`: every node's injector traffic goes to `injectors[0]` (cached).
    one_injector: bool,
    /// Whether [`Scheduler::yield_task`] may take its fast path at all (not with a shared queue
    /// nor in stats mode, which need `requeue` + `next_task`).
    yield_fast: bool,
    /// `policy.steal_min_tasks(tier)` and `policy.steal_batch_max(tier)` by tier index, read
    /// once here: a search looks them up per victim without a virtual call.
    steal_min: [usize; 5],
    steal_batch: [usize; 5],
    /// Which CPUs may hold stealable work in their ring, inbox or next slot (see
    /// [`crate::summary`]): set by whoever queues there, cleared by thieves that find the CPU
    /// empty (with a re-probe). Searches aim with it; the park re-check reads it.
    work: WorkSummary,
    /// `policy.uses_work_summary()` (cached): searches aim at loaded CPUs, and leave a remote
    /// node's work to that node while it has idle CPUs (see `remote_node_idle`).
    aims: bool,
    /// `policy.skips_sleeping_victims()` (cached).
    skip_sleeping: bool,
    /// `policy.steals()`, `policy.takes_remote_injectors()` and `policy.wake_policy()`
    /// (cached: read on every search, park and wake, where a virtual call showed in the
    /// simulator's profile).
    steals: bool,
    takes_remote_injectors: bool,
    wake_policy: WakePolicy,
    platform: P,
    observer: O,
    config: Config,
    /// Counters of callers that are not scheduler CPUs (external spawns and wakes).
    external: CpuCounters,
    /// Per node: other nodes by increasing distance (for remote injectors and wakeups).
    nodes_by_distance: Box<[Box<[usize]>]>,
    /// Per node: the remote horizon of its searches (aiming policies).
    horizons: Box<[NodeHorizon]>,
    wasted_ns: AtomicU64,
    last_sample_ns: AtomicU64,
}

/// A configuration the scheduler cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub alloc::string::String);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "scheduler configuration: {}", self.0)
    }
}

impl<T: Task, P: Platform> Scheduler<T, P, NoObserver> {
    /// A topology-policy scheduler with default configuration and no observer.
    pub fn new(topo: Topology, platform: P) -> Scheduler<T, P, NoObserver> {
        Scheduler::with(
            topo,
            Box::new(TopologyPolicy::default()),
            platform,
            NoObserver,
            Config::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<T: Task, P: Platform, O: Observer> Scheduler<T, P, O> {
    /// A scheduler with every part chosen.
    pub fn with(
        topo: Topology,
        policy: Box<dyn Policy>,
        platform: P,
        observer: O,
        config: Config,
    ) -> Result<Self, ConfigError> {
        if !config.ring_capacity.is_power_of_two()
            || config.ring_capacity < 2
            || config.ring_capacity > 1 << 20
        {
            return Err(ConfigError(alloc::format!(
                "ring_capacity {} must be a power of two in 2..=2^20",
                config.ring_capacity
            )));
        }
        if config.injector_interval_ticks == 0 || config.injector_batch_max == 0 {
            return Err(ConfigError(
                "injector_interval_ticks and injector_batch_max must be at least 1".into(),
            ));
        }
        let n = topo.num_cpus();
        let work = WorkSummary::with_tiers(&topo);
        let cpus = (0..n)
            .map(|c| Cpu {
                ring: Ring::new(config.ring_capacity),
                batch: YieldBatch::default(),
                next: NextSlot::default(),
                inbox: Injector::new(),
                rng: Rng::new(config.seed, c),
                tick: AtomicU32::new(0),
                streak: AtomicU32::new(0),
                injector: if policy.shared_queue() || policy.one_injector() {
                    0
                } else {
                    topo.node_of(c)
                },
                waking: AtomicBool::new(false),
                recheck_backoff: AtomicU32::new(0),
                waiting_since_ns: AtomicU64::new(0),
                loaded_since_ns: AtomicU64::new(0),
                recheck_cached: AtomicBool::new(false),
                recheck_at_ns: AtomicU64::new(u64::MAX),
                counters: CpuCounters::default(),
            })
            .collect();
        let nodes = topo.num_nodes();
        let node_cpus: Vec<Vec<usize>> =
            (0..nodes).map(|i| topo.cpus_of_node(i).to_vec()).collect();
        let nodes_by_distance = (0..nodes)
            .map(|a| {
                let mut others: Vec<usize> = (0..nodes).filter(|&b| b != a).collect();
                others.sort_by_key(|&b| (topo.distance(a, b), b));
                others.into_boxed_slice()
            })
            .collect();
        Ok(Scheduler {
            idle: Idle::new(node_cpus, n, config.searchers_per_node_max),
            injectors: (0..nodes).map(|_| Injector::new()).collect(),
            injector_since_ns: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
            cpus,
            topo,
            shared_queue: policy.shared_queue(),
            one_injector: policy.one_injector(),
            yield_fast: !policy.shared_queue() && !config.stats,
            steal_min: TierKind::ALL.map(|k| policy.steal_min_tasks(k)),
            steal_batch: TierKind::ALL.map(|k| policy.steal_batch_max(k)),
            work,
            aims: policy.uses_work_summary(),
            skip_sleeping: policy.skips_sleeping_victims(),
            steals: policy.steals(),
            takes_remote_injectors: policy.takes_remote_injectors(),
            wake_policy: policy.wake_policy(),
            policy,
            platform,
            observer,
            config,
            external: CpuCounters::default(),
            nodes_by_distance,
            horizons: (0..nodes).map(|_| NodeHorizon::default()).collect(),
            wasted_ns: AtomicU64::new(0),
            last_sample_ns: AtomicU64::new(0),
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Number of CPUs.
    pub fn num_cpus(&self) -> usize {
        self.cpus.len()
    }

    fn counters_of(&self, cpu: Option<usize>) -> &CpuCounters {
        cpu.map_or(&self.external, |c| &self.cpus[c].counters)
    }

    fn shared(&self) -> bool {
        self.shared_queue
    }

    /// The injector serving `node`: its own, or the one machine-wide queue (`shared_queue` and
    /// `one_injector` policies).
    fn node_injector(&self, node: usize) -> usize {
        if self.shared() || self.one_injector {
            0
        } else {
            node
        }
    }

    fn mark_waiting(since: &AtomicU64, now: u64) {
        if since.load(Ordering::Relaxed) == 0 {
            since.store(now.max(1), Ordering::Relaxed);
        }
    }

    fn push_injector(&self, from: Option<usize>, node: usize, task: T) {
        let node = self.node_injector(node);
        self.injectors[node].push(task);
        if self.config.stats {
            Self::mark_waiting(&self.injector_since_ns[node], self.platform.now_ns());
        }
        add(&self.counters_of(from).injector_pushes, 1);
        self.observer
            .injector(from.unwrap_or(usize::MAX), Some(node), true, 1);
    }

    /// Queues a new task. From a scheduler CPU with no hint, it goes to that CPU's ring (the
    /// spawner's cache is warm); otherwise to the hinted CPU's inbox or the hinted node's
    /// injector (node 0 without hints). Wakes an idle CPU when nobody is searching.
    pub fn spawn(&self, task: T, hint: SpawnHint) {
        let here = self.platform.current_cpu();
        if self.shared() {
            self.push_injector(here, 0, task);
            self.notify(here.map_or(0, |c| self.idle.node_of(c)), true);
            return;
        }
        match (hint.cpu, hint.node, here) {
            (Some(c), _, Some(h)) if c == h => self.push_local(h, task),
            (Some(c), _, _) => self.place_on(here, c, task, WakeReason::Remote),
            (None, Some(n), Some(h)) if self.topo.node_of(h) != n => {
                self.push_injector(here, n, task);
                self.notify(n, true);
            }
            (None, _, Some(h)) => self.push_local(h, task),
            (None, n, None) => {
                let n = n.unwrap_or(0).min(self.topo.num_nodes() - 1);
                self.push_injector(None, n, task);
                self.notify(n, true);
            }
        }
    }

    /// Owner: appends `task` to `cpu`'s ring (moving half the ring to the node's injector when
    /// full), then wakes an idle CPU if nobody is searching.
    pub fn push_local(&self, cpu: usize, task: T) {
        let me = &self.cpus[cpu];
        let mut overflow = Vec::new();
        if me.ring.push_overflow(task, &mut overflow) > 0 {
            let node = self.idle.node_of(cpu);
            let n = overflow.len();
            self.injectors[self.node_injector(node)].push_batch(&mut overflow);
            if self.config.stats {
                Self::mark_waiting(
                    &self.injector_since_ns[self.node_injector(node)],
                    self.platform.now_ns(),
                );
            }
            bump(&me.counters.injector_pushes, n as u64);
            self.observer.injector(cpu, Some(node), true, n);
        }
        if self.config.stats {
            Self::mark_waiting(&me.waiting_since_ns, self.platform.now_ns());
        }
        // Publish, fence, then advertise and look for sleepers (see `crate::summary`).
        fence(Ordering::SeqCst);
        self.advertise(cpu);
        self.notify_fenced(self.idle.node_of(cpu), self.remote_may_help(cpu));
    }

    /// Owner: the running task yields; it goes to the back of the ring, behind any task waiting
    /// in this CPU's inbox or its node's injector (pulled in first, so a yield really lets
    /// queued work run instead of waiting for the injector interval).
    ///
    /// No idle CPU is woken: a yield does not add runnable work (the task was running), and this
    /// CPU is busy and will run it.
    pub fn requeue(&self, cpu: usize, task: T) {
        self.flush_batch(cpu);
        if self.shared() {
            return self.push_local(cpu, task);
        }
        let me = &self.cpus[cpu];
        while me.ring.len() < me.ring.capacity() / 2 {
            let Some(t) = me.inbox.pop() else { break };
            self.push_quiet(cpu, t);
        }
        if me.ring.len() < me.ring.capacity() / 2
            && !self.injectors[self.node_injector(self.idle.node_of(cpu))].is_empty()
            && let Some(t) = self.pop_injector(cpu, self.idle.node_of(cpu))
        {
            self.push_quiet(cpu, t);
        }
        self.push_quiet(cpu, task);
    }

    /// Owner: the running `task` yields and `cpu` picks what to run next. The same decision as
    /// [`Scheduler::requeue`] followed by [`Scheduler::next_task`], at a fraction of the cost in
    /// the common case (this CPU's inbox and node injector empty, stats off):
    /// - with nothing else queued here the yielder itself comes back, and the ring is not
    ///   touched at all (no atomic read-modify-write);
    /// - otherwise the next task comes from this CPU's [`YieldBatch`] (plain loads and stores),
    ///   which, when empty, claims up to [`YIELD_BATCH_MAX`](crate::ring::YIELD_BATCH_MAX) tasks
    ///   from the ring's front with one compare-exchange (what keeps thieves off them); the
    ///   yielder goes to the ring's back with plain stores, stealable. Every other owner call
    ///   (`next_task`, `requeue`, `prepare_park`) first returns the batch's tasks to the ring.
    ///
    /// Returns `None` only when a thief took the yielder in between and nothing else is left
    /// (as `next_task` would); the caller then goes back to its loop.
    #[inline(always)]
    pub fn yield_task(&self, cpu: usize, task: T) -> Option<T> {
        let me = &self.cpus[cpu];
        match me.yield_pick(&self.injectors[me.injector], self.yield_fast) {
            YieldPick::Next(t) => {
                self.push_quiet(cpu, task);
                Some(t)
            }
            // Only the yielder is runnable here: it runs again.
            YieldPick::Alone => Some(task),
            YieldPick::Slow => self.yield_task_slow(cpu, task),
        }
    }

    /// The second half of a [`YieldPick::Next`]: the yielder goes to the back of `cpu`'s ring,
    /// as `yield_task` would have put it.
    #[inline(always)]
    #[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
    pub(crate) fn yield_push(&self, cpu: usize, task: T) {
        self.push_quiet(cpu, task);
    }

    /// `cpu`'s [`YieldLane`] (for its owner, kept while the scheduler lives).
    #[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
    pub(crate) fn yield_lane(&self, cpu: usize) -> YieldLane<T> {
        let me = &self.cpus[cpu];
        YieldLane {
            me,
            injector: &self.injectors[me.injector],
            fast: self.yield_fast,
            work_word: self.work.word_of(cpu),
            work_bit: 1 << (cpu % 64),
            cpu,
        }
    }

    /// `yield_task` when something waits in the inbox, injector or next slot, or the
    /// configuration always takes the general path (shared queue, stats).
    #[inline(never)]
    fn yield_task_slow(&self, cpu: usize, task: T) -> Option<T> {
        let me = &self.cpus[cpu];
        if !self.yield_fast || !me.inbox.is_empty() || !self.injectors[me.injector].is_empty() {
            self.requeue(cpu, task);
            return self.next_task(cpu);
        }
        // Only the next slot holds a task: `next_task`'s choice, with the yielder queued.
        let tick = me.tick.load(Ordering::Relaxed) + 1;
        me.tick.store(
            if tick >= self.config.injector_interval_ticks {
                0
            } else {
                tick
            },
            Ordering::Relaxed,
        );
        let streak = me.streak.load(Ordering::Relaxed);
        if let Some(t) = me.next.take() {
            if streak < self.config.next_streak_max {
                me.streak.store(streak + 1, Ordering::Relaxed);
                bump(&me.counters.next_slot_runs, 1);
                self.push_quiet(cpu, task);
                return Some(t);
            }
            // The streak is used up: the yielder, then the next-slot task, wait at the back.
            self.push_quiet(cpu, task);
            me.streak.store(0, Ordering::Relaxed);
            self.push_quiet(cpu, t);
            return me
                .batch
                .pop_or_claim(&me.ring)
                .or_else(|| self.next_task(cpu));
        }
        // A thief took the next slot's task meanwhile: as the fast path.
        if streak != 0 {
            me.streak.store(0, Ordering::Relaxed);
        }
        match me.batch.pop_or_claim(&me.ring) {
            Some(t) => {
                self.push_quiet(cpu, task);
                Some(t)
            }
            None => Some(task),
        }
    }

    /// Owner: puts what is left of `cpu`'s yield batch back at its ring's tail, where thieves
    /// see it; every owner decision off the yield fast path starts with this (see
    /// [`YieldBatch`]).
    #[inline(always)]
    fn flush_batch(&self, cpu: usize) {
        if !self.cpus[cpu].batch.is_empty() {
            self.flush_batch_slow(cpu);
        }
    }

    #[cold]
    #[inline(never)]
    fn flush_batch_slow(&self, cpu: usize) {
        while let Some(t) = self.cpus[cpu].batch.pop() {
            self.push_quiet(cpu, t);
        }
    }

    /// `push_local` without waking anyone (the caller knows no new work appeared).
    #[inline(always)]
    fn push_quiet(&self, cpu: usize, task: T) {
        let me = &self.cpus[cpu];
        // The common case inline (a non-inlined call takes the task through memory, and a
        // 16-byte load of two 8-byte stores misses store forwarding: ~30% of a yield).
        let task = match me.ring.push(task) {
            Ok(()) => {
                // Wakes nobody: advertised without a fence (see `crate::summary`).
                self.advertise(cpu);
                if self.config.stats {
                    Self::mark_waiting(&me.waiting_since_ns, self.platform.now_ns());
                }
                return;
            }
            Err(t) => t,
        };
        let mut overflow = Vec::new();
        if me.ring.push_overflow(task, &mut overflow) > 0 {
            let node = self.idle.node_of(cpu);
            self.injectors[self.node_injector(node)].push_batch(&mut overflow);
            // Overflow does make work visible elsewhere: let an idle CPU help.
            self.notify(node, true);
        }
        self.advertise(cpu);
        if self.config.stats {
            Self::mark_waiting(&me.waiting_since_ns, self.platform.now_ns());
        }
    }

    /// Puts `task` on CPU `target` (its inbox) and wakes it if it sleeps.
    fn place_on(&self, from: Option<usize>, target: usize, task: T, reason: WakeReason) {
        let t = &self.cpus[target];
        t.inbox.push(task);
        if self.config.stats {
            Self::mark_waiting(&t.waiting_since_ns, self.platform.now_ns());
        }
        add(&self.counters_of(from).wakes[reason.index()], 1);
        self.observer.placed(from, target, reason);
        fence(Ordering::SeqCst);
        if self.idle.claim(target) {
            // Waking: thieves leave its inbox alone, so it is not advertised (a probe there
            // would fail); the owner takes it when it wakes.
            t.waking.store(true, Ordering::Relaxed);
            self.platform.unpark(target);
        } else {
            // The target is busy: let a searcher or an idle neighbour pick it up if it waits
            // (advertised before the sleepers are read, see `crate::summary`).
            self.advertise(target);
            self.notify_fenced(self.idle.node_of(target), self.remote_may_help(target));
        }
    }

    /// A blocked task became runnable; place it by the policy's wake placement.
    pub fn wake(&self, task: T) {
        let waker = self.platform.current_cpu();
        match self.wake_policy {
            WakePolicy::Shared => {
                add(
                    &self.counters_of(waker).wakes[WakeReason::Queued.index()],
                    1,
                );
                self.push_injector(waker, 0, task);
                self.notify(waker.map_or(0, |c| self.idle.node_of(c)), true);
            }
            WakePolicy::Pinned => {
                let target = task.last_cpu().or(waker).unwrap_or(0);
                if Some(target) == waker {
                    self.wake_local(target, task);
                } else {
                    self.place_on(waker, target, task, WakeReason::LastCpu);
                }
            }
            WakePolicy::Local => match waker {
                Some(w) => self.wake_local(w, task),
                None => self.wake_queued(None, task),
            },
            WakePolicy::NearLast => self.wake_near_last(waker, task),
        }
    }

    fn wake_local(&self, cpu: usize, task: T) {
        let me = &self.cpus[cpu];
        // Only CPU `cpu`'s own thread wakes locally: its counter, no read-modify-write.
        bump(&me.counters.wakes[WakeReason::Local.index()], 1);
        self.observer.placed(Some(cpu), cpu, WakeReason::Local);
        // No clock read on this path: the first thief to look stamps the task (see NextSlot).
        if let Some(displaced) = me.next.put_unstamped(task) {
            self.push_local(cpu, displaced);
        } else {
            // Wakes nobody: advertised without a fence (see `crate::summary`).
            self.advertise(cpu);
        }
        if self.config.stats {
            Self::mark_waiting(&me.waiting_since_ns, self.platform.now_ns());
        }
        // No idle CPU is woken for the next slot: no other CPU may take the task within the
        // grace period, and this CPU runs it as soon as the waker blocks or yields (a spawn
        // followed by a join, a ping-pong). Waking one would only have it search, find the task
        // too fresh, and sleep again, bouncing the idle bitmaps and the park token between CPUs
        // on every wake. A task left there past its grace period is picked up by an idle CPU
        // that saw it when it went to sleep (`park` sleeps until the grace period ends, see
        // `stranded_recheck_ns`) or by the next searcher; otherwise it runs when this CPU next
        // schedules (the waker's current task blocks, yields or ends).
    }

    /// For `cpu`, about to sleep: the earliest moment a task now waiting in another CPU's next
    /// slot becomes stealable, so a sleeping CPU wakes to take a task its busy owner left there.
    /// A task no thief has stamped yet counts from now; the CPU that wakes for it stamps it and
    /// sleeps until then, so such a task waits at most about two grace periods. `None` when no next slot
    /// holds a task or the policy does not steal. Reads each CPU's slot without locking.
    pub fn stranded_recheck_ns(&self, cpu: usize) -> Option<u64> {
        if !self.steals || self.shared() {
            return None;
        }
        let me = &self.cpus[cpu];
        // `prepare_park`'s re-check just walked the same summary bits and kept the answer.
        if me.recheck_cached.load(Ordering::Relaxed) {
            me.recheck_cached.store(false, Ordering::Relaxed);
            let at = me.recheck_at_ns.load(Ordering::Relaxed);
            return (at != u64::MAX).then_some(at);
        }
        let mut walk = self.recheck_walk(cpu, self.platform.now_ns());
        let mut earliest: Option<u64> = None;
        let visit = |c: usize| {
            if let Some(t) = self.recheck_at(&mut walk, c) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            false
        };
        // As `any_stealable` walks: other nodes' CPUs by their backlog bits when aiming.
        if self.aims {
            self.work.any_loaded_near(self.idle.node_of(cpu), visit);
        } else {
            self.work.any_loaded(visit);
        }
        earliest
    }

    /// The per-walk constants of [`Scheduler::recheck_at`] for `cpu` about to sleep at `now`.
    fn recheck_walk(&self, cpu: usize, now: u64) -> RecheckWalk {
        // A busy neighbour whose next slot is occupied whenever we look (a spawn loop) is
        // making progress: back off, so an idle CPU does not wake every grace period for
        // nothing. The bound keeps the longest strand short. Only `cpu` changes its backoff, so
        // it is read once per walk.
        let shift = self.cpus[cpu]
            .recheck_backoff
            .load(Ordering::Relaxed)
            .min(RECHECK_BACKOFF_MAX);
        RecheckWalk {
            cpu,
            node: self.idle.node_of(cpu),
            now,
            remote_min: self.remote_min(),
            next_grace_ns: self.config.next_slot_grace_ns << shift,
            remote_grace_ns: self.config.remote_grace_ns << shift,
            memo: NodeMemo::default(),
        }
    }

    /// For `w.cpu` about to sleep, when loaded CPU `c`'s work becomes stealable by it, if it is
    /// waiting for that: a task in `c`'s next slot (after the grace period) or, for an aiming
    /// policy, a remote ring the search declined because its backlog was younger than
    /// `remote_grace_ns` on a node with no idle CPU. Backed off per `recheck_backoff`.
    #[inline]
    fn recheck_at(&self, w: &mut RecheckWalk, c: usize) -> Option<u64> {
        if c == w.cpu {
            return None;
        }
        let q = &self.cpus[c];
        if let Some(since) = q.next.occupied_since_ns(w.now) {
            return Some(since.saturating_add(w.next_grace_ns));
        }
        let node = self.idle.node_of(c);
        (self.aims && node != w.node && q.ring.len() >= w.remote_min && !w.memo.idle(self, node))
            .then(|| {
                q.loaded_since_ns
                    .load(Ordering::Relaxed)
                    .saturating_add(w.remote_grace_ns)
            })
    }

    fn wake_queued(&self, waker: Option<usize>, task: T) {
        let node = task
            .home_node()
            .or(task.last_cpu().map(|c| self.topo.node_of(c)))
            .unwrap_or(0);
        add(
            &self.counters_of(waker).wakes[WakeReason::Queued.index()],
            1,
        );
        self.push_injector(waker, node, task);
        self.notify(node, true);
    }

    fn wake_near_last(&self, waker: Option<usize>, task: T) {
        let last = task.last_cpu().filter(|&c| c < self.cpus.len());
        if let (Some(w), Some(l)) = (waker, last)
            && w == l
        {
            return self.wake_local(w, task);
        }
        // On a busy machine nobody sleeps: one load instead of the bitmaps of the last CPU,
        // its LLC and its node.
        let sleepers = self.idle.maybe_sleepers();
        if let Some(l) = last
            && sleepers
        {
            if self.idle.claim(l) {
                return self.place_claimed(waker, l, task, WakeReason::LastCpu);
            }
            if let Some(llc) = self.topo.llc_of(l)
                && let Some(c) = self.idle.claim_among(&self.topo.caches()[llc].pus)
            {
                return self.place_claimed(waker, c, task, WakeReason::Llc);
            }
        }
        let node = task
            .home_node()
            .or(last.map(|l| self.topo.node_of(l)))
            .or(waker.map(|w| self.topo.node_of(w)));
        if let Some(node) = node.filter(|&n| n < self.topo.num_nodes()) {
            if sleepers && let Some(c) = self.idle.claim_any(node) {
                return self.place_claimed(waker, c, task, WakeReason::Node);
            }
            // Nobody idle near its last CPU or on its node: the waker's next slot, whatever the
            // waker's node. The node's injector instead would leave it behind the node's busy
            // rings until a CPU there checks the injector (every `injector_interval_ticks`
            // decisions): found by the simulator as the join critical path of fork-join, woken
            // parents waiting ~0.4-1 ms (`epyc-2s-nps4` 2.5 ms against 1.2 ms for `random`,
            // `ring-1024` 7.2 ms against 1.0 ms). The next slot is stealable after its grace
            // period, so the task's own node can still take it back.
            if let Some(w) = waker {
                return self.wake_local(w, task);
            }
        } else if let Some(w) = waker {
            return self.wake_local(w, task);
        }
        self.wake_queued(waker, task)
    }

    /// Places on a CPU already claimed from the sleeper bitmaps and unparks it.
    fn place_claimed(&self, from: Option<usize>, target: usize, task: T, reason: WakeReason) {
        let t = &self.cpus[target];
        t.waking.store(true, Ordering::Relaxed);
        // Not advertised: a waking CPU's inbox is its own (see `place_on`).
        t.inbox.push(task);
        if self.config.stats {
            Self::mark_waiting(&t.waiting_since_ns, self.platform.now_ns());
        }
        add(&self.counters_of(from).wakes[reason.index()], 1);
        self.observer.placed(from, target, reason);
        self.platform.unpark(target);
    }

    /// Wakes one sleeping CPU near `node` if no CPU is searching: the caller just queued work.
    fn notify(&self, node: usize, remote_ok: bool) {
        fence(Ordering::SeqCst);
        self.notify_fenced(node, remote_ok);
    }

    /// [`Scheduler::notify`] for a caller that has issued the SeqCst fence after its push.
    ///
    /// `remote_ok`: whether a CPU of another node may be woken when `node` has no sleeper. A
    /// caller says no when the work it queued is not work another node's CPU would take (see
    /// [`Scheduler::remote_may_help`]).
    fn notify_fenced(&self, node: usize, remote_ok: bool) {
        // Nobody to wake (Go's `npidle == 0`), or a searcher will find the work.
        if !self.idle.maybe_sleepers() || self.idle.searching_total() > 0 {
            return;
        }
        if let Some(c) = self.idle.claim_any(node) {
            self.platform.unpark(c);
            return;
        }
        if !remote_ok || (!self.steals && !self.shared()) {
            return;
        }
        for &other in self.nodes_by_distance[node].iter() {
            if let Some(c) = self.idle.claim_any(other) {
                self.platform.unpark(c);
                return;
            }
        }
    }

    /// The next task for `cpu` to run (called by `cpu`'s owner), or `None`: then call
    /// [`Scheduler::park`].
    pub fn next_task(&self, cpu: usize) -> Option<T> {
        self.flush_batch(cpu);
        let me = &self.cpus[cpu];
        if me.waking.load(Ordering::Relaxed) {
            me.waking.store(false, Ordering::Relaxed);
        }
        // Counts up to the interval and restarts (no division on the fast path).
        let tick = me.tick.load(Ordering::Relaxed) + 1;
        let tick = if tick >= self.config.injector_interval_ticks {
            0
        } else {
            tick
        };
        me.tick.store(tick, Ordering::Relaxed);
        let node = self.idle.node_of(cpu);
        if self.shared() {
            // One shared FIFO: take one task at a time, never batch into a private ring.
            let t = self.injectors[0].pop()?;
            bump(&me.counters.injector_pops, 1);
            self.observer.injector(cpu, None, false, 1);
            return Some(self.took(cpu, t));
        }
        if tick == 0
            && let Some(t) = me.inbox.pop().or_else(|| self.pop_injector(cpu, node))
        {
            return Some(self.took(cpu, t));
        }
        let streak = me.streak.load(Ordering::Relaxed);
        if streak < self.config.next_streak_max {
            if let Some(t) = me.next.take() {
                me.streak.store(streak + 1, Ordering::Relaxed);
                bump(&me.counters.next_slot_runs, 1);
                return Some(self.took(cpu, t));
            }
        } else if let Some(t) = me.next.take() {
            // The streak is used up: the next-slot task waits its turn at the back of the ring.
            let mut overflow = Vec::new();
            if me.ring.push_overflow(t, &mut overflow) > 0 {
                self.injectors[self.node_injector(node)].push_batch(&mut overflow);
            }
        }
        me.streak.store(0, Ordering::Relaxed);
        if let Some(t) = me
            .ring
            .pop()
            .or_else(|| me.inbox.pop())
            .or_else(|| self.pop_injector(cpu, node))
        {
            return Some(self.took(cpu, t));
        }
        if !self.steals || !self.idle.begin_search(cpu) {
            return None;
        }
        let found = self.steal(cpu);
        if self.idle.end_search(cpu) && found.is_some() {
            // The last searcher found work: there may be more, so bring in another searcher,
            // from another node too when this one has no sleeper (as Go's `wakep`: pushes made
            // while this search ran woke nobody). Limiting that to a surplus on this CPU
            // (`remote_may_help`) saved 4% of the simulator's instructions but raised
            // `epyc-2s-nps4` memory-bound latency (p99.9 21.4 -> 27.5 us), so it is not done.
            self.notify(node, true);
        }
        found.map(|t| self.took(cpu, t))
    }

    /// Owner: takes the task waiting in `cpu`'s next slot if `pred` accepts it; for a host that
    /// runs it at once instead of through [`Scheduler::next_task`] (the runtime's join of a
    /// child that has not started yet runs the child inline). Counted as a next-slot run.
    pub fn take_next_if(&self, cpu: usize, pred: impl FnOnce(&T) -> bool) -> Option<T> {
        let me = &self.cpus[cpu];
        let t = me.next.take_if(pred)?;
        bump(&me.counters.next_slot_runs, 1);
        Some(self.took(cpu, t))
    }

    #[inline(always)]
    fn took(&self, cpu: usize, t: T) -> T {
        let me = &self.cpus[cpu];
        // Re-asserts the summary bit a racing retract may have cleared after a push that wakes
        // nobody (the bounded exception in `crate::summary`). The owner does not take its bit
        // back here when it runs its last queued task: that costs a read-modify-write and a
        // fence per hand-off in a ping-pong or a spawn + join (measured: 57 -> 88 ns per
        // same-core ping-pong round trip, 75 -> 96 ns per spawn + join); a thief that finds
        // the CPU empty, or the CPU itself when it starts searching, clears it instead. Only
        // the ring is re-asserted: a task in the next slot is what this CPU runs at its next
        // decision anyway (or moves to its ring first), and `NextSlot::is_occupied` takes the
        // slot's lock.
        if !me.ring.is_empty() {
            self.advertise(cpu);
        }
        if self.config.stats && me.ring.is_empty() && me.inbox.is_empty() && !me.next.is_occupied()
        {
            me.waiting_since_ns.store(0, Ordering::Relaxed);
        }
        t
    }

    fn pop_injector(&self, cpu: usize, node: usize) -> Option<T> {
        let node = self.node_injector(node);
        let inj = &self.injectors[node];
        let t = inj.pop_batch_into(&self.cpus[cpu].ring, self.config.injector_batch_max)?;
        bump(&self.cpus[cpu].counters.injector_pops, 1);
        self.observer.injector(cpu, Some(node), false, 1);
        if self.config.stats && inj.is_empty() {
            self.injector_since_ns[node].store(0, Ordering::Relaxed);
        }
        Some(t)
    }

    fn steal(&self, cpu: usize) -> Option<T> {
        let me = &self.cpus[cpu];
        // This CPU found its own queues empty: take its bit back so thieves do not aim here.
        if self.work.may_hold(cpu) {
            self.retract_probe(cpu);
        }
        let now = self.platform.now_ns();
        let (mins, batches) = (&self.steal_min, &self.steal_batch);
        let mut found = None;
        // Remote nodes (the first 64) this search found with idle CPUs: their other CPUs are
        // declined without looking again.
        let mut idle_nodes = 0u64;
        // ... and those it found with none (their idle state is not read again).
        let mut busy_nodes = 0u64;
        // Aiming policies: the node's remote horizon (see `NodeHorizon`): before it, the
        // search ends at the first remote victim; otherwise the earliest moment a remote
        // backlog this search declines comes of age.
        let horizon_of_node = &self.horizons[self.idle.node_of(cpu)].after_ns;
        let remote_after = if self.aims {
            horizon_of_node.load(Ordering::Relaxed)
        } else {
            0
        };
        let mut horizon = u64::MAX;
        self.policy.for_each_loaded_victim(
            &self.topo,
            cpu,
            &me.rng,
            &self.work,
            &mut |victim, tier| {
                if victim == cpu {
                    return false;
                }
                if self.skip_sleeping && self.idle.is_sleeping(victim) {
                    // Asleep, so empty: not probed (read from the sleeper bitmap, a word per
                    // 64 CPUs, as Go's thieves read `idlepMask`).
                    return false;
                }
                let v = &self.cpus[victim];
                let k = tier.index();
                if tier == TierKind::Remote && self.aims {
                    if now < remote_after {
                        // Remote tiers come last in the steal order: skip them all.
                        return true;
                    }
                    let node = self.idle.node_of(victim);
                    let bit = if node < 64 { 1u64 << node } else { 0 };
                    if idle_nodes & bit != 0 {
                        return false;
                    }
                    // A node seen busy stays busy for the rest of this search as far as it
                    // can tell (a snapshot either way): not read again.
                    let node_idle = busy_nodes & bit == 0 && self.remote_node_idle(victim);
                    if node_idle {
                        idle_nodes |= bit;
                    } else {
                        busy_nodes |= bit;
                    }
                    let ripe_at = if node_idle {
                        now.saturating_add(self.config.remote_grace_ns)
                    } else {
                        self.remote_ripe_at(victim)
                    };
                    if ripe_at > now {
                        // Its node has CPUs asleep or searching (they take it, near its
                        // memory), or its work is younger than `remote_grace_ns`. Looking costs
                        // what a failed probe does (a line of the victim's node).
                        horizon = horizon.min(ripe_at);
                        bump(&me.counters.steal_probes_empty, 1);
                        self.observer.steal(cpu, victim, tier, 0);
                        return false;
                    }
                }
                let len = v.ring.len();
                if len >= mins[k] {
                    let n = v.ring.steal_half_into(&me.ring, batches[k]);
                    if n > 0 {
                        self.record_steal(cpu, victim, tier, n);
                        found = me.ring.pop();
                        return found.is_some();
                    }
                }
                // An aiming thief holds a remote inbox to the remote minimum too (tasks placed on
                // a CPU of their node: found by the simulator, aimed thieves otherwise took
                // memory-bound arrivals across nodes, 3% -> 19% remote memory).
                if !v.waking.load(Ordering::Relaxed)
                    && (!self.aims || tier != TierKind::Remote || v.inbox.len() >= mins[k])
                    && let Some(t) = v.inbox.pop()
                {
                    self.record_steal(cpu, victim, tier, 1);
                    found = Some(t);
                    return true;
                }
                if let Some(t) = v.next.steal(now, self.config.next_slot_grace_ns) {
                    me.recheck_backoff.store(0, Ordering::Relaxed);
                    bump(&me.counters.next_slot_stolen, 1);
                    self.record_steal(cpu, victim, tier, 1);
                    found = Some(t);
                    return true;
                }
                bump(&me.counters.steal_probes_empty, 1);
                self.observer.steal(cpu, victim, tier, 0);
                if len == 0 && self.work.may_hold(victim) {
                    self.retract_probe(victim);
                }
                if tier == TierKind::Remote {
                    // Found through its backlog bit and nothing to take: clear it if stale.
                    self.retract_backlog_probe(victim);
                }
                false
            },
        );
        if found.is_none() && horizon != u64::MAX {
            horizon_of_node.store(horizon, Ordering::Relaxed);
        }
        if found.is_none() && self.takes_remote_injectors && !self.one_injector {
            let node = self.idle.node_of(cpu);
            for &other in self.nodes_by_distance[node].iter() {
                // One load per empty injector (the common case), no call.
                if !self.injectors[other].is_empty()
                    && let Some(t) = self.pop_injector(cpu, other)
                {
                    return Some(t);
                }
            }
        }
        found
    }

    /// Whether a CPU of another node could take some of `cpu`'s queued work (a snapshot): always
    /// for policies that do not aim; for aiming ones only when `cpu`'s ring and inbox hold the
    /// remote minimum, since an aiming thief leaves less to `cpu`'s node (and neither counts
    /// for a sleeper's re-check). Waking a CPU of another node for less only has it search,
    /// decline and sleep again (found by the simulator: on `epyc-2s-nps4`'s server, 96 k of
    /// 107 k unparks went to other nodes, 41 k of them ending with nothing to run).
    fn remote_may_help(&self, cpu: usize) -> bool {
        if !self.aims {
            return true;
        }
        self.queues_hold_remote_min(cpu)
    }

    /// The fewest tasks a thief takes from a CPU of another node (at least 1).
    #[inline]
    fn remote_min(&self) -> usize {
        self.steal_min[TierKind::Remote.index()].max(1)
    }

    /// Whether `cpu`'s ring and inbox hold [`Scheduler::remote_min`] tasks (a snapshot).
    #[inline]
    fn queues_hold_remote_min(&self, cpu: usize) -> bool {
        let q = &self.cpus[cpu];
        q.ring.len() + q.inbox.len() >= self.remote_min()
    }

    /// Whether `victim`'s node has a CPU asleep or searching (a snapshot): an aiming thief on
    /// another node then leaves `victim`'s work to them, so work stays near its memory while its
    /// own node has room (found by the simulator: aiming at every loaded remote CPU took
    /// memory-bound work on `epyc-2s-nps4` from 3% to 19% remote memory).
    fn remote_node_idle(&self, victim: usize) -> bool {
        let node = self.idle.node_of(victim);
        self.idle.searching(node) > 0 || self.idle.has_sleepers(node)
    }

    /// Whether `victim` has been advertised loaded for at least `remote_grace_ns` (a snapshot):
    /// an aiming thief takes work across nodes only then, as it takes a task from a next slot
    /// only after a grace period. A backlog a saturated node clears within the grace period
    /// stays near its memory (found by the simulator: aiming at every loaded remote CPU took
    /// memory-bound work on `epyc-2s-nps4` from 3% to 19% remote memory); a backlog that lasts
    /// (a fork-join's ramp on a big machine) is taken.
    fn remote_aged(&self, victim: usize, now_ns: u64) -> bool {
        self.remote_ripe_at(victim) <= now_ns
    }

    /// When `victim`'s backlog will have been advertised for `remote_grace_ns` (a snapshot).
    fn remote_ripe_at(&self, victim: usize) -> u64 {
        let since = self.cpus[victim].loaded_since_ns.load(Ordering::Relaxed);
        since.saturating_add(self.config.remote_grace_ns)
    }

    /// Whether `cpu`'s work-summary bit is set (tests of the summary protocol).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn summary_says_loaded(&self, cpu: usize) -> bool {
        self.work.may_hold(cpu)
    }

    /// [`Scheduler::advertise`] out of line, for a caller that saw the bit clear.
    #[cold]
    #[inline(never)]
    fn advertise_cold(&self, cpu: usize) {
        self.advertise(cpu);
    }

    /// Sets `cpu`'s summary bit (see [`WorkSummary::advertise`]); for an aiming policy, stamps
    /// when it became loaded first (a clock read on the transition only).
    #[inline(always)]
    fn advertise(&self, cpu: usize) {
        // One Relaxed load on the common path (the bit already set).
        if !self.work.may_hold(cpu) {
            if self.aims {
                self.cpus[cpu]
                    .loaded_since_ns
                    .store(self.platform.now_ns(), Ordering::Relaxed);
            }
            self.work.advertise(cpu);
        }
        // Aiming policies: the backlog bit too (one more load once it is set).
        if self.aims && !self.work.may_hold_in(cpu, Bits::Backlog) && self.holds_backlog(cpu) {
            self.work.advertise_backlog(cpu);
        }
    }

    /// Whether `cpu` holds what a thief of another node may take (a snapshot, lock-free):
    /// the remote minimum in its ring and inbox, or a task in its next slot.
    #[inline]
    fn holds_backlog(&self, cpu: usize) -> bool {
        self.queues_hold_remote_min(cpu) || self.cpus[cpu].next.occupied_since_ns(0).is_some()
    }

    /// Aiming policies: `cpu`'s backlog bit is set but it holds less: clear the bit, fence,
    /// re-probe, and set it again if the backlog is back (see "Backlog bits" in
    /// `crate::summary`).
    fn retract_backlog_probe(&self, cpu: usize) {
        if self.aims && self.work.may_hold_in(cpu, Bits::Backlog) && !self.holds_backlog(cpu) {
            self.work.retract_backlog(cpu);
            if self.holds_backlog(cpu) {
                self.work.advertise_backlog(cpu);
            }
        }
    }

    /// Whether `cpu`'s ring, inbox or next slot holds a task (a snapshot).
    fn holds_work(&self, cpu: usize) -> bool {
        let q = &self.cpus[cpu];
        !q.ring.is_empty() || !q.inbox.is_empty() || q.next.is_occupied()
    }

    /// `cpu` looked empty: clear its summary bit, fence, re-probe, and set the bit again if
    /// work arrived meanwhile (the retract half of the protocol in `crate::summary`).
    ///
    /// Work found by the re-probe was hidden while the bit was clear: a CPU may have re-checked
    /// the summary then and gone to sleep, and the pusher may have left the waking to a
    /// searcher (this one). So the bit is set again and then one sleeper of `cpu`'s node is
    /// woken, whatever the searcher count (found by the loom model `summary_no_lost_wakeup`:
    /// without the wake-up, that sleeper stayed asleep with the task queued).
    ///
    /// Returns whether it found such work (only then did it wake anyone).
    fn retract_probe(&self, cpu: usize) -> bool {
        if !self.holds_work(cpu) {
            self.work.retract(cpu);
            self.retract_backlog_probe(cpu);
            if self.holds_work(cpu) {
                self.advertise(cpu);
                if let Some(c) = self.idle.claim_any(self.idle.node_of(cpu)) {
                    self.platform.unpark(c);
                }
                return true;
            }
        }
        false
    }

    fn record_steal(&self, cpu: usize, victim: usize, tier: TierKind, n: usize) {
        // A remote steal is what a timed park for a remote backlog waits for (as a next-slot
        // steal is for a next slot's task): the next such park does not back off.
        if tier == TierKind::Remote {
            self.cpus[cpu].recheck_backoff.store(0, Ordering::Relaxed);
        }
        let c = &self.cpus[cpu].counters;
        bump(&c.steals[tier.index()], 1);
        bump(&c.stolen_tasks[tier.index()], n as u64);
        self.observer.steal(cpu, victim, tier, n);
    }

    /// Whether `cpu` has work it could take without stealing, or any injector holds work it may
    /// take.
    fn has_work_for(&self, cpu: usize) -> bool {
        let me = &self.cpus[cpu];
        if !me.ring.is_empty() || !me.inbox.is_empty() || me.next.is_occupied() {
            return true;
        }
        let node = self.node_injector(self.idle.node_of(cpu));
        if !self.injectors[node].is_empty() {
            return true;
        }
        self.takes_remote_injectors && self.injectors.iter().any(|i| !i.is_empty())
    }

    /// Whether any CPU's queues hold stealable work (the machine's last searcher checks this
    /// before sleeping, so work pushed while everyone searched is not left behind).
    ///
    /// Counts only work `cpu` would take: a remote ring must hold the policy's remote minimum,
    /// otherwise a CPU would be refused sleep for work it then declines to steal (found by the
    /// simulator: thousands of futile wake-search cycles).
    ///
    /// Reads the work summary: only CPUs whose bit is set are looked at (O(P/64 + loaded CPUs),
    /// was O(P)). A push that wakes someone advertises before it reads the sleeper bitmaps, so
    /// a CPU that announced sleep before this scan either sees the bit here or is woken by the
    /// pusher (`crate::summary`).
    ///
    /// When it finds nothing, it leaves the answer [`Scheduler::stranded_recheck_ns`] would
    /// compute from the same bits for the park that follows (one walk instead of two).
    fn any_stealable(&self, cpu: usize) -> bool {
        let node = self.topo.node_of(cpu);
        let remote_min = self.remote_min();
        let now = self.platform.now_ns();
        let mut walk = self.recheck_walk(cpu, now);
        // Remote nodes (the first 64) whose backlog was handed to a sleeper of theirs.
        let mut handed = 0u64;
        // Remote nodes (the first 64) found with no sleeper to claim.
        let mut no_sleeper = 0u64;
        let stranded = self.steals && !self.shared();
        let mut earliest: Option<u64> = None;
        // This node's CPUs by their work bits, the others by their backlog bits (an aiming
        // thief takes nothing less from them); every CPU by its work bit otherwise.
        let visit = |c: usize| {
            let q = &self.cpus[c];
            // Lock-free reads first (the next slot's flag, not its lock; `retract_probe`
            // confirms under the lock): most visited CPUs hold something.
            if c != cpu
                && q.ring.is_empty()
                && q.inbox.is_empty()
                && q.next.occupied_since_ns(now).is_none()
                && self.retract_probe(c)
            {
                // A stale bit (its owner runs its last task, or thieves emptied it) is cleared,
                // so the next re-checks skip it, as a thief that found it empty would. Work
                // that arrived meanwhile was advertised again and a sleeper of its node woken
                // (possibly this CPU): this CPU stays up and searches again.
                return true;
            }
            if stranded && let Some(t) = self.recheck_at(&mut walk, c) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            let n = self.idle.node_of(c);
            let local = n == node;
            let min = if local { 1 } else { remote_min };
            let inbox_min = if self.aims { min } else { 1 };
            if !(q.ring.len() >= min
                || (q.inbox.len() >= inbox_min && !q.waking.load(Ordering::Relaxed)))
            {
                if !local && self.aims {
                    // Found through its backlog bit: clear it if the backlog is gone.
                    self.retract_backlog_probe(c);
                }
                return false;
            }
            if local || !self.aims {
                return true;
            }
            // Remote work an aiming search leaves to its own node while that node has idle
            // CPUs: hand it to one of them rather than stay up for it (a searcher there finds
            // it; a sleeper there is woken, once per node). On a saturated node it is this
            // CPU's to take once it has lasted `remote_grace_ns`; younger, this CPU sleeps
            // until then (`stranded_recheck_ns`).
            let bit = if n < 64 { 1u64 << n } else { 0 };
            if handed & bit != 0 || self.idle.searching(n) > 0 {
                return false;
            }
            // A node found with no sleeper to claim is not scanned again in this walk (a
            // snapshot: a CPU of it that announces sleep later re-checks by itself).
            let claimed = if no_sleeper & bit == 0 {
                self.idle.claim_any(n)
            } else {
                None
            };
            match claimed {
                Some(s) => {
                    handed |= bit;
                    self.platform.unpark(s);
                    false
                }
                None => {
                    no_sleeper |= bit;
                    let ripe = self.remote_aged(c, now);
                    if ripe {
                        // A ripe backlog the last search did not look at (the per-tier probe
                        // bound): the search that follows looks across nodes again.
                        self.horizons[node].after_ns.store(0, Ordering::Relaxed);
                    }
                    ripe
                }
            }
        };
        let found = if self.aims {
            self.work.any_loaded_near(node, visit)
        } else {
            self.work.any_loaded(visit)
        };
        if found {
            return true;
        }
        if stranded {
            let me = &self.cpus[cpu];
            me.recheck_at_ns
                .store(earliest.unwrap_or(u64::MAX), Ordering::Relaxed);
            me.recheck_cached.store(true, Ordering::Relaxed);
        }
        false
    }

    /// `cpu` found nothing: announce sleep, re-check, and park through the platform until woken
    /// or `deadline_ns`. Returns whether it actually parked (false: work appeared meanwhile).
    ///
    /// This is [`Scheduler::prepare_park`], the platform's blocking `park` (until `deadline_ns`
    /// or, if sooner, [`Scheduler::stranded_recheck_ns`]), then [`Scheduler::finish_park`]. A host whose park cannot block (a simulator, a kernel that
    /// switches to its idle thread) calls the two halves itself.
    pub fn park(&self, cpu: usize, deadline_ns: Option<u64>) -> bool {
        if !self.prepare_park(cpu) {
            return false;
        }
        // After announcing: a task left in a next slot before then is seen here.
        let recheck = self.stranded_recheck_ns(cpu);
        let deadline_ns = match (deadline_ns, recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if recheck.is_some() {
            self.note_timed_park(cpu);
        }
        self.platform.park(cpu, deadline_ns);
        self.finish_park(cpu);
        true
    }

    /// First half of parking: announces `cpu` asleep and re-checks for work. Returns `true` when
    /// the CPU should now sleep until the scheduler calls `Platform::unpark(cpu)` (or a deadline
    /// of the host's choosing); `false` when work appeared and the CPU should call
    /// [`Scheduler::next_task`] again.
    pub fn prepare_park(&self, cpu: usize) -> bool {
        // Never sleep holding hidden tasks (normally empty already: `next_task` flushed it).
        self.flush_batch(cpu);
        self.observer.idle(cpu);
        self.idle.announce_sleep(cpu);
        fence(Ordering::SeqCst);
        self.cpus[cpu]
            .recheck_cached
            .store(false, Ordering::Relaxed);
        let recheck = self.has_work_for(cpu)
            || (self.steals && self.idle.searching_total() == 0 && self.any_stealable(cpu));
        if recheck {
            // Cancel; if someone claimed us meanwhile, their unpark leaves a token that makes a
            // later park return at once: harmless.
            self.idle.cancel_sleep(cpu);
            self.observer.busy(cpu);
            return false;
        }
        bump(&self.cpus[cpu].counters.parks, 1);
        true
    }

    /// `cpu` is about to sleep until the time [`Scheduler::stranded_recheck_ns`] returned: the
    /// next such sleep doubles (up to 2^8 grace periods) unless this CPU steals a next-slot task
    /// meanwhile. [`Scheduler::park`] calls it; a host that parks with the two halves calls it
    /// when it sleeps with that deadline (found by the simulator: without it, an idle CPU
    /// re-checked every grace period while a busy neighbour kept its next slot occupied).
    pub fn note_timed_park(&self, cpu: usize) {
        let backoff = &self.cpus[cpu].recheck_backoff;
        backoff.store(backoff.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Second half of parking: `cpu` woke (unparked, deadline, or spuriously).
    pub fn finish_park(&self, cpu: usize) {
        self.idle.cancel_sleep(cpu);
        self.observer.busy(cpu);
    }

    /// Periodic balancing for policies that have it: asks the policy which victim `cpu` should
    /// pull from and moves up to that many tasks into `cpu`'s ring. Returns the count moved.
    pub fn balance(&self, cpu: usize) -> usize {
        let load = |c: usize| self.cpus[c].ring.len() + self.cpus[c].inbox.len();
        let Some((victim, max)) = self.policy.balance(&self.topo, cpu, &load) else {
            return 0;
        };
        if victim == cpu || victim >= self.cpus.len() {
            return 0;
        }
        let n = self.cpus[victim]
            .ring
            .steal_half_into(&self.cpus[cpu].ring, max);
        if n > 0 {
            let tier = self
                .topo
                .tier_between(cpu, victim)
                .unwrap_or(TierKind::Remote);
            self.record_steal(cpu, victim, tier, n);
        }
        n
    }

    /// Tasks queued on `cpu` (ring, yield batch, inbox, next slot).
    pub fn queued_on(&self, cpu: usize) -> usize {
        let c = &self.cpus[cpu];
        c.ring.len() + c.batch.len() + c.inbox.len() + usize::from(c.next.is_occupied())
    }

    /// Tasks queued anywhere (a snapshot).
    pub fn queued(&self) -> usize {
        (0..self.cpus.len())
            .map(|c| self.queued_on(c))
            .sum::<usize>()
            + self.injectors.iter().map(Injector::len).sum::<usize>()
    }

    /// Whether `cpu` is announced asleep.
    pub fn is_sleeping(&self, cpu: usize) -> bool {
        self.idle.is_sleeping(cpu)
    }

    /// Stats mode: one sample of the wasted-core checker at time `now_ns`. Adds the time since
    /// the previous sample when a CPU sleeps while some queue's oldest task has waited longer
    /// than the threshold. Returns whether this sample counted as wasted.
    pub fn sample_wasted(&self, now_ns: u64) -> bool {
        let prev = self.last_sample_ns.swap(now_ns, Ordering::Relaxed);
        if !self.config.stats || prev == 0 {
            return false;
        }
        let threshold = self.config.wasted_threshold_ns;
        let old = |since: &AtomicU64| {
            let s = since.load(Ordering::Relaxed);
            s != 0 && now_ns.saturating_sub(s) > threshold
        };
        let someone_sleeps = (0..self.topo.num_nodes()).any(|n| self.idle.has_sleepers(n));
        let waiting = self.cpus.iter().any(|c| {
            old(&c.waiting_since_ns)
                && !(c.ring.is_empty()
                    && c.batch.is_empty()
                    && c.inbox.is_empty()
                    && !c.next.is_occupied())
        }) || self
            .injector_since_ns
            .iter()
            .zip(self.injectors.iter())
            .any(|(s, i)| old(s) && !i.is_empty());
        let wasted = someone_sleeps && waiting;
        if wasted {
            self.wasted_ns
                .fetch_add(now_ns.saturating_sub(prev), Ordering::Relaxed);
        }
        wasted
    }

    /// All counters, summed over CPUs.
    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for cpu in self.cpus.iter() {
            cpu.counters.add_into(&mut c);
        }
        self.external.add_into(&mut c);
        c.wasted_core_ns = self.wasted_ns.load(Ordering::Relaxed);
        c
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use alloc::vec::Vec;

    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::*;

    /// park/unpark with loom's token-semantics thread parking.
    struct LoomPlatform {
        threads: Mutex<Vec<Option<thread::Thread>>>,
    }

    impl Platform for LoomPlatform {
        fn current_cpu(&self) -> Option<usize> {
            None
        }
        fn now_ns(&self) -> u64 {
            0
        }
        fn park(&self, _cpu: usize, _deadline: Option<u64>) {
            thread::park();
        }
        fn unpark(&self, cpu: usize) {
            if let Some(t) = &self.threads.lock().unwrap()[cpu] {
                t.unpark();
            }
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Job(u32);
    impl Task for Job {}

    /// CPU 1's owner on its own thread: picks a task, parks when it finds none, returns the
    /// first task it gets. Registered with the platform so unparks reach it.
    fn cpu1_runs_one_task(s: &Arc<Scheduler<Job, LoomPlatform>>) -> thread::JoinHandle<Job> {
        let s1 = s.clone();
        let cpu1 = thread::spawn(move || {
            loop {
                if let Some(job) = s1.next_task(1) {
                    return job;
                }
                s1.park(1, None);
            }
        });
        s.platform().threads.lock().unwrap()[1] = Some(cpu1.thread().clone());
        cpu1
    }

    /// A two-CPU scheduler with the topology policy on loom's parking platform.
    fn two_cpus() -> Arc<Scheduler<Job, LoomPlatform>> {
        let topo = Topology::from_synthetic("pack:1 core:2 pu:1").unwrap();
        let platform = LoomPlatform {
            threads: Mutex::new(alloc::vec![None, None]),
        };
        Arc::new(Scheduler::new(topo, platform))
    }

    /// An external thread spawns a task while CPU 1 is deciding to sleep: whatever the
    /// interleaving, CPU 1 runs the task (a lost wakeup would leave it parked forever, which loom
    /// reports as a deadlock). Preemption bound 2: enough to interleave the announce/re-check of
    /// the sleeper with the push/fence/claim of the waker.
    #[test]
    fn park_unpark_no_lost_wakeup() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let s = two_cpus();
            let cpu1 = cpu1_runs_one_task(&s);
            s.spawn(Job(7), SpawnHint::default());
            assert_eq!(cpu1.join().unwrap(), Job(7));
        });
    }

    /// The work summary's set / clear / re-probe protocol against parking: CPU 0's owner pushes
    /// a task on its ring while a thief, having found CPU 0 empty, retracts CPU 0's (stale) bit,
    /// and CPU 1 searches with the summary and goes to sleep. Whatever the interleaving, CPU 1
    /// gets the task: the summary never ends up hiding published work from a CPU that then
    /// sleeps unwoken (loom reports a parked-forever CPU 1 as a deadlock).
    #[test]
    fn summary_no_lost_wakeup() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let s = two_cpus();
            // A stale bit: CPU 0 is advertised but holds nothing yet.
            s.work.advertise(0);
            let cpu1 = cpu1_runs_one_task(&s);
            let s0 = s.clone();
            let owner0 = thread::spawn(move || s0.push_local(0, Job(9)));
            // The thief that found CPU 0 empty.
            let _ = s.retract_probe(0);
            owner0.join().unwrap();
            assert_eq!(cpu1.join().unwrap(), Job(9));
        });
    }
}
