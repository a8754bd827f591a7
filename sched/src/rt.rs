//! The user-space runtime: stackful tasks on worker threads pinned one per CPU, scheduled by
//! [`Scheduler`] (this module is its user-space [`Platform`]).
//!
//! # Shape
//! - One worker OS thread per CPU of the topology (optionally restricted to a CPU set), pinned
//!   with `sched_setaffinity` to that CPU's OS index.
//! - A task is a closure running on its own guarded stack from a [`StackPool`]. A worker resumes
//!   a task with [`switch`]; the task comes back to whichever worker runs it when it yields,
//!   blocks or finishes. Tasks migrate between workers only when stolen while suspended.
//! - Idle workers retry a bounded number of times, then park on their thread's futex token
//!   (`std::thread::park`, which has the token semantics the scheduler's protocol needs).
//! - A panic in a task is caught on the task's stack and returned by [`JoinHandle::join`]; the
//!   worker and the runtime carry on.
//! - [`Runtime::shutdown`] (also on drop) waits for every spawned task, then stops and joins
//!   every worker: no thread is left behind.

use std::any::Any;
use std::boxed::Box;
use std::cell::{Cell, UnsafeCell};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};
use std::vec::Vec;

use manycore_topology::{CpuSet, Topology};

use crate::arch::{Context, init_stack, switch};
use crate::platform::{NoObserver, Platform};
use crate::policy::TopologyPolicy;
use crate::scheduler::{Config, Scheduler, SpawnHint};
use crate::stack::{STACK_BYTES_DEFAULT, Stack, StackPool};
use crate::task::Task;

/// Retries of `next_task` before a worker parks.
const IDLE_SPIN_ROUNDS: u32 = 64;
/// A parked worker wakes at least this often to check for shutdown.
const PARK_TIMEOUT: Duration = Duration::from_millis(10);

const RUNNING: u8 = 0;
const YIELDED: u8 = 1;
const DONE: u8 = 2;

/// What a task's closure produced: its value, or the panic payload.
pub type TaskResult<R> = thread::Result<R>;

/// A task's closure, with its result type erased.
type Entry = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

struct TaskCell {
    name: String,
    home_node: Option<usize>,
    last_cpu: AtomicUsize,
    /// The task's saved context; written by `switch` when it suspends (on the worker running it),
    /// read when a worker resumes it. Never accessed by two threads at once: a task is in a
    /// queue or running, not both.
    ctx: UnsafeCell<Context>,
    stack: Mutex<Option<Stack>>,
    entry: Mutex<Option<Entry>>,
    /// RUNNING / YIELDED / DONE, set by the task before it switches back to its worker.
    state: AtomicU8,
    result: Mutex<Option<TaskResult<Box<dyn Any + Send>>>>,
    done: Condvar,
}

// SAFETY: `ctx` is only touched by the worker currently running or resuming the task (see the
// field's doc); everything else is behind atomics or mutexes.
unsafe impl Sync for TaskCell {}

#[derive(Clone)]
struct TaskRef(Arc<TaskCell>);

impl Task for TaskRef {
    fn home_node(&self) -> Option<usize> {
        self.0.home_node
    }
    fn last_cpu(&self) -> Option<usize> {
        let c = self.0.last_cpu.load(Ordering::Relaxed);
        (c != usize::MAX).then_some(c)
    }
}

struct RtPlatform {
    threads: Vec<OnceLock<Thread>>,
    start: Instant,
}

std::thread_local! {
    /// The worker this thread is (null on other threads).
    static WORKER: Cell<*const Worker> = const { Cell::new(core::ptr::null()) };
}

/// Reads `WORKER` through a call the optimizer cannot inline: a task may resume on another
/// thread after a switch, and a thread-local address computed before the switch would then
/// name the old thread's variable.
#[inline(never)]
fn current_worker() -> *const Worker {
    WORKER.with(Cell::get)
}

