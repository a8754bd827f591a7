//! The exported C allocation functions, with glibc's semantics (see the crate doc).
//!
//! Sizes are turned into a request to `NumaSlab` with alignment 8 and the size rounded up to
//! a multiple of 16 above 8 bytes: manycore-alloc's classes up to 128 bytes are every multiple
//! of 8 and those above are multiples of 16, so a multiple-of-16 request lands in a class whose
//! blocks (at `slab start + i * class`, slabs page-aligned) are all 16-byte aligned, while the
//! request stays on the allocator's alignment-8 fast path.
//!
//! The functions are exported (`no_mangle`) only outside `cfg(test)`, so this crate's unit
//! tests do not replace their own process's allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};
use core::ptr;

use crate::SLAB;

/// glibc's `MALLOC_ALIGNMENT` on x86_64 and aarch64: every block above 8 bytes is aligned to it.
pub const MIN_ALIGN_BYTES: usize = 16;
/// Requests above this fail with `ENOMEM` before any arithmetic (keeps every rounding below
/// `isize::MAX`, which `Layout` requires).
pub const REQUEST_MAX_BYTES: usize = isize::MAX as usize / 2;
/// A `realloc` that at least halves a block larger than this (a large object: manycore-alloc's
/// biggest size class is 32 KiB) moves it, so the pages past the new size are released.
pub const SHRINK_MOVES_ABOVE_BYTES: usize = 32 * 1024;
/// The page size `valloc` and `pvalloc` align to (manycore-alloc assumes 4 KiB pages).
pub const PAGE_BYTES: usize = 4096;

/// The size handed to the allocator for a `malloc`-style request of `size` bytes: at least 1,
/// a multiple of [`MIN_ALIGN_BYTES`] above 8. `None` when too large.
#[inline(always)]
pub fn request_bytes(size: usize) -> Option<usize> {
    if size <= 8 {
        Some(size.max(1))
    } else if size <= REQUEST_MAX_BYTES {
        Some((size + (MIN_ALIGN_BYTES - 1)) & !(MIN_ALIGN_BYTES - 1))
    } else {
        None
    }
}

/// The layout for an aligned request: alignment raised to at least [`MIN_ALIGN_BYTES`], size at
/// least 1. `None` when too large.
pub fn aligned_layout(align: usize, size: usize) -> Option<Layout> {
    if size > REQUEST_MAX_BYTES || !align.is_power_of_two() {
        return None;
    }
    Layout::from_size_align(size.max(1), align.max(MIN_ALIGN_BYTES)).ok()
}

fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e };
}

#[cold]
fn out_of_memory() -> *mut c_void {
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// `malloc`.
#[inline(always)]
pub fn do_malloc(size: usize) -> *mut c_void {
    let Some(req) = request_bytes(size) else {
        return out_of_memory();
    };
    // SAFETY: `req` is in 1..=REQUEST_MAX_BYTES and a multiple of 8 or below 8, so rounding it
    // to alignment 8 cannot pass isize::MAX.
    let layout = unsafe { Layout::from_size_align_unchecked(req, 8) };
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { SLAB.alloc(layout) };
    if p.is_null() {
        return out_of_memory();
    }
    p.cast()
}

/// `free`.
///
/// # Safety
/// 1. `p` is null or a live block from this library's allocation functions.
#[inline(always)]
pub unsafe fn do_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: precondition 1, `p` not null.
    unsafe { SLAB.free(p.cast()) }
}

/// `calloc`.
pub fn do_calloc(n: usize, size: usize) -> *mut c_void {
    let Some(req) = n.checked_mul(size).and_then(request_bytes) else {
        return out_of_memory();
    };
    // SAFETY: as in `do_malloc`.
    let layout = unsafe { Layout::from_size_align_unchecked(req, 8) };
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { SLAB.alloc_zeroed(layout) };
    if p.is_null() {
        return out_of_memory();
    }
    p.cast()
}

/// `realloc`.
///
/// # Safety
/// 1. `p` is null or a live block from this library's allocation functions.
pub unsafe fn do_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return do_malloc(size);
    }
    if size == 0 {
        // glibc (REALLOC_ZERO_BYTES_FREES): free and return null, errno untouched.
        // SAFETY: precondition 1.
        unsafe { do_free(p) };
        return ptr::null_mut();
    }
    let Some(req) = request_bytes(size) else {
        return out_of_memory();
    };
    // SAFETY: precondition 1: a live block of this allocator.
    let old = unsafe { SLAB.usable_size(p.cast()) };
    if old > SHRINK_MOVES_ABOVE_BYTES && req <= old / 2 {
        // The allocator would keep a large object's whole mapping when it shrinks in place;
        // moving gives the tail back (glibc shrinks such chunks too).
        let q = do_malloc(size);
        if !q.is_null() {
            // SAFETY: distinct live blocks; `size < old` bytes are readable at `p` and
            // writable at `q`; precondition 1 for the free.
            unsafe {
                ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), size);
                do_free(p);
            }
        }
        return q;
    }
    // SAFETY: `old` is the block's usable size, at most REQUEST_MAX_BYTES plus a page of
    // rounding, and 8 divides it (class sizes, page multiples).
    let layout = unsafe { Layout::from_size_align_unchecked(old, 8) };
    // SAFETY: precondition 1; `p` spans `old` bytes (its usable size, which `NumaSlab` only
    // uses as the byte count to copy); `req` is non-zero and below isize::MAX.
    let q = unsafe { SLAB.realloc(p.cast(), layout, req) };
    if q.is_null() {
        return out_of_memory();
    }
    q.cast()
}

