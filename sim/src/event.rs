//! The event queue: events ordered by `(time_ns, seq)`.
//!
//! `seq` is a counter stamped at insertion, so two events due at the same virtual nanosecond pop
//! in the order they were scheduled. The order of events is therefore a pure function of the
//! inputs, never of queue internals or addresses: this is the stable tie-breaking the simulator's
//! bit-reproducibility rests on.
//!
//! Each event becomes one unique 16-byte key, `time_ns << 64 | seq`, so ordering keys orders
//! events by `(time, insertion order)`; the payload (kind, CPU, tag) travels with its key as a
//! 16-byte value in the same queue entry, so popping an event reads one cache line, not a key
//! and a slab slot filled a thousand events earlier. The key queue is a [`RadixHeap`] (`event/radix_heap.rs`): the engine never schedules
//! before the event it handles (past times are clamped to now), so keys are monotone and a
//! radix heap pops them in exactly the order a comparison heap does, without the compares. The
//! 4-ary heap it replaced ([`QuadHeap`], `event/quad_heap.rs`) stays as the benchmark baseline
//! and the model the tests compare against; both implement [`KeyQueue`].
//!
//! The queue holds only events in flight: one per busy or waking CPU, one per pending external
//! arrival and balance tick. It never grows with the number of tasks in a run.

mod quad_heap;
mod radix_heap;

pub use quad_heap::QuadHeap;
pub use radix_heap::RadixHeap;

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
    /// `CpuReady`: the task whose segment ended; `CpuUnpark`: the CPU's generation stamp (stale
    /// events are dropped); `Arrival`: the workload's tag.
    pub tag: u64,
}

/// A min-priority queue of unique `u128` keys, each carrying a `u128` value: the part of
/// [`EventQueue`] that orders events (the value is the event's payload).
pub trait KeyQueue: Default {
    /// Adds `key` with `value`. [`EventQueue`] only pushes keys above the last key popped.
    fn push(&mut self, key: u128, value: u128);
    /// Removes and returns the smallest key and its value.
    fn pop(&mut self) -> Option<(u128, u128)>;
    /// The smallest key, left in place.
    fn peek(&self) -> Option<u128>;
    /// Keys held.
    fn len(&self) -> usize;
    /// Whether no key is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A queue key: `time_ns << 64 | seq`, one 16-byte integer compared in one go, so comparing
/// keys compares `(time, insertion order)`.
type Key = u128;

#[inline]
fn key(time_ns: u64, seq: u64) -> Key {
    (u128::from(time_ns) << 64) | u128::from(seq)
}

#[inline]
fn key_time(k: Key) -> u64 {
    (k >> 64) as u64
}

#[inline]
fn key_seq(k: Key) -> u64 {
    k as u64
}

/// The payload as a queue value: `tag << 64 | cpu << 8 | kind`.
#[inline]
fn payload(kind: EventKind, cpu: u32, tag: u64) -> u128 {
    (u128::from(tag) << 64) | (u128::from(cpu) << 8) | kind as u128
}

/// The kind packed by [`payload`].
#[inline]
fn payload_kind(v: u128) -> EventKind {
    match v as u8 {
        0 => EventKind::CpuReady,
        1 => EventKind::CpuUnpark,
        2 => EventKind::Arrival,
        _ => EventKind::BalanceTick,
    }
}

/// The virtual clock plus its pending events: `(key, payload)` entries in a [`KeyQueue`] (by
/// default the [`RadixHeap`]).
#[derive(Debug, Default)]
pub struct EventQueue<Q: KeyQueue = RadixHeap> {
    keys: Q,
    next_seq: u64,
    now_ns: u64,
    popped: u64,
}

impl EventQueue {
    /// An empty queue at time 0, on the engine's key queue ([`RadixHeap`]).
    pub fn new() -> EventQueue {
        EventQueue::default()
    }
}

impl<Q: KeyQueue> EventQueue<Q> {
    /// An empty queue at time 0 on the key queue `Q` (benchmarks and tests compare them).
    pub fn with_key_queue() -> EventQueue<Q> {
        EventQueue {
            keys: Q::default(),
            next_seq: 0,
            now_ns: 0,
            popped: 0,
        }
    }

