//! x86_64 (System V) context switches.
//!
//! Three ways to leave one stack for another, for three kinds of callers:
//!
//! | entry points | who uses it | saves |
//! |---|---|---|
//! | [`resume`] / [`suspend`] / [`exit`] | a scheduler loop running tasks (the user-space runtime) | only the callee-saved registers that are live at the call site, chosen by the compiler |
//! | [`switch`] | thread-to-thread switches (a kernel's scheduler) | `rbx`, `rbp`, `r12`-`r15`, `rsp` |
//! | [`switch_preempt`], [`switch_preempt_xsave`] | a kernel preempting a thread from an interrupt | as [`switch`], plus the x87/SSE (`fxsave64`) or all XSAVE-managed state (`xsave64`) |
//!
//! # Cooperative, asymmetric: [`resume`] and [`suspend`]
//! A task is *resumed* by its scheduler loop and *suspends* back to it; the two always alternate,
//! so the pair can keep the CPU's return-stack predictor right:
//! - `resume` pushes `rbx` and *calls* the address saved at the top of the task's stack. The
//!   code there (the second half of the task's last `suspend`, or the start trampoline) pushes the
//!   resumer's `rbp`, stores the resumer's stack pointer in [`TaskContext`]'s `parent_sp`, moves
//!   to the task's stack and pops the task's `rbx` and `rbp`.
//! - `suspend` pushes `rbp`, `rbx` and the address of its own second half, stores that stack
//!   pointer in the context's `sp`, loads `parent_sp`, pops the resumer's `rbp` and *returns*:
//!   to the instruction after `resume`'s call, which is exactly what the return-stack buffer
//!   predicts. The call into the task is an indirect call, predicted by the branch target buffer.
//! - Both are inline assembly that declares every other register clobbered, so the compiler
//!   saves a callee-saved register only where one is live across the switch, once per function
//!   rather than on every switch (`rbx` and `rbp` are reserved by LLVM and cannot be declared
//!   clobbered, hence their explicit pushes).
//!
//! A task may be resumed by a different scheduler loop (another thread) each time: `parent_sp`
//! is rewritten on every resume, and `suspend` returns to whoever resumed last.
//!
//! [`switch_task`] lets a running task hand its resumer to another suspended task directly
//! (suspend one, resume the other, one stack switch): the second task lands at the same point
//! as after a `resume` and records the same `parent_sp`, so either kind of suspension can be
//! resumed either way, and the resumer's `call` is still matched by exactly one `ret`.
//!
//! **MXCSR and the x87 control word are not saved** by any cooperative switch. The ABI makes
//! their control bits callee-saved, but tasks in one program share one floating-point
//! environment: Rust code never changes rounding modes or exception masks behind the caller's
//! back, and a task that does must restore them before it yields. Saving them would add a
//! `stmxcsr`/`fnstcw` and their loads (tens of cycles on some cores) to every switch for a case
//! the runtime does not have. The preemptive switches do save them (they are part of the FXSAVE
//! and XSAVE images), because an interrupted thread may be anywhere.
//!
//! # Thread-to-thread: [`switch`]
//! `switch(from, to)` is a plain function call: it pushes the six callee-saved registers on the
//! old stack, stores `rsp` in `*from`, loads `to`'s `rsp`, pops and jumps to the address that
//! `to`'s own `call switch` pushed. It ends in `pop; jmp` rather than `ret`: the return address
//! on the new stack belongs to another call, so a `ret` would miss the return-stack predictor on
//! every switch, while the indirect jump is learnt by the branch target buffer. New contexts come
//! from [`init_stack`].
//!
//! # Preemption, for kernels
//! A timer interrupt stops a thread at an arbitrary instruction, so everything it may be using
//! must survive: all 16 general-purpose registers, `rflags`, `rip`, and the FPU/SSE/AVX state.
//! Two ways to arrange that, and this module serves both:
//!
//! 1. **The trap stub saves everything** (what `kernel/src/arch/trap.rs` does): it pushes the 15
//!    GPRs, `fxsave64`s the FPU/SSE state on the interrupted stack, and calls the dispatcher. The
//!    dispatcher may then call the cooperative [`switch`] to another thread: what `switch` leaves
//!    unsaved is already on the stack. Every interrupt pays for the FPU save.
//! 2. **Save the FPU state only when switching**: the stub pushes the caller-saved GPRs
//!    (`rax`, `rcx`, `rdx`, `rsi`, `rdi`, `r8`-`r11`; the CPU pushed `rip`, `rflags`, `rsp`) and
//!    calls a Rust handler; when the handler decides to switch it calls
//!    [`switch_preempt`]`(from, to)` (or [`switch_preempt_xsave`] when `CR4.OSXSAVE` is set and
//!    AVX state must survive). That saves the callee-saved registers and the FPU image on the old
//!    stack and restores the new thread's. Interrupts that do not switch save no FPU state.
//!
//! The API for option 2:
//! - Contexts switched by [`switch_preempt`] come from [`init_stack`] with
//!   [`SwitchKind::PreemptFxsave`]; those switched by [`switch_preempt_xsave`] from
//!   [`SwitchKind::PreemptXsave`] with the same `area_bytes` ([`xsave_area_bytes`]). A context
//!   must always be switched away from and back to with the same function: the saved image format
//!   is part of the context.
//! - Call them with interrupts disabled (they run on the thread's stack, which must not be
//!   re-entered half-switched), and after the interrupt controller has been acknowledged if the
//!   new thread will run with interrupts enabled.
//! - The FXSAVE image is 512 bytes and 16-aligned; the XSAVE image is `xsave_area_bytes()` (the
//!   size CPUID reports for the features enabled in XCR0) and 64-aligned, in the standard
//!   (non-compacted) form. Both live on the thread's own stack while it is switched out.
//! - A fresh context starts with the FPU in its power-on state except MXCSR `0x1F80` and FCW
//!   `0x037F` (the values the SysV ABI expects at process start).
//!
//! Cost: `fxsave64`+`fxrstor64` is ~100 cycles; `xsave64`/`xrstor64` of AVX-512 state more
//! (DESIGN.md cites 60-230 ns). `benches/benches/switch.rs` measures the fxsave path.

