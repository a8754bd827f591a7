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
//!                     (most yields never come back here: see "Hand-offs" below)
//!         BLOCKING -> publish BLOCKED (see wait.rs)
//!         DONE     -> finish (stack to pool, wake joiner, unregister)
//!         OVERFLOWED -> fail with StackOverflow, quarantine the stack, finish
//!     None: stop if shutting down, else park (the scheduler's announce/re-check, then the
//!           platform's bounded spin and futex wait) until woken, the next timer is due, or
//!           IDLE_RECHECK_NS passed (a task left in a busy CPU's next slot is not stranded)
//! }
//! ```
//!
//! # Hand-offs: task to task on a yield
//! A yield on the scheduler's fast path (`YieldLane::pick` in scheduler.rs) does not go back to
//! the worker: the yielding task A takes the next task B itself and switches straight into B's
//! saved context (`arch::switch_task`), on behalf of the worker that resumed A. One stack
//! switch instead of two, and none of the worker's spilled registers are reloaded. The rules:
//! - `Worker::running` owns the running task's handle (one count), whoever started it; A
//!   replaces it with B before the switch, so the overflow handler, `current_task` and the
//!   worker, when B finally suspends to it, all see B.
//! - A may not be queued before its context is saved (a thief would resume a stale context),
//!   so A passes its own handle and its worker through the switch (in registers, see
//!   `arch::switch_task`), and B, right after its switch returns (`land`), queues A with
//!   `YieldLane::push`: no thread-local look-up on the way. Every suspension point of a
//!   task calls `land`, so a task suspended through the worker can be resumed by a hand-off and
//!   the other way round.
//! - Only started tasks are switched into; a fresh B is left in `Worker::pending_next` and A
//!   suspends to the worker, which queues A and starts B.
//! - The worker's duties between tasks (timers, the stats sampler) wait at most
//!   HANDOFFS_MAX hand-offs: the budget `Worker::handoffs_left` is refilled only at the top of
//!   the worker loop, and no hand-off is made while a timer is pending.
//! - Return-stack predictor: the worker's `call` into A is matched by the `ret` of whichever
//!   task suspends back to it; hand-offs are indirect jumps (see `arch::switch_task`).
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
use crate::arch::{TaskContext, exit, init_task, resume, suspend, switch_task};
use crate::platform::Platform;
use crate::scheduler::{YieldLane, YieldPick};
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

/// Yields a worker's tasks hand the CPU over among themselves (task to task, see the module
/// docs) before one goes back to the worker loop: the loop's duties wait at most this many
/// hand-offs.
pub(crate) const HANDOFFS_MAX: u32 = 64;

/// Per-worker state, living in a box owned by the worker thread for the whole loop.
pub(crate) struct Worker {
    /// Logical CPU (scheduler index).
    pub(crate) cpu: usize,
    /// The runtime; the worker holds an `Arc` to it for the whole loop, so the pointer is valid
    /// while `WORKER` points here.
    shared: *const Shared,
    /// The task being run, owning one count (`TaskRef::into_raw`): set by the loop before
    /// `resume`, taken back after it, replaced by a yielding task on a hand-off. Read by the
    /// task side and by the overflow handler (which finds the guard page there), all on this
    /// thread. A header pointer rather than a `TaskRef`'s address: one load less on every
    /// yield's way to the switch.
    pub(crate) running: Cell<*const Header>,
    /// A fresh task a yielder picked but could not switch into (owning one count, or null):
    /// the loop starts it after queueing the yielder. This thread only.
    pending_next: Cell<*const Header>,
    /// Hand-offs left before the loop's next round (see HANDOFFS_MAX); 0 when the stats
    /// sampler runs (every yield goes through the loop then). This thread only.
    handoffs_left: Cell<u32>,
    /// This CPU's yield fast path in the scheduler, resolved at start (the worker's Arc keeps
    /// the scheduler alive).
    lane: YieldLane<TaskRef>,
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
    let (prev, worker) = unsafe { suspend(hdr.ctx.get()) };
    land(prev, worker);
}

/// Run by a task right after each of its switches returns (it was resumed), with the words its
/// resumer passed: `prev` non-zero when a task handed the CPU over to it (`try_handoff`), then
/// the yielder's handle and `worker` the worker both run on; queues the yielder.
#[inline(always)]
fn land(prev: usize, worker: usize) {
    if prev != 0 {
        // SAFETY: `try_handoff` passed its own handle (one count, from `into_raw`) and its
        // worker, on this thread, whose box outlives every task it runs; each switch's words
        // are received once. The yielder's context was saved before the switch that brought
        // us here, on this thread, so a thief that takes it from the ring sees that store (the
        // ring's push publishes it).
        let (prev, w) = unsafe {
            (
                TaskRef::from_raw(prev as *const Header),
                &*(worker as *const Worker),
            )
        };
        // SAFETY: the worker's Arc keeps the lane's scheduler alive; we run on its CPU's
        // worker, right after the pick whose `Next` we are (no owner call in between).
        unsafe { w.lane.push(&w.shared().sched, prev) };
    }
}