impl Platform for RtPlatform {
    fn current_cpu(&self) -> Option<usize> {
        let w = current_worker();
        // SAFETY: a non-null WORKER points at the worker living on this thread's stack frame
        // for as long as the thread runs the worker loop (it is reset before that frame ends).
        (!w.is_null()).then(|| unsafe { (*w).cpu })
    }
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn park(&self, _cpu: usize, deadline_ns: Option<u64>) {
        let timeout = deadline_ns
            .map(|d| Duration::from_nanos(d.saturating_sub(self.now_ns())))
            .unwrap_or(PARK_TIMEOUT)
            .min(PARK_TIMEOUT);
        thread::park_timeout(timeout);
    }
    fn unpark(&self, cpu: usize) {
        if let Some(t) = self.threads[cpu].get() {
            t.unpark();
        }
    }
}

struct Shared {
    sched: Scheduler<TaskRef, RtPlatform, NoObserver>,
    stacks: StackPool,
    /// Tasks spawned and not finished.
    live: AtomicUsize,
    live_lock: Mutex<()>,
    all_done: Condvar,
    shutdown: AtomicBool,
}

struct Worker {
    cpu: usize,
    /// The worker loop's own context while a task runs.
    ctx: UnsafeCell<Context>,
    /// The task running now.
    current: Cell<Option<TaskRef>>,
}

/// Builds a [`Runtime`].
pub struct Builder {
    topology: Option<Topology>,
    cpus: Option<CpuSet>,
    stack_bytes: usize,
    config: Config,
    pin: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            topology: None,
            cpus: None,
            stack_bytes: STACK_BYTES_DEFAULT,
            config: Config::default(),
            pin: true,
        }
    }
}

impl Builder {
    /// A builder for the host topology, every allowed CPU, default stacks.
    pub fn new() -> Builder {
        Builder::default()
    }
    /// Runs on this topology instead of the host's.
    pub fn topology(mut self, t: Topology) -> Builder {
        self.topology = Some(t);
        self
    }
    /// Uses only these CPUs (OS indices).
    pub fn cpus(mut self, set: CpuSet) -> Builder {
        self.cpus = Some(set);
        self
    }
    /// Usable bytes of each task stack.
    pub fn stack_bytes(mut self, n: usize) -> Builder {
        self.stack_bytes = n;
        self
    }
    /// Scheduler configuration.
    pub fn config(mut self, c: Config) -> Builder {
        self.config = c;
        self
    }
    /// Whether to pin workers to their CPUs (default true; off for topologies that do not match
    /// the host, such as simulated ones).
    pub fn pin(mut self, pin: bool) -> Builder {
        self.pin = pin;
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<Runtime, String> {
        let topo = match self.topology {
            Some(t) => t,
            None => Topology::host().map_err(|e| e.to_string())?,
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
        let n = topo.num_cpus();
        let os: Vec<usize> = (0..n).map(|c| topo.pu(c).os_index as usize).collect();
        let platform = RtPlatform {
            threads: (0..n).map(|_| OnceLock::new()).collect(),
            start: Instant::now(),
        };
        let sched = Scheduler::with(
            topo,
            Box::new(TopologyPolicy::default()),
            platform,
            NoObserver,
            self.config,
        )
        .map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            sched,
            stacks: StackPool::new(self.stack_bytes, 1024),
            live: AtomicUsize::new(0),
            live_lock: Mutex::new(()),
            all_done: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let pin = self.pin;
        let id = RUNTIME_IDS.fetch_add(1, Ordering::Relaxed);
        let workers = (0..n)
            .map(|cpu| {
                let shared = shared.clone();
                let os_cpu = os[cpu];
                thread::Builder::new()
                    .name(std::format!("mc{id}w{cpu}"))
                    .spawn(move || worker_main(shared, cpu, pin.then_some(os_cpu)))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Runtime {
            shared,
            workers,
            id,
        })
    }
}

/// A running set of pinned workers.
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Vec<thread::JoinHandle<()>>,
    id: usize,
}

/// Numbers runtimes so their worker threads have distinct names (`mc<id>w<cpu>`, within the
/// 15 bytes Linux keeps of a thread name).
static RUNTIME_IDS: AtomicUsize = AtomicUsize::new(0);

/// Waits for a task's result.
pub struct JoinHandle<R> {
    task: Arc<TaskCell>,
    _result: core::marker::PhantomData<fn() -> R>,
}

impl<R: Send + 'static> JoinHandle<R> {
    /// The task's value, or its panic payload. From a task, the caller yields until the task is
    /// done; from any other thread it blocks.
    pub fn join(self) -> TaskResult<R> {
        if current_worker().is_null() {
            let mut r = self.task.result.lock().unwrap_or_else(|p| p.into_inner());
            while r.is_none() {
                r = self.task.done.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            return unwrap_result(r.take());
        }
        loop {
            if let Some(r) = self
                .task
                .result
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return unwrap_result(Some(r));
            }
            yield_now();
        }
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.task.name
    }
}

fn unwrap_result<R: 'static>(r: Option<TaskResult<Box<dyn Any + Send>>>) -> TaskResult<R> {
    match r {
        Some(Ok(v)) => Ok(*v
            .downcast::<R>()
            .unwrap_or_else(|_| unreachable!("the closure's type fixes R"))),
        Some(Err(p)) => Err(p),
        None => unreachable!("called only once the task is done"),
    }
}