use core::arch::{asm, naked_asm};

/// Stack alignment the ABI requires at a call.
pub const STACK_ALIGN_BYTES: usize = 16;

/// Bytes at the top of a stack that [`init_task`] writes.
pub const INIT_TASK_BYTES: usize = 64;

// ---------------------------------------------------------------------------------------------
// resume / suspend

/// A task that is resumed by a scheduler loop and suspends back to it ([`resume`], [`suspend`]).
///
/// Both fields are written by the switch code only: `sp` by the task's side when it suspends
/// ([`suspend`], [`switch_task`]), `parent_sp` by the task's side when it is resumed. Whoever
/// owns the task (the runtime: the worker running or resuming it) owns the context.
#[repr(C)]
#[derive(Debug, Default)]
pub struct TaskContext {
    /// The task's stack pointer while it is suspended; the word it points at is the address
    /// the next [`resume`] calls.
    sp: usize,
    /// The resumer's stack pointer while the task runs (where [`suspend`] returns to).
    parent_sp: usize,
}

impl TaskContext {
    /// An empty context: resume it only after [`init_task`] filled it.
    pub const fn new() -> TaskContext {
        TaskContext {
            sp: 0,
            parent_sp: 0,
        }
    }

    /// Whether [`init_task`] or a [`suspend`] filled it (a finished or abandoned task's context
    /// keeps its last value; the owner tracks that).
    pub fn is_initialized(&self) -> bool {
        self.sp != 0
    }
}

