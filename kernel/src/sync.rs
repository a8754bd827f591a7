//! Kernel locks: a spin lock that holds interrupts off while it is held.
//!
//! The kernel takes these locks from thread context and from interrupt handlers (the serial
//! console, the frame pools), so a holder must never be interrupted by a handler that takes the same
//! lock on the same CPU: [`SpinLock::lock`] disables interrupts first and restores the caller's
//! interrupt flag when the guard drops. Critical sections are short (a few hundred instructions);
//! nothing sleeps while holding one.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::cpu;

/// A test-and-test-and-set spin lock; interrupts stay off on the holding CPU while it is held.
pub struct SpinLock<T> {
    /// Set by the CPU that holds the lock, cleared when its guard drops.
    locked: AtomicBool,
    /// Accessed only through a guard, i.e. by the one CPU holding `locked`.
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one CPU at a time (acquire on lock, release on
// unlock), so sharing the lock is sound whenever `T` may be sent between CPUs.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let irq_was_on = cpu::interrupts_disable();
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return SpinGuard {
                    lock: self,
                    irq_was_on,
                };
            }
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    /// Like [`lock`](Self::lock) but gives up after `spins_max` failed attempts (used on the panic
    /// path, where the lock may be held by the CPU that is panicking).
    pub fn try_lock_for(&self, spins_max: u64) -> Option<SpinGuard<'_, T>> {
        let irq_was_on = cpu::interrupts_disable();
        for _ in 0..spins_max {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(SpinGuard {
                    lock: self,
                    irq_was_on,
                });
            }
            core::hint::spin_loop();
        }
        if irq_was_on {
            cpu::interrupts_enable();
        }
        None
    }
}

/// Exclusive access to a [`SpinLock`]'s value; unlocks and restores the interrupt flag on drop.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    irq_was_on: bool,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this CPU holds `locked`.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this CPU holds `locked`.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        if self.irq_was_on {
            cpu::interrupts_enable();
        }
    }
}

/// A value written once during boot and read-only afterwards (boot information, the topology).
pub struct Once<T> {
    /// 0 = empty, 1 = being written, 2 = ready. Written by the one initialising CPU; read by all.
    state: core::sync::atomic::AtomicU8,
    value: UnsafeCell<core::mem::MaybeUninit<T>>,
}

// SAFETY: the value is written by one CPU before `state` becomes READY (release) and only read
// after observing READY (acquire); after that it is shared read-only, so `T: Sync + Send` suffices.
unsafe impl<T: Sync + Send> Sync for Once<T> {}

const ONCE_EMPTY: u8 = 0;
const ONCE_WRITING: u8 = 1;
const ONCE_READY: u8 = 2;

impl<T> Once<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            state: core::sync::atomic::AtomicU8::new(ONCE_EMPTY),
            value: UnsafeCell::new(core::mem::MaybeUninit::uninit()),
        }
    }

    /// Stores `value`; returns it back if the cell was already set.
    pub fn set(&self, value: T) -> Result<&T, T> {
        if self
            .state
            .compare_exchange(
                ONCE_EMPTY,
                ONCE_WRITING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(value);
        }
        // SAFETY: the CAS above made this CPU the only writer, and no reader looks before READY.
        let slot = unsafe { &mut *self.value.get() };
        slot.write(value);
        self.state.store(ONCE_READY, Ordering::Release);
        // SAFETY: just initialised; READY from now on, so shared references are valid.
        Ok(unsafe { slot.assume_init_ref() })
    }

    /// The value, once set.
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == ONCE_READY {
            // SAFETY: READY is stored (release) only after the value was written, and it is never
            // written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}
