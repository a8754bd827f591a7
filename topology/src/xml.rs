//! hwloc XML (v2, as written by `lstopo --of xml`; v1 files are accepted where they agree).
//!
//! The reader walks the object tree keeping each PU's ancestors: its `Package` (or v1 `Socket`),
//! its `Core`, and its caches (`L1Cache`, `L1iCache`, `L2Cache`, ... or v1 `Cache` with a `depth`
//! attribute). NUMA nodes are `NUMANode` objects wherever they sit (hwloc 2 attaches them as
//! memory children; hwloc 1 puts them in the tree); a PU belongs to the node with the smallest
//! `cpuset` that contains it. Offline CPUs are the machine's `complete_cpuset` minus its `cpuset`;
//! `allowed_cpuset` is recorded as the allowed mask. A `distances2` block of type `NUMANode`
//! (os or gp indexing, values split over several `u64values` elements as hwloc writes them)
//! becomes the distance matrix.
//!
//! Every error carries the line and column of the element at fault.

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use crate::cpuset::CpuSet;
use crate::desc::{CacheDesc, CacheKind, DistanceMatrix, NodeDesc, PuDesc, TopologyDesc};
use crate::error::{Error, ErrorKind};
use crate::model::Topology;

impl Topology {
    /// Builds a topology from hwloc XML text (see the [module docs](self)).
    pub fn from_hwloc_xml(text: &str) -> Result<Topology, Error> {
        Topology::build(parse(text)?)
    }
}

struct Ctx<'a, 'input> {
    doc: &'a roxmltree::Document<'input>,
}

impl Ctx<'_, '_> {
    fn at(&self, node: roxmltree::Node<'_, '_>) -> String {
        let pos = self.doc.text_pos_at(node.range().start);
        format!("line {}, column {}", pos.row, pos.col)
    }

    fn err(&self, node: roxmltree::Node<'_, '_>, msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Xml, self.at(node), msg)
    }

    fn attr_u64(&self, node: roxmltree::Node<'_, '_>, name: &str) -> Result<Option<u64>, Error> {
        match node.attribute(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                self.err(
                    node,
                    format!("attribute {name}={v:?}: expected an unsigned integer"),
                )
            }),
        }
    }

    fn attr_set(&self, node: roxmltree::Node<'_, '_>, name: &str) -> Result<Option<CpuSet>, Error> {
        match node.attribute(name) {
            None => Ok(None),
            Some(v) => parse_bitmap(v)
                .map(Some)
                .map_err(|m| self.err(node, format!("attribute {name}={v:?}: {m}"))),
        }
    }
}

/// Parses hwloc's bitmap syntax: comma-separated 32-bit hex words, most significant first
/// (`0x000000ff,0xffffffff`); a leading `0xf...f` marks an infinite set, capped here at
/// [`CpuSet::MAX_CPUS`].
pub fn parse_bitmap(text: &str) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    let t = text.trim();
    if t.is_empty() || t == "0x0" {
        return Ok(set);
    }
    let (infinite, rest) = match t.strip_prefix("0xf...f") {
        Some(r) => (true, r.trim_start_matches(',')),
        None => (false, t),
    };
    let words: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(',').collect()
    };
    if words.len() * 32 > CpuSet::MAX_CPUS {
        return Err(format!("bitmap wider than {} CPUs", CpuSet::MAX_CPUS));
    }
    for (i, w) in words.iter().rev().enumerate() {
        // hwloc abbreviates zero words to nothing: `0x00000001,,0x0` is bit 64.
        if w.trim().is_empty() {
            continue;
        }
        let hex = w
            .trim()
            .strip_prefix("0x")
            .ok_or_else(|| format!("expected a 0x-prefixed hex word, found {w:?}"))?;
        let v = u32::from_str_radix(hex, 16)
            .map_err(|_| format!("expected a hex word, found {w:?}"))?;
        for bit in 0..32 {
            if v & (1 << bit) != 0 {
                set.insert(i * 32 + bit);
            }
        }
    }
    if infinite {
        for cpu in words.len() * 32..CpuSet::MAX_CPUS {
            set.insert(cpu);
        }
    }
    Ok(set)
}