/// Runs the task until it calls [`suspend`] or [`exit`] (or is abandoned, see [`abandon_point`]).
///
/// # Safety
/// 1. `ctx` is valid for reads and writes, and stays at the same address while the task runs.
/// 2. `*ctx` was filled by [`init_task`] or by the task's last [`suspend`], on a stack that is
///    still alive and big enough for the code the task runs; the task has not exited since.
/// 3. No other thread resumes the same task until this call returns.
/// 4. Nothing the caller's frame borrows is used by the task in a way that would be unsound for
///    a callee (the task runs as if called from here).
#[inline(always)]
pub unsafe fn resume(ctx: *mut TaskContext) {
    // SAFETY: precondition 1 makes `ctx` readable.
    let sp = unsafe { (*ctx).sp };
    // SAFETY: precondition 1: the field pointer stays valid while the task runs.
    let link = unsafe { &raw mut (*ctx).parent_sp };
    // SAFETY: preconditions 2 and 3: `sp` points at a resume address on the task's live stack
    // (pushed by `suspend`/`switch_task` or laid out by `init_task`), and the code there follows
    // the protocol of the module docs: it saves our rbp and stack pointer, and later returns to
    // the instruction after the call with every register but rbx, rbp and rsp clobbered
    // (declared below). The task side stores its own stack pointer in its context when it
    // suspends. No `nostack`: we push on our own stack, so the compiler keeps the red zone free.
    unsafe {
        asm!(
            "push rbx",
            "call [rdx]",
            "pop rbx",
            in("rdx") sp,
            in("rdi") link,
            // No hand-off words for the task (see `suspend`'s return value).
            in("rsi") 0usize,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
}

/// From inside a task: switches back to the loop that resumed it. Returns when the task is
/// resumed again (possibly by another thread), with the two words the resumer passed: `(0, _)`
/// from [`resume`], `(a, b)` from another task's [`switch_task`]`(.., a, b)`.
///
/// # Safety
/// 1. Called on the task's own stack, with `ctx` the context it was resumed through (the same
///    pointer the resumer passed to [`resume`]), valid for reads.
/// 2. Data on the task's stack is not used by other threads while the task is suspended,
///    except through synchronization that makes it sound (as for any blocked thread).
/// 3. Thread-local addresses computed before the call are not used after it: the task may be
///    resumed on another thread (read thread-locals through a function the optimizer cannot
///    merge across the switch).
#[inline(always)]
pub unsafe fn suspend(ctx: *mut TaskContext) -> (usize, usize) {
    let (a, b): (usize, usize);
    // SAFETY: precondition 1: `ctx` is the task's context; its `parent_sp` holds the resumer's
    // stack pointer, pointing at the resumer's saved rbp with the return address of its `call`
    // above it (module docs). We leave our resume address (label 2) on our stack and store that
    // stack pointer in `ctx.sp`; at label 2 the resumer passes the link in rdi and our stack
    // pointer in rdx. Every register not restored is declared clobbered.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov [rdx], rsp",
            "mov rsp, [rdx + 8]",
            "pop rbp",
            "ret",
            "2:",
            "push rbp",
            "mov [rdi], rsp",
            "lea rsp, [rdx + 8]",
            "pop rbx",
            "pop rbp",
            in("rdx") ctx,
            lateout("rsi") a,
            lateout("r8") b,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (a, b)
}

/// From inside a task: suspends it and resumes another suspended task `to` in its place, on
/// behalf of the same resumer (one switch instead of back to the resumer and out again). When
/// `to` later suspends (or exits, or is abandoned) it returns to the resumer's [`resume`] call,
/// as the calling task would have: the resumer must track which task it is running by other
/// means. `to`'s suspension returns `(a, b)` (`a` non-zero tells it a task handed over: the
/// caller's hand-off data, e.g. what to queue now that the caller's context is saved). Returns
/// as [`suspend`] does, when the calling task is resumed again.
///
/// Return-stack predictor: the resumer's `call` is still matched by one `ret`, the suspend of
/// whichever task ends the chain; the hop into `to` is an indirect `jmp` (branch target buffer).
///
/// # Safety
/// 1. As [`suspend`] 1-3 for the calling task, whose context is `from`.
/// 2. `to` is valid for reads and writes and stays at the same address while its task runs;
///    `*to` was filled by a [`suspend`] or `switch_task` of its task (not by [`init_task`]:
///    a fresh task is started by [`resume`]), on a stack that is still alive; the task has not
///    exited since, and no other thread resumes it while it runs.
/// 3. Nothing the resumer's frame lends the calling task is used by `to` unsoundly (as
///    [`resume`] 4).
#[inline(always)]
pub unsafe fn switch_task(
    from: *mut TaskContext,
    to: *mut TaskContext,
    a: usize,
    b: usize,
) -> (usize, usize) {
    let (ra, rb): (usize, usize);
    // SAFETY: preconditions 1 and 2: `from.parent_sp` points at the resumer's saved rbp (as
    // in `suspend`); we save our resume point as `suspend` does, restore the resumer's rbp and
    // stack pointer, and enter `to`'s resume address exactly as `resume` would (rdi = link,
    // rdx = its stack pointer, the resumer's return address on top of the stack), so `to`
    // records the same resumer and returns to it. Label 2 is `suspend`'s landing.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov [r9], rsp",
            "mov rsp, [r9 + 8]",
            "pop rbp",
            "lea rdi, [rcx + 8]",
            "mov rdx, [rcx]",
            "jmp [rdx]",
            "2:",
            "push rbp",
            "mov [rdi], rsp",
            "lea rsp, [rdx + 8]",
            "pop rbx",
            "pop rbp",
            in("r9") from,
            in("rcx") to,
            inout("rsi") a => ra,
            inout("r8") b => rb,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (ra, rb)
}

/// From inside a task: switches back to the resumer for the last time. The task's stack may be
/// reused as soon as the resumer runs.
///
/// # Safety
/// As [`suspend`] 1; nothing left on the task's stack needs dropping (it is never resumed).
#[inline(always)]
pub unsafe fn exit(ctx: *mut TaskContext) -> ! {
    // SAFETY: precondition 1, as in `suspend`.
    let link = unsafe { (*ctx).parent_sp };
    // SAFETY: as in `suspend`, without leaving a resume point (the context keeps its last
    // stack pointer; the owner knows the task exited).
    unsafe {
        asm!(
            "mov rsp, {link}",
            "pop rbp",
            "ret",
            link = in(reg) link,
            options(noreturn),
        )
    }
}

/// Where a fresh task starts (only by [`resume`], never by [`switch_task`]; `rsi` is ignored):
/// `rdi` = the link (`&parent_sp`), `rdx` = the task's stack pointer (pointing at this
/// trampoline's address, then `entry`, then `arg`), `rsp` = the resumer's stack with the return
/// address of its call on top.
#[unsafe(naked)]
unsafe extern "sysv64" fn task_trampoline() {
    naked_asm!(
        "push rbp",
        "mov [rdi], rsp",
        "lea rsp, [rdx + 8]",
        "pop rax",
        "pop rdi",
        "and rsp, -16",
        // End the frame-pointer chain here so debuggers and profilers stop at the task's base.
        "xor ebp, ebp",
        // Enter `entry` as if called, with a null return address (it never returns), but by a
        // jump: a `call` here would push a return-stack-buffer entry that no `ret` matches, and
        // the task's final `exit` (a `ret` to the resumer) would then be mispredicted.
        "push 0",
        "jmp rax",
    )
}

/// The landing used by [`abandon_point`]: the resumer's stack is current; finish what
/// [`exit`] would have done.
#[unsafe(naked)]
unsafe extern "sysv64" fn abandon_landing() {
    naked_asm!("pop rbp", "ret")
}

/// Prepares the stack ending at `top` so that the first [`resume`] of the returned context calls
/// `entry(arg)` on it, with the stack aligned as the ABI requires at a call.
///
/// # Safety
/// 1. `[top - INIT_TASK_BYTES, top)` is writable memory that stays alive while the task may run.
/// 2. `entry` never returns: it ends with [`exit`].
pub unsafe fn init_task(
    top: *mut u8,
    entry: extern "sysv64" fn(usize) -> !,
    arg: usize,
) -> TaskContext {
    let mut sp = (top as usize) & !(STACK_ALIGN_BYTES - 1);
    let mut push = |v: usize| {
        sp -= 8;
        // SAFETY: precondition 1: the three words lie within the top INIT_TASK_BYTES.
        unsafe { (sp as *mut usize).write(v) };
    };
    push(arg);
    push(entry as *const () as usize);
    push(task_trampoline as *const () as usize);
    TaskContext { sp, parent_sp: 0 }
}

/// The machine state that makes the resumer of a running task carry on as if the task had
/// called [`exit`]: jump to `ip` with the stack pointer at `sp`. Every other register may hold
/// anything. A fault handler (the runtime's stack-overflow handler) writes these into the
/// interrupted thread's saved registers to abandon a task that cannot continue.
///
/// The task's stack is never resumed; nothing on it is dropped.
pub fn abandon_point(ctx: &TaskContext) -> (usize, usize) {
    (abandon_landing as *const () as usize, ctx.parent_sp)
}

// ---------------------------------------------------------------------------------------------
// switch (symmetric)

/// A suspended thread for [`switch`] and the preemptive switches: its saved stack pointer.
/// Written by the switch that suspends it, read when it is resumed; owned by whoever owns the
/// thread.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Context {
    rsp: usize,
}

impl Context {
    /// An empty context, to be filled by the first switch away from the current stack.
    pub const fn new() -> Context {
        Context { rsp: 0 }
    }
}

/// Saves the current context in `*from` and resumes `*to`.
///
/// # Safety
/// 1. `from` is valid for writes and `to` for reads.
/// 2. `*to` was filled by a previous `switch` away from a stack that is still alive, or by
///    [`init_stack`] with [`SwitchKind::Cooperative`] on a stack that is still alive and big
///    enough for the code it will run.
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
        // predicted by the branch target buffer. rcx is caller-saved, free at a call boundary.
        "pop rcx",
        "jmp rcx",
    )
}

