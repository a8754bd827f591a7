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
/// The task asked to block and is switching back to its worker.
const BLOCKING: u8 = 3;
/// The task is off every queue until someone unblocks it.
const BLOCKED: u8 = 4;

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
    /// Wake token: set by `unblock`, consumed by `block`. Blocking re-checks it after announcing
    /// BLOCKED, so a wake that races a block is never lost (at worst the task wakes spuriously
    /// and its primitive re-checks its condition).
    notify: AtomicBool,
    /// The runtime, for wakes from threads that are not its workers.
    shared: OnceLock<std::sync::Weak<Shared>>,
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
    /// Kernel thread ids of the workers (for checks that none outlives the runtime).
    worker_tids: Mutex<Vec<i32>>,
}

struct Worker {
    cpu: usize,
    /// The worker loop's own context while a task runs.
    ctx: UnsafeCell<Context>,
    /// The task running now.
    current: Cell<Option<TaskRef>>,
    /// The running task's guard page and name, for the SIGSEGV handler (which may not touch
    /// `current`): `(guard start, guard end)` and `(name pointer, name length)`.
    guard: Cell<(usize, usize)>,
    name: Cell<(*const u8, usize)>,
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
            worker_tids: Mutex::new(Vec::new()),
        });
        let pin = self.pin;
        let id = RUNTIME_IDS.fetch_add(1, Ordering::Relaxed);
        let workers = (0..n)
            .map(|cpu| {
                let shared = shared.clone();
                let os_cpu = os[cpu];
                let name = std::format!("mc{id}w{cpu}");
                thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || worker_main(shared, cpu, pin.then_some(os_cpu), name))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Wait until every worker has registered (pinned, named, its thread handle published):
        // a runtime is ready when `build` returns, and no unpark targets a missing thread.
        while shared
            .sched
            .platform()
            .threads
            .iter()
            .any(|t| t.get().is_none())
        {
            thread::yield_now();
        }
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

    /// Kernel thread ids of the worker threads.
    pub fn worker_tids(&self) -> Vec<i32> {
        self.shared
            .worker_tids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        notify: AtomicBool::new(false),
        shared: OnceLock::new(),
    });
    let _ = task.shared.set(Arc::downgrade(shared));
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

