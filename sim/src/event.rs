//! The event queue: a binary min-heap ordered by `(time_ns, seq)`.
//!
//! `seq` is a counter stamped at insertion, so two events due at the same virtual nanosecond pop
//! in the order they were scheduled. The order of events is therefore a pure function of the
//! inputs, never of heap internals or addresses: this is the stable tie-breaking the simulator's
//! bit-reproducibility rests on.
//!
//! The queue holds only events in flight: one per busy or waking CPU, one per pending external
//! arrival and balance tick. It never grows with the number of tasks in a run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What happens when an event fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A CPU finished what it was doing (a task segment or scheduler overhead) and decides again.
    CpuReady,
    /// A parked CPU finished waking up.
    CpuUnpark,
    /// A workload's external event (an arrival, a timer); `tag` is the workload's.
    Arrival,
    /// A periodic balancing tick of a CPU (policies that balance on a timer).
    BalanceTick,
}

/// One scheduled event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Virtual time at which it fires.
    pub time_ns: u64,
    /// Insertion counter: the tie-breaker.
    pub seq: u64,
    /// What fires.
    pub kind: EventKind,
    /// The CPU concerned (`CpuReady`, `CpuUnpark`, `BalanceTick`) or 0.
    pub cpu: u32,
    /// Generation stamp (`CpuReady`/`CpuUnpark`: stale events are dropped) or workload tag.
    pub tag: u64,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
        (other.time_ns, other.seq).cmp(&(self.time_ns, self.seq))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The virtual clock plus its pending events.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Event>,
    next_seq: u64,
    now_ns: u64,
    popped: u64,
}

impl EventQueue {
    /// An empty queue at time 0.
    pub fn new() -> EventQueue {
        EventQueue::default()
    }

    /// The current virtual time: the time of the last event popped.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Schedules an event. Times in the past are clamped to now (an event never fires before the
    /// one being handled).
    #[inline]
    pub fn push(&mut self, time_ns: u64, kind: EventKind, cpu: u32, tag: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Event {
            time_ns: time_ns.max(self.now_ns),
            seq,
            kind,
            cpu,
            tag,
        });
    }

    /// Removes the earliest event and advances the clock to it.
    #[inline]
    pub fn pop(&mut self) -> Option<Event> {
        let e = self.heap.pop()?;
        self.now_ns = e.time_ns;
        self.popped += 1;
        Some(e)
    }

    /// The time of the earliest pending event.
    pub fn peek_time_ns(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.time_ns)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Events popped so far.
    pub fn popped(&self) -> u64 {
        self.popped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_pop_in_insertion_order() {
        let mut q = EventQueue::new();
        q.push(5, EventKind::Arrival, 0, 1);
        q.push(3, EventKind::Arrival, 0, 2);
        q.push(5, EventKind::Arrival, 0, 3);
        q.push(5, EventKind::Arrival, 0, 4);
        let tags: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|e| e.tag).collect();
        assert_eq!(tags, vec![2, 1, 3, 4]);
        assert_eq!(q.now_ns(), 5);
    }

    #[test]
    fn past_events_are_clamped_to_now() {
        let mut q = EventQueue::new();
        q.push(10, EventKind::CpuReady, 0, 0);
        q.pop();
        q.push(4, EventKind::CpuReady, 1, 0);
        assert_eq!(q.pop().map(|e| e.time_ns), Some(10));
    }
}
