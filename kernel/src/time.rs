//! Time: the TSC calibrated against the PIT, monotonic nanoseconds, busy delays, and the local
//! APIC timer's rate.
//!
//! Calibration runs once on the BSP before the APs start: PIT channel 2 counts down a fixed
//! interval in mode 0 while the TSC and the APIC timer (free-running, masked) are read at both
//! ends. QEMU derives both the TSC and the APIC timer from its clocks, so the rates hold on every
//! CPU; with `-icount` the TSC counts instructions and the rates follow the virtual clock.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{cpu, port};

/// PIT input clock (Hz).
const PIT_HZ: u64 = 1_193_182;
/// Calibration interval.
const CALIBRATION_MS: u64 = 20;
/// Bound on polling the PIT (a machine without a PIT fails calibration instead of hanging).
const PIT_POLLS_MAX: u64 = 500_000_000;

/// TSC ticks per second (set by [`calibrate`]).
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// TSC value at calibration (time zero for [`now_ns`]).
static TSC_ZERO: AtomicU64 = AtomicU64::new(0);
/// APIC timer ticks (divide by 16) per millisecond.
static APIC_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

/// Measures TSC and APIC timer rates against the PIT. `lapic_*` read and start the APIC timer.
pub fn calibrate(lapic: &mut crate::arch::apic::Lapic) -> Result<(), &'static str> {
    let count = PIT_HZ * CALIBRATION_MS / 1000;
    // Gate channel 2 on, speaker off; channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count).
    let gate = port::inb(0x61);
    port::outb(0x61, (gate & !0x02) | 0x01);
    port::outb(0x43, 0b1011_0000);
    port::outb(0x42, count as u8);
    port::outb(0x42, (count >> 8) as u8);
    // Restart the count with a gate edge.
    let g = port::inb(0x61) & !0x01;
    port::outb(0x61, g);
    lapic.timer_start_free_running();
    let apic0 = lapic.timer_current();
    let tsc0 = cpu::rdtsc_ordered();
    port::outb(0x61, g | 0x01);
    let mut polls = 0u64;
    while port::inb(0x61) & 0x20 == 0 {
        polls += 1;
        if polls > PIT_POLLS_MAX {
            return Err("time: the PIT never reached terminal count (no PIT?)");
        }
    }
    let tsc1 = cpu::rdtsc_ordered();
    let apic1 = lapic.timer_current();
    lapic.timer_stop();
    let tsc_hz = (tsc1 - tsc0) * 1000 / CALIBRATION_MS;
    let apic_per_ms = u64::from(apic0 - apic1) / CALIBRATION_MS;
    if tsc_hz == 0 || apic_per_ms == 0 {
        return Err("time: TSC or APIC timer did not advance during calibration");
    }
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    TSC_ZERO.store(tsc0, Ordering::Relaxed);
    APIC_TICKS_PER_MS.store(apic_per_ms, Ordering::Relaxed);
    Ok(())
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// APIC timer ticks per millisecond (divide by 16).
pub fn apic_ticks_per_ms() -> u64 {
    APIC_TICKS_PER_MS.load(Ordering::Relaxed)
}

/// Nanoseconds since calibration (monotonic on each CPU; QEMU keeps TSCs in step across CPUs).
pub fn now_ns() -> u64 {
    let hz = tsc_hz().max(1);
    let dt = cpu::rdtsc().saturating_sub(TSC_ZERO.load(Ordering::Relaxed));
    ((u128::from(dt) * 1_000_000_000) / u128::from(hz)) as u64
}

/// Converts nanoseconds to TSC ticks.
pub fn ns_to_tsc(ns: u64) -> u64 {
    ((u128::from(ns) * u128::from(tsc_hz())) / 1_000_000_000) as u64
}

/// Spins for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = cpu::rdtsc() + ns_to_tsc(us * 1000);
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}
