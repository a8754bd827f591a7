//! The platform seam for memory: where pages come from.
//!
//! The kernel implements [`PageSource`] with per-node frame pools; user space uses
//! `sys::linux::LinuxPageSource` (`mmap` + `mbind` before first touch); tests use
//! [`SystemPageSource`], which takes pages from the system allocator and remembers which node
//! each request named, so fake multi-node machines run anywhere (including under Miri).

use core::ptr::NonNull;

use crate::node_map::{DiscoveryError, NodeMap};

/// What a placement check found for a range of pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// Pages whose node was queried.
    pub pages_checked: usize,
    /// Resident pages found on a node other than the requested one.
    pub pages_off_node: usize,
    /// Pages not resident (never touched, or swapped out): they have no node yet.
    pub pages_absent: usize,
}

/// Pages on NUMA nodes.
///
/// # Safety
/// Implementors promise:
/// 1. `alloc_pages` returns either `None` or a pointer to `bytes` bytes of readable and writable
///    memory aligned to `align_bytes`, owned by the caller until it passes the same
///    `(ptr, bytes, os_node)` to `free_pages`. The memory need not be zeroed.
/// 2. Nothing else reads or writes those bytes while the caller owns them.
/// 3. `decommit_pages` may discard the contents of the range (they read back as zero or stale
///    data) but leaves it mapped and writable.
pub unsafe trait PageSource: Sync {
    /// `bytes` (a multiple of 4096) aligned to `align_bytes` (a power of two, at least 4096),
    /// placed on OS node `os_node` as well as the platform can. `None` when memory is exhausted.
    fn alloc_pages(&self, bytes: usize, align_bytes: usize, os_node: usize) -> Option<NonNull<u8>>;

    /// Whether fresh pages from [`PageSource::alloc_pages`] always read as zero (anonymous
    /// `mmap`), so zeroed large allocations can skip clearing them. The default says no.
    fn zeroes_new_pages(&self) -> bool {
        false
    }

    /// Returns pages obtained from [`PageSource::alloc_pages`].
    ///
    /// # Safety
    /// 1. `(ptr, bytes, os_node)` are exactly those of one earlier `alloc_pages` call whose
    ///    pages have not been returned yet.
    /// 2. Nothing reads or writes the pages afterwards.
    unsafe fn free_pages(&self, ptr: NonNull<u8>, bytes: usize, os_node: usize);

    /// Tells the platform the contents of these pages are no longer needed (`madvise
    /// MADV_DONTNEED`). The default does nothing.
    ///
    /// # Safety
    /// 1. The range lies inside pages owned by the caller and holds no live data.
    unsafe fn decommit_pages(&self, ptr: NonNull<u8>, bytes: usize) {
        let _ = (ptr, bytes);
    }

    /// Fills `map` (handed in as [`NodeMap::builder`]) with the machine's CPU-to-node layout,
    /// or says why it cannot (the heap then runs as one node and reports the reason through
    /// [`Heap::map_origin`](crate::Heap::map_origin)). Must not allocate from the heap being
    /// built. The default cannot tell.
    fn discover_nodes(&self, map: &mut NodeMap) -> Result<(), DiscoveryError> {
        let _ = map;
        Err(DiscoveryError::Unsupported)
    }

    /// The OS CPU number the caller runs on, if the platform can say cheaply. Per-thread caches
    /// call it on slow paths to notice that their thread moved to another node.
    fn current_cpu(&self) -> Option<usize> {
        None
    }

    /// Where the resident pages of a range really are, compared with `os_node`. `None` when
    /// the platform cannot tell.
    fn placement(&self, ptr: NonNull<u8>, bytes: usize, os_node: usize) -> Option<Placement> {
        let _ = (ptr, bytes, os_node);
        None
    }

    /// Reports heap corruption found by the `checked` feature and stops the program. The
    /// message names the pointer. The default panics (a kernel's panic handler prints and
    /// halts); user-space sources write to stderr and abort.
    fn corruption(&self, message: &str) -> ! {
        panic!("{message}")
    }
}

