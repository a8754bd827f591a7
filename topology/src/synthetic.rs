//! hwloc synthetic topology strings, plus a `distances=` extension.
//!
//! The grammar follows hwloc 2.x (checked against `lstopo-no-graphics -i STR` from hwloc 2.9):
//!
//! ```text
//! description := item (' '+ item)*
//! item        := level | memory | distances
//! level       := [type ':'] arity ['(' attr (' ' attr)* ')']
//! memory      := '[' numa-type ['(' attr (' ' attr)* ')'] ']'     a NUMA node attached to each object
//!                                                                  of the level before it
//! attr        := 'size=' SIZE | 'memory=' SIZE | 'indexes=' N(,N)*
//! distances   := 'distances=' ROW (';' ROW)*     ROW := N (',' N)*   (manycore extension)
//! ```
//!
//! - Types (case-insensitive, unambiguous prefixes of two or more letters as hwloc accepts):
//!   `package`/`socket`, `numanode`/`node`, `group`, `die`, `core`, `pu`, and caches `l1`..`l5` with
//!   an optional `d`/`i`/`u` and an optional `cache` suffix (`l3`, `L1dCache`, `l2u`).
//! - Bare arities (`2 2 4`) get hwloc's guesses: PU last; Core before it from four levels on;
//!   Package first from three levels on, then a NUMA level; caches L3, L2, L1d, L1i in between as
//!   levels allow (at most eight bare levels).
//! - Sizes take hwloc's units: `KB`/`MB`/`GB`/`TB` are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB`
//!   powers of 1024, a bare number is bytes.
//! - hwloc's defaults apply: a NUMA level's nodes hold 1 GiB each, an attached `[numa]` without
//!   `memory=` holds 0 bytes, caches are L1 32 KiB, L2 4 MiB, L3 16 MiB, L4 64 MiB, L5 256 MiB with
//!   64-byte lines, and a description without any NUMA node gets one machine-wide node of 1 GiB.
//! - `indexes=` gives the OS indices of every object of a PU or NUMA level, in order.
//! - Group and Die levels are accepted and shape the numbering, but the model has no group objects.
//!
//! **Distances.** hwloc's synthetic strings cannot carry a distance matrix; manycore accepts one as
//! a trailing `distances=` item: rows separated by `;`, values by `,`, rows and columns in node
//! OS-index order, SLIT semantics (10 = local). Example, two sockets of two nodes:
//! `pack:2 numa:2 core:4 pu:2 distances=10,12,32,32;12,10,32,32;32,32,10,12;32,32,12,10`.
//!
//! **Limits.** At most [`MAX_PUS`] PUs and 64 levels; a larger description is an error, not an
//! allocation attempt. When NUMA nodes are attached at several levels (`pack:2 [numa] core:2 [numa]
//! pu:1`), a PU belongs to its innermost node; the outer nodes keep their memory but no CPUs,
//! since a PU has exactly one node in this model.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::desc::{CacheDesc, CacheKind, DistanceMatrix, NodeDesc, PuDesc, TopologyDesc};
use crate::error::{Error, ErrorKind};
use crate::model::Topology;

/// The most PUs a synthetic description may create.
pub const MAX_PUS: usize = crate::cpuset::CpuSet::MAX_CPUS;
const MAX_LEVELS: usize = 64;
const MAX_DISTANCE_VALUES: usize = 1 << 16;
const DEFAULT_NUMA_LEVEL_MEMORY_BYTES: u64 = 1 << 30;
const DEFAULT_LINE_BYTES: u32 = 64;

