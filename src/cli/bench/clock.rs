//! The benchmark clock: the serialized TSC when the CPU says it is invariant (constant rate,
//! running in every power state, so ticks are time on every core), calibrated against
//! `CLOCK_MONOTONIC`; otherwise `Instant`.
//!
//! A read is `lfence; rdtsc; lfence`: the first fence keeps earlier instructions from finishing
//! after the read, the second keeps later ones from starting before it, so a timed batch is
//! exactly the instructions between two reads (~25 cycles of overhead per read).

use std::arch::x86_64::{__cpuid, _mm_lfence, _rdtsc};
use std::time::{Duration, Instant};

/// How long each calibration window lasts.
const CALIBRATION_WINDOW: Duration = Duration::from_millis(40);
/// Two calibration windows must agree within this fraction, or the TSC is not trusted.
const CALIBRATION_AGREEMENT: f64 = 0.005;

/// Which clock timed the samples.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// The TSC at `ns_per_tick` nanoseconds per tick.
    Tsc {
        /// Calibrated against `CLOCK_MONOTONIC`.
        ns_per_tick: f64,
    },
    /// `Instant` (CLOCK_MONOTONIC), because the TSC is not invariant or did not calibrate.
    Monotonic {
        /// Origin of readings.
        origin: Instant,
    },
}

/// Whether CPUID advertises an invariant TSC (leaf 0x8000_0007, EDX bit 8).
pub fn invariant_tsc() -> bool {
    // CPUID exists on every x86_64 CPU.
    let max_ext = __cpuid(0x8000_0000).eax;
    max_ext >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

fn tsc() -> u64 {
    // SAFETY: lfence and rdtsc have no memory effects and exist on every x86_64 CPU (SSE2 is
    // part of the x86_64 baseline).
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

fn ns_per_tick_over(window: Duration) -> f64 {
    let (t0, c0) = (Instant::now(), tsc());
    while t0.elapsed() < window {
        std::hint::spin_loop();
    }
    let (c1, t1) = (tsc(), Instant::now());
    (t1 - t0).as_nanos() as f64 / c1.wrapping_sub(c0).max(1) as f64
}

impl Clock {
    /// The TSC if it is invariant and two calibration windows agree; `Instant` otherwise.
    pub fn new() -> Clock {
        if invariant_tsc() {
            let a = ns_per_tick_over(CALIBRATION_WINDOW);
            let b = ns_per_tick_over(CALIBRATION_WINDOW);
            if a.is_finite() && a > 0.0 && ((a - b) / a).abs() < CALIBRATION_AGREEMENT {
                return Clock::Tsc {
                    ns_per_tick: (a + b) / 2.0,
                };
            }
        }
        Clock::Monotonic {
            origin: Instant::now(),
        }
    }

    /// A reading, in this clock's units.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self {
            Clock::Tsc { .. } => tsc(),
            Clock::Monotonic { origin } => origin.elapsed().as_nanos() as u64,
        }
    }

    /// Nanoseconds between two readings.
    pub fn ns(&self, from: u64, to: u64) -> f64 {
        let d = to.saturating_sub(from) as f64;
        match self {
            Clock::Tsc { ns_per_tick } => d * ns_per_tick,
            Clock::Monotonic { .. } => d,
        }
    }

    /// For the report: `"tsc"` or `"monotonic"`.
    pub fn name(&self) -> &'static str {
        match self {
            Clock::Tsc { .. } => "tsc",
            Clock::Monotonic { .. } => "monotonic",
        }
    }

    /// The TSC frequency in GHz (`None` for the monotonic clock).
    pub fn tsc_ghz(&self) -> Option<f64> {
        match self {
            Clock::Tsc { ns_per_tick } => Some(1.0 / ns_per_tick),
            Clock::Monotonic { .. } => None,
        }
    }
}

/// Per-operation samples and their summary.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Nanoseconds per operation, one per timed batch.
    pub ns: Vec<f64>,
    /// Operations timed in total.
    pub ops: u64,
}

impl Samples {
    /// Adds a batch of `ops` operations that took `ns` nanoseconds.
    pub fn push(&mut self, ns: f64, ops: u64) {
        self.ns.push(ns / ops.max(1) as f64);
        self.ops += ops;
    }

    /// Median and 99th percentile (nearest rank) of the per-operation times.
    pub fn median_p99(&self) -> (f64, f64) {
        let mut v = self.ns.clone();
        if v.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let p99_rank = ((n as f64 * 0.99).ceil() as usize).clamp(1, n);
        (v[n / 2], v[p99_rank - 1])
    }

    /// Divides every sample by `k` (a batch of round trips reported per one-way switch).
    pub fn per(mut self, k: f64) -> Samples {
        self.ns.iter_mut().for_each(|x| *x /= k);
        self
    }
}

/// Runs `batch(ops)` once to warm up, then `samples` times, timing each call.
pub fn sample(clock: &Clock, samples: u32, ops: u64, mut batch: impl FnMut(u64)) -> Samples {
    batch(ops);
    let mut s = Samples::default();
    for _ in 0..samples {
        let t0 = clock.now();
        batch(ops);
        let t1 = clock.now();
        s.push(clock.ns(t0, t1), ops);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99_use_nearest_rank() {
        let mut s = Samples::default();
        for i in 1..=200u64 {
            s.push(i as f64 * 10.0, 10);
        }
        assert_eq!(s.ops, 2000);
        assert_eq!(s.median_p99(), (101.0, 198.0));
    }

    #[test]
    fn the_clock_measures_a_sleep() {
        let c = Clock::new();
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(20));
        let ns = c.ns(t0, c.now());
        assert!(
            (19e6..200e6).contains(&ns),
            "{} measured {ns} ns for 20 ms",
            c.name()
        );
    }
}