/// An aligned allocation (`align` a power of two); null without touching errno on failure.
fn aligned(align: usize, size: usize) -> *mut c_void {
    let Some(layout) = aligned_layout(align, size) else {
        return ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size.
    unsafe { SLAB.alloc(layout) }.cast()
}

/// `posix_memalign`: 0, `EINVAL` or `ENOMEM`; `*out` is written only on success.
///
/// # Safety
/// 1. `out` is valid for a pointer-sized write.
pub unsafe fn do_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = aligned(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: precondition 1.
    unsafe { *out = p };
    0
}

/// `aligned_alloc`: `EINVAL` for an alignment that is not a power of two (C17; glibc 2.38).
pub fn do_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let p = aligned(align, size);
    if p.is_null() {
        return out_of_memory();
    }
    p
}

/// `memalign`: a non-power-of-two alignment is rounded up to the next power of two (glibc);
/// one above `SIZE_MAX / 2 + 1` is `EINVAL`.
pub fn do_memalign(align: usize, size: usize) -> *mut c_void {
    let Some(align) = align.checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    let p = aligned(align, size);
    if p.is_null() {
        return out_of_memory();
    }
    p
}

/// `pvalloc`: the size rounded up to whole pages (one page for 0), page-aligned.
pub fn do_pvalloc(size: usize) -> *mut c_void {
    let Some(pages) = size.max(1).checked_next_multiple_of(PAGE_BYTES) else {
        return out_of_memory();
    };
    do_memalign(PAGE_BYTES, pages)
}

/// `malloc_usable_size`: 0 for null.
///
/// # Safety
/// 1. `p` is null or a live block from this library's allocation functions.
pub unsafe fn do_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: precondition 1, `p` not null.
    unsafe { SLAB.usable_size(p.cast()) }
}

/// The C symbols. Each forwards to the `do_*` function above; the `# Safety` of each is the C
/// contract of the function it replaces.
#[cfg(not(test))]
mod exports {
    use core::ffi::{c_int, c_void};

    use super::*;

    /// C `malloc`.
    #[unsafe(no_mangle)]
    pub extern "C" fn malloc(size: usize) -> *mut c_void {
        do_malloc(size)
    }

    /// C `free`.
    ///
    /// # Safety
    /// 1. `p` is null or a live block from this library.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: precondition 1.
        unsafe { do_free(p) }
    }

    /// C `cfree` (old glibc alias of `free`).
    ///
    /// # Safety
    /// 1. As for [`free`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cfree(p: *mut c_void) {
        // SAFETY: precondition 1.
        unsafe { do_free(p) }
    }

    /// C `calloc`.
    #[unsafe(no_mangle)]
    pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
        do_calloc(n, size)
    }

    /// C `realloc`.
    ///
    /// # Safety
    /// 1. `p` is null or a live block from this library.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: precondition 1.
        unsafe { do_realloc(p, size) }
    }

    /// C `reallocarray`: `realloc(p, n * size)` with the product checked (`ENOMEM`).
    ///
    /// # Safety
    /// 1. `p` is null or a live block from this library.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
        match n.checked_mul(size) {
            // SAFETY: precondition 1.
            Some(total) => unsafe { do_realloc(p, total) },
            None => out_of_memory(),
        }
    }

    /// C `posix_memalign`.
    ///
    /// # Safety
    /// 1. `out` is valid for a pointer-sized write.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn posix_memalign(
        out: *mut *mut c_void,
        align: usize,
        size: usize,
    ) -> c_int {
        // SAFETY: precondition 1.
        unsafe { do_posix_memalign(out, align, size) }
    }

    /// C `aligned_alloc`.
    #[unsafe(no_mangle)]
    pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
        do_aligned_alloc(align, size)
    }

    /// C `memalign`.
    #[unsafe(no_mangle)]
    pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
        do_memalign(align, size)
    }

    /// C `valloc`: page-aligned.
    #[unsafe(no_mangle)]
    pub extern "C" fn valloc(size: usize) -> *mut c_void {
        do_memalign(PAGE_BYTES, size)
    }

    /// C `pvalloc`: whole pages, page-aligned.
    #[unsafe(no_mangle)]
    pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
        do_pvalloc(size)
    }

    /// C `malloc_usable_size`.
    ///
    /// # Safety
    /// 1. `p` is null or a live block from this library.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
        // SAFETY: precondition 1.
        unsafe { do_usable_size(p) }
    }

    /// glibc's `malloc_trim`: flushes the calling thread's cache and returns spare pages;
    /// always reports 1 (memory may have been released). `pad` is ignored.
    #[unsafe(no_mangle)]
    pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
        SLAB.trim();
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_above_eight_bytes_are_multiples_of_sixteen() {
        for size in 9..=4096 {
            let r = request_bytes(size).unwrap();
            assert!(r >= size && r % MIN_ALIGN_BYTES == 0 && r - size < MIN_ALIGN_BYTES);
        }
        assert_eq!(request_bytes(0), Some(1));
        assert_eq!(request_bytes(8), Some(8));
        assert_eq!(request_bytes(REQUEST_MAX_BYTES + 1), None);
        assert_eq!(request_bytes(usize::MAX), None);
    }

    #[test]
    fn aligned_layout_rejects_bad_alignments_and_huge_sizes() {
        assert!(aligned_layout(3, 10).is_none());
        assert!(aligned_layout(0, 10).is_none());
        assert!(aligned_layout(64, usize::MAX).is_none());
        let l = aligned_layout(4, 0).unwrap();
        assert_eq!((l.size(), l.align()), (1, MIN_ALIGN_BYTES));
        assert_eq!(aligned_layout(1 << 20, 5).unwrap().align(), 1 << 20);
    }
}
