//! Named machine shapes: topologies of real (or plausible) machines with documented distances.
//!
//! Each preset is built as a [`TopologyDesc`] from a regular shape (packages × nodes per package
//! × LLCs per node × cores per LLC × PUs per core) plus a distance rule, then validated by
//! [`Topology::build`] like any other source. PU OS indices follow tree order (as hwloc's synthetic
//! topologies do), not Linux's usual "all first threads, then all second threads" numbering: the
//! simulator only uses logical indices, so this changes nothing it reports.
//!
//! The distance tables and their sources are in docs/SIMULATOR.md ("Presets").

use manycore_topology::{
    CacheDesc, CacheKind, DistanceMatrix, NodeDesc, PuDesc, Topology, TopologyDesc,
};

/// A named preset.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The name used on the command line.
    pub name: &'static str,
    /// One line: what machine it stands for.
    pub description: &'static str,
    shape: Shape,
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    packages: u32,
    nodes_per_package: u32,
    llcs_per_node: u32,
    cores_per_llc: u32,
    pus_per_core: u32,
    l3_bytes: u64,
    l2_bytes: u64,
    l1_bytes: u64,
    node_memory_bytes: u64,
    /// Distance between two nodes given as (package, node-in-package) pairs.
    distance: fn((u32, u32), (u32, u32)) -> u32,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

fn one_node(_: (u32, u32), _: (u32, u32)) -> u32 {
    10
}

/// AMD EPYC (Rome/Milan) in NPS4 mode as `numactl -H` reports it: 10 local, 11 to the paired
/// quadrant, 12 to the other two quadrants of the socket, 32 across sockets.
fn epyc_nps4(a: (u32, u32), b: (u32, u32)) -> u32 {
    if a == b {
        10
    } else if a.0 != b.0 {
        32
    } else if a.1 / 2 == b.1 / 2 {
        11
    } else {
        12
    }
}

/// A 4-socket Xeon (Skylake/Cascade Lake-SP, fully connected UPI): 10 local, 21 remote.
fn xeon_4s(a: (u32, u32), b: (u32, u32)) -> u32 {
    if a == b { 10 } else { 21 }
}

/// The 1024-PU preset: 4 sockets on a ring (socket i links to i±1), 4 nodes each: 10 local, 12
/// same socket, 22 one hop, 32 two hops.
fn ring_4s(a: (u32, u32), b: (u32, u32)) -> u32 {
    if a == b {
        10
    } else if a.0 == b.0 {
        12
    } else {
        let hops = (a.0 + 4 - b.0) % 4;
        if hops == 2 { 32 } else { 22 }
    }
}

/// A 2-socket, 2-nodes-per-socket machine (Xeon with sub-NUMA clustering): 10 local, 11 same
/// socket, 21 across sockets.
fn snc2_2s(a: (u32, u32), b: (u32, u32)) -> u32 {
    if a == b {
        10
    } else if a.0 == b.0 {
        11
    } else {
        21
    }
}

/// Every preset, the default first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "dual-socket",
        description: "2 sockets x 2 nodes (sub-NUMA clustering), 2 L3 x 4 cores x 2 threads per node: 64 PUs, SLIT 10/11/21",
        shape: Shape {
            packages: 2,
            nodes_per_package: 2,
            llcs_per_node: 2,
            cores_per_llc: 4,
            pus_per_core: 2,
            l3_bytes: 16 * MIB,
            l2_bytes: MIB,
            l1_bytes: 48 * KIB,
            node_memory_bytes: 64 * GIB,
            distance: snc2_2s,
        },
    },
    Preset {
        name: "laptop",
        description: "1 package, 1 node, 1 L3, 8 cores x 2 threads: 16 PUs",
        shape: Shape {
            packages: 1,
            nodes_per_package: 1,
            llcs_per_node: 1,
            cores_per_llc: 8,
            pus_per_core: 2,
            l3_bytes: 16 * MIB,
            l2_bytes: MIB + MIB / 4,
            l1_bytes: 48 * KIB,
            node_memory_bytes: 32 * GIB,
            distance: one_node,
        },
    },
    Preset {
        name: "epyc-2s-nps4",
        description: "2-socket AMD EPYC 7763 in NPS4: 8 nodes, 2 CCX (32 MiB L3) x 8 cores x 2 threads per node: 256 PUs, SLIT 10/11/12/32",
        shape: Shape {
            packages: 2,
            nodes_per_package: 4,
            llcs_per_node: 2,
            cores_per_llc: 8,
            pus_per_core: 2,
            l3_bytes: 32 * MIB,
            l2_bytes: 512 * KIB,
            l1_bytes: 32 * KIB,
            node_memory_bytes: 64 * GIB,
            distance: epyc_nps4,
        },
    },
    Preset {
        name: "xeon-4s",
        description: "4-socket Intel Xeon Platinum 8160: 4 nodes, 1 L3 x 24 cores x 2 threads each: 192 PUs, SLIT 10/21",
        shape: Shape {
            packages: 4,
            nodes_per_package: 1,
            llcs_per_node: 1,
            cores_per_llc: 24,
            pus_per_core: 2,
            l3_bytes: 33 * MIB,
            l2_bytes: MIB,
            l1_bytes: 32 * KIB,
            node_memory_bytes: 96 * GIB,
            distance: xeon_4s,
        },
    },
    Preset {
        name: "ring-1024",
        description: "hypothetical 4-socket ring, 4 nodes per socket, 4 L3 x 8 cores x 2 threads per node: 1024 PUs, 16 nodes, SLIT 10/12/22/32",
        shape: Shape {
            packages: 4,
            nodes_per_package: 4,
            llcs_per_node: 4,
            cores_per_llc: 8,
            pus_per_core: 2,
            l3_bytes: 32 * MIB,
            l2_bytes: MIB,
            l1_bytes: 32 * KIB,
            node_memory_bytes: 64 * GIB,
            distance: ring_4s,
        },
    },
];

