//! A slab's thread-free list: blocks of an owned slab freed by caches other than its owner.
//!
//! Slabs of the small classes ([`owned`](crate::owned)) are owned by one cache at a time. The
//! owner pops and pushes the slab's private free list without a lock; every other cache that
//! frees one of its blocks pushes the block here instead, with one compare-and-swap, and the
//! owner takes the whole list back with one `swap` when its private list runs dry. So a block
//! never goes to a cache other than its slab's owner, and two caches never hand out blocks of
//! one cache line (the passive false sharing of Berger et al., Hoard, ASPLOS 2000).
//!
//! The list head carries one tag bit, [`OPEN`]: set while the slab is owned. A push onto a
//! closed list fails and the pusher keeps its block (the slab is shared by then, so the
//! block may go to the pusher's own magazine). Protocol, step by step:
//! 1. owner, when it adopts the slab (under the class lock): `head = OPEN` (empty, open);
//! 2. pusher: `h = head.load(Relaxed)`; if `h` lacks `OPEN`, fail; store `h`'s pointer into
//!    `last`'s link; `CAS(head, h, first | OPEN, Release)`; on failure retry from the check
//!    (lock-free: a retry means another push or a take won);
//! 3. owner, to collect: `list = head.swap(OPEN, Acquire)` (the Acquire pairs with each
//!    push's Release, so the links are visible); the list stays open;
//! 4. owner, when it gives the slab up (under the class lock): `list = head.swap(0,
//!    Acquire)`: the pending blocks are the owner's, and every later push fails.
//!
//! Pushers never read a link another thread may change (they only link to the head they
//! saw), and consumers take everything at once, so there is no ABA problem. Checked by the
//! loom model `loom_thread_frees_arrive_exactly_once_or_bounce`.

use core::ptr;

use crate::remote_free::set_next;
use crate::sync::{AtomicPtr, Ordering};

/// Tag bit of the head: the slab is owned and accepts pushes. Blocks are 8-aligned, so bit 0
/// of a block address is free.
pub const OPEN: usize = 1;

/// A slab's list of blocks freed by other caches. All-zero is a closed, empty list.
#[derive(Debug)]
pub struct ThreadFree {
    /// Top of the stack, tagged with [`OPEN`] while the slab is owned. Pushed by any cache
    /// (CAS); opened, taken and closed by the owning cache (store, swap).
    head: AtomicPtr<u8>,
}

fn untag(p: *mut u8) -> *mut u8 {
    p.map_addr(|a| a & !OPEN)
}

fn open_empty() -> *mut u8 {
    ptr::null_mut::<u8>().map_addr(|_| OPEN)
}

