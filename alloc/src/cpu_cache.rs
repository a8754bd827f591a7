//! The per-CPU (kernel) or per-thread (user space) cache: two magazines per class and one
//! remote-free batch per other node.
//!
//! Fast paths touch only the cache (owned by one CPU with preemption off, or by one thread):
//! allocation pops from the class's loaded magazine, a free of a block of the cache's own node
//! pushes onto it unless another cache owns the block's slab (classes up to 56 B, see
//! [`owned`](crate::owned): the owner id comes with the class in one header load). No lock,
//! no atomic read-modify-write. A free of another node's block goes to that node's
//! [`RemoteBatch`], never into a magazine; a free of a block another cache owns goes onto its
//! slab's thread-free list (one CAS), never into a magazine either.
//!
//! Invariants:
//! 1. Every block in a cache's magazines belongs to a slab of `cache.node`.
//! 2. A class slot holds at most two magazines (`loaded`, `previous`); `loaded` is the one
//!    in use. Either may be null.
//! 3. The bytes the magazines could hold (`held_bound_bytes` = sum of `cap * class bytes` over
//!    the magazines held) stay at most the heap's cache budget after every slow path.
//! 4. While a magazine is loaded, its fill level and capacity live in the class slot
//!    (`count`, `cap`; both 0 when nothing is loaded) and the magazine's own `count` is
//!    stale; [`ClassCache::unload`] writes it back whenever the magazine leaves the slot. So a
//!    fast path reads one line of the cache and one line of the magazine's `items`, and
//!    `count != 0` / `count < cap` alone decide a hit (no null test).
//!
//! Slow paths follow Bonwick: swap `loaded` and `previous` when that helps, else trade with the
//! node's depot under the class lock, else refill from (or drain to) the slabs. A per-thread
//! cache checks on slow paths whether its thread has moved to another node
//! ([`PageSource::current_cpu`]); if so it flushes everything and rebinds, keeping invariant 1.

use core::ptr;

use crate::heap::Heap;
use crate::magazine::Magazine;
use crate::node_map::MAX_NODES;
use crate::owned::{OWNED_CLASSES, is_owned_class};
use crate::page_source::PageSource;
use crate::remote_free::RemoteBatch;
use crate::segment::{SlabMeta, class_at, owner_at, segment_of, slab_of};
use crate::size_class::{self, MAGAZINE_CAPACITY, NUM_CLASSES, class_bytes};
use crate::stats;

/// Classes a slow path may visit to get back under the budget.
pub const EVICT_SCAN_MAX: usize = 8;

/// One class's slot in a cache: what the fast paths touch (32 bytes, two per cache line).
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy)]
struct ClassCache {
    /// The magazine allocations pop from and frees push to (null when none).
    loaded: *mut Magazine,
    /// Blocks in `loaded` (invariant 4; 0 when none).
    count: u32,
    /// Capacity of `loaded` (0 when none).
    cap: u32,
    /// Allocations not yet added to the node's counters.
    allocs: u64,
    /// Local frees not yet added to the node's counters.
    frees: u64,
}

const EMPTY_CLASS: ClassCache = ClassCache {
    loaded: ptr::null_mut(),
    count: 0,
    cap: 0,
    allocs: 0,
    frees: 0,
};

impl ClassCache {
    /// Takes the loaded magazine out of the slot with its count written back (null if none).
    #[inline]
    fn unload(&mut self) -> *mut Magazine {
        let m = self.loaded;
        if !m.is_null() {
            // SAFETY: a loaded magazine is owned by this cache (invariant 2).
            unsafe { (*m).count = self.count };
        }
        self.loaded = ptr::null_mut();
        self.count = 0;
        self.cap = 0;
        m
    }

    /// Makes `m` (owned by the cache, or null) the loaded magazine of an empty slot.
    #[inline]
    fn load(&mut self, m: *mut Magazine) {
        debug_assert!(self.loaded.is_null());
        self.loaded = m;
        if !m.is_null() {
            // SAFETY: `m` is owned by this cache and not loaded, so its own fields are current.
            unsafe {
                self.count = (*m).count;
                self.cap = (*m).cap;
            }
        }
    }

