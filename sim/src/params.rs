//! `k=v` parameters: typed lookups with defaults, range checks, and errors for unknown keys.
//!
//! Every lookup records the key as known; [`Params::finish`] then rejects any key nobody asked
//! for, naming it and listing the accepted ones, so `--param dept=3` is an error, not a silent
//! default.

use std::collections::BTreeSet;

/// The parameters given to one workload.
#[derive(Debug)]
pub struct Params {
    owner: String,
    given: Vec<(String, String)>,
    known: BTreeSet<&'static str>,
}

impl Params {
    /// Wraps the `k=v` pairs given for `owner` (a workload name).
    pub fn new(owner: &str, given: &[(String, String)]) -> Params {
        Params {
            owner: owner.to_string(),
            given: given.to_vec(),
            known: BTreeSet::new(),
        }
    }

    fn raw(&mut self, key: &'static str) -> Option<String> {
        self.known.insert(key);
        self.given
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// An error about one parameter value.
    pub fn bad(&self, key: &str, value: &str, why: &str) -> String {
        format!("workload {}: parameter {key}={value}: {why}", self.owner)
    }

    /// A string parameter.
    pub fn string(&mut self, key: &'static str, default: &str) -> String {
        self.raw(key).unwrap_or_else(|| default.to_string())
    }

    /// An optional string parameter.
    pub fn opt_string(&mut self, key: &'static str) -> Option<String> {
        self.raw(key)
    }

    /// An integer in `min..=max`. Accepts `_` separators and `k`/`M` suffixes (10k, 2M).
    pub fn u64(
        &mut self,
        key: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, String> {
        let Some(v) = self.raw(key) else {
            return Ok(default);
        };
        let clean = v.replace('_', "");
        let (digits, mult) = match clean.strip_suffix(['k', 'K']) {
            Some(d) => (d, 1_000),
            None => match clean.strip_suffix('M') {
                Some(d) => (d, 1_000_000),
                None => (clean.as_str(), 1),
            },
        };
        let n = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| {
                self.bad(
                    key,
                    &v,
                    "expected a non-negative integer (suffixes k and M allowed)",
                )
            })?;
        if n < min || n > max {
            return Err(self.bad(key, &v, &format!("must be between {min} and {max}")));
        }
        Ok(n)
    }

    /// A float in `min..=max`.
    pub fn f64(
        &mut self,
        key: &'static str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<f64, String> {
        let Some(v) = self.raw(key) else {
            return Ok(default);
        };
        let n: f64 = v
            .parse()
            .map_err(|_| self.bad(key, &v, "expected a number"))?;
        if !n.is_finite() || n < min || n > max {
            return Err(self.bad(key, &v, &format!("must be between {min} and {max}")));
        }
        Ok(n)
    }

    /// Rejects keys that no lookup asked for.
    pub fn finish(&self) -> Result<(), String> {
        for (k, v) in &self.given {
            if !self.known.contains(k.as_str()) {
                let known: Vec<&str> = self.known.iter().copied().collect();
                return Err(format!(
                    "workload {}: unknown parameter {k}={v}; accepted: {}",
                    self.owner,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }
}

/// Splits `k=v` into its parts.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("--param {s:?}: expected key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_key_is_named_with_the_accepted_ones() {
        let given = kv(&[("dept", "3")]);
        let mut p = Params::new("fork-join", &given);
        assert_eq!(p.u64("depth", 5, 0, 30), Ok(5));
        let e = p.finish().expect_err("unknown");
        assert!(
            e.contains("dept=3") && e.contains("depth") && e.contains("fork-join"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_and_ranges_are_errors() {
        let given = kv(&[("depth", "x"), ("load", "1.5"), ("n", "10k")]);
        let mut p = Params::new("w", &given);
        assert!(p.u64("depth", 1, 0, 9).expect_err("x").contains("depth=x"));
        assert!(
            p.f64("load", 0.5, 0.0, 0.99)
                .expect_err("range")
                .contains("between")
        );
        assert_eq!(p.u64("n", 1, 0, u64::MAX), Ok(10_000));
        assert!(parse_kv("novalue").is_err());
    }
}
