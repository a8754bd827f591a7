//! Reports: the side-by-side table, `--json` and `--csv`.
//!
//! The JSON schema is the one issue 7 fixes: `{"topology", "workload", "seed", "policies":
//! [{"policy", "makespan_ns", "throughput_tasks_per_s", "latency_ns": {"p50", "p99", "p999"},
//! "steals_by_tier", "remote_memory_fraction", "wasted_core_fraction", "utilization"}]}`. Each
//! policy entry also carries a `details` object with the other metrics (docs/SIMULATOR.md lists
//! them); consumers of the fixed schema can ignore it.

use serde::Serialize;

use crate::engine::RunResult;
use crate::machine::Machine;

/// Three latency percentiles.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
}

/// Counts per steal tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ByTier {
    /// SMT sibling.
    pub smt: u64,
    /// Shared L2.
    pub l2: u64,
    /// Shared LLC.
    pub llc: u64,
    /// Same node.
    pub node: u64,
    /// Other nodes.
    pub remote: u64,
}

impl ByTier {
    fn from(a: &[u64; 5]) -> ByTier {
        ByTier {
            smt: a[0],
            l2: a[1],
            llc: a[2],
            node: a[3],
            remote: a[4],
        }
    }

    /// Sum of the local tiers.
    pub fn local(&self) -> u64 {
        self.smt + self.l2 + self.llc + self.node
    }
}

/// Metrics beyond the fixed schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Details {
    /// Tasks that ran to completion.
    pub tasks_completed: u64,
    /// Engine events handled (heap pops).
    pub events: u64,
    /// Scheduling events: scheduler calls (spawn, wake, yield, pick-next, park), unparks, steals.
    pub sched_events: u64,
    /// Exact mean latency.
    pub latency_mean_ns: f64,
    /// Mean time from runnable to running, per dispatch.
    pub wait_mean_ns: f64,
    /// Mean time from creation to first run.
    pub first_wait_mean_ns: f64,
    /// Wake-to-run latency.
    pub wake_to_run_ns: Percentiles,
    /// Tasks moved by steals, per tier.
    pub stolen_tasks_by_tier: ByTier,
    /// Migrations per tier.
    pub migrations_by_tier: ByTier,
    /// Scheduler overhead / (CPUs × makespan).
    pub overhead_fraction: f64,
    /// Cold-cache time / busy time.
    pub cold_cache_fraction: f64,
    /// Failed steal probes.
    pub failed_probes: u64,
    /// Searches for work made while every queue of the machine was empty (all failed).
    pub futile_searches: u64,
    /// Parks with a timed wake-up (a task waited in a busy CPU's next slot).
    pub timed_wakes: u64,
    /// Wake-ups after which the CPU found nothing to run (its task was taken by another CPU
    /// while it woke, or a timed wake-up found nothing).
    pub empty_wakes: u64,
    /// Injector operations.
    pub injector_ops: u64,
    /// Time spent waiting for a busy shared queue / (CPUs × makespan).
    pub queue_contention_fraction: f64,
    /// CPU wakeups.
    pub unparks: u64,
    /// Times a free CPU was refused sleep (work visible) yet found nothing it could take, and
    /// searched again later.
    pub research: u64,
    /// The scheduler's own wasted-core checker (stats mode, sampled every 10 µs of virtual time):
    /// the fraction of the makespan during which some CPU slept while some queue's oldest task had
    /// waited longer than the threshold. A time fraction, not a core-time one: compare it with
    /// `wasted_core_fraction` only as "zero or not".
    pub sched_wasted_time_fraction: f64,
    /// Most tasks alive at once.
    pub peak_live_tasks: u64,
    /// Per node, utilization of its CPUs in each time bucket (`load_bucket_ns` wide).
    pub node_load: Vec<Vec<f64>>,
    /// Width of one `node_load` bucket.
    pub load_bucket_ns: u64,
}

