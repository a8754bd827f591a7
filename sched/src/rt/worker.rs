//! The worker: one OS thread per CPU, pinned, running the scheduler's host loop, and the task
//! side of the switch (`yield_now`, suspension for `block`, task entry and exit).
//!
//! # The loop
//! ```text
//! loop {
//!     fire expired timers (sleep)
//!     task = next_task(cpu), retried IDLE_SPIN_ROUNDS times with a spin hint
//!     Some(task): resume it; when it comes back, act on the state it left:
//!         YIELDED  -> yield_task: the scheduler queues it and hands back the next task,
//!                     which runs at once (no trip through the loop), at most
//!                     DIRECT_RUNS_MAX times in a row and only while no timer is pending;
//!                     then requeue on this CPU and go round the loop
//!         BLOCKING -> publish BLOCKED (see wait.rs)
//!         DONE     -> finish (stack to pool, wake joiner, unregister)
//!         OVERFLOWED -> fail with StackOverflow, quarantine the stack, finish
//!     None: stop if shutting down, else park (the scheduler's announce/re-check, then the
//!           platform's bounded spin and futex wait) until woken, the next timer is due, or
//!           IDLE_RECHECK_NS passed (a task left in a busy CPU's next slot is not stranded)
//! }
//! ```
//!
//! # Thread-locals and migration
//! A task may suspend on one worker and resume on another. Every access to the worker's
//! thread-local goes through [`current_worker`], which is never inlined, so an address computed
//! before a switch is never reused after it (see `arch::suspend`'s precondition 3).

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::string::String;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::builder::Shared;
use super::overflow;
use super::task::{
    BLOCKING, DONE, Header, JoinError, OVERFLOWED, RUNNING, TaskRef, YIELDED, mark_joinable,
};
use super::timer::Timers;
use crate::arch::{TaskContext, exit, init_task, resume, suspend};
use crate::platform::Platform;
use crate::stack::TaskStack;

/// Calls of `next_task` with a spin hint in between before a worker parks.
pub(crate) const IDLE_SPIN_ROUNDS: u32 = 4;

/// Longest an idle worker sleeps before it looks for work again on its own (a bound on how long
/// a task can wait in a busy CPU's next slot while every other CPU sleeps; 100 wake-ups a second
/// per idle CPU).
pub(crate) const IDLE_RECHECK_NS: u64 = 10_000_000;

/// Tasks a worker runs back to back through `Scheduler::yield_task` before it goes back to
/// its loop (timers, the stats sampler): the loop's duties wait at most this many yields.
pub(crate) const DIRECT_RUNS_MAX: u32 = 64;

/// Per-worker state, living in a box owned by the worker thread for the whole loop.
pub(crate) struct Worker {
    /// Logical CPU (scheduler index).
    pub(crate) cpu: usize,
    /// The runtime; the worker holds an `Arc` to it for the whole loop, so the pointer is valid
    /// while `WORKER` points here.
    shared: *const Shared,
    /// The header of the task being run: set by the loop before `resume`, cleared after. Read
    /// by the task side and by the overflow handler (which finds the guard page there), both on
    /// this thread. A header pointer rather than one to the loop's `TaskRef`: one load less on
    /// every yield's way to the switch.
    pub(crate) running: Cell<*const Header>,
    /// Sleeping tasks' deadlines; used by tasks running on this worker and by the loop (this
    /// thread only, never both at once).
    pub(crate) timers: RefCell<Timers>,
    /// Task stacks this worker has started a task on (the next one's colour, see
    /// [`stack_colour_bytes`]); this thread only.
    stack_colour: Cell<usize>,
}

impl Worker {
    pub(crate) fn shared(&self) -> &Shared {
        // SAFETY: see the field's doc: the worker's Arc keeps it alive while we are reachable.
        unsafe { &*self.shared }
    }
    pub(crate) fn shared_ptr(&self) -> *const Shared {
        self.shared
    }
}

std::thread_local! {
    /// The worker this thread is running (null on other threads).
    static WORKER: Cell<*const Worker> = const { Cell::new(core::ptr::null()) };
}

/// This thread's worker, if it is one. Never inlined (see the module docs); do not keep the
/// reference across a switch.
#[inline(never)]
pub(crate) fn current_worker() -> Option<&'static Worker> {
    let w = WORKER.with(Cell::get);
    // SAFETY: non-null WORKER points at the worker box of this thread, alive until the loop
    // resets WORKER before dropping it. Callers do not hold the reference across a switch (the
    // task could resume elsewhere) nor past the loop.
    (!w.is_null()).then(|| unsafe { &*w })
}

/// The running task's header (`None` outside tasks).
#[inline(always)]
pub(crate) fn current_header() -> Option<*const Header> {
    let h = current_worker()?.running.get();
    (!h.is_null()).then_some(h)
}

