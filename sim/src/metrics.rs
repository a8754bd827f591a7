//! What a run measures, and the bounded-memory structures that measure it.
//!
//! Definitions (docs/SIMULATOR.md, "Metrics", says the same for users):
//! - **makespan**: virtual time of the last task exit.
//! - **throughput**: tasks completed / makespan.
//! - **latency**: per latency-tracked task, exit − birth (arrival); plus any samples a workload
//!   records itself (producer-consumer items).
//! - **utilization**: time CPUs spent running task segments / (CPUs × makespan). Scheduler
//!   overhead (switches, probes, steals, cold caches excluded) is reported separately.
//! - **steals by tier**: successful steals, by the tier of the victim relative to the thief.
//! - **migrations by tier**: a task starting a segment on another CPU than its previous one.
//! - **remote memory fraction**: memory time (at local speed) spent by tasks on a CPU outside
//!   their home node / all memory time.
//! - **wake-to-run**: from a blocked task's wake to its next start.
//! - **wasted-core time**: ∫ min(idle CPUs, tasks runnable for longer than the threshold) dt —
//!   the time a CPU sat idle while a task it could have run had been waiting too long (Lozi et
//!   al., EuroSys 2016); the fraction divides by CPUs × makespan.

use std::collections::VecDeque;

use crate::histogram::Histogram;

/// Tiers in counter order.
pub const TIER_NAMES: [&str; 5] = ["smt", "l2", "llc", "node", "remote"];

/// Busy time per CPU in time buckets whose width doubles as the run grows: memory stays
/// `CPUs × BUCKETS` whatever the run length.
///
/// Each CPU's latest bucket is summed in a small per-CPU accumulator and written to the table
/// only when that CPU moves to another bucket (or the width doubles, or [`Timeline::finish`]
/// runs): on a 1024-CPU machine the table is 1 MB, and adding every segment to it directly
/// missed the cache on almost every segment. Sums of integers do not depend on their order,
/// so the figures are the same.
///
/// The table is bucket-major (one column of all CPUs per time bucket): CPUs move through the
/// buckets together as virtual time passes, so the write-backs of one stretch of time land in
/// one 8 KB column (1024 CPUs) instead of one line in each of 1024 rows 1 KB apart, which on
/// `ring-1024` missed the 1 MB L2 on most write-backs (cachegrind with a 1 MB last level: the
/// largest single source of L2 read misses of a server run, ahead of the scheduler's steals).
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Bucket-major buckets × CPUs, busy nanoseconds; complete once [`Timeline::finish`] ran (the
    /// engine calls it at the end of a run). Read through [`Timeline::busy_ns`].
    busy_ns: Vec<u64>,
    /// Current bucket width.
    pub width_ns: u64,
    cpus: usize,
    /// Per CPU: busy time not yet in `busy_ns`, and its bucket.
    open: Vec<OpenBucket>,
}

/// A CPU's busy time in one bucket, not yet added to the table.
#[derive(Clone, Copy, Debug, Default)]
struct OpenBucket {
    bucket: usize,
    ns: u64,
}

/// Number of time buckets per CPU.
pub const BUCKETS: usize = 128;

impl Timeline {
    /// An empty timeline.
    pub fn new(cpus: usize) -> Timeline {
        Timeline {
            busy_ns: vec![0; cpus * BUCKETS],
            width_ns: 1_000,
            cpus,
            open: vec![OpenBucket::default(); cpus],
        }
    }

    /// Busy nanoseconds of `cpu` in time bucket `bucket` (complete once [`Timeline::finish`]
    /// ran).
    #[inline]
    pub fn busy_ns(&self, cpu: usize, bucket: usize) -> u64 {
        self.busy_ns[bucket * self.cpus + cpu]
    }

    fn grow(&mut self) {
        self.finish();
        let n = self.cpus;
        for i in 0..BUCKETS / 2 {
            // Column i takes columns 2i and 2i + 1 (i < 2i unless i = 0, where 0 + 1 is read
            // before column 0 is overwritten, element by element).
            for c in 0..n {
                self.busy_ns[i * n + c] =
                    self.busy_ns[2 * i * n + c] + self.busy_ns[(2 * i + 1) * n + c];
            }
        }
        self.busy_ns[BUCKETS / 2 * n..].fill(0);
        self.width_ns *= 2;
    }

