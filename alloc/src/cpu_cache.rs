//! The per-CPU (kernel) or per-thread (user space) cache: two magazines per class and one
//! remote-free batch per other node.
//!
//! Fast paths touch only the cache (owned by one CPU with preemption off, or by one thread):
//! allocation pops from the class's loaded magazine, a free of a block of the cache's own node
//! pushes onto it. No lock, no atomic read-modify-write. A free of another node's block goes
//! to that node's [`RemoteBatch`], never into a magazine.
//!
//! Invariants:
//! 1. Every block in a cache's magazines belongs to a slab of `cache.node`.
//! 2. A class slot holds at most two magazines (`loaded`, `previous`); `loaded` is the one
//!    in use. Either may be null.
//! 3. The bytes the magazines could hold (`held_bound_bytes` = sum of `cap * class bytes` over
//!    the magazines held) stay at most the heap's cache budget after every slow path.
//!
//! Slow paths follow Bonwick: swap `loaded` and `previous` when that helps, else trade with the
//! node's depot under the class lock, else refill from (or drain to) the slabs. A per-thread
//! cache checks on slow paths whether its thread has moved to another node
//! ([`PageSource::current_cpu`]); if so it flushes everything and rebinds, keeping invariant 1.

use core::ptr;

use crate::heap::Heap;
use crate::magazine::Magazine;
use crate::node_map::MAX_NODES;
use crate::page_source::PageSource;
use crate::remote_free::RemoteBatch;
use crate::segment::{class_at, segment_of};
use crate::size_class::{self, MAGAZINE_CAPACITY, NUM_CLASSES, class_bytes};
use crate::stats;

/// Classes a slow path may visit to get back under the budget.
pub const EVICT_SCAN_MAX: usize = 8;

/// One class's slot in a cache.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ClassCache {
    /// The magazine allocations pop from and frees push to.
    loaded: *mut Magazine,
    /// The spare magazine (Bonwick's "previous").
    previous: *mut Magazine,
    /// Allocations not yet added to the node's counters.
    allocs: u64,
    /// Local frees not yet added to the node's counters.
    frees: u64,
}

const EMPTY_CLASS: ClassCache = ClassCache {
    loaded: ptr::null_mut(),
    previous: ptr::null_mut(),
    allocs: 0,
    frees: 0,
};

/// A CPU's or thread's cache. Owned by exactly one CPU (with preemption off) or thread; every
/// field is read and written only by that owner.
#[repr(C)]
#[derive(Debug)]
pub struct Cache {
    /// Per class.
    classes: [ClassCache; NUM_CLASSES],
    /// The node whose blocks the magazines hold.
    node: usize,
    /// Whether slow paths re-check the current CPU's node (per-thread caches).
    follows_cpu: bool,
    /// Upper bound on bytes of blocks in the magazines (invariant 3).
    held_bound_bytes: usize,
    /// Next class the budget eviction looks at.
    evict_cursor: usize,
    /// Blocks freed here that belong to other nodes, per destination node.
    remote: [RemoteBatch; MAX_NODES],
}

// SAFETY: a cache's raw pointers are magazines and blocks it owns; moving it to another thread
// moves that ownership (the front-ends never share one between threads at once).
unsafe impl Send for Cache {}

impl Cache {
    /// An empty cache bound to `node`. With `follows_cpu`, slow paths rebind it when the
    /// platform reports the caller on another node (per-thread caches); without, it stays on
    /// `node` (per-CPU caches, tests).
    pub const fn new(node: usize, follows_cpu: bool) -> Cache {
        Cache {
            classes: [EMPTY_CLASS; NUM_CLASSES],
            node,
            follows_cpu,
            held_bound_bytes: 0,
            evict_cursor: 0,
            remote: [RemoteBatch::EMPTY; MAX_NODES],
        }
    }

    /// The node this cache serves.
    pub fn node(&self) -> usize {
        self.node
    }

    /// Upper bound on the bytes of blocks the cache holds.
    pub fn held_bound_bytes(&self) -> usize {
        self.held_bound_bytes
    }

