//! One NUMA node's share of a heap: class locks (depot + slabs), its segments, its spare
//! magazines, its remote-free inbox and its counters.
//!
//! A node's state is created on first use in pages taken from that node, so its locks and
//! counters stay local. Every field is valid when all-zero, which lets the heap create it in
//! raw pages without a constructor and without a stack copy.
//!
//! Lock order (never take them the other way): class lock -> magazine pool lock -> segment
//! lock -> page source. No path holds two class locks at once.

use core::ptr::{self, NonNull};

use crate::magazine::MagazinePool;
use crate::page_source::PageSource;
use crate::remote_free::RemoteInbox;
use crate::segment::{
    SEGMENT_BYTES, SegmentHeader, SegmentKind, SlabMeta, SlabState, cells_of, init_header,
    segment_of, slab_index,
};
use crate::size_class::NUM_CLASSES;
use crate::slab::{ClassInner, init_slab};
use crate::stats::{self, NodeCounters};
use crate::sync::SpinLock;

/// Freed segments a node keeps for reuse before giving them back to the page source.
pub const SEGMENT_CACHE_MAX: usize = 16;

/// A class lock on its own cache lines (two, against adjacent-line prefetch).
#[repr(align(128))]
#[derive(Debug)]
pub struct ClassSlot {
    /// The class's depot and partial slabs.
    pub lock: SpinLock<ClassInner>,
}

/// A node's segments. Guarded by the segment lock.
#[derive(Debug)]
pub struct SegmentPool {
    /// Segments with a free cell: `[small, medium, -, meta]` (indexed by kind - 1), linked
    /// through `avail_*`.
    avail: [*mut SegmentHeader; 4],
    /// Every segment and large mapping of the node, linked through `all_*`.
    all: *mut SegmentHeader,
    /// Freed whole segments kept for reuse (their pages stay mapped).
    cached: [*mut u8; SEGMENT_CACHE_MAX],
    /// Entries of `cached` in use.
    cached_len: usize,
}

// SAFETY: the pool owns the segments it lists; it lives inside a lock.
unsafe impl Send for SegmentPool {}

/// A node's state. Shared by every thread and CPU; interior mutability only.
#[derive(Debug)]
pub struct NodeState {
    /// Per class.
    pub classes: [ClassSlot; NUM_CLASSES],
    /// Segments and the segment cache.
    pub segments: SpinLock<SegmentPool>,
    /// Spare magazines.
    pub magazines: SpinLock<MagazinePool>,
    /// Blocks freed on other nodes, waiting to be put back.
    pub inbox: RemoteInbox,
    /// Counters.
    pub stats: NodeCounters,
}

/// What a node needs from its heap to get pages.
pub(crate) struct PageCtx<'a, P: PageSource> {
    pub source: &'a P,
    pub node: usize,
    pub os_node: usize,
}

impl NodeState {
    /// Bytes of pages a node's state takes.
    pub const PAGES_BYTES: usize = core::mem::size_of::<NodeState>().next_multiple_of(4096);

    /// Takes a free cell of `kind`, making a segment when none has one. `None` when the page
    /// source is exhausted.
    pub(crate) fn take_cell<P: PageSource>(
        &self,
        ctx: &PageCtx<'_, P>,
        kind: SegmentKind,
    ) -> Option<(*mut SegmentHeader, usize)> {
        let k = kind as usize - 1;
        self.segments.with(|pool| {
            let mut seg = pool.avail[k];
            if seg.is_null() {
                seg = self.new_segment(pool, ctx, kind)?;
                // SAFETY: fresh segment, ours under the segment lock.
                unsafe { avail_push(&mut pool.avail[k], seg) };
            }
            // SAFETY: listed segments are valid; their free_cells belongs to this lock.
            unsafe {
                let idx = (*seg).free_cells.trailing_zeros() as usize;
                (*seg).free_cells &= !(1u64 << idx);
                if (*seg).free_cells == 0 {
                    avail_remove(&mut pool.avail[k], seg);
                }
                Some((seg, idx))
            }
        })
    }

