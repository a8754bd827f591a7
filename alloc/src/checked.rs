//! The `checked` feature: catch double frees and invalid frees, abort naming the pointer.
//!
//! - A global registry of segment bases (open addressing, [`REGISTRY_SLOTS`] slots, at most
//!   [`REGISTRY_PROBES_MAX`] probes) tells whether a pointer's segment belongs to a manycore
//!   heap before its header is read, so foreign pointers (stack, other allocators) are reported
//!   instead of followed.
//! - Every slab reserves a page at its start for a bitmap with one bit per block: set while the
//!   block is handed out to a user, clear while it is free (in a slab, a magazine, or a remote
//!   batch). Allocation sets the bit, free clears it with one atomic read-modify-write each, so
//!   a second free finds it clear. Frees of interior pointers fail the block-boundary check.
//! - A large object's header has a live flag swapped to 0 by its free.
//!
//! When the registry is full, new segments are refused (allocation returns null), so every
//! segment a heap uses is registered.

use core::fmt::Write;

use crate::heap::Heap;
use crate::page_source::PageSource;
use crate::segment::{
    CHECKED_BITMAP_BYTES, SEGMENT_MAGIC, SEGMENT_SHIFT, SegmentHeader, SegmentKind, SlabMeta,
    SlabState, segment_of, slab_of,
};
use crate::size_class::class_bytes;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Slots in the segment registry (4 MiB each: 256 GiB of segments).
pub const REGISTRY_SLOTS: usize = 1 << 16;
/// Most slots one registry operation probes.
pub const REGISTRY_PROBES_MAX: usize = 64;
const TOMBSTONE: usize = 1;

static REGISTRY: [AtomicUsize; REGISTRY_SLOTS] = [const { AtomicUsize::new(0) }; REGISTRY_SLOTS];

fn slot_of(base: usize) -> usize {
    let k = (base >> SEGMENT_SHIFT) as u64;
    (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as usize % REGISTRY_SLOTS
}

/// Records a segment base; `false` when the registry has no room within the probe bound.
pub(crate) fn register(base: *mut u8) -> bool {
    let b = base.addr();
    let start = slot_of(b);
    for i in 0..REGISTRY_PROBES_MAX {
        let s = &REGISTRY[(start + i) % REGISTRY_SLOTS];
        let cur = s.load(Ordering::Relaxed);
        if (cur == 0 || cur == TOMBSTONE)
            && s.compare_exchange(cur, b, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
    }
    false
}

/// Forgets a segment base.
pub(crate) fn unregister(base: *mut u8) {
    let b = base.addr();
    let start = slot_of(b);
    for i in 0..REGISTRY_PROBES_MAX {
        let s = &REGISTRY[(start + i) % REGISTRY_SLOTS];
        if s.load(Ordering::Relaxed) == b {
            s.store(TOMBSTONE, Ordering::Release);
            return;
        }
    }
}

fn registered(base: usize) -> bool {
    let start = slot_of(base);
    (0..REGISTRY_PROBES_MAX)
        .any(|i| REGISTRY[(start + i) % REGISTRY_SLOTS].load(Ordering::Acquire) == base)
}

/// A message buffer on the stack.
struct Msg {
    buf: [u8; 160],
    len: usize,
}

impl Write for Msg {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cold]
#[inline(never)]
fn fail<P: PageSource>(heap: &Heap<P>, what: &str, p: *mut u8) -> ! {
    let mut m = Msg {
        buf: [0; 160],
        len: 0,
    };
    let _ = write!(m, "manycore-alloc: {what} of pointer {p:p}");
    let s = core::str::from_utf8(&m.buf[..m.len]).unwrap_or("manycore-alloc: heap corruption");
    heap.source().corruption(s)
}

/// The bitmap word and bit of block `p` in `slab`.
///
/// # Safety
/// 1. `slab` is an active slab of `seg`; `p` is a block boundary inside it.
unsafe fn bit_of(
    seg: *mut SegmentHeader,
    slab: *mut SlabMeta,
    p: *mut u8,
) -> (&'static AtomicU64, u64) {
    // SAFETY: precondition 1: the bitmap page precedes the blocks in the same cell.
    unsafe {
        let start = seg.cast::<u8>().add((*slab).start_offset as usize);
        let idx = (p.addr() - start.addr()) / class_bytes((*slab).class as usize);
        let words = start.sub(CHECKED_BITMAP_BYTES).cast::<AtomicU64>();
        (&*words.add(idx / 64), 1u64 << (idx % 64))
    }
}

/// Zeroes a fresh slab's bitmap.
///
/// # Safety
/// 1. `slab` was just set up in `seg` and is owned by the caller.
pub(crate) unsafe fn clear_bitmap(seg: *mut SegmentHeader, slab: *mut SlabMeta) {
    // SAFETY: precondition 1: the bitmap page is part of the cell.
    unsafe {
        let start = seg.cast::<u8>().add((*slab).start_offset as usize);
        core::ptr::write_bytes(start.sub(CHECKED_BITMAP_BYTES), 0, CHECKED_BITMAP_BYTES);
    }
}

/// Marks a block handed to a user.
pub(crate) fn on_alloc<P: PageSource>(heap: &Heap<P>, p: *mut u8) {
    let seg = segment_of(p);
    // SAFETY: `p` was just produced by this heap, so its header and slab are valid.
    unsafe {
        if (*seg).kind == SegmentKind::Large as u8 {
            return;
        }
        let slab = slab_of(seg, p);
        let (w, bit) = bit_of(seg, slab, p);
        if w.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            fail(heap, "block handed out twice (heap corruption)", p);
        }
    }
}

/// Validates a free and marks the block free; aborts with a message naming `p` otherwise.
pub(crate) fn on_free<P: PageSource>(heap: &Heap<P>, p: *mut u8) {
    let seg = segment_of(p);
    if p.is_null() || !registered(seg.addr()) {
        fail(heap, "invalid free (not from a manycore heap)", p);
    }
    // SAFETY: the registry holds only live segment bases, so the header is mapped and valid.
    unsafe {
        if (*seg).magic != SEGMENT_MAGIC {
            fail(heap, "invalid free (segment not in use: a double free?)", p);
        }
        if (*seg).kind == SegmentKind::Large as u8 {
            if p.addr() != seg.addr() + (*seg).large_offset {
                fail(heap, "invalid free (interior pointer of a large object)", p);
            }
            if (*seg).large_live.swap(0, Ordering::AcqRel) == 0 {
                fail(heap, "double free", p);
            }
            return;
        }
        let slab = slab_of(seg, p);
        let state = (*slab).state.load(Ordering::Relaxed);
        if state != SlabState::Partial as u8
            && state != SlabState::Full as u8
            && state != SlabState::Owned as u8
        {
            fail(heap, "invalid free (no slab there)", p);
        }
        let start = seg.addr() + (*slab).start_offset as usize;
        let size = class_bytes((*slab).class as usize);
        if p.addr() < start
            || (p.addr() - start) % size != 0
            || (p.addr() - start) / size >= (*slab).capacity as usize
        {
            fail(heap, "invalid free (not the start of a block)", p);
        }
        let (w, bit) = bit_of(seg, slab, p);
        if w.fetch_and(!bit, Ordering::AcqRel) & bit == 0 {
            fail(heap, "double free", p);
        }
    }
}