/// A clone of the running task's handle.
pub(crate) fn current_task() -> Option<TaskRef> {
    let h = current_header()?;
    // SAFETY: a non-null `running` is the header of the task the loop holds (one count) while
    // the task runs, and we are that task.
    Some(unsafe { TaskRef::clone_of(&*h) })
}

/// Suspends the running task (whose header is `hdr`) back to its worker; the caller has set the
/// state the worker acts on. Always inlined, like its callers that tasks call in loops: a task
/// that suspends at the call depth where it was resumed keeps the return-stack predictor right
/// (`arch::resume`'s call is matched by this `ret`).
#[inline(always)]
pub(crate) fn suspend_running(hdr: &Header) {
    // SAFETY: we run on the task's stack and `hdr.ctx` is the context its worker resumed it
    // through (the worker set it up); the header is heap memory that outlives the switch.
    unsafe { suspend(hdr.ctx.get()) };
}

/// Gives the CPU to other runnable tasks; the caller goes to the back of its CPU's queue (behind
/// work waiting in its inbox and node injector). Outside a task it yields the OS thread.
///
/// Inlined into the caller, so that a task yielding in a loop suspends and resumes at the same
/// call depth (see `suspend_running`).
#[inline(always)]
pub fn yield_now() {
    let Some(hdr) = current_header() else {
        std::thread::yield_now();
        return;
    };
    // SAFETY: as in `wait::block`: the running task's header outlives the switch.
    let hdr = unsafe { &*hdr };
    hdr.state.store(YIELDED, Ordering::Relaxed);
    suspend_running(hdr);
}

/// From a task joining `child`: if `child` has not started and waits in this CPU's next slot,
/// takes it and runs it to completion right here, on the joiner's stack, and returns true (its
/// result is then stored and its join state DONE). Returns false, touching nothing, when the
/// runtime runs joins the ordinary way, the caller is not a task, the child is elsewhere or has
/// started, or less than half of the joiner's stack is left (a child expects a stack of its own).
pub(crate) fn run_child_inline(child: &Header) -> bool {
    let Some(w) = current_worker() else {
        return false;
    };
    let shared = w.shared();
    let t = w.running.get();
    if t.is_null() || !shared.join_inline {
        return false;
    }
    // SAFETY: as in `current_task`: the running task's header, held alive by the loop.
    let me = unsafe { &*t };
    let probe = 0u8;
    let sp = &raw const probe as usize;
    let room_bytes = sp.saturating_sub(me.guard_hi.load(Ordering::Relaxed));
    if room_bytes < shared.stack_bytes() / 2 {
        return false;
    }
    let Some(task) = shared.sched.take_next_if(w.cpu, |c| {
        // SAFETY: the task sits in this CPU's next slot and we hold the slot's lock, so no
        // worker runs it or touches its context; a context is written only by the worker
        // holding the task, before it queues the task (the lock orders that write before us).
        core::ptr::eq(c.hdr(), child) && !unsafe { (*c.hdr().ctx.get()).is_initialized() }
    }) else {
        return false;
    };
    // From here on `w` and `shared` are not used: the child may block or yield, and the joiner
    // (running the child) may resume on another worker.
    let hdr = task.hdr();
    // We hold the task exclusively (taken from the slot, never started): its body runs once.
    task.task().body.run(&hdr.name);
    hdr.state.store(DONE, Ordering::Release);
    let w = current_worker().unwrap_or_else(|| unreachable!("a task runs on a worker"));
    let shared = w.shared();
    // No stack was attached. Unregister first, as `finish` does.
    shared.unregister(&task);
    mark_joinable(hdr);
    true
}

/// The running task's name (empty outside tasks and for unnamed tasks).
pub fn current_name() -> String {
    current_header()
        // SAFETY: as in `yield_now`.
        .map(|h| unsafe { (*h).name.clone() })
        .unwrap_or_default()
}

/// The logical CPU of the worker running the caller (`None` outside the runtime's threads).
pub fn current_cpu() -> Option<usize> {
    current_worker().map(|w| w.cpu)
}

/// First code on a task's stack.
extern "sysv64" fn task_entry(_: usize) -> ! {
    let hdr = run_body();
    // SAFETY: the header is alive (the worker holds the task); this is the task's stack and
    // context; nothing on this frame needs dropping.
    unsafe { exit(hdr) }
}

/// Runs the task's closure and publishes DONE; returns the context to exit through. Kept out of
/// `task_entry` so every local is dropped before the final switch.
#[inline(never)]
fn run_body() -> *mut TaskContext {
    let w = current_worker().unwrap_or_else(|| unreachable!("a task runs on a worker"));
    let t = w.running.get();
    // SAFETY: the loop set `running` to the header of the task it holds while this task runs.
    // We keep a reference to the task allocation itself: the task may migrate while its body
    // runs, but the runtime's live-task registry holds a reference until the task is finished,
    // which is after this function returns.
    let task: &super::task::Task<dyn super::task::Run> = unsafe { &*(*t).task_ptr() };
    task.body.run(&task.hdr.name);
    task.hdr.state.store(DONE, Ordering::Release);
    task.hdr.ctx.get()
}