/// One policy's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyReport {
    /// Policy name.
    pub policy: String,
    /// Virtual time of the last exit.
    pub makespan_ns: u64,
    /// Completed tasks per virtual second.
    pub throughput_tasks_per_s: f64,
    /// Latency percentiles.
    pub latency_ns: Percentiles,
    /// Successful steals per tier.
    pub steals_by_tier: ByTier,
    /// Memory time spent away from the home node / all memory time.
    pub remote_memory_fraction: f64,
    /// Wasted-core time / (CPUs × makespan).
    pub wasted_core_fraction: f64,
    /// Task time / (CPUs × makespan).
    pub utilization: f64,
    /// Everything else.
    pub details: Details,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl PolicyReport {
    /// Summarizes a run.
    pub fn from_run(r: &RunResult, m: &Machine) -> PolicyReport {
        let s = &r.stats;
        let capacity = r.cpus as f64 * r.makespan_ns as f64;
        let mem_total = (s.mem_local_ns + s.mem_remote_ns) as f64;
        let used = r.timeline.used_buckets(r.makespan_ns);
        let w = r.timeline.width_ns;
        let node_load = (0..m.nodes())
            .map(|node| {
                let cpus = m.topo().cpus_of_node(node);
                (0..used)
                    .map(|b| {
                        let busy: u64 = cpus.iter().map(|&c| r.timeline.busy_ns(c, b)).sum();
                        let round = |x: f64| (x * 1e4).round() / 1e4;
                        round(ratio(busy as f64, (cpus.len() as u64 * w) as f64))
                    })
                    .collect()
            })
            .collect();
        PolicyReport {
            policy: r.policy.clone(),
            makespan_ns: r.makespan_ns,
            throughput_tasks_per_s: ratio(s.completed as f64 * 1e9, r.makespan_ns as f64),
            latency_ns: Percentiles {
                p50: s.latency.quantile(0.5),
                p99: s.latency.quantile(0.99),
                p999: s.latency.quantile(0.999),
            },
            steals_by_tier: ByTier::from(&s.steals),
            remote_memory_fraction: ratio(s.mem_remote_ns as f64, mem_total),
            wasted_core_fraction: ratio(r.wasted.wasted_ns as f64, capacity),
            utilization: ratio(s.busy_ns as f64, capacity),
            details: Details {
                tasks_completed: s.completed,
                events: r.events,
                sched_events: s.sched_events,
                latency_mean_ns: s.latency.mean(),
                wait_mean_ns: s.wait.mean(),
                first_wait_mean_ns: s.first_wait.mean(),
                wake_to_run_ns: Percentiles {
                    p50: s.wake_to_run.quantile(0.5),
                    p99: s.wake_to_run.quantile(0.99),
                    p999: s.wake_to_run.quantile(0.999),
                },
                stolen_tasks_by_tier: ByTier::from(&s.stolen_tasks),
                migrations_by_tier: ByTier::from(&s.migrations),
                overhead_fraction: ratio(s.overhead_ns as f64, capacity),
                cold_cache_fraction: ratio(s.cold_ns as f64, s.busy_ns as f64),
                failed_probes: s.failed_probes,
                futile_searches: s.futile_searches,
                timed_wakes: s.timed_wakes,
                empty_wakes: s.empty_wakes,
                injector_ops: s.injector_ops,
                queue_contention_fraction: ratio(s.injector_wait_ns as f64, capacity),
                unparks: s.unparks,
                research: s.research,
                sched_wasted_time_fraction: ratio(
                    s.sched_wasted_core_ns as f64,
                    r.makespan_ns as f64,
                ),
                peak_live_tasks: r.peak_live_tasks,
                node_load,
                load_bucket_ns: w,
            },
        }
    }
}

/// A comparison of policies on one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The topology as named.
    pub topology: String,
    /// The workload and its parameters.
    pub workload: String,
    /// The seed.
    pub seed: u64,
    /// One entry per policy.
    pub policies: Vec<PolicyReport>,
}

