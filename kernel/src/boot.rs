//! The boot sequence after the assembly entry: hand-off, discovery, memory, per-CPU data, APIC and
//! timer calibration, AP bring-up, then the program named on the command line.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;

use crate::arch::apic::{self, Lapic};
use crate::arch::{cpu, smp, trap};
use crate::discovery::Machine;
use crate::mem::frames::{self, PhysRange};
use crate::percpu::{self, PerCpu};
use crate::pvh::MemKind;
use crate::sync::Once;
use crate::{discovery, kprintln, pvh, time};

/// The machine as discovered at boot (read-only afterwards).
static MACHINE: Once<Machine> = Once::new();
/// Bytes of each AP's boot stack (its idle/scheduler stack).
const AP_STACK_BYTES: u64 = 64 * 1024;
/// How long the BSP waits for one AP to come online.
const AP_ONLINE_TIMEOUT_MS: u64 = 2_000;

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The discovered machine.
pub fn machine() -> &'static Machine {
    MACHINE.get().expect("boot::bsp discovered the machine")
}

/// The discovered machine, or `None` before discovery finished.
pub fn machine_if_known() -> Option<&'static Machine> {
    MACHINE.get()
}

/// Everything the BSP does between the assembly entry and the program.
pub fn bsp(start_info_paddr: u32) -> Result<(), String> {
    // SAFETY: the value QEMU passed in ebx; nothing has written low memory since entry.
    let info = unsafe { pvh::parse(u64::from(start_info_paddr)) }.map_err(String::from)?;
    kprintln!("manycore-kernel: PVH boot, cmdline {:?}", info.cmdline());

    let machine = discovery::discover(info.rsdp_paddr)?;
    let mut sigs = alloc::string::String::new();
    for s in &machine.table_signatures {
        sigs.push_str(core::str::from_utf8(s).unwrap_or("????"));
        sigs.push(' ');
    }
    kprintln!("manycore-kernel: ACPI tables: {}", sigs.trim_end());
    let topo = &machine.topology;
    kprintln!(
        "manycore-kernel: {} CPUs, {} cores, {} packages, {} NUMA nodes, {} caches (APIC id shifts smt={} package={})",
        topo.num_cpus(),
        topo.num_cores(),
        topo.num_packages(),
        topo.num_nodes(),
        topo.caches().len(),
        machine.apic_layout.smt_shift,
        machine.apic_layout.package_shift
    );

    // Memory: usable RAM from the memory map, by SRAT node, minus the first MiB and the kernel.
    let mut ram = alloc::vec::Vec::new();
    for r in info.memmap() {
        if r.kind == MemKind::Ram {
            ram.push(PhysRange {
                base: r.base,
                end: r.base + r.bytes,
            });
        }
    }
    if ram.is_empty() {
        return Err("PVH: the memory map lists no usable RAM".into());
    }
    // SAFETY: only the addresses of the linker symbols are taken.
    let (kstart, kend) = unsafe {
        (
            &__kernel_start as *const u8 as u64,
            &__kernel_end as *const u8 as u64,
        )
    };
    let reserved = [
        PhysRange {
            base: 0,
            end: 0x10_0000,
        },
        PhysRange {
            base: kstart,
            end: kend,
        },
    ];
    frames::init(&ram, &machine.memory, topo.num_nodes(), &reserved)?;
    for n in 0..topo.num_nodes() {
        let s = frames::stats(n);
        kprintln!(
            "manycore-kernel: node {n}: {} MiB of frames",
            s.total_bytes >> 20
        );
    }

    let machine = MACHINE.set(machine).map_err(|_| "boot::bsp ran twice")?;
    let topo = &machine.topology;
    let cpus = percpu::create_all(topo)?;
    let my_apic = x86::cpuid::CpuId::new()
        .get_feature_info()
        .map(|f| u32::from(f.initial_local_apic_id()))
        .ok_or("CPUID: no feature leaf")?;
    let me = cpus
        .iter()
        .find(|c| c.apic_id == my_apic || (my_apic == 0xff && c.cpu == 0))
        .ok_or_else(|| format!("the BSP's APIC id {my_apic} is not in the MADT"))?;
    // SAFETY: the block was made for this CPU's APIC id; tables are per-CPU and 'static;
    // interrupts are off.
    unsafe {
        percpu::install(me);
        crate::arch::gdt::load(me.tables);
    }
    // From here on the heap is manycore-alloc (the bootstrap arena served everything before).
    crate::thread::init_scheduler(topo)?;
    crate::arch::pic::remap_and_mask();
    apic::choose_mode();
    // SAFETY: the MADT's LAPIC address; once on this CPU with interrupts off.
    let mut lapic = unsafe { Lapic::enable_this_cpu(machine.lapic_paddr) };
    if lapic.id() != me.apic_id {
        return Err(format!(
            "the BSP's LAPIC id {} differs from its CPUID APIC id {}",
            lapic.id(),
            me.apic_id
        ));
    }
    time::calibrate(&mut lapic)?;
    me.set_lapic(lapic);
    install_handlers();
    me.online.store(true, Ordering::Release);
    kprintln!(
        "manycore-kernel: {} mode, TSC {} MHz, APIC timer {} ticks/ms, TSC-deadline {}",
        if apic::x2apic_mode() {
            "x2APIC"
        } else {
            "xAPIC"
        },
        time::tsc_hz() / 1_000_000,
        time::apic_ticks_per_ms(),
        if apic::has_tsc_deadline() {
            "yes"
        } else {
            "no"
        }
    );

    start_aps(me)?;
    let online = cpus
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire))
        .count();
    kprintln!("manycore-kernel: {online} of {} CPUs online", cpus.len());
    Ok(())
}

