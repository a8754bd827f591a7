//! The machine as the kernel found it, as JSON (the `topology` member of every `RESULT` line).
//!
//! Field names follow `manycore topo --json` so the host can compare the two directly:
//! `packages`, `cores`, `pus`, `nodes` (`os_index`, `cpus` as OS indices, `memory_bytes`),
//! `distances` (row-major by logical node), plus `cpus`: each CPU's OS index, APIC id, package
//! and node OS indices.

use manycore_topology::Topology;

use crate::json::Json;

/// Writes the topology object.
pub fn topology(j: &mut Json, topo: &Topology) {
    j.begin_object();
    j.field_uint("packages", topo.num_packages() as u64);
    j.field_uint("cores", topo.num_cores() as u64);
    j.field_uint("pus", topo.num_cpus() as u64);
    j.key("nodes").begin_array();
    for n in topo.nodes() {
        j.begin_object();
        j.field_uint("os_index", u64::from(n.os_index));
        j.key("cpus").begin_array();
        for c in n.cpus.iter() {
            j.uint(c as u64);
        }
        j.end_array();
        j.field_uint("memory_bytes", n.memory_bytes);
        j.end_object();
    }
    j.end_array();
    let nn = topo.num_nodes();
    j.key("distances").begin_array();
    for a in 0..nn {
        j.begin_array();
        for b in 0..nn {
            j.uint(u64::from(topo.distance(a, b)));
        }
        j.end_array();
    }
    j.end_array();
    j.key("cpus").begin_array();
    for pu in topo.pus() {
        j.begin_object();
        j.field_uint("os_index", u64::from(pu.os_index));
        j.field_uint("apic_id", u64::from(pu.apic_id.unwrap_or(u32::MAX)));
        j.field_uint("package", u64::from(topo.packages()[pu.package].os_index));
        j.field_uint("node", u64::from(topo.nodes()[pu.node].os_index));
        j.end_object();
    }
    j.end_array();
    j.end_object();
}
