//! The serial console: COM1 (I/O port 0x3f8), 115200 8N1, polled.
//!
//! Every line the kernel prints goes here; `manycore boot` reads it from QEMU's `-serial stdio`.
//! Output is serialised by one [`SpinLock`] so lines from different CPUs do not interleave; the
//! panic and exception paths use a bounded try-lock so a CPU that faults while printing still gets
//! its message out.

use core::fmt::{self, Write};

use crate::arch::port;
use crate::sync::SpinLock;

const COM1: u16 = 0x3f8;
/// Line status register bit: transmit holding register empty.
const LSR_THR_EMPTY: u8 = 0x20;
/// Bound on the wait for the transmitter (QEMU's UART is always ready; real ones drain in ~90 µs).
const TX_WAIT_SPINS_MAX: u32 = 1_000_000;
/// Bound on the panic path's wait for the console lock.
const PANIC_LOCK_SPINS_MAX: u64 = 50_000_000;

/// The UART; the lock serialises whole `print!` calls.
static CONSOLE: SpinLock<Uart> = SpinLock::new(Uart);

/// Marker for the COM1 device (all state lives in the hardware).
struct Uart;

impl Uart {
    fn put_byte(&mut self, byte: u8) {
        for _ in 0..TX_WAIT_SPINS_MAX {
            if port::inb(COM1 + 5) & LSR_THR_EMPTY != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        port::outb(COM1, byte);
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
        Ok(())
    }
}

/// Programs COM1: interrupts off, divisor 1 (115200 baud), 8N1, FIFOs on.
pub fn init() {
    port::outb(COM1 + 1, 0x00);
    port::outb(COM1 + 3, 0x80);
    port::outb(COM1, 0x01);
    port::outb(COM1 + 1, 0x00);
    port::outb(COM1 + 3, 0x03);
    port::outb(COM1 + 2, 0xC7);
    port::outb(COM1 + 4, 0x03);
}

/// Prints under the console lock (used by `kprint!`).
pub fn print(args: fmt::Arguments<'_>) {
    let mut uart = CONSOLE.lock();
    let _ = uart.write_fmt(args);
}

/// Prints from the panic/exception path: waits a bounded time for the lock, then writes anyway.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    match CONSOLE.try_lock_for(PANIC_LOCK_SPINS_MAX) {
        Some(mut uart) => {
            let _ = uart.write_fmt(args);
        }
        None => {
            let _ = Uart.write_fmt(args);
        }
    }
}

/// Writes raw bytes without locking or formatting (last-resort fault reporting).
pub fn emergency_write_bytes(bytes: &[u8]) {
    let mut uart = Uart;
    for &b in bytes {
        uart.put_byte(b);
    }
}

/// Writes a string without locking or formatting (last-resort fault reporting).
pub fn emergency_write(s: &str) {
    let _ = Uart.write_str(s);
}

/// Prints to the serial console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::serial::print(format_args!($($arg)*)) };
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::serial::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::serial::print(format_args!("{}\n", format_args!($($arg)*))) };
}
