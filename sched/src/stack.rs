//! Stacks for stackful tasks: `mmap`ed with a guard page at the low end, so an overflow faults
//! instead of corrupting the neighbouring memory, and pooled so spawning reuses warm stacks.
//!
//! The fault itself is reported by the runtime's SIGSEGV handler, which looks the faulting
//! address up in the guard ranges of live stacks and names the task (see `rt`).

use std::io;
use std::sync::Mutex;
use std::vec::Vec;

/// Bytes in a page (x86_64 base pages).
pub const PAGE_BYTES: usize = 4096;
/// Default usable stack size.
pub const STACK_BYTES_DEFAULT: usize = 256 * 1024;

/// One stack: `[base, base + guard)` is the PROT_NONE guard page, `[base + guard, base + len)`
/// is usable; the stack grows down from `top()`.
#[derive(Debug)]
pub struct Stack {
    base: *mut u8,
    len: usize,
}

// SAFETY: a Stack owns its mapping exclusively; moving it to another thread moves that
// ownership, and nothing in it is thread-bound.
unsafe impl Send for Stack {}

impl Stack {
    /// Maps a stack with `usable_bytes` (rounded up to pages) plus one guard page.
    pub fn new(usable_bytes: usize) -> io::Result<Stack> {
        let usable = usable_bytes.max(PAGE_BYTES).div_ceil(PAGE_BYTES) * PAGE_BYTES;
        let len = usable + PAGE_BYTES;
        // SAFETY: an anonymous private mapping at a kernel-chosen address aliases nothing.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the first page lies inside the mapping just created.
        if unsafe { libc::mprotect(base, PAGE_BYTES, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the mapping we own and never shared.
            unsafe { libc::munmap(base, len) };
            return Err(e);
        }
        Ok(Stack {
            base: base.cast(),
            len,
        })
    }

    /// One past the highest usable byte (stacks grow down from here).
    pub fn top(&self) -> *mut u8 {
        self.base.wrapping_add(self.len)
    }

    /// Usable bytes.
    pub fn usable_bytes(&self) -> usize {
        self.len - PAGE_BYTES
    }

    /// The guard page's address range.
    pub fn guard(&self) -> core::ops::Range<usize> {
        self.base as usize..self.base as usize + PAGE_BYTES
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe the mapping this Stack owns; nothing runs on it (the
        // owner drops a stack only after its task finished).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A pool of same-size stacks, bounded so a burst of spawns does not keep memory forever.
pub struct StackPool {
    stack_bytes: usize,
    cached_max: usize,
    free: Mutex<Vec<Stack>>,
}

impl StackPool {
    /// A pool of `stack_bytes` stacks keeping at most `cached_max` free ones.
    pub fn new(stack_bytes: usize, cached_max: usize) -> StackPool {
        StackPool {
            stack_bytes,
            cached_max,
            free: Mutex::new(Vec::new()),
        }
    }

    /// A stack from the pool, or a new one.
    pub fn get(&self) -> io::Result<Stack> {
        if let Some(s) = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(s);
        }
        Stack::new(self.stack_bytes)
    }

    /// Returns a stack to the pool (or unmaps it when the pool is full).
    pub fn put(&self, stack: Stack) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.cached_max && stack.usable_bytes() >= self.stack_bytes {
            free.push(stack);
        }
    }

    /// Free stacks held.
    pub fn cached(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