/// The worker thread's body. `ready` is called once the worker is registered (or failed).
pub(crate) fn worker_main(
    shared: Arc<Shared>,
    cpu: usize,
    ready: impl FnOnce(Result<i32, String>),
) {
    if let Some(os_cpu) = shared.pin_os_cpu(cpu)
        && let Err(e) = super::platform::pin_to(os_cpu)
    {
        ready(Err(std::format!("worker for CPU {cpu}: {e}")));
        shared.worker_exited(cpu);
        return;
    }
    let altstack = match overflow::AltStack::ensure() {
        Ok(a) => a,
        Err(e) => {
            ready(Err(std::format!("worker for CPU {cpu}: {e}")));
            shared.worker_exited(cpu);
            return;
        }
    };
    let name = std::format!("mc{}w{cpu}", shared.id);
    if let Ok(c) = std::ffi::CString::new(name) {
        // SAFETY: `c` is a NUL-terminated string of at most 15 bytes plus NUL (runtime ids and
        // CPU counts stay far below that); the call names the calling thread.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), c.as_ptr()) };
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let worker = Box::new(Worker {
        cpu,
        shared: Arc::as_ptr(&shared),
        running: Cell::new(core::ptr::null()),
        timers: RefCell::new(Timers::default()),
        stack_colour: Cell::new(0),
    });
    WORKER.with(|w| w.set(&*worker));
    ready(Ok(tid));
    worker_loop(&shared, &worker);
    WORKER.with(|w| w.set(core::ptr::null()));
    drop(worker);
    drop(altstack);
    shared.worker_exited(cpu);
}

fn worker_loop(shared: &Shared, worker: &Worker) {
    let sched = &shared.sched;
    let cpu = worker.cpu;
    'outer: loop {
        if !worker.timers.borrow().is_empty() {
            let now = sched.platform().now_ns();
            let due = worker.timers.borrow_mut().take_due(now);
            for w in due {
                w.signal();
            }
        }
        if shared.stats_sampler && cpu == 0 {
            shared.sample_wasted();
        }
        for _ in 0..IDLE_SPIN_ROUNDS {
            if let Some(t) = sched.next_task(cpu) {
                run(shared, worker, t);
                continue 'outer;
            }
            core::hint::spin_loop();
        }
        if shared.is_shutting_down() {
            break;
        }
        // Never sleep longer than IDLE_RECHECK_NS: no CPU is woken for a task put in a next
        // slot (see `Scheduler::wake`), so a task whose spawner or waker then runs for long is
        // taken by an idle CPU at its next look, at most this long after its grace period.
        let recheck = sched.platform().now_ns().saturating_add(IDLE_RECHECK_NS);
        let deadline = worker.timers.borrow().next_deadline();
        sched.park(cpu, Some(deadline.map_or(recheck, |d| d.min(recheck))));
    }
}

/// Runs `task`, then, while it yields and the scheduler hands back a task at once, runs that
/// one without going back to the loop (see `yield_task` in the module docs).
fn run(shared: &Shared, worker: &Worker, mut task: TaskRef) {
    let mut direct_runs = 0;
    loop {
        let Some(yielded) = run_once(shared, worker, task) else {
            return;
        };
        direct_runs += 1;
        // The loop's other duties (timers, the stats sampler) wait at most this many turns.
        if direct_runs >= DIRECT_RUNS_MAX || shared.stats_sampler || timers_pending(worker) {
            shared.sched.requeue(worker.cpu, yielded);
            return;
        }
        match shared.sched.yield_task(worker.cpu, yielded) {
            Some(next) => task = next,
            None => return,
        }
    }
}

/// Whether the worker has sleeping tasks' deadlines to watch (read without the `RefCell`'s
/// borrow bookkeeping: two stores fewer per yield).
#[inline(always)]
fn timers_pending(worker: &Worker) -> bool {
    // SAFETY: on the worker's own thread between two resumes: no task runs, so nothing holds a
    // mutable borrow of the timers (the loop's own borrows are scoped to single statements),
    // and the shared reference is dropped before anything can borrow them again.
    match unsafe { worker.timers.try_borrow_unguarded() } {
        Ok(t) => !t.is_empty(),
        Err(_) => true,
    }
}

