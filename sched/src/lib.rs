//! manycore-sched: per-core run queues with topology-aware work stealing.
//!
//! # What it promises
//! - **Shared-nothing fast path.** A CPU pushes to and pops from its own bounded [`Ring`] and
//!   [`NextSlot`] with plain loads, stores and one uncontended compare-exchange; no lock and no
//!   shared counter is touched while a CPU has work of its own.
//! - **Stealing that knows the machine.** An idle CPU visits victims in the order its [`Policy`]
//!   gives: by default the topology's steal tiers (SMT sibling, shared L2, shared LLC, same node,
//!   then other nodes by distance), with a random start inside each tier and smaller, rarer steals
//!   across nodes. It takes half a victim's ring in one claim.
//! - **No global lock.** Remote spawns, wakes with no idle CPU nearby and ring overflow go to one
//!   [`Injector`] per NUMA node; tasks placed on a specific CPU go to its inbox.
//! - **No stampede, no lost wakeup.** At most a few CPUs per node search at once; sleepers are
//!   bits in per-node bitmaps; the announce / re-check / park protocol with token-semantics park
//!   (see [`idle`]) is model-checked with loom. A one-bit-per-CPU [`WorkSummary`] of where
//!   stealable work may sit lets thieves aim at loaded CPUs and the park re-check skip empty
//!   ones (its set / clear / re-probe protocol is model-checked too).
//! - **Observable.** Per-tier steal counts, wake placements, injector traffic, parks and sampled
//!   wasted-core time ([`Counters`]); every decision also goes to an [`Observer`].
//! - **Deterministic when the host is.** All randomness comes from per-CPU PRNGs seeded by
//!   [`Config::seed`]; a single-threaded host (the simulator) gets bit-identical runs.
//!
//! # What it assumes from its host
//! A [`Platform`]: the current CPU, a monotonic clock, and park/unpark with token semantics.
//! Each CPU id is driven by one thread or virtual CPU at a time (its *owner*); only the owner
//! calls [`Scheduler::next_task`], [`Scheduler::push_local`], [`Scheduler::requeue`] and
//! [`Scheduler::park`] for that id. `no_std` + `alloc`; atomics and cells come from one `sync` module,
//! (`src/sync.rs`), which switches to loom under `cfg(loom)`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(not(loom))]
pub mod arch;
pub mod idle;
pub mod injector;
pub mod next_slot;
pub mod platform;
pub mod policy;
pub mod ring;
pub mod rng;
#[cfg(all(feature = "std", not(loom)))]
pub mod rt;
// The runtime's block/wake handshake is model-checked on its own (the rest of `rt` needs OS
// threads and real stacks).
#[cfg(loom)]
#[path = "rt/handshake.rs"]
mod rt_handshake;
pub mod scheduler;
#[cfg(not(loom))]
pub mod stack;
pub mod stats;
pub mod summary;
pub(crate) mod sync;
pub mod task;

pub use injector::Injector;
pub use next_slot::NextSlot;
pub use platform::{NoObserver, Observer, Platform, WakeReason};
pub use policy::{GlobalPolicy, NoStealPolicy, Policy, RandomPolicy, TopologyPolicy, WakePolicy};
pub use ring::Ring;
pub use scheduler::{Config, ConfigError, Scheduler, SpawnHint};
pub use stats::Counters;
pub use summary::WorkSummary;
pub use task::{Task, TaskHeader, TaskState, WaitQueue};

#[cfg(all(test, not(loom)))]
mod tests;
