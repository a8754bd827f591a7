//! The PVH hand-off: `hvm_start_info` (Xen's `arch-x86/hvm/start_info.h`, version 0 and 1).
//!
//! QEMU's PVH option ROM fills this structure in low memory and passes its physical address in
//! `ebx`. The kernel copies what it needs (command line, RSDP address, memory map) into
//! [`BootInfo`] before it touches any memory the firmware left behind.

use crate::sync::Once;

/// `hvm_start_info.magic`.
const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Longest command line kept (longer ones are an error, not silently cut).
pub const CMDLINE_BYTES_MAX: usize = 1024;
/// Most memory-map entries kept (QEMU passes fewer than ten).
pub const MEMMAP_ENTRIES_MAX: usize = 128;

#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// E820-style memory types used by the PVH memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Usable RAM.
    Ram,
    /// Reserved by the firmware or a device.
    Reserved,
    /// ACPI tables (reclaimable after parsing).
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Unusable (bad) memory.
    Unusable,
    /// A type this kernel does not know (treated as reserved).
    Other(u32),
}

impl MemKind {
    fn from_raw(kind: u32) -> Self {
        match kind {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

/// One memory-map range.
#[derive(Clone, Copy, Debug)]
pub struct MemRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub bytes: u64,
    /// What the range is.
    pub kind: MemKind,
}

/// What the kernel keeps from the hand-off. Written once by the BSP, read by everyone.
pub struct BootInfo {
    cmdline: [u8; CMDLINE_BYTES_MAX],
    cmdline_len: usize,
    /// Physical address of the ACPI RSDP (0 if the loader gave none).
    pub rsdp_paddr: u64,
    memmap: [MemRange; MEMMAP_ENTRIES_MAX],
    memmap_len: usize,
}

impl BootInfo {
    /// The kernel command line (`-append`), as UTF-8.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The firmware's memory map.
    pub fn memmap(&self) -> &[MemRange] {
        &self.memmap[..self.memmap_len]
    }
}

static BOOT_INFO: Once<BootInfo> = Once::new();

/// The parsed hand-off (after [`parse`]).
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO
        .get()
        .expect("pvh::parse runs first thing on the BSP")
}

/// Copies the start-info structure at `paddr` into [`BootInfo`].
///
/// # Safety
/// 1. `paddr` is the value QEMU passed in `ebx` (identity-mapped, untouched since entry), or the
///    magic check below rejects it.
pub unsafe fn parse(paddr: u64) -> Result<&'static BootInfo, &'static str> {
    if paddr == 0 {
        return Err(
            "the loader passed no hvm_start_info (ebx = 0): boot through QEMU's PVH -kernel path",
        );
    }
    // SAFETY: precondition 1; the first 4 GiB are identity-mapped by the boot code.
    let info = unsafe { core::ptr::read_unaligned(paddr as *const HvmStartInfo) };
    if info.magic != HVM_START_MAGIC {
        return Err("hvm_start_info has a bad magic number (expected 0x336ec578)");
    }
    let mut out = BootInfo {
        cmdline: [0; CMDLINE_BYTES_MAX],
        cmdline_len: 0,
        rsdp_paddr: info.rsdp_paddr,
        memmap: [MemRange {
            base: 0,
            bytes: 0,
            kind: MemKind::Reserved,
        }; MEMMAP_ENTRIES_MAX],
        memmap_len: 0,
    };
    if info.cmdline_paddr != 0 {
        let mut len = 0;
        loop {
            // SAFETY: the loader's NUL-terminated command line, identity-mapped; bounded below.
            let b = unsafe { core::ptr::read((info.cmdline_paddr + len as u64) as *const u8) };
            if b == 0 {
                break;
            }
            if len == CMDLINE_BYTES_MAX {
                return Err("the kernel command line is longer than 1024 bytes");
            }
            out.cmdline[len] = b;
            len += 1;
        }
        out.cmdline_len = len;
        if core::str::from_utf8(&out.cmdline[..len]).is_err() {
            return Err("the kernel command line is not UTF-8");
        }
    }
    if info.version >= 1 && info.memmap_paddr != 0 {
        let n = info.memmap_entries as usize;
        if n > MEMMAP_ENTRIES_MAX {
            return Err("the PVH memory map has more than 128 entries");
        }
        for i in 0..n {
            let at = info.memmap_paddr + (i * core::mem::size_of::<HvmMemmapEntry>()) as u64;
            // SAFETY: entry `i < memmap_entries` of the loader's table, identity-mapped.
            let e = unsafe { core::ptr::read_unaligned(at as *const HvmMemmapEntry) };
            out.memmap[i] = MemRange {
                base: e.addr,
                bytes: e.size,
                kind: MemKind::from_raw(e.kind),
            };
        }
        out.memmap_len = n;
    }
    BOOT_INFO.set(out).map_err(|_| "pvh::parse called twice")
}
