//! The kernel front-end: one cache per CPU, preemption held off around each operation.
//!
//! A kernel implements [`CpuLocal`] (current CPU, preemption off/on) and a
//! [`PageSource`] (per-node frame pools), then installs
//! `PerCpu<FramePools, Hooks>` as its global allocator. Each CPU's cache is created on its
//! first allocation from the heap itself, on the CPU's node, and never rebinds (a CPU does not
//! change node).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::cpu_cache::Cache;
use crate::heap::Heap;
use crate::node_map::{MAX_CPUS, NodeMap};
use crate::page_source::PageSource;
use crate::sync::{AtomicPtr, Ordering};

/// What the kernel tells the allocator about the running CPU.
///
/// # Safety
/// Implementors promise:
/// 1. Between `preempt_disable` and the matching `preempt_enable`, the caller keeps running on
///    the same CPU and no other code that allocates runs on that CPU (preemption is off; an
///    interrupt handler that allocates must be excluded too, e.g. by masking interrupts).
/// 2. `current_cpu` is below [`MAX_CPUS`] and, with preemption off, is the CPU the caller runs
///    on.
pub unsafe trait CpuLocal: Sync {
    /// The OS number of the CPU the caller runs on.
    fn current_cpu(&self) -> usize;
    /// Holds preemption (and allocating interrupt handlers) off on this CPU. May nest.
    fn preempt_disable(&self);
    /// Undoes one `preempt_disable`.
    fn preempt_enable(&self);
}

/// The per-CPU allocator.
pub struct PerCpu<P: PageSource, C: CpuLocal> {
    heap: Heap<P>,
    cpu: C,
    /// Each CPU's cache, created on its first allocation. Slot `i` is written (once, from null)
    /// and used only by CPU `i` with preemption off.
    caches: [AtomicPtr<Cache>; MAX_CPUS],
}

impl<P: PageSource, C: CpuLocal> core::fmt::Debug for PerCpu<P, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerCpu")
            .field("heap", &self.heap)
            .finish_non_exhaustive()
    }
}

impl<P: PageSource, C: CpuLocal> PerCpu<P, C> {
    /// An allocator over `source` with the machine in `map` and the CPU hooks `cpu`.
    pub const fn new(source: P, map: NodeMap, cpu: C) -> Self {
        PerCpu {
            heap: Heap::with_node_map(source, map),
            cpu,
            caches: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS],
        }
    }

    /// An allocator that learns the machine from `source` on its first allocation
    /// ([`PageSource::discover_nodes`]), for a kernel whose topology is known only after the
    /// allocator is declared as a `static` (the kernel discovers it from ACPI at boot).
    pub const fn discovering(source: P, cpu: C) -> Self {
        PerCpu {
            heap: Heap::new(source),
            cpu,
            caches: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_CPUS],
        }
    }

    /// The heap.
    pub fn heap(&self) -> &Heap<P> {
        &self.heap
    }

    /// The CPU hooks.
    pub fn cpu(&self) -> &C {
        &self.cpu
    }

    /// Runs `f` with the current CPU's cache, preemption off. `None` when the cache cannot be
    /// created (no memory).
    pub fn with_cache<R>(&self, f: impl FnOnce(&mut Cache, &Heap<P>) -> R) -> Option<R> {
        self.cpu.preempt_disable();
        let cpu = self.cpu.current_cpu() % MAX_CPUS;
        let mut c = self.caches[cpu].load(Ordering::Acquire);
        if c.is_null() {
            c = self.create_cache(cpu);
        }
        let r = if c.is_null() {
            None
        } else {
            // SAFETY: slot `cpu` is used only by this CPU with preemption off (CpuLocal
            // precondition 1), so this is the only reference to the cache.
            Some(f(unsafe { &mut *c }, &self.heap))
        };
        self.cpu.preempt_enable();
        r
    }

    #[cold]
    fn create_cache(&self, cpu: usize) -> *mut Cache {
        let node = self.heap.node_of_cpu(cpu);
        let p = self
            .heap
            .alloc(node, Layout::new::<Cache>())
            .cast::<Cache>();
        if p.is_null() {
            return p;
        }
        // SAFETY: a fresh block of Cache's size and alignment.
        unsafe { p.write(Cache::new(node, false)) };
        self.caches[cpu].store(p, Ordering::Release);
        p
    }

    /// Flushes the current CPU's cache, then trims the heap.
    pub fn trim(&self) {
        let _ = self.with_cache(|c, h| c.flush(h));
        self.heap.trim();
    }
}

// SAFETY: blocks come from the heap with the layout's size and alignment; failures are null;
// frees return to this heap.
unsafe impl<P: PageSource, C: CpuLocal> GlobalAlloc for PerCpu<P, C> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with_cache(|c, h| c.alloc(h, layout.size(), layout.align()))
            .unwrap_or(ptr::null_mut())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.with_cache(|c, h| c.alloc_zeroed(h, layout.size(), layout.align()))
            .unwrap_or(ptr::null_mut())
    }

    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: the GlobalAlloc contract: `p` came from this allocator and is live.
        let done = self.with_cache(|c, h| unsafe { c.free(h, p) });
        if done.is_none() {
            // SAFETY: as above; no cache could be made, so the heap takes it directly.
            unsafe { self.heap.free(p) };
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the GlobalAlloc contract for realloc.
        self.with_cache(|c, h| unsafe { c.realloc(h, p, layout.align(), layout.size(), new_size) })
            .unwrap_or(ptr::null_mut())
    }
}
