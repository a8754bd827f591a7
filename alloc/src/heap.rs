//! The heap: per-node state, the slab and depot paths every front-end shares, large objects,
//! `trim`, statistics and placement checks.
//!
//! A [`Heap`] is shared by every thread or CPU; each one's fast path lives in its own
//! [`Cache`](crate::Cache), which calls back here only on slow paths. The heap's own entry
//! points ([`Heap::alloc`], [`Heap::free`]) work without a cache (under the class lock); they
//! serve per-node handles, threads whose cache is gone, and tests.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::magazine::Magazine;
use crate::node::{NodeState, PageCtx};
use crate::node_map::{MAX_NODES, MapOrigin, NodeMap};
use crate::page_source::{PageSource, Placement};
use crate::remote_free::next_of;
use crate::segment::{
    ALIGN_MAX_BYTES, PAGE_BYTES, SEGMENT_BYTES, SegmentHeader, SegmentKind, SlabMeta, SlabState,
    segment_of, slab_of,
};
use crate::size_class::{self, CLASS_MAX_BYTES, MAGAZINE_CAPACITY, NUM_CLASSES, class_bytes};
use crate::slab::ClassInner;
use crate::stats::{self, NodeStats};
use crate::sync::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, UnsafeCell};

const MAP_UNSET: u8 = 0;
const MAP_BUSY: u8 = 1;
const MAP_READY: u8 = 2;

/// Yields [`Heap::fork_prepare`] waits at most for another thread's machine discovery.
const FORK_DISCOVERY_WAIT_YIELDS_MAX: usize = 10_000;

/// The default bound on the bytes of blocks one cache may hold in its magazines.
pub const CACHE_BUDGET_BYTES_DEFAULT: usize = 4 << 20;

/// One fallback map for every heap whose machine is not known yet.
static SINGLE_NODE: NodeMap = NodeMap::single_node();

/// A NUMA-aware slab heap over a page source.
pub struct Heap<P: PageSource> {
    /// Where pages come from. Immutable.
    source: P,
    /// `MAP_UNSET`, `MAP_BUSY` (one thread discovering), `MAP_READY` (map published).
    map_state: AtomicU8,
    /// The machine; written once by the discovering thread before `MAP_READY` (Release), read
    /// after observing `MAP_READY` (Acquire).
    map: UnsafeCell<NodeMap>,
    /// Where `map` came from; written and published together with it.
    origin: UnsafeCell<MapOrigin>,
    /// Each node's state, created on first use (CAS from null), never freed.
    nodes: [AtomicPtr<NodeState>; MAX_NODES],
    /// Bound on bytes in one cache's magazines. Read by caches on slow paths.
    cache_budget_bytes: AtomicUsize,
    /// Bit `n` set: node `n`'s locks are held by [`Heap::fork_prepare`]. Written by the
    /// forking thread only.
    fork_locked_nodes: AtomicU64,
    /// Cache ids handed out so far ([`owned`](crate::owned)); bumped by each new cache's
    /// first slow path of an owned class.
    pub(crate) cache_ids: AtomicUsize,
}

// SAFETY: all shared mutation goes through atomics and the node states' locks; the map cell is
// written once before being published with Release and only read after an Acquire.
unsafe impl<P: PageSource> Sync for Heap<P> {}
// SAFETY: the heap owns its pages and node states; nothing is tied to a thread.
unsafe impl<P: PageSource + Send> Send for Heap<P> {}

impl<P: PageSource> core::fmt::Debug for Heap<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("nodes", &self.node_map().nodes())
            .finish_non_exhaustive()
    }
}

impl<P: PageSource> Drop for Heap<P> {
    /// Returns every page to the source. Blocks still held become dangling, like those of a
    /// dropped arena; caches of this heap must not be used afterwards.
    fn drop(&mut self) {
        for node in 0..MAX_NODES {
            let p = self.nodes[node].load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            let ctx = self.ctx(node);
            // SAFETY: `&mut self`: no thread uses the heap any more; the node state and its
            // pages came from this source with these arguments.
            unsafe {
                (*p).release_everything(&ctx);
                self.source.free_pages(
                    NonNull::new_unchecked(p.cast()),
                    NodeState::PAGES_BYTES,
                    ctx.os_node,
                );
            }
        }
    }
}