fn worker_main(shared: Arc<Shared>, cpu: usize, pin: Option<usize>, name: String) {
    if let Some(os) = pin {
        pin_to(os);
    }
    // Name the OS thread before registering, so a ready runtime's workers are identifiable
    // (`/proc/self/task/*/comm`), whatever std does with the builder's name.
    if let Ok(c) = std::ffi::CString::new(name) {
        // SAFETY: `c` is a valid NUL-terminated string of at most 15 bytes plus NUL (the names
        // built in `build`); the call names the calling thread.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), c.as_ptr()) };
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    shared
        .worker_tids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(tid);
    let _ = shared.sched.platform().threads[cpu].set(thread::current());
    let worker = Worker {
        cpu,
        ctx: UnsafeCell::new(Context::new()),
        current: Cell::new(None),
        guard: Cell::new((0, 0)),
        name: Cell::new((core::ptr::null(), 0)),
    };
    overflow::install_for_this_thread();
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
    if let Some(st) = task
        .0
        .stack
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        let g = st.guard();
        worker.guard.set((g.start, g.end));
    }
    worker.name.set((task.0.name.as_ptr(), task.0.name.len()));
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
        BLOCKING => {
            // Now off its stack: the task may be resumed elsewhere from here on.
            task.0.state.store(BLOCKED, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if task.0.notify.load(Ordering::SeqCst)
                && task
                    .0
                    .state
                    .compare_exchange(BLOCKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                shared.sched.requeue(worker.cpu, task);
            }
        }
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
        let go = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let (log, go) = (log.clone(), go.clone());
                rt.spawn(move || {
                    // Start together, so all three are queued on the one CPU.
                    while !go.load(Ordering::Acquire) {
                        yield_now();
                    }
                    for _ in 0..5 {
                        log.lock().unwrap().push(t);
                        yield_now();
                    }
                })
            })
            .collect();
        go.store(true, Ordering::Release);
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

    /// Two tasks on different CPUs hand a token back and forth through two events: a lost
    /// wakeup would hang (the test harness times out) rather than pass. 10^6 rounds in release,
    /// 10^5 in debug builds (`cargo test -p manycore-sched --release ping_pong` for the full
    /// count).
    #[test]
    fn cross_core_ping_pong_loses_no_wakeup() {
        let rounds: u64 = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let rt = Runtime::new().unwrap();
        let (ping, pong) = (Arc::new(Event::new()), Arc::new(Event::new()));
        let n = rt.num_cpus();
        let hint = |cpu: usize| SpawnHint {
            cpu: Some(cpu % n),
            node: None,
        };
        let (a_ping, a_pong) = (ping.clone(), pong.clone());
        let a = rt.spawn_with("ping".into(), hint(0), move || {
            for _ in 0..rounds {
                a_ping.set();
                a_pong.wait();
            }
            rounds
        });
        let b = rt.spawn_with("pong".into(), hint(1), move || {
            let mut seen = 0;
            for _ in 0..rounds {
                ping.wait();
                seen += 1;
                pong.set();
            }
            seen
        });
        assert_eq!(a.join().unwrap(), rounds);
        assert_eq!(b.join().unwrap(), rounds);
        rt.shutdown();
    }

    #[test]
    fn an_os_thread_and_a_task_share_an_event() {
        let rt = Runtime::new().unwrap();
        let ev = Arc::new(Event::new());
        let e2 = ev.clone();
        let h = rt.spawn(move || {
            e2.wait();
            7
        });
        thread::sleep(Duration::from_millis(20));
        ev.set();
        assert_eq!(h.join().unwrap(), 7);
        rt.shutdown();
    }

    /// A task that overflows its stack gets a message naming it, and the process aborts
    /// instead of corrupting memory. Runs the overflow in a child process (this test binary,
    /// re-executed) and checks its stderr and its death by SIGABRT.
    #[test]
    fn stack_overflow_is_reported_naming_the_task() {
        if std::env::var_os("MANYCORE_OVERFLOW_CHILD").is_some() {
            let rt = Builder::new().stack_bytes(64 * 1024).build().unwrap();
            #[inline(never)]
            fn recurse(n: u64) -> u64 {
                let pad = [n; 64];
                core::hint::black_box(&pad);
                if n == 0 {
                    0
                } else {
                    recurse(n - 1).wrapping_add(core::hint::black_box(pad[3]))
                }
            }
            let h = rt.spawn_with("deep-recursion".into(), SpawnHint::default(), || {
                recurse(1 << 30)
            });
            let _ = h.join();
            unreachable!("the overflow must abort the process");
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rt::tests::stack_overflow_is_reported_naming_the_task",
                "--nocapture",
            ])
            .env("MANYCORE_OVERFLOW_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("task 'deep-recursion' overflowed its stack"),
            "stderr: {stderr}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "status {:?}",
            out.status
        );
    }

    #[test]
    fn shutdown_leaves_no_thread_behind() {
        let alive =
            |tid: i32| std::path::Path::new(&std::format!("/proc/self/task/{tid}")).exists();
        let rt = Runtime::new().unwrap();
        let tids = rt.worker_tids();
        assert_eq!(tids.len(), rt.num_cpus(), "one worker thread per CPU");
        assert!(tids.iter().all(|&t| alive(t)));
        let hs: Vec<_> = (0..1000).map(|i| rt.spawn(move || i)).collect();
        drop(hs);
        rt.shutdown();
        assert!(
            tids.iter().all(|&t| !alive(t)),
            "every worker thread exited: {tids:?}"
        );
    }
}

/// A handle to a task, to unblock it from anywhere.
#[derive(Clone)]
pub struct TaskWaker(TaskRef);

impl TaskWaker {
    /// Wakes the task if it is blocked (or makes its next [`block`] return at once).
    pub fn wake(&self) {
        let t = &self.0.0;
        t.notify.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if t.state
            .compare_exchange(BLOCKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let shared = t_shared(t);
            if let Some(shared) = shared {
                shared.sched.wake(self.0.clone());
            }
        }
    }
}

fn t_shared(t: &TaskCell) -> Option<Arc<Shared>> {
    t.shared.get().and_then(std::sync::Weak::upgrade)
}

/// A waker for the current task (`None` outside tasks).
pub fn current_waker() -> Option<TaskWaker> {
    let w = current_worker();
    if w.is_null() {
        return None;
    }
    // SAFETY: as in `yield_now`.
    let worker = unsafe { &*w };
    let t = worker.current.take();
    let waker = t.as_ref().map(|t| TaskWaker(t.clone()));
    worker.current.set(t);
    waker
}

/// Blocks the current task until a [`TaskWaker::wake`] (possibly one that came earlier).
/// May return spuriously: callers re-check their condition. Outside a task, parks the thread
/// briefly.
pub fn block() {
    let w = current_worker();
    if w.is_null() {
        thread::park_timeout(PARK_TIMEOUT);
        return;
    }
    // SAFETY: as in `yield_now`.
    let worker = unsafe { &*w };
    let Some(task) = worker.current.take() else {
        return;
    };
    if task.0.notify.swap(false, Ordering::SeqCst) {
        worker.current.set(Some(task));
        return;
    }
    task.0.state.store(BLOCKING, Ordering::SeqCst);
    let ctx = task.0.ctx.get();
    worker.current.set(Some(task));
    // SAFETY: as in `yield_now`: the worker will not let anyone resume this task before the
    // switch completes (it publishes BLOCKED only after).
    unsafe { switch(ctx, (*w).ctx.get()) };
    // Resumed: consume the token that woke us (if any).
    let w = current_worker();
    // SAFETY: we run on a worker thread again (maybe another one).
    let worker = unsafe { &*w };
    let t = worker.current.take();
    if let Some(t) = &t {
        t.0.notify.store(false, Ordering::SeqCst);
    }
    worker.current.set(t);
}

