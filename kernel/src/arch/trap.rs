//! Interrupt and exception entry: 256 stubs in `global_asm!` (stable Rust has no `x86-interrupt`
//! ABI), one common path that saves every general-purpose register, and a Rust dispatcher.
//!
//! # The entry path, step by step
//! 1. Stub `n` (16 bytes apart from `isr_stubs`) pushes a zero error code for vectors where the CPU
//!    pushes none, then pushes `n`, then jumps to `isr_common`.
//! 2. `isr_common` pushes the 15 GPRs (the frame is also what exception reports print), keeps the
//!    frame address in `rbx` (callee-saved, so it survives the call), aligns the stack to 16 (the
//!    SDM says the CPU aligns RSP before pushing its frame, but QEMU's TCG was seen entering with
//!    RSP ≡ 8 mod 16, so the stub does not rely on it) and calls [`trap_dispatch`] with a pointer
//!    to the [`TrapFrame`]. No FPU/SSE state is saved here: the kernel is compiled soft-float, so
//!    no handler touches it.
//! 3. The dispatcher runs the handler registered for the vector. A handler may switch to another
//!    thread (timer preemption) with manycore-sched's `switch_preempt`, which saves the
//!    callee-saved registers and the FXSAVE image on this thread's stack: only a switch pays for
//!    the FPU save. The same path unwinds when the scheduler switches back.
//! 4. Pop the GPRs, drop vector and error code, `iretq`.
//!
//! Exceptions (vectors 0-31) without a registered handler print vector, name, error code, RIP,
//! CR2 and CPU, then stop the machine with the failure code.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::gdt::{IST_FAULT, KERNEL_CODE};
use crate::exit::{ExitCode, exit};

/// Registers saved by `isr_common`, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    /// General-purpose registers as pushed by `isr_common`.
    pub rax: u64,
    /// See `rax`.
    pub rbx: u64,
    /// See `rax`.
    pub rcx: u64,
    /// See `rax`.
    pub rdx: u64,
    /// See `rax`.
    pub rsi: u64,
    /// See `rax`.
    pub rdi: u64,
    /// See `rax`.
    pub rbp: u64,
    /// See `rax`.
    pub r8: u64,
    /// See `rax`.
    pub r9: u64,
    /// See `rax`.
    pub r10: u64,
    /// See `rax`.
    pub r11: u64,
    /// See `rax`.
    pub r12: u64,
    /// See `rax`.
    pub r13: u64,
    /// See `rax`.
    pub r14: u64,
    /// See `rax`.
    pub r15: u64,
    /// Vector number pushed by the stub.
    pub vector: u64,
    /// Error code pushed by the CPU, or 0.
    pub error_code: u64,
    /// Interrupted instruction pointer (pushed by the CPU).
    pub rip: u64,
    /// Interrupted code segment.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack segment.
    pub ss: u64,
}

core::arch::global_asm!(
    r#"
    .section .text.isr, "ax"
    .p2align 4
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec != 8) && (vec != 10) && (vec != 11) && (vec != 12) && (vec != 13) && (vec != 14) && (vec != 17) && (vec != 21) && (vec != 29) && (vec != 30)
    push 0
    .endif
    push vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
    mov rbx, rsp
    and rsp, -16
    mov rdi, rbx
    cld
    call trap_dispatch
    mov rsp, rbx
    pop rax
    pop rbx
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop rbp
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    add rsp, 16
    iretq
"#
);

unsafe extern "C" {
    static isr_stubs: u8;
}

/// Distance between two stubs (each is padded to 16 bytes).
const STUB_BYTES: u64 = 16;

/// A registered handler: runs with interrupts off, on the interrupted thread's stack.
pub type Handler = fn(&mut TrapFrame);

/// Handlers by vector (`0` = none). Written by [`set_handler`] during boot, read by every CPU.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// One IDT gate.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

/// The IDT, shared by all CPUs. Filled by the BSP in [`init`] before any CPU loads it; read-only
/// afterwards.
static mut IDT: [Gate; 256] = [Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 256];

/// Builds the IDT (BSP, once, before any CPU calls [`load`]).
///
/// # Safety
/// 1. Called once, by the BSP, before any CPU has loaded the IDT.
pub unsafe fn init() {
    // SAFETY: `isr_stubs` is the assembly label above; only its address is taken.
    let base = unsafe { &isr_stubs as *const u8 as u64 };
    for v in 0..256u64 {
        let addr = base + v * STUB_BYTES;
        let ist = if v == 8 || v == 2 { IST_FAULT } else { 0 };
        let gate = Gate {
            offset_low: addr as u16,
            selector: KERNEL_CODE,
            ist,
            type_attr: 0x8E, // present, DPL 0, 64-bit interrupt gate (IF cleared on entry)
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
        // SAFETY: precondition 1: no CPU reads the IDT yet and only the BSP writes it.
        unsafe { (*core::ptr::addr_of_mut!(IDT))[v as usize] = gate };
    }
}

/// Loads the IDT on the calling CPU.
///
/// # Safety
/// 1. [`init`] has completed (on the BSP, ordered before this call).
pub unsafe fn load() {
    // SAFETY: precondition 1: the IDT is fully built and never written again, so a shared
    // reference to it is sound for the rest of the kernel's life.
    let idt = unsafe { &*core::ptr::addr_of!(IDT) };
    let ptr = x86::dtables::DescriptorTablePointer::new_from_slice(idt);
    // SAFETY: the table is 'static and every gate points at a stub in this image.
    unsafe { x86::dtables::lidt(&ptr) };
}

/// Registers `handler` for `vector` (during boot, before the vector can fire).
pub fn set_handler(vector: u8, handler: Handler) {
    HANDLERS[usize::from(vector)].store(handler as usize, Ordering::Release);
}

/// Called by `isr_common` with the saved registers.
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as usize;
    let raw = HANDLERS
        .get(vector)
        .map_or(0, |h| h.load(Ordering::Acquire));
    if raw != 0 {
        // SAFETY: only `set_handler` stores non-zero values, and it stores `Handler` pointers.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
        handler(frame);
        return;
    }
    report_and_stop(frame);
}

/// Names of the architectural exceptions.
fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        v if v < 32 => "reserved exception",
        _ => "unexpected interrupt",
    }
}

/// Prints the trap and stops the machine with the failure code.
///
/// Numbers are written by hand rather than through `core::fmt`, so a fault inside the formatter
/// (or memory corruption that broke it) still gets reported.
fn report_and_stop(frame: &TrapFrame) -> ! {
    use crate::serial::emergency_write as w;
    fn hex(v: u64) {
        let mut buf = [0u8; 18];
        buf[0] = b'0';
        buf[1] = b'x';
        for i in 0..16 {
            let nibble = ((v >> ((15 - i) * 4)) & 0xf) as u8;
            buf[2 + i] = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
        }
        crate::serial::emergency_write_bytes(&buf);
    }
    w("\nEXCEPTION vector=");
    hex(frame.vector);
    w(" (");
    w(exception_name(frame.vector));
    w(") error_code=");
    hex(frame.error_code);
    w(" rip=");
    hex(frame.rip);
    w(" rsp=");
    hex(frame.rsp);
    w(" cr2=");
    hex(super::cpu::cr2());
    w(" cpu=");
    hex(crate::percpu::current_cpu_or_boot() as u64);
    w("\n");
    exit(ExitCode::Fail)
}
