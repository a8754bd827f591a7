//! The event queue: a 4-ary min-heap ordered by `(time_ns, seq)`.
//!
//! `seq` is a counter stamped at insertion, so two events due at the same virtual nanosecond pop
//! in the order they were scheduled. The order of events is therefore a pure function of the
//! inputs, never of heap internals or addresses: this is the stable tie-breaking the simulator's
//! bit-reproducibility rests on.
//!
//! The queue holds only events in flight: one per busy or waking CPU, one per pending external
//! arrival and balance tick. It never grows with the number of tasks in a run.

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

/// Bits of `order` holding the payload slot (the rest is the insertion counter).
const SLOT_BITS: u32 = 24;
/// Most events in flight at once (one per CPU plus pending arrivals and ticks).
pub const EVENTS_IN_FLIGHT_MAX: usize = 1 << SLOT_BITS;

/// A heap entry: `time_ns << 64 | order`, one 16-byte integer compared in one go; `order` is
/// the insertion counter in the high 40 bits and the payload slot in the low 24, so comparing
/// keys compares `(time, insertion order)`.
type Key = u128;

#[inline]
fn key(time_ns: u64, order: u64) -> Key {
    (u128::from(time_ns) << 64) | u128::from(order)
}

#[inline]
fn key_time(k: Key) -> u64 {
    (k >> 64) as u64
}

#[inline]
fn key_order(k: Key) -> u64 {
    k as u64
}

#[derive(Clone, Copy, Debug)]
struct Payload {
    kind: EventKind,
    cpu: u32,
    tag: u64,
}

/// The virtual clock plus its pending events: a 4-ary min-heap of 16-byte keys, payloads in a
/// slab beside it (the heap moves only keys).
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: Vec<Key>,
    slots: Vec<Payload>,
    free: Vec<u32>,
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
    ///
    /// Panics if more than [`EVENTS_IN_FLIGHT_MAX`] events are pending or after 2^40 insertions
    /// (both far beyond any run: the queue holds one event per CPU plus pending arrivals).
    #[inline]
    pub fn push(&mut self, time_ns: u64, kind: EventKind, cpu: u32, tag: u64) {
        let payload = Payload { kind, cpu, tag };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = payload;
                s
            }
            None => {
                assert!(
                    self.slots.len() < EVENTS_IN_FLIGHT_MAX,
                    "more than 2^24 events in flight"
                );
                self.slots.push(payload);
                (self.slots.len() - 1) as u32
            }
        };
        let seq = self.next_seq;
        assert!(seq < 1 << (64 - SLOT_BITS), "event counter overflow");
        self.next_seq += 1;
        let key = key(
            time_ns.max(self.now_ns),
            (seq << SLOT_BITS) | u64::from(slot),
        );
        // Sift up.
        let mut i = self.heap.len();
        self.heap.push(key);
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.heap[parent] <= key {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = key;
    }

    /// Removes the earliest event and advances the clock to it.
    #[inline]
    pub fn pop(&mut self) -> Option<Event> {
        let top = *self.heap.first()?;
        let last = self.heap.pop()?;
        let n = self.heap.len();
        if n > 0 {
            // Sift `last` down from the root.
            let mut i = 0;
            loop {
                let first = 4 * i + 1;
                if first >= n {
                    break;
                }
                let end = (first + 4).min(n);
                let mut best = first;
                let mut best_key = self.heap[first];
                for c in first + 1..end {
                    let k = self.heap[c];
                    // Branch-free select: child order is unpredictable.
                    let less = k < best_key;
                    best = if less { c } else { best };
                    best_key = if less { k } else { best_key };
                }
                if best_key >= last {
                    break;
                }
                self.heap[i] = best_key;
                i = best;
            }
            self.heap[i] = last;
        }
        let (time_ns, order) = (key_time(top), key_order(top));
        let slot = (order & ((1 << SLOT_BITS) - 1)) as u32;
        let p = self.slots[slot as usize];
        self.free.push(slot);
        self.now_ns = time_ns;
        self.popped += 1;
        Some(Event {
            time_ns,
            seq: order >> SLOT_BITS,
            kind: p.kind,
            cpu: p.cpu,
            tag: p.tag,
        })
    }

    /// The time of the earliest pending event.
    pub fn peek_time_ns(&self) -> Option<u64> {
        self.heap.first().map(|&k| key_time(k))
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
    fn random_pushes_pop_sorted_by_time_then_insertion() {
        let mut q = EventQueue::new();
        let mut r = crate::rng::Rng::new(5);
        let mut expect = Vec::new();
        for i in 0..5_000u64 {
            let t = r.below(300);
            q.push(t, EventKind::Arrival, 0, i);
            expect.push((t.max(q.now_ns()), i));
            if i % 3 == 0 {
                // Interleave pops: slots are reused.
                let e = q.pop().expect("non-empty");
                let pos = expect
                    .iter()
                    .position(|&x| x == (e.time_ns, e.tag))
                    .expect("known");
                let min = *expect.iter().min().expect("non-empty");
                assert_eq!((e.time_ns, e.tag), min);
                expect.remove(pos);
            }
        }
        expect.sort_unstable();
        let got: Vec<(u64, u64)> = std::iter::from_fn(|| q.pop())
            .map(|e| (e.time_ns, e.tag))
            .collect();
        assert_eq!(got, expect);
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