    /// Adds busy time `[start, end)` on `cpu`.
    #[inline]
    pub fn add(&mut self, cpu: usize, start_ns: u64, end_ns: u64) {
        while end_ns > self.width_ns * BUCKETS as u64 {
            self.grow();
        }
        let mut t = start_ns;
        while t < end_ns {
            let b = (t / self.width_ns) as usize;
            let b_end = (b as u64 + 1) * self.width_ns;
            let until = end_ns.min(b_end);
            let o = &mut self.open[cpu];
            if o.bucket == b {
                o.ns += until - t;
            } else {
                let done = std::mem::replace(
                    o,
                    OpenBucket {
                        bucket: b,
                        ns: until - t,
                    },
                );
                self.busy_ns[done.bucket * self.cpus + cpu] += done.ns;
            }
            t = until;
        }
    }

    /// Writes every CPU's open bucket into `busy_ns`.
    pub fn finish(&mut self) {
        for (cpu, o) in self.open.iter_mut().enumerate() {
            self.busy_ns[o.bucket * self.cpus + cpu] += std::mem::take(&mut o.ns);
        }
    }

    /// Buckets that cover `[0, makespan)`.
    pub fn used_buckets(&self, makespan_ns: u64) -> usize {
        (makespan_ns.div_ceil(self.width_ns) as usize).clamp(1, BUCKETS)
    }
}

/// Wasted-core accounting: FIFO of "this task becomes overdue at" deadlines (virtual time only
/// moves forward, so the FIFO is sorted), an overdue count, and the idle-CPU count.
#[derive(Clone, Debug, Default)]
pub struct Wasted {
    threshold_ns: u64,
    fifo: VecDeque<(u64, u32, u32)>,
    /// Tasks runnable for longer than the threshold.
    pub overdue: u64,
    /// CPUs parked or waking.
    pub idle: u64,
    last_ns: u64,
    /// ∫ min(idle, overdue) dt.
    pub wasted_ns: u128,
    /// ∫ idle dt.
    pub idle_ns: u128,
}

impl Wasted {
    /// A tracker with the given threshold.
    pub fn new(threshold_ns: u64) -> Wasted {
        Wasted {
            threshold_ns,
            ..Wasted::default()
        }
    }

    fn integrate(&mut self, to_ns: u64) {
        let dt = u128::from(to_ns.saturating_sub(self.last_ns));
        self.wasted_ns += u128::from(self.idle.min(self.overdue)) * dt;
        self.idle_ns += u128::from(self.idle) * dt;
        self.last_ns = self.last_ns.max(to_ns);
    }

    /// Moves time to `now_ns`; `still_waiting(task, epoch)` says whether a task is still queued
    /// since the enqueue that produced the deadline (then it becomes overdue).
    #[inline]
    pub fn advance(&mut self, now_ns: u64, mut became_overdue: impl FnMut(u32, u32) -> bool) {
        while let Some(&(deadline, task, epoch)) = self.fifo.front() {
            if deadline > now_ns {
                break;
            }
            self.integrate(deadline);
            self.fifo.pop_front();
            if became_overdue(task, epoch) {
                self.overdue += 1;
            }
        }
        self.integrate(now_ns);
    }

    /// A task became runnable at `now_ns` under `epoch`.
    #[inline]
    pub fn enqueued(&mut self, now_ns: u64, task: u32, epoch: u32) {
        self.fifo
            .push_back((now_ns + self.threshold_ns, task, epoch));
    }

    /// Entries pending (bounded by tasks made runnable within one threshold).
    pub fn pending(&self) -> usize {
        self.fifo.len()
    }
}