/// Formats nanoseconds with a unit.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.1} k/s", r / 1e3)
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// CSV header (shared by `--csv` and sweeps, which prepend their own columns).
pub const CSV_HEADER: &str = "topology,workload,seed,policy,makespan_ns,throughput_tasks_per_s,latency_p50_ns,latency_p99_ns,latency_p999_ns,steals_smt,steals_l2,steals_llc,steals_node,steals_remote,remote_memory_fraction,wasted_core_fraction,utilization,tasks_completed,events,wake_to_run_p50_ns,wake_to_run_p99_ns,migrations_remote,overhead_fraction";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Report {
    /// The `--json` document.
    pub fn to_json(&self) -> String {
        // Plain structs of numbers and strings always serialize.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// CSV rows (no header).
    pub fn csv_rows(&self) -> Vec<String> {
        self.policies
            .iter()
            .map(|p| {
                let s = &p.steals_by_tier;
                format!(
                    "{},{},{},{},{},{:.3},{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{},{},{},{},{},{:.6}",
                    csv_field(&self.topology),
                    csv_field(&self.workload),
                    self.seed,
                    p.policy,
                    p.makespan_ns,
                    p.throughput_tasks_per_s,
                    p.latency_ns.p50,
                    p.latency_ns.p99,
                    p.latency_ns.p999,
                    s.smt,
                    s.l2,
                    s.llc,
                    s.node,
                    s.remote,
                    p.remote_memory_fraction,
                    p.wasted_core_fraction,
                    p.utilization,
                    p.details.tasks_completed,
                    p.details.events,
                    p.details.wake_to_run_ns.p50,
                    p.details.wake_to_run_ns.p99,
                    p.details.migrations_by_tier.remote,
                    p.details.overhead_fraction,
                )
            })
            .collect()
    }

    /// The `--csv` document.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for r in self.csv_rows() {
            out.push_str(&r);
            out.push('\n');
        }
        out
    }

    /// The side-by-side table.
    pub fn to_table(&self) -> String {
        let head = [
            "policy",
            "makespan",
            "throughput",
            "p50",
            "p99",
            "p99.9",
            "util",
            "remote mem",
            "wasted",
            "steals local/remote",
            "wake p99",
        ];
        let rows: Vec<[String; 11]> = self
            .policies
            .iter()
            .map(|p| {
                [
                    p.policy.clone(),
                    fmt_ns(p.makespan_ns as f64),
                    fmt_rate(p.throughput_tasks_per_s),
                    fmt_ns(p.latency_ns.p50 as f64),
                    fmt_ns(p.latency_ns.p99 as f64),
                    fmt_ns(p.latency_ns.p999 as f64),
                    pct(p.utilization),
                    pct(p.remote_memory_fraction),
                    pct(p.wasted_core_fraction),
                    format!("{}/{}", p.steals_by_tier.local(), p.steals_by_tier.remote),
                    fmt_ns(p.details.wake_to_run_ns.p99 as f64),
                ]
            })
            .collect();
        let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.len());
            }
        }
        let mut out = format!(
            "topology: {}\nworkload: {}\nseed: {}\n\n",
            self.topology, self.workload, self.seed
        );
        let line = |cells: Vec<&str>| -> String {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        out.push_str(&line(head.to_vec()));
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        if let Some(best) = self.policies.iter().min_by_key(|p| p.makespan_ns)
            && self.policies.len() > 1
        {
            out.push_str(&format!("\nshortest makespan: {}", best.policy));
            if let Some(rnd) = self.policies.iter().find(|p| p.policy == "random")
                && best.policy != "random"
                && best.makespan_ns > 0
            {
                out.push_str(&format!(
                    " ({:.2}x faster than random)",
                    rnd.makespan_ns as f64 / best.makespan_ns as f64
                ));
            }
            out.push('\n');
        }
        out
    }
}
