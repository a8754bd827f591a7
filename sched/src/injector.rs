//! Injectors: multi-producer, multi-consumer queues, one per NUMA node (and one inbox per CPU
//! for tasks placed on that CPU by another).
//!
//! Remote spawns and wakes, ring overflow, and tasks placed on a specific CPU all go through an
//! injector, so no CPU ever writes another CPU's ring. Consumers take a batch at a time into their
//! ring ([`Injector::pop_batch_into`]), which amortizes the lock over up to `batch_max` tasks.
//!
//! The queue is a `VecDeque` under a [`SpinLock`](crate::sync::SpinLock) whose critical sections
//! move at most one batch of task handles: bounded and short. `len` is mirrored in an atomic so
//! idle CPUs and the wake protocol can check emptiness without the lock.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::ring::Ring;
use crate::sync::{AtomicUsize, Ordering, SpinLock};

/// An MPMC FIFO of tasks.
pub struct Injector<T> {
    /// The tasks; locked by every producer and consumer.
    queue: SpinLock<VecDeque<T>>,
    /// Mirror of `queue.len()`, written under the lock, read lock-free by anyone.
    len: AtomicUsize,
}

impl<T> Default for Injector<T> {
    fn default() -> Self {
        Injector::new()
    }
}

impl<T> Injector<T> {
    /// An empty injector.
    pub fn new() -> Injector<T> {
        Injector {
            queue: SpinLock::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Tasks queued (a snapshot).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the injector looks empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one task.
    pub fn push(&self, task: T) {
        self.queue.with(|q| {
            q.push_back(task);
            self.len.store(q.len(), Ordering::Release);
        });
    }

    /// Appends a batch, keeping its order.
    pub fn push_batch(&self, tasks: &mut Vec<T>) {
        if tasks.is_empty() {
            return;
        }
        self.queue.with(|q| {
            q.extend(tasks.drain(..));
            self.len.store(q.len(), Ordering::Release);
        });
    }

    /// Takes the oldest task.
    pub fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        self.queue.with(|q| {
            let t = q.pop_front();
            self.len.store(q.len(), Ordering::Release);
            t
        })
    }

    /// Takes up to `batch_max` of the oldest tasks: the first is returned to run now, the rest
    /// go into `ring` (the caller's own ring; the caller must be its owner) as far as it has room.
    pub fn pop_batch_into(&self, ring: &Ring<T>, batch_max: usize) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        self.queue.with(|q| {
            let first = q.pop_front()?;
            let room = ring.capacity() - ring.len();
            for _ in 1..batch_max.min(room + 1) {
                let Some(t) = q.pop_front() else { break };
                if let Err(t) = ring.push(t) {
                    q.push_front(t);
                    break;
                }
            }
            self.len.store(q.len(), Ordering::Release);
            Some(first)
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::collections::VecDeque;
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn batch_refill_keeps_order_and_respects_room() {
        let inj = Injector::new();
        inj.push_batch(&mut (0..10).collect());
        let ring = Ring::new(4);
        ring.push(100).unwrap();
        assert_eq!(inj.pop_batch_into(&ring, 8), Some(0));
        assert_eq!(ring.len(), 4, "three more fit");
        assert_eq!(inj.len(), 6);
        assert_eq!(vec![ring.pop(), ring.pop()], vec![Some(100), Some(1)]);
    }

    proptest! {
        /// Push, batch push, pop and batch pop agree with a VecDeque.
        #[test]
        fn injector_matches_vecdeque_model(ops in proptest::collection::vec((0u8..4, 0u32..1000, 1usize..20), 0..300)) {
            let inj = Injector::new();
            let mut m = VecDeque::new();
            for (kind, v, n) in ops {
                match kind {
                    0 => { inj.push(v); m.push_back(v); }
                    1 => { let mut b: Vec<u32> = (v..v + n as u32).collect(); m.extend(b.iter().copied()); inj.push_batch(&mut b); prop_assert!(b.is_empty()); }
                    2 => prop_assert_eq!(inj.pop(), m.pop_front()),
                    _ => {
                        let ring = Ring::new(8);
                        let first = inj.pop_batch_into(&ring, n);
                        prop_assert_eq!(first, m.pop_front());
                        while let Some(t) = ring.pop() { prop_assert_eq!(Some(t), m.pop_front()); }
                    }
                }
                prop_assert_eq!(inj.len(), m.len());
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use alloc::vec::Vec;

    use loom::thread;

    use super::*;
    use crate::sync::Arc;

    /// Two producers and a batch consumer: nothing lost, nothing duplicated.
    #[test]
    fn injector_mpmc_every_task_once() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let inj = Arc::new(Injector::new());
            let producers: Vec<_> = (0..2)
                .map(|p| {
                    let inj = inj.clone();
                    thread::spawn(move || inj.push(p))
                })
                .collect();
            let ring = Ring::new(4);
            let mut got = Vec::new();
            if let Some(t) = inj.pop_batch_into(&ring, 4) {
                got.push(t);
            }
            for p in producers {
                p.join().unwrap();
            }
            while let Some(t) = ring.pop().or_else(|| inj.pop()) {
                got.push(t);
            }
            got.sort_unstable();
            assert_eq!(got, [0, 1]);
        });
    }
}
