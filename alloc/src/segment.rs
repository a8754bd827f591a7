//! Segments: 4 MiB-aligned runs of pages on one node, with their metadata at the base.
//!
//! Every block the heap hands out lies in a segment, so the owner of any pointer is found in
//! O(1): mask the address down to the segment base (the header), then shift the offset by the
//! segment's slab size to index its slab table.
//!
//! ```text
//! segment (4 MiB, aligned to 4 MiB, all on node N)
//! +--------+------------------+------------------+-----+
//! | header | slab 0 blocks    | slab 1           | ... |   small: 64 x 64 KiB slabs
//! +--------+------------------+------------------+-----+   medium: 8 x 512 KiB slabs
//! large: | header page | object (one per mapping, any size) |
//! ```
//!
//! Field ownership: `kind`, `node`, `slab_shift` and `cells` are written once when the segment
//! is set up (under the node's segment lock) and only read afterwards. `free_cells` and the list
//! links belong to the node's segment lock. A slab's fields belong to the lock of the class that
//! owns the slab; its `class` is read without a lock by frees of its live blocks, which cannot
//! race with a change of class (a slab changes class only once all its blocks are free).

use core::ptr;

use crate::sync::{AtomicU16, Ordering};
use crate::thread_free::ThreadFree;

/// log2 of the segment size.
pub const SEGMENT_SHIFT: usize = 22;
/// Segment size and alignment: 4 MiB.
pub const SEGMENT_BYTES: usize = 1 << SEGMENT_SHIFT;
/// Low bits of an address inside its segment.
pub const SEGMENT_MASK: usize = SEGMENT_BYTES - 1;
/// The page size the heap assumes for alignment and rounding.
pub const PAGE_BYTES: usize = 4096;
/// Bytes reserved at a segment's base for its header (slab 0 starts after it).
pub const HEADER_BYTES: usize = 4096;
/// log2 of a small slab (64 KiB).
pub const SMALL_SLAB_SHIFT: u8 = 16;
/// log2 of a medium slab (512 KiB).
pub const MEDIUM_SLAB_SHIFT: u8 = 19;
/// Most slabs per segment (small segments).
pub const SLABS_MAX: usize = SEGMENT_BYTES >> SMALL_SLAB_SHIFT;
/// Largest alignment the heap honours; larger requests fail (return null). A large object's
/// first byte must lie in the first segment-sized stretch of its mapping for O(1) lookup.
pub const ALIGN_MAX_BYTES: usize = SEGMENT_BYTES / 2;
/// Bytes a `checked` slab reserves at its start for its live-block bitmap (one bit per block:
/// 32768 bits, more than a 64 KiB slab of 8-byte blocks needs).
#[cfg(feature = "checked")]
pub const CHECKED_BITMAP_BYTES: usize = PAGE_BYTES;
/// Bytes a slab reserves at its start for its live-block bitmap (none without `checked`).
#[cfg(not(feature = "checked"))]
pub const CHECKED_BITMAP_BYTES: usize = 0;
/// Class byte of a cell that holds no slab of blocks.
pub const NO_CLASS: u8 = 0xfe;
/// Class byte of every cell of a large segment.
pub const LARGE_CLASS: u8 = 0xff;

/// Written into every header; `checked` frees compare it.
pub const SEGMENT_MAGIC: usize = 0x6d63_616c_6c6f_6373;

/// What a segment holds.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// 64 slabs of 64 KiB for classes up to 4 KiB.
    Small = 1,
    /// 8 slabs of 512 KiB for classes above 4 KiB.
    Medium = 2,
    /// One large object.
    Large = 3,
    /// 64 KiB cells of node metadata (magazines), kept apart so they pin no slab segment.
    Meta = 4,
}

/// Where a slab is in its life. Protected like the slab's other fields.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabState {
    /// The cell is not in use (owned by the segment lock).
    Free = 0,
    /// On its class's partial list with some free blocks.
    Partial = 1,
    /// Every block handed out; on no list.
    Full = 2,
    /// Holds magazines (node metadata), not blocks of a class.
    Meta = 3,
    /// Owned by one cache ([`owned`](crate::owned)): on no list; `free`, `used` and
    /// `carved` belong to the owner, other caches' frees go to `xfree`.
    Owned = 4,
}

/// One slab's metadata, kept in the segment header.
#[repr(C)]
#[derive(Debug)]
pub struct SlabMeta {
    /// Next slab on the class's partial list.
    pub next: *mut SlabMeta,
    /// Previous slab on the class's partial list.
    pub prev: *mut SlabMeta,
    /// Head of the intrusive list of freed blocks (each block's first word links the next).
    pub free: *mut u8,
    /// Offset of the first block from the segment base.
    pub start_offset: u32,
    /// Blocks currently handed out (to caches, magazines or users).
    pub used: u32,
    /// Blocks the slab can hold.
    pub capacity: u32,
    /// Blocks carved so far from the untouched tail (blocks past it were never written, which
    /// keeps fresh slabs from faulting in pages they do not use).
    pub carved: u32,
    /// Size class of the blocks.
    pub class: u8,
    /// [`SlabState`] as a byte. Atomic because `checked` frees read it without the lock.
    pub state: crate::sync::AtomicU8,
    /// Blocks of an owned slab freed by other caches (closed while the slab is shared).
    pub xfree: ThreadFree,
}

