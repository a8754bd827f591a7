//! [`Builder`] and [`Runtime`]: starting pinned workers, spawning, counters, and shutdown.
//!
//! # Shutdown, step by step
//! 1. Wait until every spawned task has finished (the live-task registry is empty), at most until
//!    the deadline.
//! 2. Raise the shutdown flag and unpark every worker; a worker leaves its loop when it finds no
//!    task and sees the flag (the park token makes a wake that races the check harmless).
//! 3. Join every worker that left its loop before the deadline. A worker still running a task
//!    that never returns to it cannot be stopped: it is reported and detached.
//! 4. Tasks still registered (blocked forever, or queued when the workers stopped) are failed
//!    with `JoinError::Abandoned`, so joiners return, and reported by name. Their stacks are
//!    released when the last handle to each task goes away; their frames are never unwound.

use std::boxed::Box;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use std::vec;
use std::vec::Vec;

use manycore_topology::{CpuSet, TierKind, Topology};

use super::overflow::{self, OverflowAction, action_code};
use super::platform::{Parker, RtPlatform};
use super::stacks::RtSource;
use super::task::{DONE, JoinError, JoinHandle, RUNNING, TaskRef, mark_joinable, new_task};
use super::worker::worker_main;
use crate::platform::{Observer, Platform, WakeReason};
use crate::policy::{Policy, TopologyPolicy};
use crate::scheduler::{Config, Scheduler, SpawnHint};
use crate::stack::{MmapSource, NumaMmapSource, STACK_BYTES_DEFAULT, StackPool, StackSource};
use crate::stats::Counters;
use crate::sync::SpinLock;

/// How long dropping a [`Runtime`] that was not shut down waits for its tasks.
pub const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for idle workers to leave their loops once told to, beyond the
/// task deadline.
pub const WORKER_EXIT_GRACE: Duration = Duration::from_millis(500);
/// Smallest usable stack a builder accepts (the task entry, a panic and its message need this).
pub const STACK_BYTES_MIN: usize = 16 * 1024;
/// Largest usable stack a builder accepts.
pub const STACK_BYTES_MAX: usize = 1 << 30;

/// The observer the runtime hands the scheduler: the user's, if any.
pub(crate) struct RtObserver(Option<Box<dyn Observer>>);

impl Observer for RtObserver {
    fn steal(&self, thief: usize, victim: usize, tier: TierKind, count: usize) {
        if let Some(o) = &self.0 {
            o.steal(thief, victim, tier, count);
        }
    }
    fn injector(&self, cpu: usize, node: Option<usize>, push: bool, count: usize) {
        if let Some(o) = &self.0 {
            o.injector(cpu, node, push, count);
        }
    }
    fn placed(&self, waker: Option<usize>, target: usize, reason: WakeReason) {
        if let Some(o) = &self.0 {
            o.placed(waker, target, reason);
        }
    }
    fn idle(&self, cpu: usize) {
        if let Some(o) = &self.0 {
            o.idle(cpu);
        }
    }
    fn busy(&self, cpu: usize) {
        if let Some(o) = &self.0 {
            o.busy(cpu);
        }
    }
}

/// State shared by the runtime handle, its workers and (weakly) its tasks.
pub(crate) struct Shared {
    /// A weak handle to this very allocation, cloned into every task (one count increment per
    /// spawn instead of an upgrade and a downgrade).
    me: Weak<Shared>,
    pub(crate) sched: Scheduler<TaskRef, RtPlatform, RtObserver>,
    pub(crate) stacks: StackPool<RtSource>,
    /// Live tasks, sharded by spawning CPU (the last shard for spawns from other threads).
    /// A task is added by its spawner and removed by the worker that finishes it.
    registry: Box<[SpinLock<Vec<TaskRef>>]>,
    shutdown: AtomicBool,
    /// Per CPU: its worker left its loop (it only has to return from its thread now); with a
    /// condvar for `shutdown`.
    exited: Mutex<Vec<bool>>,
    exited_cv: Condvar,
    /// Numbers the runtime's worker thread names.
    pub(crate) id: usize,
    /// OS CPU of each logical CPU, when workers are pinned.
    pin_os: Option<Vec<usize>>,
    overflow: u8,
    /// Stats mode: CPU 0's worker samples the wasted-core checker.
    pub(crate) stats_sampler: bool,
    /// Whether a join may run a child that has not started inline (`Builder::join_inline`).
    pub(crate) join_inline: bool,
    last_sample_ns: AtomicUsize,
}