    /// Pops a block from the loaded magazine.
    ///
    /// # Safety
    /// 1. `self.count != 0`.
    #[inline(always)]
    unsafe fn pop(&mut self) -> *mut u8 {
        self.count -= 1;
        self.allocs += 1;
        // SAFETY: precondition 1 and invariant 4: a non-zero count means a loaded magazine
        // whose `items[..count]` hold blocks.
        unsafe { *(*self.loaded).items.get_unchecked(self.count as usize) }
    }

    /// Pushes a block onto the loaded magazine.
    ///
    /// # Safety
    /// 1. `self.count < self.cap`; 2. `p` is a free block of this cache's node and class.
    #[inline(always)]
    unsafe fn push(&mut self, p: *mut u8) {
        // SAFETY: precondition 1 and invariant 4: `count < cap <= MAGAZINE_CAPACITY_MAX`.
        unsafe { *(*self.loaded).items.get_unchecked_mut(self.count as usize) = p };
        self.count += 1;
        self.frees += 1;
    }
}

/// A CPU's or thread's cache. Owned by exactly one CPU (with preemption off) or thread; every
/// field is read and written only by that owner.
#[repr(C)]
#[derive(Debug)]
pub struct Cache {
    /// Per class: the fast-path slots.
    classes: [ClassCache; NUM_CLASSES],
    /// Per class: the spare magazine (Bonwick's "previous"), its own `count` current.
    previous: [*mut Magazine; NUM_CLASSES],
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
    /// This cache's id as an owner of slabs (0 until its first owned-class refill).
    id: u8,
    /// Per owned class: the slab this cache owns and refills from (null when none).
    own: [*mut SlabMeta; OWNED_CLASSES],
    /// Per owned class: blocks of one slab another cache owns, waiting to be sent to it.
    xbatch: [XBatch; OWNED_CLASSES],
}

/// Blocks most a pending batch for another cache's slab gathers before it is sent.
pub const XBATCH_MAX: u32 = 32;

/// Blocks of one slab owned by another cache, freed here, linked through their first words.
#[derive(Debug, Clone, Copy)]
struct XBatch {
    /// The slab they belong to (null when the batch is empty).
    slab: *mut SlabMeta,
    /// First block of the chain.
    head: *mut u8,
    /// Last block of the chain.
    tail: *mut u8,
    /// Blocks in the chain.
    count: u32,
}

impl XBatch {
    const EMPTY: XBatch = XBatch {
        slab: ptr::null_mut(),
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
        count: 0,
    };
}

