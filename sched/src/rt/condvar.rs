//! A condition variable paired with the runtime's [`Mutex`], and an auto-reset [`Event`].
//!
//! Both keep a FIFO of [`Waiter`]s under a short internal lock. A condvar waiter registers
//! *before* it releases the mutex, so a notify issued by anyone who then takes the mutex finds
//! it. An event hands itself to the first waiter directly (the setter pops the waiter and
//! signals it instead of raising the flag), so each `set` releases exactly one `wait`.
//! Neither returns spuriously: a waiter leaves only when a notifier popped and signaled it
//! (see `wait.rs`).

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;

use super::mutex::{Mutex, MutexGuard};
use super::wait::{Waiter, wait_signaled};

/// Waits for a condition guarded by a [`Mutex`]. Works between tasks and OS threads alike.
#[derive(Default)]
pub struct Condvar {
    /// Waiters in arrival order; locked by waiters registering and notifiers popping.
    waiters: StdMutex<VecDeque<Waiter>>,
}

impl Condvar {
    /// A condvar with no waiters.
    pub const fn new() -> Condvar {
        Condvar {
            waiters: StdMutex::new(VecDeque::new()),
        }
    }

    /// Releases `guard`'s mutex, waits for a notification, and locks it again. Returns only
    /// after a `notify_one`/`notify_all` picked this waiter (no spurious wakeups), though the
    /// condition may have changed again by the time the mutex is retaken: check it in a loop.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex: &'a Mutex<T> = guard.mutex();
        let me = Waiter::current();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(me.clone());
        drop(guard);
        wait_signaled(&me);
        mutex.lock()
    }

    /// Waits until `done` returns true for the guarded value.
    pub fn wait_until<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut done: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while !done(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Wakes the longest-waiting waiter, if any.
    pub fn notify_one(&self) {
        let w = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some(w) = w {
            w.signal();
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let all = core::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        for w in all {
            w.signal();
        }
    }
}

/// An auto-reset event: `set` releases one waiter, or lets the next `wait` pass at once if nobody
/// waits (at most one pending set is remembered). Works between tasks and OS threads alike.
#[derive(Default)]
pub struct Event {
    state: StdMutex<EventState>,
}

#[derive(Default)]
struct EventState {
    set: bool,
    waiters: VecDeque<Waiter>,
}

impl Event {
    /// A new, unset event.
    pub const fn new() -> Event {
        Event {
            state: StdMutex::new(EventState {
                set: false,
                waiters: VecDeque::new(),
            }),
        }
    }

    /// Waits until the event is set for this waiter (consuming the set).
    pub fn wait(&self) {
        let me = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.set {
                st.set = false;
                return;
            }
            let me = Waiter::current();
            st.waiters.push_back(me.clone());
            me
        };
        wait_signaled(&me);
    }

    /// Returns at once: true if the event was set (consuming it).
    pub fn try_wait(&self) -> bool {
        core::mem::take(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()).set)
    }

    /// Releases the longest waiter, or remembers the set if nobody waits.
    pub fn set(&self) {
        let w = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.waiters.pop_front() {
                Some(w) => Some(w),
                None => {
                    st.set = true;
                    None
                }
            }
        };
        if let Some(w) = w {
            w.signal();
        }
    }
}