/// Like [`switch`], also saving and restoring the x87/SSE state (`fxsave64`/`fxrstor64`, which
/// include MXCSR and the x87 control word) for preemption (see the module docs, option 2).
///
/// # Safety
/// As [`switch`], and: 4. `*to` was suspended by `switch_preempt`, or prepared by
/// [`init_stack`] with [`SwitchKind::PreemptFxsave`]. 5. Called with interrupts disabled when
/// used from a kernel's interrupt path.
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

/// Like [`switch_preempt`] with `xsave64`/`xrstor64` of every state component enabled in XCR0
/// (x87, SSE, AVX, AVX-512, ...), for kernels that enable XSAVE (`CR4.OSXSAVE`).
///
/// # Safety
/// As [`switch`], and: 4. `*to` was suspended by `switch_preempt_xsave` with the same
/// `area_bytes`, or prepared by [`init_stack`] with [`SwitchKind::PreemptXsave`] with the same
/// `area_bytes`. 5. `area_bytes` is [`xsave_area_bytes`]`()` (a multiple of 64) and XSAVE is
/// enabled (`CR4.OSXSAVE` set; always true for Linux user space on CPUs that have XSAVE).
/// 6. Called with interrupts disabled when used from a kernel's interrupt path.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch_preempt_xsave(
    from: *mut Context,
    to: *const Context,
    area_bytes: usize,
) {
    naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "sub rsp, rdx",
        "and rsp, -64",
        // Zero the 64-byte header at offset 512 first: XSAVE updates only the XSTATE_BV bits of
        // the components it saves and never writes XCOMP_BV or the reserved bytes, while XRSTOR
        // faults on any bit set there beyond XCR0, and this stack memory holds old data.
        "xor ecx, ecx",
        "mov [rsp + 512], rcx",
        "mov [rsp + 520], rcx",
        "mov [rsp + 528], rcx",
        "mov [rsp + 536], rcx",
        "mov [rsp + 544], rcx",
        "mov [rsp + 552], rcx",
        "mov [rsp + 560], rcx",
        "mov [rsp + 568], rcx",
        // Requested-feature bitmap: everything (XSAVE masks it with XCR0).
        "mov eax, -1",
        "mov edx, -1",
        "xsave64 [rsp]",
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
        "mov eax, -1",
        "mov edx, -1",
        "xrstor64 [rsp]",
        "mov rsp, rbp",
        "pop rbp",
        "ret",
    )
}

