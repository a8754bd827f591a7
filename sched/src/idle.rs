//! The idle protocol: who may search for work, who sleeps, and who wakes whom.
//!
//! - **Searchers are bounded per node** (`searchers_max[node]`), so when a burst of work appears
//!   on a 512-CPU machine a few CPUs per node look for it instead of all of them at once.
//! - **Sleepers are bits** in one bitmap per node (indexed by the CPU's position in its node), so
//!   finding one to wake costs a few word loads, not a scan of every CPU.
//! - **Waking claims the bit** (`fetch_and`), so two wakers never both unpark the same sleeper
//!   while another sleeps on.
//!
//! # No lost wakeups
//! A CPU going to sleep *announces* (sets its bit, SeqCst), issues a SeqCst fence, *re-checks*
//! the queues, and only then parks. A CPU that queues work issues a SeqCst fence after the push,
//! then reads the searcher count and the bitmaps. By the fences' total order, either the sleeper's
//! re-check sees the work, or the pusher sees the sleeper's bit (and claims and unparks it). The
//! platform's `park` has token semantics, so an unpark that lands before the park is not lost.
//! The loom model `park_unpark_no_lost_wakeup` checks this protocol.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Searcher counts and sleeper bitmaps for every node.
pub struct Idle {
    /// Per node: CPUs currently searching (stealing) for work.
    searching: Box<[AtomicUsize]>,
    /// Searchers over all nodes.
    searching_total: AtomicUsize,
    /// Per node: the most CPUs allowed to search at once.
    searchers_max: Box<[usize]>,
    /// Per node: sleeper bitmap words; bit `i` is the node's `i`-th CPU.
    sleepers: Box<[Box<[AtomicU64]>]>,
    /// Per node: its CPUs (logical ids), in bitmap order.
    node_cpus: Box<[Box<[usize]>]>,
    /// Per CPU: (node, position in the node).
    position: Box<[(usize, usize)]>,
    /// Announced sleepers over all nodes (Go's `npidle`): incremented after a CPU sets its
    /// bit, decremented by whoever clears it. Zero means no CPU announced sleep before the
    /// reader's fence, so a waker skips the bitmaps (a busy machine: every push asked every
    /// node's bitmap before). Transiently above the true count, or wrapped below zero when a
    /// claim lands between a sleeper's bit and its increment; either reads as "maybe", which
    /// is safe.
    sleeping_total: AtomicUsize,
}

impl Idle {
    /// Builds the tables from each node's CPU list.
    pub fn new(node_cpus: Vec<Vec<usize>>, num_cpus: usize, searchers_per_node_max: usize) -> Idle {
        let mut position = alloc::vec![(0, 0); num_cpus];
        for (node, cpus) in node_cpus.iter().enumerate() {
            for (i, &c) in cpus.iter().enumerate() {
                position[c] = (node, i);
            }
        }
        Idle {
            searching: node_cpus.iter().map(|_| AtomicUsize::new(0)).collect(),
            searching_total: AtomicUsize::new(0),
            searchers_max: node_cpus
                .iter()
                .map(|c| (c.len() / 2).clamp(1, searchers_per_node_max.max(1)))
                .collect(),
            sleepers: node_cpus
                .iter()
                .map(|c| {
                    (0..c.len().div_ceil(64))
                        .map(|_| AtomicU64::new(0))
                        .collect()
                })
                .collect(),
            node_cpus: node_cpus.into_iter().map(Vec::into_boxed_slice).collect(),
            position: position.into_boxed_slice(),
            sleeping_total: AtomicUsize::new(0),
        }
    }

