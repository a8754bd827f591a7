//! x86_64 (System V) context switch.
//!
//! # Cooperative switch: [`switch`]
//! A task gives up the CPU by *calling* `switch(from, to)`, so the compiler has already saved
//! every caller-saved register it needs. The switch saves only what the SysV ABI makes
//! callee-saved: `rbx`, `rbp`, `r12`-`r15` (pushed on the old stack) and `rsp` (stored in
//! `*from`), then loads `to`'s `rsp`, pops its registers and jumps to the address the resumed
//! context's own `call switch` pushed. It ends in `pop; jmp` rather than `ret`: the return
//! address on the new stack belongs to another call, so a `ret` would miss the return-stack
//! predictor on every switch, while the indirect jump is learnt by the branch target buffer.
//!
//! **MXCSR and the x87 control word are not saved.** The ABI makes their control bits
//! callee-saved, but tasks in one program share one floating-point environment: Rust code never
//! changes rounding modes or exception masks behind the caller's back. A task that does must
//! restore them before it yields. Saving them would add a `stmxcsr`/`fnstcw` and their loads
//! (tens of cycles on some cores) to every switch for a case the runtime does not have.
//!
//! # Preemptive switch, for kernels: [`switch_preempt`]
//! A timer interrupt preempts a task at an arbitrary instruction. The kernel's interrupt stub
//! has already pushed every general-purpose register on the task's stack; what remains is the
//! FPU/SSE state, which the interrupted code may be using. `switch_preempt` saves it with
//! `fxsave64` (512 bytes, 16-aligned, on the old stack), together with MXCSR and the x87 control
//! word that `fxsave` covers, switches like [`switch`], and restores the new task's state with
//! `fxrstor64`. Every context switched to by `switch_preempt` must have been switched away by
//! `switch_preempt` too (or be fresh from [`init_stack`], whose first resume goes through the
//! same path when started with `switch_preempt`; see its docs). A kernel with AVX state uses
//! `xsave`/`xrstor` instead: same shape, larger area (the unikernel's trap path does this).
//!
//! # New contexts: [`init_stack`]
//! Lays out a fresh stack so that the first switch to it "returns" into a trampoline that calls
//! `entry(arg)` on a 16-byte-aligned stack, as the ABI requires at a call. `entry` must never
//! return: it ends by switching away for the last time.

use core::arch::naked_asm;

/// Stack alignment the ABI requires at a call.
pub const STACK_ALIGN_BYTES: usize = 16;

/// A suspended context: its saved stack pointer. Written by [`switch`] when the context is
/// suspended, read when it is resumed; owned by whoever owns the task.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Context {
    rsp: usize,
}

impl Context {
    /// An empty context, to be filled by the first [`switch`] away from the current stack.
    pub const fn new() -> Context {
        Context { rsp: 0 }
    }
}

/// Saves the current context in `*from` and resumes `*to`.
///
/// # Safety
/// 1. `from` is valid for writes and `to` for reads.
/// 2. `*to` was filled by a previous `switch` away from a stack that is still alive, or by
///    [`init_stack`] on a stack that is still alive and big enough for the code it will run.
/// 3. No Rust reference into the suspended stack is used while it is suspended (the usual
///    rules for data another thread would own).
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch(from: *mut Context, to: *const Context) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, [rsi]",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        // `pop; jmp` rather than `ret`: the return address belongs to the *other* context's
        // call, so a `ret` would always miss the return-stack predictor; an indirect jump is
        // predicted by the branch target buffer, which learns the alternation (Boost.Context
        // does the same). rcx is caller-saved, free to clobber at a call boundary.
        "pop rcx",
        "jmp rcx",
    )
}

/// Like [`switch`], also saving and restoring the FPU/SSE state (`fxsave64`/`fxrstor64`) for
/// preemption (see the module docs).
///
/// # Safety
/// As [`switch`], and: 4. `*to` was suspended by `switch_preempt`, or prepared by
/// [`init_stack`] with `preempt = true`.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch_preempt(from: *mut Context, to: *const Context) {
    naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "sub rsp, 512",
        "and rsp, -16",
        "fxsave64 [rsp]",
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, [rsi]",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "fxrstor64 [rsp]",
        "mov rsp, rbp",
        "pop rbp",
        "ret",
    )
}

/// First code a fresh context runs: `r12` holds `entry`, `r13` its argument.
#[unsafe(naked)]
unsafe extern "sysv64" fn trampoline() {
    naked_asm!("mov rdi, r13", "and rsp, -16", "call r12", "ud2")
}

