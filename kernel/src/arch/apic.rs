//! The local APIC through the `x86` crate: xAPIC (MMIO) or x2APIC (MSRs), chosen once by CPUID.
//!
//! The crate's [`ApicControl`] covers EOI, IPIs (fixed, INIT, STARTUP) and the TSC-deadline
//! timer; the count-down timer registers (LVT timer, initial/current count, divide) are not in its
//! API, so [`Lapic`] programs those directly, with the register offsets the crate exports.
//!
//! Known compromise: the crate's `XAPIC` wants the register page as `&'static mut [u32]`. Every
//! CPU's xAPIC page sits at the same physical address (each CPU sees its own APIC there), so each
//! CPU's driver holds such a slice over the same address. The slices are only accessed with
//! volatile reads and writes by the CPU that owns the driver, and the memory is device memory that
//! Rust never otherwise reads, so no value is ever assumed stable between accesses.

use core::sync::atomic::{AtomicBool, Ordering};

use x86::apic::x2apic::X2APIC;
use x86::apic::xapic::{self, XAPIC};
use x86::apic::{
    ApicControl, ApicId, DeliveryMode, DeliveryStatus, DestinationMode, DestinationShorthand, Icr,
    Level, TriggerMode,
};
use x86::msr;

/// Timer interrupt (preemption tick).
pub const TIMER_VECTOR: u8 = 0x20;
/// Wake-up IPI (a parked CPU has work).
pub const WAKE_VECTOR: u8 = 0x21;
/// Spurious interrupt vector (no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Whether all CPUs use x2APIC mode (decided by the BSP from CPUID before any AP starts).
static X2APIC_MODE: AtomicBool = AtomicBool::new(false);
/// Whether the TSC-deadline timer mode is available (CPUID.1:ECX[24]).
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);

/// xAPIC register page size in 32-bit words.
const XAPIC_WORDS: usize = 4096 / 4;
/// LVT timer mode bits.
const LVT_ONESHOT: u32 = 0;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

/// One CPU's local APIC driver.
pub enum Lapic {
    /// Memory-mapped xAPIC.
    X(XAPIC, *mut u32),
    /// MSR-based x2APIC.
    X2(X2APIC),
}

/// Decides the APIC mode for every CPU (BSP, before bring-up): x2APIC when CPUID offers it.
pub fn choose_mode() {
    let cpuid = x86::cpuid::CpuId::new();
    let f = cpuid.get_feature_info();
    X2APIC_MODE.store(
        f.as_ref().is_some_and(|f| f.has_x2apic()),
        Ordering::Relaxed,
    );
    TSC_DEADLINE.store(
        f.as_ref().is_some_and(|f| f.has_tsc_deadline()),
        Ordering::Relaxed,
    );
}

/// Whether x2APIC mode is in use.
pub fn x2apic_mode() -> bool {
    X2APIC_MODE.load(Ordering::Relaxed)
}

/// Whether the TSC-deadline timer is available.
pub fn has_tsc_deadline() -> bool {
    TSC_DEADLINE.load(Ordering::Relaxed)
}

impl Lapic {
    /// Enables the calling CPU's local APIC, with the spurious vector set and the timer masked.
    ///
    /// # Safety
    /// 1. `mmio_paddr` is the xAPIC register page (from the MADT or IA32_APIC_BASE), identity-mapped.
    /// 2. Called once per CPU, on that CPU, with interrupts off.
    pub unsafe fn enable_this_cpu(mmio_paddr: u64) -> Self {
        let mut lapic = if x2apic_mode() {
            let mut a = X2APIC::new();
            a.attach();
            Self::X2(a)
        } else {
            let base = mmio_paddr as *mut u32;
            // SAFETY: precondition 1: the page is the xAPIC's registers; see the module doc on the
            // aliasing compromise.
            let region = unsafe { core::slice::from_raw_parts_mut(base, XAPIC_WORDS) };
            let mut a = XAPIC::new(region);
            a.attach();
            Self::X(a, base)
        };
        lapic.write_reg(
            xapic::XAPIC_SVR,
            msr::IA32_X2APIC_SIVR,
            (1 << 8) | u32::from(SPURIOUS_VECTOR),
        );
        lapic.write_reg(xapic::XAPIC_TPR, msr::IA32_X2APIC_TPR, 0);
        lapic.write_reg(
            xapic::XAPIC_LVT_TIMER,
            msr::IA32_X2APIC_LVT_TIMER,
            LVT_MASKED | u32::from(TIMER_VECTOR),
        );
        lapic.write_reg(
            xapic::XAPIC_TIMER_DIV_CONF,
            msr::IA32_X2APIC_DIV_CONF,
            DIVIDE_BY_16,
        );
        lapic
    }

    fn write_reg(&mut self, xapic_offset: u32, x2apic_msr: u32, value: u32) {
        match self {
            // SAFETY: the offset is one of the APIC's documented registers inside the page.
            Self::X(_, base) => unsafe {
                base.add(xapic_offset as usize / 4).write_volatile(value)
            },
            // SAFETY: the MSR is the x2APIC register matching `xapic_offset`.
            Self::X2(_) => unsafe { msr::wrmsr(x2apic_msr, u64::from(value)) },
        }
    }

    fn read_reg(&self, xapic_offset: u32, x2apic_msr: u32) -> u32 {
        match self {
            // SAFETY: as in `write_reg`.
            Self::X(_, base) => unsafe { base.add(xapic_offset as usize / 4).read_volatile() },
            // SAFETY: as in `write_reg`.
            Self::X2(_) => unsafe { msr::rdmsr(x2apic_msr) as u32 },
        }
    }

