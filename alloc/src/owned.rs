//! Slabs owned by one cache, for the classes whose blocks share cache lines.
//!
//! A magazine allocator that caches whatever its thread frees hands a block freed by thread B
//! but carved for thread A to B's next allocation, while A keeps using the block's neighbours:
//! two threads then write one cache line (allocator-induced *passive false sharing*, Hoard's
//! cache-scratch). For the classes up to [`OWNED_CLASS_MAX_BYTES`] (blocks of 8..=56 bytes,
//! several to a 64-byte line), this module keeps the blocks of one slab with one cache.
//! (Blocks of 72..=120 bytes straddle lines too, but owning them as well cost Larson 1.13-1.17
//! and xmalloc 1.15-1.31 of mimalloc against 1.09-1.13 and 0.89-1.09 at 56 B, in the same
//! loaded runs: every free of another thread's block writes the block and its owner reads it
//! back, where a magazine only stores the pointer. 64 B blocks are line-aligned.)
//!
//! - **Ownership.** A cache refills such a class only from the one slab it owns for it (its
//!   *own slab*, [`SlabState::Owned`], on no list). The header's per-cell tag names the
//!   owner next to the class byte a free already reads, so any free finds it in O(1) with
//!   the same load.
//! - **Frees go home.** A free whose slab is owned by another cache never enters the freeing
//!   cache's magazines: it goes onto the slab's [`ThreadFree`] list with one CAS, and the owner
//!   takes that list back when its private free list runs dry. Frees of the owner's own blocks,
//!   and of blocks of shared slabs, use the magazines as before (the pair fast path is the old
//!   one plus one load and compare of the owner id from the header line it already reads).
//! - **The depot only between a flushed cache and the next.** A live cache never trades these
//!   classes' magazines with the depot, so its blocks never load into another cache's
//!   magazines through it: a full magazine is drained into the slabs (the own slab's blocks
//!   without a lock), an empty one is refilled from the own slab. A cache that flushes
//!   (thread exit) first gives its own slabs up, so its magazines then hold blocks of shared
//!   slabs and go to the depot whole as any class's do; a cache whose own slab has nothing
//!   left takes such a magazine before adopting another slab. (Draining them instead made
//!   every exit write, and the next thread's refill re-read, each block: Larson 1.3-1.5x
//!   slower in the same-run A/B.)
//! - **Giving up and adopting (class lock).** When the own slab has nothing left (private list,
//!   thread-free list and uncarved tail all empty) and the depot has no full magazine, the
//!   cache closes its thread-free list,
//!   folds what was pending into the slab and hands it back to the class as a shared slab
//!   ([`ClassInner::take_back`]), then adopts the first partial shared slab, else a fresh one.
//!   A cache's flush (thread exit, node change, budget eviction) gives its own slabs up the
//!   same way, so the blocks of an exited thread's slabs, which outlive it (mstress), are freed
//!   into a shared slab and reused by whoever adopts it.
//!
//! Invariants (in addition to the crate's):
//! 1. An owned slab's `free`, `used` and `carved` are read and written only by its owner (no
//!    lock); `state`, the owner byte of the cell's tag and the thread-free list's open bit
//!    change only under the
//!    class lock, together (adopt: Owned, id, open; give up: closed, 0, Partial/Full).
//! 2. A block of an owned slab is in exactly one of: the owner's private list, the thread-free
//!    list, a cache magazine, a user's hands. Blocks reach another cache's magazine only
//!    through a stale owner read or a slab adopted while its blocks sat in magazines; the
//!    paths that hand blocks back to slabs under the class lock (`Heap::put_block`) route by
//!    ownership, so such a block still reaches the owner.
//! 3. Cache ids are 8-bit (so the owner shares one 16-bit header load with the class on the
//!    free path) and recycled after 255 caches; two live caches with one id only lose the
//!    false-sharing protection between them (routing uses the slab pointer a cache holds,
//!    never the id, to touch a private list).

use core::ptr;

