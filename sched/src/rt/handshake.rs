//! The block/wake handshake of `wait.rs` (steps 1, 3 and 4 of its docs) as three functions on
//! the task's `state` and `notify` words, written against the crate's `sync` module so the loom
//! model below checks the very code the runtime runs:
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p manycore-sched --release --lib loom`

use crate::sync::{AtomicBool, AtomicU32, Ordering, fence};

/// Queued somewhere, or about to be.
pub(crate) const RUNNABLE: u32 = 0;
/// Asked to block (set by the task before it suspends; the worker publishes BLOCKED).
pub(crate) const BLOCKING: u32 = 3;
/// Off every queue until a wake moves it to RUNNABLE.
pub(crate) const BLOCKED: u32 = 4;

/// Task side, step 1: consumes a pending token. A load then a store rather than a swap: a wake
/// landing in between merges with this one, which is fine because the caller re-checks its
/// condition either way.
#[inline]
pub(crate) fn take_token(notify: &AtomicBool) -> bool {
    if notify.load(Ordering::Acquire) {
        notify.store(false, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// Worker side, step 3, once the task has suspended in BLOCKING: publishes BLOCKED and returns
/// whether a token arrived meanwhile and this call moved the task back to RUNNABLE (then the
/// worker requeues it).
#[inline]
pub(crate) fn publish_blocked(state: &AtomicU32, notify: &AtomicBool) -> bool {
    // Release: a waker that CASes BLOCKED away also sees the context the switch saved.
    state.store(BLOCKED, Ordering::Release);
    fence(Ordering::SeqCst);
    notify.load(Ordering::Relaxed)
        && state
            .compare_exchange(BLOCKED, RUNNABLE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

/// Waker side, step 4: sets the token and returns whether this call moved the task from BLOCKED
/// to RUNNABLE (then the waker hands it to the scheduler).
#[inline]
pub(crate) fn set_token(state: &AtomicU32, notify: &AtomicBool) -> bool {
    notify.store(true, Ordering::Release);
    fence(Ordering::SeqCst);
    state.load(Ordering::Relaxed) == BLOCKED
        && state
            .compare_exchange(BLOCKED, RUNNABLE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    use super::*;
    use crate::sync::Arc;

    /// A task has just suspended in BLOCKING. A waker sets the token while its worker publishes
    /// BLOCKED. Whatever the interleaving, the task is handed back to a run queue exactly once:
    /// zero would be a lost wakeup, two a task running on two CPUs.
    #[test]
    fn block_and_wake_requeue_exactly_once() {
        loom::model(|| {
            let state = Arc::new(AtomicU32::new(BLOCKING));
            let notify = Arc::new(AtomicBool::new(false));
            let queued = Arc::new(AtomicUsize::new(0));
            let (s2, n2, q2) = (state.clone(), notify.clone(), queued.clone());
            let waker = thread::spawn(move || {
                if set_token(&s2, &n2) {
                    q2.fetch_add(1, Ordering::Relaxed);
                }
            });
            if publish_blocked(&state, &notify) {
                queued.fetch_add(1, Ordering::Relaxed);
            }
            waker.join().unwrap();
            assert_eq!(queued.load(Ordering::Relaxed), 1);
            assert_eq!(state.load(Ordering::Relaxed), RUNNABLE);
        });
    }

    /// The token arrives before the task blocks: the task's step 1 consumes it and does not
    /// block; a second wake then finds the task RUNNING-like (not BLOCKED) and queues nothing.
    #[test]
    fn a_token_before_blocking_is_consumed_not_lost() {
        loom::model(|| {
            let state = Arc::new(AtomicU32::new(RUNNABLE));
            let notify = Arc::new(AtomicBool::new(false));
            let (s2, n2) = (state.clone(), notify.clone());
            let waker = thread::spawn(move || set_token(&s2, &n2));
            waker.join().unwrap();
            assert!(take_token(&notify), "the early wake is seen by the task");
            assert!(
                !set_token(&state, &notify),
                "a running task is never queued by a wake"
            );
        });
    }
}