    /// Tries to become a searcher of `cpu`'s node; false when the node has enough searchers.
    pub fn begin_search(&self, cpu: usize) -> bool {
        let node = self.position[cpu].0;
        let max = self.searchers_max[node];
        let counter = &self.searching[node];
        let mut n = counter.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return false;
            }
            match counter.compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => {
                    self.searching_total.fetch_add(1, Ordering::SeqCst);
                    return true;
                }
                Err(actual) => n = actual,
            }
        }
    }

    /// Stops searching; returns true when `cpu` was the machine's last searcher.
    pub fn end_search(&self, cpu: usize) -> bool {
        let node = self.position[cpu].0;
        self.searching[node].fetch_sub(1, Ordering::SeqCst);
        self.searching_total.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Searchers on `node`.
    pub fn searching(&self, node: usize) -> usize {
        self.searching[node].load(Ordering::SeqCst)
    }

    /// Searchers on all nodes.
    pub fn searching_total(&self) -> usize {
        self.searching_total.load(Ordering::SeqCst)
    }

    /// Announces that `cpu` is about to sleep.
    pub fn announce_sleep(&self, cpu: usize) {
        let (node, i) = self.position[cpu];
        let bit = 1 << (i % 64);
        // After the bit (see `sleeping_total`): the caller's fence comes after both. Counted
        // once per bit set, as clears are counted once per bit cleared.
        if self.sleepers[node][i / 64].fetch_or(bit, Ordering::SeqCst) & bit == 0 {
            self.sleeping_total.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Clears `cpu`'s sleeper bit; true if it was still set (nobody claimed it).
    pub fn cancel_sleep(&self, cpu: usize) -> bool {
        let (node, i) = self.position[cpu];
        let bit = 1 << (i % 64);
        let was = self.sleepers[node][i / 64].fetch_and(!bit, Ordering::SeqCst) & bit != 0;
        if was {
            self.sleeping_total.fetch_sub(1, Ordering::SeqCst);
        }
        was
    }

    /// Whether any CPU may be announced asleep (see `sleeping_total`): `false` only when no
    /// CPU announced sleep before the caller's last SeqCst fence and stayed announced.
    #[inline]
    pub fn maybe_sleepers(&self) -> bool {
        self.sleeping_total.load(Ordering::SeqCst) != 0
    }

    /// Whether `cpu` is announced asleep (a snapshot).
    pub fn is_sleeping(&self, cpu: usize) -> bool {
        let (node, i) = self.position[cpu];
        self.sleepers[node][i / 64].load(Ordering::SeqCst) & (1 << (i % 64)) != 0
    }

    /// Claims `cpu` if it sleeps: the caller then owns waking it.
    pub fn claim(&self, cpu: usize) -> bool {
        self.cancel_sleep(cpu)
    }

    /// Claims one sleeper of `node` (lowest position first), if any.
    pub fn claim_any(&self, node: usize) -> Option<usize> {
        for (w, word) in self.sleepers[node].iter().enumerate() {
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                let bit = 1u64 << b;
                if word.fetch_and(!bit, Ordering::SeqCst) & bit != 0 {
                    self.sleeping_total.fetch_sub(1, Ordering::SeqCst);
                    return Some(self.node_cpus[node][w * 64 + b]);
                }
                bits &= !bit;
            }
        }
        None
    }

    /// Claims a sleeper among `cpus` (e.g. an LLC's CPUs), if any.
    pub fn claim_among(&self, cpus: &[usize]) -> Option<usize> {
        cpus.iter()
            .copied()
            .find(|&c| self.is_sleeping(c) && self.claim(c))
    }

    /// Whether any CPU of `node` is announced asleep (a snapshot; stops at the first non-zero
    /// word, for callers that need no count).
    pub fn has_sleepers(&self, node: usize) -> bool {
        self.sleepers[node]
            .iter()
            .any(|w| w.load(Ordering::Relaxed) != 0)
    }

    /// Number of sleeping CPUs on `node` (a snapshot).
    pub fn sleepers(&self, node: usize) -> usize {
        self.sleepers[node]
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// The node of a CPU.
    pub fn node_of(&self, cpu: usize) -> usize {
        self.position[cpu].0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn searchers_are_bounded_per_node() {
        let idle = Idle::new(vec![(0..16).collect(), (16..32).collect()], 32, 4);
        let admitted = (0..16).filter(|&c| idle.begin_search(c)).count();
        assert_eq!(admitted, 4, "a node of 16 CPUs admits 4 searchers");
        assert!(idle.begin_search(16), "the other node has its own budget");
        assert_eq!(idle.searching_total(), 5);
        for c in 0..3 {
            assert!(!idle.end_search(c));
        }
        assert!(!idle.end_search(3));
        assert!(idle.end_search(16), "the last searcher knows it");
    }

    #[test]
    fn sleepers_are_claimed_once() {
        let idle = Idle::new(vec![(0..100).collect()], 100, 4);
        idle.announce_sleep(70);
        idle.announce_sleep(5);
        assert_eq!(idle.sleepers(0), 2);
        assert!(idle.has_sleepers(0));
        assert_eq!(idle.claim_any(0), Some(5));
        assert!(!idle.claim(5), "already claimed");
        assert_eq!(idle.claim_among(&[69, 70, 71]), Some(70));
        assert_eq!(idle.claim_any(0), None);
        assert!(!idle.has_sleepers(0), "every sleeper was claimed");
        idle.announce_sleep(9);
        assert!(idle.cancel_sleep(9));
        assert!(!idle.is_sleeping(9));
    }

    #[test]
    fn sleeper_count_follows_the_bits_through_announce_claim_and_cancel() {
        let idle = Idle::new(vec![(0..70).collect(), (70..140).collect()], 140, 4);
        assert!(!idle.maybe_sleepers(), "nobody announced");
        idle.announce_sleep(3);
        idle.announce_sleep(3);
        idle.announce_sleep(100);
        assert!(idle.maybe_sleepers());
        assert_eq!(idle.claim_any(1), Some(100));
        assert!(idle.maybe_sleepers(), "CPU 3 still sleeps");
        assert!(
            !idle.cancel_sleep(100),
            "already claimed: not counted twice"
        );
        assert!(idle.cancel_sleep(3));
        assert!(
            !idle.maybe_sleepers(),
            "a repeated announce counts once, so the count returns to zero"
        );
        idle.announce_sleep(69);
        assert_eq!(idle.claim_among(&[68, 69]), Some(69));
        assert!(!idle.maybe_sleepers());
    }
}
