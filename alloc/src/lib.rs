//! manycore-alloc: a NUMA-local slab allocator (crate doc filled in below as pieces land).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod depot;
pub mod magazine;
pub mod node_map;
pub mod page_source;
pub mod remote_free;
#[cfg(not(loom))]
pub mod segment;
pub mod size_class;
pub(crate) mod sync;
#[cfg(feature = "std")]
pub(crate) mod sys;

pub use node_map::{MAX_CPUS, MAX_NODES, NodeMap, NodeMapError};
pub use page_source::{PageSource, Placement};
#[cfg(feature = "std")]
pub use page_source::SystemPageSource;
