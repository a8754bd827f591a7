//! The work summary: one bit per CPU saying "this CPU's ring, inbox or next slot may hold a
//! task", so a thief aims at loaded CPUs instead of probing empty ones, and a CPU about to sleep
//! re-checks the machine in O(P/64 + loaded CPUs) instead of O(P).
//!
//! Bit `c` of word `c / 64` is logical CPU `c` (NUMA nodes are usually ranges of CPU ids, so a
//! word mostly covers one node's CPUs). The bit is a *superset* hint: set whenever the CPU's
//! queues hold work (see the protocol for the one bounded exception), possibly set while they are
//! empty (then a thief that probes in vain clears it).
//!
//! # Protocol
//! - **Advertise** (whoever puts a task in CPU `c`'s ring, inbox or next slot, after publishing
//!   it): a Relaxed load of the word first; only if `c`'s bit is clear, a `fetch_or` and a
//!   SeqCst fence. The owner thus writes the shared word (and fences) only on the empty ->
//!   loaded transition as the summary sees it.
//! - **Retract** (a thief that found `c`'s ring, inbox and next slot empty, the owner before
//!   it searches, or a CPU about to sleep whose re-check finds `c` empty): `fetch_and` the bit
//!   off, a SeqCst fence, then *re-probe* `c`'s queues; if anything is there, advertise again
//!   (and wake a sleeper of `c`'s node; a CPU re-checking before it sleeps then stays up).
//! - **Ordering.** A push that wakes someone (`push_local`, `place_on`, ring overflow; the
//!   scheduler's `notify` path) issues a SeqCst fence between publishing the task and the
//!   Relaxed load of the bit. Against a retract (RMW, fence, re-probe) that is Dekker's pattern:
//!   either the pusher's load sees the bit cleared (and sets it), or the retracting CPU's
//!   re-probe sees the task (and sets it). So after both, the bit is set: published work is never
//!   left unadvertised. A CPU going to sleep announces itself, fences, and reads the summary;
//!   whoever sets the bit fences and then reads the sleeper bitmaps, so either the sleeper's
//!   re-check sees the bit, or the setter sees the sleeper. The pusher then wakes it as before
//!   (unless a searcher is under way, which ends its search before it sleeps and re-checks the
//!   summary itself); a retracting CPU whose re-probe found work wakes one sleeper of that CPU's
//!   node whatever the searcher count, because a CPU may have re-checked while the bit was clear
//!   (the loom model `summary_no_lost_wakeup` in `scheduler.rs` checks this with a racing
//!   thief; it found that last case).
//! - **The bounded exception.** Pushes that wake nobody (a yield's requeue, the owner refilling
//!   its ring from its inbox or injector, a woken task put in the waker's next slot) advertise
//!   without the fence: a retract racing with them may leave the task unadvertised. The owner is
//!   running then and re-asserts its bit for a non-empty ring at its next scheduling decision
//!   (`Scheduler::took`), and a task in its next slot is what that decision runs, so such a task
//!   is hidden from thieves for at most the rest of the owner's current task, the same bound as
//!   before the summary existed (those pushes never woke anyone).

//!
//! # Backlog bits
//! A second bit per CPU, kept by schedulers of aiming policies: the CPU may hold what a thief
//! of another node takes, that is the policy's remote minimum in its ring and inbox, or a task
//! in its next slot (taken across nodes after its grace period). Aiming searches read them for
//! remote tiers, and a CPU about to sleep reads them for other nodes' CPUs, so neither visits
//! a remote CPU holding one queued task (on a loaded 1024-CPU server, most of the set work
//! bits). The bit is set after the push that makes the backlog, like the work bit, and cleared
//! with the same retract / re-probe by a thief or sleeper that finds less. It is a hint for
//! another node's help, not part of the wake-up protocol: a lost bit leaves the backlog to its
//! own node's CPUs (its owner runs its own queues), as a young backlog is left anyway.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use manycore_topology::Topology;

use crate::sync::{AtomicU64, Ordering, fence};

