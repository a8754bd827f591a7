//! The simulated machine: the topology plus the tables the hot path needs, precomputed once.
//!
//! Pricing asks "how far apart are these two CPUs" millions of times per run, so each CPU's
//! core, L2, LLC and node ids are flattened into one array, and each node pair's remote rank (the
//! position of its SLIT distance among the machine's distinct remote distances, scaled to
//! `[0, 1]`) into another. SLIT values are only compared, never multiplied.

use manycore_topology::{TierKind, Topology};

use crate::cost::Distance;

/// Per-CPU group ids and node-pair ranks.
#[derive(Clone, Debug)]
pub struct Machine {
    topo: Topology,
    /// Per CPU: `[core, l2, llc, node]` ids (an absent cache level falls back to the level below);
    /// the node id is `node_base` plus the node's index, so a remote distance finds both nodes in
    /// the two records it has already read.
    groups: Vec<[u32; 4]>,
    /// What `groups` adds to a node index to make its node id (cores plus caches).
    node_base: u32,
    /// Per CPU: its node (one word per CPU: every remote steal probe's price reads the victim's;
    /// from the topology's 64-byte PU records it was the price's most sampled instruction on
    /// `ring-1024`).
    node: Vec<usize>,
    /// Row-major nodes²: remote rank in `[0, 1]` (unused on the diagonal).
    rank: Vec<f64>,
    nodes: usize,
}

impl Machine {
    /// Precomputes the tables for a topology.
    pub fn new(topo: Topology) -> Machine {
        let n = topo.num_cpus();
        let mut groups = Vec::with_capacity(n);
        let node_of: Vec<usize> = (0..n).map(|cpu| topo.node_of(cpu)).collect();
        let ncores = topo.num_cores() as u32;
        let ncaches = topo.caches().len() as u32;
        for cpu in 0..n {
            let pu = topo.pu(cpu);
            let core = pu.core as u32;
            let l2 = pu.cache_at_level(2).map_or(core, |c| ncores + c as u32);
            let llc = match topo.llc_of(cpu) {
                Some(c) if topo.caches()[c].level >= 2 => ncores + c as u32,
                _ => l2,
            };
            let node = ncores + ncaches + pu.node as u32;
            groups.push([core, l2, llc, node]);
        }
        let nodes = topo.num_nodes();
        let mut remote: Vec<u32> = (0..nodes)
            .flat_map(|a| (0..nodes).filter(move |&b| b != a).map(move |b| (a, b)))
            .map(|(a, b)| topo.distance(a, b))
            .collect();
        remote.sort_unstable();
        remote.dedup();
        let mut rank = vec![0.0; nodes * nodes];
        for a in 0..nodes {
            for b in 0..nodes {
                if a != b && remote.len() > 1 {
                    let pos = remote.partition_point(|&d| d < topo.distance(a, b));
                    rank[a * nodes + b] = pos as f64 / (remote.len() - 1) as f64;
                }
            }
        }
        Machine {
            topo,
            groups,
            node_base: ncores + ncaches,
            node: node_of,
            rank,
            nodes,
        }
    }

    /// The topology.
    #[inline]
    pub fn topo(&self) -> &Topology {
        &self.topo
    }

    /// Number of CPUs.
    #[inline]
    pub fn cpus(&self) -> usize {
        self.groups.len()
    }

    /// Number of nodes.
    #[inline]
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Node of a CPU.
    #[inline]
    pub fn node_of(&self, cpu: usize) -> usize {
        self.node[cpu]
    }

    /// How far `b` is from `a`.
    #[inline]
    pub fn distance(&self, a: usize, b: usize) -> Distance {
        if a == b {
            return Distance::Same;
        }
        let (ga, gb) = (&self.groups[a], &self.groups[b]);
        if ga[0] == gb[0] {
            Distance::Smt
        } else if ga[1] == gb[1] {
            Distance::L2
        } else if ga[2] == gb[2] {
            Distance::Llc
        } else if ga[3] == gb[3] {
            Distance::Node
        } else {
            // The node ids in the records just read (the dense node array would be two more
            // cache lines on a 1024-CPU machine).
            let (na, nb) = (
                (ga[3] - self.node_base) as usize,
                (gb[3] - self.node_base) as usize,
            );
            Distance::Remote(self.rank[na * self.nodes + nb])
        }
    }

    /// How far node `b` is from a CPU on node `a` (for memory pricing).
    #[inline]
    pub fn node_distance(&self, a: usize, b: usize) -> Distance {
        if a == b {
            Distance::Node
        } else {
            Distance::Remote(self.rank[a * self.nodes + b])
        }
    }

    /// The tier kind of a distance (for per-tier counters); `None` for the same CPU.
    pub fn tier_of(d: Distance) -> Option<TierKind> {
        match d {
            Distance::Same => None,
            Distance::Smt => Some(TierKind::Smt),
            Distance::L2 => Some(TierKind::L2),
            Distance::Llc => Some(TierKind::Llc),
            Distance::Node => Some(TierKind::Node),
            Distance::Remote(_) => Some(TierKind::Remote),
        }
    }

    /// The LLC group id of a CPU (CPUs with equal ids share their last-level cache).
    #[inline]
    pub fn llc_id(&self, cpu: usize) -> u32 {
        self.groups[cpu][2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn distances_agree_with_the_topology_tiers() {
        let m = Machine::new(
            presets::find("epyc-2s-nps4")
                .map(presets::Preset::build)
                .expect("preset"),
        );
        for b in 1..m.cpus() {
            let want = m.topo().tier_between(0, b);
            assert_eq!(Machine::tier_of(m.distance(0, b)), want, "cpu 0 -> {b}");
        }
        for cpu in 0..m.cpus() {
            assert_eq!(m.node_of(cpu), m.topo().node_of(cpu), "node of cpu {cpu}");
        }
        // A remote CPU distance takes its nodes from the group records: it must be the
        // distance of the CPUs' nodes.
        for b in 1..m.cpus() {
            let (na, nb) = (m.node_of(0), m.node_of(b));
            if na != nb {
                assert_eq!(m.distance(0, b), m.node_distance(na, nb), "cpu 0 -> {b}");
                assert_eq!(m.distance(b, 0), m.node_distance(nb, na), "cpu {b} -> 0");
            }
        }
        // Nearest remote class (SLIT 11) ranks 0, farthest (32) ranks 1.
        assert_eq!(m.node_distance(0, 1), Distance::Remote(0.0));
        assert_eq!(m.node_distance(0, 4), Distance::Remote(1.0));
        assert_eq!(m.node_distance(0, 2), Distance::Remote(0.5));
    }
}
