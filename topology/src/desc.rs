//! `TopologyDesc`: the flat, source-neutral description every source produces.
//!
//! Each source (hwloc synthetic, hwloc XML, sysfs, CPUID, ACPI) only has to say, for each online PU,
//! which package, core, NUMA node and caches it belongs to, plus the nodes, caches and distances
//! it knows. [`crate::Topology::build`] turns that into the indexed model and validates it, so the
//! sources cannot disagree about ordering, indexing or tiers.

use alloc::vec::Vec;

use crate::cpuset::CpuSet;

/// One online processing unit (hardware thread) as a source found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PuDesc {
    /// The operating system's index (Linux CPU number, hwloc `os_index`).
    pub os_index: u32,
    /// The (x2)APIC id, when the source knows it.
    pub apic_id: Option<u32>,
    /// The package's OS index (physical_package_id).
    pub package: u32,
    /// Key of the core, unique within its package (sysfs: die and core_id combined).
    pub core: u64,
    /// The OS index of the PU's NUMA node; `None` only when the description has no nodes at all.
    pub node: Option<u32>,
    /// Indices into [`TopologyDesc::caches`] of the caches this PU uses.
    pub caches: Vec<usize>,
}

/// What a cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CacheKind {
    /// Data and instructions.
    Unified,
    /// Data only.
    Data,
    /// Instructions only (never used to build steal tiers).
    Instruction,
}

/// One cache instance (shared by the PUs that list it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheDesc {
    /// 1 for L1, 2 for L2, ...
    pub level: u8,
    /// Unified, data or instruction.
    pub kind: CacheKind,
    /// Capacity in bytes (0 when unknown).
    pub size_bytes: u64,
    /// Line size in bytes (0 when unknown).
    pub line_bytes: u32,
    /// Associativity in ways (0 when unknown, -1 fully associative as in hwloc).
    pub associativity: i32,
}

/// One NUMA node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDesc {
    /// The OS index (Linux node number).
    pub os_index: u32,
    /// Local memory in bytes; 0 for a memoryless node.
    pub memory_bytes: u64,
}

/// A node distance matrix in SLIT semantics (10 = local; larger is farther).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistanceMatrix {
    /// The node OS indices, in the order of the matrix rows and columns.
    pub nodes: Vec<u32>,
    /// Row-major `nodes.len()²` values: `values[i * n + j]` is the distance from `nodes[i]` to
    /// `nodes[j]`.
    pub values: Vec<u32>,
}

/// Everything a source knows about a machine, before validation and indexing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyDesc {
    /// Online PUs, in any order.
    pub pus: Vec<PuDesc>,
    /// NUMA nodes (including CPU-less ones). Empty means "one node holding everything".
    pub nodes: Vec<NodeDesc>,
    /// Cache instances referenced by `PuDesc::caches`.
    pub caches: Vec<CacheDesc>,
    /// Node distances, if the source has them.
    pub distances: Option<DistanceMatrix>,
    /// OS indices of CPUs that exist but are offline: kept, never scheduled on.
    pub offline: CpuSet,
    /// The process affinity mask at discovery time (OS indices), if known. The model is not
    /// shrunk to it; users intersect with it.
    pub allowed: Option<CpuSet>,
    /// Machine-level memory in bytes not attached to any listed node (rare; hwloc `Machine`).
    pub machine_memory_bytes: u64,
}

impl TopologyDesc {
    /// Adds a cache and returns its index for `PuDesc::caches`.
    pub fn add_cache(&mut self, cache: CacheDesc) -> usize {
        self.caches.push(cache);
        self.caches.len() - 1
    }
}
