//! Blocking and waking: the park token of a task ([`block`], [`TaskWaker`]) and the one-shot
//! wait-queue entry every blocking primitive is built on ([`Waiter`]).
//!
//! # The park token (tasks)
//! Like `std::thread::park`, a task has a token. [`TaskWaker::wake`] sets it; [`block`]
//! consumes it and returns at once if it was set, otherwise suspends the task until a wake.
//! `block` may return spuriously; callers re-check their condition. Step by step:
//!
//! 1. The task: `notify.swap(false)`; if it was set, return.
//! 2. The task stores BLOCKING and suspends to its worker. It is still on its stack until the
//!    switch completes, so nobody may resume it yet: wakers only CAS from BLOCKED.
//! 3. The worker (now off the task's stack) stores BLOCKED, then a SeqCst fence, then reads
//!    `notify`: if set, it CASes BLOCKED to RUNNABLE and requeues the task itself.
//! 4. A waker stores `notify = true`, a SeqCst fence, then CASes BLOCKED to RUNNABLE; on
//!    success it hands the task to the scheduler's wake placement.
//! 5. The resumed task clears `notify`: the wake that resumed it is used up.
//!
//! Steps 3 and 4 are the two halves of a Dekker pattern: either the worker sees the token or the
//! waker sees BLOCKED (or both, and the CAS picks one). No wake is lost.
//!
//! # Waiters (tasks and OS threads alike)
//! A wait queue holds [`Waiter`]s. A waiter is registered under the primitive's lock with its
//! `signaled` flag cleared, and stays registered until a notifier pops it, sets `signaled` and
//! wakes it. The waiting side loops on `signaled` (blocking on the token in between), so a
//! spurious return from `block` never makes it leave the queue early: no queue ever holds a stale
//! entry, and every pop reaches a real waiter. A task waits for one thing at a time, so its
//! flag lives in its header; an OS thread's lives in a small shared node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, Thread};

use super::handshake;
use super::task::{BLOCKING, TaskRef};
use super::worker::{current_header, current_task, current_worker, suspend_running};

/// A handle that wakes one task (its park token): see the module docs.
#[derive(Clone)]
pub struct TaskWaker(pub(crate) TaskRef);

impl TaskWaker {
    /// Wakes the task if it is blocked, or makes its next [`block`] return at once.
    pub fn wake(&self) {
        if set_token(&self.0) {
            wake_task(self.0.clone());
        }
    }

    /// [`TaskWaker::wake`], consuming the handle (no reference-count traffic).
    pub fn wake_by_value(self) {
        if set_token(&self.0) {
            wake_task(self.0);
        }
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.0.hdr().name
    }
}

impl std::fmt::Debug for TaskWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TaskWaker").field(&self.name()).finish()
    }
}

/// Step 4 of the module docs (`handshake.rs`): whether this call moved the task from BLOCKED to
/// RUNNABLE (then the caller must hand it to the scheduler).
fn set_token(t: &TaskRef) -> bool {
    handshake::set_token(&t.hdr().state, &t.hdr().notify)
}

/// Hands a task that just became RUNNABLE to its runtime's scheduler.
pub(crate) fn wake_task(task: TaskRef) {
    // From a worker of the task's own runtime, use its `Shared` without touching the Weak's
    // counts; otherwise upgrade (the runtime may be gone: then nobody will run the task).
    if let Some(w) = current_worker()
        && core::ptr::eq(w.shared_ptr(), task.hdr().shared.as_ptr())
    {
        w.shared().sched.wake(task);
        return;
    }
    let shared = task.hdr().shared.upgrade();
    if let Some(shared) = shared {
        shared.sched.wake(task);
    }
}

/// A waker for the current task (`None` outside tasks).
pub fn current_waker() -> Option<TaskWaker> {
    current_task().map(TaskWaker)
}

/// Blocks the current task until a [`TaskWaker::wake`] (possibly one that came earlier). May
/// return spuriously. Outside a task, parks the OS thread (`std::thread::park`), which has the
/// same token semantics for `Thread::unpark`.
pub fn block() {
    let Some(hdr) = current_header() else {
        thread::park();
        return;
    };
    // SAFETY: the running task's header stays alive while it runs or is blocked (its worker,
    // then its wakers and the runtime's registry, hold references), and it is heap memory, so
    // the reference stays valid across the switch even if the task resumes on another thread.
    let hdr = unsafe { &*hdr };
    if handshake::take_token(&hdr.notify) {
        return;
    }
    hdr.state.store(BLOCKING, Ordering::Relaxed);
    suspend_running(hdr);
    // Step 5: only wakes from before this point are cleared, and they are covered by the
    // caller's re-check.
    hdr.notify.store(false, Ordering::Relaxed);
}

/// One entry of a wait queue: a task or an OS thread, with a one-shot `signaled` flag.
#[derive(Clone)]
pub(crate) enum Waiter {
    Task(TaskRef),
    Thread(Arc<ThreadNode>),
}

pub(crate) struct ThreadNode {
    signaled: AtomicBool,
    thread: Thread,
}

impl Waiter {
    /// A waiter for the caller (its task, else its thread), with `signaled` cleared. Register it
    /// under the primitive's lock, release the lock, then [`wait_signaled`].
    pub(crate) fn current() -> Waiter {
        match current_task() {
            Some(t) => {
                t.hdr().signaled.store(false, Ordering::Relaxed);
                Waiter::Task(t)
            }
            None => Waiter::Thread(Arc::new(ThreadNode {
                signaled: AtomicBool::new(false),
                thread: thread::current(),
            })),
        }
    }

    /// Marks the waiter signaled and wakes it. Call once per registration, after popping it.
    pub(crate) fn signal(self) {
        match self {
            Waiter::Task(t) => {
                t.hdr().signaled.store(true, Ordering::Release);
                TaskWaker(t).wake_by_value();
            }
            Waiter::Thread(n) => {
                n.signaled.store(true, Ordering::Release);
                n.thread.unpark();
            }
        }
    }

    fn is_signaled(&self) -> bool {
        match self {
            Waiter::Task(t) => t.hdr().signaled.load(Ordering::Acquire),
            Waiter::Thread(n) => n.signaled.load(Ordering::Acquire),
        }
    }
}

/// What the caller keeps of its own [`Waiter`] after handing the waiter itself to a queue: for a
/// task nothing at all (its flag is in its own header, found again after every resume), for a
/// thread its node.
pub(crate) enum Probe {
    Task,
    Thread(Arc<ThreadNode>),
}

impl Waiter {
    /// The probe for this waiter, which must be the caller's own ([`Waiter::current`]): then a
    /// task's probe costs no reference count.
    pub(crate) fn probe(&self) -> Probe {
        match self {
            Waiter::Task(_) => Probe::Task,
            Waiter::Thread(n) => Probe::Thread(n.clone()),
        }
    }
}

/// Blocks until the caller's own waiter, whose probe is `p`, is signaled.
pub(crate) fn wait_probe(p: &Probe) {
    match p {
        Probe::Task => loop {
            let Some(hdr) = current_header() else {
                unreachable!("a task's probe is waited on by that task")
            };
            // SAFETY: the running task's header is alive while it runs (see `block`).
            if unsafe { (*hdr).signaled.load(Ordering::Acquire) } {
                return;
            }
            block();
        },
        Probe::Thread(n) => {
            while !n.signaled.load(Ordering::Acquire) {
                block();
            }
        }
    }
}

/// Blocks until `w` (the caller's own waiter) is signaled.
pub(crate) fn wait_signaled(w: &Waiter) {
    while !w.is_signaled() {
        block();
    }
}
