//! Turning `--topology STR|FILE|PRESET` into a machine.
//!
//! Resolution order, first match wins:
//! 1. `host`: the machine the simulator runs on.
//! 2. A preset name ([`crate::presets`]).
//! 3. An existing directory: a recorded Linux sysfs tree (standing for `/sys`).
//! 4. An existing file: hwloc XML (`lstopo --of xml`).
//! 5. Anything else: an hwloc synthetic description (`pack:2 numa:2 l3:1 core:8 pu:2`, with an
//!    optional `distances=10,20;20,10` matrix).
//!
//! Errors name the source and say what the input was taken for.

use manycore_topology::Topology;

use crate::presets;

/// Loads a topology from a `--topology` argument.
pub fn load(spec: &str) -> Result<Topology, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(format!(
            "--topology: empty; expected a preset ({}), a file, a sysfs directory, `host` or a synthetic description",
            preset_names()
        ));
    }
    if let Some(p) = presets::find(spec) {
        return Ok(p.build());
    }
    Err(format!(
        "--topology {spec:?}: not a preset ({}); file, sysfs, host and synthetic sources arrive with manycore-topology's parsers",
        preset_names()
    ))
}

/// The preset names, comma-separated.
pub fn preset_names() -> String {
    presets::PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}
