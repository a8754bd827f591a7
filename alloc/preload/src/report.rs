//! Messages on stderr without allocating: formatted into a stack buffer, written with
//! `write(2)` one line at a time.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, Ordering};

use manycore_alloc::NodeStats;

/// The descriptor lines go to: stderr, or a duplicate of it made at load by [`keep_stderr`].
static REPORT_FD: AtomicI32 = AtomicI32::new(2);

/// Duplicates stderr (close-on-exec) for the exit report: programs such as coreutils close
/// stderr in their own exit handlers, before the report is written. Keeps stderr when the
/// duplicate cannot be made.
pub fn keep_stderr() {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor number; a failure returns -1.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    if fd >= 0 {
        REPORT_FD.store(fd, Ordering::Relaxed);
    }
}

/// Bytes of one line; longer lines are cut (never split across writes).
pub const LINE_BYTES_MAX: usize = 256;

/// A line being formatted on the stack.
pub struct Line {
    buf: [u8; LINE_BYTES_MAX],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; LINE_BYTES_MAX],
            len: 0,
        }
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends raw bytes (cut at the line bound).
    pub fn push_bytes(&mut self, b: &[u8]) {
        let n = b.len().min(LINE_BYTES_MAX - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    /// Writes the line and a newline to stderr (see [`keep_stderr`]), then empties it.
    pub fn emit(&mut self) {
        self.buf[self.len] = b'\n';
        let fd = REPORT_FD.load(Ordering::Relaxed);
        // SAFETY: write(2) with a live buffer of `len + 1` bytes (a bad descriptor only fails).
        unsafe { libc::write(fd, self.buf.as_ptr().cast(), self.len + 1) };
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_bytes(s.as_bytes());
        Ok(())
    }
}

/// Formats and writes one line to stderr.
pub fn line(args: fmt::Arguments<'_>) {
    let mut l = Line::new();
    let _ = l.write_fmt(args);
    l.emit();
}

/// `bytes` in a short human form (B, KiB, MiB, GiB with one decimal).
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        let (unit, shift) = match b {
            0..0x400 => return write!(f, "{b} B"),
            0x400..0x10_0000 => ("KiB", 10),
            0x10_0000..0x4000_0000 => ("MiB", 20),
            _ => ("GiB", 30),
        };
        let tenths = (b * 10) >> shift;
        write!(f, "{}.{} {unit}", tenths / 10, tenths % 10)
    }
}

/// Writes node `s`'s totals and every size class that saw an allocation.
pub fn node_stats(s: &NodeStats) {
    line(format_args!(
        "manycore-malloc: node {}: pages held {}, small allocs {} frees {}, in use {} \
         (small + large), large allocs {} frees {}, remote frees received {}",
        s.node,
        Bytes(s.pages_held_bytes),
        s.allocs(),
        s.frees(),
        Bytes(s.bytes_in_use()),
        s.large_allocs,
        s.large_frees,
        s.remote_received,
    ));
    line(format_args!(
        "manycore-malloc:   {:>7} {:>12} {:>12} {:>10} {:>12}",
        "class", "allocs", "frees", "remote", "in use"
    ));
    for c in s.classes.iter().filter(|c| c.allocs != 0) {
        line(format_args!(
            "manycore-malloc:   {:>7} {:>12} {:>12} {:>10} {:>12}",
            c.block_bytes,
            c.allocs,
            c.frees,
            c.remote_frees,
            Bytes(c.bytes_in_use()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_print_in_the_largest_fitting_unit() {
        let f = |b| std::format!("{}", Bytes(b));
        assert_eq!(f(0), "0 B");
        assert_eq!(f(1023), "1023 B");
        assert_eq!(f(1536), "1.5 KiB");
        assert_eq!(f(5 << 20), "5.0 MiB");
        assert_eq!(f(3 << 30), "3.0 GiB");
    }

    #[test]
    fn overlong_lines_are_cut_not_overflowed() {
        let mut l = Line::new();
        for _ in 0..100 {
            l.push_bytes(b"0123456789");
        }
        assert_eq!(l.as_bytes().len(), LINE_BYTES_MAX - 1);
    }
}
