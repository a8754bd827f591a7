//! Fuzzes the hwloc XML reader: any bytes must give a topology or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manycore_topology::Topology;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Topology::from_hwloc_xml(text) {
        assert!(t.num_cpus() > 0);
        let _ = t.tree().to_string();
    }
});
