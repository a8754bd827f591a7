//! manycore-kernel: a small x86_64 unikernel that boots under QEMU (PVH), discovers the machine
//! from ACPI and CPUID, brings up every CPU, and hosts manycore's scheduler and allocator.
//!
//! # Principles
//! - The kernel is a worked example of the platform seam (see docs/PORTING.md): everything
//!   machine-specific sits in [`arch`], and the rest talks to it through a few functions.
//! - What the kernel reports about the machine comes from the firmware tables and CPUID, never
//!   from the command line, so `manycore boot` can check it against what QEMU was asked for.
//! - Every run ends through `isa-debug-exit` with pass (QEMU status 33) or fail (35); a panic or an
//!   unexpected exception prints where it happened and fails.
//!
//! # Invariants
//! - The first 4 GiB of physical memory (and all RAM the firmware reports) are identity-mapped; a
//!   physical address is a valid pointer.
//! - Interrupts are off while a CPU holds a [`sync::SpinLock`].
#![no_std]
#![no_main]

mod arch;
mod exit;
mod percpu;
mod pvh;
mod serial;
mod sync;

use exit::{ExitCode, exit};

/// Tables of the bootstrap processor (APs get theirs from the heap).
static mut BSP_TABLES: arch::gdt::CpuTables = arch::gdt::CpuTables::new();

/// Rust entry of the bootstrap processor, called by `pvh_start32` in long mode.
#[unsafe(no_mangle)]
extern "C" fn kernel_main_bsp(start_info_paddr: u32) -> ! {
    serial::init();
    // SAFETY: called once, by the BSP, before any IDT is loaded; `BSP_TABLES` is used by this CPU
    // only and lives forever; interrupts are off since entry.
    unsafe {
        arch::trap::init();
        arch::gdt::load(core::ptr::addr_of_mut!(BSP_TABLES));
        arch::trap::load();
    }
    arch::cpu::enable_sse();
    // SAFETY: the value QEMU passed in ebx; nothing has written low memory since entry.
    let info = match unsafe { pvh::parse(u64::from(start_info_paddr)) } {
        Ok(info) => info,
        Err(e) => {
            kprintln!("manycore-kernel: boot failed: {e}");
            exit(ExitCode::Fail);
        }
    };
    kprintln!("manycore-kernel: booted, cmdline {:?}, rsdp {:#x}", info.cmdline(), info.rsdp_paddr);
    for r in info.memmap() {
        kprintln!("  memmap {:#014x}-{:#014x} {:?}", r.base, r.base + r.bytes, r.kind);
    }
    match info.cmdline().split_whitespace().next() {
        Some("trap") => {
            // SAFETY: `ud2` raises #UD on purpose: the program checks the exception path.
            unsafe { core::arch::asm!("ud2") };
            exit(ExitCode::Fail)
        }
        _ => exit(ExitCode::Pass),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    serial::print_emergency(format_args!("\nPANIC on cpu {}: {}\n", percpu::current_cpu_or_boot(), info));
    exit(ExitCode::Fail)
}
