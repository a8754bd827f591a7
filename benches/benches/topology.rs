//! Topology benchmarks: building a 4096-PU, 16-node machine with its steal tiers (goal: under
//! 50 ms), and the hot-path lookups (node_of, distance, cpu_from_os, steal_order) on a small and
//! a large machine, which must cost the same if they are O(1).
//!
//! Run: `cargo bench -p manycore-benches --bench topology`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use manycore_topology::Topology;

/// 4 packages x 4 nodes x 4 L3 x 32 cores x 2 threads = 4096 PUs in 16 nodes, with a SLIT of
/// 10 local, 12 same package, 32 other package.
pub fn large_description() -> String {
    let n = 16;
    let rows: Vec<String> = (0..n)
        .map(|a| {
            (0..n)
                .map(|b| {
                    if a == b {
                        "10"
                    } else if a / 4 == b / 4 {
                        "12"
                    } else {
                        "32"
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    format!(
        "pack:4 numa:4 l3:4 core:32 pu:2 distances={}",
        rows.join(";")
    )
}

fn build(c: &mut Criterion) {
    let large = large_description();
    let t = Topology::from_synthetic(&large).unwrap();
    assert_eq!((t.num_cpus(), t.num_nodes()), (4096, 16));
    let mut g = c.benchmark_group("topology_build");
    g.sample_size(20);
    g.bench_function("4096pu_16node_synthetic_with_tiers", |b| {
        b.iter(|| Topology::from_synthetic(black_box(&large)).unwrap())
    });
    let desc = t.to_desc();
    g.bench_function("4096pu_16node_from_desc_with_tiers", |b| {
        b.iter(|| Topology::build(black_box(desc.clone())).unwrap())
    });
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let small = Topology::from_synthetic("pack:1 numa:1 core:2 pu:2").unwrap();
    let large = Topology::from_synthetic(&large_description()).unwrap();
    let mut g = c.benchmark_group("topology_lookup");
    for (name, t) in [("4pu", &small), ("4096pu", &large)] {
        let n = t.num_cpus();
        // 1024 pseudo-random CPU pairs, the same sequence for both machines.
        let pairs: Vec<(usize, usize)> = (0..1024usize)
            .map(|i| ((i * 2_654_435_761) % n, (i * 40_503 + 7) % n))
            .collect();
        g.bench_with_input(
            BenchmarkId::new("node_of+distance_x1024", name),
            &pairs,
            |b, pairs| {
                b.iter(|| {
                    let mut sum = 0u64;
                    for &(a, c) in pairs {
                        sum += t.node_of(a) as u64 + u64::from(t.cpu_distance(a, c));
                    }
                    black_box(sum)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("cpu_from_os_x1024", name),
            &pairs,
            |b, pairs| {
                b.iter(|| {
                    let mut sum = 0usize;
                    for &(a, _) in pairs {
                        sum += t.cpu_from_os(a as u32).unwrap_or(0);
                    }
                    black_box(sum)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("steal_order_first_tier_x1024", name),
            &pairs,
            |b, pairs| {
                b.iter(|| {
                    let mut sum = 0usize;
                    for &(a, _) in pairs {
                        sum += t.steal_order(a).get(0).map_or(0, |tier| tier.cpus.len());
                    }
                    black_box(sum)
                })
            },
        );
    }
    g.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, build, lookups);
}
use group::benches;
criterion_main!(benches);