use crate::heap::Heap;
use crate::node::NodeState;
use crate::page_source::PageSource;
use crate::remote_free::{next_of, set_next};
use crate::segment::{SlabMeta, SlabState, segment_of, set_tag, slab_index};
use crate::size_class::class_bytes;
use crate::slab::ClassInner;
use crate::sync::Ordering;
#[cfg(doc)]
use crate::thread_free::ThreadFree;

/// The largest class whose slabs are owned by one cache.
pub const OWNED_CLASS_MAX_BYTES: usize = 56;

/// Number of owned classes (the classes are sorted by size, so they are `0..OWNED_CLASSES`).
pub const OWNED_CLASSES: usize = OWNED_CLASS_MAX_BYTES / 8;

const _: () =
    assert!(crate::size_class::CLASS_BYTES[OWNED_CLASSES - 1] as usize == OWNED_CLASS_MAX_BYTES);

/// Whether class `c`'s slabs are owned by caches.
#[inline(always)]
pub const fn is_owned_class(c: usize) -> bool {
    c < OWNED_CLASSES
}

/// Pops up to `out.len()` blocks from an own slab without a lock: its private free list, then
/// what other caches freed into it, then its uncarved tail. Returns how many.
///
/// # Safety
/// 1. `s` is a slab owned by the calling cache (invariant 1).
pub(crate) unsafe fn pop_own(s: *mut SlabMeta, out: &mut [*mut u8]) -> usize {
    let mut n = 0;
    // One look at the thread-free list per call (an atomic load, a swap when non-empty).
    let mut took = false;
    // SAFETY: precondition 1: the owner alone touches `free`, `used`, `carved`.
    unsafe {
        while n < out.len() {
            let b = (*s).free;
            if !b.is_null() {
                (*s).free = next_of(b);
                out[n] = b;
                n += 1;
                continue;
            }
            let mut chain = if took {
                ptr::null_mut()
            } else {
                took = true;
                (*s).xfree.take()
            };
            if !chain.is_null() {
                // The taken blocks were counted in `used` when they left the slab.
                let mut k = 0u32;
                let head = chain;
                while !chain.is_null() {
                    k += 1;
                    chain = next_of(chain);
                }
                (*s).used -= k;
                (*s).free = head;
                continue;
            }
            if (*s).carved < (*s).capacity {
                let seg = segment_of(s.cast());
                let bytes = class_bytes((*s).class as usize);
                out[n] = seg
                    .cast::<u8>()
                    .add((*s).start_offset as usize + (*s).carved as usize * bytes);
                (*s).carved += 1;
                n += 1;
                continue;
            }
            break;
        }
        (*s).used += n as u32;
    }
    n
}

/// Counts the owned slabs of `class` on the node, stopping at `max`; returns the count and the
/// last one seen (null when none). Takes the segment lock.
fn owned_slabs(ns: &NodeState, class: usize, max: usize) -> (usize, *mut SlabMeta) {
    let (mut n, mut last) = (0usize, ptr::null_mut());
    ns.for_each_mapping(|base, _| {
        let seg = base.cast::<crate::segment::SegmentHeader>();
        // SAFETY: listed segments are valid under the segment lock `for_each_mapping` holds;
        // a slab's state and class are only read here.
        unsafe {
            let kind = (*seg).kind;
            if kind != crate::segment::SegmentKind::Small as u8
                && kind != crate::segment::SegmentKind::Medium as u8
            {
                return;
            }
            for idx in 0..(*seg).cells as usize {
                let s = ptr::addr_of_mut!((*seg).slabs[idx]);
                if n < max
                    && (*s).state.load(Ordering::Relaxed) == SlabState::Owned as u8
                    && (*s).class as usize == class
                {
                    n += 1;
                    last = s;
                }
            }
        }
    });
    (n, last)
}

/// Makes `s` owned by cache `id` (state, open thread-free list, tag).
///
/// # Safety
/// 1. `s` is a slab on no list, with a closed thread-free list, and the caller holds its
///    class lock.
unsafe fn own_slab(s: *mut SlabMeta, id: u8) {
    // SAFETY: precondition 1: the shared fields are guarded by the lock the caller holds.
    unsafe {
        (*s).state.store(SlabState::Owned as u8, Ordering::Relaxed);
        (*s).xfree.open();
        let seg = segment_of(s.cast());
        set_tag(seg, slab_index(seg, s), (*s).class, id);
    }
}

