//! ACPI MADT, SRAT and SLIT from raw table bytes (no_std), for kernels.
//!
//! Each table is validated before any field is read: signature, `length` against the bytes
//! given, checksum (all bytes sum to 0 mod 256), and every entry's length against the table's
//! end. Errors name the table and the byte offset. Entry types this parser does not use are
//! skipped by their length, as the specification requires.
//!
//! Numbering follows Linux so a kernel's model can be compared with what firmware was asked
//! for: a CPU's OS index is its position among the enabled MADT processor entries, a node's OS
//! index is its SRAT proximity domain.
//!
//! [`walk_tables`] finds tables from the RSDP through the XSDT (or RSDT) with a caller-supplied
//! accessor from physical address to bytes, so the same code runs in a kernel (identity-mapped
//! memory) and in tests (a byte buffer).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpuid::ApicLayout;
use crate::desc::{DistanceMatrix, NodeDesc, PuDesc, TopologyDesc};
use crate::error::{Error, ErrorKind};

const HEADER_BYTES: usize = 36;

fn err(table: &str, offset: usize, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Acpi, format!("{table} at byte {offset}"), msg)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// Checks a System Description Table header and returns the table cut to its `length`.
pub fn validate<'a>(bytes: &'a [u8], signature: &[u8; 4]) -> Result<&'a [u8], Error> {
    let name = core::str::from_utf8(signature).unwrap_or("table");
    if bytes.len() < HEADER_BYTES {
        return Err(err(
            name,
            0,
            format!("{} bytes is shorter than the 36-byte header", bytes.len()),
        ));
    }
    if &bytes[0..4] != signature {
        return Err(err(
            name,
            0,
            format!("signature {:?}, expected {name:?}", &bytes[0..4]),
        ));
    }
    let length = u32_at(bytes, 4) as usize;
    if length < HEADER_BYTES || length > bytes.len() {
        return Err(err(
            name,
            4,
            format!(
                "length {length} does not fit the {} bytes given",
                bytes.len()
            ),
        ));
    }
    let table = &bytes[..length];
    let sum = table.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    if sum != 0 {
        return Err(err(
            name,
            9,
            format!("checksum mismatch: bytes sum to {sum:#04x}, expected 0"),
        ));
    }
    Ok(table)
}

/// Iterates `(type, offset, entry)` over a table's entries starting at `start`.
fn entries<'a>(
    name: &'a str,
    table: &'a [u8],
    start: usize,
) -> impl Iterator<Item = Result<(u8, usize, &'a [u8]), Error>> + 'a {
    let mut at = start;
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || at >= table.len() {
            return None;
        }
        if at + 2 > table.len() {
            failed = true;
            return Some(Err(err(name, at, "truncated entry header")));
        }
        let (kind, len) = (table[at], usize::from(table[at + 1]));
        if len < 2 || at + len > table.len() {
            failed = true;
            return Some(Err(err(
                name,
                at,
                format!("entry type {kind} has length {len}, which overruns the table"),
            )));
        }
        let e = (kind, at, &table[at..at + len]);
        at += len;
        Some(Ok(e))
    })
}

fn need(name: &str, offset: usize, e: &[u8], min: usize, what: &str) -> Result<(), Error> {
    if e.len() < min {
        return Err(err(
            name,
            offset,
            format!("{what} entry is {} bytes, expected at least {min}", e.len()),
        ));
    }
    Ok(())
}

/// A processor from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadtCpu {
    /// Local (x2)APIC id.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub uid: u32,
    /// Usable now (flag bit 0).
    pub enabled: bool,
    /// Can be brought online later (flag bit 1, ACPI 6.3+).
    pub online_capable: bool,
}

/// The Multiple APIC Description Table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Madt {
    /// Physical address of the local APIC registers (overridden by a type-5 entry when present).
    pub lapic_paddr: u64,
    /// Processors in table order (types 0 and 9).
    pub cpus: Vec<MadtCpu>,
}

