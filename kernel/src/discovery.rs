//! Machine discovery: MADT (CPUs and their APIC ids), SRAT (CPU and memory affinity), SLIT
//! (distances) and CPUID (how an APIC id splits into package, core and thread) become one
//! manycore-topology [`Topology`], plus the per-node memory ranges the frame pools are built from.
//!
//! Numbering follows Linux, so the kernel's topology can be compared with what QEMU was asked for:
//! a CPU's OS index is its position among the enabled MADT processor entries, a node's OS index is
//! its SRAT proximity domain, a package's OS index is `apic_id >> core_shift`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use manycore_topology::{DistanceMatrix, NodeDesc, PuDesc, Topology, TopologyDesc};

use crate::acpi::Tables;
use crate::mem::frames::PhysRange;

/// What the firmware said about the machine.
pub struct Machine {
    /// The model every other part of the kernel uses (logical CPU ids are its PU indices).
    pub topology: Topology,
    /// SRAT memory ranges as (range, logical node); one range covering all memory without SRAT.
    pub memory: Vec<(PhysRange, usize)>,
    /// Physical address of the local APIC registers (MADT).
    pub lapic_paddr: u64,
    /// How the BSP's CPUID splits an APIC id: bits of the SMT level and of SMT + core levels.
    pub apic_id_shifts: ApicIdShifts,
}

/// How an x2APIC id decomposes (CPUID leaf 0xB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicIdShifts {
    /// Right shift from a thread's APIC id to its core id.
    pub smt: u32,
    /// Right shift from a thread's APIC id to its package id.
    pub package: u32,
}

impl ApicIdShifts {
    /// Reads leaf 0xB on the calling CPU.
    pub fn from_cpuid() -> Result<Self, String> {
        let cpuid = x86::cpuid::CpuId::new();
        let levels = cpuid
            .get_extended_topology_info()
            .ok_or_else(|| String::from("CPUID: leaf 0xB (extended topology) is not available"))?;
        let (mut smt, mut package) = (None, None);
        for level in levels {
            match level.level_type() {
                x86::cpuid::TopologyType::SMT => smt = Some(level.shift_right_for_next_apic_id()),
                x86::cpuid::TopologyType::Core => {
                    package = Some(level.shift_right_for_next_apic_id())
                }
                _ => {}
            }
        }
        let smt = smt.unwrap_or(0);
        let package = package.unwrap_or(smt);
        Ok(Self { smt, package })
    }

    /// (package, core-within-package) of an APIC id.
    pub fn split(&self, apic_id: u32) -> (u32, u64) {
        let package = apic_id.checked_shr(self.package).unwrap_or(0);
        let core_bits = self.package - self.smt;
        let core = (apic_id >> self.smt) & ((1u32 << core_bits) - 1);
        (package, u64::from(core))
    }
}

/// TEMPORARY decoding of MADT, SRAT and SLIT until manycore-topology's `acpi` module lands
/// (see the report: the kernel switches to it as soon as it exists).
mod tables {
    use alloc::vec::Vec;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Walks the variable-length entries of a MADT/SRAT body; stops at a malformed entry.
    fn entries(body: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        let mut at = 0;
        core::iter::from_fn(move || {
            if at + 2 > body.len() {
                return None;
            }
            let (kind, len) = (body[at], usize::from(body[at + 1]));
            if len < 2 || at + len > body.len() {
                return None;
            }
            let e = &body[at..at + len];
            at += len;
            Some((kind, e))
        })
    }

    /// Enabled processors as APIC ids, in MADT order, and the LAPIC address.
    pub fn madt(t: &[u8]) -> (Vec<u32>, u64) {
        let lapic = u64::from(u32_at(t, 36));
        let mut ids = Vec::new();
        for (kind, e) in entries(&t[44..]) {
            match kind {
                0 if e.len() >= 8 && u32_at(e, 4) & 1 != 0 => ids.push(u32::from(e[3])),
                9 if e.len() >= 16 && u32_at(e, 8) & 1 != 0 => ids.push(u32_at(e, 4)),
                _ => {}
            }
        }
        (ids, lapic)
    }

    /// SRAT CPU affinities as (APIC id, proximity domain).
    pub type CpuAffinity = Vec<(u32, u32)>;
    /// SRAT memory affinities as (base, length, proximity domain).
    pub type MemAffinity = Vec<(u64, u64, u32)>;

