//! Counters: steals per tier, wake placements, injector traffic, parks, and wasted-core time.
//!
//! Per-CPU counters are written only by their CPU (Relaxed add, no contention) and summed on
//! read. The wasted-core checker (Lozi et al., "The Linux Scheduler: a Decade of Wasted Cores",
//! EuroSys 2016) is sampled: the host calls [`crate::Scheduler::sample_wasted`] periodically
//! (the simulator at every event, a runtime from a timer); each sample adds the time since the
//! previous one when some CPU sleeps while a task has waited in a queue longer than the
//! threshold.

use manycore_topology::TierKind;

use crate::platform::WakeReason;
use crate::sync::{AtomicU64, Ordering};

/// One CPU's counters.
#[derive(Default)]
pub(crate) struct CpuCounters {
    pub steals: [AtomicU64; 5],
    pub stolen_tasks: [AtomicU64; 5],
    pub steal_probes_empty: AtomicU64,
    pub wakes: [AtomicU64; 6],
    pub injector_pops: AtomicU64,
    pub injector_pushes: AtomicU64,
    pub parks: AtomicU64,
    pub next_slot_runs: AtomicU64,
    pub next_slot_stolen: AtomicU64,
}

#[inline(always)]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[inline(always)]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A snapshot of every counter, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful steals by tier (index [`TierKind::index`]).
    pub steals_by_tier: [u64; 5],
    /// Tasks moved by those steals, by tier.
    pub stolen_tasks_by_tier: [u64; 5],
    /// Victims looked at that had nothing to take.
    pub steal_probes_empty: u64,
    /// Wake placements by reason (index [`WakeReason::index`]).
    pub wakes_by_reason: [u64; 6],
    /// Batches taken from injectors.
    pub injector_pops: u64,
    /// Tasks put on injectors (remote spawns, overflow, placement).
    pub injector_pushes: u64,
    /// Times a CPU parked.
    pub parks: u64,
    /// Tasks run from a next slot by its owner.
    pub next_slot_runs: u64,
    /// Tasks taken from another CPU's next slot after the grace period.
    pub next_slot_stolen: u64,
    /// Sampled time (ns) during which a CPU slept while a task waited longer than the threshold.
    pub wasted_core_ns: u64,
}

impl Counters {
    /// Steals of one tier.
    pub fn steals(&self, tier: TierKind) -> u64 {
        self.steals_by_tier[tier.index()]
    }
    /// Wakes placed for one reason.
    pub fn wakes(&self, reason: WakeReason) -> u64 {
        self.wakes_by_reason[reason.index()]
    }
}

impl CpuCounters {
    pub(crate) fn add_into(&self, c: &mut Counters) {
        for i in 0..5 {
            c.steals_by_tier[i] += self.steals[i].load(Ordering::Relaxed);
            c.stolen_tasks_by_tier[i] += self.stolen_tasks[i].load(Ordering::Relaxed);
        }
        for i in 0..6 {
            c.wakes_by_reason[i] += self.wakes[i].load(Ordering::Relaxed);
        }
        c.steal_probes_empty += self.steal_probes_empty.load(Ordering::Relaxed);
        c.injector_pops += self.injector_pops.load(Ordering::Relaxed);
        c.injector_pushes += self.injector_pushes.load(Ordering::Relaxed);
        c.parks += self.parks.load(Ordering::Relaxed);
        c.next_slot_runs += self.next_slot_runs.load(Ordering::Relaxed);
        c.next_slot_stolen += self.next_slot_stolen.load(Ordering::Relaxed);
    }
}