fn install_handlers() {
    crate::thread::init();
    trap::set_handler(apic::WAKE_VECTOR, |_| {
        let me = percpu::current();
        me.wake_ipis.fetch_add(1, Ordering::Relaxed);
        me.with_lapic(|l| l.eoi());
    });
    trap::set_handler(apic::SPURIOUS_VECTOR, |_| {});
    // Spurious IRQ 7 / 15 of the (masked) legacy PICs: no EOI, nothing to do.
    trap::set_handler(crate::arch::pic::PIC_VECTOR_BASE + 7, |_| {});
    trap::set_handler(crate::arch::pic::PIC_VECTOR_BASE + 15, |_| {});
}

fn start_aps(me: &'static PerCpu) -> Result<(), String> {
    // SAFETY: 0x8000 is in the first MiB, which the frame pools never hand out; no AP runs yet.
    unsafe { smp::install_trampoline(ap_main) };
    for ap in percpu::all().iter().filter(|c| c.cpu != me.cpu) {
        let stack = frames::alloc_near(ap.node, AP_STACK_BYTES, 4096, percpu::nodes_by_distance())
            .ok_or("out of memory for AP stacks")?;
        // SAFETY: the trampoline is installed and the previous AP is online (or timed out, below,
        // which ends the boot), so no AP reads the parameter block now.
        unsafe { smp::set_next_ap(stack + AP_STACK_BYTES, *ap as *const PerCpu as u64) };
        me.with_lapic(|l| {
            // SAFETY: the AP has not run kernel code yet; the trampoline is in place at page 8.
            unsafe {
                l.send_init(ap.apic_id);
                time::delay_us(10_000);
                l.send_startup(ap.apic_id, (smp::TRAMPOLINE_PADDR >> 12) as u8);
                time::delay_us(200);
                if !ap.online.load(Ordering::Acquire) {
                    l.send_startup(ap.apic_id, (smp::TRAMPOLINE_PADDR >> 12) as u8);
                }
            }
        });
        let deadline = time::now_ns() + AP_ONLINE_TIMEOUT_MS * 1_000_000;
        while !ap.online.load(Ordering::Acquire) {
            if time::now_ns() > deadline {
                return Err(format!(
                    "CPU {} (APIC id {}) did not come online",
                    ap.cpu, ap.apic_id
                ));
            }
            core::hint::spin_loop();
        }
    }
    Ok(())
}

/// Rust entry of an application processor (called by the trampoline with its per-CPU block).
extern "C" fn ap_main(block: u64) -> ! {
    // SAFETY: the BSP passed this AP its own leaked block.
    let me: &'static PerCpu = unsafe { &*(block as *const PerCpu) };
    // SAFETY: first thing on this CPU: its own block and tables, IDT built by the BSP, interrupts
    // off since the trampoline.
    unsafe {
        percpu::install(me);
        crate::arch::gdt::load(me.tables);
        trap::load();
    }
    cpu::enable_sse();
    // SAFETY: once on this CPU, interrupts off; same LAPIC address as the BSP's.
    let lapic = unsafe { Lapic::enable_this_cpu(machine().lapic_paddr) };
    if lapic.id() != me.apic_id {
        panic!(
            "CPU {} started with LAPIC id {} but the MADT says {}",
            me.cpu,
            lapic.id(),
            me.apic_id
        );
    }
    me.set_lapic(lapic);
    me.online.store(true, Ordering::Release);
    crate::thread::scheduler_loop()
}
