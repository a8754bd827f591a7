//! Fuzzes the ACPI MADT/SRAT/SLIT parsers on the same bytes: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manycore_topology::{Topology, acpi};

fuzz_target!(|data: &[u8]| {
    let madt = acpi::parse_madt(data);
    let srat = acpi::parse_srat(data);
    let slit = acpi::parse_slit(data);
    if let Ok(madt) = madt {
        if let Ok(m) = acpi::machine(&madt, srat.as_ref().ok(), slit.as_ref().ok(), None) {
            let _ = Topology::build(m.desc);
        }
    }
});