/// One bit per CPU: its queues may hold stealable work.
pub struct WorkSummary {
    /// Bit `c % 64` of word `c / 64`: CPU `c` may hold work. Set by whoever queues work on `c`;
    /// cleared by thieves (and `c` itself) that found it empty, with a re-probe.
    words: Box<[AtomicU64]>,
    /// The backlog bits, same layout: CPU `c` may hold what a thief of *another node* takes
    /// (an aiming policy's remote minimum in its ring and inbox, or a task in its next slot).
    /// Maintained only by schedulers of aiming policies; see "Backlog bits" in the module doc.
    backlog: Box<[AtomicU64]>,
    cpus: usize,
    /// Each CPU's steal tiers as bit masks (built once, read-only after), so a search finds the
    /// loaded CPUs of a tier by AND-ing words instead of testing its CPUs one by one. Boxed:
    /// one pointer in the summary, so the scheduler's hot fields keep their layout.
    tiers: Box<TierMasks>,
    /// Per node: its CPUs as a mask of `words.len()` words, row after row ([`WorkSummary::with_tiers`]
    /// only; empty otherwise).
    node_masks: Box<[u64]>,
}

/// Which bits a scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bits {
    /// The work bits: the CPU's queues may hold a task.
    Loaded,
    /// The backlog bits: the CPU may hold what a thief of another node takes.
    Backlog,
}

/// Per (CPU, steal tier): the tier's CPUs as a sparse mask (the summary words holding any of
/// them, each with the tier's bits in it), when the tier's CPU list is sorted by id (a mask scan
/// then visits them in the list's order). A local tier's CPUs fit in a word or two of a
/// 1024-CPU machine's sixteen, a remote tier's in its nodes' words, so a scan reads only those.
/// Tiers share masks as they share CPU lists in the topology. Read-only after construction.
#[derive(Default)]
struct TierMasks {
    /// Per CPU: index in `mask_of` of its first tier.
    first: Box<[u32]>,
    /// Per (CPU, tier): the tier's mask as its first entry in `entries` and its number of
    /// entries, or `(u32::MAX, 0)` (no mask: the list is not sorted by id up to a rotation, or
    /// names a CPU out of range).
    mask_of: Box<[(u32, u32)]>,
    /// `(word index, bits)` with at least one bit set, by increasing word index per mask.
    entries: Box<[(u32, u64)]>,
}

/// One steal tier as a sparse mask of CPU bits (see [`WorkSummary::tier_mask`]): the summary
/// words holding its CPUs, by increasing index, each with the tier's bits in it.
#[derive(Clone, Copy, Debug)]
pub struct TierMask<'a> {
    entries: &'a [(u32, u64)],
}

/// `mask_of` entry of a tier with no mask.
const NO_MASK: u32 = u32::MAX;

/// Whether `list` is strictly increasing up to a rotation: at most one descent, and then its
/// last id below its first.
fn cyclically_sorted(list: &[u32]) -> bool {
    let descents = list.windows(2).filter(|w| w[0] >= w[1]).count();
    match (descents, list.first(), list.last()) {
        (0, _, _) => true,
        (1, Some(first), Some(last)) => last < first,
        _ => false,
    }
}

