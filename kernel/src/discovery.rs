//! Machine discovery through manycore-topology's `no_std` decoders: its `acpi` module finds the
//! tables from the RSDP and parses the MADT (CPUs and their APIC ids), SRAT (CPU and memory
//! affinity) and SLIT (distances); its `cpuid` module reads how an APIC id splits into package,
//! core and thread and which APIC ids share each cache. The result is one [`Topology`] plus the
//! per-node memory ranges the frame pools are built from. The kernel only supplies the accessor
//! from physical address to bytes ([`firmware_bytes`]).
//!
//! Numbering follows Linux (and the topology crate), so the kernel's topology can be compared
//! with what QEMU was asked for: a CPU's OS index is its position among the enabled MADT
//! processor entries, a node's OS index is its SRAT proximity domain, a package's OS index is
//! `apic_id >> package_shift`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use manycore_topology::Topology;
use manycore_topology::acpi;
use manycore_topology::cpuid::ApicLayout;
use raw_cpuid::{CpuId, CpuIdReaderNative};

use crate::mem::frames::PhysRange;

/// Largest table accepted (a 4096-CPU MADT is ~40 KiB; a SLIT for 1024 nodes 1 MiB).
const TABLE_BYTES_MAX: usize = 4 << 20;
/// End of the identity map the boot code sets up (firmware tables live below it).
const IDENTITY_MAP_END: u64 = 4 << 30;

/// What the firmware said about the machine.
pub struct Machine {
    /// The model every other part of the kernel uses (logical CPU ids are its PU indices).
    pub topology: Topology,
    /// SRAT memory ranges as (range, logical node); one range covering all memory without SRAT.
    pub memory: Vec<(PhysRange, usize)>,
    /// Physical address of the local APIC registers (MADT).
    pub lapic_paddr: u64,
    /// How the BSP's CPUID splits an APIC id (SMT and package shifts, caches).
    pub apic_layout: ApicLayout,
    /// Signatures of every table the root table lists (for the boot log).
    pub table_signatures: Vec<[u8; 4]>,
}

/// `len` bytes of firmware memory at `paddr`, or `None` outside the identity map or beyond
/// [`TABLE_BYTES_MAX`] (the parsers then report the table as unreadable, naming it).
fn firmware_bytes(paddr: u64, len: usize) -> Option<&'static [u8]> {
    let end = paddr.checked_add(u64::try_from(len).ok()?)?;
    if paddr == 0 || len > TABLE_BYTES_MAX || end > IDENTITY_MAP_END {
        return None;
    }
    // SAFETY: the range is non-null and inside the identity map (the kernel's first invariant),
    // so it is readable; firmware tables are never written by the kernel, so the bytes do not
    // change while the returned slice lives.
    Some(unsafe { core::slice::from_raw_parts(paddr as *const u8, len) })
}

/// This CPU's APIC layout from CPUID.
pub fn apic_layout_of_this_cpu() -> Result<ApicLayout, String> {
    let reader = CpuIdReaderNative;
    ApicLayout::from_cpuid(&CpuId::with_cpuid_reader(reader), &reader).map_err(|e| format!("{e}"))
}

/// Reads MADT, SRAT and SLIT from the RSDP at `rsdp_paddr` and CPUID on the calling CPU, and
/// builds the machine model.
pub fn discover(rsdp_paddr: u64) -> Result<Machine, String> {
    if rsdp_paddr == 0 {
        return Err("ACPI: the PVH start info has no RSDP address".into());
    }
    let listed = acpi::walk_tables(rsdp_paddr, firmware_bytes).map_err(|e| format!("{e}"))?;
    let find = |sig: &[u8; 4]| -> Result<Option<&'static [u8]>, String> {
        match listed.iter().find(|(s, _)| s == sig) {
            Some(&(_, paddr)) => acpi::read_table(paddr, sig, firmware_bytes)
                .map(Some)
                .map_err(|e| format!("{e}")),
            None => Ok(None),
        }
    };
    let madt = find(b"APIC")?.ok_or("ACPI: no MADT (APIC table)")?;
    let madt = acpi::parse_madt(madt).map_err(|e| format!("{e}"))?;
    let srat = find(b"SRAT")?
        .map(acpi::parse_srat)
        .transpose()
        .map_err(|e| format!("{e}"))?;
    let slit = find(b"SLIT")?
        .map(acpi::parse_slit)
        .transpose()
        .map_err(|e| format!("{e}"))?;
    let layout = apic_layout_of_this_cpu()?;
    let fw = acpi::machine(&madt, srat.as_ref(), slit.as_ref(), Some(&layout))
        .map_err(|e| format!("{e}"))?;
    let topology = Topology::build(fw.desc).map_err(|e| format!("{e}"))?;
    let mut memory = Vec::new();
    for m in fw.memory.iter().filter(|m| m.enabled && !m.hotplug) {
        let node = topology.node_from_os(m.domain).ok_or_else(|| {
            format!(
                "ACPI: SRAT memory at {:#x} names proximity domain {} that has no node",
                m.base, m.domain
            )
        })?;
        let end = m
            .base
            .checked_add(m.length_bytes)
            .ok_or_else(|| format!("ACPI: SRAT memory at {:#x} overflows", m.base))?;
        memory.push((PhysRange { base: m.base, end }, node));
    }
    if memory.is_empty() {
        memory.push((
            PhysRange {
                base: 0,
                end: u64::MAX,
            },
            0,
        ));
    }
    Ok(Machine {
        topology,
        memory,
        lapic_paddr: fw.lapic_paddr,
        apic_layout: layout,
        table_signatures: listed.iter().map(|&(s, _)| s).collect(),
    })
}