    /// Sets up a fresh slab of `class`, off every list.
    pub(crate) fn new_slab<P: PageSource>(
        &self,
        ctx: &PageCtx<'_, P>,
        class: usize,
    ) -> Option<*mut SlabMeta> {
        let kind = if crate::size_class::uses_small_slabs(class) {
            SegmentKind::Small
        } else {
            SegmentKind::Medium
        };
        let (seg, idx) = self.take_cell(ctx, kind)?;
        // SAFETY: the cell was free and is now ours.
        Some(unsafe { init_slab(seg, idx, class) })
    }

    /// Gives a slab with no block in use back to its segment; frees the segment when it has no
    /// slab left.
    ///
    /// # Safety
    /// 1. `slab` is a slab of this node, off every list, with no block in use, owned by the
    ///    caller.
    pub(crate) unsafe fn release_slab<P: PageSource>(
        &self,
        ctx: &PageCtx<'_, P>,
        slab: *mut SlabMeta,
    ) {
        let seg = segment_of(slab.cast());
        self.segments.with(|pool| {
            // SAFETY: precondition 1; segment fields belong to this lock.
            unsafe {
                let idx = slab_index(seg, slab);
                (*slab)
                    .state
                    .store(SlabState::Free as u8, crate::sync::Ordering::Relaxed);
                crate::segment::set_tag(seg, idx, crate::segment::NO_CLASS, 0);
                let kind = if (*seg).kind == SegmentKind::Medium as u8 {
                    SegmentKind::Medium
                } else {
                    SegmentKind::Small
                };
                let k = (*seg).kind as usize - 1;
                let (_, all_free) = cells_of(kind);
                if (*seg).free_cells == 0 {
                    avail_push(&mut pool.avail[k], seg);
                }
                (*seg).free_cells |= 1u64 << idx;
                if (*seg).free_cells == all_free {
                    avail_remove(&mut pool.avail[k], seg);
                    self.drop_segment(pool, ctx, seg);
                }
            }
        });
    }

    /// A segment-sized, segment-aligned mapping: from the cache, else the page source. Not yet
    /// set up. Caller holds the segment lock (`pool`).
    fn segment_pages<P: PageSource>(
        &self,
        pool: &mut SegmentPool,
        ctx: &PageCtx<'_, P>,
    ) -> Option<(*mut u8, bool)> {
        if pool.cached_len > 0 {
            pool.cached_len -= 1;
            return Some((pool.cached[pool.cached_len], false));
        }
        let p = ctx
            .source
            .alloc_pages(SEGMENT_BYTES, SEGMENT_BYTES, ctx.os_node)?;
        stats::add(&self.stats.pages_held_bytes, SEGMENT_BYTES as u64);
        #[cfg(feature = "checked")]
        if !crate::checked::register(p.as_ptr()) {
            // SAFETY: just allocated with these arguments, never used.
            unsafe { ctx.source.free_pages(p, SEGMENT_BYTES, ctx.os_node) };
            stats::sub(&self.stats.pages_held_bytes, SEGMENT_BYTES as u64);
            return None;
        }
        Some((p.as_ptr(), true))
    }

    fn new_segment<P: PageSource>(
        &self,
        pool: &mut SegmentPool,
        ctx: &PageCtx<'_, P>,
        kind: SegmentKind,
    ) -> Option<*mut SegmentHeader> {
        let (base, _) = self.segment_pages(pool, ctx)?;
        // SAFETY: `base` is a segment-aligned segment-sized mapping we own.
        unsafe {
            let seg = init_header(base, kind, ctx.node, SEGMENT_BYTES);
            all_push(&mut pool.all, seg);
            Some(seg)
        }
    }

    /// Unlinks `seg` from the all-list and caches or frees its pages.
    ///
    /// # Safety
    /// 1. `seg` is on no avail list, holds nothing live, and the caller holds the segment lock.
    unsafe fn drop_segment<P: PageSource>(
        &self,
        pool: &mut SegmentPool,
        ctx: &PageCtx<'_, P>,
        seg: *mut SegmentHeader,
    ) {
        // SAFETY: precondition 1.
        unsafe {
            all_remove(&mut pool.all, seg);
            let bytes = (*seg).mapping_bytes;
            (*seg).magic = 0;
            if bytes == SEGMENT_BYTES && pool.cached_len < SEGMENT_CACHE_MAX {
                pool.cached[pool.cached_len] = seg.cast();
                pool.cached_len += 1;
                return;
            }
            #[cfg(feature = "checked")]
            crate::checked::unregister(seg.cast());
            ctx.source
                .free_pages(NonNull::new_unchecked(seg.cast()), bytes, ctx.os_node);
            stats::sub(&self.stats.pages_held_bytes, bytes as u64);
        }
    }

