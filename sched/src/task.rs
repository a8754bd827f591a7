//! The task model: what the scheduler asks of a task, a ready-made header for hosts that keep
//! tasks in memory, and wait queues that link task headers intrusively.
//!
//! The scheduler queues task *handles* (`T: Task`): an id in the simulator, a pointer to a
//! thread control block in the runtime and the kernel. It reads two things from a task: its home
//! node (where its memory lives) and the CPU it last ran on, for wake placement.

use alloc::sync::Arc;

use bitflags::bitflags;
use intrusive_collections::{LinkedList, LinkedListAtomicLink, intrusive_adapter};

use crate::sync::{AtomicU32, Ordering};

/// What the scheduler reads from a task handle.
pub trait Task: Send {
    /// The NUMA node (logical index) holding the task's memory, if it has one.
    fn home_node(&self) -> Option<usize> {
        None
    }
    /// The logical CPU the task last ran on.
    fn last_cpu(&self) -> Option<usize> {
        None
    }
}

bitflags! {
    /// A task's state.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TaskState: u32 {
        /// Queued somewhere, waiting for a CPU.
        const RUNNABLE = 1 << 0;
        /// Running on a CPU.
        const RUNNING = 1 << 1;
        /// Waiting on a wait queue.
        const BLOCKED = 1 << 2;
        /// A wakeup arrived while it was running (it must not block).
        const NOTIFIED = 1 << 3;
        /// Finished.
        const DONE = 1 << 4;
        /// Must run only on its last CPU.
        const PINNED = 1 << 5;
    }
}

const NONE: u32 = u32::MAX;

/// A task header for hosts that keep tasks in memory: home node, last CPU and state, each an
/// atomic written by the CPU running the task (last CPU, state) or its creator (home node), and
/// read by any CPU placing it. The `link` threads it on one [`WaitQueue`] at a time.
#[derive(Debug)]
pub struct TaskHeader {
    home_node: AtomicU32,
    last_cpu: AtomicU32,
    state: AtomicU32,
    /// Wait-queue membership; owned by the queue the header is on.
    pub link: LinkedListAtomicLink,
}

impl Default for TaskHeader {
    fn default() -> Self {
        TaskHeader::new(None)
    }
}

impl TaskHeader {
    /// A runnable header with an optional home node.
    pub fn new(home_node: Option<usize>) -> TaskHeader {
        TaskHeader {
            home_node: AtomicU32::new(home_node.map_or(NONE, |n| n as u32)),
            last_cpu: AtomicU32::new(NONE),
            state: AtomicU32::new(TaskState::RUNNABLE.bits()),
            link: LinkedListAtomicLink::new(),
        }
    }

    /// Records the CPU that runs the task (called by that CPU).
    pub fn set_last_cpu(&self, cpu: usize) {
        self.last_cpu.store(cpu as u32, Ordering::Relaxed);
    }

    /// The state.
    pub fn state(&self) -> TaskState {
        TaskState::from_bits_truncate(self.state.load(Ordering::Acquire))
    }

    /// Replaces the state, returning the old one.
    pub fn swap_state(&self, s: TaskState) -> TaskState {
        TaskState::from_bits_truncate(self.state.swap(s.bits(), Ordering::AcqRel))
    }

    /// Moves from `from` to `to` if the state is exactly `from`.
    pub fn transition(&self, from: TaskState, to: TaskState) -> bool {
        self.state
            .compare_exchange(from.bits(), to.bits(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Task for Arc<TaskHeader> {
    fn home_node(&self) -> Option<usize> {
        let n = self.home_node.load(Ordering::Relaxed);
        (n != NONE).then_some(n as usize)
    }
    fn last_cpu(&self) -> Option<usize> {
        let c = self.last_cpu.load(Ordering::Relaxed);
        (c != NONE).then_some(c as usize)
    }
}

/// The adapter module exists only to scope the lint exception: `intrusive_adapter!` generates
/// undocumented public items.
#[allow(missing_docs)]
mod adapter {
    use super::*;
    intrusive_adapter!(
        /// Links `Arc<TaskHeader>`s through their `link` field.
        pub WaitAdapter = Arc<TaskHeader>: TaskHeader { link: LinkedListAtomicLink }
    );
}
pub use adapter::WaitAdapter;

/// A FIFO of blocked tasks linked through their headers: blocking allocates nothing.
///
/// Not synchronized: the owner (a mutex, a channel) guards it with its own lock.
pub struct WaitQueue {
    list: LinkedList<WaitAdapter>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        WaitQueue {
            list: LinkedList::new(WaitAdapter::new()),
        }
    }
}

impl WaitQueue {
    /// Blocks `task` (marks it BLOCKED and appends it). A header already on a queue is refused
    /// and returned.
    pub fn push(&mut self, task: Arc<TaskHeader>) -> Result<(), Arc<TaskHeader>> {
        if task.link.is_linked() {
            return Err(task);
        }
        task.swap_state(TaskState::BLOCKED);
        self.list.push_back(task);
        Ok(())
    }

    /// Unblocks the oldest waiter (marks it RUNNABLE); the caller hands it to the scheduler.
    pub fn pop(&mut self) -> Option<Arc<TaskHeader>> {
        let t = self.list.pop_front()?;
        t.swap_state(TaskState::RUNNABLE);
        Some(t)
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn wait_queue_is_fifo_and_sets_state() {
        let mut q = WaitQueue::default();
        let a = Arc::new(TaskHeader::new(Some(1)));
        let b = Arc::new(TaskHeader::new(None));
        q.push(a.clone()).unwrap();
        q.push(b.clone()).unwrap();
        assert!(
            q.push(a.clone()).is_err(),
            "a header is on one queue at a time"
        );
        assert_eq!(a.state(), TaskState::BLOCKED);
        let first = q.pop().unwrap();
        assert!(Arc::ptr_eq(&first, &a));
        assert_eq!(first.state(), TaskState::RUNNABLE);
        assert_eq!(first.home_node(), Some(1));
        a.set_last_cpu(3);
        assert_eq!(a.last_cpu(), Some(3));
        assert!(Arc::ptr_eq(&q.pop().unwrap(), &b));
        assert!(q.is_empty());
    }
}
