//! manycore-alloc: a NUMA-local slab allocator (crate doc filled in below as pieces land).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the lock-free pieces are built; the heap that uses the rest is not.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(all(feature = "checked", not(loom)))]
mod checked;
#[cfg(not(loom))]
pub mod cpu_cache;
pub(crate) mod depot;
#[cfg(not(loom))]
pub mod heap;
pub(crate) mod magazine;
#[cfg(not(loom))]
pub(crate) mod node;
#[cfg(not(loom))]
pub mod node_alloc;
#[cfg(not(loom))]
pub mod object_cache;
#[cfg(not(loom))]
pub mod percpu;
#[cfg(all(feature = "std", not(loom)))]
pub mod global;
pub mod node_map;
pub mod page_source;
pub(crate) mod remote_free;
#[cfg(not(loom))]
pub(crate) mod segment;
pub mod size_class;
#[cfg(not(loom))]
pub(crate) mod slab;
#[cfg(not(loom))]
pub mod stats;
pub(crate) mod sync;
#[cfg(feature = "std")]
pub mod sys;

#[cfg(not(loom))]
pub use cpu_cache::Cache;
#[cfg(all(feature = "std", not(loom)))]
pub use global::{CacheMode, NumaSlab};
#[cfg(not(loom))]
pub use heap::Heap;
#[cfg(not(loom))]
pub use node_alloc::NodeAlloc;
#[cfg(not(loom))]
pub use object_cache::{ObjectBox, ObjectCache};
#[cfg(not(loom))]
pub use percpu::{CpuLocal, PerCpu};
pub use node_map::{MAX_CPUS, MAX_NODES, NodeMap, NodeMapError};
#[cfg(feature = "std")]
pub use page_source::SystemPageSource;
pub use page_source::{PageSource, Placement};
#[cfg(not(loom))]
pub use segment::{ALIGN_MAX_BYTES, SEGMENT_BYTES};
#[cfg(not(loom))]
pub use stats::{ClassStats, NodeStats};

#[cfg(all(test, feature = "std", not(loom)))]
mod tests;