/// How often (ns) CPU 0 samples the wasted-core checker in stats mode.
const WASTED_SAMPLE_INTERVAL_NS: u64 = 100_000;

impl Shared {
    pub(crate) fn pin_os_cpu(&self, cpu: usize) -> Option<usize> {
        self.pin_os.as_ref().map(|v| v[cpu])
    }
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
    pub(crate) fn overflow_action_code(&self) -> u8 {
        self.overflow
    }
    pub(crate) fn stack_bytes(&self) -> usize {
        self.stacks.stack_bytes()
    }
    pub(crate) fn worker_exited(&self, cpu: usize) {
        self.exited.lock().unwrap_or_else(|p| p.into_inner())[cpu] = true;
        self.exited_cv.notify_all();
    }
    pub(crate) fn sample_wasted(&self) {
        let now = self.sched.platform().now_ns();
        let last = self.last_sample_ns.load(Ordering::Relaxed) as u64;
        if now.saturating_sub(last) >= WASTED_SAMPLE_INTERVAL_NS {
            self.last_sample_ns.store(now as usize, Ordering::Relaxed);
            self.sched.sample_wasted(now);
        }
    }

    fn register(&self, shard: usize, task: &TaskRef) {
        self.registry[shard].with(|v| {
            task.hdr().registry_slot.store(v.len(), Ordering::Relaxed);
            v.push(task.clone());
        });
    }

    /// Removes a finished task from the registry.
    pub(crate) fn unregister(&self, task: &TaskRef) {
        let hdr = task.hdr();
        let removed = self.registry[hdr.registry_shard].with(|v| {
            let i = hdr.registry_slot.load(Ordering::Relaxed);
            if i >= v.len() || !v[i].same(task) {
                return None; // already removed (abandoned at shutdown)
            }
            let t = v.swap_remove(i);
            if let Some(moved) = v.get(i) {
                moved.hdr().registry_slot.store(i, Ordering::Relaxed);
            }
            Some(t)
        });
        drop(removed); // outside the lock: may free the task
    }

    fn live(&self) -> usize {
        self.registry.iter().map(|s| s.with(|v| v.len())).sum()
    }
}

/// Builds a [`Runtime`].
pub struct Builder {
    topology: Option<Topology>,
    cpus: Option<CpuSet>,
    stack_bytes: usize,
    config: Config,
    policy: Option<Box<dyn Policy>>,
    observer: Option<Box<dyn Observer>>,
    pin: bool,
    overflow: OverflowAction,
    /// `None`: the default for the topology (see `stacks.rs`).
    stack_source: Option<RtSource>,
    join_inline: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            topology: None,
            cpus: None,
            stack_bytes: STACK_BYTES_DEFAULT,
            config: Config::default(),
            policy: None,
            observer: None,
            pin: true,
            overflow: OverflowAction::default(),
            stack_source: None,
            join_inline: true,
        }
    }
}