    /// This CPU's APIC id.
    pub fn id(&self) -> u32 {
        match self {
            Self::X(a, _) => a.id() >> 24,
            Self::X2(a) => a.id(),
        }
    }

    /// Signals end of interrupt.
    pub fn eoi(&mut self) {
        match self {
            Self::X(a, _) => a.eoi(),
            Self::X2(a) => a.eoi(),
        }
    }

    fn destination(&self, apic_id: u32) -> ApicId {
        match self {
            Self::X(..) => ApicId::XApic(apic_id as u8),
            Self::X2(_) => ApicId::X2Apic(apic_id),
        }
    }

    /// Sends a fixed interrupt `vector` to the CPU with `apic_id`.
    pub fn send_ipi(&mut self, apic_id: u32, vector: u8) {
        let dest = self.destination(apic_id);
        let args = (
            vector,
            dest,
            DestinationShorthand::NoShorthand,
            DeliveryMode::Fixed,
            DestinationMode::Physical,
            DeliveryStatus::Idle,
            Level::Assert,
            TriggerMode::Edge,
        );
        match self {
            Self::X(a, _) => {
                let icr = Icr::for_xapic(
                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                );
                // SAFETY: a fixed IPI to a CPU that has a handler for `vector` (all vectors have one).
                unsafe { a.send_ipi(icr) }
            }
            Self::X2(a) => {
                let icr = Icr::for_x2apic(
                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                );
                // SAFETY: as above.
                unsafe { a.send_ipi(icr) }
            }
        }
    }

    /// Sends INIT (assert, then de-assert) to `apic_id`.
    ///
    /// # Safety
    /// 1. `apic_id` is an AP that is not running kernel code (it is reset).
    pub unsafe fn send_init(&mut self, apic_id: u32) {
        let dest = self.destination(apic_id);
        match self {
            // SAFETY: precondition 1.
            Self::X(a, _) => unsafe {
                a.ipi_init(dest);
                a.ipi_init_deassert();
            },
            // SAFETY: precondition 1 (x2APIC has no INIT de-assert message).
            Self::X2(a) => unsafe { a.ipi_init(dest) },
        }
    }

    /// Sends STARTUP with the trampoline at physical page `page` (address `page << 12`).
    ///
    /// # Safety
    /// 1. `apic_id` is an AP in wait-for-SIPI state and the trampoline is in place at `page << 12`.
    pub unsafe fn send_startup(&mut self, apic_id: u32, page: u8) {
        let dest = self.destination(apic_id);
        match self {
            // SAFETY: precondition 1.
            Self::X(a, _) => unsafe { a.ipi_startup(dest, page) },
            // SAFETY: precondition 1.
            Self::X2(a) => unsafe { a.ipi_startup(dest, page) },
        }
    }

    /// Arms the one-shot count-down timer to fire after `ticks` timer ticks (bus clock / 16).
    pub fn timer_oneshot(&mut self, ticks: u32) {
        self.write_reg(
            xapic::XAPIC_LVT_TIMER,
            msr::IA32_X2APIC_LVT_TIMER,
            LVT_ONESHOT | u32::from(TIMER_VECTOR),
        );
        self.write_reg(
            xapic::XAPIC_TIMER_INIT_COUNT,
            msr::IA32_X2APIC_INIT_COUNT,
            ticks.max(1),
        );
    }

    /// Arms the TSC-deadline timer (requires [`has_tsc_deadline`]) to fire at TSC value `deadline`.
    pub fn timer_deadline(&mut self, deadline: u64) {
        self.write_reg(
            xapic::XAPIC_LVT_TIMER,
            msr::IA32_X2APIC_LVT_TIMER,
            LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR),
        );
        match self {
            Self::X(a, _) => a.tsc_set(deadline),
            Self::X2(a) => a.tsc_set(deadline),
        }
    }

    /// Stops the timer.
    pub fn timer_stop(&mut self) {
        self.write_reg(
            xapic::XAPIC_TIMER_INIT_COUNT,
            msr::IA32_X2APIC_INIT_COUNT,
            0,
        );
        self.write_reg(
            xapic::XAPIC_LVT_TIMER,
            msr::IA32_X2APIC_LVT_TIMER,
            LVT_MASKED | u32::from(TIMER_VECTOR),
        );
        if has_tsc_deadline() {
            // SAFETY: writing 0 disarms a TSC deadline; the MSR exists when the feature does.
            unsafe { msr::wrmsr(msr::IA32_TSC_DEADLINE, 0) };
        }
    }

    /// Starts the count-down timer from its maximum with the interrupt masked (calibration).
    pub fn timer_start_free_running(&mut self) {
        self.write_reg(
            xapic::XAPIC_LVT_TIMER,
            msr::IA32_X2APIC_LVT_TIMER,
            LVT_MASKED | u32::from(TIMER_VECTOR),
        );
        self.write_reg(
            xapic::XAPIC_TIMER_INIT_COUNT,
            msr::IA32_X2APIC_INIT_COUNT,
            u32::MAX,
        );
    }

    /// The count-down timer's current count.
    pub fn timer_current(&self) -> u32 {
        self.read_reg(xapic::XAPIC_TIMER_CURRENT_COUNT, msr::IA32_X2APIC_CUR_COUNT)
    }
}
