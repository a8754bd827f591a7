//! A mutex that blocks the task, not the worker.
//!
//! # Protocol
//! `state` is 0 (unlocked), 1 (locked, no waiter) or 2 (locked, maybe waiters).
//! - **lock**: CAS 0 to 1; on failure retry a bounded number of times ([`MUTEX_SPIN_ROUNDS`],
//!   for holders running on another CPU), then take the waiter-queue lock, `swap(2)`: if it
//!   returned 0 the lock is ours; otherwise enqueue ourselves, release the queue lock and wait to
//!   be signaled, then try again.
//! - **unlock**: `swap(0)`; if it returned 2, take the queue lock, pop one waiter and signal it.
//!
//! A waiter enqueues only after its `swap(2)` saw the mutex held, under the queue lock; the
//! holder's `swap(0)` then returns 2 and its pop (which waits for the queue lock) finds the
//! waiter. So no unlock can miss a waiter. A woken waiter competes again (no handoff): a running
//! task may barge in first, which keeps the lock hot on one CPU, and the waiter re-queues.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::wait::{Waiter, wait_signaled};

/// Failed attempts (each with a spin hint) before a locker blocks.
pub const MUTEX_SPIN_ROUNDS: u32 = 64;

/// A mutual-exclusion lock for tasks (and OS threads) of the runtime. A task blocked on it
/// gives its CPU to other tasks.
pub struct Mutex<T: ?Sized> {
    /// 0 / 1 / 2 (module docs). Any locker or the holder.
    state: AtomicU32,
    /// Waiters, in arrival order; locked briefly by lockers that block and by unlockers.
    waiters: StdMutex<VecDeque<Waiter>>,
    value: UnsafeCell<T>,
}

// SAFETY: the protocol gives `&mut T` to one holder at a time; `T: Send` lets it be used from
// whichever thread holds the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: the mutex owns its `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU32::new(0),
            waiters: StdMutex::new(VecDeque::new()),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, blocking the calling task (or thread) while another holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard { mutex: self }
    }

    /// Locks if nobody holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            // `then`, not `then_some`: a guard built eagerly would unlock on drop.
            .then(|| MutexGuard { mutex: self })
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    #[cold]
    fn lock_slow(&self) {
        for _ in 0..MUTEX_SPIN_ROUNDS {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        loop {
            let me = {
                let mut q = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
                if self.state.swap(2, Ordering::Acquire) == 0 {
                    return;
                }
                let me = Waiter::current();
                q.push_back(me.clone());
                me
            };
            wait_signaled(&me);
            if self.state.swap(2, Ordering::Acquire) == 0 {
                return;
            }
        }
    }

    fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            let next = self
                .waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            if let Some(w) = next {
                w.signal();
            }
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex")
            .field("locked", &(self.state.load(Ordering::Relaxed) != 0))
            .finish_non_exhaustive()
    }
}

/// Holds a [`Mutex`] locked; unlocks on drop.
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard holds (for [`Condvar`](super::Condvar)).
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this holder owns the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}
