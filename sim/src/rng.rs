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

/// Right edge of the exponential ziggurat's base layer (Marsaglia and Tsang, 256 layers).
const ZIG_R: f64 = 7.697_117_470_131_487;
/// Area of each layer of that ziggurat.
const ZIG_V: f64 = 3.949_659_822_581_572e-3;

/// The exponential ziggurat's tables: `k` (acceptance bounds on a 32-bit draw), `w` (scale of
/// a 32-bit draw to x), `f` (the density at each layer's edge).
struct Ziggurat {
    /// Per layer `i`: `(k[i], w[i])`, the acceptance bound and the scale of the fast path side
    /// by side, so a draw reads one cache line, not one in each of two tables (the tables are
    /// cold by the next draw on `ring-1024`: cachegrind counted a read miss on most draws).
    kw: [(u32, f64); 256],
    /// Per layer: `exp(-x_i)`, read only in the wedge test (about 1% of draws).
    f: [f64; 256],
}

fn ziggurat() -> &'static Ziggurat {
    static Z: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
    Z.get_or_init(|| {
        let m = 4_294_967_296.0; // 2^32
        let (mut k, mut w) = ([0u32; 256], [0.0f64; 256]);
        let mut z = Ziggurat {
            kw: [(0, 0.0); 256],
            f: [0.0; 256],
        };
        let mut d = ZIG_R;
        let mut t = d;
        let q = ZIG_V / libm::exp(-d);
        k[0] = ((d / q) * m) as u32;
        k[1] = 0;
        w[0] = q / m;
        w[255] = d / m;
        z.f[0] = 1.0;
        z.f[255] = libm::exp(-d);
        for i in (1..=254).rev() {
            d = -libm::log(ZIG_V / d + libm::exp(-d));
            k[i + 1] = ((d / t) * m) as u32;
            t = d;
            z.f[i] = libm::exp(-d);
            w[i] = d / m;
        }
        for (i, kw) in z.kw.iter_mut().enumerate() {
            *kw = (k[i], w[i]);
        }
        z
    })
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

    /// An exponential variate with the given mean: Marsaglia and Tsang's ziggurat ("The
    /// ziggurat method for generating random variables", J. Stat. Software 5(8), 2000), 256
    /// layers. About 99% of draws are one random word, a compare and a multiply; the rest take
    /// the exact wedge or tail test. Its tables are computed once with `libm`, so they are the
    /// same on every host (the workload's exponential draws took ~9% of a server simulation
    /// with the inverse CDF's logarithm).
    #[inline]
    pub fn exp(&mut self, mean: f64) -> f64 {
        mean * self.std_exp()
    }

    /// A standard exponential variate (mean 1), by the ziggurat.
    #[inline]
    fn std_exp(&mut self) -> f64 {
        let z = ziggurat();
        loop {
            let r = self.next_u64();
            // Layer from the low 8 bits, position from the high 32: independent bits.
            let i = (r & 0xff) as usize;
            let j = (r >> 32) as u32;
            let (k, w) = z.kw[i];
            if j < k {
                return f64::from(j) * w;
            }
            if i == 0 {
                // The tail beyond the base layer is exponential again, shifted (memoryless).
                return ZIG_R - libm::log(self.unit_open0());
            }
            let x = f64::from(j) * w;
            // The wedge between layer i and the curve.
            if z.f[i] + self.unit() * (z.f[i - 1] - z.f[i]) < libm::exp(-x) {
                return x;
            }
        }
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

    /// The ziggurat's draws follow the exponential law: the fraction above x matches e^-x
    /// (including the wedges and the tail beyond the base layer), and the variance is 1.
    #[test]
    fn ziggurat_matches_the_exponential_distribution() {
        let mut r = Rng::new(11);
        let n = 1_000_000;
        let draws: Vec<f64> = (0..n).map(|_| r.exp(1.0)).collect();
        assert!(draws.iter().all(|&x| x >= 0.0 && x.is_finite()));
        for x in [0.01, 0.1, 0.5, 1.0, 2.0, 4.0, 7.0, 8.0] {
            let above = draws.iter().filter(|&&d| d > x).count() as f64 / f64::from(n);
            let want = (-x).exp();
            // Binomial standard error, 5 sigma, and a floor for the far tail.
            let tol = 5.0 * (want * (1.0 - want) / f64::from(n)).sqrt() + 2e-6;
            assert!(
                (above - want).abs() < tol,
                "P(X > {x}) = {above}, expected {want} (tolerance {tol})"
            );
        }
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let var = draws.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / f64::from(n);
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
    }
}
