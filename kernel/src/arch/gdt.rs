//! Per-CPU GDT and TSS. The TSS exists only for its interrupt stack table: double faults (and NMIs)
//! run on a dedicated per-CPU stack, so a kernel stack overflow is reported instead of becoming a
//! triple fault.
//!
//! Selectors match the boot GDT in [`super::boot`], so switching tables needs no far jump.

use core::mem::size_of;

/// Kernel code segment selector (64-bit).
pub const KERNEL_CODE: u16 = 0x08;
/// Kernel data segment selector.
pub const KERNEL_DATA: u16 = 0x10;
/// TSS selector (a 16-byte system descriptor in slots 3 and 4).
const TSS_SELECTOR: u16 = 0x18;
/// IST slot (1-based, as in the IDT gate) used for double faults and NMIs.
pub const IST_FAULT: u8 = 1;
/// Size of each CPU's fault stack.
const FAULT_STACK_BYTES: usize = 16 * 1024;

/// The 64-bit task state segment.
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

/// One CPU's descriptor tables and fault stack. Written once by the CPU that loads them (before
/// it enables interrupts), then read only by that CPU's hardware.
#[repr(C, align(4096))]
pub struct CpuTables {
    gdt: [u64; 5],
    tss: Tss,
    fault_stack: [u8; FAULT_STACK_BYTES],
}

impl CpuTables {
    /// Zeroed tables (filled by [`load`]).
    pub const fn new() -> Self {
        Self {
            gdt: [0; 5],
            tss: Tss {
                reserved0: 0,
                rsp: [0; 3],
                reserved1: 0,
                ist: [0; 7],
                reserved2: 0,
                reserved3: 0,
                iomap_base: 0,
            },
            fault_stack: [0; FAULT_STACK_BYTES],
        }
    }
}

/// Fills `tables` and loads them on the calling CPU (GDT, segment registers, task register).
///
/// # Safety
/// 1. `tables` is valid for the rest of the kernel's life and used by no other CPU.
/// 2. Interrupts are disabled on the calling CPU.
pub unsafe fn load(tables: *mut CpuTables) {
    // SAFETY: precondition 1: exclusive, 'static.
    let t = unsafe { &mut *tables };
    let stack_top = t.fault_stack.as_ptr() as u64 + FAULT_STACK_BYTES as u64;
    t.tss.ist[usize::from(IST_FAULT) - 1] = stack_top & !0xf;
    t.tss.iomap_base = size_of::<Tss>() as u16;
    let tss_base = &t.tss as *const Tss as u64;
    let tss_limit = (size_of::<Tss>() - 1) as u64;
    t.gdt[0] = 0;
    t.gdt[1] = 0x00AF_9A00_0000_FFFF;
    t.gdt[2] = 0x00CF_9200_0000_FFFF;
    t.gdt[3] = (tss_limit & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((tss_limit >> 16) & 0xf) << 48)
        | (((tss_base >> 24) & 0xff) << 56);
    t.gdt[4] = tss_base >> 32;
    let ptr = x86::dtables::DescriptorTablePointer::new_from_slice(&t.gdt);
    // SAFETY: the GDT is 'static (precondition 1) and keeps the boot GDT's code and data
    // selectors, so the current CS and data segments stay valid; the TSS descriptor is
    // "available" and points at this CPU's TSS, so `ltr` accepts it.
    unsafe {
        x86::dtables::lgdt(&ptr);
        core::arch::asm!(
            "mov ds, {0:x}", "mov es, {0:x}", "mov ss, {0:x}",
            in(reg) KERNEL_DATA, options(nostack, preserves_flags)
        );
        x86::task::load_tr(x86::segmentation::SegmentSelector::from_raw(TSS_SELECTOR));
    }
}
