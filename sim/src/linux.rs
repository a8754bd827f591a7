//! `linux`: a Linux-like periodic hierarchical balancer, the baseline the other policies are
//! compared with. It models CFS/EEVDF load balancing as described in the kernel's
//! `Documentation/scheduler/sched-domains.rst` and in Lozi et al. (EuroSys 2016), simplified:
//!
//! - One unbounded FIFO run queue per CPU; tasks never move except through the rules below.
//! - **Sched domains** per CPU, innermost first: its LLC (SMT and L2 included), its node, then one
//!   NUMA level per distinct SLIT distance (all nodes within that distance), as
//!   `sched_init_numa` builds them.
//! - **Fork placement** (`SD_BALANCE_FORK`): a new task goes to an idle CPU of the spawner's LLC,
//!   else of its node, else of the nearest NUMA level within `RECLAIM_DISTANCE` (30; farther
//!   levels lose fork balancing, as `sd_init` does), else the spawner's own queue.
//! - **Wake placement** (`select_idle_sibling`): the task's previous CPU if idle, else an idle CPU
//!   sharing its LLC, else the previous CPU's queue.
//! - **Newidle balance**: a CPU about to go idle pulls half the excess of the busiest CPU in its
//!   LLC, then its node domain (not across NUMA levels: the kernel skips them when the expected
//!   idle time is shorter than their balance cost, which it is for short tasks).
//! - **Periodic balance** every [`Linux::TICK_NS`] (CONFIG_HZ=250): each CPU balances each of its
//!   domains whose interval (the domain's weight in milliseconds, `sd->balance_interval`) has
//!   elapsed, pulling from the busiest CPU when its queue exceeds this CPU's by more than
//!   `imbalance_pct`. A busy CPU with waiting tasks **kicks** one idle CPU (nohz idle balance),
//!   which wakes and balances over all its domains.
//!
//! Balancing done from the tick is not charged to any CPU (it runs in interrupt context); newidle
//! balancing is charged one steal probe per CPU examined.

use std::collections::VecDeque;

use crate::cost::{CostModel, TierCosts};
use crate::machine::Machine;
use crate::sched_bridge::{SchedCore, SimPlatform};

struct Domain {
    cpus: Vec<u32>,
    /// Balance when busiest > this × (pct / 100) + 1.
    imbalance_pct: u64,
    /// Ticks between periodic balances of this domain.
    interval_ticks: u64,
    numa: bool,
    /// Largest SLIT distance inside the domain.
    max_distance: u32,
}

/// Linux's `RECLAIM_DISTANCE`: NUMA levels farther than this lose fork/exec balancing and wake
/// affinity.
const RECLAIM_DISTANCE: u32 = 30;

/// The Linux-like balancer.
pub struct Linux {
    rq: Vec<VecDeque<u32>>,
    queued_total: u64,
    parked: Vec<bool>,
    node_of: Vec<u32>,
    llc: Vec<u32>,
    node_cpus: Vec<Vec<u32>>,
    domains: Vec<Vec<Domain>>,
    /// CPUs kicked to run a full idle balance on their next pick.
    kicked: Vec<bool>,
    ticks: u64,
    attempt: TierCosts,
    machine: Machine,
}

impl Linux {
    /// The scheduler tick (4 ms, CONFIG_HZ=250).
    pub const TICK_NS: u64 = 4_000_000;

    /// Builds the domains for a machine.
    pub fn new(machine: &Machine, cost: &CostModel, _seed: u64) -> Linux {
        let topo = machine.topo();
        let n = machine.cpus();
        let nodes = machine.nodes();
        let node_of: Vec<u32> = (0..n).map(|c| machine.node_of(c) as u32).collect();
        let llc: Vec<u32> = (0..n).map(|c| machine.llc_id(c)).collect();
        let node_cpus: Vec<Vec<u32>> = (0..nodes)
            .map(|k| topo.cpus_of_node(k).iter().map(|&c| c as u32).collect())
            .collect();
        let mut distances: Vec<u32> = (0..nodes)
            .flat_map(|a| (0..nodes).map(move |b| (a, b)))
            .filter(|(a, b)| a != b)
            .map(|(a, b)| topo.distance(a, b))
            .collect();
        distances.sort_unstable();
        distances.dedup();
        let ms_ticks = |weight: usize| (weight as u64 * 1_000_000).div_ceil(Self::TICK_NS).max(1);
        let mut domains = Vec::with_capacity(n);
        for c in 0..n {
            let mut list = Vec::new();
            let node = node_of[c] as usize;
            let llc_cpus: Vec<u32> = node_cpus[node]
                .iter()
                .copied()
                .filter(|&x| llc[x as usize] == llc[c])
                .collect();
            if llc_cpus.len() > 1 {
                list.push(Domain {
                    interval_ticks: ms_ticks(llc_cpus.len()),
                    cpus: llc_cpus.clone(),
                    imbalance_pct: 117,
                    numa: false,
                    max_distance: 10,
                });
            }
            if node_cpus[node].len() > llc_cpus.len() {
                list.push(Domain {
                    cpus: node_cpus[node].clone(),
                    imbalance_pct: 117,
                    interval_ticks: ms_ticks(node_cpus[node].len()),
                    numa: false,
                    max_distance: 10,
                });
            }
            for &d in &distances {
                let cpus: Vec<u32> = (0..nodes)
                    .filter(|&b| topo.distance(node, b) <= d)
                    .flat_map(|b| node_cpus[b].iter().copied())
                    .collect();
                if list
                    .last()
                    .is_none_or(|l: &Domain| l.cpus.len() < cpus.len())
                    && cpus.len() > 1
                {
                    list.push(Domain {
                        interval_ticks: ms_ticks(cpus.len()),
                        cpus,
                        imbalance_pct: 125,
                        numa: true,
                        max_distance: d,
                    });
                }
            }
            domains.push(list);
        }
        Linux {
            rq: (0..n).map(|_| VecDeque::new()).collect(),
            queued_total: 0,
            parked: vec![false; n],
            node_of,
            llc,
            node_cpus,
            domains,
            kicked: vec![false; n],
            ticks: 0,
            attempt: cost.steal_attempt,
            machine: machine.clone(),
        }
    }