impl Builder {
    /// A builder for the host topology, every CPU of it, default stacks, the topology policy.
    pub fn new() -> Builder {
        Builder::default()
    }
    /// Runs on this topology instead of the host's (pinning then uses its PUs' OS indices).
    pub fn topology(mut self, t: Topology) -> Builder {
        self.topology = Some(t);
        self
    }
    /// Uses only these CPUs (OS indices).
    pub fn cpus(mut self, set: CpuSet) -> Builder {
        self.cpus = Some(set);
        self
    }
    /// Usable bytes of each task stack (rounded up to pages), between [`STACK_BYTES_MIN`] and
    /// [`STACK_BYTES_MAX`].
    pub fn stack_bytes(mut self, n: usize) -> Builder {
        self.stack_bytes = n;
        self
    }
    /// Scheduler configuration.
    pub fn config(mut self, c: Config) -> Builder {
        self.config = c;
        self
    }
    /// Scheduling policy (default: [`TopologyPolicy`]).
    pub fn policy(mut self, p: Box<dyn Policy>) -> Builder {
        self.policy = Some(p);
        self
    }
    /// An observer of every scheduling decision.
    pub fn observer(mut self, o: impl Observer + 'static) -> Builder {
        self.observer = Some(Box::new(o));
        self
    }
    /// Whether to pin workers to their CPUs (default true; turn off for topologies that do not
    /// describe this host).
    pub fn pin(mut self, pin: bool) -> Builder {
        self.pin = pin;
        self
    }
    /// Gets task stacks from `source` instead of the default (plain `mmap` on one node, `mmap`
    /// bound to the starting CPU's node on several: see [`NumaMmapSource`]). The pool still
    /// recycles them per CPU; [`StackSource::allocate_for`] is told the logical CPU that will
    /// start the task. Stacks without a guard range (an empty [`TaskStack::guard`](crate::stack::TaskStack::guard))
    /// cannot report an overflow.
    pub fn stack_source<S>(mut self, source: S) -> Builder
    where
        S: StackSource + 'static,
        S::Stack: 'static,
    {
        self.stack_source = Some(RtSource::custom(source));
        self
    }

    /// Whether [`JoinHandle::join`] from a task may run the child inline when the child has not
    /// started and waits in the joiner's CPU's next slot (default true). The child then runs on
    /// the joiner's stack, as the joiner, at the moment it would have run anyway (the next slot
    /// runs as soon as the joiner blocks), without a stack, a switch or a wake: see
    /// [`JoinHandle::join`] for what a child run inline observes. `false` makes every child run
    /// as its own task (what the benchmarks' `spawn_join.manycore_no_inline` row measures).
    pub fn join_inline(mut self, inline: bool) -> Builder {
        self.join_inline = inline;
        self
    }

    /// What a stack overflow does (default: abandon the task, see [`OverflowAction`]).
    pub fn on_stack_overflow(mut self, a: OverflowAction) -> Builder {
        self.overflow = a;
        self
    }