/// The yield's hand-off attempt (see "Hand-offs"): returns true when the task has yielded
/// (and was resumed again, or was the only runnable one), false when the caller must suspend
/// to the worker as YIELDED (the fast path does not apply, the budget is used up, or the next
/// task is fresh and waits in `pending_next`).
#[inline(always)]
fn try_handoff(w: &Worker, hdr: &Header) -> bool {
    let left = w.handoffs_left.get();
    if left == 0 || timers_pending(w) {
        return false;
    }
    // SAFETY: the worker's Arc keeps the scheduler that made the lane alive; we run on the
    // worker that owns the lane's CPU.
    let next = match unsafe { w.lane.pick() } {
        YieldPick::Slow => return false,
        YieldPick::Alone => {
            w.handoffs_left.set(left - 1);
            return true;
        }
        YieldPick::Next(next) => next,
    };
    w.handoffs_left.set(left - 1);
    let nh = next.hdr();
    let to = nh.ctx.get();
    // SAFETY: we hold `next` (taken from this CPU's queue), so only we touch its context.
    if !unsafe { (*to).is_initialized() } {
        w.pending_next.set(next.into_raw());
        return false;
    }
    nh.last_cpu.store(w.cpu, Ordering::Relaxed);
    nh.state.store(RUNNING, Ordering::Relaxed);
    hdr.state.store(YIELDED, Ordering::Relaxed);
    let me = w.running.replace(next.into_raw());
    // SAFETY: we run on our own stack and `hdr.ctx` is the context our worker resumed us
    // through (its `parent_sp` is that worker's); `to` was saved by `next`'s last suspension
    // (initialized, and a task is queued only once suspended and not exited), and holding
    // `next` makes us the only one resuming it. Our handle goes through the switch to `next`,
    // which queues it once this switch has saved our context. Headers are heap memory that
    // outlive the switch; nothing of the worker's frame is lent to tasks.
    let (prev, worker) =
        unsafe { switch_task(hdr.ctx.get(), to, me as usize, w as *const Worker as usize) };
    land(prev, worker);
    true
}

/// Gives the CPU to other runnable tasks; the caller goes to the back of its CPU's queue (behind
/// work waiting in its inbox and node injector). Outside a task it yields the OS thread.
///
/// Inlined into the caller, so that a task yielding in a loop suspends and resumes at the same
/// call depth (see `suspend_running`).
#[inline(always)]
pub fn yield_now() {
    let Some(w) = current_worker().filter(|w| !w.running.get().is_null()) else {
        std::thread::yield_now();
        return;
    };
    // SAFETY: as in `wait::block`: the running task's header outlives the switch.
    let hdr = unsafe { &*w.running.get() };
    if try_handoff(w, hdr) {
        return;
    }
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
        pending_next: Cell::new(core::ptr::null()),
        handoffs_left: Cell::new(0),
        lane: shared.sched.yield_lane(cpu),
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
        worker.handoffs_left.set(if shared.stats_sampler {
            0
        } else {
            HANDOFFS_MAX
        });
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
        let fresh = worker.pending_next.replace(core::ptr::null());
        if !fresh.is_null() {
            // A yielder picked a task not started yet (see "Hand-offs"): the hand-off it
            // could not make, made here. Bounded by the hand-off budget it used.
            shared.sched.yield_push(worker.cpu, yielded);
            // SAFETY: `pending_next` owned the count (`into_raw`), taken once (cleared above).
            task = unsafe { TaskRef::from_raw(fresh) };
            continue;
        }
        direct_runs += 1;
        // The loop's other duties (timers, the stats sampler) wait at most this many turns.
        if direct_runs >= DIRECT_RUNS_MAX
            || worker.handoffs_left.get() == 0
            || shared.stats_sampler
            || timers_pending(worker)
        {
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
    // SAFETY: on the worker's own thread, between two resumes or from a task at its yield:
    // nothing holds a mutable borrow of the timers then (the loop's and `sleep`'s borrows are
    // scoped to single statements, none spans a yield), and the shared reference is dropped
    // before anything can borrow them again.
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
    worker.running.set(task.into_raw());
    // SAFETY: the context was prepared by init_task or saved by the task's last suspend, on its
    // live stack (attached to the task); only this worker resumes it now; the task does not
    // borrow anything of this frame.
    unsafe { resume(ctx) };
    // The task that came back: the one resumed, or the last one it handed the CPU to.
    // SAFETY: `running` owns one count (set above or by a hand-off), taken back once.
    let task = unsafe { TaskRef::from_raw(worker.running.replace(core::ptr::null())) };
    let hdr = task.hdr();
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
/// 17.3 ns against 11.4 ns per yield with four tasks on one CPU, when every yield went through
/// the worker. Since yields hand off task to task (see "Hand-offs") the yield no longer depends
/// on the colouring (the same 9.2-9.3 ns with every task at the same offset, loaded machine);
/// it stays for the yields that still go through the worker (a timer pending, the stats
/// sampler, the hand-off budget used up) and costs one multiply per task start.
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
