//! The one place where the simulator meets the scheduler.
//!
//! The engine drives a [`SchedCore`]: it hands it tasks that become runnable (spawned, woken,
//! yielded) and asks it, for a CPU that is free, which task runs next. The scheduler talks back
//! through [`SimPlatform`], the simulator's implementation of the platform seam (clock, park and
//! unpark of virtual CPUs, task metadata) and of the observer (every steal probe, steal, injector
//! operation and cross-CPU placement is reported, and the engine prices it with the cost model).
//!
//! Tasks are `u32` handles owned by the engine; the scheduler only queues handles.
//!
//! # The platform protocol
//! 1. A CPU whose task ended (or that was unparked) calls [`SchedCore::next`]. `Some(task)`: it
//!    runs the task. `None`: the engine calls [`SchedCore::park`] at the same virtual instant and
//!    the CPU sleeps until the scheduler calls [`SimPlatform::unpark`] for it.
//! 2. A scheduler unparks only CPUs it has seen park and not unparked since; the engine turns the
//!    call into a wake-up event after the cost model's unpark latency, then back to step 1.
//! 3. At the end of a run no task may be left queued: a queued task with every CPU parked is a
//!    lost wakeup, reported as an error by the engine.

use crate::cost::CostModel;
use crate::linux::Linux;
use crate::machine::Machine;
use crate::queues::{Queues, StealPolicy};

/// What the scheduler sees of the simulated platform, and where it reports what it did.
pub trait SimPlatform {
    /// Virtual time.
    fn now_ns(&self) -> u64;
    /// A task's home node.
    fn task_home(&self, task: u32) -> usize;
    /// The CPU a task last ran on.
    fn task_last_cpu(&self, task: u32) -> Option<usize>;
    /// Wake parked CPU `cpu`; `from` is the CPU that decided it.
    fn unpark(&mut self, from: usize, cpu: usize);
    /// Observer: `thief` probed `victims` CPUs without finding work, costing `cost_ns` in total.
    fn probes(&mut self, thief: usize, victims: u64, cost_ns: u64);
    /// Observer: `thief` took `n` tasks from `victim`'s queue.
    fn stole(&mut self, thief: usize, victim: usize, n: usize);
    /// Observer: `cpu` moved `n` tasks to or from node `node`'s injector (or the global queue).
    fn injector(&mut self, cpu: usize, node: usize, n: usize);
    /// Observer: `from` queued a task on CPU `to`'s queue (a remote push or wake placement).
    fn placed(&mut self, from: usize, to: usize);
}

/// A scheduler the engine can drive (one per run; single-threaded, deterministic).
pub trait SchedCore {
    /// A task spawned on `cpu` (the spawner's CPU, or the CPU an arrival was steered to).
    fn spawn(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32);
    /// A blocked task woken by a task running on `cpu`.
    fn wake(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32);
    /// The running task on `cpu` yields.
    fn requeue(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32);
    /// `cpu` is free: which task runs next?
    fn next(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32>;
    /// `cpu` found nothing and parks.
    fn park(&mut self, p: &mut dyn SimPlatform, cpu: usize);
    /// Period of [`SchedCore::tick`], for policies that balance on a timer.
    fn tick_ns(&self) -> Option<u64>;
    /// A periodic balancing tick (all CPUs at once).
    fn tick(&mut self, p: &mut dyn SimPlatform, busy: &[bool]);
    /// Tasks queued and not running.
    fn queued(&self) -> u64;
}

/// Policy names, in table order.
pub const POLICIES: &[&str] = &["topology", "random", "nosteal", "global", "linux"];

/// Builds the scheduler for a policy name.
pub fn build(
    policy: &str,
    machine: &Machine,
    cost: &CostModel,
    seed: u64,
) -> Result<Box<dyn SchedCore>, String> {
    let steal = match policy {
        "topology" => StealPolicy::Topology,
        "random" => StealPolicy::Random,
        "nosteal" => StealPolicy::NoSteal,
        "global" => StealPolicy::Global,
        "linux" => return Ok(Box::new(Linux::new(machine, cost, seed))),
        _ => {
            return Err(format!(
                "unknown policy {policy:?}; expected one of: {}, or all",
                POLICIES.join(", ")
            ));
        }
    };
    Ok(Box::new(Queues::new(steal, machine, cost, seed)))
}

/// Parses `all` or a comma-separated list of policy names.
pub fn parse_list(s: &str) -> Result<Vec<String>, String> {
    if s.trim() == "all" {
        return Ok(POLICIES.iter().map(|p| p.to_string()).collect());
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        if !POLICIES.contains(&name) {
            return Err(format!(
                "--policy: unknown policy {name:?}; expected a comma-separated list of {} or `all`",
                POLICIES.join(", ")
            ));
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}