/// Parses a MADT (`APIC`).
pub fn parse_madt(bytes: &[u8]) -> Result<Madt, Error> {
    let t = validate(bytes, b"APIC")?;
    if t.len() < 44 {
        return Err(err(
            "APIC",
            36,
            "table too short for the local APIC address and flags",
        ));
    }
    let mut madt = Madt {
        lapic_paddr: u64::from(u32_at(t, 36)),
        cpus: Vec::new(),
    };
    for e in entries("APIC", t, 44) {
        let (kind, at, e) = e?;
        match kind {
            0 => {
                need("APIC", at, e, 8, "Processor Local APIC")?;
                let flags = u32_at(e, 4);
                madt.cpus.push(MadtCpu {
                    apic_id: u32::from(e[3]),
                    uid: u32::from(e[2]),
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                });
            }
            5 => {
                need("APIC", at, e, 12, "Local APIC Address Override")?;
                madt.lapic_paddr = u64_at(e, 4);
            }
            9 => {
                need("APIC", at, e, 16, "Processor Local x2APIC")?;
                let flags = u32_at(e, 8);
                madt.cpus.push(MadtCpu {
                    apic_id: u32_at(e, 4),
                    uid: u32_at(e, 12),
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                });
            }
            _ => {}
        }
    }
    Ok(madt)
}

/// A processor's proximity domain from the SRAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SratCpu {
    /// Local (x2)APIC id.
    pub apic_id: u32,
    /// Proximity domain (the node's OS index).
    pub domain: u32,
    /// Entry enabled (disabled entries are ignored by the OS).
    pub enabled: bool,
}

/// A memory range's proximity domain from the SRAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SratMemory {
    /// Physical base address.
    pub base: u64,
    /// Length in bytes.
    pub length_bytes: u64,
    /// Proximity domain.
    pub domain: u32,
    /// Entry enabled.
    pub enabled: bool,
    /// Hot-pluggable (may be absent now).
    pub hotplug: bool,
    /// Non-volatile.
    pub nonvolatile: bool,
}

/// The System Resource Affinity Table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Srat {
    /// Processor affinities (types 0 and 2).
    pub cpus: Vec<SratCpu>,
    /// Memory affinities (type 1).
    pub memory: Vec<SratMemory>,
}

/// Parses a SRAT.
pub fn parse_srat(bytes: &[u8]) -> Result<Srat, Error> {
    let t = validate(bytes, b"SRAT")?;
    let mut srat = Srat::default();
    for e in entries("SRAT", t, 48) {
        let (kind, at, e) = e?;
        match kind {
            0 => {
                need("SRAT", at, e, 16, "Processor Local APIC Affinity")?;
                // Proximity domain: bits 7:0 at byte 2, bits 31:8 at bytes 9..12.
                let domain = u32::from(e[2])
                    | (u32::from(e[9]) << 8)
                    | (u32::from(e[10]) << 16)
                    | (u32::from(e[11]) << 24);
                srat.cpus.push(SratCpu {
                    apic_id: u32::from(e[3]),
                    domain,
                    enabled: u32_at(e, 4) & 1 != 0,
                });
            }
            1 => {
                need("SRAT", at, e, 40, "Memory Affinity")?;
                let flags = u32_at(e, 28);
                srat.memory.push(SratMemory {
                    base: u64_at(e, 8),
                    length_bytes: u64_at(e, 16),
                    domain: u32_at(e, 2),
                    enabled: flags & 1 != 0,
                    hotplug: flags & 2 != 0,
                    nonvolatile: flags & 4 != 0,
                });
            }
            2 => {
                need("SRAT", at, e, 24, "Processor Local x2APIC Affinity")?;
                srat.cpus.push(SratCpu {
                    apic_id: u32_at(e, 8),
                    domain: u32_at(e, 4),
                    enabled: u32_at(e, 12) & 1 != 0,
                });
            }
            _ => {}
        }
    }
    Ok(srat)
}

/// The System Locality Information Table: `localities²` distances, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slit {
    /// Number of localities (proximity domains 0..n).
    pub localities: usize,
    /// Row-major distances.
    pub values: Vec<u8>,
}

/// Parses a SLIT.
pub fn parse_slit(bytes: &[u8]) -> Result<Slit, Error> {
    let t = validate(bytes, b"SLIT")?;
    if t.len() < 44 {
        return Err(err("SLIT", 36, "table too short for the locality count"));
    }
    let n = u64_at(t, 36);
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= 256)
        .ok_or_else(|| {
            err(
                "SLIT",
                36,
                format!("{n} localities; at most 256 fit a SLIT"),
            )
        })?;
    if t.len() < 44 + n * n {
        return Err(err(
            "SLIT",
            44,
            format!(
                "{n} localities need {} matrix bytes, the table has {}",
                n * n,
                t.len() - 44
            ),
        ));
    }
    let values = t[44..44 + n * n].to_vec();
    for i in 0..n {
        if values[i * n + i] != 10 {
            return Err(err(
                "SLIT",
                44 + i * n + i,
                format!(
                    "locality {i} has self-distance {}, expected 10",
                    values[i * n + i]
                ),
            ));
        }
    }
    Ok(Slit {
        localities: n,
        values,
    })
}

