//! Awaiting futures inside a task: [`block_on`] polls a future with a [`Waker`] that wakes the
//! task, and blocks the *task* (its worker runs other tasks) while the future is pending.
//!
//! The waker is the task's park token ([`TaskWaker`]): a wake before the task blocks makes the
//! block return at once, and wakes that arrive after the future completed only cause a spurious
//! poll of nothing (the task has moved on and re-checks whatever it blocks on next). Outside a
//! task, `block_on` parks the OS thread the same way.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use super::wait::{TaskWaker, block, current_waker};

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        TaskWaker::wake(&self);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        TaskWaker::wake(self);
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl TaskWaker {
    /// A standard [`Waker`] that wakes this task.
    pub fn into_waker(self) -> Waker {
        Waker::from(Arc::new(self))
    }
}

/// Runs `fut` to completion on the calling task (or thread), blocking it between polls.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = match current_waker() {
        Some(w) => w.into_waker(),
        None => Waker::from(Arc::new(ThreadWaker(thread::current()))),
    };
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        block();
    }
}
