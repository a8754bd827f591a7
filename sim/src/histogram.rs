//! A log-linear latency histogram: bounded memory, bounded relative error.
//!
//! Values below 2^SUB_BITS land in exact buckets; above, each power of two is split into
//! 2^SUB_BITS linear sub-buckets, so a reported percentile is within 1/2^SUB_BITS (1.6%) of the
//! true sample (the bucket's midpoint is reported). 64 powers × 64 sub-buckets cover every u64 in
//! 4096 counters, whatever the number of samples. The mean is kept exactly.

/// Sub-bucket bits per power of two.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of values in log-linear buckets plus an exact sum.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

#[inline]
fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let sub = ((v >> shift) as usize) & (SUB - 1);
    ((shift as usize + 1) << SUB_BITS) + sub
}

/// Lowest value and width of a bucket.
fn bucket_range(b: usize) -> (u64, u64) {
    let group = b >> SUB_BITS;
    let sub = (b & (SUB - 1)) as u64;
    if group == 0 {
        return (sub, 1);
    }
    let shift = (group - 1) as u32;
    ((SUB as u64 + sub) << shift, 1u64 << shift)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Exact mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in `[0, 1]` (bucket midpoint; 0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = bucket_range(b);
                return (lo + w / 2).min(self.max);
            }
        }
        self.max
    }

    /// `(value, cumulative fraction)` at each non-empty bucket: the CDF for plots.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let mut out = Vec::new();
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                seen += c;
                let (lo, w) = bucket_range(b);
                out.push(((lo + w / 2).min(self.max), seen as f64 / self.total as f64));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_error_bound() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 7);
        }
        for (q, exact) in [(0.5, 350_000.0), (0.99, 693_000.0), (0.999, 699_300.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 1.0 / 60.0,
                "q{q}: {got} vs {exact}"
            );
        }
        assert!((h.mean() - 350_003.5).abs() < 1e-6);
    }

    #[test]
    fn buckets_are_contiguous_and_cover_small_values_exactly() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1 << 40, u64::MAX] {
            let (lo, w) = bucket_range(bucket_of(v));
            assert!(lo <= v && v - lo < w, "{v}: [{lo}, +{w})");
        }
        let mut h = Histogram::new();
        h.record(5);
        assert_eq!(h.quantile(0.5), 5);
    }
}
