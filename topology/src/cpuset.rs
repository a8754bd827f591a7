//! `CpuSet`: a growable bitmap of CPU indices with Linux cpulist syntax.
//!
//! Bits are stored 64 to a word and every set operation works a word at a time. The set grows
//! on demand up to [`CpuSet::MAX_CPUS`] (Linux's largest `CONFIG_NR_CPUS` is 8192; the bound is
//! set well above it). Invariant: `words` never ends with a zero word, so derived equality and
//! hashing compare sets, not capacities.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::error::{Error, ErrorKind};

const WORD_BITS: usize = 64;

/// A set of CPU indices (OS or logical, as the owner documents), stored as a bitmap.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuSet {
    /// Bit `i % 64` of word `i / 64` is set when CPU `i` is in the set. No trailing zero word.
    words: Vec<u64>,
}

impl CpuSet {
    /// The largest CPU index plus one that a set may hold (65536).
    pub const MAX_CPUS: usize = 1 << 16;

    /// An empty set.
    pub const fn new() -> Self {
        CpuSet { words: Vec::new() }
    }

    /// The set `{0, 1, ..., n-1}`.
    ///
    /// # Panics
    /// If `n > MAX_CPUS`.
    pub fn full(n: usize) -> Self {
        assert!(n <= Self::MAX_CPUS, "CpuSet::full({n}) exceeds MAX_CPUS");
        let mut words = alloc::vec![u64::MAX; n / WORD_BITS];
        let rest = n % WORD_BITS;
        if rest != 0 {
            words.push((1u64 << rest) - 1);
        }
        CpuSet { words }
    }

    /// Adds `cpu`; returns whether it was newly inserted.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`. Parsers check the bound first and report it as an error.
    pub fn insert(&mut self, cpu: usize) -> bool {
        assert!(cpu < Self::MAX_CPUS, "cpu {cpu} exceeds CpuSet::MAX_CPUS");
        let (w, b) = (cpu / WORD_BITS, cpu % WORD_BITS);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !was
    }

    /// Removes `cpu`; returns whether it was present.
    pub fn remove(&mut self, cpu: usize) -> bool {
        let (w, b) = (cpu / WORD_BITS, cpu % WORD_BITS);
        match self.words.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                self.trim();
                true
            }
            _ => false,
        }
    }

    /// Whether `cpu` is in the set.
    #[inline]
    pub fn contains(&self, cpu: usize) -> bool {
        self.words
            .get(cpu / WORD_BITS)
            .is_some_and(|w| w & (1 << (cpu % WORD_BITS)) != 0)
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The smallest CPU in the set.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// The largest CPU in the set.
    pub fn last(&self) -> Option<usize> {
        let w = self.words.len().checked_sub(1)?;
        Some(w * WORD_BITS + (WORD_BITS - 1 - self.words[w].leading_zeros() as usize))
    }

    /// CPUs in increasing order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            words: &self.words,
            word_index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }

    /// `self |= other`.
    pub fn union_with(&mut self, other: &CpuSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// `self &= other`.
    pub fn intersect_with(&mut self, other: &CpuSet) {
        self.words.truncate(other.words.len());
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
        self.trim();
    }

    /// `self -= other`.
    pub fn difference_with(&mut self, other: &CpuSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
        self.trim();
    }

    /// Whether the two sets share a CPU.
    pub fn intersects(&self, other: &CpuSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.words.len() <= other.words.len()
            && self
                .words
                .iter()
                .zip(&other.words)
                .all(|(a, b)| a & !b == 0)
    }

    /// The raw 64-bit words, lowest CPUs first (for FFI with `cpu_set_t`-like masks).
    pub fn as_words(&self) -> &[u64] {
        &self.words
    }

    /// Parses Linux cpulist syntax (`0-3,8,10-11`, also `0-7:2` strides and an empty string).
    pub fn parse_list(s: &str) -> Result<Self, Error> {
        parse_cpulist(s)
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = CpuSet::new();
        for cpu in iter {
            set.insert(cpu);
        }
        set
    }
}

impl FromStr for CpuSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_cpulist(s)
    }
}

/// Iterator over a [`CpuSet`], word-parallel (`trailing_zeros` per set bit).
pub struct Iter<'a> {
    words: &'a [u64],
    word_index: usize,
    current: u64,
}

impl Iterator for Iter<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.current != 0 {
                let bit = self.current.trailing_zeros() as usize;
                self.current &= self.current - 1;
                return Some(self.word_index * WORD_BITS + bit);
            }
            self.word_index += 1;
            self.current = *self.words.get(self.word_index)?;
        }
    }
}

