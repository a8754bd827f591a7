//! Leaving QEMU with a status: the `isa-debug-exit` device (I/O port 0xf4, 4 bytes wide).
//!
//! Writing `v` makes QEMU exit with status `(v << 1) | 1`, so [`ExitCode::Pass`] (0x10) gives 33 and
//! [`ExitCode::Fail`] (0x11) gives 35. A status of 0 therefore never means success: with
//! `-no-reboot` a triple fault also ends QEMU with 0, and `manycore boot` reports it as a crash.

use crate::arch::{cpu, port};

/// The debug-exit port QEMU is started with (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the kernel tells QEMU when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The program ran and every check passed (QEMU status 33).
    Pass = 0x10,
    /// A check failed, the kernel panicked or took an exception (QEMU status 35).
    Fail = 0x11,
}

/// Stops the machine with `code`. Without the device (a run without `isa-debug-exit`), halts.
pub fn exit(code: ExitCode) -> ! {
    port::outl(DEBUG_EXIT_PORT, code as u32);
    loop {
        cpu::interrupts_disable();
        cpu::halt();
    }
}