    /// A mapping for a large object of `mapping_bytes` (a segment from the cache when it is
    /// exactly one segment), set up as a large segment and listed; with whether its pages are
    /// fresh from the page source (not reused).
    pub(crate) fn new_large<P: PageSource>(
        &self,
        ctx: &PageCtx<'_, P>,
        mapping_bytes: usize,
    ) -> Option<(*mut SegmentHeader, bool)> {
        self.segments.with(|pool| {
            let (base, fresh) = if mapping_bytes == SEGMENT_BYTES {
                self.segment_pages(pool, ctx)?
            } else {
                let p = ctx
                    .source
                    .alloc_pages(mapping_bytes, SEGMENT_BYTES, ctx.os_node)?;
                stats::add(&self.stats.pages_held_bytes, mapping_bytes as u64);
                #[cfg(feature = "checked")]
                if !crate::checked::register(p.as_ptr()) {
                    // SAFETY: just allocated with these arguments, never used.
                    unsafe { ctx.source.free_pages(p, mapping_bytes, ctx.os_node) };
                    stats::sub(&self.stats.pages_held_bytes, mapping_bytes as u64);
                    return None;
                }
                (p.as_ptr(), true)
            };
            // SAFETY: a fresh mapping we own, segment-aligned, at least a page long.
            unsafe {
                let seg = init_header(base, SegmentKind::Large, ctx.node, mapping_bytes);
                all_push(&mut pool.all, seg);
                Some((seg, fresh))
            }
        })
    }

    /// Gives a large object's mapping back.
    ///
    /// # Safety
    /// 1. `seg` is a large segment of this node whose object is no longer live.
    pub(crate) unsafe fn free_large<P: PageSource>(
        &self,
        ctx: &PageCtx<'_, P>,
        seg: *mut SegmentHeader,
    ) {
        // SAFETY: precondition 1; the segment lock is held inside.
        self.segments
            .with(|pool| unsafe { self.drop_segment(pool, ctx, seg) });
    }

    /// A cell set up as node metadata (magazines), for the pool to carve: `(area, bytes)`.
    pub(crate) fn meta_cell<P: PageSource>(
        &self,
        ctx: &PageCtx<'_, P>,
    ) -> Option<(*mut u8, usize)> {
        let (seg, idx) = self.take_cell(ctx, SegmentKind::Meta)?;
        let (start, _) = crate::segment::slab_geometry(SegmentKind::Small, idx, 8);
        // SAFETY: the cell is ours; mark it so frees of pointers into it are recognized.
        unsafe {
            let s = ptr::addr_of_mut!((*seg).slabs[idx]);
            (*s).state
                .store(SlabState::Meta as u8, crate::sync::Ordering::Relaxed);
            (*s).start_offset = start as u32;
            let cell_end = (idx + 1) << crate::segment::SMALL_SLAB_SHIFT;
            Some((seg.cast::<u8>().add(start), cell_end - start))
        }
    }

    /// Frees every cached segment (for `trim`).
    pub(crate) fn release_cached_segments<P: PageSource>(&self, ctx: &PageCtx<'_, P>) {
        self.segments.with(|pool| {
            while pool.cached_len > 0 {
                pool.cached_len -= 1;
                let p = pool.cached[pool.cached_len];
                #[cfg(feature = "checked")]
                crate::checked::unregister(p);
                // SAFETY: cached segments are unused mappings from `alloc_pages` with these
                // arguments.
                unsafe {
                    ctx.source
                        .free_pages(NonNull::new_unchecked(p), SEGMENT_BYTES, ctx.os_node)
                };
                stats::sub(&self.stats.pages_held_bytes, SEGMENT_BYTES as u64);
            }
        });
    }