/// The preset `manycore sim` uses when no topology is given.
pub const DEFAULT_PRESET: &str = "dual-socket";

/// Finds a preset by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

impl Preset {
    /// Builds the preset's topology.
    pub fn build(&self) -> Topology {
        // The shapes above are regular and their distance rules symmetric with 10 on the
        // diagonal, so `build` cannot reject them; the unit test `every_preset_builds` checks it.
        Topology::build(self.desc())
            .unwrap_or_else(|e| panic!("preset {} is malformed: {e}", self.name))
    }

    /// The preset as a flat description.
    pub fn desc(&self) -> TopologyDesc {
        let s = &self.shape;
        let mut desc = TopologyDesc::default();
        let mut os = 0u32;
        let n_nodes = s.packages * s.nodes_per_package;
        for p in 0..s.packages {
            for n in 0..s.nodes_per_package {
                let node = p * s.nodes_per_package + n;
                desc.nodes.push(NodeDesc {
                    os_index: node,
                    memory_bytes: s.node_memory_bytes,
                });
                for _ in 0..s.llcs_per_node {
                    let l3 = desc.add_cache(cache(3, s.l3_bytes));
                    for _ in 0..s.cores_per_llc {
                        let l2 = desc.add_cache(cache(2, s.l2_bytes));
                        let l1 = desc.add_cache(CacheDesc {
                            kind: CacheKind::Data,
                            ..cache(1, s.l1_bytes)
                        });
                        let core_key = u64::from(os);
                        for _ in 0..s.pus_per_core {
                            desc.pus.push(PuDesc {
                                os_index: os,
                                apic_id: Some(os),
                                package: p,
                                core: core_key,
                                node: Some(node),
                                caches: vec![l1, l2, l3],
                            });
                            os += 1;
                        }
                    }
                }
            }
        }
        let coords: Vec<(u32, u32)> = (0..n_nodes)
            .map(|i| (i / s.nodes_per_package, i % s.nodes_per_package))
            .collect();
        let mut values = Vec::with_capacity((n_nodes * n_nodes) as usize);
        for &a in &coords {
            for &b in &coords {
                values.push((s.distance)(a, b));
            }
        }
        desc.distances = Some(DistanceMatrix {
            nodes: (0..n_nodes).collect(),
            values,
        });
        desc
    }
}

fn cache(level: u8, size_bytes: u64) -> CacheDesc {
    CacheDesc {
        level,
        kind: CacheKind::Unified,
        size_bytes,
        line_bytes: 64,
        associativity: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_with_its_advertised_size() {
        for p in PRESETS {
            let t = p.build();
            let s = &p.shape;
            let pus = s.packages
                * s.nodes_per_package
                * s.llcs_per_node
                * s.cores_per_llc
                * s.pus_per_core;
            assert_eq!(t.num_cpus() as u32, pus, "{}", p.name);
            assert_eq!(
                t.num_nodes() as u32,
                s.packages * s.nodes_per_package,
                "{}",
                p.name
            );
            assert!(
                p.description.contains(&format!("{pus} PUs")),
                "{}: {}",
                p.name,
                p.description
            );
        }
        assert!(find(DEFAULT_PRESET).is_some());
    }

    #[test]
    fn epyc_distances_follow_numactl() {
        let t = find("epyc-2s-nps4")
            .map(Preset::build)
            .expect("preset exists");
        assert_eq!(t.distance(0, 0), 10);
        assert_eq!(t.distance(0, 1), 11);
        assert_eq!(t.distance(0, 2), 12);
        assert_eq!(t.distance(2, 3), 11);
        assert_eq!(t.distance(0, 4), 32);
        // The first remote tier of CPU 0 is the paired quadrant.
        let order = t.steal_order(0);
        let first_remote = order
            .iter()
            .find(|tier| tier.distance > 10)
            .expect("remote tier");
        assert_eq!(first_remote.distance, 11);
    }

    #[test]
    fn ring_1024_has_sixteen_nodes_and_two_hop_distances() {
        let t = find("ring-1024").map(Preset::build).expect("preset exists");
        assert_eq!((t.num_cpus(), t.num_nodes()), (1024, 16));
        assert_eq!(t.distance(0, 4), 22);
        assert_eq!(t.distance(0, 8), 32);
        assert_eq!(t.distance(0, 12), 22);
    }
}
