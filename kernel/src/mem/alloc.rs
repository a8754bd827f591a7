//! The kernel's `#[global_allocator]`: manycore-alloc's per-CPU front-end ([`PerCpu`]) over the
//! per-node frame pools, and thread stacks from the node-local allocator.
//!
//! # What the kernel supplies (docs/PORTING.md, "Memory")
//! - [`FramePages`], the [`PageSource`]: pages of a node straight from that node's frame pool
//!   ([`frames::alloc`]; no fallback to another node, so a block's segment header never lies
//!   about where its memory is), freed back to the pool that owns them. It also describes the
//!   machine ([`PageSource::discover_nodes`]) from the topology the kernel built from ACPI.
//! - [`KernelCpu`], the [`CpuLocal`]: the current CPU's OS index from its per-CPU block, and
//!   "preemption off" as interrupts off with a per-CPU nesting depth, so neither the timer (which
//!   may switch threads) nor an allocating handler can run while a CPU's cache is in use.
//! - [`KernelAllocator`], the global allocator: until the BSP has installed its per-CPU block
//!   (ACPI parsing, the topology, the frame pools and the per-CPU blocks themselves allocate
//!   before that), requests are served by bumping through a static bootstrap arena; afterwards
//!   everything goes to manycore-alloc. Arena blocks are never reused: freeing one does nothing,
//!   which bounds the arena's use to what boot allocates once.
//! - [`NodeStacks`], the [`StackSource`] for thread stacks: blocks of the stack's node, from the
//!   calling CPU's cache when the node is its own and from the node's slabs otherwise.

use core::alloc::{GlobalAlloc, Layout};
use core::ops::Range;
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicUsize, Ordering};

use manycore_alloc::{CpuLocal, DiscoveryError, Heap, NodeMap, PageSource, PerCpu};
use manycore_sched::stack::{StackError, StackSource, TaskStack};

use super::frames;
use crate::percpu;

/// Bytes of the bootstrap arena (boot-time allocations before per-CPU data exists).
const ARENA_BYTES: usize = 4 << 20;

#[repr(C, align(4096))]
struct Arena([u8; ARENA_BYTES]);

/// The arena's bytes, handed out by bumping [`ARENA_USED`] (never reused).
static mut ARENA: Arena = Arena([0; ARENA_BYTES]);
/// Bytes of the arena handed out. Any CPU, compare-exchange (only the BSP allocates before the
/// switch-over in practice).
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

fn arena_range() -> Range<usize> {
    let base = core::ptr::addr_of!(ARENA) as usize;
    base..base + ARENA_BYTES
}

fn arena_bump(layout: Layout) -> *mut u8 {
    let base = arena_range().start;
    let mut used = ARENA_USED.load(Ordering::Relaxed);
    loop {
        let start = (base + used).next_multiple_of(layout.align().max(1));
        let end = start.saturating_add(layout.size());
        if end > arena_range().end {
            return null_mut();
        }
        match ARENA_USED.compare_exchange_weak(
            used,
            end - base,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return start as *mut u8,
            Err(u) => used = u,
        }
    }
}

/// The kernel's page source: per-node frame pools.
pub struct FramePages;

// SAFETY: pages come from `frames::alloc`, which hands each frame to one caller until
// `frames::free` returns it; the pools' ranges are RAM the kernel owns (identity-mapped, outside
// the image and the first MiB), so the memory is readable and writable; `free_pages` returns
// exactly the range `alloc_pages` gave.
unsafe impl PageSource for FramePages {
    fn alloc_pages(&self, bytes: usize, align_bytes: usize, os_node: usize) -> Option<NonNull<u8>> {
        let node = crate::boot::machine_if_known()?
            .topology
            .node_from_os(u32::try_from(os_node).ok()?)?;
        let p = frames::alloc(node, bytes as u64, align_bytes as u64)?;
        NonNull::new(p as *mut u8)
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, bytes: usize, _os_node: usize) {
        // SAFETY: precondition 1 of `free_pages`: the range came from `alloc_pages`, i.e. from
        // `frames::alloc` with this size, and is returned once.
        unsafe { frames::free(ptr.as_ptr() as u64, bytes as u64) };
    }

    fn discover_nodes(&self, map: &mut NodeMap) -> Result<(), DiscoveryError> {
        // The heap is first used after the BSP installed its per-CPU block, which comes after
        // the machine was discovered (boot::bsp), so the topology is there; if it were not, the
        // heap would run as one node and say why (`Heap::map_origin`).
        let machine = crate::boot::machine_if_known().ok_or(DiscoveryError::Unsupported)?;
        *map = NodeMap::from_topology(&machine.topology).map_err(DiscoveryError::Map)?;
        Ok(())
    }

    fn current_cpu(&self) -> Option<usize> {
        percpu::is_ready().then(|| percpu::current().os_index)
    }
}

/// The kernel's CPU hooks for the per-CPU caches.
pub struct KernelCpu;

// SAFETY: 1. `preempt_disable` turns interrupts off on this CPU (the timer cannot preempt and no
// handler runs) until the outermost `preempt_enable`, and kernel code never blocks or switches
// threads while it holds a cache; 2. `os_index` is the topology's OS index of this CPU, below
// MAX_CPUS (checked by `percpu::create_all`).
unsafe impl CpuLocal for KernelCpu {
    fn current_cpu(&self) -> usize {
        percpu::current().os_index
    }