impl WorkSummary {
    /// A summary for `cpus` CPUs, all clear.
    pub fn new(cpus: usize) -> WorkSummary {
        WorkSummary {
            words: (0..cpus.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            backlog: (0..cpus.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            cpus,
            tiers: Box::default(),
            node_masks: Box::default(),
        }
    }

    /// A summary for `topo`'s CPUs, all clear, with each CPU's steal tiers as masks (see
    /// [`WorkSummary::tier_mask`]).
    pub fn with_tiers(topo: &Topology) -> WorkSummary {
        let cpus = topo.num_cpus();
        let mut first = Vec::with_capacity(cpus);
        let mut mask_of = Vec::new();
        let mut entries: Vec<(u32, u64)> = Vec::new();
        // Tiers sharing one CPU list (same address and length) share its mask.
        let mut seen: BTreeMap<(usize, usize), (u32, u32)> = BTreeMap::new();
        for cpu in 0..cpus {
            first.push(mask_of.len() as u32);
            for tier in topo.steal_order(cpu).iter() {
                let list = tier.cpus;
                let key = (list.as_ptr() as usize, list.len());
                let id = *seen.entry(key).or_insert_with(|| {
                    if !cyclically_sorted(list) || list.iter().any(|&c| c as usize >= cpus) {
                        return (NO_MASK, 0);
                    }
                    let start = entries.len();
                    // Entries must come out by increasing word: walk the list from its
                    // smallest id (CPUs of one word are then adjacent).
                    let low = list
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, &c)| c)
                        .map_or(0, |(i, _)| i);
                    let (tail, head) = list.split_at(low);
                    for &c in head.iter().chain(tail) {
                        let (w, bit) = (c / 64, 1u64 << (c % 64));
                        let fresh = entries.len() == start;
                        match entries.last_mut() {
                            Some(e) if !fresh && e.0 == w => e.1 |= bit,
                            _ => entries.push((w, bit)),
                        }
                    }
                    (start as u32, (entries.len() - start) as u32)
                });
                mask_of.push(id);
            }
        }
        let mut s = WorkSummary::new(cpus);
        let words = s.words.len();
        let mut node_masks = alloc::vec![0u64; topo.num_nodes() * words];
        for cpu in 0..cpus {
            let node = topo.node_of(cpu);
            node_masks[node * words + cpu / 64] |= 1 << (cpu % 64);
        }
        s.node_masks = node_masks.into();
        s.tiers = Box::new(TierMasks {
            first: first.into(),
            mask_of: mask_of.into(),
            entries: entries.into(),
        });
        s
    }