/// A machine described by firmware tables: the model description plus the memory ranges a
/// kernel builds its per-node frame pools from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiMachine {
    /// Ready for [`crate::Topology::build`].
    pub desc: TopologyDesc,
    /// Enabled SRAT memory ranges (base, length, proximity domain), hot-pluggable ones included
    /// with their flag so a kernel can skip them.
    pub memory: Vec<SratMemory>,
    /// Local APIC register address.
    pub lapic_paddr: u64,
}

/// Combines MADT, SRAT and SLIT (and, when given, a CPUID layout for package/core/cache
/// structure; without it each APIC id is its own core in package 0).
pub fn machine(
    madt: &Madt,
    srat: Option<&Srat>,
    slit: Option<&Slit>,
    layout: Option<&ApicLayout>,
) -> Result<AcpiMachine, Error> {
    let enabled: Vec<(u32, u32)> = madt
        .cpus
        .iter()
        .filter(|c| c.enabled)
        .enumerate()
        .map(|(os, c)| (os as u32, c.apic_id))
        .collect();
    if enabled.is_empty() {
        return Err(err("APIC", 44, "no enabled processor entry"));
    }
    let mut node_of_apic: BTreeMap<u32, u32> = BTreeMap::new();
    let mut nodes: BTreeMap<u32, u64> = BTreeMap::new();
    let mut memory = Vec::new();
    if let Some(srat) = srat {
        for c in srat.cpus.iter().filter(|c| c.enabled) {
            node_of_apic.insert(c.apic_id, c.domain);
            nodes.entry(c.domain).or_insert(0);
        }
        for m in srat.memory.iter().filter(|m| m.enabled) {
            let bytes = nodes.entry(m.domain).or_insert(0);
            if !m.hotplug {
                *bytes = bytes.saturating_add(m.length_bytes);
            }
            memory.push(*m);
        }
    }
    let mut desc = match layout {
        Some(l) => l.desc_from_apic_ids(&enabled),
        None => TopologyDesc {
            pus: enabled
                .iter()
                .map(|&(os, apic)| PuDesc {
                    os_index: os,
                    apic_id: Some(apic),
                    package: 0,
                    core: u64::from(apic),
                    node: None,
                    caches: Vec::new(),
                })
                .collect(),
            ..TopologyDesc::default()
        },
    };
    if srat.is_some() {
        for pu in &mut desc.pus {
            let apic = pu.apic_id.unwrap_or(u32::MAX);
            pu.node = Some(*node_of_apic.get(&apic).ok_or_else(|| {
                err(
                    "SRAT",
                    48,
                    format!(
                        "no enabled affinity entry for the APIC id {apic} of CPU {}",
                        pu.os_index
                    ),
                )
            })?);
        }
        desc.nodes = nodes
            .iter()
            .map(|(&os_index, &memory_bytes)| NodeDesc {
                os_index,
                memory_bytes,
            })
            .collect();
    }
    if let (Some(slit), false) = (slit, desc.nodes.is_empty()) {
        let ids: Vec<u32> = desc.nodes.iter().map(|n| n.os_index).collect();
        if let Some(&bad) = ids.iter().find(|&&d| d as usize >= slit.localities) {
            return Err(err(
                "SLIT",
                36,
                format!(
                    "SRAT names proximity domain {bad} but the SLIT has {} localities",
                    slit.localities
                ),
            ));
        }
        let n = slit.localities;
        let values = ids
            .iter()
            .flat_map(|&a| {
                ids.iter()
                    .map(move |&b| u32::from(slit.values[a as usize * n + b as usize]))
            })
            .collect();
        desc.distances = Some(DistanceMatrix { nodes: ids, values });
    }
    Ok(AcpiMachine {
        desc,
        memory,
        lapic_paddr: madt.lapic_paddr,
    })
}