/// The header at the base of every segment.
#[repr(C)]
#[derive(Debug)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: usize,
    /// [`SegmentKind`] as a byte.
    pub kind: u8,
    /// log2 of the slab size (small and medium segments).
    pub slab_shift: u8,
    /// Number of slab cells (64 small, 8 medium, 0 large).
    pub cells: u8,
    /// Logical node whose pages these are.
    pub node: u16,
    /// Per cell, `class | owner << 8`. The class byte is the cell's slab's class
    /// ([`LARGE_CLASS`] for every cell of a large segment, [`NO_CLASS`] for free and metadata
    /// cells); it is written when a slab is set up and read without a lock by frees (a slab's
    /// class changes only while it holds no live block). The owner byte is the id of the
    /// cache owning the slab, 0 when it is shared ([`owned`]); written under the class lock
    /// when a cache adopts or gives up the slab, read without a lock by frees (a stale value
    /// only sends a block the long way). One load gives a free both; kept next to `node` so a
    /// free of a block in the first cells reads one cache line of the header.
    ///
    /// [`owned`]: crate::owned
    pub slab_tag: [AtomicU16; SLABS_MAX],
    /// Bit `i` set when cell `i` is free. Segment lock.
    pub free_cells: u64,
    /// Links of the node's list of segments with free cells of this kind. Segment lock.
    pub avail_next: *mut SegmentHeader,
    /// See `avail_next`.
    pub avail_prev: *mut SegmentHeader,
    /// Links of the node's list of all segments. Segment lock.
    pub all_next: *mut SegmentHeader,
    /// See `all_next`.
    pub all_prev: *mut SegmentHeader,
    /// Bytes of the mapping (a segment, or a large object's whole mapping).
    pub mapping_bytes: usize,
    /// Large: offset of the object from the base.
    pub large_offset: usize,
    /// Large: bytes the caller asked for (statistics and `checked`).
    pub large_request_bytes: usize,
    /// Large, `checked`: 1 while the object is live, so a second free is caught.
    pub large_live: crate::sync::AtomicU8,
    /// Slab metadata, indexed by cell.
    pub slabs: [SlabMeta; SLABS_MAX],
}

const _: () = assert!(core::mem::size_of::<SegmentHeader>() <= HEADER_BYTES);

/// The segment holding `p` (its header), by masking.
#[inline(always)]
pub fn segment_of(p: *mut u8) -> *mut SegmentHeader {
    p.map_addr(|a| a & !SEGMENT_MASK).cast()
}

/// The slab holding `p`.
///
/// # Safety
/// 1. `seg` is `segment_of(p)` and is a small or medium segment of this heap.
#[inline(always)]
pub unsafe fn slab_of(seg: *mut SegmentHeader, p: *mut u8) -> *mut SlabMeta {
    // SAFETY: precondition 1: the header is initialized and `slab_shift` is immutable.
    let shift = unsafe { (*seg).slab_shift };
    let idx = ((p.addr() - seg.addr()) >> shift) & (SLABS_MAX - 1);
    // SAFETY: `idx < SLABS_MAX`, inside the header's slab table.
    unsafe { ptr::addr_of_mut!((*seg).slabs[idx]) }
}

/// Index of a slab in its segment's table.
///
/// # Safety
/// 1. `slab` points into `seg`'s slab table.
#[inline]
pub unsafe fn slab_index(seg: *mut SegmentHeader, slab: *mut SlabMeta) -> usize {
    // SAFETY: precondition 1: both lie in the same header.
    let first = unsafe { ptr::addr_of_mut!((*seg).slabs[0]) };
    (slab.addr() - first.addr()) / core::mem::size_of::<SlabMeta>()
}

/// Cells and the all-free mask of a kind.
pub fn cells_of(kind: SegmentKind) -> (u8, u64) {
    match kind {
        SegmentKind::Small | SegmentKind::Meta => (64, u64::MAX),
        SegmentKind::Medium => (8, 0xff),
        SegmentKind::Large => (0, 0),
    }
}

/// Slab shift of a kind.
pub fn slab_shift_of(kind: SegmentKind) -> u8 {
    match kind {
        SegmentKind::Medium => MEDIUM_SLAB_SHIFT,
        // Large: only the class table's LARGE_CLASS entries are read through it.
        _ => SMALL_SLAB_SHIFT,
    }
}

