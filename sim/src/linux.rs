//! `linux`: a Linux-like periodic hierarchical balancer, written as a `manycore_sched::Policy` so
//! it runs on the same queues, idle protocol and accounting as every other policy. It models
//! CFS/EEVDF load balancing as described in the kernel's
//! `Documentation/scheduler/sched-domains.rst` and in Lozi et al. (EuroSys 2016), simplified:
//!
//! - **Sched domains** per CPU, innermost first: its LLC (SMT and L2 included), its node, then one
//!   NUMA level per distinct SLIT distance (all nodes within that distance), as `sched_init_numa`
//!   builds them.
//! - **Periodic balance** every [`LinuxPolicy::TICK_NS`] (CONFIG_HZ=250): each CPU, busy or idle
//!   (idle CPUs are balanced on their behalf, as the nohz idle balancer does), balances each of its
//!   domains whose interval has elapsed (the domain's weight in milliseconds,
//!   `sd->balance_interval`), pulling half the difference, at most `sysctl_sched_nr_migrate` = 32
//!   tasks, from the busiest CPU of the domain when its queue exceeds this CPU's by more than
//!   `imbalance_pct` (117 inside a node, 125 across nodes) and by at least 2 tasks.
//! - **Newidle balance**: a CPU about to go idle pulls from CPUs of its LLC, then of its node,
//!   never across nodes (the kernel skips NUMA levels when the expected idle time is shorter than
//!   their balance cost, which it is for short tasks).
//! - **Wake placement** (`select_idle_sibling`): the task's previous CPU if idle, else an idle CPU
//!   sharing its LLC, then its node (the scheduler's `NearLast` placement).
//!
//! Differences from Linux that the policy trait imposes, written down: spawns go to the spawner's
//! queue (fork balancing, `SD_BALANCE_FORK`, is not a policy decision in `manycore-sched`), and an
//! idle CPU is woken by the scheduler's idle protocol when work is queued, where Linux would wait
//! for a balance.

use std::sync::atomic::{AtomicU64, Ordering};

use manycore_sched::Policy;
use manycore_sched::policy::WakePolicy;
use manycore_sched::rng::Rng;
use manycore_topology::{TierKind, Topology};

/// `sysctl_sched_nr_migrate`: the most tasks one balance moves.
const NR_MIGRATE: usize = 32;

struct Domain {
    cpus: Vec<u32>,
    /// Balance when busiest × 100 > this CPU × `imbalance_pct`.
    imbalance_pct: u64,
    /// Ticks between periodic balances of this domain.
    interval_ticks: u64,
}

/// The Linux-like balancer.
pub struct LinuxPolicy {
    /// Per CPU: its domains, innermost first.
    domains: Vec<Vec<Domain>>,
    /// Per CPU: balancing ticks seen (owner-only).
    ticks: Vec<AtomicU64>,
}

impl LinuxPolicy {
    /// The scheduler tick (4 ms, CONFIG_HZ=250).
    pub const TICK_NS: u64 = 4_000_000;

    /// Builds the domains for a machine.
    pub fn new(topo: &Topology) -> LinuxPolicy {
        let n = topo.num_cpus();
        let nodes = topo.num_nodes();
        let mut distances: Vec<u32> = (0..nodes)
            .flat_map(|a| (0..nodes).map(move |b| (a, b)))
            .filter(|(a, b)| a != b)
            .map(|(a, b)| topo.distance(a, b))
            .collect();
        distances.sort_unstable();
        distances.dedup();
        let ms_ticks = |weight: usize| (weight as u64 * 1_000_000).div_ceil(Self::TICK_NS).max(1);
        let domains = (0..n)
            .map(|c| {
                let node = topo.node_of(c);
                let node_cpus: Vec<u32> =
                    topo.cpus_of_node(node).iter().map(|&x| x as u32).collect();
                let llc = topo.llc_of(c);
                let llc_cpus: Vec<u32> = node_cpus
                    .iter()
                    .copied()
                    .filter(|&x| topo.llc_of(x as usize) == llc)
                    .collect();
                let mut list: Vec<Domain> = Vec::new();
                if llc_cpus.len() > 1 {
                    list.push(Domain {
                        interval_ticks: ms_ticks(llc_cpus.len()),
                        cpus: llc_cpus.clone(),
                        imbalance_pct: 117,
                    });
                }
                if node_cpus.len() > llc_cpus.len() {
                    list.push(Domain {
                        interval_ticks: ms_ticks(node_cpus.len()),
                        cpus: node_cpus.clone(),
                        imbalance_pct: 117,
                    });
                }
                for &d in &distances {
                    let cpus: Vec<u32> = (0..nodes)
                        .filter(|&b| topo.distance(node, b) <= d)
                        .flat_map(|b| topo.cpus_of_node(b).iter().map(|&x| x as u32))
                        .collect();
                    if list.last().is_none_or(|l| l.cpus.len() < cpus.len()) && cpus.len() > 1 {
                        list.push(Domain {
                            interval_ticks: ms_ticks(cpus.len()),
                            cpus,
                            imbalance_pct: 125,
                        });
                    }
                }
                list
            })
            .collect();
        LinuxPolicy {
            domains,
            ticks: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Policy for LinuxPolicy {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn for_each_victim(
        &self,
        topo: &Topology,
        cpu: usize,
        _rng: &Rng,
        visit: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
        // Newidle balance: the LLC, then the node, in order; never across nodes.
        for tier in topo
            .steal_order(cpu)
            .iter()
            .filter(|t| t.kind != TierKind::Remote)
        {
            for &victim in tier.cpus {
                if visit(victim as usize, tier.kind) {
                    return;
                }
            }
        }
    }

    fn steal_batch_max(&self, _tier: TierKind) -> usize {
        NR_MIGRATE
    }

    fn takes_remote_injectors(&self) -> bool {
        false
    }

    fn wake_policy(&self) -> WakePolicy {
        WakePolicy::NearLast
    }

    fn balance(
        &self,
        _topo: &Topology,
        cpu: usize,
        load_of: &dyn Fn(usize) -> usize,
    ) -> Option<(usize, usize)> {
        let tick = self.ticks[cpu].load(Ordering::Relaxed) + 1;
        self.ticks[cpu].store(tick, Ordering::Relaxed);
        let mine = load_of(cpu);
        for d in &self.domains[cpu] {
            if tick % d.interval_ticks != 0 {
                continue;
            }
            let (busiest, most) = d
                .cpus
                .iter()
                .map(|&c| c as usize)
                .filter(|&c| c != cpu)
                .map(|c| (c, load_of(c)))
                .max_by_key(|&(c, l)| (l, std::cmp::Reverse(c)))?;
            if most >= mine + 2 && (most as u64) * 100 > (mine as u64) * d.imbalance_pct {
                return Some((busiest, ((most - mine) / 2).clamp(1, NR_MIGRATE)));
            }
        }
        None
    }

    fn balance_interval_ns(&self) -> Option<u64> {
        Some(Self::TICK_NS)
    }
}
