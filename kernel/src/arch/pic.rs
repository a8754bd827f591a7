//! The legacy 8259 PICs: remapped away from the exception vectors and fully masked.
//!
//! The BIOS leaves the master PIC on vectors 8-15, so the PIT's IRQ 0 would arrive as vector 8 and
//! look like a double fault the first time a CPU enables interrupts. The kernel uses only the local
//! APICs, so both PICs are remapped to [`PIC_VECTOR_BASE`]..+16 and every line is masked; a
//! spurious IRQ 7 or 15 that still arrives lands on a vector with a no-op handler.

use crate::arch::port;

/// First vector of the remapped master PIC (slave follows at +8).
pub const PIC_VECTOR_BASE: u8 = 0x30;

/// Remaps both PICs to [`PIC_VECTOR_BASE`] and masks all lines (BSP, once, interrupts off).
pub fn remap_and_mask() {
    // ICW1: init, expect ICW4.
    port::outb(0x20, 0x11);
    port::outb(0xA0, 0x11);
    // ICW2: vector offsets.
    port::outb(0x21, PIC_VECTOR_BASE);
    port::outb(0xA1, PIC_VECTOR_BASE + 8);
    // ICW3: slave on IRQ 2.
    port::outb(0x21, 0x04);
    port::outb(0xA1, 0x02);
    // ICW4: 8086 mode.
    port::outb(0x21, 0x01);
    port::outb(0xA1, 0x01);
    // Mask everything.
    port::outb(0x21, 0xFF);
    port::outb(0xA1, 0xFF);
}
