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
    /// Start of the part of the last metadata area not yet carved into magazines. Carving is
    /// lazy so a process that uses few classes never faults in the rest of the area.
    uncarved: *mut u8,
    /// Magazines still to carve at `uncarved`.
    uncarved_len: usize,
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
            uncarved: ptr::null_mut(),
            uncarved_len: 0,
            carved: 0,
        }
    }

    /// A spare magazine set up empty with capacity `cap`, or null when the pool is empty.
    pub fn take(&mut self, cap: u32) -> *mut Magazine {
        let m = self.free;
        if m.is_null() && self.uncarved_len > 0 {
            let m = self.uncarved.cast::<Magazine>();
            // SAFETY: `grow`'s precondition 1: the uncarved area is the pool's, writable and
            // aligned, with room for `uncarved_len` more magazines.
            unsafe {
                ptr::addr_of_mut!((*m).count).write(0);
                ptr::addr_of_mut!((*m).cap).write(cap);
                ptr::addr_of_mut!((*m).next).write(ptr::null_mut());
                self.uncarved = self.uncarved.add(MAGAZINE_BYTES);
            }
            self.uncarved_len -= 1;
            self.carved += 1;
            return m;
        }
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

    /// Hands `bytes` of fresh memory at `area` to the pool, which carves magazines from it
    /// one at a time as [`MagazinePool::take`] needs them (untouched until then). Any part of a
    /// previous area not carved yet is carved onto the free list first.
    ///
    /// # Safety
    /// 1. `area` is writable, owned by the pool from now on, aligned for `Magazine`.
    pub unsafe fn grow(&mut self, area: *mut u8, bytes: usize) {
        // Bounded by the previous area's magazine count.
        while self.uncarved_len > 0 {
            let m = self.take(0);
            // SAFETY: a freshly carved magazine, empty, owned by the pool.
            unsafe { self.put(m) };
        }
        self.uncarved = area;
        self.uncarved_len = bytes / MAGAZINE_BYTES;
    }

    /// Spare magazines (carved or not).
    pub fn len(&self) -> usize {
        self.free_len + self.uncarved_len
    }

    /// Whether no spare magazine is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MagazinePool {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Magazine-aligned scratch memory for `n` magazines.
    fn area(n: usize) -> std::vec::Vec<Magazine> {
        (0..n)
            .map(|_| Magazine {
                count: 7,
                cap: 7,
                next: ptr::null_mut(),
                items: [ptr::null_mut(); MAGAZINE_CAPACITY_MAX],
            })
            .collect()
    }

    #[test]
    fn lazy_carving_hands_out_each_magazine_once_and_carries_leftovers_over() {
        let mut a = area(3);
        let mut b = area(2);
        let mut pool = MagazinePool::new();
        assert!(pool.take(4).is_null(), "an empty pool hands out nothing");
        // SAFETY: `a` outlives the pool's use below and is aligned for Magazine.
        unsafe {
            pool.grow(
                a.as_mut_ptr().cast(),
                3 * MAGAZINE_BYTES + MAGAZINE_BYTES / 2,
            )
        };
        assert_eq!(
            (pool.len(), pool.carved),
            (3, 0),
            "nothing carved before a take"
        );
        let m0 = pool.take(4);
        let m1 = pool.take(5);
        assert_eq!(m0, a.as_mut_ptr());
        // SAFETY: m0, m1 are magazines inside `a`, now ours.
        unsafe {
            assert_eq!(m1, a.as_mut_ptr().add(1));
            assert_eq!(((*m0).count, (*m0).cap), (0, 4));
            assert_eq!(((*m1).count, (*m1).cap), (0, 5));
        }
        assert_eq!((pool.len(), pool.carved), (1, 2));
        // A new area: the one magazine left in `a` moves to the free list first.
        // SAFETY: as above for `b`.
        unsafe { pool.grow(b.as_mut_ptr().cast(), 2 * MAGAZINE_BYTES) };
        assert_eq!(pool.len(), 3);
        let mut seen = std::vec![m0, m1];
        while !pool.is_empty() {
            let m = pool.take(6);
            assert!(
                !m.is_null() && !seen.contains(&m),
                "a magazine handed out twice"
            );
            seen.push(m);
        }
        // SAFETY: pointer arithmetic within `a`.
        assert!(seen.contains(&unsafe { a.as_mut_ptr().add(2) }));
        assert!(seen.contains(&b.as_mut_ptr()));
        assert_eq!(pool.carved, 5);
        assert!(pool.take(1).is_null());
    }
}
