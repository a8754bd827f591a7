//! The per-node, per-class depot: full and empty magazines with a working-set estimate.
//!
//! A cache whose two magazines are both empty (alloc) or both full (free) trades one with the
//! depot under the class lock: an empty for a full on allocation, a full for an empty on free.
//! That is the only time a cache touches shared state, once per `cap` operations.
//!
//! Invariant: a magazine on the full list holds at least half its capacity (and at least one
//! block). Trades put only full ones there; a cache's flush (thread exit, rebind) also puts
//! ones at least half full there whole instead of draining them, so a trade may hand out a
//! magazine that is not full (caches take the count from the magazine).
//!
//! Bounds: at most [`DEPOT_FULL_MAX`] full and [`DEPOT_EMPTY_MAX`] empty magazines; past them
//! the caller drains the surplus into slabs or the node's magazine pool.
//!
//! Working-set reaping (Bonwick's depot working set): the depot records the lowest length of
//! each list since the last reap. Magazines that stayed in the depot the whole interval were
//! not needed, so [`Depot::reap`] hands that many back; a burst keeps its magazines, an idle
//! class loses them after one interval ([`REAP_INTERVAL_OPS`] exchanges, or `trim()`).

use core::ptr;

use crate::magazine::Magazine;

/// Most full magazines a depot keeps.
pub const DEPOT_FULL_MAX: u32 = 16;
/// Most empty magazines a depot keeps.
pub const DEPOT_EMPTY_MAX: u32 = 16;
/// Exchanges between automatic working-set reaps.
pub const REAP_INTERVAL_OPS: u32 = 1024;

/// One class's depot on one node. All fields belong to the class lock.
#[derive(Debug)]
pub struct Depot {
    /// Full magazines, linked through `next`.
    full: *mut Magazine,
    /// Length of `full`.
    full_len: u32,
    /// Empty magazines, linked through `next`.
    empty: *mut Magazine,
    /// Length of `empty`.
    empty_len: u32,
    /// Lowest `full_len` since the last reap.
    full_min: u32,
    /// Lowest `empty_len` since the last reap.
    empty_min: u32,
    /// Exchanges since the last reap.
    ops: u32,
}

// SAFETY: the depot owns the magazines on its lists; it lives inside a lock.
unsafe impl Send for Depot {}

impl Default for Depot {
    fn default() -> Self {
        Self::new()
    }
}

impl Depot {
    /// An empty depot (all-zero).
    pub const fn new() -> Self {
        Depot {
            full: ptr::null_mut(),
            full_len: 0,
            empty: ptr::null_mut(),
            empty_len: 0,
            full_min: 0,
            empty_min: 0,
            ops: 0,
        }
    }

    /// Takes a full magazine, or null.
    pub fn pop_full(&mut self) -> *mut Magazine {
        self.ops = self.ops.wrapping_add(1);
        let m = self.full;
        if !m.is_null() {
            // SAFETY: listed magazines are owned by the depot and valid.
            self.full = unsafe { (*m).next };
            self.full_len -= 1;
            self.full_min = self.full_min.min(self.full_len);
        }
        m
    }

    /// Takes an empty magazine, or null.
    pub fn pop_empty(&mut self) -> *mut Magazine {
        let m = self.empty;
        if !m.is_null() {
            // SAFETY: listed magazines are owned by the depot and valid.
            self.empty = unsafe { (*m).next };
            self.empty_len -= 1;
            self.empty_min = self.empty_min.min(self.empty_len);
        }
        m
    }

    /// Stores a full magazine; gives it back when the depot already holds [`DEPOT_FULL_MAX`].
    ///
    /// # Safety
    /// 1. `m` is a valid magazine owned by the caller; on `Ok` ownership passes to the depot.
    pub unsafe fn push_full(&mut self, m: *mut Magazine) -> Result<(), *mut Magazine> {
        self.ops = self.ops.wrapping_add(1);
        if self.full_len >= DEPOT_FULL_MAX {
            return Err(m);
        }
        // SAFETY: precondition 1.
        unsafe { (*m).next = self.full };
        self.full = m;
        self.full_len += 1;
        Ok(())
    }

