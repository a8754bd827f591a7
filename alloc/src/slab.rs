//! The slab layer of one class on one node: partial slabs and their free lists.
//!
//! A slab is one cell of a segment carved into blocks of one class. It hands out freed blocks
//! first (an intrusive LIFO list through each block's first word), then carves never-touched
//! blocks from its tail, so a fresh slab faults in only the pages it uses. Slabs with free
//! blocks sit on the class's partial list; full slabs sit on no list and rejoin it on their
//! first free. A slab whose last block comes back is kept (up to [`EMPTY_SLABS_KEEP`] per
//! class) or handed back to its segment at once. All of it runs under the class lock.

use core::ptr;

use crate::depot::Depot;
use crate::remote_free::{next_of, set_next};
use crate::segment::{SlabMeta, SlabState};

/// Empty slabs a class keeps for the next burst before returning slabs to their segments.
pub const EMPTY_SLABS_KEEP: u32 = 1;

/// One class on one node: its depot and its partial slabs. Guarded by the class lock; valid
/// when all-zero.
#[derive(Debug)]
pub struct ClassInner {
    /// Full and empty magazines.
    pub depot: Depot,
    /// Slabs with free blocks (doubly linked through `next`/`prev`).
    pub partial: *mut SlabMeta,
    /// Slabs on `partial` with no block in use.
    pub empty_slabs: u32,
}

// SAFETY: the class owns the slabs on its list and the depot's magazines; it lives in a lock.
unsafe impl Send for ClassInner {}

impl Default for ClassInner {
    fn default() -> Self {
        Self::new()
    }
}

impl ClassInner {
    /// An empty class (all-zero).
    pub const fn new() -> Self {
        ClassInner {
            depot: Depot::new(),
            partial: ptr::null_mut(),
            empty_slabs: 0,
        }
    }

    /// Puts a freshly set-up slab (no block in use) on the partial list.
    ///
    /// # Safety
    /// 1. `slab` is set up for this class by [`init_slab`] and on no list.
    pub unsafe fn add_slab(&mut self, slab: *mut SlabMeta) {
        // SAFETY: precondition 1.
        unsafe { self.link_front(slab) };
        self.empty_slabs += 1;
    }

    /// Takes one block from the partial slabs, or null when there are none.
    ///
    /// # Safety
    /// 1. The caller holds this class's lock (implied by `&mut self` inside the lock) and the
    ///    slabs on the list are valid.
    #[inline]
    pub unsafe fn pop_block(&mut self) -> *mut u8 {
        let s = self.partial;
        if s.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: precondition 1: listed slabs are valid and owned by this class; a slab on the
        // partial list has a free block or an uncarved one.
        unsafe {
            if (*s).used == 0 {
                self.empty_slabs -= 1;
            }
            let b = if !(*s).free.is_null() {
                let b = (*s).free;
                (*s).free = next_of(b);
                b
            } else {
                let seg = crate::segment::segment_of(s.cast());
                let bytes = crate::size_class::class_bytes((*s).class as usize);
                let b = seg
                    .cast::<u8>()
                    .add((*s).start_offset as usize + (*s).carved as usize * bytes);
                (*s).carved += 1;
                b
            };
            (*s).used += 1;
            if (*s).used == (*s).capacity {
                self.unlink(s);
                (*s).state
                    .store(SlabState::Full as u8, crate::sync::Ordering::Relaxed);
            }
            b
        }
    }

    /// Returns a block to its slab. Returns the slab when it became empty and must go back to
    /// its segment (the class already keeps [`EMPTY_SLABS_KEEP`] empty slabs); it is then off
    /// every list.
    ///
    /// # Safety
    /// 1. `b` is a block of `slab`, of this class, currently handed out, and owned by the caller.
    #[inline]
    pub unsafe fn push_block(&mut self, slab: *mut SlabMeta, b: *mut u8) -> Option<*mut SlabMeta> {
        // SAFETY: precondition 1: the slab belongs to this class, whose lock we hold.
        unsafe {
            set_next(b, (*slab).free);
            (*slab).free = b;
            (*slab).used -= 1;
            if (*slab).state.load(crate::sync::Ordering::Relaxed) == SlabState::Full as u8 {
                (*slab)
                    .state
                    .store(SlabState::Partial as u8, crate::sync::Ordering::Relaxed);
                self.link_front(slab);
            }
            if (*slab).used == 0 {
                if self.empty_slabs >= EMPTY_SLABS_KEEP {
                    self.unlink(slab);
                    return Some(slab);
                }
                self.empty_slabs += 1;
            }
        }
        None
    }