    fn preempt_disable(&self) {
        let irq = crate::arch::cpu::interrupts_disable();
        let me = percpu::current();
        let depth = me.preempt_depth.load(Ordering::Relaxed);
        if depth == 0 {
            me.preempt_irq.store(irq, Ordering::Relaxed);
        }
        me.preempt_depth.store(depth + 1, Ordering::Relaxed);
    }

    fn preempt_enable(&self) {
        let me = percpu::current();
        let depth = me.preempt_depth.load(Ordering::Relaxed) - 1;
        me.preempt_depth.store(depth, Ordering::Relaxed);
        if depth == 0 && me.preempt_irq.load(Ordering::Relaxed) {
            crate::arch::cpu::interrupts_enable();
        }
    }
}

/// The global allocator: the bootstrap arena, then manycore-alloc (see the module docs).
pub struct KernelAllocator {
    inner: PerCpu<FramePages, KernelCpu>,
}

impl KernelAllocator {
    /// The allocator before boot: the heap learns the machine on its first use.
    pub const fn new() -> Self {
        Self {
            inner: PerCpu::discovering(FramePages, KernelCpu),
        }
    }

    /// Flushes the calling CPU's cache (its remote-free batches go home) and gives every node's
    /// spare pages back to the frame pools.
    pub fn trim(&self) {
        self.inner.trim();
    }

    /// manycore-alloc's heap (statistics, node-directed allocation).
    pub fn heap(&self) -> &Heap<FramePages> {
        self.inner.heap()
    }
}

// SAFETY: arena blocks are fresh, aligned ranges of the static arena, handed out once and never
// reused; all other blocks come from manycore-alloc's `PerCpu`, whose `GlobalAlloc` contract holds
// (KernelCpu and FramePages meet its preconditions, see their impls). A pointer is routed back by
// address, so each block returns to the allocator that made it.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !percpu::is_ready() {
            return arena_bump(layout);
        }
        // SAFETY: the caller's GlobalAlloc contract.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !percpu::is_ready() {
            // The arena is zero (.bss) and never reused.
            return arena_bump(layout);
        }
        // SAFETY: the caller's GlobalAlloc contract.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if arena_range().contains(&(ptr as usize)) {
            return;
        }
        // SAFETY: not an arena block, so it came from `inner` (the caller's contract).
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !arena_range().contains(&(ptr as usize)) {
            // SAFETY: as in `dealloc`.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return null_mut();
        };
        // SAFETY: a valid non-zero layout (the caller's contract: new_size > 0).
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: both blocks are live and at least min(old, new) bytes long; distinct blocks.
            unsafe { core::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size)) };
        }
        p
    }
}

/// Alignment of thread stacks (the ABI's).
const STACK_ALIGN_BYTES: usize = 16;
/// Written at the lowest word of every thread stack and checked when the thread switches out: a
/// thread that ran past the end of its stack is reported by id instead of silently corrupting its
/// neighbour (the identity map uses 2 MiB pages, so there are no guard pages).
pub const STACK_CANARY: u64 = 0x5354_4143_4b45_4e44;

/// Thread stacks from node `node`'s memory.
pub struct NodeStacks {
    /// Logical node the stacks are placed on.
    pub node: usize,
}

/// A thread stack: one block of the kernel heap on its node, canary in its lowest word.
pub struct KernelStack {
    base: NonNull<u8>,
    bytes: usize,
}

// SAFETY: the stack owns its block exclusively; moving it between CPUs moves that ownership.
unsafe impl Send for KernelStack {}

impl KernelStack {
    /// Whether the canary at the lowest word is intact.
    pub fn canary_intact(&self) -> bool {
        // SAFETY: the block is live and at least 8 bytes, 16-aligned.
        unsafe { self.base.as_ptr().cast::<u64>().read_volatile() == STACK_CANARY }
    }
}

impl TaskStack for KernelStack {
    fn top(&self) -> *mut u8 {
        self.base.as_ptr().wrapping_add(self.bytes)
    }
    fn usable_bytes(&self) -> usize {
        self.bytes - 8
    }
    fn guard(&self) -> Range<usize> {
        self.base.as_ptr() as usize..self.base.as_ptr() as usize + 8
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        // SAFETY: the block came from the global allocator (directly or through its heap) with
        // this layout, and nothing runs on the stack any more (the owner drops it only after the
        // thread switched away for the last time).
        unsafe {
            crate::HEAP.dealloc(
                self.base.as_ptr(),
                Layout::from_size_align_unchecked(self.bytes, STACK_ALIGN_BYTES),
            )
        };
    }
}

impl StackSource for NodeStacks {
    type Stack = KernelStack;

    fn allocate(&self, usable_bytes: usize) -> Result<KernelStack, StackError> {
        let err = |what| StackError {
            usable_bytes,
            what,
            os_error: None,
        };
        let bytes = usable_bytes
            .checked_add(8)
            .map(|b| b.next_multiple_of(STACK_ALIGN_BYTES))
            .ok_or(err("size overflows"))?;
        let layout =
            Layout::from_size_align(bytes, STACK_ALIGN_BYTES).map_err(|_| err("bad size"))?;
        let p = if percpu::current().node == self.node {
            // SAFETY: a non-zero layout.
            unsafe { crate::HEAP.alloc(layout) }
        } else {
            crate::HEAP.heap().alloc(self.node, layout)
        };
        let base = NonNull::new(p).ok_or(err("the node's memory is exhausted"))?;
        // SAFETY: a fresh block of at least 8 bytes, 16-aligned.
        unsafe { base.as_ptr().cast::<u64>().write(STACK_CANARY) };
        Ok(KernelStack { base, bytes })
    }
}
