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
//! **NUMA placement**: the pool asks its source for a stack *for* the CPU that will start the
//! task ([`StackSource::allocate_for`]). [`NumaMmapSource`] binds a fresh stack's pages to that
//! CPU's node with `mbind` (`MPOL_PREFERRED`, before first touch); [`MmapSource`] leaves placement
//! to first touch, which lands on the same node in the common case (the starting CPU writes the
//! initial frame) but not for the deeper pages a task that migrated touches later. Either way a
//! recycled stack stays on the list of the CPU that last ran a task on it. The `mbind` is made
//! here with `libc` rather than through `manycore-alloc`'s page source: `sched` and `alloc` are
//! siblings that never depend on each other (DESIGN.md, "Layers").

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
    /// A stack for a task starting on logical CPU `cpu` (`None`: not on a CPU of the pool). A
    /// NUMA-aware source places the memory on that CPU's node; the default ignores the CPU.
    fn allocate_for(
        &self,
        usable_bytes: usize,
        cpu: Option<usize>,
    ) -> Result<Self::Stack, StackError> {
        let _ = cpu;
        self.allocate(usable_bytes)
    }
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
        self.source.allocate_for(self.stack_bytes, cpu)
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

    /// The source stacks come from.
    pub fn source(&self) -> &S {
        &self.source
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
pub use mmap::{MmapSource, MmapStack, NumaMmapSource, PAGE_BYTES, STACK_BYTES_DEFAULT};

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

    /// `mbind` policy: the node first, other nodes when it has no free memory (a stack must
    /// not fail because its node is full).
    const MPOL_PREFERRED: libc::c_int = 1;

    /// Nodes an `mbind` node mask can name (the mask is this many bits).
    pub const NUMA_NODES_MAX: usize = 1024;

    /// Stacks from anonymous `mmap` with a guard page, their usable pages bound to the node of
    /// the CPU that will start the task (`mbind` with `MPOL_PREFERRED` before first touch).
    ///
    /// Built from a table mapping each logical CPU of the pool to an OS node number. A stack
    /// asked for with no CPU, or for a CPU beyond the table, is placed by first touch. An
    /// `mbind` that fails (a kernel without NUMA support, a node that went away) leaves the
    /// stack to first touch too, and is counted ([`NumaMmapSource::mbind_failures`]): placement
    /// is a performance hint, never a reason to fail a spawn.
    #[derive(Debug)]
    pub struct NumaMmapSource {
        /// OS node number of each logical CPU.
        os_node_of_cpu: alloc::vec::Vec<usize>,
        /// `mbind` calls that failed (any thread increments; read for reports and tests).
        mbind_failures: core::sync::atomic::AtomicU64,
        /// Stacks bound to a node.
        bound: core::sync::atomic::AtomicU64,
    }

    impl NumaMmapSource {
        /// A source for CPUs whose OS node numbers are `os_node_of_cpu[cpu]`. Returns an error
        /// naming the CPU when a node number is beyond what a node mask can name.
        pub fn new(
            os_node_of_cpu: alloc::vec::Vec<usize>,
        ) -> Result<NumaMmapSource, alloc::string::String> {
            if let Some((cpu, node)) = os_node_of_cpu
                .iter()
                .enumerate()
                .find(|&(_, &n)| n >= NUMA_NODES_MAX)
            {
                return Err(alloc::format!(
                    "CPU {cpu}: OS node {node} is beyond the {NUMA_NODES_MAX} nodes an mbind mask names"
                ));
            }
            Ok(NumaMmapSource {
                os_node_of_cpu,
                mbind_failures: core::sync::atomic::AtomicU64::new(0),
                bound: core::sync::atomic::AtomicU64::new(0),
            })
        }

        /// `mbind` calls that failed so far (those stacks were left to first touch).
        pub fn mbind_failures(&self) -> u64 {
            self.mbind_failures
                .load(core::sync::atomic::Ordering::Relaxed)
        }

        /// Stacks bound to their CPU's node so far.
        pub fn bound(&self) -> u64 {
            self.bound.load(core::sync::atomic::Ordering::Relaxed)
        }
    }

    /// Binds `[start, start + len)` (page-aligned, untouched) to OS node `node`, preferred.
    fn mbind_preferred(start: *mut u8, len: usize, node: usize) -> Result<(), i32> {
        const WORD_BITS: usize = usize::BITS as usize;
        let mut mask = [0usize; NUMA_NODES_MAX / WORD_BITS];
        mask[node / WORD_BITS] |= 1 << (node % WORD_BITS);
        // SAFETY: the range is a mapping the caller owns and nobody uses yet; `mask` is a live
        // array of NUMA_NODES_MAX bits, the length passed (maxnode counts bits; the kernel reads
        // maxnode - 1 of them, so pass one more).
        let r = unsafe {
            libc::syscall(
                libc::SYS_mbind,
                start,
                len,
                MPOL_PREFERRED,
                mask.as_ptr(),
                NUMA_NODES_MAX + 1,
                0u32,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    }

    impl StackSource for NumaMmapSource {
        type Stack = MmapStack;
        fn allocate(&self, usable_bytes: usize) -> Result<MmapStack, StackError> {
            MmapStack::new(usable_bytes)
        }
        fn allocate_for(
            &self,
            usable_bytes: usize,
            cpu: Option<usize>,
        ) -> Result<MmapStack, StackError> {
            let stack = MmapStack::new(usable_bytes)?;
            if let Some(&node) = cpu.and_then(|c| self.os_node_of_cpu.get(c)) {
                let usable = stack.usable_bytes();
                let start = stack.top().wrapping_sub(usable);
                match mbind_preferred(start, usable, node) {
                    Ok(()) => self
                        .bound
                        .fetch_add(1, core::sync::atomic::Ordering::Relaxed),
                    Err(_) => self
                        .mbind_failures
                        .fetch_add(1, core::sync::atomic::Ordering::Relaxed),
                };
            }
            Ok(stack)
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

    /// The stack's pages really are bound to the CPU's node: `get_mempolicy` on a touched page
    /// of a fresh stack names the node asked for (node 0 exists on every Linux host).
    #[test]
    fn numa_source_binds_the_stack_to_the_cpus_node() {
        let src = NumaMmapSource::new(alloc::vec![0, 0]).unwrap();
        let pool = StackPool::new(src, 64 * 1024, 2);
        let s = pool.get(Some(1)).unwrap();
        let (bound, failures) = (pool.source().bound(), pool.source().mbind_failures());
        assert_eq!(bound + failures, 1, "one mbind per fresh stack");
        if failures == 1 {
            std::eprintln!("skip: mbind is not supported here (kernel without NUMA)");
            assert!(
                std::env::var("MANYCORE_REQUIRE_MBIND").as_deref() != Ok("1"),
                "MANYCORE_REQUIRE_MBIND=1 but mbind failed"
            );
            return;
        }
        let page = s.top().wrapping_sub(PAGE_BYTES);
        // SAFETY: the byte lies in the usable range of the live stack.
        unsafe { page.write(1) };
        let mut mode: libc::c_int = -1;
        let mut mask = [0usize; 16];
        // SAFETY: `mode` and `mask` are live and large enough (16 words = 1024 bits); `page` is
        // mapped. MPOL_F_ADDR (2) asks for the policy of the VMA at `page`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_get_mempolicy,
                &raw mut mode,
                mask.as_mut_ptr(),
                1024usize,
                page,
                2usize,
            )
        };
        assert_eq!(r, 0, "get_mempolicy: {}", std::io::Error::last_os_error());
        assert_eq!(mode, 1, "MPOL_PREFERRED");
        assert_eq!(mask[0] & 1, 1, "node 0 named in the policy's mask");
        // Out-of-range node numbers are a clear error, not a panic.
        let e = NumaMmapSource::new(alloc::vec![0, 5000]).unwrap_err();
        assert!(e.contains("CPU 1") && e.contains("5000"), "{e}");
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