    /// Gives every mapping of the node back to the page source (the heap is being dropped).
    ///
    /// # Safety
    /// 1. Nothing uses any block, magazine or slab of this node afterwards.
    pub(crate) unsafe fn release_everything<P: PageSource>(&self, ctx: &PageCtx<'_, P>) {
        self.release_cached_segments(ctx);
        self.segments.with(|pool| {
            let mut s = pool.all;
            while !s.is_null() {
                // SAFETY: precondition 1; listed segments are valid until freed here.
                unsafe {
                    let next = (*s).all_next;
                    let bytes = (*s).mapping_bytes;
                    (*s).magic = 0;
                    #[cfg(feature = "checked")]
                    crate::checked::unregister(s.cast());
                    ctx.source
                        .free_pages(NonNull::new_unchecked(s.cast()), bytes, ctx.os_node);
                    stats::sub(&self.stats.pages_held_bytes, bytes as u64);
                    s = next;
                }
            }
            pool.all = ptr::null_mut();
            pool.avail = [ptr::null_mut(); 4];
        });
    }

    /// Takes every lock of the node in the lock order (class locks by index, then the
    /// magazine pool, then the segments) and keeps them: the first half of the fork handlers.
    /// Other threads hold at most one class lock and take the later locks only after it, so
    /// taking all class locks in index order cannot deadlock with them.
    pub(crate) fn lock_all(&self) {
        for slot in &self.classes {
            slot.lock.lock_raw();
        }
        self.magazines.lock_raw();
        self.segments.lock_raw();
    }

    /// Releases every lock [`NodeState::lock_all`] took.
    ///
    /// # Safety
    /// 1. The calling thread (in a forked child: the thread that forked) took them with
    ///    `lock_all` and has not released them since.
    pub(crate) unsafe fn unlock_all(&self) {
        // SAFETY: precondition 1, for each lock.
        unsafe {
            self.segments.unlock_raw();
            self.magazines.unlock_raw();
            for slot in &self.classes {
                slot.lock.unlock_raw();
            }
        }
    }

    /// Calls `f(base, bytes)` for every segment and large mapping of the node, under the
    /// segment lock.
    pub(crate) fn for_each_mapping(&self, mut f: impl FnMut(*mut u8, usize)) {
        self.segments.with(|pool| {
            let mut s = pool.all;
            while !s.is_null() {
                // SAFETY: listed segments are valid while the lock is held.
                unsafe {
                    f(s.cast(), (*s).mapping_bytes);
                    s = (*s).all_next;
                }
            }
        });
    }
}

/// # Safety
/// 1. `seg` is valid, on no avail list; the caller holds the segment lock.
unsafe fn avail_push(head: &mut *mut SegmentHeader, seg: *mut SegmentHeader) {
    // SAFETY: precondition 1.
    unsafe {
        (*seg).avail_prev = ptr::null_mut();
        (*seg).avail_next = *head;
        if !head.is_null() {
            (**head).avail_prev = seg;
        }
    }
    *head = seg;
}

/// # Safety
/// 1. `seg` is on the list `head`; the caller holds the segment lock.
unsafe fn avail_remove(head: &mut *mut SegmentHeader, seg: *mut SegmentHeader) {
    // SAFETY: precondition 1.
    unsafe {
        let (p, n) = ((*seg).avail_prev, (*seg).avail_next);
        if p.is_null() {
            *head = n;
        } else {
            (*p).avail_next = n;
        }
        if !n.is_null() {
            (*n).avail_prev = p;
        }
        (*seg).avail_next = ptr::null_mut();
        (*seg).avail_prev = ptr::null_mut();
    }
}

/// # Safety
/// 1. `seg` is valid and on no all-list; the caller holds the segment lock.
unsafe fn all_push(head: &mut *mut SegmentHeader, seg: *mut SegmentHeader) {
    // SAFETY: precondition 1.
    unsafe {
        (*seg).all_prev = ptr::null_mut();
        (*seg).all_next = *head;
        if !head.is_null() {
            (**head).all_prev = seg;
        }
    }
    *head = seg;
}

/// # Safety
/// 1. `seg` is on the list `head`; the caller holds the segment lock.
unsafe fn all_remove(head: &mut *mut SegmentHeader, seg: *mut SegmentHeader) {
    // SAFETY: precondition 1.
    unsafe {
        let (p, n) = ((*seg).all_prev, (*seg).all_next);
        if p.is_null() {
            *head = n;
        } else {
            (*p).all_next = n;
        }
        if !n.is_null() {
            (*n).all_prev = p;
        }
    }
}
