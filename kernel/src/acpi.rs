//! Finding the ACPI tables: RSDP (from the PVH start info) → XSDT (or RSDT) → tables by signature.
//!
//! This module only locates and checksums tables and hands out their bytes; what they mean (MADT,
//! SRAT, SLIT) is decoded by manycore-topology's `no_std` parsers, so the kernel and the host
//! tools share one parser.

use core::fmt;

/// Most tables the root table may list (QEMU lists about eight).
const ROOT_ENTRIES_MAX: usize = 256;
/// Largest table accepted (a 4096-CPU MADT is ~40 KiB; SLIT for 1024 nodes 1 MiB).
const TABLE_BYTES_MAX: u32 = 4 << 20;

/// Why the tables could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// The loader passed no RSDP address.
    NoRsdp,
    /// The RSDP signature or checksum is wrong.
    BadRsdp,
    /// A table at this physical address has a bad checksum or length.
    BadTable(u64),
    /// The root table lists more than [`ROOT_ENTRIES_MAX`] tables.
    TooManyTables,
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRsdp => write!(f, "ACPI: the PVH start info has no RSDP address"),
            Self::BadRsdp => write!(f, "ACPI: the RSDP has a bad signature or checksum"),
            Self::BadTable(at) => {
                write!(f, "ACPI: the table at {at:#x} has a bad checksum or length")
            }
            Self::TooManyTables => write!(
                f,
                "ACPI: the root table lists more than {ROOT_ENTRIES_MAX} tables"
            ),
        }
    }
}

/// The root table's list of table addresses.
pub struct Tables {
    entries: [u64; ROOT_ENTRIES_MAX],
    len: usize,
}

/// Reads `len` bytes of physical memory.
///
/// # Safety
/// 1. `[paddr, paddr + len)` is identity-mapped firmware memory that nothing writes.
unsafe fn phys_bytes(paddr: u64, len: usize) -> &'static [u8] {
    // SAFETY: precondition 1.
    unsafe { core::slice::from_raw_parts(paddr as *const u8, len) }
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// Reads one table header at `paddr` and returns the whole checksummed table.
///
/// # Safety
/// 1. `paddr` was listed by a checksummed root table (firmware memory, identity-mapped).
unsafe fn table_at(paddr: u64) -> Result<&'static [u8], AcpiError> {
    // SAFETY: precondition 1; every SDT starts with a 36-byte header.
    let header = unsafe { phys_bytes(paddr, 36) };
    let len = u32_at(header, 4);
    if !(36..=TABLE_BYTES_MAX).contains(&len) {
        return Err(AcpiError::BadTable(paddr));
    }
    // SAFETY: precondition 1, with the length the header gives (bounded above).
    let bytes = unsafe { phys_bytes(paddr, len as usize) };
    if !checksum_ok(bytes) {
        return Err(AcpiError::BadTable(paddr));
    }
    Ok(bytes)
}

impl Tables {
    /// Validates the RSDP at `rsdp_paddr` and reads the XSDT (ACPI 2+) or RSDT.
    ///
    /// # Safety
    /// 1. `rsdp_paddr` is the loader's RSDP address (or 0); firmware memory is identity-mapped and
    ///    not written by the kernel.
    pub unsafe fn load(rsdp_paddr: u64) -> Result<Self, AcpiError> {
        if rsdp_paddr == 0 {
            return Err(AcpiError::NoRsdp);
        }
        // SAFETY: precondition 1; the ACPI 1.0 RSDP is 20 bytes.
        let rsdp = unsafe { phys_bytes(rsdp_paddr, 20) };
        if &rsdp[..8] != b"RSD PTR " || !checksum_ok(rsdp) {
            return Err(AcpiError::BadRsdp);
        }
        let revision = rsdp[15];
        let (root_paddr, entry_bytes) = if revision >= 2 {
            // SAFETY: precondition 1; an ACPI 2+ RSDP is 36 bytes.
            let rsdp2 = unsafe { phys_bytes(rsdp_paddr, 36) };
            if !checksum_ok(rsdp2) {
                return Err(AcpiError::BadRsdp);
            }
            let xsdt = u64_at(rsdp2, 24);
            if xsdt != 0 {
                (xsdt, 8)
            } else {
                (u64::from(u32_at(rsdp, 16)), 4)
            }
        } else {
            (u64::from(u32_at(rsdp, 16)), 4)
        };
        // SAFETY: the address comes from the checksummed RSDP.
        let root = unsafe { table_at(root_paddr)? };
        let n = (root.len() - 36) / entry_bytes;
        if n > ROOT_ENTRIES_MAX {
            return Err(AcpiError::TooManyTables);
        }
        let mut out = Self {
            entries: [0; ROOT_ENTRIES_MAX],
            len: n,
        };
        for i in 0..n {
            let at = 36 + i * entry_bytes;
            out.entries[i] = if entry_bytes == 8 {
                u64_at(root, at)
            } else {
                u64::from(u32_at(root, at))
            };
        }
        Ok(out)
    }

    /// The first table with `signature` ("APIC" for the MADT, "SRAT", "SLIT"), checksummed.
    pub fn find(&self, signature: &[u8; 4]) -> Result<Option<&'static [u8]>, AcpiError> {
        for &paddr in &self.entries[..self.len] {
            // SAFETY: listed by the checksummed root table.
            let sig = unsafe { phys_bytes(paddr, 4) };
            if sig == signature {
                // SAFETY: as above.
                return unsafe { table_at(paddr) }.map(Some);
            }
        }
        Ok(None)
    }

    /// Signatures of all listed tables (for the boot log).
    pub fn signatures(&self) -> impl Iterator<Item = [u8; 4]> + '_ {
        self.entries[..self.len].iter().map(|&paddr| {
            // SAFETY: listed by the checksummed root table.
            let s = unsafe { phys_bytes(paddr, 4) };
            [s[0], s[1], s[2], s[3]]
        })
    }
}
