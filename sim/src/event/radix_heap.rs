//! A radix heap of 16-byte keys with 4-bit digits, each key carrying a 16-byte value: the
//! engine's event queue.
//!
//! # Why it fits
//! The engine's queue is *monotone*: nothing is scheduled before the event being handled (the
//! queue clamps past times to now), and keys are unique (`time << 64 | insertion order`), so
//! every key pushed is larger than the last key popped. A radix heap exploits exactly that:
//! instead of comparing keys against each other on every pop (the 4-ary heap's sift-down, five
//! levels of four unpredictable compares with ~1000 events in flight), it files each key by
//! where it first differs from the last key popped.
//!
//! # Buckets
//! Keys are read as 32 digits of [`DIGIT_BITS`] bits. A key `k > last` whose highest digit
//! differing from `last` is digit `level` goes to bucket `(level, digit level of k)`; keys equal
//! to `last` go to the bucket `equal`. Ordering follows: within a level, a bucket of a smaller
//! digit holds smaller keys (all agree with `last` above `level`); every key of a level is smaller
//! than every key of a higher level (at that higher digit it still equals `last`'s, which is
//! smaller than theirs). So the smallest key held is in `equal`, or else in the lowest non-empty
//! bucket of the lowest non-empty level, found with two trailing-zero counts over bitmasks.
//!
//! # Invariants
//! - `last` is the last key popped (0 before the first pop); every key held is `>= last`.
//! - Every key is in the bucket its value and `last` name (above).
//! - Bit `digit` of `digit_mask[level]` is set iff bucket `(level, digit)` is non-empty; bit
//!   `level` of `level_mask` iff `digit_mask[level] != 0`.
//!
//! # Pop
//! From `equal` if it holds a key (any of them is the minimum). Otherwise from the lowest
//! non-empty bucket `(level, digit)`: its minimum, found by a scan, becomes `last` and is
//! returned; the rest of that bucket agree with the new `last` on every digit from `level` up,
//! so each moves to a lower level. Keys in other buckets keep theirs (the new `last` agrees with
//! the old one above `level` and has digit `digit` at `level`, below theirs). A key therefore
//! moves at most once per level it descends: with events spread over 2^16 ns ahead of the clock,
//! at most four times, and a bucket emptied on pop usually holds one key or a few. (One-bit
//! digits, the textbook radix heap, moved each key about once per bit of its distance and were
//! barely faster than the 4-ary heap.)
//!
//! # Values
//! Each key travels with its value in one 32-byte entry (the event queue's payload: kind, CPU,
//! tag), so the pop that reads a key finds its value on the same cache line. A payload slab
//! beside the key queue, which this replaced, cost a cache miss on most pops on `ring-1024`: a
//! slot written at push was read back about a thousand events later, long evicted from L1.
//!
//! # Memory
//! 513 vectors whose capacities only grow, each to at most the peak number of keys in flight (a
//! bucket never holds more keys than the heap does), in practice a small fraction of that.

use super::KeyQueue;

/// Bits per digit: 16 buckets per level.
pub const DIGIT_BITS: u32 = 4;
/// Buckets per level.
const DIGITS: usize = 1 << DIGIT_BITS;
/// Levels: digits in a 128-bit key.
const LEVELS: usize = 128 / DIGIT_BITS as usize;

/// A monotone min-priority queue of `u128` keys, each with a `u128` value: a pushed key must not
/// be below the last key popped.
#[derive(Debug, Clone)]
pub struct RadixHeap {
    /// Bucket `(level, digit)` at `level * DIGITS + digit`: `(key, value)` entries.
    buckets: Box<[Vec<Entry>]>,
    /// Entries whose key equals `last`.
    equal: Vec<Entry>,
    /// Per level: bit `digit` set iff bucket `(level, digit)` is non-empty.
    digit_mask: [u16; LEVELS],
    /// Bit `level` set iff `digit_mask[level] != 0`.
    level_mask: u32,
    last: u128,
    len: usize,
}

/// A key and its value.
type Entry = (u128, u128);

impl Default for RadixHeap {
    fn default() -> Self {
        RadixHeap {
            buckets: (0..LEVELS * DIGITS).map(|_| Vec::new()).collect(),
            equal: Vec::new(),
            digit_mask: [0; LEVELS],
            level_mask: 0,
            last: 0,
            len: 0,
        }
    }
}

impl RadixHeap {
    /// Files the entry of `key` (already checked `>= last`) in its bucket.
    #[inline]
    fn file(&mut self, key: u128, value: u128) {
        // On the two 64-bit halves (a digit never straddles them: 4 divides 64), the high one
        // first: keys of events at another nanosecond than `last` differ there.
        let (hi, lo) = ((key >> 64) as u64, key as u64);
        let (last_hi, last_lo) = ((self.last >> 64) as u64, self.last as u64);
        let (half, diff, base) = if hi != last_hi {
            (hi, hi ^ last_hi, LEVELS / 2)
        } else if lo != last_lo {
            (lo, lo ^ last_lo, 0)
        } else {
            self.equal.push((key, value));
            return;
        };
        let in_half = (63 - diff.leading_zeros()) / DIGIT_BITS;
        let digit = (half >> (in_half * DIGIT_BITS)) as usize & (DIGITS - 1);
        let level = base + in_half as usize;
        self.buckets[level * DIGITS + digit].push((key, value));
        self.digit_mask[level] |= 1 << digit;
        self.level_mask |= 1 << level;
    }
}

impl KeyQueue for RadixHeap {
    /// Panics if `key` is below the last key popped (the queue is monotone; the event queue
    /// clamps past times, so it never does that).
    #[inline]
    fn push(&mut self, key: u128, value: u128) {
        assert!(
            key >= self.last,
            "radix heap: key pushed below the last key popped"
        );
        self.file(key, value);
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<(u128, u128)> {
        if let Some(e) = self.equal.pop() {
            self.len -= 1;
            return Some(e);
        }
        if self.level_mask == 0 {
            return None;
        }
        let level = self.level_mask.trailing_zeros() as usize;
        let digit = self.digit_mask[level].trailing_zeros() as usize;
        self.digit_mask[level] &= !(1 << digit);
        if self.digit_mask[level] == 0 {
            self.level_mask &= !(1 << level);
        }
        let b = level * DIGITS + digit;
        let min = if self.buckets[b].len() == 1 {
            // The common case: nothing to move.
            self.buckets[b].pop()?
        } else {
            let mut keys = std::mem::take(&mut self.buckets[b]);
            let mut at = 0;
            let mut min = keys[0].0;
            for (i, &(k, _)) in keys.iter().enumerate().skip(1) {
                if k < min {
                    min = k;
                    at = i;
                }
            }
            let entry = keys.swap_remove(at);
            self.last = min;
            for &(k, v) in &keys {
                // Agrees with `min` from digit `level` up: lands at a lower level.
                self.file(k, v);
            }
            keys.clear();
            // Keep the capacity: this bucket fills again later.
            self.buckets[b] = keys;
            entry
        };
        self.last = min.0;
        self.len -= 1;
        Some(min)
    }

    fn peek(&self) -> Option<u128> {
        if !self.equal.is_empty() {
            return Some(self.last);
        }
        if self.level_mask == 0 {
            return None;
        }
        let level = self.level_mask.trailing_zeros() as usize;
        let digit = self.digit_mask[level].trailing_zeros() as usize;
        self.buckets[level * DIGITS + digit]
            .iter()
            .map(|e| e.0)
            .min()
    }

    fn len(&self) -> usize {
        self.len
    }
}