    /// Starts the workers; returns once every worker is pinned and ready.
    pub fn build(self) -> Result<Runtime, String> {
        if !(STACK_BYTES_MIN..=STACK_BYTES_MAX).contains(&self.stack_bytes) {
            return Err(std::format!(
                "stack_bytes {}: expected between {STACK_BYTES_MIN} and {STACK_BYTES_MAX}",
                self.stack_bytes
            ));
        }
        let topo = match self.topology {
            Some(t) => t,
            None => {
                Topology::host().map_err(|e| std::format!("cannot read the host topology: {e}"))?
            }
        };
        let topo = match &self.cpus {
            None => topo,
            Some(set) => {
                let mut desc = topo.to_desc();
                desc.pus.retain(|p| set.contains(p.os_index as usize));
                if desc.pus.is_empty() {
                    return Err(std::format!("no CPU of {set} is in the topology"));
                }
                Topology::build(desc).map_err(|e| e.to_string())?
            }
        };
        overflow::install()?;
        let n = topo.num_cpus();
        let os: Vec<usize> = (0..n).map(|c| topo.pu(c).os_index as usize).collect();
        let platform = RtPlatform {
            parkers: (0..n).map(|_| Parker::default()).collect(),
            clock: super::platform::Clock::new(),
            shared_addr: AtomicUsize::new(0),
        };
        let stats = self.config.stats;
        let stack_source = match self.stack_source {
            Some(s) => s,
            None if topo.num_nodes() > 1 && self.pin => {
                let os_nodes = (0..n)
                    .map(|c| topo.nodes()[topo.node_of(c)].os_index as usize)
                    .collect();
                RtSource::Numa(NumaMmapSource::new(os_nodes)?)
            }
            None => RtSource::Mmap(MmapSource),
        };
        let sched = Scheduler::with(
            topo,
            self.policy
                .unwrap_or_else(|| Box::new(TopologyPolicy::default())),
            platform,
            RtObserver(self.observer),
            self.config,
        )
        .map_err(|e| e.to_string())?;
        let id = RUNTIME_IDS.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            sched,
            stacks: StackPool::new(stack_source, self.stack_bytes, n),
            registry: (0..=n).map(|_| SpinLock::new(Vec::new())).collect(),
            shutdown: AtomicBool::new(false),
            exited: Mutex::new(vec![false; n]),
            exited_cv: Condvar::new(),
            id,
            pin_os: self.pin.then_some(os),
            overflow: action_code(self.overflow),
            stats_sampler: stats,
            join_inline: self.join_inline,
            last_sample_ns: AtomicUsize::new(0),
        });
        shared
            .sched
            .platform()
            .shared_addr
            .store(Arc::as_ptr(&shared) as usize, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<(usize, Result<i32, String>)>();
        let mut workers = Vec::with_capacity(n);
        for cpu in 0..n {
            let (shared2, tx) = (shared.clone(), tx.clone());
            let spawned = thread::Builder::new()
                .name(std::format!("mc{id}w{cpu}"))
                .spawn(move || {
                    worker_main(shared2, cpu, |r| {
                        let _ = tx.send((cpu, r));
                    })
                });
            match spawned {
                Ok(h) => workers.push(Some(h)),
                Err(e) => {
                    let rt = Runtime {
                        shared,
                        workers,
                        tids: Vec::new(),
                        stopped: false,
                    };
                    drop(rt);
                    return Err(std::format!("cannot start the worker for CPU {cpu}: {e}"));
                }
            }
        }
        drop(tx);
        let mut tids = vec![0; n];
        let mut failure = None;
        for _ in 0..n {
            match rx.recv() {
                Ok((cpu, Ok(tid))) => tids[cpu] = tid,
                Ok((_, Err(e))) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some("a worker exited while starting".into())),
            }
        }
        let rt = Runtime {
            shared,
            workers,
            tids,
            stopped: false,
        };
        match failure {
            None => Ok(rt),
            Some(e) => {
                drop(rt);
                Err(e)
            }
        }
    }
}

/// Numbers runtimes so their worker threads have distinct names (`mc<id>w<cpu>`).
static RUNTIME_IDS: AtomicUsize = AtomicUsize::new(0);

/// What a shutdown could not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownError {
    /// Tasks that had not finished (names; `<unnamed>` for unnamed ones): blocked forever, still
    /// queued, or running on a stuck worker.
    pub unfinished: Vec<String>,
    /// CPUs whose worker was still running a task at the deadline (its thread is detached).
    pub stuck_cpus: Vec<usize>,
}

