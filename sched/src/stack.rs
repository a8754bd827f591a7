//! Stacks for stackful tasks: where they come from ([`StackSource`]), how they are reused
//! ([`StackPool`]), and the user-space source ([`MmapSource`], `std` only).
//!
//! # The seam
//! A host supplies stacks through [`StackSource`]: the user-space runtime maps them with
//! `mmap` and a `PROT_NONE` guard page at the low end ([`MmapStack`]); a kernel hands out frames
//! from its per-node pools and leaves the page below unmapped (or plants a canary when it has no
//! spare virtual range). [`TaskStack::guard`] tells the overflow detector which addresses mean
//! "this stack overflowed".
//!
//! # The pool
//! Spawning must not pay for `mmap`/`munmap` (two system calls and page faults on first touch),
//! so finished tasks give their stacks back to a [`StackPool`]: one bounded free list per CPU
//! (the CPU that finished the task puts, the CPU that starts a task gets; others never touch it
//! except through the shared list), plus one bounded shared list that absorbs what a CPU's list
//! cannot hold and serves callers that are not CPUs. A list that is full drops the stack.
//!
//! **NUMA placement** comes from first touch: a fresh stack's pages are touched first by the
//! CPU that starts the task on it (it writes the initial frame), and a recycled stack stays on
//! the list of the CPU that last ran a task on it, so stacks live on the node that uses them
//! without an explicit `mbind`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::sync::SpinLock;

/// A stack a task runs on: `[top - usable_bytes, top)`, growing down from `top`.
pub trait TaskStack: Send {
    /// One past the highest usable byte.
    fn top(&self) -> *mut u8;
    /// Usable bytes below `top`.
    fn usable_bytes(&self) -> usize;
    /// Addresses whose access means the stack overflowed (empty when the source has no guard).
    fn guard(&self) -> Range<usize>;
}

/// Where stacks come from.
pub trait StackSource: Send + Sync {
    /// The stacks this source hands out.
    type Stack: TaskStack;
    /// A stack with at least `usable_bytes` usable bytes.
    fn allocate(&self, usable_bytes: usize) -> Result<Self::Stack, StackError>;
}

/// A stack could not be allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackError {
    /// The usable size asked for.
    pub usable_bytes: usize,
    /// What failed.
    pub what: &'static str,
    /// The OS error number, when there is one.
    pub os_error: Option<i32>,
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot allocate a {}-byte task stack: {}",
            self.usable_bytes, self.what
        )?;
        if let Some(e) = self.os_error {
            write!(f, " (os error {e})")?;
        }
        Ok(())
    }
}

/// Free stacks kept per CPU by default.
pub const CACHED_PER_CPU_MAX_DEFAULT: usize = 64;
/// Free stacks kept in the shared list by default.
pub const CACHED_SHARED_MAX_DEFAULT: usize = 256;

/// Reuses stacks of one size from a [`StackSource`] (see the module docs).
pub struct StackPool<S: StackSource> {
    source: S,
    /// Usable bytes of every stack the pool hands out.
    stack_bytes: usize,
    cached_per_cpu_max: usize,
    cached_shared_max: usize,
    /// `per_cpu[c]`: locked by CPU `c` (get and put) and, rarely, by nobody else; the lock is
    /// uncontended and exists so the pool stays sound if a host breaks the owner rule.
    per_cpu: Box<[SpinLock<Vec<S::Stack>>]>,
    /// Locked by any CPU whose own list is empty (get) or full (put), and by non-CPU callers.
    shared: SpinLock<Vec<S::Stack>>,
}

impl<S: StackSource> StackPool<S> {
    /// A pool for `cpus` CPUs handing out `stack_bytes` stacks from `source`, with the default
    /// list bounds.
    pub fn new(source: S, stack_bytes: usize, cpus: usize) -> StackPool<S> {
        StackPool::with_bounds(
            source,
            stack_bytes,
            cpus,
            CACHED_PER_CPU_MAX_DEFAULT,
            CACHED_SHARED_MAX_DEFAULT,
        )
    }

