//! Everything x86_64-specific: the PVH entry, descriptor tables, trap stubs, CPU instructions, port
//! I/O, the local APIC, the AP trampoline and the context switch. The rest of the kernel talks to
//! the machine only through these modules.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod pic;
pub mod port;
pub mod smp;
pub mod switch;
pub mod trap;