    /// Tier `tier` of `cpu`'s steal order (`Topology::steal_order`) as a mask of CPU bits, if
    /// the summary was built [`WorkSummary::with_tiers`] and the tier's CPU list is sorted by id
    /// up to a rotation (an LLC's list starts after the thief's own core and wraps around):
    /// walking such a list from any index visits its CPUs in increasing id order from there,
    /// wrapping to the smallest, which is what a mask scan from that CPU does.
    #[inline]
    pub fn tier_mask(&self, cpu: usize, tier: usize) -> Option<TierMask<'_>> {
        let t = self.tiers.first.get(cpu).map(|&f| f as usize + tier)?;
        let (start, len) = *self.tiers.mask_of.get(t)?;
        if start == NO_MASK {
            return None;
        }
        Some(TierMask {
            entries: self
                .tiers
                .entries
                .get(start as usize..(start + len) as usize)?,
        })
    }

    /// The lowest CPU id `>= from` whose bit is set in both the summary and `mask` (a mask of
    /// [`WorkSummary::tier_mask`]), if any (a snapshot, no wrap-around). Reads only the
    /// summary words the mask names.
    #[inline]
    pub fn next_loaded_in(&self, from: usize, mask: TierMask<'_>, which: Bits) -> Option<usize> {
        let words = self.bits(which);
        let fw = from / 64;
        for &(w, m) in mask.entries {
            let w = w as usize;
            if w < fw {
                continue;
            }
            let mut bits = words.get(w)?.load(Ordering::Relaxed) & m;
            if w == fw {
                bits &= !0u64 << (from % 64);
            }
            if bits != 0 {
                let c = w * 64 + bits.trailing_zeros() as usize;
                return (c < self.cpus).then_some(c);
            }
        }
        None
    }

    /// Whether any CPU of `mask` has its bit set (a snapshot of the words it names).
    #[inline]
    pub fn any_in(&self, mask: TierMask<'_>, which: Bits) -> bool {
        let words = self.bits(which);
        mask.entries.iter().any(|&(w, m)| {
            words
                .get(w as usize)
                .is_some_and(|a| a.load(Ordering::Relaxed) & m != 0)
        })
    }

    /// Number of CPUs covered.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    #[inline]
    fn bits(&self, which: Bits) -> &[AtomicU64] {
        match which {
            Bits::Loaded => &self.words,
            Bits::Backlog => &self.backlog,
        }
    }

    /// Whether `cpu` may hold work (a Relaxed snapshot; `false` for CPUs out of range).
    #[inline]
    pub fn may_hold(&self, cpu: usize) -> bool {
        self.may_hold_in(cpu, Bits::Loaded)
    }

    /// Whether `cpu`'s bit of `which` is set (a Relaxed snapshot; `false` out of range).
    #[inline]
    pub fn may_hold_in(&self, cpu: usize, which: Bits) -> bool {
        self.bits(which)
            .get(cpu / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (cpu % 64)) != 0)
    }

    /// The lowest CPU id `>= from` whose bit of `which` is set, if any (a snapshot, no
    /// wrap-around).
    #[inline]
    pub fn next_loaded(&self, from: usize, which: Bits) -> Option<usize> {
        let words = self.bits(which);
        let mut w = from / 64;
        let mut bits = words.get(w)?.load(Ordering::Relaxed) & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                let c = w * 64 + bits.trailing_zeros() as usize;
                return (c < self.cpus).then_some(c);
            }
            w += 1;
            bits = words.get(w)?.load(Ordering::Relaxed);
        }
    }

    /// Calls `f(cpu)` for each CPU whose bit is set, in increasing order (each word read once,
    /// a snapshot), until `f` returns `true`; returns whether it did.
    #[inline]
    pub fn any_loaded(&self, mut f: impl FnMut(usize) -> bool) -> bool {
        self.words
            .iter()
            .enumerate()
            .any(|(w, word)| self.visit_bits(w, word.load(Ordering::Relaxed), &mut f))
    }

    /// [`WorkSummary::any_loaded`] as a CPU of `node` sees it: the work bits of `node`'s CPUs
    /// and the backlog bits of every other CPU (what an aiming thief of `node` may take), each
    /// word of both read once. Without node masks (a summary built by [`WorkSummary::new`]),
    /// the work bits of every CPU.
    #[inline]
    pub fn any_loaded_near(&self, node: usize, mut f: impl FnMut(usize) -> bool) -> bool {
        let n = self.words.len();
        let Some(near) = self.node_masks.get(node * n..(node + 1) * n) else {
            return self.any_loaded(f);
        };
        self.words
            .iter()
            .zip(self.backlog.iter())
            .zip(near)
            .enumerate()
            .any(|(w, ((word, back), &m))| {
                let bits = (word.load(Ordering::Relaxed) & m) | (back.load(Ordering::Relaxed) & !m);
                self.visit_bits(w, bits, &mut f)
            })
    }

    /// Calls `f(cpu)` for the CPUs of word `w` set in `bits`, lowest first, until it returns
    /// `true`; returns whether it did.
    #[inline(always)]
    fn visit_bits(&self, w: usize, mut bits: u64, f: &mut impl FnMut(usize) -> bool) -> bool {
        while bits != 0 {
            let c = w * 64 + bits.trailing_zeros() as usize;
            if c < self.cpus && f(c) {
                return true;
            }
            bits &= bits - 1;
        }
        false
    }

    /// Whether any bit is set (a snapshot).
    pub fn any(&self) -> bool {
        self.words.iter().any(|w| w.load(Ordering::Relaxed) != 0)
    }

    /// The word holding `cpu`'s bit (bit `cpu % 64`), for an owner that checks its own bit
    /// on a hot path with one load. Panics if `cpu` is out of range.
    pub(crate) fn word_of(&self, cpu: usize) -> &AtomicU64 {
        &self.words[cpu / 64]
    }

    /// Sets `cpu`'s bit if it reads clear (a Relaxed load first: the word is written only on a
    /// transition), then fences, so the caller's following reads of the sleeper bitmaps and
    /// searcher counts are ordered after the set (the protocol is argued with SeqCst fences
    /// only, which is also what loom models). The caller published the work before; see the
    /// module doc for when it must fence first.
    #[inline]
    pub(crate) fn advertise(&self, cpu: usize) {
        let w = &self.words[cpu / 64];
        let bit = 1u64 << (cpu % 64);
        if w.load(Ordering::Relaxed) & bit == 0 {
            w.fetch_or(bit, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
    }

    /// Clears `cpu`'s bit, then fences: the caller re-probes `cpu`'s queues next and
    /// re-advertises if it finds work (see the module doc). Returns whether the bit was set.
    pub(crate) fn retract(&self, cpu: usize) -> bool {
        let bit = 1u64 << (cpu % 64);
        let was = self.words[cpu / 64].fetch_and(!bit, Ordering::SeqCst) & bit != 0;
        fence(Ordering::SeqCst);
        was
    }

    /// Sets `cpu`'s backlog bit if it reads clear (see "Backlog bits").
    #[inline]
    pub(crate) fn advertise_backlog(&self, cpu: usize) {
        let w = &self.backlog[cpu / 64];
        let bit = 1u64 << (cpu % 64);
        if w.load(Ordering::Relaxed) & bit == 0 {
            w.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Clears `cpu`'s backlog bit, then fences: the caller re-probes and sets it again if the
    /// backlog is there (see "Backlog bits").
    pub(crate) fn retract_backlog(&self, cpu: usize) {
        let bit = 1u64 << (cpu % 64);
        self.backlog[cpu / 64].fetch_and(!bit, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn next_loaded_finds_set_bits_across_words_and_stops_at_the_end() {
        let s = WorkSummary::new(130);
        assert_eq!(s.next_loaded(0, Bits::Loaded), None);
        assert!(!s.any());
        s.advertise(3);
        s.advertise(64);
        s.advertise(129);
        assert!(s.any());
        assert_eq!(s.next_loaded(0, Bits::Loaded), Some(3));
        assert_eq!(s.next_loaded(4, Bits::Loaded), Some(64));
        assert_eq!(s.next_loaded(65, Bits::Loaded), Some(129));
        assert_eq!(s.next_loaded(130, Bits::Loaded), None, "past the last CPU");
        assert!(s.retract(64));
        assert!(!s.retract(64), "already clear");
        assert_eq!(s.next_loaded(4, Bits::Loaded), Some(129));
        assert!(s.may_hold(3) && !s.may_hold(64) && !s.may_hold(1000));
        let mut seen = alloc::vec::Vec::new();
        assert!(!s.any_loaded(|c| {
            seen.push(c);
            false
        }));
        assert_eq!(seen, [3, 129]);
        assert!(s.any_loaded(|c| c == 3), "stops at the first `true`");
    }

    #[test]
    fn a_cpu_sees_its_own_nodes_work_bits_and_other_nodes_backlog_bits() {
        // Two nodes of 64 CPUs: 0-63 and 64-127.
        let t = Topology::from_synthetic("numa:2 core:64 pu:1").unwrap();
        let s = WorkSummary::with_tiers(&t);
        s.advertise(5); // node 0, one task
        s.advertise(70); // node 1, one task
        s.advertise(100); // node 1, a backlog
        s.advertise_backlog(100);
        s.advertise_backlog(6); // node 0: a backlog bit alone (its work bit cleared)
        let seen = |node: usize| {
            let mut v = alloc::vec::Vec::new();
            s.any_loaded_near(node, |c| {
                v.push(c);
                false
            });
            v
        };
        assert_eq!(
            seen(0),
            [5, 100],
            "node 0: its own work bits, node 1's backlog bits"
        );
        assert_eq!(
            seen(1),
            [6, 70, 100],
            "node 1: node 0's backlog bits, its own work bits"
        );
        assert!(s.may_hold_in(100, Bits::Backlog) && !s.may_hold_in(70, Bits::Backlog));
        s.retract_backlog(100);
        assert_eq!(seen(0), [5]);
        assert_eq!(s.next_loaded(64, Bits::Backlog), None);
        assert_eq!(s.next_loaded(0, Bits::Backlog), Some(6));
    }
}