    /// Stores an empty magazine; gives it back when the depot already holds [`DEPOT_EMPTY_MAX`].
    ///
    /// # Safety
    /// 1. `m` is a valid magazine owned by the caller; on `Ok` ownership passes to the depot.
    pub unsafe fn push_empty(&mut self, m: *mut Magazine) -> Result<(), *mut Magazine> {
        if self.empty_len >= DEPOT_EMPTY_MAX {
            return Err(m);
        }
        // SAFETY: precondition 1.
        unsafe { (*m).next = self.empty };
        self.empty = m;
        self.empty_len += 1;
        Ok(())
    }

    /// Whether the automatic reap is due.
    pub fn reap_due(&self) -> bool {
        self.ops >= REAP_INTERVAL_OPS
    }

    /// Starts a new interval and returns the magazines unused during the last one: `(full
    /// list, empty list)` linked through `next`, now owned by the caller. With `all`, returns
    /// everything (`trim`).
    pub fn reap(&mut self, all: bool) -> (*mut Magazine, *mut Magazine) {
        let full_n = if all { self.full_len } else { self.full_min };
        let empty_n = if all { self.empty_len } else { self.empty_min };
        let mut full = ptr::null_mut();
        for _ in 0..full_n {
            let m = self.pop_full();
            // SAFETY: `m` is non-null (full_n <= full_len) and now owned here.
            unsafe { (*m).next = full };
            full = m;
        }
        let mut empty = ptr::null_mut();
        for _ in 0..empty_n {
            let m = self.pop_empty();
            // SAFETY: as above.
            unsafe { (*m).next = empty };
            empty = m;
        }
        self.full_min = self.full_len;
        self.empty_min = self.empty_len;
        self.ops = 0;
        (full, empty)
    }

    /// Full magazines held.
    pub fn full_len(&self) -> u32 {
        self.full_len
    }