    /// CPU and memory affinity entries.
    pub fn srat(t: &[u8]) -> (CpuAffinity, MemAffinity) {
        let (mut cpus, mut mem) = (Vec::new(), Vec::new());
        for (kind, e) in entries(&t[48..]) {
            match kind {
                0 if e.len() >= 16 && u32_at(e, 4) & 1 != 0 => {
                    let pxm = u32::from(e[2])
                        | (u32::from(e[9]) << 8)
                        | (u32::from(e[10]) << 16)
                        | (u32::from(e[11]) << 24);
                    cpus.push((u32::from(e[3]), pxm));
                }
                1 if e.len() >= 40 && u32_at(e, 28) & 1 != 0 => {
                    let base = u64::from(u32_at(e, 8)) | (u64::from(u32_at(e, 12)) << 32);
                    let len = u64::from(u32_at(e, 16)) | (u64::from(u32_at(e, 20)) << 32);
                    let _ = u16_at(e, 6);
                    mem.push((base, len, u32_at(e, 2)));
                }
                2 if e.len() >= 24 && u32_at(e, 12) & 1 != 0 => {
                    cpus.push((u32_at(e, 8), u32_at(e, 4)))
                }
                _ => {}
            }
        }
        (cpus, mem)
    }

    /// The SLIT matrix (localities × localities, row-major).
    pub fn slit(t: &[u8]) -> Option<(usize, Vec<u32>)> {
        let n =
            usize::try_from(u64::from(u32_at(t, 36)) | (u64::from(u32_at(t, 40)) << 32)).ok()?;
        let body = t.get(44..44 + n.checked_mul(n)?)?;
        Some((n, body.iter().map(|&v| u32::from(v)).collect()))
    }
}

/// Reads MADT, SRAT and SLIT and builds the machine model.
pub fn discover(acpi: &Tables) -> Result<Machine, String> {
    let madt = acpi
        .find(b"APIC")
        .map_err(|e| format!("{e}"))?
        .ok_or("ACPI: no MADT (APIC table)")?;
    let (apic_ids, lapic_paddr) = tables::madt(madt);
    if apic_ids.is_empty() {
        return Err("ACPI: the MADT lists no enabled processor".into());
    }
    let shifts = ApicIdShifts::from_cpuid()?;
    let srat = acpi
        .find(b"SRAT")
        .map_err(|e| format!("{e}"))?
        .map(tables::srat);
    let slit = acpi
        .find(b"SLIT")
        .map_err(|e| format!("{e}"))?
        .and_then(tables::slit);

    let mut desc = TopologyDesc::default();
    let mut node_mem: BTreeMap<u32, u64> = BTreeMap::new();
    let mut mem_ranges: Vec<(PhysRange, u32)> = Vec::new();
    if let Some((cpus, mem)) = &srat {
        for &(_, pxm) in cpus {
            node_mem.entry(pxm).or_insert(0);
        }
        for &(base, len, pxm) in mem {
            *node_mem.entry(pxm).or_insert(0) += len;
            mem_ranges.push((
                PhysRange {
                    base,
                    end: base + len,
                },
                pxm,
            ));
        }
    }
    for (os_index, &apic_id) in apic_ids.iter().enumerate() {
        let (package, core) = shifts.split(apic_id);
        let node = match &srat {
            Some((cpus, _)) => Some(
                cpus.iter()
                    .find(|&&(id, _)| id == apic_id)
                    .map(|&(_, pxm)| pxm)
                    .ok_or_else(|| {
                        format!("ACPI: SRAT has no affinity entry for APIC id {apic_id}")
                    })?,
            ),
            None => None,
        };
        desc.pus.push(PuDesc {
            os_index: os_index as u32,
            apic_id: Some(apic_id),
            package,
            core,
            node,
            caches: Vec::new(),
        });
    }
    desc.nodes = node_mem
        .iter()
        .map(|(&os_index, &memory_bytes)| NodeDesc {
            os_index,
            memory_bytes,
        })
        .collect();
    if let Some((n, values)) = slit
        && !desc.nodes.is_empty()
    {
        if n < desc.nodes.len() {
            return Err(format!(
                "ACPI: SLIT has {n} localities but SRAT names {} nodes",
                desc.nodes.len()
            ));
        }
        let pxms: Vec<u32> = desc.nodes.iter().map(|nd| nd.os_index).collect();
        let mut sub = Vec::with_capacity(pxms.len() * pxms.len());
        for &a in &pxms {
            for &b in &pxms {
                sub.push(values[a as usize * n + b as usize]);
            }
        }
        desc.distances = Some(DistanceMatrix {
            nodes: pxms,
            values: sub,
        });
    }
    let topology = Topology::build(desc).map_err(|e| format!("{e}"))?;
    let memory = if mem_ranges.is_empty() {
        alloc::vec![(
            PhysRange {
                base: 0,
                end: u64::MAX
            },
            0
        )]
    } else {
        mem_ranges
            .iter()
            .map(|&(r, pxm)| (r, topology.node_from_os(pxm).unwrap_or(0)))
            .collect()
    };
    Ok(Machine {
        topology,
        memory,
        lapic_paddr,
        apic_id_shifts: shifts,
    })
}
