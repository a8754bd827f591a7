//! The 4-ary min-heap of 16-byte keys: the engine's event queue until the radix heap replaced it,
//! kept as the comparison baseline (`sim_events/heap_only`) and as a second implementation the
//! model tests check the radix heap against.
//!
//! Keys move, nothing else: a pop sifts the last key down from the root, comparing up to four
//! children per level (log4 of the keys in flight levels).

use super::KeyQueue;

/// A 4-ary min-heap of `u128` keys (no monotonicity required).
#[derive(Debug, Default, Clone)]
pub struct QuadHeap {
    heap: Vec<u128>,
}

impl KeyQueue for QuadHeap {
    #[inline]
    fn push(&mut self, key: u128) {
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

    #[inline]
    fn pop(&mut self) -> Option<u128> {
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
        Some(top)
    }

    fn peek(&self) -> Option<u128> {
        self.heap.first().copied()
    }

    fn len(&self) -> usize {
        self.heap.len()
    }
}