/// An auto-reset event: `set` wakes one waiter, or lets the next `wait` pass at once. Works
/// between tasks and OS threads alike.
#[derive(Default)]
pub struct Event {
    state: Mutex<EventState>,
    cv: Condvar,
}

#[derive(Default)]
struct EventState {
    set: bool,
    waiters: std::collections::VecDeque<TaskWaker>,
    /// OS threads (not tasks) waiting on the condvar: `set` signals it only when some are, so
    /// task-to-task events never pay a futex system call.
    thread_waiters: usize,
}

impl Event {
    /// A new, unset event.
    pub fn new() -> Event {
        Event::default()
    }

    /// Waits until the event is set, then resets it.
    pub fn wait(&self) {
        loop {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.set {
                st.set = false;
                return;
            }
            match current_waker() {
                Some(w) => {
                    st.waiters.push_back(w);
                    drop(st);
                    block();
                }
                None => {
                    st.thread_waiters += 1;
                    let (mut st, _) = self
                        .cv
                        .wait_timeout(st, PARK_TIMEOUT)
                        .unwrap_or_else(|p| p.into_inner());
                    st.thread_waiters -= 1;
                }
            }
        }
    }

    /// Sets the event, waking one waiting task (and any waiting thread).
    pub fn set(&self) {
        let (waker, threads) = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.set = true;
            (st.waiters.pop_front(), st.thread_waiters)
        };
        if let Some(w) = waker {
            w.wake();
        }
        if threads > 0 {
            self.cv.notify_one();
        }
    }
}

/// Stack overflow reporting: a task that runs off its stack touches its guard page; the SIGSEGV
/// handler (on a per-worker alternate signal stack, since the task's stack is exhausted) checks
/// the fault address against the running task's guard page, writes
/// `manycore: task 'NAME' overflowed its stack` to stderr with async-signal-safe `write`, and
/// aborts. The process cannot continue safely: the task was interrupted at an arbitrary point,
/// possibly holding locks. Any other fault is handed back to the default action.
mod overflow {
    use std::sync::Once;

    use super::current_worker;

    const ALT_STACK_BYTES: usize = 64 * 1024;

    fn write_stderr(bytes: &[u8]) {
        // SAFETY: write(2) is async-signal-safe; the buffer is valid for its length.
        unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
    }

    extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        let w = current_worker();
        if !w.is_null() {
            // SAFETY: a non-null WORKER is this thread's live worker; the cells hold Copy values
            // set by this same thread.
            let (guard, name) = unsafe { ((*w).guard.get(), (*w).name.get()) };
            if (guard.0..guard.1).contains(&addr) {
                write_stderr(b"manycore: task '");
                if !name.0.is_null() {
                    // SAFETY: the name belongs to the running task, which is alive (it is the
                    // one that faulted).
                    write_stderr(unsafe { core::slice::from_raw_parts(name.0, name.1) });
                }
                write_stderr(b"' overflowed its stack (hit the guard page)\n");
                // SAFETY: abort is async-signal-safe.
                unsafe { libc::abort() };
            }
        }
        // Not ours: restore the default action and return, so the fault repeats and kills the
        // process the usual way.
        // SAFETY: resetting a signal's disposition to SIG_DFL is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }

    /// Gives this thread an alternate signal stack and installs the handler (once per process).
    pub(super) fn install_for_this_thread() {
        // SAFETY: an anonymous mapping for the alternate stack, leaked deliberately (it must
        // outlive any signal delivered to this thread; workers are few and long-lived).
        unsafe {
            let stack = libc::mmap(
                core::ptr::null_mut(),
                ALT_STACK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if stack != libc::MAP_FAILED {
                let ss = libc::stack_t {
                    ss_sp: stack,
                    ss_flags: 0,
                    ss_size: ALT_STACK_BYTES,
                };
                libc::sigaltstack(&ss, core::ptr::null_mut());
            }
        }
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            // SAFETY: a zeroed sigaction is valid; we fill handler, flags and an empty mask.
            unsafe {
                let mut sa: libc::sigaction = core::mem::zeroed();
                sa.sa_sigaction = on_segv as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut());
            }
        });
    }
}
