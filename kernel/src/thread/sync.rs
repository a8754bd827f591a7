//! Blocking synchronisation for kernel threads: a mutex and a bounded MPMC channel.
//!
//! Both park waiting threads on a wait queue (no spinning while blocked) and follow the blocking
//! protocol of [`super`]: with interrupts off, enqueue self and mark blocked under the structure's
//! lock, release the lock, switch away; the waker dequeues under the same lock and calls
//! [`super::wake`]. Interrupts stay off from the check to the switch so a timer preemption cannot
//! requeue a thread that is already on a wait queue.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Thread, block_now, current_thread, mark_blocked, wake};
use crate::arch::cpu;
use crate::sync::SpinLock;

fn restore_interrupts(was_on: bool) {
    if was_on {
        cpu::interrupts_enable();
    }
}

struct MutexState {
    locked: bool,
    waiters: VecDeque<Arc<Thread>>,
}

/// A mutex whose waiters sleep. Unlock hands no ownership: the woken waiter competes again
/// (barging), which keeps unlock O(1) and cannot lose a wake-up.
pub struct Mutex<T> {
    state: SpinLock<MutexState>,
    value: UnsafeCell<T>,
    /// Times a locker had to sleep (evidence of contention).
    pub waits: AtomicU64,
}

// SAFETY: the value is reached only through a guard, which exists for one holder at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the value.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex.
    pub fn new(value: T) -> Self {
        Self {
            state: SpinLock::new(MutexState {
                locked: false,
                waiters: VecDeque::new(),
            }),
            value: UnsafeCell::new(value),
            waits: AtomicU64::new(0),
        }
    }

    /// Locks, sleeping while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            // Interrupts stay off from the check to the switch, so a preemption cannot split
            // "marked blocked" from "switched away" (see the module doc).
            let irq = cpu::interrupts_disable();
            let mut st = self.state.lock();
            if !st.locked {
                st.locked = true;
                drop(st);
                restore_interrupts(irq);
                return MutexGuard { mutex: self };
            }
            let me = current_thread().expect("Mutex::lock from a kernel thread");
            mark_blocked(&me);
            st.waiters.push_back(me);
            drop(st);
            self.waits.fetch_add(1, Ordering::Relaxed);
            block_now();
            restore_interrupts(irq);
        }
    }

    fn unlock(&self) {
        let mut st = self.state.lock();
        st.locked = false;
        let next = st.waiters.pop_front();
        drop(st);
        if let Some(t) = next {
            wake(t);
        }
    }
}

/// Access to a locked [`Mutex`].
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the mutex.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the mutex.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

struct ChannelState<T> {
    items: VecDeque<T>,
    senders: VecDeque<Arc<Thread>>,
    receivers: VecDeque<Arc<Thread>>,
}

/// A bounded multi-producer multi-consumer FIFO channel whose blocked senders and receivers sleep.
pub struct Channel<T> {
    state: SpinLock<ChannelState<T>>,
    capacity: usize,
}

impl<T> Channel<T> {
    /// A channel holding at most `capacity` (≥ 1) items.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: SpinLock::new(ChannelState {
                items: VecDeque::with_capacity(capacity.max(1)),
                senders: VecDeque::new(),
                receivers: VecDeque::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// Sends, sleeping while the channel is full.
    pub fn send(&self, item: T) {
        let mut item = Some(item);
        loop {
            let irq = cpu::interrupts_disable();
            let mut st = self.state.lock();
            if st.items.len() < self.capacity {
                st.items.push_back(item.take().expect("sent once"));
                let r = st.receivers.pop_front();
                drop(st);
                if let Some(r) = r {
                    wake(r);
                }
                restore_interrupts(irq);
                return;
            }
            let me = current_thread().expect("Channel::send from a kernel thread");
            mark_blocked(&me);
            st.senders.push_back(me);
            drop(st);
            block_now();
            restore_interrupts(irq);
        }
    }

    /// Receives, sleeping while the channel is empty.
    pub fn recv(&self) -> T {
        loop {
            let irq = cpu::interrupts_disable();
            let mut st = self.state.lock();
            if let Some(item) = st.items.pop_front() {
                let s = st.senders.pop_front();
                drop(st);
                if let Some(s) = s {
                    wake(s);
                }
                restore_interrupts(irq);
                return item;
            }
            let me = current_thread().expect("Channel::recv from a kernel thread");
            mark_blocked(&me);
            st.receivers.push_back(me);
            drop(st);
            block_now();
            restore_interrupts(irq);
        }
    }
}