    /// The current virtual time: the time of the last event popped.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Schedules an event. Times in the past are clamped to now (an event never fires before the
    /// one being handled).
    ///
    /// The insertion counter is 64 bits wide: it cannot wrap within any run.
    #[inline]
    pub fn push(&mut self, time_ns: u64, kind: EventKind, cpu: u32, tag: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Clamped to now and stamped with a fresh counter: above every key popped so far, as
        // the radix heap requires.
        self.keys
            .push(key(time_ns.max(self.now_ns), seq), payload(kind, cpu, tag));
    }

    /// Removes the earliest event and advances the clock to it.
    #[inline]
    pub fn pop(&mut self) -> Option<Event> {
        let (top, p) = self.keys.pop()?;
        let time_ns = key_time(top);
        self.now_ns = time_ns;
        self.popped += 1;
        Some(Event {
            time_ns,
            seq: key_seq(top),
            kind: payload_kind(p),
            cpu: (p >> 8) as u32,
            tag: (p >> 64) as u64,
        })
    }

    /// The time of the earliest pending event.
    pub fn peek_time_ns(&self) -> Option<u64> {
        self.keys.peek().map(key_time)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Events popped so far.
    pub fn popped(&self) -> u64 {
        self.popped
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Runs a test body on both key queues.
    macro_rules! on_both_queues {
        ($name:ident, $body:ident) => {
            mod $name {
                use super::*;

                #[test]
                fn radix_heap() {
                    $body::<RadixHeap>();
                }

                #[test]
                fn quad_heap() {
                    $body::<QuadHeap>();
                }
            }
        };
    }

    fn ties<Q: KeyQueue>() {
        let mut q = EventQueue::<Q>::with_key_queue();
        q.push(5, EventKind::Arrival, 0, 1);
        q.push(3, EventKind::Arrival, 0, 2);
        q.push(5, EventKind::Arrival, 0, 3);
        q.push(5, EventKind::Arrival, 0, 4);
        let tags: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|e| e.tag).collect();
        assert_eq!(tags, vec![2, 1, 3, 4]);
        assert_eq!(q.now_ns(), 5);
    }
    on_both_queues!(ties_pop_in_insertion_order, ties);

    fn random_interleaved<Q: KeyQueue>() {
        let mut q = EventQueue::<Q>::with_key_queue();
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
    on_both_queues!(
        random_pushes_pop_sorted_by_time_then_insertion,
        random_interleaved
    );

    fn clamped<Q: KeyQueue>() {
        let mut q = EventQueue::<Q>::with_key_queue();
        q.push(10, EventKind::CpuReady, 0, 0);
        q.pop();
        q.push(4, EventKind::CpuReady, 1, 0);
        assert_eq!(q.pop().map(|e| e.time_ns), Some(10));
    }
    on_both_queues!(past_events_are_clamped_to_now, clamped);

    /// The payload packed beside the key comes back whole at its extremes (the model test
    /// below uses small CPUs and tags only).
    #[test]
    fn payload_survives_the_queue_at_extreme_values() {
        let mut q = EventQueue::new();
        let kinds = [
            EventKind::CpuReady,
            EventKind::CpuUnpark,
            EventKind::Arrival,
            EventKind::BalanceTick,
        ];
        for (i, &kind) in kinds.iter().enumerate() {
            q.push(i as u64, kind, u32::MAX - i as u32, u64::MAX - i as u64);
        }
        for (i, &kind) in kinds.iter().enumerate() {
            let e = q.pop().expect("pushed");
            assert_eq!(
                (e.kind, e.cpu, e.tag),
                (kind, u32::MAX - i as u32, u64::MAX - i as u64)
            );
        }
    }

    #[test]
    fn radix_heap_refuses_a_key_below_the_last_popped() {
        let mut h = RadixHeap::default();
        h.push(7, 70);
        assert_eq!(h.pop(), Some((7, 70)));
        let r = std::panic::catch_unwind(move || h.push(6, 60));
        assert!(r.is_err(), "a key below the last popped must be refused");
    }

    /// One step of the model test: push at `now + delta` (or before now, clamped), or pop.
    #[derive(Clone, Debug)]
    enum Op {
        /// Push at `now + delta`.
        Ahead(u64),
        /// Push `back` before now (clamped to now).
        Past(u64),
        /// Push far ahead: exercises the radix heap's high buckets.
        Far(u64),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Small deltas, zero included: many ties at one nanosecond.
            4 => (0u64..4).prop_map(Op::Ahead),
            4 => (0u64..100_000).prop_map(Op::Ahead),
            1 => (1u64..1_000).prop_map(Op::Past),
            1 => (0u64..1 << 62).prop_map(Op::Far),
            5 => Just(Op::Pop),
        ]
    }

    /// Pops both queues and a sorted reference (`(time, insertion number)` keys in a BTreeMap)
    /// in lock step and checks they agree on every event.
    fn check_against_reference(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut radix = EventQueue::new();
        let mut quad = EventQueue::<QuadHeap>::with_key_queue();
        let mut reference: BTreeMap<(u64, u64), (EventKind, u32)> = BTreeMap::new();
        let (mut now, mut seq) = (0u64, 0u64);
        let kinds = [
            EventKind::CpuReady,
            EventKind::CpuUnpark,
            EventKind::Arrival,
            EventKind::BalanceTick,
        ];
        let pop_all = |radix: &mut EventQueue,
                       quad: &mut EventQueue<QuadHeap>,
                       reference: &mut BTreeMap<(u64, u64), (EventKind, u32)>,
                       now: &mut u64|
         -> Result<(), TestCaseError> {
            let want = reference.pop_first();
            let (r, q) = (radix.pop(), quad.pop());
            match want {
                None => {
                    prop_assert_eq!(r, None);
                    prop_assert_eq!(q, None);
                }
                Some(((time_ns, seq), (kind, cpu))) => {
                    let e = Event {
                        time_ns,
                        seq,
                        kind,
                        cpu,
                        tag: seq ^ 0xabcd,
                    };
                    prop_assert_eq!(r, Some(e));
                    prop_assert_eq!(q, Some(e));
                    *now = time_ns;
                }
            }
            prop_assert_eq!(radix.now_ns(), *now);
            prop_assert_eq!(radix.len(), reference.len());
            prop_assert_eq!(quad.len(), reference.len());
            Ok(())
        };
        for o in ops {
            let time_ns = match *o {
                Op::Ahead(d) => now.saturating_add(d),
                Op::Past(b) => now.saturating_sub(b),
                Op::Far(d) => now.saturating_add(d),
                Op::Pop => {
                    pop_all(&mut radix, &mut quad, &mut reference, &mut now)?;
                    continue;
                }
            };
            let (kind, cpu) = (kinds[(seq % 4) as usize], (seq % 7) as u32);
            radix.push(time_ns, kind, cpu, seq ^ 0xabcd);
            quad.push(time_ns, kind, cpu, seq ^ 0xabcd);
            reference.insert((time_ns.max(now), seq), (kind, cpu));
            seq += 1;
            prop_assert_eq!(radix.peek_time_ns(), reference.keys().next().map(|k| k.0));
        }
        while !reference.is_empty() {
            pop_all(&mut radix, &mut quad, &mut reference, &mut now)?;
        }
        pop_all(&mut radix, &mut quad, &mut reference, &mut now)?;
        prop_assert!(radix.is_empty() && quad.is_empty());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn radix_and_quad_heaps_pop_in_the_reference_order(
            ops in prop::collection::vec(op(), 0..2_000)
        ) {
            check_against_reference(&ops)?;
        }
    }
}