/// Finds tables from the RSDP. `read(paddr, len)` returns `len` bytes at a physical address
/// (or `None` when it is not readable); it is called for the RSDP, the XSDT/RSDT, and each
/// table's header and body. Returns `(signature, physical address)` of every listed table
/// whose header reads and validates.
pub fn walk_tables<'a>(
    rsdp_paddr: u64,
    read: impl Fn(u64, usize) -> Option<&'a [u8]>,
) -> Result<Vec<([u8; 4], u64)>, Error> {
    let rsdp = read(rsdp_paddr, 20).ok_or_else(|| err("RSDP", 0, "unreadable"))?;
    if &rsdp[0..8] != b"RSD PTR " {
        return Err(err("RSDP", 0, "signature is not \"RSD PTR \""));
    }
    if rsdp.iter().fold(0u8, |a, &b| a.wrapping_add(b)) != 0 {
        return Err(err("RSDP", 8, "checksum of the first 20 bytes is not 0"));
    }
    let revision = rsdp[15];
    let (root, entry_bytes, sig): (u64, usize, &[u8; 4]) = if revision >= 2 {
        let full =
            read(rsdp_paddr, 36).ok_or_else(|| err("RSDP", 20, "unreadable extended part"))?;
        (u64_at(full, 24), 8, b"XSDT")
    } else {
        (u64::from(u32_at(rsdp, 16)), 4, b"RSDT")
    };
    let name = core::str::from_utf8(sig).unwrap_or("RSDT");
    let header = read(root, HEADER_BYTES).ok_or_else(|| err(name, 0, "unreadable header"))?;
    let length = u32_at(header, 4) as usize;
    let table = read(root, length).ok_or_else(|| err(name, 0, "unreadable body"))?;
    let table = validate(table, sig)?;
    let mut out = Vec::new();
    let mut at = HEADER_BYTES;
    while at + entry_bytes <= table.len() {
        let paddr = if entry_bytes == 8 {
            u64_at(table, at)
        } else {
            u64::from(u32_at(table, at))
        };
        if let Some(h) = read(paddr, HEADER_BYTES) {
            let mut s = [0u8; 4];
            s.copy_from_slice(&h[0..4]);
            out.push((s, paddr));
        }
        at += entry_bytes;
    }
    Ok(out)
}

