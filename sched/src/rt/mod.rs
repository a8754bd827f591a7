//! The user-space runtime: stackful tasks on worker threads pinned one per CPU, scheduled by
//! [`Scheduler`](crate::Scheduler), for which this module is the user-space
//! [`Platform`](crate::Platform).
//!
//! ```no_run
//! use manycore_sched::rt::{self, Runtime};
//!
//! let rt = Runtime::new().expect("runtime");
//! let h = rt.spawn(|| {
//!     let child = rt::spawn(|| 6 * 7).expect("inside a task");
//!     rt::yield_now();
//!     child.join().expect("child")
//! });
//! assert_eq!(h.join().expect("task"), 42);
//! rt.shutdown();
//! ```
//!
//! # Shape (one file per mechanism)
//! - `builder.rs`: [`Builder`] (topology, CPU set, stack size, scheduler config, policy,
//!   observer, overflow action) and [`Runtime`] (spawn with optional CPU/node, counters,
//!   shutdown that joins every worker and reports unfinished tasks).
//! - `platform.rs`: the [`Platform`](crate::Platform) implementation: `sched_setaffinity`
//!   pinning, a monotonic clock, and a per-CPU futex parker that spins briefly (bounded) first.
//! - `worker.rs`: the host loop (`next_task`, bounded idle spin, park) and the task side of the
//!   switch ([`yield_now`], suspension for blocking, entry and exit).
//! - `task.rs`: one allocation per task (header + closure + result slot), [`JoinHandle`],
//!   [`JoinError`].
//! - `wait.rs`: the park token ([`block`], [`TaskWaker`]) and the one-shot waiters every
//!   primitive queues; `mutex.rs` ([`Mutex`]), `condvar.rs` ([`Condvar`], [`Event`]),
//!   `channel.rs` (bounded MPMC [`channel`]), `timer.rs` ([`sleep`]), `future.rs` ([`block_on`]).
//! - `stacks.rs`: the stack source (plain `mmap`, `mmap` bound to the starting CPU's node on
//!   multi-node hosts, or one given to [`Builder::stack_source`]).
//! - `futex_pingpong.rs`: [`FutexPingPong`], the OS-thread futex ping-pong that benchmarks
//!   compare the runtime's ping-pong with.
//! - `overflow.rs`: the `SIGSEGV` handler that names a task whose stack overflowed
//!   ([`OverflowAction`]).
//!
//! # Tasks and switches
//! A task runs on its own guarded stack from a per-CPU pool ([`StackPool`](crate::stack::StackPool)).
//! A worker *resumes* it ([`arch::resume`](crate::arch::resume)) and the task *suspends* back
//! when it yields, blocks or finishes, leaving in its state what the worker should do next
//! (requeue, publish BLOCKED, finish). The worker is the only code that queues or finishes a
//! task it ran, so the task never touches a queue while still on its own stack. A task migrates
//! only while suspended (stolen from a queue, or woken elsewhere).
//!
//! # Spawning from a task
//! A task spawned by another task with no placement hint goes to the spawner's CPU's *next slot*
//! (through the scheduler's wake placement, as a task woken there would): it runs as soon as the
//! spawner blocks or yields, on the spawner's warm cache, which is what a spawn followed by a
//! join wants. A child displaced from the slot by the next spawn goes to the ring, where other
//! CPUs may steal it, and a child left in the slot longer than the scheduler's grace period is
//! stealable too (an idle CPU that saw it when going to sleep wakes for it), so a spawner that
//! keeps running does not strand its children for long (unlike an unstealable LIFO slot). The
//! scheduler counts these placements as local wakes. Spawns from other threads, and spawns with
//! a hint, go through `Scheduler::spawn`. No idle CPU is woken for a next-slot placement; an
//! idle worker looks again on its own at least every `IDLE_RECHECK_NS` (10 ms), so a child whose
//! spawner runs on without blocking waits at most about that long plus the grace period.
//!
//! # Blocking
//! Every blocking primitive blocks the *task*: the worker runs other tasks, and parks its thread
//! only when the scheduler has nothing for it. The same primitives work from plain OS threads
//! (they park the thread), so tasks and threads can share them.
//!
//! # Panics and stack overflow
//! A panic is caught on the task's stack and returned by [`JoinHandle::join`] as
//! [`JoinError::Panicked`]; the worker and the runtime carry on. A stack overflow hits the
//! guard page; the handler in `overflow.rs` prints a line naming the task and, by default,
//! abandons the task (its join returns [`JoinError::StackOverflow`]) while the runtime carries
//! on. That module's docs list what abandoning leaks.
//!
//! # Joining a child that has not started
//! A join from a task of a child still waiting, unstarted, in the joiner's CPU's next slot runs
//! the child inline on the joiner's stack ([`JoinHandle::join`] says what the child observes;
//! [`Builder::join_inline`] turns it off). A spawn followed by a join then costs no stack, no
//! switch and no wake.
//!
//! # Costs worth knowing
//! A spawn allocates the task (one allocation), registers it in its spawning CPU's shard of the
//! live-task registry and clones one `Weak` of the runtime (an atomic increment on a line shared
//! by all CPUs, the one global write per spawn). A spawn from a task puts the child in the
//! spawner's next slot without waking an idle CPU and without reading the clock (the first
//! thief to look stamps it). A yield is a switch pair plus [`Scheduler::yield_task`](crate::Scheduler::yield_task):
//! with nothing else runnable here the yielder comes straight back, otherwise one
//! compare-exchange (the ring's pop) and plain stores; the worker resumes the next task at once.
//! A wake from a task of the same CPU goes to the next slot.

mod builder;
mod channel;
mod condvar;
mod futex_pingpong;
mod future;
pub(crate) mod handshake;
mod mutex;
mod overflow;
mod platform;
mod stacks;
mod task;
mod timer;
mod wait;
mod worker;

pub use builder::{
    Builder, DROP_SHUTDOWN_TIMEOUT, Runtime, STACK_BYTES_MAX, STACK_BYTES_MIN, ShutdownError,
    SpawnError, spawn, spawn_named,
};
pub use channel::{
    CapacityError, Receiver, RecvError, SendError, Sender, TryRecvError, TrySendError, channel,
};
pub use condvar::{Condvar, Event};
pub use futex_pingpong::FutexPingPong;
pub use future::block_on;
pub use mutex::{MUTEX_SPIN_ROUNDS, Mutex, MutexGuard};
pub use overflow::OverflowAction;
pub use task::{JoinError, JoinHandle};
pub use timer::sleep;
pub use wait::{TaskWaker, block, current_waker};
pub use worker::{current_cpu, current_name, yield_now};

/// Calls of `next_task` a worker makes (with a spin hint in between) before it parks.
pub const IDLE_SPIN_ROUNDS: u32 = worker::IDLE_SPIN_ROUNDS;
/// Spins on its park token a worker makes before it sleeps in `FUTEX_WAIT`.
pub const PARK_SPIN_ROUNDS: u32 = platform::PARK_SPIN_ROUNDS;

#[cfg(test)]
mod tests;