impl Topology {
    /// Builds a topology from an hwloc synthetic description (see the [module docs](self) for the
    /// grammar and the `distances=` extension), e.g. `"pack:2 numa:2 l3:1 core:8 pu:2"`.
    pub fn from_synthetic(description: &str) -> Result<Topology, Error> {
        Topology::build(parse(description)?).map_err(|mut e| {
            e.location = format!(
                "in {description:?}{}",
                if e.location.is_empty() { "" } else { ", " }
            ) + &e.location;
            e.kind = ErrorKind::Synthetic;
            e
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Package,
    Die,
    Group,
    Numa,
    Cache(u8, CacheKind),
    Core,
    Pu,
}

#[derive(Clone, Debug, Default)]
struct Attrs {
    size: Option<u64>,
    memory: Option<u64>,
    indexes: Option<Vec<u32>>,
}

#[derive(Clone, Debug)]
struct Level {
    ty: Ty,
    arity: usize,
    attrs: Attrs,
    /// `[numa]` children attached to each object of this level.
    memory: Vec<Attrs>,
    pos: usize,
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::Synthetic,
            format!("at byte {pos} of {:?}", self.s),
            msg,
        )
    }

    fn found(&self, pos: usize) -> String {
        let rest = &self.s[pos.min(self.s.len())..];
        let word: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(24)
            .collect();
        if word.is_empty() {
            "the end of the string".to_string()
        } else {
            format!("{word:?}")
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.i < self.b.len() && f(self.b[self.i]) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn number(&mut self, what: &str) -> Result<u64, Error> {
        let pos = self.i;
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() {
            return Err(self.err(pos, format!("expected {what}, found {}", self.found(pos))));
        }
        digits
            .parse::<u64>()
            .map_err(|_| self.err(pos, format!("{what} {digits} is too large")))
    }

    fn size(&mut self, what: &str) -> Result<u64, Error> {
        let pos = self.i;
        let n = self.number(what)?;
        let unit = self.take_while(|c| c.is_ascii_alphabetic());
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => {
                return Err(self.err(
                    pos,
                    format!("unknown size unit {unit:?}; expected KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB"),
                ));
            }
        };
        n.checked_mul(mult)
            .ok_or_else(|| self.err(pos, format!("{what} overflows 64 bits")))
    }

    fn attrs(&mut self) -> Result<Attrs, Error> {
        let mut attrs = Attrs::default();
        if self.b.get(self.i) != Some(&b'(') {
            return Ok(attrs);
        }
        self.i += 1;
        loop {
            self.skip_ws();
            match self.b.get(self.i) {
                Some(b')') => {
                    self.i += 1;
                    return Ok(attrs);
                }
                None => {
                    return Err(self.err(
                        self.i,
                        "expected ')' to close the attributes, found the end of the string",
                    ));
                }
                _ => {}
            }
            let kpos = self.i;
            let key = self.take_while(|c| c.is_ascii_alphabetic());
            if self.b.get(self.i) != Some(&b'=') {
                return Err(self.err(
                    self.i,
                    format!(
                        "expected '=' after attribute {key:?}, found {}",
                        self.found(self.i)
                    ),
                ));
            }
            self.i += 1;
            match key.to_ascii_lowercase().as_str() {
                "size" => attrs.size = Some(self.size("a cache size")?),
                "memory" => attrs.memory = Some(self.size("a memory size")?),
                "indexes" => {
                    let mut list = Vec::new();
                    loop {
                        let n = self.number("an OS index")?;
                        let n = u32::try_from(n)
                            .map_err(|_| self.err(kpos, "OS index exceeds 32 bits"))?;
                        if list.len() >= MAX_PUS {
                            return Err(self.err(kpos, format!("more than {MAX_PUS} indexes")));
                        }
                        list.push(n);
                        if self.b.get(self.i) == Some(&b',') {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                    attrs.indexes = Some(list);
                }
                _ => {
                    return Err(self.err(
                        kpos,
                        format!("unknown attribute {key:?}; expected size=, memory= or indexes="),
                    ));
                }
            }
            match self.b.get(self.i) {
                Some(b')') | Some(b' ') | Some(b'\t') => {}
                _ => {
                    return Err(self.err(
                        self.i,
                        format!(
                            "expected a space or ')' after an attribute, found {}",
                            self.found(self.i)
                        ),
                    ));
                }
            }
        }
    }
}

fn parse_type(name: &str) -> Option<Ty> {
    let lower = name.to_ascii_lowercase();
    let n = lower.as_str();
    if n.len() < 2 {
        return None;
    }
    let prefix_of = |full: &str| full.starts_with(n);
    if prefix_of("package") || prefix_of("socket") {
        return Some(Ty::Package);
    }
    if prefix_of("numanode") || prefix_of("node") {
        return Some(Ty::Numa);
    }
    if prefix_of("group") {
        return Some(Ty::Group);
    }
    if prefix_of("die") {
        return Some(Ty::Die);
    }
    if prefix_of("core") {
        return Some(Ty::Core);
    }
    if n == "pu" {
        return Some(Ty::Pu);
    }
    // Caches: l<level>[d|i|u][cache]
    let rest = n.strip_prefix('l')?;
    let level = rest
        .as_bytes()
        .first()
        .filter(|c| (b'1'..=b'5').contains(c))?
        - b'0';
    let rest = rest[1..].strip_suffix("cache").unwrap_or(&rest[1..]);
    let kind = match rest {
        "" | "u" => {
            if level == 1 {
                CacheKind::Data
            } else {
                CacheKind::Unified
            }
        }
        "d" => CacheKind::Data,
        "i" => CacheKind::Instruction,
        _ => return None,
    };
    Some(Ty::Cache(level, kind))
}

fn default_cache_bytes(level: u8) -> u64 {
    match level {
        1 => 32 << 10,
        2 => 4 << 20,
        3 => 16 << 20,
        4 => 64 << 20,
        _ => 256 << 20,
    }
}

/// hwloc's guesses for a description made only of bare arities.
fn bare_types(n: usize) -> Option<Vec<Ty>> {
    use CacheKind::*;
    let l3 = Ty::Cache(3, Unified);
    let l2 = Ty::Cache(2, Unified);
    let l1d = Ty::Cache(1, Data);
    let l1i = Ty::Cache(1, Instruction);
    let v = match n {
        1 => alloc::vec![Ty::Pu],
        2 => alloc::vec![Ty::Numa, Ty::Pu],
        3 => alloc::vec![Ty::Package, Ty::Numa, Ty::Pu],
        4 => alloc::vec![Ty::Package, Ty::Numa, Ty::Core, Ty::Pu],
        5 => alloc::vec![Ty::Package, Ty::Numa, l2, Ty::Core, Ty::Pu],
        6 => alloc::vec![Ty::Package, Ty::Numa, l2, l1d, Ty::Core, Ty::Pu],
        7 => alloc::vec![Ty::Package, Ty::Numa, l3, l2, l1d, Ty::Core, Ty::Pu],
        8 => alloc::vec![Ty::Package, Ty::Numa, l3, l2, l1d, l1i, Ty::Core, Ty::Pu],
        _ => return None,
    };
    Some(v)
}

/// Parses a synthetic description into a [`TopologyDesc`] (see the module docs).
pub fn parse(s: &str) -> Result<TopologyDesc, Error> {
    let mut p = Parser {
        s,
        b: s.as_bytes(),
        i: 0,
    };
    let mut levels: Vec<Level> = Vec::new();
    let mut root_memory: Vec<Attrs> = Vec::new();
    let mut distances: Option<(usize, Vec<Vec<u32>>)> = None;
    let mut typed: Option<bool> = None;
    loop {
        p.skip_ws();
        if p.i >= p.b.len() {
            break;
        }
        let pos = p.i;
        if distances.is_some() {
            return Err(p.err(
                pos,
                format!(
                    "expected the end of the string after distances=, found {}",
                    p.found(pos)
                ),
            ));
        }
        if p.b[p.i] == b'[' {
            p.i += 1;
            let tpos = p.i;
            let name = p.take_while(|c| c.is_ascii_alphanumeric());
            if parse_type(name) != Some(Ty::Numa) {
                return Err(p.err(
                    tpos,
                    format!("expected a NUMA node type inside '[...]', found {name:?}"),
                ));
            }
            let attrs = p.attrs()?;
            if p.b.get(p.i) != Some(&b']') {
                return Err(p.err(
                    p.i,
                    format!(
                        "expected ']' to close the memory child, found {}",
                        p.found(p.i)
                    ),
                ));
            }
            p.i += 1;
            match levels.last_mut() {
                Some(l) => l.memory.push(attrs),
                None => root_memory.push(attrs),
            }
            continue;
        }
        let word = p.take_while(|c| c.is_ascii_alphanumeric() || c == b'_');
        if word.eq_ignore_ascii_case("distances") && p.b.get(p.i) == Some(&b'=') {
            p.i += 1;
            let mut rows: Vec<Vec<u32>> = Vec::new();
            let mut row: Vec<u32> = Vec::new();
            let mut count = 0usize;
            loop {
                let npos = p.i;
                let v = p.number("a distance")?;
                let v = u32::try_from(v).map_err(|_| p.err(npos, "distance exceeds 32 bits"))?;
                count += 1;
                if count > MAX_DISTANCE_VALUES {
                    return Err(p.err(
                        npos,
                        format!("more than {MAX_DISTANCE_VALUES} distance values"),
                    ));
                }
                row.push(v);
                match p.b.get(p.i) {
                    Some(b',') => p.i += 1,
                    Some(b';') => {
                        p.i += 1;
                        rows.push(core::mem::take(&mut row));
                    }
                    _ => {
                        rows.push(core::mem::take(&mut row));
                        break;
                    }
                }
            }
            distances = Some((pos, rows));
            continue;
        }
        let (ty, arity_pos) = if p.b.get(p.i) == Some(&b':') {
            let ty = parse_type(word).ok_or_else(|| {
                if word.eq_ignore_ascii_case("machine") || word.eq_ignore_ascii_case("ma") {
                    p.err(pos, "type Machine is the root and may not appear as a level")
                } else {
                    p.err(pos, format!(
                        "unknown object type {word:?}; expected package, numa, group, die, l1..l5 (d/i/u), core or pu"
                    ))
                }
            })?;
            if typed == Some(false) {
                return Err(p.err(pos, "typed levels cannot be mixed with bare arities"));
            }
            typed = Some(true);
            p.i += 1;
            (Some(ty), p.i)
        } else if !word.is_empty() && word.bytes().all(|c| c.is_ascii_digit()) {
            if typed == Some(true) {
                return Err(p.err(
                    pos,
                    format!("expected type:arity, found the bare arity {word:?}"),
                ));
            }
            typed = Some(false);
            p.i = pos;
            (None, pos)
        } else {
            return Err(p.err(
                pos,
                format!(
                    "expected type:arity, [numa] or distances=, found {}",
                    p.found(pos)
                ),
            ));
        };
        let arity = p.number("an arity")?;
        if arity == 0 {
            return Err(p.err(arity_pos, "arity 0 is not allowed"));
        }
        let arity = usize::try_from(arity)
            .ok()
            .filter(|&a| a <= MAX_PUS)
            .ok_or_else(|| {
                p.err(
                    arity_pos,
                    format!("arity {arity} exceeds the maximum of {MAX_PUS} PUs"),
                )
            })?;
        let attrs = p.attrs()?;
        match p.b.get(p.i) {
            None | Some(b' ') | Some(b'\t') | Some(b'\n') | Some(b'\r') => {}
            _ => {
                return Err(p.err(
                    p.i,
                    format!("expected a space after a level, found {}", p.found(p.i)),
                ));
            }
        }
        if levels.len() >= MAX_LEVELS {
            return Err(p.err(pos, format!("more than {MAX_LEVELS} levels")));
        }
        levels.push(Level {
            ty: ty.unwrap_or(Ty::Pu),
            arity,
            attrs,
            memory: Vec::new(),
            pos,
        });
    }
    if levels.is_empty() {
        return Err(p.err(
            p.i,
            "expected at least one level such as \"core:2 pu:2\", found none",
        ));
    }
    if typed == Some(false) {
        let types = bare_types(levels.len()).ok_or_else(|| {
            p.err(
                0,
                format!(
                    "{} bare arities; at most 8 can be guessed, give types (pack:2 core:4 pu:2)",
                    levels.len()
                ),
            )
        })?;
        for (l, t) in levels.iter_mut().zip(types) {
            l.ty = t;
        }
    }
    // Validate the level sequence.
    let last = levels.len() - 1;
    for (i, l) in levels.iter().enumerate() {
        if (l.ty == Ty::Pu) != (i == last) {
            let msg = if i == last {
                "the last level must be pu"
            } else {
                "pu must be the last level"
            };
            return Err(p.err(l.pos, msg));
        }
        if l.attrs.size.is_some() && !matches!(l.ty, Ty::Cache(..)) {
            return Err(p.err(l.pos, "size= applies only to cache levels"));
        }
        if l.attrs.memory.is_some() && l.ty != Ty::Numa {
            return Err(p.err(l.pos, "memory= applies only to NUMA levels"));
        }
        if l.attrs.indexes.is_some() && !matches!(l.ty, Ty::Pu | Ty::Numa) {
            return Err(p.err(l.pos, "indexes= applies only to pu and numa levels"));
        }
        for m in &l.memory {
            if m.size.is_some() || m.indexes.is_some() {
                return Err(p.err(l.pos, "a [numa] memory child takes only memory="));
            }
        }
    }
    let has_numa_level = levels.iter().any(|l| l.ty == Ty::Numa);
    if has_numa_level && (levels.iter().any(|l| !l.memory.is_empty()) || !root_memory.is_empty()) {
        let pos = levels
            .iter()
            .find(|l| !l.memory.is_empty())
            .map_or(0, |l| l.pos);
        return Err(p.err(
            pos,
            "NUMA nodes cannot be given both as a level and attached with [numa]",
        ));
    }
    for (ty, name) in [
        (Ty::Package, "package"),
        (Ty::Core, "core"),
        (Ty::Numa, "numa"),
    ] {
        if levels.iter().filter(|l| l.ty == ty).count() > 1 {
            let l = levels
                .iter()
                .rev()
                .find(|l| l.ty == ty)
                .map_or(0, |l| l.pos);
            return Err(p.err(l, format!("a second {name} level")));
        }
    }
    // Objects per level, with an overflow-safe bound on PUs.
    let mut counts = Vec::with_capacity(levels.len());
    let mut total: usize = 1;
    for l in &levels {
        total = total
            .checked_mul(l.arity)
            .filter(|&t| t <= MAX_PUS)
            .ok_or_else(|| {
                p.err(
                    l.pos,
                    format!("the description has more than {MAX_PUS} PUs"),
                )
            })?;
        counts.push(total);
    }
    let n_pus = total;
    for (l, &count) in levels.iter().zip(&counts) {
        if let Some(ix) = &l.attrs.indexes {
            if ix.len() != count {
                return Err(p.err(
                    l.pos,
                    format!("indexes= lists {} OS indices for {count} objects", ix.len()),
                ));
            }
            let mut sorted = ix.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(p.err(l.pos, "indexes= repeats an OS index"));
            }
        }
    }
    // PUs under one object of level i.
    let below = |i: usize| n_pus / counts[i];

    let mut desc = TopologyDesc::default();
    // NUMA nodes: (last PU, depth descending, k) gives hwloc's post-order numbering.
    struct NodeObj {
        level: Option<usize>,
        object: usize,
        k: usize,
        memory_bytes: u64,
    }
    let mut node_objs: Vec<NodeObj> = Vec::new();
    for (k, m) in root_memory.iter().enumerate() {
        node_objs.push(NodeObj {
            level: None,
            object: 0,
            k,
            memory_bytes: m.memory.unwrap_or(0),
        });
    }
    let node_count: usize = root_memory.len()
        + levels
            .iter()
            .zip(&counts)
            .map(|(l, &c)| c * (usize::from(l.ty == Ty::Numa) + l.memory.len()))
            .sum::<usize>();
    if node_count > crate::model::MAX_NODES {
        return Err(p.err(
            0,
            format!(
                "the description has {node_count} NUMA nodes; at most {} are supported",
                crate::model::MAX_NODES
            ),
        ));
    }
    for (i, l) in levels.iter().enumerate() {
        if l.ty == Ty::Numa {
            for o in 0..counts[i] {
                node_objs.push(NodeObj {
                    level: Some(i),
                    object: o,
                    k: 0,
                    memory_bytes: l.attrs.memory.unwrap_or(DEFAULT_NUMA_LEVEL_MEMORY_BYTES),
                });
            }
        }
        for (k, m) in l.memory.iter().enumerate() {
            for o in 0..counts[i] {
                node_objs.push(NodeObj {
                    level: Some(i),
                    object: o,
                    k,
                    memory_bytes: m.memory.unwrap_or(0),
                });
            }
        }
    }
    if node_objs.len() > crate::model::MAX_NODES {
        return Err(p.err(
            0,
            format!(
                "the description has {} NUMA nodes; at most {} are supported",
                node_objs.len(),
                crate::model::MAX_NODES
            ),
        ));
    }
    if node_objs.is_empty() {
        node_objs.push(NodeObj {
            level: None,
            object: 0,
            k: 0,
            memory_bytes: DEFAULT_NUMA_LEVEL_MEMORY_BYTES,
        });
    }
    let last_pu = |n: &NodeObj| match n.level {
        None => n_pus - 1,
        Some(i) => (n.object + 1) * below(i) - 1,
    };
    let mut order: Vec<usize> = (0..node_objs.len()).collect();
    order.sort_by_key(|&j| {
        let n = &node_objs[j];
        (last_pu(n), usize::MAX - n.level.map_or(0, |d| d + 1), n.k)
    });
    let numa_indexes = levels
        .iter()
        .find(|l| l.ty == Ty::Numa)
        .and_then(|l| l.attrs.indexes.clone());
    let mut node_os = alloc::vec![0u32; node_objs.len()];
    for (rank, &j) in order.iter().enumerate() {
        node_os[j] = match (&numa_indexes, node_objs[j].level) {
            (Some(ix), Some(_)) => ix[node_objs[j].object],
            _ => rank as u32,
        };
    }
    for (j, n) in node_objs.iter().enumerate() {
        desc.nodes.push(NodeDesc {
            os_index: node_os[j],
            memory_bytes: n.memory_bytes,
        });
    }
    // The innermost node level a PU sits under: (level, k = 0) objects.
    let innermost_node_level: Option<usize> = levels
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| l.ty == Ty::Numa || !l.memory.is_empty())
        .map(|(i, _)| i);
    let node_obj_index = |level: Option<usize>, object: usize| -> usize {
        node_objs
            .iter()
            .position(|n| n.level == level && n.object == object && n.k == 0)
            .unwrap_or(0)
    };
    // Precompute node index per object of the innermost node level (avoids O(PUs * nodes)).
    let node_of_object: Vec<usize> = match innermost_node_level {
        Some(i) => (0..counts[i]).map(|o| node_obj_index(Some(i), o)).collect(),
        None => alloc::vec![node_obj_index(None, 0)],
    };
    // Caches: one CacheDesc per object of each cache level.
    let mut cache_base = alloc::vec![usize::MAX; levels.len()];
    for (i, l) in levels.iter().enumerate() {
        if let Ty::Cache(level, kind) = l.ty {
            cache_base[i] = desc.caches.len();
            for _ in 0..counts[i] {
                desc.caches.push(CacheDesc {
                    level,
                    kind,
                    size_bytes: l.attrs.size.unwrap_or_else(|| default_cache_bytes(level)),
                    line_bytes: DEFAULT_LINE_BYTES,
                    associativity: 0,
                });
            }
        }
    }
    let package_level = levels.iter().position(|l| l.ty == Ty::Package);
    let core_level = levels.iter().position(|l| l.ty == Ty::Core);
    let pu_indexes = levels[last].attrs.indexes.clone();
    desc.pus.reserve(n_pus);
    for pu in 0..n_pus {
        let ancestor = |i: usize| pu / below(i);
        let caches = (0..levels.len())
            .filter(|&i| cache_base[i] != usize::MAX)
            .map(|i| cache_base[i] + ancestor(i))
            .collect();
        let node = match innermost_node_level {
            Some(i) => node_of_object[ancestor(i)],
            None => node_of_object[0],
        };
        let os_index = pu_indexes.as_ref().map_or(pu as u32, |ix| ix[pu]);
        desc.pus.push(PuDesc {
            os_index,
            apic_id: None,
            package: package_level.map_or(0, |i| ancestor(i) as u32),
            core: core_level.map_or(pu as u64, |i| ancestor(i) as u64),
            node: Some(node_os[node]),
            caches,
        });
    }
    if let Some((pos, rows)) = distances {
        let n = desc.nodes.len();
        if rows.len() != n {
            return Err(p.err(
                pos,
                format!("distances= has {} rows for {n} NUMA nodes", rows.len()),
            ));
        }
        if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != n) {
            return Err(p.err(
                pos,
                format!(
                    "distances= row {r} has {} values for {n} NUMA nodes",
                    row.len()
                ),
            ));
        }
        let mut nodes: Vec<u32> = desc.nodes.iter().map(|n| n.os_index).collect();
        nodes.sort_unstable();
        desc.distances = Some(DistanceMatrix {
            nodes,
            values: rows.into_iter().flatten().collect(),
        });
    }
    Ok(desc)
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;
    use crate::TierKind;

    fn topo(s: &str) -> Topology {
        Topology::from_synthetic(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn typed_levels_build_the_expected_machine() {
        let t = topo("pack:2 numa:2 l3:1 core:8 pu:2");
        assert_eq!(
            (t.num_packages(), t.num_nodes(), t.num_cores(), t.num_cpus()),
            (2, 4, 32, 64)
        );
        assert_eq!(t.nodes()[3].cpus.to_string(), "48-63");
        assert_eq!(t.nodes()[0].memory_bytes, 1 << 30);
        let l3: Vec<_> = t.caches().iter().filter(|c| c.level == 3).collect();
        assert_eq!(l3.len(), 4);
        assert_eq!(l3[0].size_bytes, 16 << 20);
    }

    #[test]
    fn memory_children_attributes_and_units() {
        let t = topo("pack:2 [numa(memory=2GB)] l3:1(size=8MiB) core:2 pu:1");
        assert_eq!(t.num_nodes(), 2);
        assert_eq!(t.nodes()[1].memory_bytes, 2_000_000_000);
        assert_eq!(
            t.caches().iter().find(|c| c.level == 3).unwrap().size_bytes,
            8 << 20
        );
        let t = topo("pack:2 [numa] core:1 pu:1");
        assert_eq!(
            t.nodes()[0].memory_bytes,
            0,
            "a bare [numa] has no memory, as in hwloc"
        );
        let t = topo("core:2 pu:2");
        assert_eq!(t.num_nodes(), 1);
        assert_eq!(
            t.nodes()[0].memory_bytes,
            1 << 30,
            "hwloc inserts one 1 GiB node"
        );
    }

    #[test]
    fn bare_arities_follow_hwloc_guesses() {
        let t = topo("2 2 2 2");
        assert_eq!(
            (t.num_packages(), t.num_nodes(), t.num_cores(), t.num_cpus()),
            (2, 4, 8, 16)
        );
        let t = topo("2 2 2 2 2 2 2");
        assert!(t.caches().iter().any(|c| c.level == 3));
        assert!(
            t.caches()
                .iter()
                .any(|c| c.level == 1 && c.kind == CacheKind::Data)
        );
    }

    #[test]
    fn indexes_permute_os_numbers() {
        let t = topo("core:4 pu:1(indexes=3,2,1,0)");
        assert_eq!(
            t.pu(0).os_index,
            0,
            "logical order follows OS order within equal groups"
        );
        let t = topo("numa:2(indexes=5,3) core:1 pu:1");
        assert_eq!(
            t.nodes().iter().map(|n| n.os_index).collect::<Vec<_>>(),
            vec![3, 5]
        );
        assert_eq!(t.cpus_of_node(0), &[1], "node P#3 holds the second PU");
    }

    #[test]
    fn distances_extension() {
        let t = topo(
            "pack:2 numa:2 core:1 pu:1 distances=10,12,32,32;12,10,32,32;32,32,10,12;32,32,12,10",
        );
        assert_eq!(t.distance(0, 1), 12);
        assert_eq!(t.distance(1, 3), 32);
        let order = t.steal_order(0);
        assert_eq!(order.get(0).unwrap().kind, TierKind::Remote);
        assert_eq!(order.get(0).unwrap().distance, 12);
    }

    #[test]
    fn llc_above_numa_spans_nodes() {
        let t = topo("pack:1 l3:1 numa:2 core:2 pu:1");
        let kinds: Vec<_> = t.steal_order(0).iter().map(|x| x.kind).collect();
        assert_eq!(kinds, vec![TierKind::Llc]);
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let cases = [
            ("pack:2 core:x", "byte 12", "expected an arity"),
            ("pack:2 c:2 pu:1", "byte 7", "unknown object type \"c\""),
            ("bogus:2 pu:1", "byte 0", "unknown object type \"bogus\""),
            ("pack:2 pu:1 core:1", "", "pu must be the last level"),
            ("pack:0 pu:1", "byte 5", "arity 0"),
            ("pack:2 core:2", "", "the last level must be pu"),
            ("numa:2(memory=1XB) pu:1", "", "unknown size unit"),
            ("numa:2 pu:1 distances=10,20;20", "", "row 1 has 1 values"),
            ("numa:2 pu:1 distances=10,20", "", "1 rows for 2 NUMA nodes"),
            ("pack:65536 core:65536 pu:65536", "", "more than 65536 PUs"),
            ("l3:1(linesize=64) pu:1", "", "unknown attribute"),
            ("pack:2 [numa pu:1", "", "expected ']'"),
            ("2 core:2 pu:1", "", "mixed"),
            ("", "", "at least one level"),
            ("numa:2 [numa] pu:1", "", "both as a level and attached"),
            ("pu:2(indexes=1,1)", "", "repeats"),
            ("pu:3(indexes=1,2)", "", "2 OS indices for 3 objects"),
            ("Machine:1 pu:2", "", "root"),
            (
                "numa:2 pu:1 distances=10,5;5,10",
                "",
                "local distance 10 is larger",
            ),
        ];
        for (input, at, what) in cases {
            let e = Topology::from_synthetic(input).unwrap_err().to_string();
            assert!(
                e.contains(what) && e.contains(at),
                "{input:?} gave {e:?}, expected {what:?} at {at:?}"
            );
        }
    }

    #[test]
    fn never_panics_on_mutated_inputs() {
        let seeds = [
            "pack:2 [numa(memory=2GB)] l3:1(size=8MiB) core:2 pu:2(indexes=0,1,2,3,4,5,6,7) distances=10;",
        ];
        for seed in seeds {
            let bytes = seed.as_bytes();
            for cut in 0..bytes.len() {
                let _ = Topology::from_synthetic(&seed[..cut]);
                for replacement in [b' ', b'(', b')', b'[', b']', b'9', b':', b'=', b',', b';'] {
                    let mut v = bytes.to_vec();
                    v[cut] = replacement;
                    if let Ok(s) = core::str::from_utf8(&v) {
                        let _ = Topology::from_synthetic(s);
                    }
                }
            }
        }
    }
}
