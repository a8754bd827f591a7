//! Magazines (Bonwick and Adams, USENIX 2001): fixed arrays of free blocks of one class that a
//! CPU or thread cache fills and empties without any lock or atomic, and exchanges whole with
//! its node's [`Depot`](crate::depot::Depot).
//!
//! Magazines are node metadata: each node carves them out of its own slabs (state
//! [`Meta`](crate::segment::SlabState::Meta)) and keeps spare ones on a free list
//! ([`MagazinePool`]); they are never returned to the page source (their number is bounded by
//! caches x classes x 2 plus the depots' bounds).

use core::ptr;

use crate::size_class::MAGAZINE_CAPACITY_MAX;

/// A magazine: up to `cap` blocks of one class.
///
/// Owned by exactly one party at a time: a cache (loaded or previous slot), a depot list, or
/// the pool. Only the owner reads or writes it, so no field is atomic. Cache-line aligned, so
/// two threads' magazines carved side by side never share a line (without it, one thread
/// filling its last slots would steal the line holding its neighbour's `count`).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Magazine {
    /// Blocks held (`items[..count]`).
    pub count: u32,
    /// Capacity for the class it currently serves (at most [`MAGAZINE_CAPACITY_MAX`]).
    pub cap: u32,
    /// Link for depot and pool lists.
    pub next: *mut Magazine,
    /// The blocks.
    pub items: [*mut u8; MAGAZINE_CAPACITY_MAX],
}

impl Magazine {
    /// Whether it holds no block.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether it holds `cap` blocks.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.count >= self.cap
    }
}

/// Bytes of one magazine.
pub const MAGAZINE_BYTES: usize = core::mem::size_of::<Magazine>();

/// A node's spare magazines, class-independent. Guarded by the node's pool lock.
#[derive(Debug)]
pub struct MagazinePool {
    /// Spare magazines linked through `next`.
    free: *mut Magazine,
    /// Length of `free`.
    free_len: usize,
    /// Magazines ever carved on this node.
    pub carved: usize,
}

// SAFETY: the pool owns the magazines on its list; moving it between threads moves that
// ownership (it lives inside a lock).
unsafe impl Send for MagazinePool {}

impl MagazinePool {
    /// An empty pool (all-zero).
    pub const fn new() -> Self {
        MagazinePool {
            free: ptr::null_mut(),
            free_len: 0,
            carved: 0,
        }
    }

    /// A spare magazine set up empty with capacity `cap`, or null when the pool is empty.
    pub fn take(&mut self, cap: u32) -> *mut Magazine {
        let m = self.free;
        if !m.is_null() {
            // SAFETY: magazines on the list are owned by the pool and valid.
            unsafe {
                self.free = (*m).next;
                (*m).next = ptr::null_mut();
                (*m).count = 0;
                (*m).cap = cap;
            }
            self.free_len -= 1;
        }
        m
    }

    /// Puts back an empty magazine.
    ///
    /// # Safety
    /// 1. `m` is a valid magazine the caller owns, holding no blocks; ownership passes to the pool.
    pub unsafe fn put(&mut self, m: *mut Magazine) {
        // SAFETY: precondition 1.
        unsafe { (*m).next = self.free };
        self.free = m;
        self.free_len += 1;
    }

    /// Carves `bytes` of fresh memory at `area` into magazines and adds them to the pool.
    ///
    /// # Safety
    /// 1. `area` is writable, owned by the pool from now on, aligned for `Magazine`.
    pub unsafe fn grow(&mut self, area: *mut u8, bytes: usize) {
        let n = bytes / MAGAZINE_BYTES;
        for i in 0..n {
            // SAFETY: precondition 1: `i * MAGAZINE_BYTES + MAGAZINE_BYTES <= bytes`.
            unsafe {
                let m = area.add(i * MAGAZINE_BYTES).cast::<Magazine>();
                ptr::addr_of_mut!((*m).count).write(0);
                ptr::addr_of_mut!((*m).cap).write(0);
                self.put(m);
            }
        }
        self.carved += n;
    }

    /// Spare magazines.
    pub fn len(&self) -> usize {
        self.free_len
    }

    /// Whether no spare magazine is left.
    pub fn is_empty(&self) -> bool {
        self.free_len == 0
    }
}

impl Default for MagazinePool {
    fn default() -> Self {
        Self::new()
    }
}