    /// A pool with explicit bounds on the free lists.
    pub fn with_bounds(
        source: S,
        stack_bytes: usize,
        cpus: usize,
        cached_per_cpu_max: usize,
        cached_shared_max: usize,
    ) -> StackPool<S> {
        StackPool {
            source,
            stack_bytes,
            cached_per_cpu_max,
            cached_shared_max,
            per_cpu: (0..cpus).map(|_| SpinLock::new(Vec::new())).collect(),
            shared: SpinLock::new(Vec::new()),
        }
    }

    /// Usable bytes of the pool's stacks.
    pub fn stack_bytes(&self) -> usize {
        self.stack_bytes
    }

    /// A stack for a task starting on `cpu` (`None`: not a CPU of this pool): from that CPU's
    /// list, else the shared list, else the source.
    pub fn get(&self, cpu: Option<usize>) -> Result<S::Stack, StackError> {
        if let Some(list) = cpu.and_then(|c| self.per_cpu.get(c))
            && let Some(s) = list.with(Vec::pop)
        {
            return Ok(s);
        }
        if let Some(s) = self.shared.with(Vec::pop) {
            return Ok(s);
        }
        self.source.allocate(self.stack_bytes)
    }

    /// Gives back a stack whose task finished on `cpu`. Stacks of another size, and stacks that
    /// find every list full, are dropped (returned to the source).
    pub fn put(&self, cpu: Option<usize>, stack: S::Stack) {
        if stack.usable_bytes() < self.stack_bytes {
            return;
        }
        let stack = match cpu.and_then(|c| self.per_cpu.get(c)) {
            Some(list) => list.with(|l| {
                if l.len() < self.cached_per_cpu_max {
                    l.push(stack);
                    None
                } else {
                    Some(stack)
                }
            }),
            None => Some(stack),
        };
        if let Some(stack) = stack {
            let dropped = self.shared.with(|l| {
                if l.len() < self.cached_shared_max {
                    l.push(stack);
                    None
                } else {
                    Some(stack)
                }
            });
            drop(dropped); // outside the lock: dropping may unmap
        }
    }

    /// Free stacks held, over all lists.
    pub fn cached(&self) -> usize {
        self.per_cpu
            .iter()
            .map(|l| l.with(|l| l.len()))
            .sum::<usize>()
            + self.shared.with(|l| l.len())
    }
}

#[cfg(feature = "std")]
pub use mmap::{MmapSource, MmapStack, PAGE_BYTES, STACK_BYTES_DEFAULT};

#[cfg(feature = "std")]
mod mmap {
    use core::ops::Range;

    use super::{StackError, StackSource, TaskStack};

    /// Bytes in a page (x86_64 base pages).
    pub const PAGE_BYTES: usize = 4096;
    /// Default usable stack size.
    pub const STACK_BYTES_DEFAULT: usize = 256 * 1024;

    /// An `mmap`ed stack: `[base, base + PAGE_BYTES)` is the `PROT_NONE` guard page,
    /// `[base + PAGE_BYTES, base + len)` is usable. Pages are committed on first touch
    /// (`MAP_NORESERVE`), so a large stack costs only what the task uses.
    #[derive(Debug)]
    pub struct MmapStack {
        base: *mut u8,
        len: usize,
    }

    // SAFETY: an MmapStack owns its mapping exclusively; moving it to another thread moves that
    // ownership, and nothing in it is thread-bound.
    unsafe impl Send for MmapStack {}

    impl MmapStack {
        /// Maps a stack with `usable_bytes` (rounded up to pages, at least one) plus one guard
        /// page.
        pub fn new(usable_bytes: usize) -> Result<MmapStack, StackError> {
            let err = |what, os_error| StackError {
                usable_bytes,
                what,
                os_error,
            };
            let usable = usable_bytes
                .max(PAGE_BYTES)
                .checked_next_multiple_of(PAGE_BYTES)
                .ok_or(err("size overflows the address space", None))?;
            let len = usable
                .checked_add(PAGE_BYTES)
                .ok_or(err("size overflows the address space", None))?;
            // SAFETY: an anonymous private mapping at a kernel-chosen address aliases nothing.
            let base = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(err(
                    "mmap failed",
                    std::io::Error::last_os_error().raw_os_error(),
                ));
            }
            // SAFETY: the first page lies inside the mapping just created.
            if unsafe { libc::mprotect(base, PAGE_BYTES, libc::PROT_NONE) } != 0 {
                let e = std::io::Error::last_os_error().raw_os_error();
                // SAFETY: unmapping the mapping we own and never shared.
                unsafe { libc::munmap(base, len) };
                return Err(err("mprotect of the guard page failed", e));
            }
            Ok(MmapStack {
                base: base.cast(),
                len,
            })
        }