/// Returns a block to the own slab it came from (no lock).
///
/// # Safety
/// 1. `s` is owned by the calling cache and `b` is a handed-out block of it, now the caller's.
#[inline]
pub(crate) unsafe fn push_own(s: *mut SlabMeta, b: *mut u8) {
    // SAFETY: precondition 1.
    unsafe {
        set_next(b, (*s).free);
        (*s).free = b;
        (*s).used -= 1;
    }
}

impl<P: PageSource> Heap<P> {
    /// A fresh cache id (never 0; recycled after 255, see invariant 3).
    pub(crate) fn new_cache_id(&self) -> u8 {
        (self.cache_ids.fetch_add(1, Ordering::Relaxed) % 0xff) as u8 + 1
    }

    /// Under the class lock: the owner `s` gives its slab up. Closes the thread-free list,
    /// folds the pending blocks into the slab and hands it back to the class as shared.
    ///
    /// # Safety
    /// 1. `s` is owned by the caller (a slab of the class `inner` guards, on `node`).
    pub(crate) unsafe fn disown_slab(
        &self,
        ns: &NodeState,
        node: usize,
        inner: &mut ClassInner,
        s: *mut SlabMeta,
    ) {
        // SAFETY: precondition 1 and invariant 1: we own the private fields, and hold the lock
        // that guards the shared ones.
        unsafe {
            let mut b = (*s).xfree.close();
            while !b.is_null() {
                let next = next_of(b);
                push_own(s, b);
                b = next;
            }
            let seg = segment_of(s.cast());
            set_tag(seg, slab_index(seg, s), (*s).class, 0);
            if let Some(empty) = inner.take_back(s) {
                ns.release_slab(&self.ctx(node), empty);
            }
        }
    }

    /// Under the class lock: a slab for cache `id` to own: the first partial shared slab, else
    /// a fresh one. Null when pages run out.
    pub(crate) fn adopt_slab(
        &self,
        ns: &NodeState,
        node: usize,
        class: usize,
        inner: &mut ClassInner,
        id: u8,
    ) -> *mut SlabMeta {
        let mut s = inner.take_partial();
        if s.is_null() {
            s = match ns.new_slab(&self.ctx(node), class) {
                Some(s) => s,
                None => return ptr::null_mut(),
            };
        }
        // SAFETY: a slab of this class on no list, now ours.
        unsafe { own_slab(s, id) };
        s
    }

    /// Under the class lock: the cache `id`, which just took a full magazine from the depot,
    /// adopts the slab of the magazine's top block (usually the own slab a flushed cache gave
    /// up, holding most of the magazine's blocks) when no cache owns it, giving up its
    /// exhausted own slab `*own`. So the blocks it now hands out are of its own slab, and
    /// another cache's frees of them come back to it. Without this, two fresh threads taking
    /// two magazines of one exited thread were handed neighbouring blocks (the benchmark's
    /// shared-lines count saw it). Returns `false`, adopting nothing, when another cache
    /// owns that slab already: the caller then sends the magazine's blocks to their owners
    /// instead of handing them out.
    ///
    /// # Safety
    /// 1. `m` is a full magazine of `class` on `node` the caller just took; `*own` is null or
    ///    the caller's own slab of `class`, with nothing left to pop.
    pub(crate) unsafe fn adopt_magazine_slab(
        &self,
        ns: &NodeState,
        node: usize,
        inner: &mut ClassInner,
        m: *mut crate::magazine::Magazine,
        own: &mut *mut SlabMeta,
        id: u8,
    ) -> bool {
        // SAFETY: precondition 1: a full magazine's top block is a block of this heap.
        unsafe {
            let b = (*m).items[(*m).count as usize - 1];
            let s = crate::segment::slab_of(segment_of(b), b);
            if s == *own {
                return true;
            }
            if (*s).state.load(Ordering::Relaxed) == SlabState::Owned as u8 {
                return false;
            }
            if !own.is_null() {
                self.disown_slab(ns, node, inner, *own);
            }
            inner.take_shared(s);
            own_slab(s, id);
            *own = s;
        }
        true
    }

