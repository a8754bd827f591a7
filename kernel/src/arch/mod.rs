//! Everything x86_64-specific: the PVH entry, descriptor tables, trap stubs, CPU instructions, port
//! I/O, the local APIC and the AP trampoline (the context switch is manycore-sched's `arch`). The rest of the kernel talks to
//! the machine only through these modules.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod pic;
pub mod port;
pub mod smp;
pub mod trap;