    /// Allocates `size` bytes aligned to `align` (a power of two). Null on failure.
    #[inline(always)]
    pub fn alloc<P: PageSource>(&mut self, heap: &Heap<P>, size: usize, align: usize) -> *mut u8 {
        #[cfg(not(feature = "checked"))]
        if align <= 8 {
            if let Some(c) = size_class::small_class(size) {
                // SAFETY: `small_class` returns a class index below NUM_CLASSES.
                let cc = unsafe { self.classes.get_unchecked_mut(c) };
                let m = cc.loaded;
                // SAFETY: a non-null loaded magazine is owned by this cache (invariant 2).
                if !m.is_null() && unsafe { (*m).count } != 0 {
                    cc.allocs += 1;
                    // SAFETY: as above; `count > 0` so `items[count - 1]` holds a block.
                    return unsafe {
                        (*m).count -= 1;
                        *(*m).items.get_unchecked((*m).count as usize)
                    };
                }
            }
        }
        self.alloc_general(heap, size, align)
    }

    /// Like [`Cache::alloc`], with the bytes zeroed (fresh zero pages of large objects are not
    /// written).
    pub fn alloc_zeroed<P: PageSource>(
        &mut self,
        heap: &Heap<P>,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        if size_class::class_for(size, align).is_none() {
            return heap.alloc_large_with(self.node, size, align, true);
        }
        let p = self.alloc(heap, size, align);
        if !p.is_null() {
            // SAFETY: a live block of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        p
    }

    /// Every allocation the inlined fast path does not finish.
    #[inline(never)]
    fn alloc_general<P: PageSource>(
        &mut self,
        heap: &Heap<P>,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        let p = match size_class::class_for(size, align) {
            Some(c) => {
                let cc = &mut self.classes[c];
                let m = cc.loaded;
                // SAFETY: a non-null loaded magazine is owned by this cache (invariant 2).
                let hit = !m.is_null() && unsafe { (*m).count } != 0;
                let prev = cc.previous;
                if hit {
                    cc.allocs += 1;
                    // SAFETY: as above; `count > 0` so `items[count - 1]` holds a block.
                    unsafe {
                        (*m).count -= 1;
                        *(*m).items.get_unchecked((*m).count as usize)
                    }
                // SAFETY: a non-null previous magazine is owned by this cache (invariant 2).
                } else if !prev.is_null() && unsafe { (*prev).count } != 0 {
                    // Bonwick's swap: the previous magazine has blocks. Kept out of the cold
                    // slow path because a class whose live count hovers at a magazine boundary
                    // swaps every few operations; it touches nothing shared.
                    cc.previous = m;
                    cc.loaded = prev;
                    cc.allocs += 1;
                    // SAFETY: `prev` is ours with `count > 0`.
                    unsafe {
                        (*prev).count -= 1;
                        *(*prev).items.get_unchecked((*prev).count as usize)
                    }
                } else {
                    self.alloc_slow(heap, c)
                }
            }
            None => heap.alloc_large(self.node, size, align),
        };
        #[cfg(feature = "checked")]
        if !p.is_null() {
            crate::checked::on_alloc(heap, p);
        }
        p
    }

    /// Frees `p`.
    ///
    /// # Safety
    /// 1. `p` was allocated from `heap` (by any cache or entry point) and not freed since.
    #[inline(always)]
    pub unsafe fn free<P: PageSource>(&mut self, heap: &Heap<P>, p: *mut u8) {
        #[cfg(not(feature = "checked"))]
        {
            let seg = segment_of(p);
            // SAFETY: precondition 1: `p` lies in a segment of `heap`, whose header is valid.
            unsafe {
                let c = class_at(seg, p) as usize;
                if c < NUM_CLASSES && (*seg).node as usize == self.node {
                    let cc = self.classes.get_unchecked_mut(c);
                    let m = cc.loaded;
                    if !m.is_null() && (*m).count < (*m).cap {
                        *(*m).items.get_unchecked_mut((*m).count as usize) = p;
                        (*m).count += 1;
                        cc.frees += 1;
                        return;
                    }
                }
            }
        }
        // SAFETY: precondition 1.
        unsafe { self.free_general(heap, p) }
    }

    /// Every free the inlined fast path does not finish.
    ///
    /// # Safety
    /// 1. As for [`Cache::free`].
    #[inline(never)]
    unsafe fn free_general<P: PageSource>(&mut self, heap: &Heap<P>, p: *mut u8) {
        #[cfg(feature = "checked")]
        crate::checked::on_free(heap, p);
        let seg = segment_of(p);
        // SAFETY: precondition 1: `p` lies in a segment of `heap`, whose header is valid.
        unsafe {
            let c = class_at(seg, p) as usize;
            if c >= NUM_CLASSES {
                return heap.free_large(seg);
            }
            let node = (*seg).node as usize;
            if node != self.node {
                return self.free_remote(heap, node, p);
            }
            let cc = self.classes.get_unchecked_mut(c);
            let m = cc.loaded;
            if !m.is_null() && (*m).count < (*m).cap {
                *(*m).items.get_unchecked_mut((*m).count as usize) = p;
                (*m).count += 1;
                cc.frees += 1;
                return;
            }
            // Bonwick's swap: the previous magazine is empty (see `alloc_general`).
            let prev = cc.previous;
            if !prev.is_null() && (*prev).count == 0 {
                cc.previous = m;
                cc.loaded = prev;
                *(*prev).items.get_unchecked_mut(0) = p;
                (*prev).count = 1;
                cc.frees += 1;
                return;
            }
            self.free_slow(heap, c, p);
        }
    }

    /// Resizes `p` (allocated with `align`) to `new_size`, in place when the class (or the
    /// large mapping) allows, else by moving. Null on failure (then `p` is untouched).
    ///
    /// # Safety
    /// 1. `p` is a live block of `heap` of at least `old_size` bytes, allocated with `align`.
    pub unsafe fn realloc<P: PageSource>(
        &mut self,
        heap: &Heap<P>,
        p: *mut u8,
        align: usize,
        old_size: usize,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: precondition 1.
        if unsafe { heap.resize_in_place(p, align, new_size) } {
            return p;
        }
        let q = self.alloc(heap, new_size, align);
        if !q.is_null() {
            // SAFETY: both blocks are live, distinct, and at least min(old, new) bytes long.
            unsafe {
                ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
                self.free(heap, p);
            }
        }
        q
    }

    #[cold]
    fn rebind_if_moved<P: PageSource>(&mut self, heap: &Heap<P>) {
        if !self.follows_cpu {
            return;
        }
        if let Some(cpu) = heap.source().current_cpu() {
            let node = heap.node_of_cpu(cpu);
            if node != self.node {
                self.flush(heap);
                self.node = node;
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow<P: PageSource>(&mut self, heap: &Heap<P>, c: usize) -> *mut u8 {
        self.rebind_if_moved(heap);
        let node = self.node;
        let Some(ns) = heap.node_state(node) else {
            return ptr::null_mut();
        };
        let cc = &mut self.classes[c];
        stats::add(&ns.stats.classes[c].allocs, cc.allocs);
        stats::add(&ns.stats.classes[c].frees, cc.frees);
        cc.allocs = 0;
        cc.frees = 0;
        // 1. The previous magazine has blocks: swap.
        // SAFETY: magazines in the slot are owned by this cache.
        if !cc.previous.is_null() && unsafe { !(*cc.previous).is_empty() } {
            core::mem::swap(&mut cc.loaded, &mut cc.previous);
        } else {
            // 2. Pending remote frees become free blocks first (no lock held here).
            if !ns.inbox.is_empty() {
                heap.drain_inbox(ns, node);
            }
            let mut added = 0usize;
            ns.classes[c].lock.with(|inner| {
                let full = inner.depot.pop_full();
                if !full.is_null() {
                    // 3. Trade: the depot's full magazine becomes loaded; our empty loaded
                    // becomes previous; an empty previous goes to the depot.
                    if !cc.previous.is_null() {
                        // SAFETY: an empty magazine we own.
                        unsafe { heap.put_empty_magazine(ns, inner, cc.previous) };
                        added = added.wrapping_sub(1);
                    }
                    cc.previous = cc.loaded;
                    cc.loaded = full;
                    added = added.wrapping_add(1);
                } else {
                    // 4. No full magazine anywhere: fill ours from the slabs.
                    if cc.loaded.is_null() {
                        cc.loaded = heap.empty_magazine(ns, node, c, inner);
                        if cc.loaded.is_null() {
                            return;
                        }
                        added = added.wrapping_add(1);
                    }
                    let m = cc.loaded;
                    // SAFETY: our magazine; `cap <= MAGAZINE_CAPACITY_MAX`.
                    unsafe {
                        let cap = (*m).cap as usize;
                        let items = &mut (*m).items;
                        let n = heap.refill(ns, node, c, inner, &mut items[..cap]);
                        (*m).count = n as u32;
                    }
                }
                heap.reap_class(ns, node, inner, false);
            });
            let per_mag = MAGAZINE_CAPACITY[c] as usize * class_bytes(c);
            self.held_bound_bytes = self
                .held_bound_bytes
                .wrapping_add(added.wrapping_mul(per_mag));
        }
        let cc = &mut self.classes[c];
        let m = cc.loaded;
        // SAFETY: our magazine.
        if m.is_null() || unsafe { (*m).is_empty() } {
            return ptr::null_mut();
        }
        cc.allocs += 1;
        // SAFETY: count > 0.
        let p = unsafe {
            (*m).count -= 1;
            (*m).items[(*m).count as usize]
        };
        self.enforce_budget(heap, c);
        p
    }

    #[cold]
    #[inline(never)]
    fn free_slow<P: PageSource>(&mut self, heap: &Heap<P>, c: usize, p: *mut u8) {
        self.rebind_if_moved(heap);
        let node = self.node;
        // SAFETY: the caller's precondition: `p` is a live block of `heap`.
        let owner = unsafe { (*segment_of(p)).node as usize };
        if owner != node {
            // SAFETY: as above.
            return unsafe { self.free_remote(heap, owner, p) };
        }
        let Some(ns) = heap.existing_node(node) else {
            return;
        };
        let cc = &mut self.classes[c];
        stats::add(&ns.stats.classes[c].allocs, cc.allocs);
        stats::add(&ns.stats.classes[c].frees, cc.frees + 1);
        cc.allocs = 0;
        cc.frees = 0;
        // 1. previous is empty: swap.
        // SAFETY: our magazines.
        if !cc.previous.is_null() && unsafe { (*cc.previous).is_empty() } {
            core::mem::swap(&mut cc.loaded, &mut cc.previous);
        } else {
            let mut added = 0usize;
            let mut fallback = false;
            ns.classes[c].lock.with(|inner| {
                // 2. Trade: our full previous goes to the depot (or drains into slabs when the
                // depot is at its bound), loaded becomes previous, a new empty one is loaded.
                if !cc.previous.is_null() {
                    // SAFETY: our magazine, blocks of class `c` on `node`.
                    unsafe { heap.put_loaded_magazine(ns, node, inner, cc.previous) };
                    added = added.wrapping_sub(1);
                }
                cc.previous = cc.loaded;
                cc.loaded = heap.empty_magazine(ns, node, c, inner);
                if cc.loaded.is_null() {
                    // Out of pages for a magazine: return the block straight to its slab.
                    // SAFETY: `p` is a block of `c` on `node`, ours.
                    unsafe { heap.put_block(ns, node, inner, p) };
                    fallback = true;
                } else {
                    added = added.wrapping_add(1);
                }
                heap.reap_class(ns, node, inner, false);
            });
            let per_mag = MAGAZINE_CAPACITY[c] as usize * class_bytes(c);
            self.held_bound_bytes = self
                .held_bound_bytes
                .wrapping_add(added.wrapping_mul(per_mag));
            if fallback {
                return;
            }
        }
        let m = self.classes[c].loaded;
        // SAFETY: our magazine, now with room (empty or swapped-in empty).
        unsafe {
            (*m).items[(*m).count as usize] = p;
            (*m).count += 1;
        }
        self.enforce_budget(heap, c);
    }

    /// Sends `p` toward its home node.
    ///
    /// # Safety
    /// 1. `p` is a live small block of `heap` on node `owner`, owned by the caller.
    #[inline(never)]
    unsafe fn free_remote<P: PageSource>(&mut self, heap: &Heap<P>, owner: usize, p: *mut u8) {
        let batch = &mut self.remote[owner % MAX_NODES];
        // SAFETY: precondition 1: `p` is at least 8 bytes and 8-aligned.
        if unsafe { batch.push(p) } {
            Self::send_batch(heap, owner, batch);
        }
    }

    fn send_batch<P: PageSource>(heap: &Heap<P>, owner: usize, batch: &mut RemoteBatch) {
        let (h, t, n) = batch.take();
        if h.is_null() {
            return;
        }
        match heap.existing_node(owner) {
            // SAFETY: the chain was built by `RemoteBatch::push` from blocks we own.
            Some(ns) => unsafe { ns.inbox.push_chain(h, t, n) },
            None => {
                // The owner node's state exists whenever one of its blocks does; unreachable in
                // a correct program, so the blocks are dropped rather than misfiled.
            }
        }
    }

    /// Returns every magazine to the node's depot (or slabs), sends every remote batch home
    /// and adds the pending counters to the node's statistics. The cache stays usable.
    pub fn flush<P: PageSource>(&mut self, heap: &Heap<P>) {
        for owner in 0..MAX_NODES {
            if self.remote[owner].count != 0 {
                Self::send_batch(heap, owner, &mut self.remote[owner]);
            }
        }
        let node = self.node;
        let Some(ns) = heap.existing_node(node) else {
            return;
        };
        for c in 0..NUM_CLASSES {
            self.flush_class(heap, ns, node, c);
        }
        self.held_bound_bytes = 0;
    }

    fn flush_class<P: PageSource>(
        &mut self,
        heap: &Heap<P>,
        ns: &crate::node::NodeState,
        node: usize,
        c: usize,
    ) {
        let cc = &mut self.classes[c];
        stats::add(&ns.stats.classes[c].allocs, cc.allocs);
        stats::add(&ns.stats.classes[c].frees, cc.frees);
        cc.allocs = 0;
        cc.frees = 0;
        if cc.loaded.is_null() && cc.previous.is_null() {
            return;
        }
        ns.classes[c].lock.with(|inner| {
            for m in [cc.previous, cc.loaded] {
                if !m.is_null() {
                    // SAFETY: our magazines, blocks of class `c` on `node`.
                    unsafe { heap.put_loaded_magazine(ns, node, inner, m) };
                }
            }
        });
        let held = [cc.loaded, cc.previous]
            .iter()
            .filter(|m| !m.is_null())
            .count();
        cc.loaded = ptr::null_mut();
        cc.previous = ptr::null_mut();
        let per_mag = MAGAZINE_CAPACITY[c] as usize * class_bytes(c);
        self.held_bound_bytes = self.held_bound_bytes.saturating_sub(held * per_mag);
    }

    /// Invariant 3: drop this class's spare magazine, then other classes' magazines, until
    /// the bound fits the budget (visiting at most [`EVICT_SCAN_MAX`] classes).
    fn enforce_budget<P: PageSource>(&mut self, heap: &Heap<P>, c: usize) {
        let budget = heap.cache_budget_bytes();
        if self.held_bound_bytes <= budget {
            return;
        }
        let node = self.node;
        let Some(ns) = heap.existing_node(node) else {
            return;
        };
        let per_mag = MAGAZINE_CAPACITY[c] as usize * class_bytes(c);
        let prev = self.classes[c].previous;
        if !prev.is_null() {
            self.classes[c].previous = ptr::null_mut();
            ns.classes[c].lock.with(|inner| {
                // SAFETY: our magazine with blocks of `c` on `node`.
                unsafe { heap.put_loaded_magazine(ns, node, inner, prev) }
            });
            self.held_bound_bytes -= per_mag;
        }
        for _ in 0..EVICT_SCAN_MAX {
            if self.held_bound_bytes <= budget {
                return;
            }
            let v = self.evict_cursor % NUM_CLASSES;
            self.evict_cursor = self.evict_cursor.wrapping_add(1);
            if v != c {
                self.flush_class(heap, ns, node, v);
            }
        }
    }
}
