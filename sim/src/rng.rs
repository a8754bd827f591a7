//! The simulator's pseudo-random numbers: xoshiro256++ seeded through SplitMix64.
//!
//! Every random choice of a run (arrival gaps, service times, the scheduler's victim choices)
//! comes from generators derived from the one `--seed`, each through [`Rng::derive`] with a fixed
//! stream number, so adding a draw in one place never shifts the numbers another place sees.
//! The generators are plain integer arithmetic, and the distributions' logarithms and powers come
//! from the `libm` crate (a pure-Rust port of musl's libm) rather than the platform's C library,
//! whose last-bit results differ between versions: the same seed gives the same sequence on every
//! host, which is what makes runs bit-reproducible.

/// A xoshiro256++ generator (Blackman and Vigna, "Scrambled linear pseudorandom number
/// generators", 2021): 256 bits of state, period 2^256 − 1, passes BigCrush.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of SplitMix64 (Steele, Lea and Flood, OOPSLA 2014), used to expand a 64-bit seed.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`. Distinct seeds give unrelated sequences.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut s = [0u64; 4];
        for w in &mut s {
            *w = splitmix64(&mut x);
        }
        // All-zero state is the one fixed point; SplitMix64 never yields four zeros in a row, but
        // keep the guard explicit.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// An independent generator for stream `stream` of the same seed.
    pub fn derive(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ stream.wrapping_mul(0xd6e8_feb8_6659_fd93);
        Rng::new(splitmix64(&mut x))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (Lemire's multiply-shift with rejection: unbiased).
    /// Returns 0 when `n == 0`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in `(0, 1]`, safe to take the logarithm of.
    #[inline]
    pub fn unit_open0(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// An exponential variate with the given mean (inverse CDF).
    #[inline]
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * libm::log(self.unit_open0())
    }

    /// A Pareto (type I) variate with scale `x_min` and shape `alpha` (inverse CDF).
    #[inline]
    pub fn pareto(&mut self, x_min: f64, alpha: f64) -> f64 {
        x_min / libm::pow(self.unit_open0(), 1.0 / alpha)
    }

    /// `true` with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let c = Rng::derive(7, 1).next_u64();
        let d = Rng::derive(7, 2).next_u64();
        assert_ne!(c, d);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Rng::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let x = r.below(10);
            counts[x as usize] += 1;
        }
        for c in counts {
            assert!(
                (9_000..11_000).contains(&c),
                "bucket count {c} is far from 10000"
            );
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn exponential_mean_matches() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let mean = (0..n).map(|_| r.exp(50.0)).sum::<f64>() / f64::from(n);
        assert!((mean - 50.0).abs() < 0.5, "mean {mean}");
    }
}
