//! Platform backends. Only Linux (the `std` feature) exists; a kernel supplies its own
//! [`PageSource`](crate::PageSource) and [`CpuLocal`](crate::percpu::CpuLocal).

/// Writes `message` and a newline to stderr without allocating, then aborts.
pub(crate) fn report_and_abort(message: &str) -> ! {
    // SAFETY: write(2) on fd 2 with a valid buffer and length; abort has no preconditions.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
        libc::abort()
    }
}

#[cfg(not(loom))]
pub mod linux;
