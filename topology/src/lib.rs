//! manycore-topology: one picture of the machine for the scheduler, the allocator and the simulator.
//!
//! # What it promises
//! - A model of Machine → Package → NUMA node → caches (L4..L1) → Core → PU, with each PU's logical
//!   index, OS index and APIC id, node memory sizes and an N×N node distance matrix in SLIT
//!   semantics (10 = local). Offline CPUs, memoryless and CPU-less nodes, non-contiguous OS indices,
//!   nodes holding several LLCs and LLCs spanning several nodes are all representable.
//! - Hot-path queries are O(1) table lookups computed once by [`Topology::build`]: node of a CPU,
//!   CPUs of a node, distance between nodes or CPUs, and each CPU's [steal order](Topology::steal_order)
//!   (SMT sibling, shared L2, shared LLC, same node, then other nodes by distance).
//! - Every source produces the same flat [`TopologyDesc`], so two sources describing one machine
//!   build equal models with equal logical numbering.
//! - Bad input is an [`Error`] naming the source, the position and what was expected; parsing never
//!   panics.
//!
//! # What it assumes
//! `no_std` + `alloc`. File-based sources (hwloc XML, sysfs, host discovery) need the `std` feature.
//! Logical CPU indices (`0..num_cpus()`) are the CPU ids the scheduler and allocator use; OS indices
//! appear only where a name says `os`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod acpi;
pub mod cpuid;
pub mod cpuset;
pub mod desc;
pub mod error;
pub mod model;
pub mod render;
pub mod synthetic;
#[cfg(feature = "std")]
pub mod sysfs;
pub mod tiers;
#[cfg(feature = "std")]
pub mod xml;

pub use cpuset::CpuSet;
pub use desc::{CacheDesc, CacheKind, DistanceMatrix, NodeDesc, PuDesc, TopologyDesc};
pub use error::{Error, ErrorKind};
pub use model::{Cache, Core, DistanceOrigin, Node, Package, Pu, Topology};
pub use tiers::{StealOrder, StealTier, TierKind};

#[cfg(test)]
mod tests;