/// Bytes of the standard-form XSAVE image for the state components enabled in XCR0 (CPUID leaf
/// 0xD, sub-leaf 0, EBX), rounded up to 64; `None` when the CPU or the OS has not enabled XSAVE.
pub fn xsave_area_bytes() -> Option<usize> {
    use core::arch::x86_64::__cpuid_count;
    // CPUID is available on every x86_64 CPU; leaf 1 ECX bit 27 is OSXSAVE.
    let leaf1 = __cpuid_count(1, 0);
    if leaf1.ecx & (1 << 27) == 0 {
        return None;
    }
    let size = __cpuid_count(0xD, 0).ebx as usize;
    (size >= 576).then(|| size.div_ceil(64) * 64)
}

/// Which switch a fresh context from [`init_stack`] will be resumed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchKind {
    /// [`switch`].
    Cooperative,
    /// [`switch_preempt`] (FXSAVE image, 512 bytes).
    PreemptFxsave,
    /// [`switch_preempt_xsave`] with this `area_bytes`.
    PreemptXsave {
        /// [`xsave_area_bytes`]`()`.
        area_bytes: usize,
    },
}

impl SwitchKind {
    /// Bytes at the top of the stack that [`init_stack`] writes for this kind.
    pub fn init_bytes(self) -> usize {
        match self {
            SwitchKind::Cooperative => 96,
            SwitchKind::PreemptFxsave => 96 + 512 + 16,
            SwitchKind::PreemptXsave { area_bytes } => 96 + area_bytes + 64,
        }
    }
}

/// First code a fresh [`switch`] context runs: `r12` holds `entry`, `r13` its argument.
#[unsafe(naked)]
unsafe extern "sysv64" fn switch_trampoline() {
    naked_asm!(
        "mov rdi, r13",
        "and rsp, -16",
        "xor ebp, ebp",
        "call r12",
        "ud2"
    )
}

