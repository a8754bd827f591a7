//! Per-CPU data, reached through the GS base: `gs:[0]` holds a pointer to the CPU's own
//! [`PerCpu`] block, so [`current`] is one load.
//!
//! Blocks are allocated by the BSP for every CPU the topology lists (before any AP starts) and
//! never freed. Each CPU installs its own block with [`install`] as the first thing it does in
//! Rust, so code that runs after boot may always call [`current`].

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::apic::Lapic;
use crate::arch::gdt::CpuTables;
use crate::sync::{Once, SpinLock};

/// A function and its argument, queued for another CPU by [`crate::smpcall::run_on`].
pub type CrossCall = (fn(usize), usize);

/// One CPU's block. Fields say who reads and writes them.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Points at this block (read through `gs:[0]`). Written once by the BSP.
    self_ptr: *const PerCpu,
    /// Logical CPU id (topology PU index). Immutable.
    pub cpu: usize,
    /// APIC id from the MADT. Immutable.
    pub apic_id: u32,
    /// OS index (position among the MADT's enabled processors). Immutable.
    pub os_index: usize,
    /// Logical NUMA node. Immutable.
    pub node: usize,
    /// Nesting depth of the allocator's "preemption off" (see `mem::alloc::KernelCpu`). This
    /// CPU only, with interrupts off.
    pub preempt_depth: AtomicU32,
    /// Whether interrupts were on when the outermost "preemption off" began. This CPU only.
    pub preempt_irq: AtomicBool,
    /// Descriptor tables. Owned by this CPU after it loads them.
    pub tables: *mut CpuTables,
    /// This CPU's local APIC driver: used only by this CPU, with interrupts off.
    lapic: UnsafeCell<Option<Lapic>>,
    /// Set (release) by the CPU itself once it runs in Rust with interrupts set up; read by the BSP.
    pub online: AtomicBool,
    /// Timer interrupts taken. Written by this CPU; read by anyone (statistics).
    pub timer_ticks: AtomicU64,
    /// Wake IPIs taken. Written by this CPU; read by anyone (statistics).
    pub wake_ipis: AtomicU64,
    /// A function (and argument) another CPU asked this one to run. Filled by the requesting
    /// CPU only when empty, taken by this CPU (see [`crate::smpcall`]).
    pub call: SpinLock<Option<CrossCall>>,
    /// Whether `call` may hold something: set (SeqCst) by the requester after filling it, cleared
    /// by this CPU before emptying it, so polling an empty slot takes no lock.
    pub call_pending: AtomicBool,
    /// Scheduler state (see [`crate::thread`]).
    pub sched: crate::thread::CpuSched,
}

// SAFETY: the only non-Sync fields are `lapic` (touched only by the owning CPU, interrupts off)
// and the raw pointers, which point at data with the same discipline.
unsafe impl Sync for PerCpu {}
// SAFETY: see `Sync`; blocks are created on the BSP and then used on their CPU.
unsafe impl Send for PerCpu {}

impl PerCpu {
    /// Runs `f` on this CPU's local APIC with interrupts off.
    ///
    /// Must be called on the CPU that owns the block (checked in debug builds).
    pub fn with_lapic<R>(&self, f: impl FnOnce(&mut Lapic) -> R) -> Option<R> {
        let irq = crate::arch::cpu::interrupts_disable();
        debug_assert!(
            core::ptr::eq(self, current()),
            "with_lapic called on another CPU's block"
        );
        // SAFETY: only the owning CPU touches `lapic`, and interrupts are off, so no handler on this
        // CPU can reach it while this reference lives.
        let r = unsafe { (*self.lapic.get()).as_mut().map(f) };
        if irq {
            crate::arch::cpu::interrupts_enable();
        }
        r
    }

    /// Installs the LAPIC driver (owning CPU, during its bring-up).
    pub fn set_lapic(&self, lapic: Lapic) {
        let irq = crate::arch::cpu::interrupts_disable();
        // SAFETY: as in `with_lapic`.
        unsafe { *self.lapic.get() = Some(lapic) };
        if irq {
            crate::arch::cpu::interrupts_enable();
        }
    }
}