impl<'a> IntoIterator for &'a CpuSet {
    type Item = usize;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Prints Linux cpulist syntax: ranges of three or more... every run of consecutive CPUs of
/// length two or more is printed as `a-b`, as the kernel's `%*pbl` does.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.iter().peekable();
        let mut first = true;
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end = iter.next().unwrap_or(end);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

fn parse_cpulist(s: &str) -> Result<CpuSet, Error> {
    let err = |pos: usize, msg: String| {
        Error::new(
            ErrorKind::CpuList,
            alloc::format!("at byte {pos} of {s:?}"),
            msg,
        )
    };
    let mut set = CpuSet::new();
    let trimmed = s.trim_end_matches(['\n', ' ', '\t', '\r']);
    if trimmed.trim().is_empty() {
        return Ok(set);
    }
    let mut pos = 0usize;
    for item in trimmed.split(',') {
        let item_pos = pos;
        pos += item.len() + 1;
        let item_trim = item.trim();
        if item_trim.is_empty() {
            return Err(err(
                item_pos,
                "expected a CPU number or range, found an empty item".into(),
            ));
        }
        let (range, stride) = match item_trim.split_once(':') {
            Some((r, st)) => {
                let stride = parse_num(st).ok_or_else(|| {
                    err(
                        item_pos,
                        alloc::format!("expected a stride number after ':', found {st:?}"),
                    )
                })?;
                if stride == 0 {
                    return Err(err(item_pos, "stride must be at least 1".into()));
                }
                (r, stride)
            }
            None => (item_trim, 1),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => {
                let lo = parse_num(a).ok_or_else(|| {
                    err(
                        item_pos,
                        alloc::format!("expected a CPU number before '-', found {a:?}"),
                    )
                })?;
                let hi = parse_num(b).ok_or_else(|| {
                    err(
                        item_pos,
                        alloc::format!("expected a CPU number after '-', found {b:?}"),
                    )
                })?;
                (lo, hi)
            }
            None => {
                let n = parse_num(range).ok_or_else(|| {
                    err(
                        item_pos,
                        alloc::format!("expected a CPU number, found {range:?}"),
                    )
                })?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(err(
                item_pos,
                alloc::format!("range {lo}-{hi} is descending"),
            ));
        }
        if hi >= CpuSet::MAX_CPUS {
            return Err(err(
                item_pos,
                alloc::format!(
                    "CPU {hi} exceeds the supported maximum {}",
                    CpuSet::MAX_CPUS - 1
                ),
            ));
        }
        let mut cpu = lo;
        while cpu <= hi {
            set.insert(cpu);
            cpu += stride;
        }
    }
    Ok(set)
}

fn parse_num(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;

    #[test]
    fn cpulist_round_trips() {
        for text in [
            "",
            "0",
            "0-3,8,10-11",
            "1,3,5",
            "0-4095",
            "63-64,127-129,4095",
        ] {
            let set: CpuSet = text.parse().unwrap();
            assert_eq!(set.to_string(), text, "round trip of {text:?}");
        }
    }

    #[test]
    fn cpulist_strides_and_newline() {
        let set: CpuSet = "0-7:2\n".parse().unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 2, 4, 6]);
    }

    #[test]
    fn cpulist_errors_name_position() {
        let e = "0-3,x".parse::<CpuSet>().unwrap_err().to_string();
        assert!(e.contains("byte 4") && e.contains("\"x\""), "{e}");
        let e = "5-2".parse::<CpuSet>().unwrap_err().to_string();
        assert!(e.contains("descending"), "{e}");
        let e = "0,,1".parse::<CpuSet>().unwrap_err().to_string();
        assert!(e.contains("empty item"), "{e}");
        let e = "70000".parse::<CpuSet>().unwrap_err().to_string();
        assert!(e.contains("exceeds"), "{e}");
    }

    #[test]
    fn set_algebra_is_word_parallel_and_trimmed() {
        let a: CpuSet = "0-127".parse().unwrap();
        let b: CpuSet = "64-200".parse().unwrap();
        let mut i = a.clone();
        i.intersect_with(&b);
        assert_eq!(i.to_string(), "64-127");
        let mut d = b.clone();
        d.difference_with(&a);
        assert_eq!(d.to_string(), "128-200");
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u.len(), 201);
        // Removing the high CPUs trims words, so equality is by content.
        let mut t = b.clone();
        t.difference_with(&"128-200".parse().unwrap());
        assert_eq!(t, "64-127".parse().unwrap());
        assert!(t.is_subset(&a) && !b.is_subset(&a) && a.intersects(&b));
        assert_eq!(u.first(), Some(0));
        assert_eq!(u.last(), Some(200));
        assert_eq!(CpuSet::full(130).len(), 130);
        assert_eq!(CpuSet::full(130).last(), Some(129));
    }
}