        /// Makes the whole stack inaccessible and keeps its addresses reserved forever: for a
        /// stack whose task was abandoned mid-flight, so a stale pointer into it faults instead
        /// of reading memory that a later mapping reused. The pages are released to the OS.
        pub fn quarantine(self) {
            let (base, len) = (self.base, self.len);
            core::mem::forget(self);
            // SAFETY: replaces our own mapping in place (MAP_FIXED over the range we own) with
            // an inaccessible one; nothing else maps these addresses.
            unsafe {
                libc::mmap(
                    base.cast(),
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                    -1,
                    0,
                );
            }
        }
    }

    impl TaskStack for MmapStack {
        fn top(&self) -> *mut u8 {
            self.base.wrapping_add(self.len)
        }
        fn usable_bytes(&self) -> usize {
            self.len - PAGE_BYTES
        }
        fn guard(&self) -> Range<usize> {
            self.base as usize..self.base as usize + PAGE_BYTES
        }
    }

    impl Drop for MmapStack {
        fn drop(&mut self) {
            // SAFETY: `base`/`len` describe the mapping this stack owns; nothing runs on it (an
            // owner drops a stack only when no task can resume on it).
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    /// Stacks from anonymous `mmap` with a guard page.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct MmapSource;

    impl StackSource for MmapSource {
        type Stack = MmapStack;
        fn allocate(&self, usable_bytes: usize) -> Result<MmapStack, StackError> {
            MmapStack::new(usable_bytes)
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn guard_page_sits_below_the_usable_range() {
        let s = MmapStack::new(10_000).unwrap();
        assert_eq!(s.usable_bytes(), 12_288, "rounded up to pages");
        let g = s.guard();
        assert_eq!(g.end - g.start, PAGE_BYTES);
        assert_eq!(g.end + s.usable_bytes(), s.top() as usize);
        // The usable range is writable end to end.
        // SAFETY: both bytes lie in the usable range of the live mapping.
        unsafe {
            s.top().sub(1).write(1);
            (g.end as *mut u8).write(2);
        }
    }

    #[test]
    fn pool_reuses_per_cpu_then_shared_and_stays_bounded() {
        let pool = StackPool::with_bounds(MmapSource, 16 * 1024, 2, 1, 1);
        let a = pool.get(Some(0)).unwrap();
        let b = pool.get(Some(0)).unwrap();
        let c = pool.get(None).unwrap();
        let (ta, tb) = (a.top(), b.top());
        pool.put(Some(0), a); // CPU 0's list
        pool.put(Some(0), b); // CPU 0 full: shared list
        pool.put(Some(1), c); // CPU 1's list
        assert_eq!(pool.cached(), 3);
        let d = pool.get(Some(1)).unwrap();
        let e = pool.get(None).unwrap();
        assert_eq!(e.top(), tb, "non-CPU callers take from the shared list");
        let f = pool.get(Some(0)).unwrap();
        assert_eq!(f.top(), ta, "a CPU takes back its own stack first");
        assert_eq!(pool.cached(), 0);
        let extra = MmapStack::new(16 * 1024).unwrap();
        for s in [d, e, f, extra] {
            pool.put(Some(0), s);
        }
        assert_eq!(
            pool.cached(),
            2,
            "one per CPU list plus one shared, the rest unmapped"
        );
        let small = MmapStack::new(4096).unwrap();
        pool.put(Some(1), small);
        assert_eq!(
            pool.cached(),
            2,
            "a stack smaller than the pool's size is not kept"
        );
    }
}
