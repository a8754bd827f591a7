//! The platform seam: what a host (user-space runtime, simulator, kernel) provides to the
//! scheduler, and the observer through which it watches every decision.
//!
//! See docs/PORTING.md for the contract in full.

use manycore_topology::TierKind;

/// What the scheduler needs from its host.
///
/// # Contract
/// - `park(cpu, deadline)` blocks the calling CPU until `unpark(cpu)` is called or the deadline
///   (platform nanoseconds) passes. Unpark has *token* semantics: an `unpark` that arrives before
///   the matching `park` makes that `park` return at once. This is what makes the scheduler's
///   "announce, re-check, park" protocol free of lost wakeups.
/// - `park` may return spuriously; the scheduler re-checks its queues.
/// - `current_cpu()` is the logical CPU whose thread (or virtual CPU) is calling, when known.
pub trait Platform: Send + Sync {
    /// The logical CPU of the caller, if it is one of the scheduler's CPUs.
    fn current_cpu(&self) -> Option<usize>;
    /// Monotonic nanoseconds.
    fn now_ns(&self) -> u64;
    /// Blocks `cpu` (the caller) until unparked or `deadline_ns` passes.
    fn park(&self, cpu: usize, deadline_ns: Option<u64>);
    /// Wakes `cpu` (or makes its next `park` return at once).
    fn unpark(&self, cpu: usize);
}

/// Why a woken task was placed where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// The waker's own CPU (the task goes to its next slot).
    Local,
    /// The task's last CPU was idle.
    LastCpu,
    /// An idle CPU sharing the last CPU's LLC.
    Llc,
    /// An idle CPU of the task's (home or last) node.
    Node,
    /// An idle CPU elsewhere.
    Remote,
    /// No idle CPU: queued on the node's injector for whoever comes first.
    Queued,
}

impl WakeReason {
    /// All reasons, in counter order.
    pub const ALL: [WakeReason; 6] = [
        WakeReason::Local,
        WakeReason::LastCpu,
        WakeReason::Llc,
        WakeReason::Node,
        WakeReason::Remote,
        WakeReason::Queued,
    ];

    /// Counter index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        ["local", "last_cpu", "llc", "node", "remote", "queued"][self as usize]
    }
}

/// Receives every scheduling decision. All methods default to doing nothing, so a host pays
/// only for what it watches. Called on the CPU that made the decision.
pub trait Observer: Send + Sync {
    /// `thief` looked at `victim` (in `tier`) and took `count` tasks (0: found nothing).
    fn steal(&self, thief: usize, victim: usize, tier: TierKind, count: usize) {
        let _ = (thief, victim, tier, count);
    }
    /// `cpu` moved `count` tasks to (`push == true`) or from an injector of `node` (`None`:
    /// a CPU inbox or the global queue).
    fn injector(&self, cpu: usize, node: Option<usize>, push: bool, count: usize) {
        let _ = (cpu, node, push, count);
    }
    /// A woken or spawned task was placed on `target` by `waker`.
    fn placed(&self, waker: Option<usize>, target: usize, reason: WakeReason) {
        let _ = (waker, target, reason);
    }
    /// `cpu` found no work and is about to park.
    fn idle(&self, cpu: usize) {
        let _ = cpu;
    }
    /// `cpu` found work after being idle.
    fn busy(&self, cpu: usize) {
        let _ = cpu;
    }
}

/// An observer that watches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}
