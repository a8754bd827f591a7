//! TEMPORARY cooperative context switch, until manycore-sched's `sched/src/arch/x86_64.rs` (issue 4)
//! lands; the kernel then calls that one and this file goes away.
//!
//! `switch_context(save, load)` pushes the SysV callee-saved registers (rbp, rbx, r12-r15) on the
//! current stack, stores the stack pointer in `*save`, loads `load` as the stack pointer and pops
//! the same registers from it. Everything else is caller-saved, so a cooperative switch needs
//! nothing more. MXCSR and the x87 control word are not switched: the kernel is compiled
//! soft-float and never changes them, and a thread that is *preempted* has its whole FPU/SSE state
//! saved by the trap stub before the scheduler runs (see [`super::trap`]).

core::arch::global_asm!(
    r#"
    .section .text.switch_context, "ax"
    .global switch_context
switch_context:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

unsafe extern "C" {
    /// Saves callee-saved registers and the stack pointer into `*save`, resumes the context whose
    /// stack pointer is `load`.
    ///
    /// # Safety
    /// 1. `load` was stored by an earlier `switch_context` (or built by [`prepare_stack`]) and that
    ///    context has not been resumed since.
    /// 2. Interrupts are disabled.
    pub fn switch_context(save: *mut u64, load: u64);
}

/// Number of registers `switch_context` pops.
const SAVED_REGS: u64 = 6;

/// Lays out a fresh stack so that the first `switch_context` into it "returns" into `entry` with
/// the stack aligned as at a function entry. Returns the stack pointer to pass as `load`.
///
/// # Safety
/// 1. `[top - 64, top)` is writable memory owned by the caller; `top` is 16-byte aligned.
pub unsafe fn prepare_stack(top: u64, entry: extern "C" fn() -> !) -> u64 {
    let mut sp = top;
    // SAFETY: precondition 1; eight words below `top`.
    unsafe {
        sp -= 8;
        (sp as *mut u64).write(0); // fake return address of `entry` (it never returns)
        sp -= 8;
        (sp as *mut u64).write(entry as usize as u64);
        for _ in 0..SAVED_REGS {
            sp -= 8;
            (sp as *mut u64).write(0);
        }
    }
    sp
}