    /// Gives up every slab a cache still owns, on every node: for a forked child, whose one
    /// thread has flushed its cache; the other threads' caches are gone with their threads, and
    /// their slabs would stay owned, with the child's frees of their blocks queued on lists
    /// nobody takes.
    ///
    /// # Safety
    /// 1. No cache of this heap that is still used owns a slab (each was flushed), and none is
    ///    used while this runs.
    pub unsafe fn disown_all_slabs(&self) {
        for node in 0..crate::node_map::MAX_NODES {
            let Some(ns) = self.existing_node(node) else {
                continue;
            };
            for class in 0..OWNED_CLASSES {
                // Bounded by the owned slabs counted first (precondition 1: none are added).
                let owned = owned_slabs(ns, class, usize::MAX).0;
                for _ in 0..owned {
                    ns.classes[class].lock.with(|inner| {
                        let s = owned_slabs(ns, class, 1).1;
                        if !s.is_null() {
                            // SAFETY: precondition 1: its owner is gone; we hold the lock.
                            unsafe { self.disown_slab(ns, node, inner, s) };
                        }
                    });
                }
            }
        }
    }

    /// Fills `out` from the cache's own slab of `class` (`*own`, adopting one when it is null
    /// or exhausted). Returns how many blocks it wrote (fewer only when pages run out).
    ///
    /// # Safety
    /// 1. `*own` is null or the slab of `class` on `node` the calling cache (id `id`) owns.
    pub(crate) unsafe fn refill_owned(
        &self,
        ns: &NodeState,
        node: usize,
        class: usize,
        own: &mut *mut SlabMeta,
        id: u8,
        out: &mut [*mut u8],
    ) -> usize {
        let mut n = 0;
        // Bounded: every pass either fills `out`, or adopts a slab that yields at least one
        // block (a partial slab has a free or uncarved block, a fresh one has at least 8), or
        // stops when pages run out; so at most `out.len() + 1` passes.
        loop {
            let s = *own;
            if !s.is_null() {
                // SAFETY: precondition 1.
                n += unsafe { pop_own(s, &mut out[n..]) };
                if n == out.len() {
                    return n;
                }
            }
            let next = ns.classes[class].lock.with(|inner| {
                if !s.is_null() {
                    // SAFETY: precondition 1: ours, exhausted.
                    unsafe { self.disown_slab(ns, node, inner, s) };
                }
                self.adopt_slab(ns, node, class, inner, id)
            });
            *own = next;
            if next.is_null() {
                return n;
            }
        }
    }

    /// Hands blocks of an owned class back to their slabs: blocks of `own` (the caller's own
    /// slab) without a lock, the others under the class lock (routed by ownership in
    /// `put_block`). Empties `blocks[..]` logically; the caller resets its count.
    ///
    /// # Safety
    /// 1. Every block is a free block of `class` on `node`, owned by the caller; `own` is null
    ///    or the caller's own slab of `class`.
    pub(crate) unsafe fn return_owned_blocks(
        &self,
        ns: &NodeState,
        node: usize,
        class: usize,
        own: *mut SlabMeta,
        blocks: &[*mut u8],
    ) {
        let mut rest: *mut u8 = ptr::null_mut();
        for &b in blocks {
            // SAFETY: precondition 1.
            unsafe {
                let s = crate::segment::slab_of(segment_of(b), b);
                if s == own {
                    push_own(s, b);
                } else {
                    set_next(b, rest);
                    rest = b;
                }
            }
        }
        if rest.is_null() {
            return;
        }
        ns.classes[class].lock.with(|inner| {
            while !rest.is_null() {
                // SAFETY: precondition 1: blocks of `class` on `node`, ours.
                unsafe {
                    let next = next_of(rest);
                    self.put_block(ns, node, inner, rest);
                    rest = next;
                }
            }
        });
    }
}
