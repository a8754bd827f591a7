//! Environment knobs, parsed from plain bytes (no allocation, host-testable).
//!
//! | variable | values | effect |
//! |---|---|---|
//! | `MANYCORE_MALLOC_STATS` | `0`, `1` | `1`: per-node and per-class statistics on stderr at exit |
//! | `MANYCORE_MALLOC_VERBOSE` | `0`, `1` | `1`: one line on stderr at load (build, machine, CPU-id source, cache budget) |
//! | `MANYCORE_MALLOC_CACHE_BYTES` | integer, optional `K`/`M`/`G` suffix, 4K ..= 1G | bound on the bytes one thread's cache holds (default 4M) |
//!
//! Any other variable starting with `MANYCORE_MALLOC_` is an error (a misspelt knob would
//! otherwise be ignored without a word), as is any value outside the table.

/// The prefix every knob starts with.
pub const PREFIX: &[u8] = b"MANYCORE_MALLOC_";
/// Smallest accepted `MANYCORE_MALLOC_CACHE_BYTES`.
pub const CACHE_BYTES_MIN: usize = 4 << 10;
/// Largest accepted `MANYCORE_MALLOC_CACHE_BYTES`.
pub const CACHE_BYTES_MAX: usize = 1 << 30;

/// The settings, defaults when a variable is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Knobs {
    /// Print statistics at exit.
    pub stats: bool,
    /// Print a line at load.
    pub verbose: bool,
    /// Per-thread cache budget; `None`: the allocator's default.
    pub cache_bytes: Option<usize>,
}

/// What is wrong with the environment. Holds slices of the offending `NAME=value` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobError<'a> {
    /// A `MANYCORE_MALLOC_*` name that is not a knob.
    UnknownName {
        /// The whole `NAME=value` entry.
        entry: &'a [u8],
    },
    /// A known knob with a value it does not take.
    BadValue {
        /// The knob's name.
        name: &'a [u8],
        /// The value given.
        value: &'a [u8],
        /// What it takes.
        expected: &'static str,
    },
}

/// Applies one environment entry (`NAME=value`) to `knobs`; entries not starting with
/// [`PREFIX`] are ignored.
pub fn apply<'a>(knobs: &mut Knobs, entry: &'a [u8]) -> Result<(), KnobError<'a>> {
    if !entry.starts_with(PREFIX) {
        return Ok(());
    }
    let eq = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    let name = &entry[..eq];
    let value = entry.get(eq + 1..).unwrap_or(&[]);
    match &name[PREFIX.len()..] {
        b"STATS" => knobs.stats = flag(name, value)?,
        b"VERBOSE" => knobs.verbose = flag(name, value)?,
        b"CACHE_BYTES" => {
            knobs.cache_bytes = Some(bytes(value).ok_or(KnobError::BadValue {
                name,
                value,
                expected: "a byte count from 4K to 1G (digits, optional K, M or G suffix)",
            })?)
        }
        _ => return Err(KnobError::UnknownName { entry }),
    }
    Ok(())
}

fn flag<'a>(name: &'a [u8], value: &'a [u8]) -> Result<bool, KnobError<'a>> {
    match value {
        b"0" => Ok(false),
        b"1" => Ok(true),
        _ => Err(KnobError::BadValue {
            name,
            value,
            expected: "0 or 1",
        }),
    }
}

/// Parses `digits[K|M|G]` within [`CACHE_BYTES_MIN`] ..= [`CACHE_BYTES_MAX`].
fn bytes(value: &[u8]) -> Option<usize> {
    let (digits, shift) = match value.last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 10),
        b'M' | b'm' => (&value[..value.len() - 1], 20),
        b'G' | b'g' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut n: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as usize;
    }
    let n = n.checked_mul(1 << shift)?;
    (CACHE_BYTES_MIN..=CACHE_BYTES_MAX)
        .contains(&n)
        .then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Result<Knobs, std::string::String> {
        let mut k = Knobs::default();
        for e in entries {
            apply(&mut k, e.as_bytes()).map_err(|e| std::format!("{e:?}"))?;
        }
        Ok(k)
    }

    #[test]
    fn valid_knobs_set_their_fields() {
        let k = parse(&[
            "PATH=/bin",
            "MANYCORE_MALLOC_STATS=1",
            "MANYCORE_MALLOC_VERBOSE=0",
            "MANYCORE_MALLOC_CACHE_BYTES=512K",
        ])
        .unwrap();
        assert_eq!(
            k,
            Knobs {
                stats: true,
                verbose: false,
                cache_bytes: Some(512 << 10)
            }
        );
        assert_eq!(
            parse(&["MANYCORE_MALLOC_CACHE_BYTES=65536"])
                .unwrap()
                .cache_bytes,
            Some(65536)
        );
    }

    #[test]
    fn bad_flag_values_are_rejected_not_defaulted() {
        for v in ["yes", "", "2", "true", " 1"] {
            let entry = std::format!("MANYCORE_MALLOC_STATS={v}");
            let mut k = Knobs::default();
            match apply(&mut k, entry.as_bytes()) {
                Err(KnobError::BadValue { name, value, .. }) => {
                    assert_eq!(name, b"MANYCORE_MALLOC_STATS");
                    assert_eq!(value, v.as_bytes());
                }
                other => panic!("{entry}: {other:?}"),
            }
        }
    }

    #[test]
    fn cache_bytes_out_of_range_or_malformed_is_rejected() {
        for v in ["", "K", "1K", "2G", "12x", "-5", "99999999999999G", "4.5M"] {
            let entry = std::format!("MANYCORE_MALLOC_CACHE_BYTES={v}");
            assert!(parse(&[&entry]).is_err(), "{entry} accepted");
        }
        assert!(parse(&["MANYCORE_MALLOC_CACHE_BYTES=4K"]).is_ok());
        assert!(parse(&["MANYCORE_MALLOC_CACHE_BYTES=1G"]).is_ok());
    }

    #[test]
    fn misspelt_knob_is_an_error() {
        let mut k = Knobs::default();
        assert_eq!(
            apply(&mut k, b"MANYCORE_MALLOC_STAT=1"),
            Err(KnobError::UnknownName {
                entry: b"MANYCORE_MALLOC_STAT=1"
            })
        );
        assert!(parse(&["MANYCORE_MALLOC_STATS"]).is_err());
    }
}
