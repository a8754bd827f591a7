//! Port I/O for the legacy devices the kernel owns (COM1, the 8259 PICs, the PIT, isa-debug-exit).
//!
//! Known compromise: these wrappers are safe functions although port I/O can in general do
//! anything to the machine. The kernel is the only software on the machine, runs in ring 0, and
//! every caller names a fixed port of a device this kernel drives, so the checks an `unsafe fn`
//! would ask for live at those few call sites' constants.

/// Reads a byte from `port`.
#[inline]
pub fn inb(port: u16) -> u8 {
    // SAFETY: see the module doc: only fixed ports of devices the kernel owns are read.
    unsafe { x86::io::inb(port) }
}

/// Writes a byte to `port`.
#[inline]
pub fn outb(port: u16, value: u8) {
    // SAFETY: see the module doc: only fixed ports of devices the kernel owns are written.
    unsafe { x86::io::outb(port, value) }
}

/// Writes a 32-bit word to `port`.
#[inline]
pub fn outl(port: u16, value: u32) {
    // SAFETY: see the module doc: only fixed ports of devices the kernel owns are written.
    unsafe { x86::io::outl(port, value) }
}
