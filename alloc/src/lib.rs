//! manycore-alloc: a NUMA-local slab allocator. Per-CPU (kernel) or per-thread (user space)
//! magazine caches, per-node depots and slabs, and frees of another node's memory sent home in
//! batches. One `no_std` core; a Linux backend behind the `std` feature.
//!
//! # What it promises
//! - **Placement.** Every block comes from pages of the node its cache serves (or the node a
//!   [`NodeAlloc`] handle names). Pages are requested per node from the [`PageSource`]; on
//!   Linux they are `mbind`-ed (`MPOL_PREFERRED` by default, `MPOL_BIND` on request) before
//!   first touch, and [`Heap::verify_placement`] checks with `move_pages` where they really
//!   are, recording off-node pages in the node's statistics.
//! - **No lock and no atomic read-modify-write on the fast path.** Allocation pops from, and a
//!   local free pushes to, the cache's loaded magazine ([`Cache`]). Locks are taken once per
//!   magazine exchange with the node's depot (Bonwick's magazine layer).
//! - **Remote frees go home.** A block freed by a cache of another node never enters that
//!   cache's magazines; it joins a per-destination batch and is spliced onto the owner node's
//!   lock-free inbox ([`remote_free`] protocol), which the owner drains
//!   into its slabs.
//! - **Small blocks stay with their cache.** Slabs of the classes up to 56 B are owned by one
//!   cache at a time ([`owned`]); a block freed by another cache goes back to its slab's
//!   owner through the slab's lock-free [`thread_free`] list, never into the freeing cache's
//!   magazine, so two threads are not handed neighbouring blocks of one cache line (passive
//!   false sharing). Exited threads' slabs are given up and adopted by the next cache.
//! - **O(1) owner lookup.** Blocks live in 4 MiB-aligned segments with their header at the
//!   base: masking a pointer gives the header, whose class table gives the block's class and
//!   whose `node` gives its owner node and whose per-cell tag gives the block's class and
//!   owning cache.
//! - **Bounded waste and bounded caching.** 80 size classes from 8 B to 32 KiB with at most
//!   12.5 % internal waste above 64 B ([`size_class`]); larger objects go straight to the page
//!   source. Magazines, depots, remote batches, kept empty slabs and cached segments all have
//!   named bounds; a cache holds at most [`Heap::cache_budget_bytes`] bytes of blocks; depots
//!   shed what their working set did not use ([`REAP_INTERVAL_OPS`](depot::REAP_INTERVAL_OPS));
//!   [`Heap::trim`] returns everything spare.
//! - **Failure is null.** Exhausted pages, impossible layouts (alignment above
//!   [`ALIGN_MAX_BYTES`], sizes that overflow) and unknown nodes give a null pointer, never a
//!   panic. With the `checked` feature, double and invalid frees abort with a message naming
//!   the pointer.
//!
//! # Invariants
//! 1. A segment's header (kind, node, slab shift) is immutable while the segment is in use; a
//!    cell's class-table entry changes only while the cell holds no live block.
//! 2. A block is owned by exactly one of: a user, one cache magazine, one depot magazine, a
//!    slab free list, a slab's thread-free list, a remote batch, a node inbox.
//! 3. Every block in a cache's magazines belongs to the cache's node.
//! 4. Lock order: class lock, then magazine-pool lock, then segment lock, then the page
//!    source. Nothing holds two class locks.
//!
//! # What it assumes from its platform
//! - A [`PageSource`]: page-granular memory on a node, aligned to at least 4 KiB (4 MiB for
//!   segments), optionally machine discovery, the current CPU, and a placement query.
//! - Kernel ([`PerCpu`]): a [`CpuLocal`] with the current CPU and `preempt_disable` /
//!   `preempt_enable`; between them the CPU's cache is used by nothing else (interrupt handlers
//!   that allocate must be held off too).
//! - User space ([`NumaSlab`], `std`): Linux with 4 KiB pages; glibc's rseq ABI symbols
//!   (`__rseq_offset`, `__rseq_size`) are used only to read the current CPU cheaply; without
//!   them, `sched_getcpu`. Caches are **per thread** ([`CacheMode::PerThread`]): this crate has
//!   no restartable per-CPU critical section, so it does not claim per-CPU caches in user
//!   space. A thread's cache follows its thread to another node on the next slow path.
//!
//! # Layers (one file each)
//! [`size_class`] -> [`segment`] (layout, owner lookup) -> `slab.rs` (blocks of one class) ->
//! [`magazine`] and [`depot`] (exchange of full and empty magazines) -> [`thread_free`] and
//! [`owned`] (slabs owned by one cache, frees sent to the owner) -> [`remote_free`]
//! (batches and inboxes) -> `node.rs` (one node's share: class locks, segments, inbox,
//! counters) -> [`heap`] (the shared paths, large objects, trim, statistics) ->
//! [`cpu_cache`] (the fast paths) -> front-ends: [`global`] (`NumaSlab`, std), [`percpu`]
//! (kernel), [`node_alloc`] (allocator-api2 handles), [`object_cache`] (typed caches).
//! Atomics and locks come from one `sync` module, which switches to loom under `cfg(loom)`.
//!
//! # Checking it
//! - `cargo test -p manycore-alloc` (the stress test runs its 10^7 operations, and checks the
//!   heap's counters saw at least that many, in every build: 9-34 s in debug, 1-4 s with
//!   `--release` on the shared 2-vCPU VM, depending on its load);
//!   `cargo test -p manycore-alloc --features checked`.
//! - `RUSTFLAGS="--cfg loom" cargo test -p manycore-alloc --release --lib loom` (remote-free
//!   inbox, depot exchange, thread-free list).
//! - `cargo +nightly miri test -p manycore-alloc --lib miri_` (core paths over
//!   [`SystemPageSource`], two fake nodes).
//!
//! ```
//! use core::alloc::Layout;
//! use manycore_alloc::{Cache, Heap, NodeMap, SystemPageSource};
//!
//! // A fake two-node machine: every NUMA path runs on any host.
//! let heap = Heap::with_node_map(SystemPageSource::new(), NodeMap::fake(2, 4).unwrap());
//! let mut on0 = Cache::new(0, false);
//! let mut on1 = Cache::new(1, false);
//! let p = on0.alloc(&heap, 100, 8);
//! assert_eq!(heap.source().node_of(p), Some(0));
//! // Freed on node 1: sent home to node 0, never cached on node 1.
//! unsafe { on1.free(&heap, p) };
//! on1.flush(&heap);
//! heap.trim();
//! assert_eq!(heap.stats(0).remote_frees(), 1);
//! # let _ = Layout::new::<u8>();
//! ```
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
pub mod depot;
#[cfg(all(feature = "std", not(loom)))]
pub mod global;
#[cfg(not(loom))]
pub mod heap;
pub mod magazine;
#[cfg(not(loom))]
pub(crate) mod node;
#[cfg(not(loom))]
pub mod node_alloc;
pub mod node_map;
#[cfg(not(loom))]
pub mod object_cache;
#[cfg(not(loom))]
pub mod owned;
pub mod page_source;
#[cfg(not(loom))]
pub mod percpu;
pub mod remote_free;
#[cfg(not(loom))]
pub mod segment;
pub mod size_class;
#[cfg(not(loom))]
pub(crate) mod slab;
#[cfg(not(loom))]
pub mod stats;
pub(crate) mod sync;
#[cfg(feature = "std")]
pub mod sys;
pub mod thread_free;

#[cfg(not(loom))]
pub use cpu_cache::Cache;
#[cfg(all(feature = "std", not(loom)))]
pub use global::{CacheMode, NumaSlab};
#[cfg(not(loom))]
pub use heap::Heap;
#[cfg(not(loom))]
pub use node_alloc::NodeAlloc;
pub use node_map::{DiscoveryError, MAX_CPUS, MAX_NODES, MapOrigin, NodeMap, NodeMapError};
#[cfg(not(loom))]
pub use object_cache::{ObjectBox, ObjectCache};
#[cfg(feature = "std")]
pub use page_source::SystemPageSource;
pub use page_source::{PageSource, Placement};
#[cfg(not(loom))]
pub use percpu::{CpuLocal, PerCpu};
#[cfg(not(loom))]
pub use segment::{ALIGN_MAX_BYTES, SEGMENT_BYTES};
#[cfg(not(loom))]
pub use stats::{ClassStats, NodeStats};

#[cfg(all(test, feature = "std", not(loom)))]
mod tests;