impl core::fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "runtime shutdown: {} task(s) had not finished ({})",
            self.unfinished.len(),
            self.unfinished.join(", ")
        )?;
        if !self.stuck_cpus.is_empty() {
            write!(
                f,
                "; workers of CPUs {:?} were still running a task and were detached",
                self.stuck_cpus
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownError {}

/// A spawn that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// `rt::spawn` was called outside a task or worker of a runtime.
    NotInRuntime,
    /// The hint names a CPU or node the runtime does not have.
    BadHint {
        /// The hint.
        hint: SpawnHint,
        /// CPUs of the runtime.
        cpus: usize,
        /// Nodes of the runtime.
        nodes: usize,
    },
    /// The runtime is shutting down.
    ShuttingDown,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::NotInRuntime => {
                write!(
                    f,
                    "spawn called outside a task or worker of a manycore runtime"
                )
            }
            SpawnError::BadHint { hint, cpus, nodes } => write!(
                f,
                "spawn hint {hint:?} is out of range: the runtime has {cpus} CPU(s) and {nodes} node(s)"
            ),
            SpawnError::ShuttingDown => write!(f, "the runtime is shutting down"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// A running set of pinned workers. Dropping it shuts it down (waiting up to
/// [`DROP_SHUTDOWN_TIMEOUT`] for tasks, and printing what did not finish).
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Vec<Option<thread::JoinHandle<()>>>,
    tids: Vec<i32>,
    stopped: bool,
}

impl Runtime {
    /// A runtime on every CPU of the host.
    pub fn new() -> Result<Runtime, String> {
        Builder::new().build()
    }

    /// Number of CPUs (workers).
    pub fn num_cpus(&self) -> usize {
        self.shared.sched.num_cpus()
    }

    /// The topology the runtime schedules on.
    pub fn topology(&self) -> &Topology {
        self.shared.sched.topology()
    }

    /// Kernel thread ids of the workers, by logical CPU.
    pub fn worker_tids(&self) -> Vec<i32> {
        self.tids.clone()
    }

    /// The scheduler's counters (steals per tier, wake placements, parks, wasted-core time).
    pub fn counters(&self) -> Counters {
        self.shared.sched.counters()
    }

    /// Where task stacks come from: `"mmap"`, `"mmap+mbind"` (bound to the starting CPU's node)
    /// or `"custom"` (given to [`Builder::stack_source`]).
    pub fn stack_source_name(&self) -> &'static str {
        self.shared.stacks.source().name()
    }

    /// Tasks spawned and not yet finished.
    pub fn live_tasks(&self) -> usize {
        self.shared.live()
    }

    /// Spawns an unnamed task with no placement hint.
    pub fn spawn<R, F>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_inner(&self.shared, String::new(), SpawnHint::default(), f)
    }

    /// Spawns a named task, optionally on a CPU or node (logical indices of the runtime's
    /// topology). The name appears in errors and overflow reports.
    pub fn spawn_with<R, F>(
        &self,
        name: impl Into<String>,
        hint: SpawnHint,
        f: F,
    ) -> Result<JoinHandle<R>, SpawnError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        check_hint(&self.shared, hint)?;
        Ok(spawn_inner(&self.shared, name.into(), hint, f))
    }

    /// Waits for every task, then stops and joins every worker.
    pub fn shutdown(self) {
        // With no deadline the only possible leftovers are none.
        let _ = self.shutdown_timeout(Duration::MAX);
    }

    /// Waits up to `timeout` for every task to finish, then stops the workers; reports what did
    /// not finish (module docs, "Shutdown").
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Result<(), ShutdownError> {
        self.stop(timeout)
    }

    fn stop(&mut self, timeout: Duration) -> Result<(), ShutdownError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let deadline = Instant::now().checked_add(timeout);
        let expired = || deadline.is_some_and(|d| Instant::now() >= d);
        let mut nap = Duration::from_micros(10);
        while self.shared.live() > 0 && !expired() {
            thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
        self.shared.shutdown.store(true, Ordering::Release);
        let n = self.workers.len();
        for cpu in 0..self.shared.sched.num_cpus() {
            self.shared.sched.platform().unpark(cpu);
        }
        {
            // Idle workers leave within microseconds; give them a grace period even when the
            // task deadline has passed, so only a worker stuck in a task counts as stuck.
            let deadline = deadline.map(|d| d.max(Instant::now() + WORKER_EXIT_GRACE));
            let mut exited = self.shared.exited.lock().unwrap_or_else(|p| p.into_inner());
            while exited.iter().filter(|&&e| e).count() < n {
                let wait = match deadline {
                    None => Duration::from_millis(100),
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(w) if !w.is_zero() => w.min(Duration::from_millis(100)),
                        _ => break,
                    },
                };
                exited = self
                    .shared
                    .exited_cv
                    .wait_timeout(exited, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let exited = self
            .shared
            .exited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut stuck_cpus = Vec::new();
        for (cpu, w) in self.workers.iter_mut().enumerate() {
            if let Some(h) = w.take() {
                // A worker that left its loop is only returning from its thread: join it.
                if exited.get(cpu).copied().unwrap_or(false) || h.is_finished() {
                    let _ = h.join();
                } else {
                    stuck_cpus.push(cpu);
                }
            }
        }
        let leftovers: Vec<TaskRef> = self
            .shared
            .registry
            .iter()
            .flat_map(|s| s.with(core::mem::take))
            .collect();
        if leftovers.is_empty() && stuck_cpus.is_empty() {
            return Ok(());
        }
        let mut unfinished = Vec::new();
        for t in leftovers {
            let hdr = t.hdr();
            unfinished.push(if hdr.name.is_empty() {
                "<unnamed>".to_string()
            } else {
                hdr.name.clone()
            });
            let st = hdr.state.load(Ordering::Acquire);
            if st != RUNNING && st != DONE {
                // No worker will run it again: the workers that could have have exited, and the
                // stuck ones are busy with their current task.
                t.task().body.fail(JoinError::Abandoned {
                    task: hdr.name.clone(),
                });
                mark_joinable(hdr);
            }
        }
        Err(ShutdownError {
            unfinished,
            stuck_cpus,
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Err(e) = self.stop(DROP_SHUTDOWN_TIMEOUT) {
            std::eprintln!("manycore: {e}");
        }
    }
}

fn check_hint(shared: &Shared, hint: SpawnHint) -> Result<(), SpawnError> {
    let (cpus, nodes) = (shared.sched.num_cpus(), shared.sched.topology().num_nodes());
    if hint.cpu.is_some_and(|c| c >= cpus) || hint.node.is_some_and(|n| n >= nodes) {
        return Err(SpawnError::BadHint { hint, cpus, nodes });
    }
    if shared.is_shutting_down() {
        return Err(SpawnError::ShuttingDown);
    }
    Ok(())
}

pub(crate) fn spawn_inner<R, F>(
    shared: &Shared,
    name: String,
    hint: SpawnHint,
    f: F,
) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let here = crate::platform::Platform::current_cpu(shared.sched.platform());
    let shard = here.unwrap_or(shared.sched.num_cpus());
    let home = hint
        .node
        .or_else(|| hint.cpu.map(|c| shared.sched.topology().node_of(c)));
    let (task, handle) = new_task(name, home, shared.me.clone(), shard, f);
    shared.register(shard, &task);
    match here {
        // From a task with no hint: the child goes to this CPU's next slot, as a task woken
        // here would (see the module docs, "Spawning from a task").
        Some(cpu) if hint == SpawnHint::default() => {
            task.hdr().last_cpu.store(cpu, Ordering::Relaxed);
            shared.sched.wake(task);
        }
        _ => shared.sched.spawn(task, hint),
    }
    handle
}

/// Spawns an unnamed task on the runtime of the calling task or worker.
pub fn spawn<R, F>(f: F) -> Result<JoinHandle<R>, SpawnError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_named(String::new(), SpawnHint::default(), f)
}

/// Spawns a named task, with a placement hint, on the runtime of the calling task or worker.
pub fn spawn_named<R, F>(
    name: impl Into<String>,
    hint: SpawnHint,
    f: F,
) -> Result<JoinHandle<R>, SpawnError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let w = super::worker::current_worker().ok_or(SpawnError::NotInRuntime)?;
    let shared = w.shared();
    check_hint(shared, hint)?;
    Ok(spawn_inner(shared, name.into(), hint, f))
}
