//! Every atomic, cell and lock the allocator uses, in one place: `core` normally, loom's
//! model-checked versions under `cfg(loom)`.
//!
//! Run the models with
//! `RUSTFLAGS="--cfg loom" cargo test -p manycore-alloc --release --lib loom`.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

// Used only by the heap, which is not built under loom (its statics need const atomics).
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU64};

/// Spins of a contended lock before the waiter yields its CPU (user space) or re-reads again
/// (kernel, where the holder cannot be preempted).
pub(crate) const LOCK_SPINS_BEFORE_YIELD: u32 = 64;

/// One spin of a bounded wait loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Gives the CPU away after a bounded spin: `sched_yield` in user space, a spin hint otherwise.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(all(not(loom), feature = "std"))]
    // SAFETY: sched_yield has no preconditions.
    unsafe {
        libc::sched_yield();
    }
    #[cfg(all(not(loom), not(feature = "std")))]
    core::hint::spin_loop();
}

/// A cell whose accesses loom can track; `core::cell::UnsafeCell` otherwise.
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

/// A cell whose accesses loom can track; `core::cell::UnsafeCell` otherwise.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
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

/// A test-and-test-and-set spin lock for the allocator's short critical sections (a magazine
/// exchange, a slab refill of at most one magazine, a segment-list update).
///
/// Valid when all-zero (unlocked), so node state created in raw pages needs no constructor.
/// A kernel must hold it with preemption off (the per-CPU front-end does); in user space a
/// waiter yields after [`LOCK_SPINS_BEFORE_YIELD`] spins so a preempted holder can run.
#[derive(Debug)]
pub(crate) struct SpinLock<T> {
    /// `true` while held. Written by the acquiring and the releasing thread.
    locked: AtomicBool,
    /// The protected value; touched only by the holder.
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time, so sharing the lock between
// threads is sound when `T` may move between them.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`. (The heap creates its locks in zeroed pages; this is
    /// for the loom models and tests.)
    #[cfg(not(loom))]
    #[allow(dead_code)]
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// An unlocked lock around `value`.
    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access to the value.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.acquire();
        // SAFETY: `acquire` made this thread the only holder until the release store below, so
        // no other reference to the value exists while `f` runs.
        let r = self.value.with_mut(|p| f(unsafe { &mut *p }));
        self.locked.store(false, Ordering::Release);
        r
    }

    /// Takes the lock and keeps it past this call: the fork handlers hold every lock of a
    /// heap across `fork()` so the child never inherits a lock held by a thread it lacks.
    #[cfg(not(loom))]
    pub(crate) fn lock_raw(&self) {
        self.acquire();
    }

    /// Releases a lock taken with [`SpinLock::lock_raw`].
    ///
    /// # Safety
    /// 1. The calling thread took the lock with `lock_raw` (in a forked child: its parent
    ///    thread did, before `fork()`), and has not released it since.
    #[cfg(not(loom))]
    pub(crate) unsafe fn unlock_raw(&self) {
        self.locked.store(false, Ordering::Release);
    }

    #[inline]
    fn acquire(&self) {
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            let mut spins = 0u32;
            while self.locked.load(Ordering::Relaxed) {
                if spins < LOCK_SPINS_BEFORE_YIELD {
                    spins += 1;
                    spin_hint();
                } else {
                    spins = 0;
                    yield_now();
                }
            }
        }
    }
}