/// Writes a fresh header at `base` (all slabs free).
///
/// # Safety
/// 1. `base` is the start of `mapping_bytes` bytes of writable memory aligned to
///    [`SEGMENT_BYTES`], owned by the caller, and at least [`HEADER_BYTES`] long.
pub unsafe fn init_header(
    base: *mut u8,
    kind: SegmentKind,
    node: usize,
    mapping_bytes: usize,
) -> *mut SegmentHeader {
    let seg = base.cast::<SegmentHeader>();
    let (cells, mask) = cells_of(kind);
    // SAFETY: precondition 1: the header fits in the mapping; all-zero is a valid header
    // (null links, zero counters, free slab states) that the stores below complete.
    unsafe {
        ptr::write_bytes(base, 0, core::mem::size_of::<SegmentHeader>());
        (*seg).magic = SEGMENT_MAGIC;
        (*seg).kind = kind as u8;
        (*seg).slab_shift = slab_shift_of(kind);
        (*seg).cells = cells;
        (*seg).node = node as u16;
        (*seg).free_cells = mask;
        (*seg).mapping_bytes = mapping_bytes;
        let fill = if kind == SegmentKind::Large {
            LARGE_CLASS
        } else {
            NO_CLASS
        };
        for t in &(*seg).slab_tag {
            t.store(fill as u16, Ordering::Relaxed);
        }
    }
    seg
}

/// The class of the block at `p` ([`LARGE_CLASS`] for a large object), from the header's
/// class table: two loads from the header's first cache lines.
///
/// # Safety
/// 1. `seg` is `segment_of(p)`, a segment of this heap, and `p` is a live block in it.
#[inline(always)]
pub unsafe fn class_at(seg: *mut SegmentHeader, p: *mut u8) -> u8 {
    // SAFETY: precondition 1: the header is initialized; `slab_shift` is immutable and the
    // class entry of a cell with a live block does not change.
    unsafe {
        let shift = (*seg).slab_shift;
        let idx = ((p.addr() - seg.addr()) >> shift) & (SLABS_MAX - 1);
        (*seg).slab_tag.get_unchecked(idx).load(Ordering::Relaxed) as u8
    }
}

/// The tag (`class | owner << 8`) of the cell holding `p`: what a free needs, in one load.
///
/// # Safety
/// 1. As for [`class_at`].
#[inline(always)]
pub unsafe fn tag_at(seg: *mut SegmentHeader, p: *mut u8) -> u16 {
    // SAFETY: precondition 1: the header is initialized; `slab_shift` is immutable.
    unsafe {
        let shift = (*seg).slab_shift;
        let idx = ((p.addr() - seg.addr()) >> shift) & (SLABS_MAX - 1);
        (*seg).slab_tag.get_unchecked(idx).load(Ordering::Relaxed)
    }
}

/// Sets cell `idx`'s tag: its class, and its owner (0: shared).
///
/// # Safety
/// 1. `seg` is a segment of this heap; the caller holds the lock that owns the cell's slab
///    (the segment lock for a free cell, the class lock for a slab).
#[inline]
pub unsafe fn set_tag(seg: *mut SegmentHeader, idx: usize, class: u8, owner: u8) {
    // SAFETY: precondition 1.
    unsafe { (*seg).slab_tag[idx].store(class as u16 | (owner as u16) << 8, Ordering::Relaxed) };
}

/// The id of the cache owning the slab of the block at `p` (0: shared).
///
/// # Safety
/// 1. `seg` is `segment_of(p)`, a small or medium segment of this heap.
#[inline(always)]
pub unsafe fn owner_at(seg: *mut SegmentHeader, p: *mut u8) -> u8 {
    // SAFETY: precondition 1.
    unsafe { (tag_at(seg, p) >> 8) as u8 }
}

/// First-block offset and block count of cell `idx` of a segment of `kind` for blocks of
/// `block_bytes`.
pub fn slab_geometry(kind: SegmentKind, idx: usize, block_bytes: usize) -> (usize, usize) {
    let shift = slab_shift_of(kind) as usize;
    let cell_base = idx << shift;
    let cell_end = cell_base + (1usize << shift);
    let reserved = if idx == 0 { HEADER_BYTES } else { 0 } + CHECKED_BITMAP_BYTES;
    let start = cell_base + reserved;
    (start, (cell_end - start) / block_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_class::{NUM_CLASSES, class_bytes, uses_small_slabs};

    #[test]
    fn every_class_fits_at_least_eight_blocks_in_every_cell() {
        for c in 0..NUM_CLASSES {
            let kind = if uses_small_slabs(c) {
                SegmentKind::Small
            } else {
                SegmentKind::Medium
            };
            let (cells, _) = cells_of(kind);
            for idx in 0..cells as usize {
                let (start, n) = slab_geometry(kind, idx, class_bytes(c));
                assert!(n >= 8, "class {} cell {idx}: {n} blocks", class_bytes(c));
                assert_eq!(start % PAGE_BYTES, 0);
                let end = start + n * class_bytes(c);
                assert!(end <= (idx + 1) << slab_shift_of(kind));
                // The unusable tail of a full cell is under 1/16 of it.
                if idx > 0 && CHECKED_BITMAP_BYTES == 0 {
                    let tail = ((idx + 1) << slab_shift_of(kind)) - end;
                    assert!(
                        tail * 16 <= 1 << slab_shift_of(kind),
                        "class {}",
                        class_bytes(c)
                    );
                }
            }
        }
    }

    #[test]
    fn owner_lookup_masks_to_the_header() {
        let p = (5 * SEGMENT_BYTES + 3 * 65536 + 100) as *mut u8;
        assert_eq!(segment_of(p).addr(), 5 * SEGMENT_BYTES);
    }
}