impl Runtime {
    /// A runtime on the host with default settings.
    pub fn new() -> Result<Runtime, String> {
        Builder::new().build()
    }

    /// The prefix of this runtime's worker thread names (`mc<id>w`).
    pub fn thread_name_prefix(&self) -> String {
        std::format!("mc{}w", self.id)
    }

    /// Number of workers.
    pub fn num_cpus(&self) -> usize {
        self.shared.sched.num_cpus()
    }

    /// The scheduler (for its counters).
    pub fn counters(&self) -> crate::Counters {
        self.shared.sched.counters()
    }

    /// Spawns a task.
    pub fn spawn<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<R> {
        self.spawn_with(String::new(), SpawnHint::default(), f)
    }

    /// Spawns a named task with a placement hint (a CPU, or a home node).
    pub fn spawn_with<R: Send + 'static>(
        &self,
        name: String,
        hint: SpawnHint,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<R> {
        spawn_on(&self.shared, name, hint, f)
    }

    /// Waits for every task, stops and joins every worker.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut guard = self
                .shared
                .live_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            while self.shared.live.load(Ordering::Acquire) != 0 {
                guard = self
                    .shared
                    .all_done
                    .wait(guard)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        self.shared.shutdown.store(true, Ordering::Release);
        for cpu in 0..self.shared.sched.num_cpus() {
            self.shared.sched.platform().unpark(cpu);
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.stop();
        }
    }
}

fn spawn_on<R: Send + 'static>(
    shared: &Arc<Shared>,
    name: String,
    hint: SpawnHint,
    f: impl FnOnce() -> R + Send + 'static,
) -> JoinHandle<R> {
    let home_node = hint
        .node
        .or(hint.cpu.map(|c| shared.sched.topology().node_of(c)));
    let task = Arc::new(TaskCell {
        name,
        home_node,
        last_cpu: AtomicUsize::new(usize::MAX),
        ctx: UnsafeCell::new(Context::new()),
        stack: Mutex::new(None),
        entry: Mutex::new(Some(Box::new(move || Box::new(f()) as Box<dyn Any + Send>))),
        state: AtomicU8::new(RUNNING),
        result: Mutex::new(None),
        done: Condvar::new(),
    });
    shared.live.fetch_add(1, Ordering::AcqRel);
    shared.sched.spawn(TaskRef(task.clone()), hint);
    JoinHandle {
        task,
        _result: core::marker::PhantomData,
    }
}

/// Spawns from inside a task (on the current runtime).
pub fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<JoinHandle<R>> {
    let w = current_worker();
    if w.is_null() {
        return None;
    }
    SHARED.with(|s| {
        // SAFETY: set by the worker loop for the lifetime of this worker thread.
        let shared = unsafe { &*s.get() };
        Some(spawn_on(shared, String::new(), SpawnHint::default(), f))
    })
}

std::thread_local! {
    static SHARED: Cell<*const Arc<Shared>> = const { Cell::new(core::ptr::null()) };
}

