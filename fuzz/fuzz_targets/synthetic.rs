//! Fuzzes the hwloc synthetic parser: any string must give a topology or an error, never a
//! panic, and an accepted topology must satisfy the model's invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manycore_topology::Topology;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Topology::from_synthetic(text) {
        check(&t);
    }
});

fn check(t: &Topology) {
    let n = t.num_cpus();
    assert!(n > 0);
    for cpu in 0..n.min(64) {
        let mut seen = 0;
        for tier in t.steal_order(cpu).iter() {
            seen += tier.cpus.len();
        }
        assert_eq!(seen, n - 1, "every other CPU appears once in a steal order");
        assert!(t.node_of(cpu) < t.num_nodes());
    }
}
