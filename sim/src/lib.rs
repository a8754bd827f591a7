//! manycore-sim: the scheduler on virtual NUMA machines, deterministically.
//!
//! # What it promises
//! - **Determinism.** The same topology, workload, parameters, cost model and seed give
//!   bit-identical results: one virtual clock, an event queue ordered by `(time, insertion
//!   number)` ([`event`]), and random numbers only from streams derived from the seed ([`rng`]).
//!   Nothing reads the host clock, addresses, hash-map order or thread timing. A sweep runs
//!   simulations in parallel, each one sequential.
//! - **The scheduler under test is driven through one seam** ([`sched_bridge`]): the engine hands
//!   it runnable tasks and asks it for the next task of a free CPU; everything the scheduler does
//!   is reported back and priced by the [cost model](cost), documented with its sources in
//!   docs/SIMULATOR.md and overridable from a TOML/JSON file.
//! - **Bounded memory.** Memory follows tasks in flight and the machine size, not the number of
//!   tasks run: a slab of live tasks, fixed-size histograms and timelines, an event queue holding
//!   one event per CPU plus pending arrivals, a streaming trace writer.
//! - **Bad input is an error naming what and where** (topology, workload, parameter, cost model,
//!   trace file), never a panic.
//!
//! # What it assumes
//! Tasks are cooperative: a segment runs to its end. Memory bandwidth contention, SMT sharing of a
//! core's throughput and interrupt costs are not modeled (docs/SIMULATOR.md, "Limits").
//!
//! # Map
//! [`engine`] runs one policy; [`scenario`] runs several and builds reports; [`workload`] holds the
//! programs; [`presets`] and [`topo_source`] the machines; [`report`], [`plot`] and
//! [`chrome_trace`] the outputs; [`sweep`] the parallel parameter sweeps.

pub mod chrome_trace;
pub mod cost;
pub mod engine;
pub mod event;
pub mod histogram;
pub mod linux;
pub mod machine;
pub mod metrics;
pub mod params;
pub mod plot;
pub mod presets;
pub mod progress;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sched_bridge;
pub mod sweep;
pub mod topo_source;
pub mod workload;

pub use cost::CostModel;
pub use engine::{RunOptions, RunResult};
pub use machine::Machine;
pub use report::Report;
pub use scenario::Scenario;

#[cfg(test)]
mod tests;