/// Gives the CPU to other runnable tasks; the caller goes to the back of its CPU's queue.
/// Outside a task it yields the OS thread.
pub fn yield_now() {
    let w = current_worker();
    if w.is_null() {
        thread::yield_now();
        return;
    }
    // SAFETY: non-null WORKER is this thread's live worker (see `RtPlatform::current_cpu`).
    let worker = unsafe { &*w };
    let Some(task) = worker.current.take() else {
        thread::yield_now();
        return;
    };
    task.0.state.store(YIELDED, Ordering::Release);
    let ctx = task.0.ctx.get();
    worker.current.set(Some(task));
    // SAFETY: we run on the task's stack; `ctx` is the task's own context (the task cannot be
    // resumed elsewhere before the worker requeues it after this switch), and the worker's
    // context was filled by the switch that resumed us.
    unsafe { switch(ctx, worker.ctx.get()) };
}

/// The current task's name (empty outside tasks or for unnamed tasks).
pub fn current_name() -> String {
    let w = current_worker();
    if w.is_null() {
        return String::new();
    }
    // SAFETY: as in `yield_now`.
    let worker = unsafe { &*w };
    let t = worker.current.take();
    let name = t.as_ref().map(|t| t.0.name.clone()).unwrap_or_default();
    worker.current.set(t);
    name
}

extern "sysv64" fn task_entry(arg: usize) -> ! {
    // SAFETY: `arg` is the address of the TaskCell kept alive by the worker's TaskRef while the
    // task runs.
    let cell = unsafe { &*(arg as *const TaskCell) };
    let f = cell.entry.lock().unwrap_or_else(|p| p.into_inner()).take();
    let result = match f {
        Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)),
        None => Err(Box::new("task entry missing") as Box<dyn Any + Send>),
    };
    *cell.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    cell.state.store(DONE, Ordering::Release);
    let w = current_worker();
    // SAFETY: a task only runs on a worker thread; its WORKER is live. We switch away for the
    // last time: this stack is recycled by the worker after the switch.
    unsafe { switch(cell.ctx.get(), (*w).ctx.get()) };
    unreachable!("a finished task is never resumed")
}

