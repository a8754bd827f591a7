//! Choosing a topology source from command-line flags.

use std::path::PathBuf;

use clap::Args;
use manycore_topology::Topology;

/// Where a topology comes from. At most one flag may be given; none means the host.
#[derive(Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub struct SourceArgs {
    /// An hwloc synthetic description, e.g. "pack:2 numa:2 l3:1 core:8 pu:2" (add
    /// "distances=10,20;20,10" for a distance matrix).
    #[arg(long, value_name = "STR")]
    pub synthetic: Option<String>,
    /// An hwloc XML file (v2, as written by `lstopo --of xml`).
    #[arg(long, value_name = "FILE")]
    pub xml: Option<PathBuf>,
    /// A recorded Linux sysfs tree (a directory standing for /sys).
    #[arg(long, value_name = "DIR")]
    pub sysfs: Option<PathBuf>,
}

impl SourceArgs {
    /// Loads the chosen topology. Errors say which source and where it was malformed.
    pub fn load(&self) -> Result<Topology, String> {
        if let Some(s) = &self.synthetic {
            return Topology::from_synthetic(s).map_err(|e| e.to_string());
        }
        if let Some(path) = &self.xml {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read hwloc XML file {}: {e}", path.display()))?;
            return Topology::from_hwloc_xml(&text).map_err(|e| format!("{}: {e}", path.display()));
        }
        if let Some(dir) = &self.sysfs {
            return Topology::from_sysfs(dir).map_err(|e| e.to_string());
        }
        Topology::host().map_err(|e| format!("cannot read the host topology: {e}"))
    }
}