/// Resumes `task` once and acts on the state it came back in; returns the task when it yielded
/// (the caller queues it or picks the next task with it).
#[inline(always)]
fn run_once(shared: &Shared, worker: &Worker, task: TaskRef) -> Option<TaskRef> {
    let hdr = task.hdr();
    hdr.last_cpu.store(worker.cpu, Ordering::Relaxed);
    let ctx = hdr.ctx.get();
    // SAFETY: this worker holds the task (it came out of a queue), so it alone touches `ctx`
    // and `stack` until it hands the task on.
    if !unsafe { (*ctx).is_initialized() } {
        match shared.stacks.get(Some(worker.cpu)) {
            Ok(s) => {
                let g = s.guard();
                hdr.guard_lo.store(g.start, Ordering::Relaxed);
                hdr.guard_hi.store(g.end, Ordering::Relaxed);
                let colour = worker.stack_colour.get();
                worker.stack_colour.set(colour.wrapping_add(1));
                let colour_bytes = stack_colour_bytes(colour, s.usable_bytes());
                // SAFETY: the stack is ours and stays attached to the task until it finishes;
                // the coloured top is a multiple of 64 bytes below the real one, at most a
                // sixteenth of the usable stack down, so the INIT_TASK_BYTES below it are
                // writable stack; task_entry never returns. We hold the task (see above).
                unsafe {
                    *ctx = init_task(s.top().wrapping_sub(colour_bytes), task_entry, 0);
                    *hdr.stack.get() = Some(s);
                }
            }
            Err(error) => {
                task.task().body.fail(JoinError::NoStack {
                    task: hdr.name.clone(),
                    error,
                });
                finish(shared, worker, task);
                return None;
            }
        }
    }
    hdr.state.store(RUNNING, Ordering::Relaxed);
    worker.running.set(hdr);
    // SAFETY: the context was prepared by init_task or saved by the task's last suspend, on its
    // live stack (attached to the task); only this worker resumes it now; the task does not
    // borrow anything of this frame.
    unsafe { resume(ctx) };
    worker.running.set(core::ptr::null());
    match hdr.state.load(Ordering::Acquire) {
        YIELDED => return Some(task),
        BLOCKING => {
            // Off the task's stack now: from here on anyone may resume it (wait.rs, step 3).
            if super::handshake::publish_blocked(&hdr.state, &hdr.notify) {
                shared.sched.requeue(worker.cpu, task);
            }
        }
        DONE => finish(shared, worker, task),
        OVERFLOWED => {
            // SAFETY: we hold the task; it never runs again.
            let stack = unsafe { (*hdr.stack.get()).take() };
            let stack_bytes = stack.as_ref().map_or(0, |s| s.usable_bytes());
            if let Some(s) = stack {
                s.quarantine();
            }
            task.task().body.fail(JoinError::StackOverflow {
                task: hdr.name.clone(),
                stack_bytes,
            });
            hdr.state.store(DONE, Ordering::Release);
            finish(shared, worker, task);
        }
        other => unreachable!("task '{}' came back in state {other}", hdr.name),
    }
    None
}

/// Most bytes a task's first frame is moved down from its stack's top (see
/// [`stack_colour_bytes`]).
const STACK_COLOUR_MAX_BYTES: usize = 4032;

/// How far below its stack's top a task starts: for the worker's `colour`-th task start, a
/// multiple of 64 bytes below 4 KiB (64 different offsets, consecutive starts spread over the
/// page), at most a sixteenth of the usable stack.
///
/// Every task stack is a fresh mapping of the same size, so without this, tasks that suspend
/// at the same call depth keep their saved registers at the same offset within a page. Then
/// the first loads after a switch (the next task popping its registers) hit the page offset
/// the previous task's pushes just wrote, and the CPU's memory disambiguation, which compares
/// only the low 12 address bits, makes them wait for those stores (4K aliasing): measured at
/// 17.3 ns against 11.4 ns per yield with four tasks on one CPU.
fn stack_colour_bytes(colour: usize, usable_bytes: usize) -> usize {
    let span = usable_bytes / 16;
    // The largest power of two not above `span` bounds the colour (no division per spawn).
    let bound = if span == 0 {
        0
    } else {
        1usize << (usize::BITS - 1 - span.leading_zeros())
    };
    // 320 = 5 x 64: an odd multiple of 64, so 64 consecutive colours cover every offset once.
    let offset = colour.wrapping_mul(320) & STACK_COLOUR_MAX_BYTES;
    offset & bound.wrapping_sub(1)
}

fn finish(shared: &Shared, worker: &Worker, task: TaskRef) {
    let hdr = task.hdr();
    // SAFETY: we hold the finished task; nobody else touches its stack.
    if let Some(s) = unsafe { (*hdr.stack.get()).take() } {
        shared.stacks.put(Some(worker.cpu), s);
    }
    // Unregister first: a task whose join has returned no longer counts as live.
    shared.unregister(&task);
    mark_joinable(hdr);
}
