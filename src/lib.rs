//! manycore: a scheduler and an allocator for many-core NUMA machines, with the topology model and
//! simulator they share. This crate is the facade; each layer lives in its own crate.
//!
//! - [`topology`]: the machine model, steal tiers and parsers.
//! - [`sched`]: per-core run queues with topology-aware work stealing.
//! - [`alloc`]: the NUMA-local slab allocator.
//! - [`sim`]: the deterministic simulator.

pub use manycore_alloc as alloc;
pub use manycore_sched as sched;
pub use manycore_sim as sim;
pub use manycore_topology as topology;
