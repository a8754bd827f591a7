//! Model and steal-tier tests on hand-built descriptions (the parsers have their own tests).

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use crate::*;

/// A regular machine: `packages × nodes × llcs × cores × pus`, L1/L2 per core, one L3 per LLC
/// group. Node distances: 10 local, 16 same package, 32 other package.
fn uniform(packages: u32, nodes: u32, llcs: u32, cores: u32, pus: u32) -> TopologyDesc {
    let mut d = TopologyDesc::default();
    let mut os = 0;
    let mut core_key = 0;
    for p in 0..packages {
        for n in 0..nodes {
            let node = p * nodes + n;
            d.nodes.push(NodeDesc {
                os_index: node,
                memory_bytes: 1 << 30,
            });
            for _ in 0..llcs {
                let l3 = d.add_cache(CacheDesc {
                    level: 3,
                    kind: CacheKind::Unified,
                    size_bytes: 32 << 20,
                    line_bytes: 64,
                    associativity: 16,
                });
                for _ in 0..cores {
                    let l2 = d.add_cache(CacheDesc {
                        level: 2,
                        kind: CacheKind::Unified,
                        size_bytes: 1 << 20,
                        line_bytes: 64,
                        associativity: 8,
                    });
                    let l1 = d.add_cache(CacheDesc {
                        level: 1,
                        kind: CacheKind::Data,
                        size_bytes: 32 << 10,
                        line_bytes: 64,
                        associativity: 8,
                    });
                    core_key += 1;
                    for _ in 0..pus {
                        d.pus.push(PuDesc {
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
    let n = (packages * nodes) as usize;
    let mut values = vec![0; n * n];
    for a in 0..n {
        for b in 0..n {
            values[a * n + b] = if a == b {
                10
            } else if a / nodes as usize == b / nodes as usize {
                16
            } else {
                32
            };
        }
    }
    d.distances = Some(DistanceMatrix {
        nodes: (0..n as u32).collect(),
        values,
    });
    d
}

#[test]
fn counts_and_o1_queries() {
    let t = Topology::build(uniform(2, 2, 2, 4, 2)).unwrap();
    assert_eq!(t.num_packages(), 2);
    assert_eq!(t.num_nodes(), 4);
    assert_eq!(t.num_cores(), 32);
    assert_eq!(t.num_cpus(), 64);
    assert_eq!(t.node_of(17), 1);
    assert_eq!(t.cpus_of_node(1), &(16..32).collect::<Vec<_>>()[..]);
    assert_eq!(t.distance(0, 1), 16);
    assert_eq!(t.distance(0, 2), 32);
    assert_eq!(t.cpu_distance(0, 63), 32);
    assert_eq!(t.cpu_from_os(5), Some(5));
    assert_eq!(t.nodes()[2].cpus.to_string(), "32-47");
    assert_eq!(t.total_memory_bytes(), 4 << 30);
}

#[test]
fn first_victim_is_smt_sibling_and_remote_nodes_come_last() {
    // pack:2 numa:2 l3:2 core:4 pu:2
    let t = Topology::build(uniform(2, 2, 2, 4, 2)).unwrap();
    let order = t.steal_order(0);
    let kinds: Vec<_> = order
        .iter()
        .map(|tier| (tier.kind, tier.distance))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (TierKind::Smt, 10),
            (TierKind::Llc, 10),
            (TierKind::Node, 10),
            (TierKind::Remote, 16),
            (TierKind::Remote, 32)
        ],
        "L2 is private per core here, so there is no L2 tier"
    );
    assert_eq!(order.get(0).unwrap().cpus, &[1]);
    assert_eq!(order.get(1).unwrap().cpus, &[2, 3, 4, 5, 6, 7]);
    assert_eq!(
        order.get(2).unwrap().cpus,
        &(8..16).collect::<Vec<u32>>()[..]
    );
    assert_eq!(
        order.get(3).unwrap().cpus,
        &(16..32).collect::<Vec<u32>>()[..]
    );
    assert_eq!(
        order.get(4).unwrap().cpus,
        &(32..64).collect::<Vec<u32>>()[..]
    );
}

#[test]
fn every_other_cpu_appears_exactly_once_in_each_order() {
    for desc in [
        uniform(2, 2, 2, 4, 2),
        uniform(1, 1, 1, 1, 1),
        uniform(4, 4, 1, 2, 1),
    ] {
        let t = Topology::build(desc).unwrap();
        for c in 0..t.num_cpus() {
            let mut all: Vec<u32> = t
                .steal_order(c)
                .iter()
                .flat_map(|x| x.cpus.to_vec())
                .collect();
            all.sort_unstable();
            let expected: Vec<u32> = (0..t.num_cpus() as u32)
                .filter(|&x| x as usize != c)
                .collect();
            assert_eq!(all, expected, "cpu {c}");
            // Distances never decrease along the order, and tier_between agrees with it.
            let order = t.steal_order(c);
            let mut last = 0;
            for tier in order.iter() {
                assert!(tier.distance >= last);
                last = tier.distance;
                for &v in tier.cpus {
                    assert_eq!(t.tier_between(c, v as usize), Some(tier.kind));
                }
            }
        }
    }
}

#[test]
fn llc_spanning_two_nodes_is_one_tier_and_not_repeated_remote() {
    // One package, one L3 shared by two nodes of 2 cores each (SNC-off style), private L2.
    let mut d = TopologyDesc::default();
    let l3 = d.add_cache(CacheDesc {
        level: 3,
        kind: CacheKind::Unified,
        size_bytes: 8 << 20,
        line_bytes: 64,
        associativity: 0,
    });
    for os in 0..4u32 {
        d.pus.push(PuDesc {
            os_index: os,
            apic_id: None,
            package: 0,
            core: u64::from(os),
            node: Some(os / 2),
            caches: vec![l3],
        });
    }
    d.nodes = vec![
        NodeDesc {
            os_index: 0,
            memory_bytes: 1,
        },
        NodeDesc {
            os_index: 1,
            memory_bytes: 1,
        },
    ];
    let t = Topology::build(d).unwrap();
    let kinds: Vec<_> = t
        .steal_order(0)
        .iter()
        .map(|x| (x.kind, x.cpus.to_vec()))
        .collect();
    assert_eq!(kinds, vec![(TierKind::Llc, vec![1, 2, 3])]);
    assert_eq!(t.distance_origin(), DistanceOrigin::Derived);
    assert_eq!(t.distance(0, 1), model::DERIVED_DISTANCE_SAME_PACKAGE);
}

#[test]
fn node_with_several_llcs_and_cpuless_memoryless_nodes() {
    let mut d = uniform(1, 2, 2, 2, 1);
    // A CPU-less node 7 (e.g. CXL memory) and a memoryless node 1.
    d.nodes.push(NodeDesc {
        os_index: 7,
        memory_bytes: 64 << 30,
    });
    d.nodes[1].memory_bytes = 0;
    d.distances = Some(DistanceMatrix {
        nodes: vec![0, 1, 7],
        values: vec![10, 12, 40, 12, 10, 40, 40, 40, 10],
    });
    let t = Topology::build(d).unwrap();
    assert_eq!(t.num_nodes(), 3);
    assert!(t.nodes()[2].pus.is_empty());
    assert_eq!(t.nodes()[1].memory_bytes, 0);
    let kinds: Vec<_> = t.steal_order(0).iter().map(|x| x.kind).collect();
    assert_eq!(kinds, vec![TierKind::Llc, TierKind::Node, TierKind::Remote]);
    assert_eq!(t.steal_order(0).get(2).unwrap().distance, 12);
}

#[test]
fn offline_and_non_contiguous_os_indices() {
    let mut d = uniform(1, 1, 1, 4, 1);
    for (i, pu) in d.pus.iter_mut().enumerate() {
        pu.os_index = [0, 2, 8, 9][i];
    }
    d.offline = "1,3-7".parse().unwrap();
    let t = Topology::build(d).unwrap();
    assert_eq!(t.online_cpus().to_string(), "0,2,8-9");
    assert_eq!(t.offline_cpus().to_string(), "1,3-7");
    assert_eq!(t.cpu_from_os(8), Some(2));
    assert_eq!(t.cpu_from_os(3), None);
    assert_eq!(t.cpu_from_os(1000), None);
}

#[test]
fn build_errors_name_the_culprit() {
    let mut d = uniform(1, 1, 1, 2, 1);
    d.pus[1].os_index = 0;
    let e = Topology::build(d).unwrap_err().to_string();
    assert!(e.contains("PU 0") && e.contains("twice"), "{e}");

    let mut d = uniform(1, 2, 1, 1, 1);
    d.pus[0].node = Some(5);
    let e = Topology::build(d).unwrap_err().to_string();
    assert!(e.contains("node 5"), "{e}");

    let mut d = uniform(2, 1, 1, 1, 1);
    d.distances.as_mut().unwrap().values[1] = 5;
    let e = Topology::build(d).unwrap_err().to_string();
    assert!(e.contains("local distance 10 is larger"), "{e}");

    let mut d = uniform(2, 1, 1, 1, 1);
    d.distances.as_mut().unwrap().values.pop();
    let e = Topology::build(d).unwrap_err().to_string();
    assert!(e.contains("3 values for 2 nodes"), "{e}");

    let e = Topology::build(TopologyDesc::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no online PU"), "{e}");
}

#[test]
fn logical_order_is_independent_of_input_order() {
    let d = uniform(2, 2, 1, 2, 2);
    let mut shuffled = d.clone();
    shuffled.pus.reverse();
    shuffled.nodes.reverse();
    let a = Topology::build(d).unwrap();
    let b = Topology::build(shuffled).unwrap();
    let key = |t: &Topology| {
        t.pus()
            .iter()
            .map(|p| (p.os_index, p.core, p.node))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&a), key(&b));
    // And to_desc round-trips.
    let c = Topology::build(a.to_desc()).unwrap();
    assert_eq!(key(&a), key(&c));
    assert_eq!(a.distance_matrix(), c.distance_matrix());
}

#[test]
fn large_machine_tiers_stay_compact() {
    // 4096 PUs in 16 nodes: tier tables must not be O(CPUs²) (that would be 64 MiB).
    let t = Topology::build(uniform(4, 4, 4, 32, 2)).unwrap();
    assert_eq!(t.num_cpus(), 4096);
    assert!(
        t.steal_tiers_bytes() < 4 << 20,
        "{} bytes",
        t.steal_tiers_bytes()
    );
}

#[test]
fn flat_machine_without_caches_stays_linear() {
    // Found by the synthetic fuzzer: 22221 PUs with no cache level made every CPU's node tier a
    // private copy (O(CPUs²), 2 GB). The rotated shared lists keep it linear.
    let t = Topology::from_synthetic("22221").unwrap();
    assert_eq!(t.num_cpus(), 22221);
    assert!(
        t.steal_tiers_bytes() < 2 << 20,
        "{} bytes",
        t.steal_tiers_bytes()
    );
    let order = t.steal_order(5);
    assert_eq!(order.len(), 1);
    let node_tier = order.get(0).unwrap();
    assert_eq!(node_tier.cpus.len(), 22220);
    assert_eq!(node_tier.cpus[0], 6, "ring order starts after the thief");
    assert!(!node_tier.cpus.contains(&5));
}