impl ThreadFree {
    /// A closed, empty list (all-zero).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        ThreadFree {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A closed, empty list.
    #[cfg(loom)]
    pub fn new() -> Self {
        ThreadFree {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Step 1: the new owner opens the list. It must be closed and empty (a shared slab's).
    pub fn open(&self) {
        debug_assert!(self.head.load(Ordering::Relaxed).is_null());
        self.head.store(open_empty(), Ordering::Relaxed);
    }

    /// Whether the list accepts pushes (a hint for everyone but the owner).
    pub fn is_open(&self) -> bool {
        self.head.load(Ordering::Relaxed).addr() & OPEN != 0
    }

    /// Step 2: pushes the chain `first ..= last` (linked through each block's first word).
    /// Returns `false`, with the chain still the caller's, when the list is closed; `last`'s
    /// link is then null (an attempt that lost a race had pointed it into the list, and a
    /// caller walking its bounced chain must not follow it there).
    ///
    /// # Safety
    /// 1. The chain is well formed and owned by the caller; on success ownership passes to
    ///    the list.
    pub unsafe fn push_chain(&self, first: *mut u8, last: *mut u8) -> bool {
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            if h.addr() & OPEN == 0 {
                // SAFETY: precondition 1: `last` is still ours.
                unsafe { set_next(last, ptr::null_mut()) };
                return false;
            }
            // SAFETY: precondition 1: `last` is ours until the CAS below publishes it.
            unsafe { set_next(last, untag(h)) };
            match self.head.compare_exchange_weak(
                h,
                first.map_addr(|a| a | OPEN),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => h = now,
            }
        }
    }

    /// Step 3 (owner only): takes every pushed block, a null-terminated chain now owned by the
    /// caller; the list stays open.
    pub fn take(&self) -> *mut u8 {
        if untag(self.head.load(Ordering::Relaxed)).is_null() {
            return ptr::null_mut();
        }
        untag(self.head.swap(open_empty(), Ordering::Acquire))
    }

    /// Step 4 (owner only, giving the slab up): closes the list and returns what was pending.
    pub fn close(&self) -> *mut u8 {
        untag(self.head.swap(ptr::null_mut(), Ordering::Acquire))
    }
}

#[cfg(not(loom))]
impl Default for ThreadFree {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::remote_free::next_of;

    fn chain(mut p: *mut u8) -> Vec<usize> {
        let mut out = Vec::new();
        while !p.is_null() {
            out.push(p.addr());
            // SAFETY: chains taken from the list are well formed.
            p = unsafe { next_of(p) };
        }
        out
    }

    #[test]
    fn closed_list_bounces_pushes_and_open_list_keeps_them() {
        let blocks: Vec<*mut u8> = (0..3)
            .map(|_| Box::into_raw(Box::new(0usize)).cast::<u8>())
            .collect();
        let tf = ThreadFree::new();
        // SAFETY: our blocks.
        assert!(!unsafe { tf.push_chain(blocks[0], blocks[0]) }, "closed");
        tf.open();
        assert!(tf.is_open());
        // SAFETY: as above.
        unsafe {
            assert!(tf.push_chain(blocks[0], blocks[0]));
            assert!(tf.push_chain(blocks[1], blocks[1]));
        }
        assert_eq!(chain(tf.take()), [blocks[1].addr(), blocks[0].addr()]);
        assert!(tf.is_open() && tf.take().is_null());
        // SAFETY: as above.
        unsafe { assert!(tf.push_chain(blocks[2], blocks[2])) };
        assert_eq!(chain(tf.close()), [blocks[2].addr()]);
        assert!(!tf.is_open());
        // SAFETY: as above.
        assert!(!unsafe { tf.push_chain(blocks[0], blocks[0]) });
        for b in blocks {
            // SAFETY: each box freed once.
            drop(unsafe { Box::from_raw(b.cast::<usize>()) });
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
    use crate::remote_free::{LoomLink, next_of};

    /// Two caches free one block each into an owned slab while its owner takes the list and
    /// then gives the slab up: every block is either collected by the owner exactly once
    /// (through `take` or `close`) or bounced back to its pusher, never lost, never twice;
    /// nothing is accepted after the close; a bounced chain does not lead into the list
    /// (found by the benchmark: a bounced batch walked into the owner's blocks and freed
    /// them twice).
    #[test]
    fn loom_thread_frees_arrive_exactly_once_or_bounce() {
        loom::model(|| {
            let tf = Arc::new(ThreadFree::new());
            tf.open();
            let blocks: Vec<usize> = (0..2)
                .map(|_| Box::into_raw(Box::new(LoomLink::new(ptr::null_mut()))) as usize)
                .collect();
            let pushers: Vec<_> = blocks
                .iter()
                .map(|&b| {
                    let tf = tf.clone();
                    thread::spawn(move || {
                        // SAFETY: the thread owns its block.
                        let ok = unsafe { tf.push_chain(b as *mut u8, b as *mut u8) };
                        if !ok {
                            // A bounced chain ends where it ended: an attempt that lost a race
                            // to the close had linked it to the list's blocks.
                            // SAFETY: the block is still ours.
                            assert!(
                                unsafe { next_of(b as *mut u8) }.is_null(),
                                "a bounced chain leads into the list"
                            );
                        }
                        (!ok).then_some(b)
                    })
                })
                .collect();
            let walk = |mut p: *mut u8, got: &mut Vec<usize>| {
                while !p.is_null() {
                    got.push(p as usize);
                    // SAFETY: chains taken from the list are well formed.
                    p = unsafe { next_of(p) };
                }
            };
            let mut got = Vec::new();
            // Let the pushers run first in some schedules (see the remote-free model).
            thread::yield_now();
            walk(tf.take(), &mut got);
            walk(tf.close(), &mut got);
            for p in pushers {
                if let Some(b) = p.join().unwrap() {
                    got.push(b);
                }
            }
            assert!(tf.close().is_null(), "a push landed on a closed list");
            got.sort_unstable();
            let mut want = blocks.clone();
            want.sort_unstable();
            assert_eq!(got, want, "every block collected or bounced exactly once");
            for b in blocks {
                // SAFETY: each box freed once.
                drop(unsafe { Box::from_raw(b as *mut LoomLink) });
            }
        });
    }
}