#[cfg(feature = "std")]
pub use system::SystemPageSource;

#[cfg(feature = "std")]
mod system {
    use core::ptr::NonNull;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::vec::Vec;

    use super::PageSource;

    /// Pages from the system allocator, tagged with the node they were asked for.
    ///
    /// For tests and fake topologies: it places nothing, but records each request's node so a
    /// test can check that a block handed out "on node 2" lies in pages requested for node 2
    /// ([`SystemPageSource::node_of`]). A byte limit makes allocation failure testable.
    #[derive(Debug)]
    pub struct SystemPageSource {
        /// `(address, bytes, os_node, align_bytes)` of every live request. Any thread, under
        /// the mutex.
        live: Mutex<Vec<(usize, usize, usize, usize)>>,
        /// Bytes currently handed out. Any thread.
        held_bytes: AtomicUsize,
        /// Requests beyond this many held bytes fail.
        limit_bytes: usize,
    }

    impl Default for SystemPageSource {
        fn default() -> Self {
            Self::new()
        }
    }

    impl SystemPageSource {
        /// A source without a limit.
        pub const fn new() -> Self {
            Self::with_limit_bytes(usize::MAX)
        }

        /// A source that fails requests once `limit_bytes` are held.
        pub const fn with_limit_bytes(limit_bytes: usize) -> Self {
            SystemPageSource {
                live: Mutex::new(Vec::new()),
                held_bytes: AtomicUsize::new(0),
                limit_bytes,
            }
        }

        /// The OS node the pages holding `addr` were requested for.
        pub fn node_of(&self, addr: *const u8) -> Option<usize> {
            let a = addr as usize;
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.iter()
                .find(|&&(base, len, _, _)| a >= base && a < base + len)
                .map(|&(_, _, node, _)| node)
        }

        /// Bytes currently held by the allocator.
        pub fn held_bytes(&self) -> usize {
            self.held_bytes.load(Ordering::Relaxed)
        }
    }

    // SAFETY: every block comes from `System.alloc` with the requested size and alignment and is
    // returned with the same layout; the mutex-guarded list only records addresses.
    unsafe impl PageSource for SystemPageSource {
        fn alloc_pages(
            &self,
            bytes: usize,
            align_bytes: usize,
            os_node: usize,
        ) -> Option<NonNull<u8>> {
            let layout = Layout::from_size_align(bytes, align_bytes).ok()?;
            let held = self.held_bytes.fetch_add(bytes, Ordering::Relaxed);
            if held.checked_add(bytes).is_none_or(|h| h > self.limit_bytes) {
                self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                return None;
            }
            // SAFETY: `layout` has a non-zero size (the heap never asks for zero pages).
            let p = NonNull::new(unsafe { System.alloc(layout) });
            match p {
                Some(p) => {
                    let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                    live.push((p.as_ptr() as usize, bytes, os_node, align_bytes));
                }
                None => {
                    self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                }
            }
            p
        }

        unsafe fn free_pages(&self, ptr: NonNull<u8>, bytes: usize, os_node: usize) {
            let align_bytes = {
                let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                let found = live.iter().position(|&(b, l, n, _)| {
                    b == ptr.as_ptr() as usize && l == bytes && n == os_node
                });
                match found {
                    Some(i) => live.swap_remove(i).3,
                    None => {
                        drop(live);
                        self.corruption("SystemPageSource::free_pages: pages it never handed out")
                    }
                }
            };
            self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
            // SAFETY: the list entry proves the pages came from `System.alloc` with this size and
            // alignment (which `Layout::from_size_align` accepted then), and precondition 1 says
            // they are returned once.
            unsafe {
                System.dealloc(
                    ptr.as_ptr(),
                    Layout::from_size_align_unchecked(bytes, align_bytes),
                )
            };
        }

        fn corruption(&self, message: &str) -> ! {
            crate::sys::report_and_abort(message)
        }
    }
}
