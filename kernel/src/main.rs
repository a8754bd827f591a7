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
//! - Per-CPU data ([`percpu`]) is installed on every CPU before that CPU runs any other Rust code
//!   that may allocate, so [`percpu::current`] is always valid after boot.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod discovery;
mod exit;
mod json;
mod mem;
mod percpu;
mod programs;
mod pvh;
mod report;
mod serial;
mod smpcall;
mod sync;
mod thread;
mod time;

use exit::{ExitCode, exit};

/// The kernel heap: manycore-alloc over the per-node frame pools (see [`mem::alloc`]).
#[global_allocator]
static HEAP: mem::alloc::KernelAllocator = mem::alloc::KernelAllocator::new();

/// Tables of the bootstrap processor until its per-CPU block exists.
static mut BSP_BOOT_TABLES: arch::gdt::CpuTables = arch::gdt::CpuTables::new();

/// Rust entry of the bootstrap processor, called by `pvh_start32` in long mode.
#[unsafe(no_mangle)]
extern "C" fn kernel_main_bsp(start_info_paddr: u32) -> ! {
    serial::init();
    // SAFETY: called once, by the BSP, before any IDT is loaded; `BSP_BOOT_TABLES` is used by this
    // CPU only and lives forever; interrupts are off since entry.
    unsafe {
        arch::trap::init();
        arch::gdt::load(core::ptr::addr_of_mut!(BSP_BOOT_TABLES));
        arch::trap::load();
    }
    arch::cpu::enable_sse();
    if let Err(e) = boot::bsp(start_info_paddr) {
        kprintln!("manycore-kernel: boot failed: {e}");
        exit(ExitCode::Fail);
    }
    // The program runs as a kernel thread (it blocks, joins and gets preempted like any other);
    // this CPU then becomes a scheduler like the others.
    let spawned = thread::spawn_on(Some(percpu::current().cpu), false, || {
        let code = programs::run(pvh::boot_info().cmdline());
        kprintln!(
            "manycore-kernel: exit {}",
            if code == ExitCode::Pass {
                "pass"
            } else {
                "fail"
            }
        );
        exit(code)
    });
    if let Err(e) = spawned {
        kprintln!("manycore-kernel: cannot start the program: {e}");
        exit(ExitCode::Fail);
    }
    thread::scheduler_loop()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    serial::print_emergency(format_args!(
        "\nPANIC on cpu {}: {}\n",
        percpu::current_cpu_or_boot(),
        info
    ));
    exit(ExitCode::Fail)
}