/// Counters and histograms of one run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Tasks created.
    pub spawned: u64,
    /// Tasks that exited.
    pub completed: u64,
    /// Latency samples.
    pub latency: Histogram,
    /// Wake-to-run samples.
    pub wake_to_run: Histogram,
    /// Queue wait per dispatch (runnable → start).
    pub wait: Histogram,
    /// Queue wait before a task's very first segment.
    pub first_wait: Histogram,
    /// Σ segment time (including cold-cache and remote-memory inflation).
    pub busy_ns: u128,
    /// Σ scheduler overhead charged to CPUs (switches, spawns, probes, steals, injector, park).
    pub overhead_ns: u128,
    /// Σ cold-cache penalties.
    pub cold_ns: u128,
    /// Successful steals by tier.
    pub steals: [u64; 5],
    /// Tasks moved by steals, by tier.
    pub stolen_tasks: [u64; 5],
    /// Failed steal probes.
    pub failed_probes: u64,
    /// Searches made while every queue was empty (priced without walking the victims again).
    pub futile_searches: u64,
    /// Parks that set a timed wake-up (the scheduler's `stranded_recheck_ns`).
    pub timed_wakes: u64,
    /// Wake-ups (unparks and timed) after which the CPU found nothing to run.
    pub empty_wakes: u64,
    /// Injector operations.
    pub injector_ops: u64,
    /// Time injector operations spent waiting for the queue (contention).
    pub injector_wait_ns: u128,
    /// Migrations by tier.
    pub migrations: [u64; 5],
    /// Memory time at local speed, run on the home node.
    pub mem_local_ns: u128,
    /// Memory time at local speed, run elsewhere.
    pub mem_remote_ns: u128,
    /// CPU unparks.
    pub unparks: u64,
    /// Scheduling events: calls into the scheduler (spawn, wake, yield, pick-next, park) plus
    /// the unparks and steals it performed.
    pub sched_events: u64,
    /// Time of the last exit.
    pub last_exit_ns: u64,
    /// Unparks for CPUs that were not asleep in the engine (token semantics).
    pub stray_unparks: u64,
    /// Times a CPU was refused sleep yet found nothing, and searched again later.
    pub research: u64,
    /// The scheduler's own sampled wasted-core time (its stats mode).
    pub sched_wasted_core_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_keeps_total_busy_time_when_it_grows() {
        let mut t = Timeline::new(2);
        t.add(0, 0, 500);
        t.add(1, 900, 1_000_000);
        t.finish();
        assert!(t.width_ns > 1_000);
        let total: u64 = t.busy_ns.iter().sum();
        assert_eq!(total, 500 + 999_100);
    }

    /// The open-bucket accumulators change nothing: random segments (sequential per CPU, as the
    /// engine makes them, and a few out of order) give the bucket sums of adding each part to
    /// `busy_ns` directly, across width doublings.
    #[test]
    fn timeline_open_buckets_give_the_direct_sums() {
        let cpus = 5;
        let mut t = Timeline::new(cpus);
        // The reference: every part added at once, with the same doubling rule.
        let (mut want, mut width) = (vec![0u64; cpus * BUCKETS], 1_000u64);
        let mut r = crate::rng::Rng::new(11);
        let mut cursor = vec![0u64; cpus];
        for i in 0..20_000 {
            let cpu = r.below(cpus as u64) as usize;
            let start = if i % 97 == 0 {
                // Out of order: an earlier stretch of this CPU.
                cursor[cpu] / 2
            } else {
                cursor[cpu] + r.below(3_000)
            };
            let end = start + r.below(5_000);
            cursor[cpu] = cursor[cpu].max(end);
            t.add(cpu, start, end);
            while end > width * BUCKETS as u64 {
                for c in 0..cpus {
                    let row = &mut want[c * BUCKETS..(c + 1) * BUCKETS];
                    for k in 0..BUCKETS / 2 {
                        row[k] = row[2 * k] + row[2 * k + 1];
                    }
                    row[BUCKETS / 2..].fill(0);
                }
                width *= 2;
            }
            let mut x = start;
            while x < end {
                let b = (x / width) as usize;
                let until = end.min((b as u64 + 1) * width);
                want[cpu * BUCKETS + b] += until - x;
                x = until;
            }
        }
        t.finish();
        assert!(width > 1_000 * 8, "the test must cross several doublings");
        assert_eq!(t.width_ns, width);
        for c in 0..cpus {
            for b in 0..BUCKETS {
                assert_eq!(t.busy_ns(c, b), want[c * BUCKETS + b], "cpu {c} bucket {b}");
            }
        }
    }

    #[test]
    fn wasted_counts_only_idle_cpus_facing_overdue_tasks() {
        let mut w = Wasted::new(100);
        w.idle = 2;
        w.enqueued(0, 7, 1);
        w.advance(50, |_, _| true);
        assert_eq!(w.wasted_ns, 0, "not overdue yet");
        w.advance(300, |_, _| true);
        // Overdue from 100 to 300 with 2 idle CPUs but 1 task: min = 1.
        assert_eq!(w.wasted_ns, 200);
        assert_eq!(w.idle_ns, 600);
        w.enqueued(300, 8, 1);
        w.advance(500, |_, _| false);
        assert_eq!(
            w.overdue, 1,
            "a task dequeued before its deadline never counts"
        );
    }
}
