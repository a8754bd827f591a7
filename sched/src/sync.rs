//! Every atomic, cell and lock the scheduler uses, in one place: `core`/`alloc` normally, loom's
//! model-checked versions under `cfg(loom)` (run `RUSTFLAGS="--cfg loom" cargo test -p
//! manycore-sched --release`).

#[cfg(all(not(loom), test))]
#[allow(unused_imports)]
pub(crate) use alloc::sync::Arc;
#[cfg(all(loom, test))]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

/// A cell with tokio-style closures so the same code runs under loom, which tracks accesses.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

#[cfg(loom)]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(v: T) -> Self {
        UnsafeCell(loom::cell::UnsafeCell::new(v))
    }
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }
}

/// A cell with tokio-style closures so the same code runs under loom, which tracks accesses.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(v: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(v))
    }
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// One spin of a bounded wait loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// A test-and-test-and-set spin lock for short critical sections (a few loads and stores).
///
/// Used by the injectors and next slots, whose critical sections copy at most a batch of
/// handles. A kernel with preemption must hold it with preemption off; the user-space runtime
/// never blocks while holding it.
#[derive(Debug)]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time, so sharing the lock between
// threads is sound when `T` may move between them.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
            while self.locked.load(Ordering::Relaxed) {
                spin_hint();
            }
        }
        // SAFETY: the compare-exchange above made this thread the only holder until the
        // release store below, so no other reference to the value exists.
        let r = self.value.with_mut(|p| f(unsafe { &mut *p }));
        self.locked.store(false, Ordering::Release);
        r
    }

    /// Like [`SpinLock::with`], but gives up at once if another thread holds the lock.
    pub(crate) fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: as in `with`: the successful compare-exchange grants exclusive access.
        let r = self.value.with_mut(|p| f(unsafe { &mut *p }));
        self.locked.store(false, Ordering::Release);
        Some(r)
    }
}