    /// Empty magazines held.
    pub fn empty_len(&self) -> u32 {
        self.empty_len
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::size_class::MAGAZINE_CAPACITY_MAX;

    fn mag(count: u32) -> *mut Magazine {
        Box::into_raw(Box::new(Magazine {
            count,
            cap: 4,
            next: ptr::null_mut(),
            items: [ptr::null_mut(); MAGAZINE_CAPACITY_MAX],
        }))
    }

    fn chain_len(mut m: *mut Magazine) -> Vec<*mut Magazine> {
        let mut v = Vec::new();
        while !m.is_null() {
            v.push(m);
            // SAFETY: test magazines are live boxes.
            m = unsafe { (*m).next };
        }
        v
    }

    #[test]
    fn depot_refuses_beyond_its_bound() {
        let mut d = Depot::new();
        let mut all = Vec::new();
        for _ in 0..DEPOT_FULL_MAX {
            let m = mag(4);
            all.push(m);
            // SAFETY: fresh box owned by the test.
            unsafe { d.push_full(m).unwrap() };
        }
        let extra = mag(4);
        // SAFETY: as above.
        assert_eq!(unsafe { d.push_full(extra) }, Err(extra));
        all.push(extra);
        assert_eq!(d.full_len(), DEPOT_FULL_MAX);
        let (full, _) = d.reap(true);
        assert_eq!(chain_len(full).len(), DEPOT_FULL_MAX as usize);
        for m in all {
            // SAFETY: every box is freed once.
            drop(unsafe { Box::from_raw(m) });
        }
    }

    #[test]
    fn reap_returns_only_what_sat_unused() {
        let mut d = Depot::new();
        let ms: Vec<_> = (0..6).map(|_| mag(4)).collect();
        for &m in &ms {
            // SAFETY: fresh boxes.
            unsafe { d.push_full(m).unwrap() };
        }
        // First interval starts now: 6 full.
        let (f, e) = d.reap(false);
        assert!(
            f.is_null() && e.is_null(),
            "nothing sat unused before the interval began"
        );
        // During the interval, the list dips to 4 and recovers to 6.
        let a = d.pop_full();
        let b = d.pop_full();
        // SAFETY: magazines from the depot go back.
        unsafe {
            d.push_full(a).unwrap();
            d.push_full(b).unwrap();
        }
        let (f, _) = d.reap(false);
        let got = chain_len(f);
        assert_eq!(
            got.len(),
            4,
            "four magazines sat in the depot the whole interval"
        );
        assert_eq!(d.full_len(), 2);
        let (rest, _) = d.reap(true);
        assert_eq!(chain_len(rest).len(), 2);
        for m in ms {
            // SAFETY: every box freed once.
            drop(unsafe { Box::from_raw(m) });
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::thread;
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::size_class::MAGAZINE_CAPACITY_MAX;
    use crate::sync::SpinLock;

    fn mag(items: &[usize]) -> usize {
        let mut m = Box::new(Magazine {
            count: items.len() as u32,
            cap: 2,
            next: ptr::null_mut(),
            items: [ptr::null_mut(); MAGAZINE_CAPACITY_MAX],
        });
        for (i, &x) in items.iter().enumerate() {
            m.items[i] = x as *mut u8;
        }
        Box::into_raw(m) as usize
    }

    /// An allocating cache (trades its empty magazine for a full one) and a freeing cache
    /// (trades its full magazine for an empty one) meet at one depot under its lock: no
    /// magazine is lost or owned twice, and every block stays in exactly one magazine.
    #[test]
    fn loom_depot_exchange_conserves_magazines_and_blocks() {
        loom::model(|| {
            let depot = Arc::new(SpinLock::new(Depot::new()));
            let seeded = mag(&[1, 2]);
            // SAFETY: a fresh magazine handed to the depot.
            depot.with(|d| unsafe { d.push_full(seeded as *mut Magazine).unwrap() });
            let alloc_side = {
                let depot = depot.clone();
                let mine = mag(&[]);
                thread::spawn(move || {
                    depot.with(|d| {
                        let full = d.pop_full();
                        // SAFETY: our empty magazine goes to the depot.
                        unsafe { d.push_empty(mine as *mut Magazine).unwrap() };
                        full as usize
                    })
                })
            };
            let free_side = {
                let depot = depot.clone();
                let mine = mag(&[3, 4]);
                thread::spawn(move || {
                    depot.with(|d| {
                        // SAFETY: our full magazine goes to the depot.
                        unsafe { d.push_full(mine as *mut Magazine).unwrap() };
                        d.pop_empty() as usize
                    })
                })
            };
            let got_full = alloc_side.join().unwrap();
            let got_empty = free_side.join().unwrap();
            let (rest_full, rest_empty) = depot.with(|d| d.reap(true));
            let mut owned: Vec<usize> = Vec::new();
            let mut blocks: Vec<usize> = Vec::new();
            let mut visit = |m: usize, owned: &mut Vec<usize>| {
                if m == 0 {
                    return;
                }
                owned.push(m);
                // SAFETY: magazines built above, alive until the end of the model.
                let mm = unsafe { &*(m as *const Magazine) };
                blocks.extend(mm.items[..mm.count as usize].iter().map(|&p| p as usize));
            };
            visit(got_full, &mut owned);
            visit(got_empty, &mut owned);
            for head in [rest_full, rest_empty] {
                let mut m = head;
                while !m.is_null() {
                    visit(m as usize, &mut owned);
                    // SAFETY: as above.
                    m = unsafe { (*m).next };
                }
            }
            assert!(
                got_full != 0,
                "the allocating side always finds a full magazine"
            );
            owned.sort_unstable();
            owned.dedup();
            assert_eq!(
                owned.len(),
                3,
                "three distinct magazines, none lost or duplicated"
            );
            blocks.sort_unstable();
            assert_eq!(blocks, [1, 2, 3, 4], "every block in exactly one magazine");
            for m in owned {
                // SAFETY: each box freed once.
                drop(unsafe { Box::from_raw(m as *mut Magazine) });
            }
        });
    }
}
