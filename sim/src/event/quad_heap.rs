//! The 4-ary min-heap of 16-byte keys: the engine's event queue until the radix heap replaced it,
//! kept as the comparison baseline (`sim_events/heap_only`) and as a second implementation the
//! model tests check the radix heap against.
//!
//! Entries (a key and the value it carries) move, nothing else: a pop sifts the last entry down
//! from the root, comparing up to four children's keys per level (log4 of the keys in flight
//! levels).

use super::KeyQueue;

/// A 4-ary min-heap of `u128` keys, each with a `u128` value (no monotonicity required).
#[derive(Debug, Default, Clone)]
pub struct QuadHeap {
    /// `(key, value)` pairs in heap order of their keys.
    heap: Vec<(u128, u128)>,
}

impl KeyQueue for QuadHeap {
    #[inline]
    fn push(&mut self, key: u128, value: u128) {
        // Sift up.
        let mut i = self.heap.len();
        self.heap.push((key, value));
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.heap[parent].0 <= key {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = (key, value);
    }

    #[inline]
    fn pop(&mut self) -> Option<(u128, u128)> {
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
                let mut best_key = self.heap[first].0;
                for c in first + 1..end {
                    let k = self.heap[c].0;
                    // Branch-free select: child order is unpredictable.
                    let less = k < best_key;
                    best = if less { c } else { best };
                    best_key = if less { k } else { best_key };
                }
                if best_key >= last.0 {
                    break;
                }
                self.heap[i] = self.heap[best];
                i = best;
            }
            self.heap[i] = last;
        }
        Some(top)
    }

    fn peek(&self) -> Option<u128> {
        self.heap.first().map(|e| e.0)
    }

    fn len(&self) -> usize {
        self.heap.len()
    }
}
