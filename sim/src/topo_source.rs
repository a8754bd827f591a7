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

use std::path::Path;

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
    if spec == "host" {
        return Topology::host()
            .map_err(|e| format!("--topology host: cannot read the host topology: {e}"));
    }
    if let Some(p) = presets::find(spec) {
        return Ok(p.build());
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return Topology::from_sysfs(path)
            .map_err(|e| format!("--topology {spec} (read as a sysfs directory): {e}"));
    }
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--topology {spec}: cannot read: {e}"))?;
        return Topology::from_hwloc_xml(&text)
            .map_err(|e| format!("--topology {spec} (read as hwloc XML): {e}"));
    }
    if !spec.contains(':') && !spec.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!(
            "--topology {spec:?}: not a preset ({}), not an existing file or directory, and not a synthetic description (those look like \"pack:2 core:4 pu:2\")",
            preset_names()
        ));
    }
    Topology::from_synthetic(spec)
        .map_err(|e| format!("--topology (read as a synthetic description): {e}"))
}

/// The preset names, comma-separated.
pub fn preset_names() -> String {
    presets::PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}