fn pin_to(os_cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes inside it for os_cpu < CPU_SETSIZE,
    // checked below; sched_setaffinity reads it.
    unsafe {
        if os_cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(os_cpu, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn worker_main(shared: Arc<Shared>, cpu: usize, pin: Option<usize>) {
    if let Some(os) = pin {
        pin_to(os);
    }
    let _ = shared.sched.platform().threads[cpu].set(thread::current());
    let worker = Worker {
        cpu,
        ctx: UnsafeCell::new(Context::new()),
        current: Cell::new(None),
    };
    WORKER.with(|w| w.set(&worker));
    SHARED.with(|s| s.set(&shared));
    let sched = &shared.sched;
    loop {
        let mut task = sched.next_task(cpu);
        let mut spins = 0;
        while task.is_none() && spins < IDLE_SPIN_ROUNDS {
            core::hint::spin_loop();
            spins += 1;
            task = sched.next_task(cpu);
        }
        match task {
            Some(t) => run(&shared, &worker, t),
            None => {
                if shared.shutdown.load(Ordering::Acquire) {
                    break;
                }
                sched.park(cpu, None);
            }
        }
    }
    WORKER.with(|w| w.set(core::ptr::null()));
    SHARED.with(|s| s.set(core::ptr::null()));
}

fn run(shared: &Arc<Shared>, worker: &Worker, task: TaskRef) {
    task.0.last_cpu.store(worker.cpu, Ordering::Relaxed);
    {
        let mut stack = task.0.stack.lock().unwrap_or_else(|p| p.into_inner());
        if stack.is_none() {
            match shared.stacks.get() {
                Ok(s) => {
                    // SAFETY: the stack is fresh and stays with the task until it is done;
                    // task_entry never returns.
                    let ctx = unsafe {
                        init_stack(s.top(), task_entry, Arc::as_ptr(&task.0) as usize, false)
                    };
                    // SAFETY: the task has never run: nobody else touches its context.
                    unsafe { *task.0.ctx.get() = ctx };
                    *stack = Some(s);
                }
                Err(e) => {
                    *task.0.result.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Err(Box::new(std::format!("cannot allocate a stack: {e}"))));
                    task.0.state.store(DONE, Ordering::Release);
                    drop(stack);
                    finish(shared, task);
                    return;
                }
            }
        }
    }
    task.0.state.store(RUNNING, Ordering::Release);
    let ctx = task.0.ctx.get();
    worker.current.set(Some(task));
    // SAFETY: the task's context was prepared by init_stack or saved by its last switch away;
    // its stack is alive (owned by the task); the worker's context is ours to fill.
    unsafe { switch(worker.ctx.get(), ctx) };
    let task = worker
        .current
        .take()
        .unwrap_or_else(|| unreachable!("the worker keeps the running task"));
    match task.0.state.load(Ordering::Acquire) {
        YIELDED => shared.sched.requeue(worker.cpu, task),
        DONE => finish(shared, task),
        _ => {}
    }
}

fn finish(shared: &Arc<Shared>, task: TaskRef) {
    if let Some(s) = task
        .0
        .stack
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        shared.stacks.put(s);
    }
    task.0.done.notify_all();
    if shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
        let _guard = shared.live_lock.lock().unwrap_or_else(|p| p.into_inner());
        shared.all_done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Threads of this process whose name starts with `prefix`.
    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.flatten()
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.starts_with(prefix))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn hundred_thousand_tasks_each_run_once_and_return_their_value() {
        let rt = Runtime::new().unwrap();
        let runs: Arc<Vec<AtomicU8>> = Arc::new((0..100_000).map(|_| AtomicU8::new(0)).collect());
        let handles: Vec<_> = (0..100_000u64)
            .map(|i| {
                let runs = runs.clone();
                rt.spawn(move || {
                    runs[i as usize].fetch_add(1, Ordering::Relaxed);
                    i * 3
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64 * 3);
        }
        assert!(
            runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
            "every task ran exactly once"
        );
        let used: BTreeSet<usize> = (0..rt.num_cpus()).collect();
        assert_eq!(used.len(), rt.num_cpus());
        rt.shutdown();
    }

    #[test]
    fn a_panic_is_returned_by_join_and_the_runtime_keeps_running() {
        let rt = Runtime::new().unwrap();
        let h = rt.spawn_with("doomed".into(), SpawnHint::default(), || -> u32 {
            panic!("boom in {}", current_name())
        });
        let err = h.join().unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(msg, "boom in doomed");
        assert_eq!(rt.spawn(|| 41 + 1).join().unwrap(), 42);
        rt.shutdown();
    }

    #[test]
    fn yield_interleaves_tasks_on_one_cpu() {
        let host = Topology::host().unwrap();
        let first = host.pu(0).os_index as usize;
        let rt = Builder::new()
            .cpus([first].into_iter().collect())
            .build()
            .unwrap();
        assert_eq!(rt.num_cpus(), 1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let log = log.clone();
                rt.spawn(move || {
                    for _ in 0..5 {
                        log.lock().unwrap().push(t);
                        yield_now();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 15);
        let switches = log.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 12, "yield hands the CPU to the others: {log:?}");
        rt.shutdown();
    }

    #[test]
    fn tasks_spawn_and_join_tasks() {
        let rt = Runtime::new().unwrap();
        let h = rt.spawn(|| {
            let inner: Vec<_> = (0..100u32).map(|i| spawn(move || i * i).unwrap()).collect();
            inner.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        });
        assert_eq!(h.join().unwrap(), (0..100u32).map(|i| i * i).sum::<u32>());
        rt.shutdown();
    }

    #[test]
    fn shutdown_leaves_no_thread_behind() {
        let rt = Runtime::new().unwrap();
        let prefix = rt.thread_name_prefix();
        assert_eq!(threads_named(&prefix), rt.num_cpus(), "one worker per CPU");
        let hs: Vec<_> = (0..1000).map(|i| rt.spawn(move || i)).collect();
        drop(hs);
        rt.shutdown();
        assert_eq!(threads_named(&prefix), 0, "every worker joined");
    }
}