    /// Unlinks the first partial slab for a cache to own, or returns null when there is none.
    pub fn take_partial(&mut self) -> *mut SlabMeta {
        let s = self.partial;
        if !s.is_null() {
            // SAFETY: listed slabs are valid and owned by this class.
            unsafe {
                if (*s).used == 0 {
                    self.empty_slabs -= 1;
                }
                self.unlink(s);
            }
        }
        s
    }

    /// Unlinks `slab` if it is on the partial list (a full slab is on no list), for a cache
    /// to own.
    ///
    /// # Safety
    /// 1. `slab` is a shared slab of this class (state Partial or Full).
    pub unsafe fn take_shared(&mut self, slab: *mut SlabMeta) {
        // SAFETY: precondition 1; the list belongs to this class, whose lock we hold.
        unsafe {
            if (*slab).state.load(crate::sync::Ordering::Relaxed) == SlabState::Partial as u8 {
                if (*slab).used == 0 {
                    self.empty_slabs -= 1;
                }
                self.unlink(slab);
            }
        }
    }

    /// Takes back a slab a cache stopped owning (its fields current, on no list): full slabs
    /// stay off the list, others join it. Returns the slab when it is empty and must go back
    /// to its segment (as [`ClassInner::push_block`] does).
    ///
    /// # Safety
    /// 1. `slab` is a slab of this class, on no list, whose `free`, `used` and `carved` are
    ///    current, owned by the caller.
    pub unsafe fn take_back(&mut self, slab: *mut SlabMeta) -> Option<*mut SlabMeta> {
        // SAFETY: precondition 1.
        unsafe {
            if (*slab).used == (*slab).capacity {
                (*slab)
                    .state
                    .store(SlabState::Full as u8, crate::sync::Ordering::Relaxed);
                return None;
            }
            (*slab)
                .state
                .store(SlabState::Partial as u8, crate::sync::Ordering::Relaxed);
            if (*slab).used == 0 {
                if self.empty_slabs >= EMPTY_SLABS_KEEP {
                    return Some(slab);
                }
                self.empty_slabs += 1;
            }
            self.link_front(slab);
        }
        None
    }

    /// Unlinks every empty slab and returns them as a chain through `next` (for `trim`).
    pub fn take_empty_slabs(&mut self) -> *mut SlabMeta {
        let mut out: *mut SlabMeta = ptr::null_mut();
        let mut s = self.partial;
        while !s.is_null() {
            // SAFETY: listed slabs are valid and owned by this class.
            unsafe {
                let next = (*s).next;
                if (*s).used == 0 {
                    self.unlink(s);
                    (*s).next = out;
                    out = s;
                    self.empty_slabs -= 1;
                }
                s = next;
            }
        }
        out
    }

    unsafe fn link_front(&mut self, s: *mut SlabMeta) {
        // SAFETY: the caller's precondition: `s` is valid and on no list.
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = self.partial;
            if !self.partial.is_null() {
                (*self.partial).prev = s;
            }
        }
        self.partial = s;
    }

    unsafe fn unlink(&mut self, s: *mut SlabMeta) {
        // SAFETY: the caller's precondition: `s` is valid and on this list.
        unsafe {
            let (p, n) = ((*s).prev, (*s).next);
            if p.is_null() {
                self.partial = n;
            } else {
                (*p).next = n;
            }
            if !n.is_null() {
                (*n).prev = p;
            }
            (*s).next = ptr::null_mut();
            (*s).prev = ptr::null_mut();
        }
    }
}

/// Sets up cell `idx` of `seg` as an empty slab of class `class`.
///
/// # Safety
/// 1. The cell is free and now owned by the caller (taken under the segment lock).
pub unsafe fn init_slab(
    seg: *mut crate::segment::SegmentHeader,
    idx: usize,
    class: usize,
) -> *mut SlabMeta {
    use crate::segment::{SegmentKind, slab_geometry};
    // SAFETY: precondition 1; the header is initialized and its kind immutable.
    unsafe {
        let kind = if (*seg).kind == SegmentKind::Medium as u8 {
            SegmentKind::Medium
        } else {
            SegmentKind::Small
        };
        let (start, capacity) = slab_geometry(kind, idx, crate::size_class::class_bytes(class));
        let s = ptr::addr_of_mut!((*seg).slabs[idx]);
        (*s).next = ptr::null_mut();
        (*s).prev = ptr::null_mut();
        (*s).free = ptr::null_mut();
        (*s).start_offset = start as u32;
        (*s).used = 0;
        (*s).capacity = capacity as u32;
        (*s).carved = 0;
        (*s).class = class as u8;
        ptr::addr_of_mut!((*s).xfree).write(crate::thread_free::ThreadFree::new());
        crate::segment::set_tag(seg, idx, class as u8, 0);
        (*s).state
            .store(SlabState::Partial as u8, crate::sync::Ordering::Relaxed);
        #[cfg(feature = "checked")]
        crate::checked::clear_bitmap(seg, s);
        s
    }
}
