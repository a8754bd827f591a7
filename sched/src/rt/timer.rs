//! Sleeping: each worker keeps a min-heap of the deadlines of tasks that slept on it.
//!
//! A task calling [`sleep`] registers `(deadline, waiter)` on the heap of the worker it runs on
//! and waits to be signaled. That worker fires due entries at the top of every loop iteration
//! and, when idle, parks with the earliest deadline as its timeout. The heap is touched only by
//! its worker's thread (the loop, or a task running on it), so it needs no lock; a sleeping task
//! is woken through the scheduler like any other wake, so it may resume on another CPU.
//!
//! Precision: a deadline fires when its worker next reaches the top of its loop, so a worker
//! busy with a task that never yields delays its timers (cooperative scheduling), and a parked
//! worker wakes within the futex timeout's slack (tens of microseconds on Linux).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use std::vec::Vec;

use super::wait::{Waiter, wait_signaled};
use super::worker::{current_header, current_worker, yield_now};
use crate::platform::Platform;

struct Entry {
    deadline_ns: u64,
    /// Insertion order, so equal deadlines fire first-in first-out.
    seq: u64,
    waiter: Waiter,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline_ns, self.seq) == (other.deadline_ns, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.deadline_ns, self.seq).cmp(&(other.deadline_ns, other.seq))
    }
}

/// One worker's pending deadlines.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl Timers {
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn push(&mut self, deadline_ns: u64, waiter: Waiter) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            deadline_ns,
            seq: self.seq,
            waiter,
        }));
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.0.deadline_ns)
    }

    /// Removes and returns the waiters whose deadline is at or before `now_ns`, earliest first.
    pub(crate) fn take_due(&mut self, now_ns: u64) -> Vec<Waiter> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|e| e.0.deadline_ns <= now_ns) {
            if let Some(Reverse(e)) = self.heap.pop() {
                due.push(e.waiter);
            }
        }
        due
    }
}

/// Suspends the calling task for at least `d` (other tasks run meanwhile). A zero duration
/// yields. Outside a task, sleeps the OS thread.
pub fn sleep(d: Duration) {
    if current_header().is_none() {
        std::thread::sleep(d);
        return;
    }
    if d.is_zero() {
        yield_now();
        return;
    }
    let Some(w) = current_worker() else {
        std::thread::sleep(d);
        return;
    };
    let now = w.shared().sched.platform().now_ns();
    let deadline = now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let waiter = Waiter::current();
    w.timers.borrow_mut().push(deadline, waiter.clone());
    wait_signaled(&waiter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_in_deadline_then_insertion_order() {
        let mut t = Timers::default();
        // Thread waiters (the test is not a task), told apart by their nodes' addresses.
        let ws: Vec<Waiter> = (0..4).map(|_| Waiter::current()).collect();
        let id = |w: &Waiter| match w {
            Waiter::Thread(n) => std::sync::Arc::as_ptr(n) as usize,
            Waiter::Task(_) => unreachable!("no tasks here"),
        };
        t.push(30, ws[0].clone());
        t.push(10, ws[1].clone());
        t.push(20, ws[2].clone());
        t.push(10, ws[3].clone());
        assert_eq!(t.next_deadline(), Some(10));
        assert!(t.take_due(9).is_empty());
        let due: Vec<usize> = t.take_due(20).iter().map(id).collect();
        assert_eq!(due, [id(&ws[1]), id(&ws[3]), id(&ws[2])]);
        assert_eq!(t.next_deadline(), Some(30));
        assert_eq!(t.take_due(u64::MAX).len(), 1);
        assert!(t.is_empty());
    }
}