#[derive(Default, Clone)]
struct Ancestors {
    package: Option<u32>,
    core: Option<u64>,
    caches: Vec<usize>,
}

/// Parses hwloc XML into a description (see the module docs).
pub fn parse(text: &str) -> Result<TopologyDesc, Error> {
    // hwloc writes a DOCTYPE line; external DTDs are never fetched by roxmltree.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        Error::new(
            ErrorKind::Xml,
            format!("line {}, column {}", pos.row, pos.col),
            format!("malformed XML: {e}"),
        )
    })?;
    let ctx = Ctx { doc: &doc };
    let root = doc.root_element();
    if root.tag_name().name() != "topology" {
        return Err(ctx.err(
            root,
            format!(
                "expected a <topology> root element, found <{}>",
                root.tag_name().name()
            ),
        ));
    }
    let machine = root
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "object")
        .ok_or_else(|| ctx.err(root, "expected a Machine <object> inside <topology>"))?;

    let mut desc = TopologyDesc::default();
    let mut numa: Vec<(u32, u64, CpuSet, u64)> = Vec::new(); // os, memory, cpuset, gp
    let mut package_gp: BTreeMap<u64, u32> = BTreeMap::new();
    let mut core_seq = 0u64;
    let mut gp_to_numa_os: BTreeMap<u64, u32> = BTreeMap::new();
    walk(
        &ctx,
        machine,
        &Ancestors::default(),
        &mut desc,
        &mut numa,
        &mut package_gp,
        &mut core_seq,
        0,
    )?;

    // Offline and allowed CPUs from the machine object.
    let online = ctx.attr_set(machine, "cpuset")?;
    if let (Some(complete), Some(online)) =
        (ctx.attr_set(machine, "complete_cpuset")?, online.as_ref())
    {
        let mut offline = complete;
        offline.difference_with(online);
        desc.offline = offline;
    }
    desc.allowed = ctx.attr_set(machine, "allowed_cpuset")?;
    desc.machine_memory_bytes = ctx.attr_u64(machine, "local_memory")?.unwrap_or(0);

    // NUMA nodes, and each PU's innermost node.
    for (os, memory, _, gp) in &numa {
        if desc.nodes.iter().any(|n| n.os_index == *os) {
            return Err(Error::new(
                ErrorKind::Xml,
                "",
                format!("NUMANode os_index {os} appears twice"),
            ));
        }
        desc.nodes.push(NodeDesc {
            os_index: *os,
            memory_bytes: *memory,
        });
        gp_to_numa_os.insert(*gp, *os);
    }
    if !numa.is_empty() {
        for pu in &mut desc.pus {
            pu.node = numa
                .iter()
                .filter(|(_, _, set, _)| set.contains(pu.os_index as usize))
                .min_by_key(|(_, _, set, _)| set.len())
                .map(|(os, ..)| *os);
            if pu.node.is_none() {
                return Err(Error::new(
                    ErrorKind::Xml,
                    "",
                    format!("PU {} is in no NUMANode's cpuset", pu.os_index),
                ));
            }
        }
    }

    // distances2 of NUMA nodes.
    for d in root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "distances2")
    {
        if d.attribute("type") != Some("NUMANode") {
            continue;
        }
        let n = ctx
            .attr_u64(d, "nbobjs")?
            .ok_or_else(|| ctx.err(d, "distances2 without nbobjs"))? as usize;
        if n == 0 || n > 4096 {
            return Err(ctx.err(d, format!("nbobjs={n} is outside 1..=4096")));
        }
        let indexing = d.attribute("indexing").unwrap_or("os");
        let mut indexes: Vec<u64> = Vec::new();
        let mut values: Vec<u64> = Vec::new();
        for c in d.children().filter(|c| c.is_element()) {
            let target = match c.tag_name().name() {
                "indexes" => &mut indexes,
                "u64values" => &mut values,
                _ => continue,
            };
            for word in c.text().unwrap_or("").split_whitespace() {
                target.push(word.parse::<u64>().map_err(|_| {
                    ctx.err(
                        c,
                        format!(
                            "expected an unsigned integer in <{}>, found {word:?}",
                            c.tag_name().name()
                        ),
                    )
                })?);
            }
        }
        if indexes.len() != n || values.len() != n * n {
            return Err(ctx.err(
                d,
                format!(
                    "distances2 of {n} objects has {} indexes and {} values; expected {n} and {}",
                    indexes.len(),
                    values.len(),
                    n * n
                ),
            ));
        }
        let nodes: Result<Vec<u32>, Error> = indexes
            .iter()
            .map(|&i| match indexing {
                "gp" => gp_to_numa_os
                    .get(&i)
                    .copied()
                    .ok_or_else(|| ctx.err(d, format!("gp index {i} is not a NUMANode"))),
                _ => u32::try_from(i).map_err(|_| ctx.err(d, format!("index {i} exceeds 32 bits"))),
            })
            .collect();
        let values: Result<Vec<u32>, Error> = values
            .iter()
            .map(|&v| {
                u32::try_from(v).map_err(|_| ctx.err(d, format!("distance {v} exceeds 32 bits")))
            })
            .collect();
        let matrix = DistanceMatrix {
            nodes: nodes?,
            values: values?,
        };
        // Prefer latency matrices; take the first NUMANode matrix otherwise.
        let is_latency = d.attribute("name").is_some_and(|n| n.contains("Latency"));
        if desc.distances.is_none() || is_latency {
            desc.distances = Some(matrix);
        }
    }
    Ok(desc)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    ctx: &Ctx<'_, '_>,
    node: roxmltree::Node<'_, '_>,
    up: &Ancestors,
    desc: &mut TopologyDesc,
    numa: &mut Vec<(u32, u64, CpuSet, u64)>,
    package_gp: &mut BTreeMap<u64, u32>,
    core_seq: &mut u64,
    depth: usize,
) -> Result<(), Error> {
    const MAX_DEPTH: usize = 256;
    if depth > MAX_DEPTH {
        return Err(ctx.err(node, format!("objects nested deeper than {MAX_DEPTH}")));
    }
    let ty = node
        .attribute("type")
        .ok_or_else(|| ctx.err(node, "<object> without a type attribute"))?;
    let os_index = || -> Result<u32, Error> {
        let v = ctx
            .attr_u64(node, "os_index")?
            .ok_or_else(|| ctx.err(node, format!("{ty} object without os_index")))?;
        u32::try_from(v).map_err(|_| ctx.err(node, "os_index exceeds 32 bits"))
    };
    let mut here = up.clone();
    match ty {
        "Package" | "Socket" => {
            let os = match ctx.attr_u64(node, "os_index")? {
                Some(v) => {
                    u32::try_from(v).map_err(|_| ctx.err(node, "os_index exceeds 32 bits"))?
                }
                None => {
                    let next = package_gp.len() as u32;
                    *package_gp
                        .entry(ctx.attr_u64(node, "gp_index")?.unwrap_or(u64::from(next)))
                        .or_insert(next)
                }
            };
            here.package = Some(os);
        }
        "Core" => {
            *core_seq += 1;
            here.core = Some(*core_seq);
        }
        "NUMANode" => {
            let cpus = ctx.attr_set(node, "cpuset")?.unwrap_or_default();
            let memory = ctx.attr_u64(node, "local_memory")?.unwrap_or(0);
            let gp = ctx.attr_u64(node, "gp_index")?.unwrap_or(u64::MAX);
            numa.push((os_index()?, memory, cpus, gp));
        }
        "PU" => {
            let os = os_index()?;
            if os as usize >= CpuSet::MAX_CPUS {
                return Err(ctx.err(
                    node,
                    format!("PU os_index {os} exceeds {}", CpuSet::MAX_CPUS - 1),
                ));
            }
            desc.pus.push(PuDesc {
                os_index: os,
                apic_id: None,
                package: here.package.unwrap_or(0),
                core: here.core.unwrap_or((1 << 62) | u64::from(os)),
                node: None,
                caches: here.caches.clone(),
            });
        }
        "Machine" | "Group" | "Die" | "Misc" | "Bridge" | "PCIDev" | "OSDev" | "MemCache" => {}
        other => {
            if let Some(level) = cache_level(other, node, ctx)? {
                let kind = match ctx.attr_u64(node, "cache_type")? {
                    Some(0) | None => {
                        if other.contains('i') {
                            CacheKind::Instruction
                        } else {
                            CacheKind::Unified
                        }
                    }
                    Some(1) => CacheKind::Data,
                    Some(2) => CacheKind::Instruction,
                    Some(t) => {
                        return Err(ctx.err(node, format!("cache_type {t}: expected 0, 1 or 2")));
                    }
                };
                let kind = if level == 1 && kind == CacheKind::Unified && !other.contains('i') {
                    // hwloc writes L1 data caches as L1Cache with cache_type 1; a unified L1
                    // is modelled as data for tiering.
                    CacheKind::Data
                } else {
                    kind
                };
                let associativity = node
                    .attribute("cache_associativity")
                    .map(|v| {
                        v.trim().parse::<i32>().map_err(|_| {
                            ctx.err(
                                node,
                                format!("cache_associativity={v:?}: expected an integer"),
                            )
                        })
                    })
                    .transpose()?
                    .unwrap_or(0);
                let i = desc.add_cache(CacheDesc {
                    level,
                    kind,
                    size_bytes: ctx.attr_u64(node, "cache_size")?.unwrap_or(0),
                    line_bytes: ctx.attr_u64(node, "cache_linesize")?.unwrap_or(0) as u32,
                    associativity,
                });
                here.caches.push(i);
            } else {
                return Err(ctx.err(node, format!("unknown object type {other:?}")));
            }
        }
    }
    for child in node
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "object")
    {
        walk(
            ctx,
            child,
            &here,
            desc,
            numa,
            package_gp,
            core_seq,
            depth + 1,
        )?;
    }
    Ok(())
}