/// Reads a whole table at `paddr` through `read`, validating it.
pub fn read_table<'a>(
    paddr: u64,
    signature: &[u8; 4],
    read: impl Fn(u64, usize) -> Option<&'a [u8]>,
) -> Result<&'a [u8], Error> {
    let name = core::str::from_utf8(signature).unwrap_or("table");
    let header = read(paddr, HEADER_BYTES).ok_or_else(|| err(name, 0, "unreadable header"))?;
    let length = u32_at(header, 4) as usize;
    validate(
        read(paddr, length).ok_or_else(|| err(name, 0, "unreadable body"))?,
        signature,
    )
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;
    use crate::Topology;

    /// Builds a table with a standard header (as QEMU writes it: OEM "BOCHS ", "BXPC") and a
    /// correct checksum.
    fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((HEADER_BYTES + body.len()) as u32).to_le_bytes());
        t.push(revision);
        t.push(0); // checksum, fixed below
        t.extend_from_slice(b"BOCHS ");
        t.extend_from_slice(b"BXPC    ");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(b"BXPC");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(body);
        let sum = t.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    /// QEMU-style MADT: one type-0 entry per CPU, an I/O APIC, an interrupt override and a
    /// LAPIC NMI entry (the last three are skipped by the parser).
    fn madt(apic_ids: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for (uid, &id) in apic_ids.iter().enumerate() {
            b.extend_from_slice(&[0, 8, uid as u8, id]);
            b.extend_from_slice(&1u32.to_le_bytes());
        }
        b.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0]);
        b.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
        table(b"APIC", 3, &b)
    }

    /// QEMU-style SRAT: a processor entry per CPU, memory per node (node 0 split around the
    /// 640 KiB hole), and a disabled... hotplug range at the end.
    fn srat(cpu_nodes: &[(u8, u32)], mem: &[(u64, u64, u32, u32)]) -> Vec<u8> {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for &(apic, pxm) in cpu_nodes {
            let p = pxm.to_le_bytes();
            b.extend_from_slice(&[0, 16, p[0], apic]);
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&[0, p[1], p[2], p[3], 0, 0, 0, 0]);
        }
        // An entry type this parser does not use (GICC affinity, 18 bytes) is skipped.
        b.extend_from_slice(&[3, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for &(base, len, pxm, flags) in mem {
            b.extend_from_slice(&[1, 40]);
            b.extend_from_slice(&pxm.to_le_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&base.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&[0; 8]);
        }
        table(b"SRAT", 1, &b)
    }

    fn slit(matrix: &[&[u8]]) -> Vec<u8> {
        let mut b = (matrix.len() as u64).to_le_bytes().to_vec();
        for row in matrix {
            b.extend_from_slice(row);
        }
        table(b"SLIT", 1, &b)
    }

    /// `-smp 8 -numa node,nodeid=0..3,cpus=2 each -numa dist,...` as QEMU would describe it.
    fn four_node_tables() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let apic: Vec<u8> = (0..8).collect();
        let cpus: Vec<(u8, u32)> = (0..8).map(|i| (i, u32::from(i / 2))).collect();
        let gib = 1u64 << 30;
        let mem = [
            (0, 0xA_0000, 0, 1),
            (0x10_0000, gib - 0x10_0000, 0, 1),
            (gib, gib, 1, 1),
            (2 * gib, gib, 2, 1),
            (3 * gib, gib, 3, 1),
            (0x1_0000_0000, 4 * gib, 3, 3), // hot-pluggable range
        ];
        let dist: [&[u8]; 4] = [
            &[10, 12, 21, 32],
            &[12, 10, 32, 21],
            &[21, 32, 10, 12],
            &[32, 21, 12, 10],
        ];
        (madt(&apic), srat(&cpus, &mem), slit(&dist))
    }

    #[test]
    fn qemu_style_tables_give_nodes_cpus_and_distances() {
        let (m, s, l) = four_node_tables();
        let madt = parse_madt(&m).unwrap();
        assert_eq!(madt.cpus.len(), 8);
        assert_eq!(madt.lapic_paddr, 0xFEE0_0000);
        let srat = parse_srat(&s).unwrap();
        assert_eq!(srat.cpus.len(), 8);
        assert_eq!(srat.memory.len(), 6);
        let slit = parse_slit(&l).unwrap();
        let machine = machine(&madt, Some(&srat), Some(&slit), None).unwrap();
        assert_eq!(machine.memory.len(), 6);
        assert!(machine.memory[5].hotplug);
        let t = Topology::build(machine.desc).unwrap();
        assert_eq!(t.num_cpus(), 8);
        assert_eq!(t.num_nodes(), 4);
        assert_eq!(t.nodes()[2].cpus.to_string(), "4-5");
        assert_eq!(t.nodes()[0].memory_bytes, (1 << 30) - 0x10_0000 + 0xA_0000);
        assert_eq!(
            t.nodes()[3].memory_bytes,
            1 << 30,
            "the hotplug range is not counted"
        );
        assert_eq!(t.distance(0, 3), 32);
        assert_eq!(t.distance(1, 3), 21);
        let order: Vec<u32> = t.steal_order(0).iter().map(|x| x.distance).collect();
        assert_eq!(order, [10, 12, 21, 32]);
    }

    #[test]
    fn x2apic_entries_and_large_domains() {
        let mut body = Vec::new();
        body.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for (i, id) in [300u32, 301].iter().enumerate() {
            body.extend_from_slice(&[9, 16, 0, 0]);
            body.extend_from_slice(&id.to_le_bytes());
            body.extend_from_slice(&1u32.to_le_bytes());
            body.extend_from_slice(&(i as u32).to_le_bytes());
        }
        let madt = parse_madt(&table(b"APIC", 5, &body)).unwrap();
        assert_eq!(
            madt.cpus.iter().map(|c| c.apic_id).collect::<Vec<_>>(),
            [300, 301]
        );
        let mut s = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for (id, pxm) in [(300u32, 0u32), (301, 1)] {
            s.extend_from_slice(&[2, 24, 0, 0]);
            s.extend_from_slice(&pxm.to_le_bytes());
            s.extend_from_slice(&id.to_le_bytes());
            s.extend_from_slice(&1u32.to_le_bytes());
            s.extend_from_slice(&[0; 8]);
        }
        let srat = parse_srat(&table(b"SRAT", 3, &s)).unwrap();
        let t = Topology::build(machine(&madt, Some(&srat), None, None).unwrap().desc).unwrap();
        assert_eq!(t.num_nodes(), 2);
        assert_eq!(t.pu(1).apic_id, Some(301));
    }

    #[test]
    fn malformed_tables_name_table_and_offset() {
        let (mut m, s, l) = four_node_tables();
        m[40] ^= 0xFF;
        let e = parse_madt(&m).unwrap_err().to_string();
        assert!(e.contains("APIC") && e.contains("checksum"), "{e}");
        let e = parse_srat(&s[..40]).unwrap_err().to_string();
        assert!(e.contains("SRAT") && e.contains("does not fit"), "{e}");
        // An entry whose length overruns the table.
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&[0, 200, 0, 0]);
        let e = parse_srat(&table(b"SRAT", 1, &body))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SRAT at byte 48") && e.contains("overruns"),
            "{e}"
        );
        let e = parse_slit(&m).unwrap_err().to_string();
        assert!(e.contains("SLIT") && e.contains("signature"), "{e}");
        let mut bad = l.clone();
        bad[44] = 11;
        bad[9] = bad[9].wrapping_sub(1);
        let e = parse_slit(&bad).unwrap_err().to_string();
        assert!(e.contains("self-distance 11"), "{e}");
        // A CPU without SRAT affinity.
        let madt = parse_madt(&madt(&[0, 1, 9])).unwrap();
        let srat = parse_srat(&s).unwrap();
        let e = machine(&madt, Some(&srat), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("APIC id 9"), "{e}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let (m, s, l) = four_node_tables();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for seed in [m, s, l] {
            for _ in 0..2000 {
                let mut t = seed.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x as usize) % t.len();
                    t[at] = (x >> 40) as u8;
                }
                let cut = (x >> 20) as usize % (t.len() + 1);
                // Fix the checksum half the time so parsing goes past validation.
                if x & 1 == 0 && cut > 9 {
                    t[9] = 0;
                    let sum = t[..cut].iter().fold(0u8, |a, &b| a.wrapping_add(b));
                    t[9] = 0u8.wrapping_sub(sum);
                }
                let t = &t[..cut];
                let madt = parse_madt(t);
                let srat = parse_srat(t);
                let slit = parse_slit(t);
                if let Ok(madt) = madt {
                    let _ = machine(&madt, srat.as_ref().ok(), slit.as_ref().ok(), None)
                        .map(|m| Topology::build(m.desc));
                }
            }
        }
    }

    #[test]
    fn walk_from_rsdp_through_xsdt() {
        let (m, s, l) = four_node_tables();
        // Lay out a fake physical memory: RSDP at 0x100, XSDT at 0x200, tables after.
        let mut mem = vec![0u8; 0x2000];
        let (xsdt_at, madt_at, srat_at, slit_at) = (0x200usize, 0x400usize, 0x800usize, 0xC00usize);
        let mut xbody = Vec::new();
        for at in [madt_at, srat_at, slit_at] {
            xbody.extend_from_slice(&(at as u64).to_le_bytes());
        }
        let xsdt = table(b"XSDT", 1, &xbody);
        mem[xsdt_at..xsdt_at + xsdt.len()].copy_from_slice(&xsdt);
        mem[madt_at..madt_at + m.len()].copy_from_slice(&m);
        mem[srat_at..srat_at + s.len()].copy_from_slice(&s);
        mem[slit_at..slit_at + l.len()].copy_from_slice(&l);
        let mut rsdp = Vec::new();
        rsdp.extend_from_slice(b"RSD PTR ");
        rsdp.push(0);
        rsdp.extend_from_slice(b"BOCHS ");
        rsdp.push(2);
        rsdp.extend_from_slice(&0u32.to_le_bytes());
        let sum = rsdp.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        rsdp[8] = 0u8.wrapping_sub(sum);
        rsdp.extend_from_slice(&36u32.to_le_bytes());
        rsdp.extend_from_slice(&(xsdt_at as u64).to_le_bytes());
        rsdp.extend_from_slice(&[0, 0, 0, 0]);
        mem[0x100..0x100 + rsdp.len()].copy_from_slice(&rsdp);
        let read = |paddr: u64, len: usize| mem.get(paddr as usize..paddr as usize + len);
        let tables = walk_tables(0x100, read).unwrap();
        let sigs: Vec<&[u8; 4]> = tables.iter().map(|(s, _)| s).collect();
        assert_eq!(sigs, [b"APIC", b"SRAT", b"SLIT"]);
        let srat_bytes = read_table(tables[1].1, b"SRAT", read).unwrap();
        assert_eq!(parse_srat(srat_bytes).unwrap().cpus.len(), 8);
    }
}
