//! The scheduler's only source of randomness: a per-CPU xorshift64* generator seeded from the
//! configuration, so a simulator run is bit-for-bit reproducible.

use crate::sync::{AtomicU64, Ordering};

/// A per-CPU PRNG; `next` is called only by its CPU (Relaxed is enough).
pub struct Rng(AtomicU64);

impl Rng {
    /// Seeds from `seed` and the CPU index (never zero).
    pub fn new(seed: u64, cpu: usize) -> Rng {
        let mut x = seed ^ (cpu as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        if x == 0 {
            x = 1;
        }
        Rng(AtomicU64::new(x))
    }

    /// The next 64 random bits.
    pub fn next(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}