impl<P: PageSource> Heap<P> {
    /// A heap that learns the machine from `source` on first use (one node when it cannot).
    pub const fn new(source: P) -> Self {
        Self::build(
            source,
            NodeMap::single_node(),
            MAP_UNSET,
            MapOrigin::Pending,
        )
    }

    /// A heap over a given machine (a fake multi-node map in tests, or one from a
    /// [`Topology`](manycore_topology::Topology)).
    pub const fn with_node_map(source: P, map: NodeMap) -> Self {
        Self::build(source, map, MAP_READY, MapOrigin::Given)
    }

    const fn build(source: P, map: NodeMap, state: u8, origin: MapOrigin) -> Self {
        Heap {
            source,
            map_state: AtomicU8::new(state),
            map: UnsafeCell::new(map),
            origin: UnsafeCell::new(origin),
            nodes: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_NODES],
            cache_budget_bytes: AtomicUsize::new(CACHE_BUDGET_BYTES_DEFAULT),
            fork_locked_nodes: AtomicU64::new(0),
            cache_ids: AtomicUsize::new(0),
        }
    }

    /// The page source.
    pub fn source(&self) -> &P {
        &self.source
    }

    /// The machine as the heap sees it. Until discovery finishes (the first call runs it),
    /// other threads see a one-node map: any node is a correct home, only locality differs.
    pub fn node_map(&self) -> &NodeMap {
        match self.map_state.load(Ordering::Acquire) {
            MAP_READY => {
                // SAFETY: READY was stored with Release after the last write to the map.
                self.map.with_mut(|p| unsafe { &*p })
            }
            MAP_UNSET => self.discover(),
            _ => &SINGLE_NODE,
        }
    }

    #[cold]
    fn discover(&self) -> &NodeMap {
        if self
            .map_state
            .compare_exchange(MAP_UNSET, MAP_BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return &SINGLE_NODE;
        }
        let origin = self.map.with_mut(|p| {
            // SAFETY: the BUSY state makes this thread the only writer, and no reader looks at
            // the cell before READY.
            let map = unsafe { &mut *p };
            *map = NodeMap::builder();
            let found = match self.source.discover_nodes(map) {
                Ok(()) if map.nodes() == 0 => Err(crate::node_map::DiscoveryError::Map(
                    crate::node_map::NodeMapError::NoNodes,
                )),
                other => other,
            };
            match found {
                Ok(()) => MapOrigin::Discovered,
                Err(e) => {
                    *map = NodeMap::single_node();
                    MapOrigin::Fallback(e)
                }
            }
        });
        // SAFETY: as above: BUSY makes this thread the only writer of the origin too.
        self.origin.with_mut(|p| unsafe { p.write(origin) });
        self.map_state.store(MAP_READY, Ordering::Release);
        // SAFETY: as in `node_map`: published above.
        self.map.with_mut(|p| unsafe { &*p })
    }

    /// Where the node map came from: given, discovered, or a one-node fallback with the
    /// reason discovery failed. Runs discovery if it has not run yet; `Pending` only while
    /// another thread is discovering.
    pub fn map_origin(&self) -> MapOrigin {
        let _ = self.node_map();
        if self.map_state.load(Ordering::Acquire) != MAP_READY {
            return MapOrigin::Pending;
        }
        // SAFETY: READY was stored with Release after the last write to the origin.
        self.origin.with_mut(|p| unsafe { *p })
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.node_map().nodes()
    }

    /// The logical node of OS CPU `cpu`.
    pub fn node_of_cpu(&self, cpu: usize) -> usize {
        self.node_map().node_of_cpu(cpu)
    }

    /// Sets the bound on bytes of blocks one cache may hold (checked on its slow paths).
    pub fn set_cache_budget_bytes(&self, bytes: usize) {
        self.cache_budget_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The bound on bytes of blocks one cache may hold.
    pub fn cache_budget_bytes(&self) -> usize {
        self.cache_budget_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn ctx(&self, node: usize) -> PageCtx<'_, P> {
        PageCtx {
            source: &self.source,
            node,
            os_node: self.node_map().os_node(node),
        }
    }

    /// Node `node`'s state, created on first use in pages on that node. `None` when `node` is
    /// not a node of the map or the page source is exhausted.
    #[inline]
    pub(crate) fn node_state(&self, node: usize) -> Option<&NodeState> {
        let p = self.nodes.get(node)?.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: published node states live as long as the heap.
            return Some(unsafe { &*p });
        }
        self.create_node(node)
    }

    /// Node `node`'s state if it exists (no creation).
    pub(crate) fn existing_node(&self, node: usize) -> Option<&NodeState> {
        let p = self.nodes.get(node)?.load(Ordering::Acquire);
        // SAFETY: published node states live as long as the heap.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    #[cold]
    fn create_node(&self, node: usize) -> Option<&NodeState> {
        if node >= self.nodes() {
            return None;
        }
        let os_node = self.node_map().os_node(node);
        let bytes = NodeState::PAGES_BYTES;
        let pages = self.source.alloc_pages(bytes, PAGE_BYTES, os_node)?;
        let ns = pages.as_ptr().cast::<NodeState>();
        // Fresh pages from a source that zeroes them are left untouched: a process that uses
        // few classes then never faults in the rest of the node state.
        if !self.source.zeroes_new_pages() {
            // SAFETY: fresh pages we own, page-aligned (enough for NodeState's 128-byte
            // alignment); an all-zero NodeState is valid (see `node`'s module doc).
            unsafe { ptr::write_bytes(pages.as_ptr(), 0, bytes) };
        }
        match self.nodes[node].compare_exchange(
            ptr::null_mut(),
            ns,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // SAFETY: just published; lives as long as the heap.
                let ns = unsafe { &*ns };
                stats::add(&ns.stats.pages_held_bytes, bytes as u64);
                Some(ns)
            }
            Err(winner) => {
                // SAFETY: our pages were never shared; the winner's state is published.
                unsafe {
                    self.source.free_pages(pages, bytes, os_node);
                    Some(&*winner)
                }
            }
        }
    }

    // ----- blocks: refill, drain, uncached paths -------------------------------------------

    /// Fills `out` with up to `out.len()` blocks of `class` from node `node`'s slabs, making
    /// slabs as needed. Returns how many it wrote (fewer only when pages run out).
    pub(crate) fn refill(
        &self,
        ns: &NodeState,
        node: usize,
        class: usize,
        inner: &mut ClassInner,
        out: &mut [*mut u8],
    ) -> usize {
        let mut n = 0;
        while n < out.len() {
            // SAFETY: we hold the class lock (`inner`).
            let b = unsafe { inner.pop_block() };
            if !b.is_null() {
                out[n] = b;
                n += 1;
                continue;
            }
            match ns.new_slab(&self.ctx(node), class) {
                // SAFETY: a fresh slab of this class on no list.
                Some(s) => unsafe { inner.add_slab(s) },
                None => break,
            }
        }
        n
    }

    /// Returns a handed-out block to its slab under the held class lock.
    ///
    /// # Safety
    /// 1. `b` is a block of class `class` on node `node`, handed out and owned by the caller;
    ///    `inner` is that class's lock-protected state.
    #[inline]
    pub(crate) unsafe fn put_block(
        &self,
        ns: &NodeState,
        node: usize,
        inner: &mut ClassInner,
        b: *mut u8,
    ) {
        let seg = segment_of(b);
        // SAFETY: precondition 1: `b` lies in a small or medium segment of this heap.
        unsafe {
            let slab = slab_of(seg, b);
            if (*slab).state.load(Ordering::Relaxed) == SlabState::Owned as u8 {
                // Owned by a cache (`owned` invariant 2): the block goes to the owner. The
                // owner closes the list only under this class lock, which we hold, so the
                // push cannot bounce.
                let pushed = (*slab).xfree.push_chain(b, b);
                debug_assert!(pushed, "owned slab with a closed thread-free list");
                return;
            }
            if let Some(empty) = inner.push_block(slab, b) {
                ns.release_slab(&self.ctx(node), empty);
            }
        }
    }

    /// Returns every block of `m` to the slabs and empties it.
    ///
    /// # Safety
    /// 1. `m` is owned by the caller and holds blocks of the class `inner` guards, on `node`.
    pub(crate) unsafe fn drain_magazine(
        &self,
        ns: &NodeState,
        node: usize,
        inner: &mut ClassInner,
        m: *mut Magazine,
    ) {
        // SAFETY: precondition 1.
        unsafe {
            let count = (*m).count as usize;
            for i in 0..count {
                self.put_block(ns, node, inner, (*m).items[i]);
            }
            (*m).count = 0;
        }
    }

    /// An empty magazine with capacity for `class`: from the depot, the node's pool, or a new
    /// metadata cell. Null when pages run out.
    pub(crate) fn empty_magazine(
        &self,
        ns: &NodeState,
        node: usize,
        class: usize,
        inner: &mut ClassInner,
    ) -> *mut Magazine {
        let cap = MAGAZINE_CAPACITY[class];
        let m = inner.depot.pop_empty();
        if !m.is_null() {
            // SAFETY: depot magazines are valid, empty, and now ours.
            unsafe { (*m).cap = cap };
            return m;
        }
        ns.magazines.with(|pool| {
            let m = pool.take(cap);
            if !m.is_null() {
                return m;
            }
            match ns.meta_cell(&self.ctx(node)) {
                Some((area, bytes)) => {
                    // SAFETY: a fresh metadata cell, page-aligned, now the pool's.
                    unsafe { pool.grow(area, bytes) };
                    pool.take(cap)
                }
                None => ptr::null_mut(),
            }
        })
    }

    /// Disposes of an empty magazine: the depot's empty list, else the node's pool.
    ///
    /// # Safety
    /// 1. `m` is a valid empty magazine owned by the caller.
    pub(crate) unsafe fn put_empty_magazine(
        &self,
        ns: &NodeState,
        inner: &mut ClassInner,
        m: *mut Magazine,
    ) {
        // SAFETY: precondition 1.
        if let Err(m) = unsafe { inner.depot.push_empty(m) } {
            // SAFETY: precondition 1; ownership passes to the pool.
            ns.magazines.with(|pool| unsafe { pool.put(m) });
        }
    }

    /// Disposes of a magazine holding blocks: the depot's full list when it is full and there
    /// is room, else its blocks go back to the slabs and it goes to the empty list.
    ///
    /// # Safety
    /// 1. `m` is owned by the caller and holds blocks of the class `inner` guards, on `node`.
    pub(crate) unsafe fn put_loaded_magazine(
        &self,
        ns: &NodeState,
        node: usize,
        inner: &mut ClassInner,
        m: *mut Magazine,
    ) {
        // SAFETY: precondition 1.
        unsafe {
            if (*m).is_empty() {
                return self.put_empty_magazine(ns, inner, m);
            }
            if (*m).is_full() && inner.depot.push_full(m).is_ok() {
                return;
            }
            self.drain_magazine(ns, node, inner, m);
            self.put_empty_magazine(ns, inner, m);
        }
    }

    /// Runs the working-set reap of one class if due (or everything with `all`).
    pub(crate) fn reap_class(
        &self,
        ns: &NodeState,
        node: usize,
        inner: &mut ClassInner,
        all: bool,
    ) {
        if !all && !inner.depot.reap_due() {
            return;
        }
        let (mut full, mut empty) = inner.depot.reap(all);
        // SAFETY: the reaped chains are ours; their magazines hold blocks of this class.
        unsafe {
            while !full.is_null() {
                let next = (*full).next;
                self.drain_magazine(ns, node, inner, full);
                ns.magazines.with(|pool| pool.put(full));
                full = next;
            }
            while !empty.is_null() {
                let next = (*empty).next;
                ns.magazines.with(|pool| pool.put(empty));
                empty = next;
            }
        }
    }

    /// Takes every block other nodes sent to `node` and puts each back in its slab. Holds one
    /// class lock at a time (the same one across a run of same-class blocks).
    pub(crate) fn drain_inbox(&self, ns: &NodeState, node: usize) {
        let mut b = ns.inbox.take_all();
        while !b.is_null() {
            // SAFETY: inbox blocks are free blocks of this node's slabs, now ours.
            let class = unsafe { (*slab_of(segment_of(b), b)).class as usize };
            let mut run = 0u64;
            ns.classes[class].lock.with(|inner| {
                while !b.is_null() {
                    // SAFETY: as above.
                    let (c, next) = unsafe { ((*slab_of(segment_of(b), b)).class, next_of(b)) };
                    if c as usize != class {
                        break;
                    }
                    // SAFETY: `b` is a block of `class` on `node`, owned by us.
                    unsafe { self.put_block(ns, node, inner, b) };
                    run += 1;
                    b = next;
                }
            });
            let cs = &ns.stats.classes[class];
            stats::add(&cs.frees, run);
            stats::add(&cs.remote_frees, run);
            stats::add(&ns.stats.remote_received, run);
        }
    }

    /// A block of `class` on `node` without a cache, or null.
    pub(crate) fn alloc_block_uncached(&self, node: usize, class: usize) -> *mut u8 {
        let Some(ns) = self.node_state(node) else {
            return ptr::null_mut();
        };
        if !ns.inbox.is_empty() {
            self.drain_inbox(ns, node);
        }
        let mut out = [ptr::null_mut(); 1];
        let n = ns.classes[class]
            .lock
            .with(|inner| self.refill(ns, node, class, inner, &mut out));
        if n == 1 {
            stats::add(&ns.stats.classes[class].allocs, 1);
        }
        out[0]
    }

    /// Frees a small block without a cache, straight into its slab on its own node.
    ///
    /// # Safety
    /// 1. `b` is a live small block of this heap, owned by the caller.
    pub(crate) unsafe fn free_block_uncached(&self, seg: *mut SegmentHeader, b: *mut u8) {
        // SAFETY: precondition 1: the header and slab are valid.
        let (node, class) = unsafe { ((*seg).node as usize, (*slab_of(seg, b)).class as usize) };
        let Some(ns) = self.existing_node(node) else {
            return;
        };
        // SAFETY: precondition 1.
        ns.classes[class]
            .lock
            .with(|inner| unsafe { self.put_block(ns, node, inner, b) });
        stats::add(&ns.stats.classes[class].frees, 1);
    }

    // ----- large objects ---------------------------------------------------------------------

    /// A large object of `size` bytes aligned to `align` on `node`, or null. With `zeroed`, its
    /// bytes read as zero (cleared only when the pages are not known to be fresh zero pages).
    pub(crate) fn alloc_large(&self, node: usize, size: usize, align: usize) -> *mut u8 {
        self.alloc_large_with(node, size, align, false)
    }

    pub(crate) fn alloc_large_with(
        &self,
        node: usize,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> *mut u8 {
        if align > ALIGN_MAX_BYTES {
            return ptr::null_mut();
        }
        let offset = align.max(PAGE_BYTES);
        let Some(total) = offset
            .checked_add(size)
            .and_then(|t| t.checked_next_multiple_of(PAGE_BYTES))
        else {
            return ptr::null_mut();
        };
        let mapping = total.max(SEGMENT_BYTES);
        let Some(ns) = self.node_state(node) else {
            return ptr::null_mut();
        };
        let Some((seg, fresh)) = ns.new_large(&self.ctx(node), mapping) else {
            return ptr::null_mut();
        };
        // SAFETY: a fresh large header we own.
        unsafe {
            (*seg).large_offset = offset;
            (*seg).large_request_bytes = size;
            (*seg).large_live.store(1, Ordering::Relaxed);
        }
        stats::add(&ns.stats.large_allocs, 1);
        stats::add(&ns.stats.large_bytes_in_use, size as u64);
        // SAFETY: `offset + size <= mapping`.
        let p = unsafe { seg.cast::<u8>().add(offset) };
        if zeroed && !(fresh && self.source.zeroes_new_pages()) {
            // SAFETY: the object's `size` bytes are ours.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        p
    }

    /// Like [`Heap::alloc`], with the bytes zeroed. Fresh large mappings from a source whose
    /// new pages are zero are not written (so they stay unresident until used).
    pub fn alloc_zeroed(&self, node: usize, layout: Layout) -> *mut u8 {
        if size_class::class_for(layout.size(), layout.align()).is_none() {
            return self.alloc_large_with(node, layout.size(), layout.align(), true);
        }
        let p = self.alloc(node, layout);
        if !p.is_null() {
            // SAFETY: a live block of at least `layout.size()` bytes.
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    /// Frees a large object.
    ///
    /// # Safety
    /// 1. `seg` is the large segment of a live object of this heap, owned by the caller.
    pub(crate) unsafe fn free_large(&self, seg: *mut SegmentHeader) {
        // SAFETY: precondition 1.
        let (node, size) = unsafe { ((*seg).node as usize, (*seg).large_request_bytes) };
        let Some(ns) = self.existing_node(node) else {
            return;
        };
        stats::add(&ns.stats.large_frees, 1);
        stats::sub(&ns.stats.large_bytes_in_use, size as u64);
        // SAFETY: precondition 1.
        unsafe { ns.free_large(&self.ctx(node), seg) };
    }

    // ----- public entry points without a cache ------------------------------------------------

    /// Allocates `layout` on `node` without a cache (under the class lock). Null on failure
    /// (out of pages, alignment above 2 MiB, node not in the map).
    pub fn alloc(&self, node: usize, layout: Layout) -> *mut u8 {
        let p = match size_class::class_for(layout.size(), layout.align()) {
            Some(c) => self.alloc_block_uncached(node, c),
            None => self.alloc_large(node, layout.size(), layout.align()),
        };
        #[cfg(feature = "checked")]
        if !p.is_null() {
            crate::checked::on_alloc(self, p);
        }
        p
    }

    /// Frees a block without a cache: straight back to its owning node.
    ///
    /// # Safety
    /// 1. `p` was returned by this heap (any entry point or cache) and not freed since.
    pub unsafe fn free(&self, p: *mut u8) {
        #[cfg(feature = "checked")]
        crate::checked::on_free(self, p);
        let seg = segment_of(p);
        // SAFETY: precondition 1: `p` lies in a segment of this heap.
        unsafe {
            if (*seg).kind == SegmentKind::Large as u8 {
                self.free_large(seg);
            } else {
                self.free_block_uncached(seg, p);
            }
        }
    }

    /// Bytes usable at `p` (at least what was asked for).
    ///
    /// # Safety
    /// 1. `p` is a live block of this heap.
    pub unsafe fn usable_size(&self, p: *mut u8) -> usize {
        let seg = segment_of(p);
        // SAFETY: precondition 1.
        unsafe {
            if (*seg).kind == SegmentKind::Large as u8 {
                (*seg).mapping_bytes - (*seg).large_offset
            } else {
                class_bytes((*slab_of(seg, p)).class as usize)
            }
        }
    }

    /// The node whose pages hold `p`, in O(1).
    ///
    /// # Safety
    /// 1. `p` is a live block of this heap.
    pub unsafe fn owner_node(&self, p: *mut u8) -> usize {
        // SAFETY: precondition 1.
        unsafe { (*segment_of(p)).node as usize }
    }

    /// Whether a block at `p` can be resized to `new_size` without moving.
    ///
    /// # Safety
    /// 1. `p` is a live block of this heap, allocated with alignment `align`.
    pub(crate) unsafe fn resize_in_place(&self, p: *mut u8, align: usize, new_size: usize) -> bool {
        let seg = segment_of(p);
        // SAFETY: precondition 1.
        unsafe {
            if (*seg).kind == SegmentKind::Large as u8 {
                let usable = (*seg).mapping_bytes - (*seg).large_offset;
                if new_size > CLASS_MAX_BYTES && new_size <= usable {
                    let node = (*seg).node as usize;
                    if let Some(ns) = self.existing_node(node) {
                        stats::sub(
                            &ns.stats.large_bytes_in_use,
                            (*seg).large_request_bytes as u64,
                        );
                        stats::add(&ns.stats.large_bytes_in_use, new_size as u64);
                    }
                    (*seg).large_request_bytes = new_size;
                    return true;
                }
                false
            } else {
                let class = (*slab_of(seg, p)).class as usize;
                size_class::class_for(new_size, align) == Some(class)
            }
        }
    }

    // ----- fork --------------------------------------------------------------------------------

    /// Before `fork()`: finishes machine discovery, creates every node's state (so no node
    /// appears while the locks are held), then takes every lock of every node and keeps them,
    /// so the child cannot inherit a lock held by a thread it does not have. Pair it with
    /// [`Heap::fork_release`] in both the parent and the child (`pthread_atfork`).
    pub fn fork_prepare(&self) {
        // Bounded: discovery is a few sysfs reads; a thread preempted inside it for longer
        // than this leaves the child on the one-node map, which is correct, only less local.
        for _ in 0..FORK_DISCOVERY_WAIT_YIELDS_MAX {
            let _ = self.node_map();
            if self.map_state.load(Ordering::Acquire) == MAP_READY {
                break;
            }
            crate::sync::yield_now();
        }
        for node in 0..self.nodes() {
            let _ = self.node_state(node);
        }
        let mut locked = 0u64;
        for node in 0..MAX_NODES {
            if let Some(ns) = self.existing_node(node) {
                ns.lock_all();
                locked |= 1 << node;
            }
        }
        self.fork_locked_nodes.store(locked, Ordering::Relaxed);
    }

    /// After `fork()`, in the parent and in the child: releases what [`Heap::fork_prepare`]
    /// took. In the child every other thread's cache is gone with its thread; its blocks stay
    /// allocated (leaked) in the child, as with any allocator.
    ///
    /// # Safety
    /// 1. The calling thread called `fork_prepare` (in the child: the forking thread did, before
    ///    `fork()`), and has not called `fork_release` since.
    pub unsafe fn fork_release(&self) {
        let locked = self.fork_locked_nodes.swap(0, Ordering::Relaxed);
        for node in (0..MAX_NODES).rev() {
            if locked & (1 << node) == 0 {
                continue;
            }
            if let Some(ns) = self.existing_node(node) {
                // SAFETY: precondition 1: `fork_prepare` locked this node (its bit is set).
                unsafe { ns.unlock_all() };
            }
        }
    }

    // ----- maintenance -----------------------------------------------------------------------

    /// Returns what the heap can spare to the page source: takes every node's pending remote
    /// frees, empties every depot (blocks back to slabs), hands empty slabs back to their
    /// segments and frees cached segments. Caches are not touched (each flushes its own).
    pub fn trim(&self) {
        for node in 0..self.nodes() {
            let Some(ns) = self.existing_node(node) else {
                continue;
            };
            self.drain_inbox(ns, node);
            for class in 0..NUM_CLASSES {
                ns.classes[class].lock.with(|inner| {
                    self.reap_class(ns, node, inner, true);
                    let mut s: *mut SlabMeta = inner.take_empty_slabs();
                    while !s.is_null() {
                        // SAFETY: unlinked empty slabs of this node, ours.
                        unsafe {
                            let next = (*s).next;
                            ns.release_slab(&self.ctx(node), s);
                            s = next;
                        }
                    }
                });
            }
            ns.release_cached_segments(&self.ctx(node));
        }
    }

    /// A snapshot of node `node`'s counters (zeros for a node never used).
    pub fn stats(&self, node: usize) -> NodeStats {
        match self.existing_node(node) {
            Some(ns) => NodeStats::read(node, &ns.stats),
            None => NodeStats::empty(node),
        }
    }

    /// Checks where node `node`'s pages really are (through [`PageSource::placement`]),
    /// records the off-node count in its statistics, and returns the totals. `None` when the
    /// platform cannot tell.
    pub fn verify_placement(&self, node: usize) -> Option<Placement> {
        let ns = self.existing_node(node)?;
        let os_node = self.node_map().os_node(node);
        let mut total = Placement::default();
        let mut known = true;
        ns.for_each_mapping(|base, bytes| {
            let Some(nn) = NonNull::new(base) else {
                return;
            };
            match self.source.placement(nn, bytes, os_node) {
                Some(p) => {
                    total.pages_checked += p.pages_checked;
                    total.pages_off_node += p.pages_off_node;
                    total.pages_absent += p.pages_absent;
                }
                None => known = false,
            }
        });
        if !known {
            return None;
        }
        ns.stats
            .off_node_pages
            .store(total.pages_off_node as u64, Ordering::Relaxed);
        ns.stats
            .pages_checked
            .store(total.pages_checked as u64, Ordering::Relaxed);
        Some(total)
    }
}