    fn enqueue(&mut self, p: &mut dyn SimPlatform, from: usize, cpu: usize, task: u32) {
        if from != cpu {
            p.placed(from, cpu);
        }
        self.rq[cpu].push_back(task);
        self.queued_total += 1;
        if self.parked[cpu] {
            self.parked[cpu] = false;
            p.unpark(from, cpu);
        }
    }

    fn idle_in(&self, cpus: &[u32], near: usize) -> Option<usize> {
        let llc = self.llc[near];
        cpus.iter()
            .find(|&&c| self.parked[c as usize] && self.llc[c as usize] == llc)
            .or_else(|| cpus.iter().find(|&&c| self.parked[c as usize]))
            .map(|&c| c as usize)
    }

    /// Pulls from the busiest CPU of `domain` of `cpu`; returns tasks pulled.
    fn balance(&mut self, p: Option<&mut dyn SimPlatform>, cpu: usize, level: usize) -> usize {
        let d = &self.domains[cpu][level];
        let mine = self.rq[cpu].len();
        let mut busiest = None;
        let mut most = 0;
        for &c in &d.cpus {
            let c = c as usize;
            if c != cpu && self.rq[c].len() > most {
                most = self.rq[c].len();
                busiest = Some(c);
            }
        }
        let Some(b) = busiest else {
            return 0;
        };
        if (most as u64) * 100 <= (mine as u64) * d.imbalance_pct || most <= mine {
            return 0;
        }
        let pull = ((most - mine) / 2).max(1);
        for _ in 0..pull {
            if let Some(t) = self.rq[b].pop_front() {
                self.rq[cpu].push_back(t);
            }
        }
        if let Some(p) = p {
            p.stole(cpu, b, pull);
        }
        pull
    }
}

impl SchedCore for Linux {
    fn spawn(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        // Fork balancing: the smallest domain with an idle CPU, up to the NUMA levels the kernel
        // keeps SD_BALANCE_FORK on (distance <= RECLAIM_DISTANCE = 30).
        let node = self.node_of[cpu] as usize;
        let mut target = self.idle_in(&self.node_cpus[node], cpu);
        if target.is_none() {
            target = self.domains[cpu]
                .iter()
                .filter(|d| d.numa && d.max_distance <= RECLAIM_DISTANCE)
                .find_map(|d| self.idle_in(&d.cpus, cpu));
        }
        self.enqueue(p, cpu, target.unwrap_or(cpu), task);
    }

    fn wake(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        let prev = p.task_last_cpu(task).unwrap_or(cpu);
        let target = if self.parked[prev] {
            prev
        } else {
            let node = self.node_of[prev] as usize;
            let llc = self.llc[prev];
            self.node_cpus[node]
                .iter()
                .find(|&&c| self.parked[c as usize] && self.llc[c as usize] == llc)
                .map_or(prev, |&c| c as usize)
        };
        self.enqueue(p, cpu, target, task);
    }

    fn requeue(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        self.enqueue(p, cpu, cpu, task);
    }

    fn next(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32> {
        if self.rq[cpu].is_empty() {
            let full = std::mem::take(&mut self.kicked[cpu]);
            let levels = self.domains[cpu].len();
            for level in 0..levels {
                if self.domains[cpu][level].numa && !full {
                    break;
                }
                let probe_ns: u64 = self.domains[cpu][level]
                    .cpus
                    .iter()
                    .map(|&c| self.attempt.at(self.machine.distance(cpu, c as usize)))
                    .sum();
                let examined = self.domains[cpu][level].cpus.len() as u64;
                let pulled = self.balance(Some(&mut *p), cpu, level);
                if pulled == 0 {
                    p.probes(cpu, examined, probe_ns);
                } else {
                    break;
                }
            }
        }
        let t = self.rq[cpu].pop_front()?;
        self.queued_total -= 1;
        Some(t)
    }

    fn park(&mut self, _p: &mut dyn SimPlatform, cpu: usize) {
        self.parked[cpu] = true;
    }

    fn tick_ns(&self) -> Option<u64> {
        Some(Self::TICK_NS)
    }

    fn tick(&mut self, p: &mut dyn SimPlatform, busy: &[bool]) {
        self.ticks += 1;
        let n = self.rq.len();
        let mut kick = false;
        for (cpu, _) in busy.iter().enumerate().filter(|(_, b)| **b) {
            for level in 0..self.domains[cpu].len() {
                if self.ticks % self.domains[cpu][level].interval_ticks == 0 {
                    self.balance(Some(&mut *p), cpu, level);
                }
            }
            if !self.rq[cpu].is_empty() {
                kick = true;
            }
        }
        if kick && let Some(c) = (0..n).find(|&c| self.parked[c]) {
            self.parked[c] = false;
            self.kicked[c] = true;
            p.unpark(c, c);
        }
    }

    fn queued(&self) -> u64 {
        self.queued_total
    }
}