/// All blocks by logical CPU id. Set once by the BSP before APs start.
static CPUS: Once<Vec<&'static PerCpu>> = Once::new();
/// For each logical node, the other nodes by increasing distance (heap and frame fallback).
static NODE_FALLBACK: Once<Vec<Vec<usize>>> = Once::new();
/// Whether the BSP has installed its block (after this, every running CPU has one).
static READY: AtomicBool = AtomicBool::new(false);

/// Allocates a block per CPU of `topo`.
pub fn create_all(
    topo: &manycore_topology::Topology,
) -> Result<&'static [&'static PerCpu], &'static str> {
    let mut v = Vec::with_capacity(topo.num_cpus());
    for pu in topo.pus() {
        if pu.os_index as usize >= manycore_alloc::MAX_CPUS {
            return Err("topology: a CPU's OS index is beyond manycore-alloc's MAX_CPUS");
        }
        // Zeroed in place: the tables hold a 16 KiB fault stack that must not pass through the
        // (small) boot stack.
        // SAFETY: all-zero bytes are a valid `CpuTables` (integers and arrays of integers).
        let tables = unsafe { Box::<CpuTables>::new_zeroed().assume_init() };
        let block = Box::leak(Box::new(PerCpu {
            self_ptr: core::ptr::null(),
            cpu: pu.logical,
            os_index: pu.os_index as usize,
            apic_id: pu.apic_id.ok_or("topology: a CPU has no APIC id")?,
            node: pu.node,
            preempt_depth: AtomicU32::new(0),
            preempt_irq: AtomicBool::new(false),
            tables: Box::leak(tables),
            lapic: UnsafeCell::new(None),
            online: AtomicBool::new(false),
            timer_ticks: AtomicU64::new(0),
            wake_ipis: AtomicU64::new(0),
            call: SpinLock::new(None),
            call_pending: AtomicBool::new(false),
            sched: crate::thread::CpuSched::new(),
        }));
        block.self_ptr = block as *const PerCpu;
        v.push(&*block);
    }
    let n = topo.num_nodes();
    let fallback = (0..n)
        .map(|a| {
            let mut others: Vec<usize> = (0..n).filter(|&b| b != a).collect();
            others.sort_by_key(|&b| (topo.distance(a, b), b));
            others
        })
        .collect();
    NODE_FALLBACK
        .set(fallback)
        .map_err(|_| "percpu: created twice")?;
    CPUS.set(v)
        .map(|v| v.as_slice())
        .map_err(|_| "percpu: created twice")
}

/// Makes `block` the calling CPU's (sets the GS base).
///
/// # Safety
/// 1. `block` belongs to the calling CPU and no other CPU installs it.
pub unsafe fn install(block: &'static PerCpu) {
    // SAFETY: IA32_GS_BASE only changes what `gs:` addresses; the kernel never uses GS otherwise.
    unsafe { x86::msr::wrmsr(x86::msr::IA32_GS_BASE, block as *const PerCpu as u64) };
    READY.store(true, Ordering::Release);
}

/// The calling CPU's block.
#[inline]
pub fn current() -> &'static PerCpu {
    let p: *const PerCpu;
    // SAFETY: after `install`, gs:[0] holds `self_ptr`, a 'static block.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: blocks are leaked boxes, valid forever.
    unsafe { &*p }
}

/// A CPU's block by logical id.
pub fn get(cpu: usize) -> &'static PerCpu {
    CPUS.get().expect("percpu::create_all ran")[cpu]
}

/// All blocks.
pub fn all() -> &'static [&'static PerCpu] {
    CPUS.get().map_or(&[], |v| v.as_slice())
}

/// Whether the BSP has installed its block (from then on every CPU that runs Rust has one).
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The logical CPU id of the caller, or 0 before per-CPU data is set up (boot and fault paths).
pub fn current_cpu_or_boot() -> usize {
    if READY.load(Ordering::Acquire) {
        current().cpu
    } else {
        0
    }
}

/// The caller's logical node, or 0 during early boot.
pub fn current_node_or_boot() -> usize {
    if READY.load(Ordering::Acquire) {
        current().node
    } else {
        0
    }
}

/// The nodes to fall back on from the caller's node, nearest first (empty during early boot).
pub fn nodes_by_distance() -> &'static [usize] {
    match NODE_FALLBACK.get() {
        Some(f) => f.get(current_node_or_boot()).map_or(&[], |v| v.as_slice()),
        None => &[],
    }
}