fn cache_level(
    ty: &str,
    node: roxmltree::Node<'_, '_>,
    ctx: &Ctx<'_, '_>,
) -> Result<Option<u8>, Error> {
    if ty == "Cache" {
        let depth = ctx
            .attr_u64(node, "depth")?
            .ok_or_else(|| ctx.err(node, "Cache object without depth"))?;
        return match depth {
            1..=4 => Ok(Some(depth as u8)),
            _ => Err(ctx.err(node, format!("cache depth {depth} is outside 1..=4"))),
        };
    }
    let Some(rest) = ty.strip_prefix('L') else {
        return Ok(None);
    };
    let Some(rest) = rest.strip_suffix("Cache") else {
        return Ok(None);
    };
    let digits = rest.trim_end_matches(['i', 'd', 'u']);
    match digits.parse::<u8>() {
        Ok(l @ 1..=4) => Ok(Some(l)),
        Ok(l) => Err(ctx.err(node, format!("cache level {l} is outside 1..=4"))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn bitmaps_parse_hwloc_syntax() {
        assert_eq!(parse_bitmap("0x0000000f").unwrap().to_string(), "0-3");
        assert_eq!(
            parse_bitmap("0x00000001,0x80000000").unwrap().to_string(),
            "31-32"
        );
        assert_eq!(parse_bitmap("0xf...f,0x0").unwrap().first(), Some(32));
        assert_eq!(parse_bitmap("0x00000001,,0x0").unwrap().to_string(), "64");
        assert!(parse_bitmap("0xzz").is_err());
        assert!(parse_bitmap("12").is_err());
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = Topology::from_hwloc_xml(
            "<topology>\n  <object type=\"Machine\">\n    <object type=\"PU\"/>\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
        let xml = "<topology version=\"2.0\">\n<object type=\"Machine\" os_index=\"0\">\n  <object type=\"PU\" os_index=\"x\"/>\n</object>\n</topology>";
        let e = Topology::from_hwloc_xml(xml).unwrap_err().to_string();
        assert!(
            e.contains("line 3, column 3") && e.contains("os_index"),
            "{e}"
        );
        let xml = "<topology version=\"2.0\">\n<object type=\"Machine\" os_index=\"0\">\n  <object type=\"Frobnicator\"/>\n</object>\n</topology>";
        let e = Topology::from_hwloc_xml(xml).unwrap_err().to_string();
        assert!(e.contains("unknown object type \"Frobnicator\""), "{e}");
        let e = Topology::from_hwloc_xml("<nope/>").unwrap_err().to_string();
        assert!(e.contains("expected a <topology> root"), "{e}");
    }
}
