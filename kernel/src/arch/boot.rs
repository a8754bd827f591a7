//! The PVH entry: from QEMU's 32-bit protected-mode hand-off to Rust in long mode.
//!
//! QEMU's `-kernel` loads an ELF that carries a `XEN_ELFNOTE_PHYS32_ENTRY` note (type 18, owner
//! "Xen") through its PVH option ROM, and jumps to the note's address in 32-bit protected mode with
//! paging off, flat segments, interrupts off and `ebx` holding the physical address of the
//! `hvm_start_info` structure (see [`crate::pvh`]). There is no usable stack.
//!
//! Step by step, `pvh_start32`:
//! 1. saves `ebx` in `esi`, takes the boot stack, zeroes `.bss` (QEMU zero-fills it too, but the
//!    image should not depend on the loader for that);
//! 2. checks CPUID for long mode (no long mode: `isa-debug-exit` with the failure code);
//! 3. builds an identity map of the first 4 GiB with 2 MiB pages (one PML4 entry, four PDPT entries,
//!    four page directories) so RAM, the LAPIC and the I/O APIC are all reachable;
//!    [`crate::mem::paging`] extends it later when the firmware reports RAM above 4 GiB;
//! 4. enables PAE, loads CR3, sets EFER.LME, enables paging, loads a three-entry GDT and far-jumps
//!    to 64-bit code;
//! 5. reloads the data segments and calls `kernel_main_bsp(start_info_paddr)`.
//!
//! The page tables and the boot stack are exported (`boot_pml4`, `boot_pdpt`, `boot_pd`,
//! `boot_stack_top`) so Rust can extend the map and the AP trampoline can reuse CR3.

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4                      /* namesz: "Xen\0" */
    .long 8                      /* descsz: a 64-bit physical entry address */
    .long 18                     /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi
    movl $boot_stack_top, %esp

    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb 9f
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc 9f

    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jb 1b

    xorl %ecx, %ecx
2:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_pd(,%ecx,8)
    movl %ecx, %edx
    shrl $11, %edx
    movl %edx, boot_pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $3f

9:
    movw $0xf4, %dx
    movl $0x11, %eax
    outl %eax, %dx
8:
    hlt
    jmp 8b

    .code64
3:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    movl %esi, %edi
    xorl %ebp, %ebp
    call kernel_main_bsp
4:
    hlt
    jmp 4b

    .section .rodata.boot_gdt, "a"
    .p2align 3
    .global boot_gdt
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_end:
    .p2align 3
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot_tables, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:
    .skip 4096
    .global boot_pdpt
boot_pdpt:
    .skip 4096
    .global boot_pd
boot_pd:
    .skip 4096 * 4
    .p2align 4
boot_stack:
    .skip 131072
    .global boot_stack_top
boot_stack_top:
"#,
    options(att_syntax)
);