/// Prepares the stack ending at `top` so that switching to the returned context (with the
/// switch `kind` names) calls `entry(arg)` on it. Preemptive kinds get an FPU image in its
/// initial state with MXCSR `0x1F80` and FCW `0x037F`.
///
/// # Safety
/// 1. `[top - kind.init_bytes(), top)` is writable memory that stays alive while the context
///    may run.
/// 2. `entry` never returns.
/// 3. For [`SwitchKind::PreemptXsave`], `area_bytes` is [`xsave_area_bytes`]`()`.
pub unsafe fn init_stack(
    top: *mut u8,
    entry: extern "sysv64" fn(usize) -> !,
    arg: usize,
    kind: SwitchKind,
) -> Context {
    let mut sp = (top as usize) & !(STACK_ALIGN_BYTES - 1);
    fn push(sp: &mut usize, v: usize) {
        *sp -= 8;
        // SAFETY: `init_stack`'s precondition 1: every word written lies within the top
        // `kind.init_bytes()` of the stack.
        unsafe { (*sp as *mut usize).write(v) };
    }
    push(&mut sp, 0); // alignment / fake return address of the trampoline's frame
    push(&mut sp, switch_trampoline as *const () as usize);
    let (area_bytes, align) = match kind {
        SwitchKind::Cooperative => (0, 0),
        SwitchKind::PreemptFxsave => (512, 16),
        SwitchKind::PreemptXsave { area_bytes } => (area_bytes, 64),
    };
    if area_bytes > 0 {
        // The preemptive epilogue: `mov rsp, rbp; pop rbp; ret`, where rbp (popped before the
        // FPU restore) points at the outer saved-rbp word, and the image sits 16/64-aligned just
        // below it.
        push(&mut sp, 0); // outer saved rbp
        let frame = sp;
        let area = (frame - area_bytes) & !(align - 1);
        // Zero the image: a zero XSAVE header (XSTATE_BV = 0, XCOMP_BV = 0) restores every
        // component to its initial state; FXSAVE's zero image is the x87/SSE reset state apart
        // from the control words set below.
        while sp > area {
            push(&mut sp, 0);
        }
        // SAFETY: `area` is within the region of precondition 1 and aligned; FCW at offset 0,
        // MXCSR at offset 24 in both the FXSAVE image and XSAVE's legacy region.
        unsafe {
            (area as *mut u16).write(0x037F);
            ((area + 24) as *mut u32).write(0x1F80);
        }
        push(&mut sp, frame); // rbp popped before the restore
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

    use std::boxed::Box;

    use super::*;
    use crate::stack::{MmapStack, TaskStack};

    fn mxcsr() -> u32 {
        let mut m: u32 = 0;
        // SAFETY: stores MXCSR into a local.
        unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut m) };
        m
    }

    fn set_mxcsr(m: u32) {
        // SAFETY: callers pass a value read from MXCSR with only rounding bits changed.
        unsafe { asm!("ldmxcsr [{}]", in(reg) &raw const m) };
    }

    /// Returns its own entry `rsp`: 8 mod 16 when its caller's stack was ABI-aligned.
    #[unsafe(naked)]
    extern "sysv64" fn entry_rsp() -> usize {
        naked_asm!("mov rax, rsp", "ret")
    }

    // --- resume / suspend ---

    struct Shared {
        ctx: TaskContext,
        seen: u64,
        rsp_mod16_at_entry: usize,
        finish_after: u64,
    }

    extern "sysv64" fn counting_task(arg: usize) -> ! {
        let rsp = entry_rsp();
        let s = arg as *mut Shared;
        // SAFETY: `arg` is the test's `Shared`, alive while the task can run; fields are
        // accessed through the raw pointer only while the resumer waits in `resume`.
        unsafe {
            (*s).rsp_mod16_at_entry = rsp % 16;
            loop {
                (*s).seen += 1;
                if (*s).seen == (*s).finish_after {
                    exit(&raw mut (*s).ctx);
                }
                suspend(&raw mut (*s).ctx);
            }
        }
    }

    fn shared(finish_after: u64) -> Box<Shared> {
        Box::new(Shared {
            ctx: TaskContext::new(),
            seen: 0,
            rsp_mod16_at_entry: 99,
            finish_after,
        })
    }

    #[test]
    fn resume_and_suspend_alternate_and_keep_callers_registers() {
        let stack = MmapStack::new(64 * 1024).unwrap();
        let mut s = shared(u64::MAX);
        let arg = &raw mut *s as usize;
        // SAFETY: the stack outlives the task's use below; the task never returns.
        s.ctx = unsafe { init_task(stack.top(), counting_task, arg) };
        // A value live across every switch on this side: callee-saved registers survive.
        let mut acc = 1u64;
        for i in 0..10_000u64 {
            acc = acc.wrapping_mul(6364136223846793005).wrapping_add(i);
            // SAFETY: the task is suspended (or fresh) on its live stack; only this thread
            // resumes it.
            unsafe { resume(&raw mut s.ctx) };
            assert_eq!(s.seen, i + 1, "the task ran once per resume");
        }
        let mut expect = 1u64;
        for i in 0..10_000u64 {
            expect = expect.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        assert_eq!(acc, expect);
        assert_eq!(
            s.rsp_mod16_at_entry, 8,
            "calls made on the new stack see the ABI's alignment"
        );
    }

    #[test]
    fn exit_returns_to_the_resumer_without_a_resume_point() {
        let stack = MmapStack::new(64 * 1024).unwrap();
        let mut s = shared(3);
        let arg = &raw mut *s as usize;
        // SAFETY: as above; the task exits after 3 rounds and is not resumed after that.
        s.ctx = unsafe { init_task(stack.top(), counting_task, arg) };
        for _ in 0..3 {
            // SAFETY: as above.
            unsafe { resume(&raw mut s.ctx) };
        }
        assert_eq!(s.seen, 3);
    }

    #[test]
    fn a_task_moves_between_threads() {
        struct SendPtr(*mut Shared);
        // SAFETY: the pointer is used by one thread at a time (joined in between).
        unsafe impl Send for SendPtr {}
        let stack = MmapStack::new(64 * 1024).unwrap();
        let mut s = shared(u64::MAX);
        let arg = &raw mut *s as usize;
        // SAFETY: as above.
        s.ctx = unsafe { init_task(stack.top(), counting_task, arg) };
        let p = SendPtr(&raw mut *s);
        for round in 0..20u64 {
            let p = SendPtr(p.0);
            std::thread::spawn(move || {
                let p = p;
                // SAFETY: one thread at a time resumes the task (this one, joined below).
                unsafe { resume(&raw mut (*p.0).ctx) };
            })
            .join()
            .unwrap();
            assert_eq!(s.seen, round + 1);
        }
    }

    extern "sysv64" fn abandoning_task(arg: usize) -> ! {
        let s = arg as *mut Shared;
        // SAFETY: as in `counting_task`. Then jump to the abandon point the way a fault handler
        // would make the thread continue: stack pointer and instruction pointer only.
        unsafe {
            (*s).seen += 1;
            let (ip, sp) = abandon_point(&(*s).ctx);
            asm!("mov rsp, {sp}", "jmp {ip}", sp = in(reg) sp, ip = in(reg) ip, options(noreturn));
        }
    }

    #[test]
    fn abandon_point_returns_to_the_resumer() {
        let stack = MmapStack::new(64 * 1024).unwrap();
        let mut s = shared(u64::MAX);
        let arg = &raw mut *s as usize;
        // SAFETY: as above; the task abandons itself on its first run and is never resumed.
        s.ctx = unsafe { init_task(stack.top(), abandoning_task, arg) };
        let before = s.ctx.sp;
        let live = 0xDEAD_BEEF_u64.wrapping_mul(std::hint::black_box(3));
        // SAFETY: as above.
        unsafe { resume(&raw mut s.ctx) };
        assert_eq!(s.seen, 1);
        assert_eq!(s.ctx.sp, before, "an abandoned task leaves no resume point");
        assert_eq!(live, 0xDEAD_BEEF_u64 * 3, "the resumer's registers survive");
    }

    struct Duo {
        a: TaskContext,
        b: TaskContext,
        /// (task, first word its switch returned): 0 = resumed by `resume`.
        log: std::vec::Vec<(char, usize)>,
    }

    extern "sysv64" fn duo_a(arg: usize) -> ! {
        let d = arg as *mut Duo;
        loop {
            // SAFETY: `d` outlives the test's resumes; A runs on its own stack with its context
            // `a`; B was suspended by `suspend` before A first runs and nobody else resumes it.
            let (w, _) = unsafe { switch_task(&raw mut (*d).a, &raw mut (*d).b, 7, 9) };
            // SAFETY: as above; only the running task touches the log.
            unsafe { (*d).log.push(('A', w)) };
        }
    }

    extern "sysv64" fn duo_b(arg: usize) -> ! {
        let d = arg as *mut Duo;
        loop {
            // SAFETY: as in `duo_a`, with B's context.
            let (w, w2) = unsafe { suspend(&raw mut (*d).b) };
            if w != 0 {
                assert_eq!(w2, 9, "both hand-off words arrive");
            }
            // SAFETY: as in `duo_a`.
            unsafe { (*d).log.push(('B', w)) };
        }
    }

    #[test]
    fn switch_task_hands_the_resumer_over_and_either_suspension_resumes_either_way() {
        let (sa, sb) = (
            MmapStack::new(64 * 1024).unwrap(),
            MmapStack::new(64 * 1024).unwrap(),
        );
        let mut d = std::boxed::Box::new(Duo {
            a: TaskContext::new(),
            b: TaskContext::new(),
            log: std::vec::Vec::new(),
        });
        let arg = &raw mut *d as usize;
        // SAFETY: both stacks outlive the test's resumes; the tasks never exit.
        unsafe {
            d.a = init_task(sa.top(), duo_a, arg);
            d.b = init_task(sb.top(), duo_b, arg);
        }
        let live = 0x5EED_u64.wrapping_mul(std::hint::black_box(11));
        // SAFETY: B is fresh on its live stack; it suspends at once (a saved context for A's
        // switch_task); only this thread resumes either task.
        unsafe { resume(&raw mut d.b) };
        for _ in 0..100 {
            // SAFETY: A is fresh or suspended by its switch_task; it hands this resume over to
            // B, whose suspend comes back here.
            unsafe { resume(&raw mut d.a) };
            // SAFETY: B was suspended by its own `suspend` (after the hand-off).
            unsafe { resume(&raw mut d.b) };
        }
        let mut expect = std::vec::Vec::new();
        for i in 0..100 {
            if i > 0 {
                expect.push(('A', 0));
            }
            expect.push(('B', 7));
            expect.push(('B', 0));
        }
        assert_eq!(d.log, expect);
        assert_eq!(live, 0x5EED_u64 * 11, "the resumer's registers survive");
    }

    // --- symmetric and preemptive switches ---

    struct Pair {
        main: Context,
        task: Context,
        seen: usize,
        rsp_mod16_at_entry: usize,
        kind: SwitchKind,
        task_mxcsr: u32,
    }

    fn switch_kind(kind: SwitchKind, from: *mut Context, to: *const Context) {
        // SAFETY: callers pass contexts prepared for `kind` (init_stack with the same kind, or
        // suspended by the same switch) on live stacks.
        unsafe {
            match kind {
                SwitchKind::Cooperative => switch(from, to),
                SwitchKind::PreemptFxsave => switch_preempt(from, to),
                SwitchKind::PreemptXsave { area_bytes } => {
                    switch_preempt_xsave(from, to, area_bytes)
                }
            }
        }
    }

    fn back(p: &mut Pair) {
        switch_kind(p.kind, &raw mut p.task, &raw const p.main);
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
            p.task_mxcsr = mxcsr();
            back(p);
        }
    }

    fn run(
        entry: extern "sysv64" fn(usize) -> !,
        kind: SwitchKind,
        rounds: usize,
        mut before_each: impl FnMut(),
    ) -> Pair {
        let stack = MmapStack::new(64 * 1024).unwrap();
        let mut p = Pair {
            main: Context::new(),
            task: Context::new(),
            seen: 0,
            rsp_mod16_at_entry: 99,
            kind,
            task_mxcsr: 0,
        };
        // SAFETY: the stack is alive until the end of this function and 64 KiB covers
        // `kind.init_bytes()`; the entry functions loop forever.
        p.task = unsafe { init_stack(stack.top(), entry, &raw mut p as usize, kind) };
        for _ in 0..rounds {
            before_each();
            switch_kind(kind, &raw mut p.main, &raw const p.task);
        }
        p
    }

    #[test]
    fn ping_pong_resumes_each_side_where_it_left() {
        let p = run(counter, SwitchKind::Cooperative, 10_000, || {});
        assert_eq!(p.seen, 10_000);
        assert_eq!(
            p.rsp_mod16_at_entry, 8,
            "calls made on the new stack see the ABI's alignment"
        );
        let mut acc = 0u64;
        let p = run(counter, SwitchKind::Cooperative, 1000, || {
            acc = acc.wrapping_mul(31).wrapping_add(7)
        });
        let mut expect = 0u64;
        for _ in 0..1000 {
            expect = expect.wrapping_mul(31).wrapping_add(7);
        }
        assert_eq!((acc, p.seen), (expect, 1000));
    }

    fn fpu_state_is_per_context(kind: SwitchKind) {
        let saved = mxcsr();
        // Round toward zero in the main context only (RC bits 13-14 = 11).
        let ours = saved | (3 << 13);
        let p = run(mxcsr_reader, kind, 100, || set_mxcsr(ours));
        let now = mxcsr();
        set_mxcsr(saved);
        assert_eq!(
            p.task_mxcsr, 0x1F80,
            "the task runs with its own (default) MXCSR"
        );
        assert_eq!(now, ours, "the main context got its rounding mode back");
    }

    #[test]
    fn preemptive_switch_keeps_each_contexts_fpu_state() {
        fpu_state_is_per_context(SwitchKind::PreemptFxsave);
    }

    /// Fills `bytes` of the stack below the caller with 0xFF, so a switch made next finds
    /// garbage where it builds its save area.
    #[inline(never)]
    fn dirty_stack(bytes: usize) {
        let mut buf = [0xFFu8; 16 * 1024];
        let n = bytes.min(buf.len());
        std::hint::black_box(&mut buf[..n]);
    }

    #[test]
    fn xsave_switch_survives_a_dirty_stack() {
        let Some(area_bytes) = xsave_area_bytes() else {
            assert!(
                std::env::var("MANYCORE_REQUIRE_XSAVE").as_deref() != Ok("1"),
                "MANYCORE_REQUIRE_XSAVE=1 but this CPU/OS has no XSAVE"
            );
            std::eprintln!("skipping: this CPU or OS has not enabled XSAVE");
            return;
        };
        // Each round dirties the main stack where the next save area goes; an XRSTOR of a
        // header with garbage in XCOMP_BV or the reserved bytes would fault (SIGSEGV).
        let p = run(
            counter,
            SwitchKind::PreemptXsave { area_bytes },
            200,
            || dirty_stack(16 * 1024),
        );
        assert_eq!(p.seen, 200);
    }

    #[test]
    fn xsave_switch_keeps_each_contexts_fpu_state() {
        match xsave_area_bytes() {
            Some(area_bytes) => {
                assert_eq!(area_bytes % 64, 0);
                fpu_state_is_per_context(SwitchKind::PreemptXsave { area_bytes });
                let p = run(
                    counter,
                    SwitchKind::PreemptXsave { area_bytes },
                    1000,
                    || {},
                );
                assert_eq!((p.seen, p.rsp_mod16_at_entry), (1000, 8));
            }
            None => {
                assert!(
                    std::env::var("MANYCORE_REQUIRE_XSAVE").as_deref() != Ok("1"),
                    "MANYCORE_REQUIRE_XSAVE=1 but this CPU/OS has no XSAVE"
                );
                std::eprintln!("skipping: this CPU or OS has not enabled XSAVE");
            }
        }
    }
}
