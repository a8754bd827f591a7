//! Cross-CPU calls and wake-ups: run a function on another CPU, or just wake it from `hlt`.
//!
//! # Protocol
//! 1. The caller waits (bounded) until the target's call slot is empty and fills it under the
//!    slot's lock, so two callers never overwrite each other.
//! 2. It sets the target's `call_pending` flag (so polling an empty slot costs one load) and
//!    sends the wake IPI. The target runs the call at its next thread switch or scheduler-loop
//!    turn; its idle path checks the flag with interrupts off and halts with `sti; hlt`, so a call
//!    published after the check still interrupts the halt: no lost wake-up.
//! 3. The function reports completion itself (through atomics it shares with the caller).

use core::sync::atomic::Ordering;

use crate::arch::apic;
use crate::percpu::{self, PerCpu};
use crate::time;

/// How long a caller waits for a busy call slot.
const SLOT_WAIT_MS: u64 = 5_000;

/// Sends the wake IPI to `cpu` (no-op for the calling CPU).
pub fn wake(cpu: usize) {
    let me = percpu::current();
    if me.cpu == cpu {
        return;
    }
    let target = percpu::get(cpu).apic_id;
    me.with_lapic(|l| l.send_ipi(target, apic::WAKE_VECTOR));
}

/// Asks `cpu` to run `f(arg)` and wakes it. Fails if its slot stays busy for [`SLOT_WAIT_MS`].
pub fn run_on(cpu: usize, f: fn(usize), arg: usize) -> Result<(), &'static str> {
    let target = percpu::get(cpu);
    let deadline = time::now_ns() + SLOT_WAIT_MS * 1_000_000;
    loop {
        {
            let mut slot = target.call.lock();
            if slot.is_none() {
                *slot = Some((f, arg));
                target.call_pending.store(true, Ordering::SeqCst);
                break;
            }
        }
        if time::now_ns() > deadline {
            return Err("smpcall: the target CPU's call slot stayed busy");
        }
        core::hint::spin_loop();
    }
    wake(cpu);
    Ok(())
}

/// Runs a pending call on this CPU, if any. Returns whether one ran.
pub fn poll(me: &PerCpu) -> bool {
    if !me.call_pending.swap(false, Ordering::AcqRel) {
        return false;
    }
    let call = me.call.lock().take();
    match call {
        Some((f, arg)) => {
            f(arg);
            true
        }
        None => false,
    }
}
