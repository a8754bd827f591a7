//! Application-processor bring-up: a real-mode trampoline copied below 1 MiB, then
//! INIT-SIPI-SIPI for each AP in turn.
//!
//! # The protocol, step by step
//! 1. The BSP copies `ap_tramp_start..ap_tramp_end` to [`TRAMPOLINE_PADDR`] (page 8, inside the
//!    first MiB that the frame pools never hand out) and fills its parameter block: CR3 (the
//!    kernel's identity map), the Rust entry point.
//! 2. For each AP it writes the AP's stack top and per-CPU block into the parameter block, sends
//!    INIT, waits 10 ms, sends STARTUP twice (200 µs apart), and waits (bounded) for the AP to
//!    mark itself online. APs start one at a time, so one parameter block suffices.
//! 3. The AP runs the trampoline: real mode → loads the trampoline GDT → 32-bit protected mode →
//!    PAE, CR3, EFER.LME, paging → 64-bit mode → stack from the block → calls the entry with the
//!    per-CPU block pointer.
//!
//! The trampoline is position-dependent on purpose: every address in it is computed as
//! `label - ap_tramp_start + 0x8000`, so it only runs at [`TRAMPOLINE_PADDR`].

use core::sync::atomic::{AtomicU64, Ordering};

/// Where the trampoline runs (SIPI vector 0x08).
pub const TRAMPOLINE_PADDR: u64 = 0x8000;

core::arch::global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .p2align 12
    .global ap_tramp_start
    .code16
ap_tramp_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (ap_tramp_gdt_ptr - ap_tramp_start + 0x8000)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x18, $(ap_tramp_32 - ap_tramp_start + 0x8000)

    .code32
ap_tramp_32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (ap_tramp_cr3 - ap_tramp_start + 0x8000), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(ap_tramp_64 - ap_tramp_start + 0x8000)

    .code64
ap_tramp_64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq (ap_tramp_stack - ap_tramp_start + 0x8000), %rsp
    movq (ap_tramp_arg - ap_tramp_start + 0x8000), %rdi
    movq (ap_tramp_entry - ap_tramp_start + 0x8000), %rax
    xorl %ebp, %ebp
    callq *%rax
1:
    cli
    hlt
    jmp 1b

    .p2align 3
ap_tramp_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00CF9A000000FFFF
ap_tramp_gdt_ptr:
    .word 31
    .long ap_tramp_gdt - ap_tramp_start + 0x8000
    .p2align 3
    .global ap_tramp_cr3
ap_tramp_cr3:
    .quad 0
    .global ap_tramp_stack
ap_tramp_stack:
    .quad 0
    .global ap_tramp_entry
ap_tramp_entry:
    .quad 0
    .global ap_tramp_arg
ap_tramp_arg:
    .quad 0
    .global ap_tramp_end
ap_tramp_end:
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
    static ap_tramp_cr3: u8;
    static ap_tramp_stack: u8;
    static ap_tramp_entry: u8;
    static ap_tramp_arg: u8;
}

/// Offset of a trampoline symbol from its start.
fn offset_of(sym: *const u8) -> u64 {
    // SAFETY: only the address of the assembly label is taken.
    let start = unsafe { &ap_tramp_start as *const u8 };
    sym as u64 - start as u64
}

/// Copies the trampoline to [`TRAMPOLINE_PADDR`] and sets CR3 and the entry point.
///
/// # Safety
/// 1. Physical memory `0x8000..0x9000` is RAM owned by the kernel (never in a frame pool) and no AP
///    is executing there.
pub unsafe fn install_trampoline(entry: extern "C" fn(u64) -> !) {
    // SAFETY: the labels bracket the trampoline in this image.
    let (start, end) = unsafe { (&ap_tramp_start as *const u8, &ap_tramp_end as *const u8) };
    let len = end as usize - start as usize;
    assert!(len <= 4096, "the AP trampoline must fit in one page");
    let cr3: u64;
    // SAFETY: reads CR3.
    unsafe {
        core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags))
    };
    assert!(
        cr3 < 1 << 32,
        "the trampoline loads CR3 in 32-bit mode: page tables must sit below 4 GiB"
    );
    // SAFETY: precondition 1; the source is the trampoline's bytes in this image.
    unsafe {
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE_PADDR as *mut u8, len);
        write_param(&ap_tramp_cr3, cr3);
        write_param(&ap_tramp_entry, entry as usize as u64);
    }
}

/// Writes one 64-bit parameter in the installed trampoline's block.
///
/// # Safety
/// 1. The trampoline is installed and no AP is reading the block.
unsafe fn write_param(sym: &u8, value: u64) {
    let at = TRAMPOLINE_PADDR + offset_of(sym);
    // SAFETY: precondition 1; the parameter is 8-byte aligned inside the copied page.
    unsafe {
        (at as *mut AtomicU64)
            .as_ref()
            .expect("non-null")
            .store(value, Ordering::Release)
    };
}

/// Sets the stack and argument the next AP starts with.
///
/// # Safety
/// 1. The trampoline is installed and no AP is between STARTUP and being online.
pub unsafe fn set_next_ap(stack_top: u64, arg: u64) {
    // SAFETY: precondition 1.
    unsafe {
        write_param(&ap_tramp_stack, stack_top);
        write_param(&ap_tramp_arg, arg);
    }
}