/// Whether magazine `m` holds a block of slab `own`.
///
/// # Safety
/// 1. `m` is null or a magazine owned by the caller (its `count` current), holding blocks of
///    this heap.
unsafe fn holds_own_blocks(m: *mut crate::magazine::Magazine, own: *mut SlabMeta) -> bool {
    if m.is_null() || own.is_null() {
        return false;
    }
    // SAFETY: precondition 1.
    unsafe {
        (&(*m).items)[..(*m).count as usize]
            .iter()
            .any(|&b| slab_of(segment_of(b), b) == own)
    }
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
            previous: [ptr::null_mut(); NUM_CLASSES],
            node,
            follows_cpu,
            held_bound_bytes: 0,
            evict_cursor: 0,
            remote: [RemoteBatch::EMPTY; MAX_NODES],
            id: 0,
            own: [ptr::null_mut(); OWNED_CLASSES],
            xbatch: [XBatch::EMPTY; OWNED_CLASSES],
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
                if cc.count != 0 {
                    // SAFETY: `count != 0`.
                    return unsafe { cc.pop() };
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
                let prev = self.previous[c];
                let cc = &mut self.classes[c];
                if cc.count != 0 {
                    // SAFETY: `count != 0`.
                    unsafe { cc.pop() }
                // SAFETY: a non-null previous magazine is owned by this cache (invariant 2).
                } else if !prev.is_null() && unsafe { (*prev).count } != 0 {
                    // Bonwick's swap: the previous magazine has blocks. Kept out of the cold
                    // slow path because a class whose live count hovers at a magazine boundary
                    // swaps every few operations; it touches nothing shared.
                    self.previous[c] = cc.unload();
                    cc.load(prev);
                    // SAFETY: `prev` holds blocks, so `count != 0`.
                    unsafe { cc.pop() }
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
                // One load: the class, and the owner of the block's slab (blocks of a slab
                // another cache owns go home, see `owned`).
                let tag = crate::segment::tag_at(seg, p);
                let c = (tag & 0xff) as usize;
                let owner = (tag >> 8) as u8;
                if c < NUM_CLASSES
                    && (owner == 0 || owner == self.id)
                    && (*seg).node as usize == self.node
                {
                    let cc = self.classes.get_unchecked_mut(c);
                    if cc.count < cc.cap {
                        cc.push(p);
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
            let owner = owner_at(seg, p);
            if owner != 0 && owner != self.id && is_owned_class(c) {
                // Another cache owns the slab: the block goes to its thread-free list (in a
                // batch), never into our magazines.
                return self.free_foreign(heap, c, slab_of(seg, p), p);
            }
            let prev = *self.previous.get_unchecked(c);
            let cc = self.classes.get_unchecked_mut(c);
            if cc.count < cc.cap {
                cc.push(p);
                return;
            }
            // Bonwick's swap: the previous magazine is empty (see `alloc_general`).
            if !prev.is_null() && (*prev).count == 0 {
                *self.previous.get_unchecked_mut(c) = cc.unload();
                cc.load(prev);
                // `prev` is empty with a non-zero capacity, so `count < cap`.
                cc.push(p);
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
        let prev = &mut self.previous[c];
        let cc = &mut self.classes[c];
        stats::add(&ns.stats.classes[c].allocs, cc.allocs);
        stats::add(&ns.stats.classes[c].frees, cc.frees);
        cc.allocs = 0;
        cc.frees = 0;
        // 1. The previous magazine has blocks: swap (after a rebind, or from the uninlined
        // check in `alloc_general`).
        // SAFETY: magazines in the slot are owned by this cache.
        if !prev.is_null() && unsafe { !(**prev).is_empty() } {
            let m = cc.unload();
            cc.load(*prev);
            *prev = m;
        } else if is_owned_class(c) {
            // 2'. Owned classes: refill the loaded magazine from the own slab; when it has
            // nothing, take a full magazine a flushed cache left in the depot (its blocks are
            // of slabs given up, so shared) before adopting another slab.
            if !ns.inbox.is_empty() {
                heap.drain_inbox(ns, node);
            }
            if self.id == 0 {
                self.id = heap.new_cache_id();
            }
            if cc.loaded.is_null() {
                let m = ns.classes[c]
                    .lock
                    .with(|inner| heap.empty_magazine(ns, node, c, inner));
                if m.is_null() {
                    return ptr::null_mut();
                }
                cc.load(m);
                self.held_bound_bytes += MAGAZINE_CAPACITY[c] as usize * class_bytes(c);
            }
            let m = cc.loaded;
            let own = &mut self.own[c];
            // SAFETY: our magazine, empty (slow path), `cap <= MAGAZINE_CAPACITY_MAX`;
            // `own[c]` is null or our own slab of `c` on `node` (it is reset on rebind).
            let n = unsafe {
                let items = &mut (&mut (*m).items)[..cc.cap as usize];
                if own.is_null() {
                    0
                } else {
                    crate::owned::pop_own(*own, items)
                }
            };
            cc.count = n as u32;
            if n == 0 {
                let id = self.id;
                let traded = ns.classes[c].lock.with(|inner| {
                    let full = inner.depot.pop_full();
                    if full.is_null() {
                        return false;
                    }
                    // SAFETY: `full` is a full magazine of `c` on `node` we just took; `own`
                    // is null or our exhausted own slab; `empty` is our empty magazine.
                    unsafe {
                        if !heap.adopt_magazine_slab(ns, node, inner, full, own, id) {
                            // Its slab has an owner already: the blocks go to it.
                            heap.drain_magazine(ns, node, inner, full);
                            heap.put_empty_magazine(ns, inner, full);
                            return false;
                        }
                        let empty = cc.unload();
                        heap.put_empty_magazine(ns, inner, empty);
                    }
                    cc.load(full);
                    true
                });
                if !traded {
                    let m = cc.loaded;
                    // SAFETY: as above.
                    unsafe {
                        let items = &mut (&mut (*m).items)[..cc.cap as usize];
                        cc.count = heap.refill_owned(ns, node, c, own, self.id, items) as u32;
                    }
                }
            }
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
                    if !prev.is_null() {
                        // SAFETY: an empty magazine we own.
                        unsafe { heap.put_empty_magazine(ns, inner, *prev) };
                        added = added.wrapping_sub(1);
                    }
                    *prev = cc.unload();
                    cc.load(full);
                    added = added.wrapping_add(1);
                } else {
                    // 4. No full magazine anywhere: fill ours from the slabs.
                    if cc.loaded.is_null() {
                        let m = heap.empty_magazine(ns, node, c, inner);
                        if m.is_null() {
                            return;
                        }
                        cc.load(m);
                        added = added.wrapping_add(1);
                    }
                    let m = cc.loaded;
                    // SAFETY: our magazine; `cap <= MAGAZINE_CAPACITY_MAX`; it is empty (we
                    // are on the slow path), so `items[..cap]` may be overwritten.
                    unsafe {
                        let items = &mut (*m).items;
                        let n = heap.refill(ns, node, c, inner, &mut items[..cc.cap as usize]);
                        cc.count = n as u32;
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
        if cc.count == 0 {
            return ptr::null_mut();
        }
        // SAFETY: `count != 0`.
        let p = unsafe { cc.pop() };
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
        let prev = &mut self.previous[c];
        let cc = &mut self.classes[c];
        stats::add(&ns.stats.classes[c].allocs, cc.allocs);
        stats::add(&ns.stats.classes[c].frees, cc.frees);
        cc.allocs = 0;
        cc.frees = 0;
        // 1. previous is empty: swap.
        // SAFETY: our magazines.
        if !prev.is_null() && unsafe { (**prev).is_empty() } {
            let m = cc.unload();
            cc.load(*prev);
            *prev = m;
        } else if cc.count >= cc.cap
            && is_owned_class(c)
            // SAFETY: our magazine; `own[c]` is null or ours.
            && unsafe { holds_own_blocks(*prev, self.own[c]) }
        {
            // 2'. Owned classes whose full previous magazine holds blocks of the own slab:
            // no depot (another cache would get them); it goes back to the slabs and becomes
            // the empty loaded one. (A magazine of only other slabs' blocks, say frees of an
            // exited thread's blocks, trades with the depot below like any class's.)
            {
                let pm = *prev;
                // SAFETY: our magazine with blocks of `c` on `node`; `own[c]` is ours.
                unsafe {
                    let blocks = &(&(*pm).items)[..(*pm).count as usize];
                    heap.return_owned_blocks(ns, node, c, self.own[c], blocks);
                    (*pm).count = 0;
                }
                let m = cc.unload();
                cc.load(pm);
                *prev = m;
            }
        } else if cc.count >= cc.cap {
            let mut added = 0usize;
            let mut fallback = false;
            ns.classes[c].lock.with(|inner| {
                // 2. Trade: our full previous goes to the depot (or drains into slabs when the
                // depot is at its bound), loaded becomes previous, a new empty one is loaded.
                if !prev.is_null() {
                    // SAFETY: our magazine, blocks of class `c` on `node`.
                    unsafe { heap.put_loaded_magazine(ns, node, inner, *prev) };
                    added = added.wrapping_sub(1);
                }
                *prev = cc.unload();
                let m = heap.empty_magazine(ns, node, c, inner);
                if m.is_null() {
                    // Out of pages for a magazine: return the block straight to its slab.
                    // SAFETY: `p` is a block of `c` on `node`, ours.
                    unsafe { heap.put_block(ns, node, inner, p) };
                    // Counted here: it never reaches `push`, which counts the others.
                    stats::add(&ns.stats.classes[c].frees, 1);
                    fallback = true;
                } else {
                    cc.load(m);
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
        let cc = &mut self.classes[c];
        // SAFETY: the loaded magazine has room (swapped in empty, freshly loaded empty, or it
        // had room all along); `p` is a free block of `c` on `node` (checked above).
        unsafe { cc.push(p) };
        self.enforce_budget(heap, c);
    }

    /// Queues `p`, a block of `slab`, which another cache owns, for that owner: blocks for one
    /// slab gather in the class's pending batch and go onto the slab's thread-free list with
    /// one CAS per [`XBATCH_MAX`] blocks or when a block of another slab comes.
    ///
    /// # Safety
    /// 1. `p` is a live block of class `c` of `slab`, on this cache's node, owned by the
    ///    caller; `c` is an owned class.
    #[inline(never)]
    unsafe fn free_foreign<P: PageSource>(
        &mut self,
        heap: &Heap<P>,
        c: usize,
        slab: *mut SlabMeta,
        p: *mut u8,
    ) {
        if self.xbatch[c].slab != slab {
            self.send_xbatch(heap, c);
            self.xbatch[c].slab = slab;
        }
        let b = &mut self.xbatch[c];
        // SAFETY: precondition 1: the block is ours to link.
        unsafe { crate::remote_free::set_next(p, b.head) };
        if b.head.is_null() {
            b.tail = p;
        }
        b.head = p;
        b.count += 1;
        self.classes[c].frees += 1;
        if self.xbatch[c].count >= XBATCH_MAX {
            self.send_xbatch(heap, c);
        }
    }

    /// Pushes class `c`'s pending batch onto its slab's thread-free list. If the owner gave
    /// the slab up meanwhile (the push bounces), the slab is shared: the blocks go back to it
    /// under the class lock.
    fn send_xbatch<P: PageSource>(&mut self, heap: &Heap<P>, c: usize) {
        let b = core::mem::replace(&mut self.xbatch[c], XBatch::EMPTY);
        if b.head.is_null() {
            return;
        }
        // SAFETY: the chain holds blocks of `b.slab` we own (linked by `free_foreign`); the
        // slab cannot be released while they are out (they count as used).
        if unsafe { (*b.slab).xfree.push_chain(b.head, b.tail) } {
            return;
        }
        let node = self.node;
        let Some(ns) = heap.existing_node(node) else {
            return;
        };
        let mut q = b.head;
        ns.classes[c].lock.with(|inner| {
            // Exactly the batch's blocks (a bounced push leaves the tail's link null, and the
            // count bounds the walk regardless).
            for _ in 0..b.count {
                // SAFETY: as above; `put_block` routes by the slab's state under the lock.
                unsafe {
                    let next = crate::remote_free::next_of(q);
                    heap.put_block(ns, node, inner, q);
                    q = next;
                }
            }
        });
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
        for c in 0..OWNED_CLASSES {
            self.send_xbatch(heap, c);
        }
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
        let loaded = cc.unload();
        let prev = core::mem::replace(&mut self.previous[c], ptr::null_mut());
        if is_owned_class(c) {
            // Give the own slab up first: its blocks in the magazines then belong to a shared
            // slab, so the magazines may go to the depot whole like any other class's (the
            // next cache takes them by trade instead of re-reading drained blocks).
            let own = core::mem::replace(&mut self.own[c], ptr::null_mut());
            if !own.is_null() {
                ns.classes[c].lock.with(|inner| {
                    // SAFETY: our own slab of `c` on `node`.
                    unsafe { heap.disown_slab(ns, node, inner, own) }
                });
            }
        }
        if loaded.is_null() && prev.is_null() {
            return;
        }
        ns.classes[c].lock.with(|inner| {
            for m in [prev, loaded] {
                if m.is_null() {
                    continue;
                }
                // SAFETY: our magazines (counts written back by `unload`), blocks of class `c`
                // on `node`.
                unsafe {
                    // At least half full: the depot takes it whole (depot invariant), so the
                    // next cache's trade gets its blocks without either side touching them.
                    // Draining it would write every block into its slab and a refill would
                    // read each back (a cache miss apiece for a thread that just exited).
                    if !(*m).is_full()
                        && (*m).count * 2 >= (*m).cap
                        && inner.depot.push_full(m).is_ok()
                    {
                        continue;
                    }
                    heap.put_loaded_magazine(ns, node, inner, m);
                }
            }
        });
        let held = [loaded, prev].iter().filter(|m| !m.is_null()).count();
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
        let prev = self.previous[c];
        if !prev.is_null() {
            self.previous[c] = ptr::null_mut();
            if is_owned_class(c) {
                // SAFETY: our magazine with blocks of `c` on `node`; `own[c]` is ours.
                unsafe {
                    let blocks = &(&(*prev).items)[..(*prev).count as usize];
                    heap.return_owned_blocks(ns, node, c, self.own[c], blocks);
                    (*prev).count = 0;
                }
            }
            ns.classes[c].lock.with(|inner| {
                // SAFETY: our magazine with blocks of `c` on `node` (none left for an owned
                // class, so it goes to the empty list, never to the depot's full one).
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
