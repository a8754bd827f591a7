//! Single CPU instructions: interrupt flag, `hlt`, TSC, control-register set-up for SSE.

use core::arch::asm;

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// Disables interrupts on this CPU and returns whether they were enabled.
#[inline]
pub fn interrupts_disable() -> bool {
    let rflags: u64;
    // SAFETY: reads RFLAGS through the stack and clears IF; the kernel runs in ring 0 and every
    // caller restores the flag (or means to keep interrupts off).
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) rflags, options(preserves_flags)) };
    rflags & RFLAGS_IF != 0
}

/// Enables interrupts on this CPU.
#[inline]
pub fn interrupts_enable() {
    // SAFETY: the IDT is loaded before any CPU first enables interrupts (`trap::init` runs first
    // on every CPU), so any interrupt taken from here on has a handler.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Halts until the next interrupt (returns at once if one is pending and enabled).
#[inline]
pub fn halt() {
    // SAFETY: `hlt` only waits; the kernel runs in ring 0.
    unsafe { asm!("hlt", options(nomem, nostack, preserves_flags)) };
}

/// Enables interrupts and halts in one step: `sti` holds interrupts off for one more instruction,
/// so an interrupt that arrives between the check for work and the halt still wakes the CPU
/// (the idle loop's no-lost-wakeup step).
#[inline]
pub fn enable_interrupts_and_halt() {
    // SAFETY: see `interrupts_enable` and `halt`.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Reads the time-stamp counter (not serialising).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` is available on every x86_64 CPU and CR4.TSD is left clear.
    unsafe { x86::time::rdtsc() }
}

/// Reads the TSC after all earlier instructions have completed (`lfence; rdtsc`), for timing.
#[inline]
pub fn rdtsc_ordered() -> u64 {
    // SAFETY: `lfence` only orders instructions.
    unsafe { asm!("lfence", options(nomem, nostack, preserves_flags)) };
    rdtsc()
}

/// Enables x87/SSE instructions on this CPU (CR0.MP on, CR0.EM and CR0.TS off, CR4.OSFXSR and
/// CR4.OSXMMEXCPT on). The kernel itself is compiled without SSE (the `x86_64-unknown-none`
/// target is soft-float); threads may use SSE through inline assembly, and a timer preemption
/// switches with manycore-sched's `switch_preempt`, which saves the FXSAVE area, so preemption
/// preserves it. AVX stays off (CR4.OSXSAVE clear): `fxsave` covers all the state a thread can
/// have.
pub fn enable_sse() {
    // SAFETY: these bits only change which FPU/SSE instructions fault; nothing depends on the old
    // values, and `fninit` resets the x87 unit to a known state.
    unsafe {
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        cr0 &= !((1 << 2) | (1 << 3)); // EM, TS
        cr0 |= 1 << 1; // MP
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        let mut cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        cr4 |= (1 << 9) | (1 << 10); // OSFXSR, OSXMMEXCPT
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        asm!("fninit", options(nomem, nostack));
    }
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