/// Prepares the stack `[bottom, top)` so that switching to the returned context calls
/// `entry(arg)` on it. With `preempt`, the layout suits [`switch_preempt`] (a zeroed FXSAVE area
/// with the default MXCSR and x87 control word); otherwise [`switch`].
///
/// # Safety
/// 1. `[top - 1024, top)` is writable memory that stays alive while the context may run.
/// 2. `entry` never returns.
pub unsafe fn init_stack(
    top: *mut u8,
    entry: extern "sysv64" fn(usize) -> !,
    arg: usize,
    preempt: bool,
) -> Context {
    let mut sp = (top as usize) & !(STACK_ALIGN_BYTES - 1);
    fn push(sp: &mut usize, v: usize) {
        *sp -= 8;
        // SAFETY: `init_stack`'s precondition 1: every word written lies within the top 1024
        // bytes of the stack.
        unsafe { (*sp as *mut usize).write(v) };
    }
    push(&mut sp, 0); // alignment / fake return address of the trampoline's frame
    push(&mut sp, trampoline as *const () as usize);
    if preempt {
        // switch_preempt's epilogue: pop rbp (from the saved frame pointer), fxrstor at the
        // 16-aligned area below it.
        push(&mut sp, 0); // saved rbp of the outer frame
        let area_top = sp;
        let area = (area_top - 512) & !15;
        while sp > area {
            push(&mut sp, 0);
        }
        // Default FXSAVE image: FCW 0x037F at offset 0, MXCSR 0x1F80 at offset 24.
        // SAFETY: `area` is within the stack region (precondition 1) and 16-aligned.
        unsafe {
            (area as *mut u16).write(0x037F);
            ((area + 24) as *mut u32).write(0x1F80);
        }
        // The saved rbp that switch_preempt restores into `mov rsp, rbp` must point at the
        // outer saved-rbp word.
        let rbp_value = area_top;
        push(&mut sp, rbp_value); // rbp popped before fxrstor
    } else {
        push(&mut sp, 0); // rbp
    }
    push(&mut sp, 0); // rbx
    push(&mut sp, entry as *const () as usize); // r12
    push(&mut sp, arg); // r13
    push(&mut sp, 0); // r14
    push(&mut sp, 0); // r15
    Context { rsp: sp }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use core::arch::asm;

    use super::*;
    use crate::stack::Stack;

    struct Pair {
        main: Context,
        task: Context,
        rounds: usize,
        seen: usize,
        rsp_mod16_at_entry: usize,
        preempt: bool,
        task_mxcsr: u32,
    }

    fn back(p: &mut Pair) {
        let (from, to) = (&raw mut p.task, &raw const p.main);
        // SAFETY: both contexts live in `*p`, which outlives the ping-pong; `main` was filled by
        // the switch that started this round.
        unsafe {
            if p.preempt {
                switch_preempt(from, to)
            } else {
                switch(from, to)
            }
        }
    }

    /// Returns its own entry `rsp`: 8 mod 16 when its caller's stack was ABI-aligned.
    #[unsafe(naked)]
    extern "sysv64" fn entry_rsp() -> usize {
        core::arch::naked_asm!("mov rax, rsp", "ret")
    }

    extern "sysv64" fn counter(arg: usize) -> ! {
        let rsp = entry_rsp();
        // SAFETY: `arg` is the address of the test's `Pair`, alive for the whole test.
        let p = unsafe { &mut *(arg as *mut Pair) };
        p.rsp_mod16_at_entry = rsp % 16;
        loop {
            p.seen += 1;
            back(p);
        }
    }

    extern "sysv64" fn mxcsr_reader(arg: usize) -> ! {
        // SAFETY: as in `counter`.
        let p = unsafe { &mut *(arg as *mut Pair) };
        loop {
            let mut m: u32 = 0;
            // SAFETY: stores MXCSR into a local.
            unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut m) };
            p.task_mxcsr = m;
            back(p);
        }
    }

    fn run(
        entry: extern "sysv64" fn(usize) -> !,
        preempt: bool,
        rounds: usize,
        mut before_each: impl FnMut(),
    ) -> Pair {
        let stack = Stack::new(64 * 1024).unwrap();
        let mut p = Pair {
            main: Context::new(),
            task: Context::new(),
            rounds,
            seen: 0,
            rsp_mod16_at_entry: 99,
            preempt,
            task_mxcsr: 0,
        };
        // SAFETY: the stack is alive until the end of this function and 64 KiB is plenty;
        // the entry functions loop forever.
        p.task = unsafe { init_stack(stack.top(), entry, &raw mut p as usize, preempt) };
        for _ in 0..p.rounds {
            before_each();
            let (from, to) = (&raw mut p.main, &raw const p.task);
            // SAFETY: `task` was prepared by init_stack or suspended by the previous round.
            unsafe {
                if preempt {
                    switch_preempt(from, to)
                } else {
                    switch(from, to)
                }
            }
        }
        p
    }

    #[test]
    fn ping_pong_resumes_each_side_where_it_left() {
        let p = run(counter, false, 10_000, || {});
        assert_eq!(p.seen, 10_000);
        assert_eq!(
            p.rsp_mod16_at_entry, 8,
            "calls made on the new stack see the ABI's alignment"
        );
        // Values live across many switches on this side survived (callee-saved registers).
        let mut acc = 0u64;
        let p = run(counter, false, 1000, || {
            acc = acc.wrapping_mul(31).wrapping_add(7)
        });
        let mut expect = 0u64;
        for _ in 0..1000 {
            expect = expect.wrapping_mul(31).wrapping_add(7);
        }
        assert_eq!((acc, p.seen), (expect, 1000));
    }

    #[test]
    fn preemptive_switch_keeps_each_contexts_fpu_state() {
        let mut saved: u32 = 0;
        // SAFETY: reads and later restores this thread's MXCSR.
        unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut saved) };
        // Round toward zero in the main context only (RC bits 13-14 = 11).
        let ours = saved | (3 << 13);
        let set = || {
            // SAFETY: loads a valid MXCSR value (only rounding bits changed).
            unsafe { asm!("ldmxcsr [{}]", in(reg) &raw const ours) };
        };
        let p = run(mxcsr_reader, true, 100, set);
        let mut now: u32 = 0;
        // SAFETY: as above.
        unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut now) };
        // SAFETY: restores the thread's original MXCSR.
        unsafe { asm!("ldmxcsr [{}]", in(reg) &raw const saved) };
        assert_eq!(
            p.task_mxcsr, 0x1F80,
            "the task runs with its own (default) MXCSR"
        );
        assert_eq!(now, ours, "the main context got its rounding mode back");
    }
}
