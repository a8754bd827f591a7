//! `NumaSlab`: the user-space allocator for `#[global_allocator]`.
//!
//! ```
//! #[global_allocator]
//! static A: manycore_alloc::NumaSlab = manycore_alloc::NumaSlab::new();
//!
//! fn main() {
//!     let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
//!     assert_eq!(v.len(), 100);
//! }
//! ```
//!
//! Each thread gets a [`Cache`] on first use, bound to the node of the CPU it runs on and
//! rebound when a slow path finds it on another node. The cache lives in the heap itself; a
//! thread-local pointer (const-initialized, no destructor, so reading it never allocates)
//! finds it, and a pthread key destructor flushes and frees it when the thread exits. After
//! that, late frees and allocations from other thread-exit code go to the heap directly.
//!
//! **Mode**: caches are per thread ([`CacheMode::PerThread`]). rseq is used only to read the
//! current CPU cheaply; no restartable per-CPU critical section is implemented, so per-CPU
//! caches in user space are not claimed.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cpu_cache::Cache;
use crate::heap::Heap;
use crate::node_alloc::NodeAlloc;
use crate::stats::NodeStats;
use crate::sys::linux::{CpuIdSource, LinuxPageSource, NodePolicy};

/// How the fast path is organized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// One cache per thread, bound to the node the thread runs on (user space).
    PerThread,
    /// One cache per CPU with preemption held off (the kernel front-end, [`crate::PerCpu`]).
    PerCpu,
}

/// Heaps one thread can keep a cache for at once; further heaps run uncached on that thread.
const TLS_SLOTS: usize = 4;
/// Or-ed into a slot's heap address once the thread's exit hook has freed its cache, so the
/// fast path misses and the slow path sends the thread to the heap directly.
const DEAD_TAG: usize = 1;

std::thread_local! {
    /// `(heap address, cache)` pairs of the calling thread. Owned by the thread.
    static SLOTS: [Cell<(usize, *mut Cache)>; TLS_SLOTS] =
        const { [const { Cell::new((0, ptr::null_mut())) }; TLS_SLOTS] };
    /// Set while the thread is making its cache. The C library calls made there
    /// (`pthread_setspecific` may `calloc`) re-enter the allocator when this crate replaces
    /// `malloc`; those nested calls see the flag and use the heap without a cache.
    static MAKING_CACHE: Cell<bool> = const { Cell::new(false) };
}

/// pthread key (plus one; 0 = not created) whose destructor flushes the thread's caches.
static EXIT_KEY: AtomicUsize = AtomicUsize::new(0);

/// The NUMA-local allocator over Linux pages.
///
/// Use it as a `static` (the `#[global_allocator]` or another static): threads keep pointers
/// to it until they exit, so dropping one that a thread has used aborts the program.
pub struct NumaSlab {
    /// The heap. Shared by all threads.
    heap: Heap<LinuxPageSource>,
    /// Set once a thread has cached a pointer to this allocator.
    used: AtomicBool,
}

impl core::fmt::Debug for NumaSlab {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NumaSlab")
            .field("heap", &self.heap)
            .finish()
    }
}

impl Default for NumaSlab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NumaSlab {
    fn drop(&mut self) {
        if self.used.load(Ordering::Relaxed) {
            crate::sys::report_and_abort(
                "manycore-alloc: a NumaSlab used by threads was dropped; keep it in a static",
            );
        }
    }
}

impl NumaSlab {
    /// An allocator with `MPOL_PREFERRED` placement that discovers the machine on first use.
    pub const fn new() -> Self {
        Self::with_policy(NodePolicy::Preferred)
    }

    /// An allocator with the given node policy.
    pub const fn with_policy(policy: NodePolicy) -> Self {
        NumaSlab {
            heap: Heap::new(LinuxPageSource::new(policy)),
            used: AtomicBool::new(false),
        }
    }

    /// The heap (statistics, `trim`, placement checks, uncached entry points).
    pub fn heap(&self) -> &Heap<LinuxPageSource> {
        &self.heap
    }

    /// Which fast path is in use: always [`CacheMode::PerThread`] in user space.
    pub fn cache_mode(&self) -> CacheMode {
        CacheMode::PerThread
    }

    /// Where the current CPU (hence node) comes from: rseq or `sched_getcpu`.
    pub fn cpu_id_source(&self) -> CpuIdSource {
        crate::sys::linux::cpu_id_source()
    }

    /// Where the machine description came from (sysfs, or a one-node fallback and why).
    pub fn map_origin(&self) -> crate::MapOrigin {
        self.heap.map_origin()
    }

    /// Counters of node `node`.
    pub fn stats(&self, node: usize) -> NodeStats {
        self.heap.stats(node)
    }

    /// Flushes the calling thread's cache, then returns what the heap can spare (see
    /// [`Heap::trim`]).
    pub fn trim(&self) {
        self.flush_thread_cache();
        self.heap.trim();
    }

    /// Returns the calling thread's magazines and remote batches to their nodes and publishes
    /// its counters.
    pub fn flush_thread_cache(&self) {
        if let Some(cache) = self.thread_cache() {
            // SAFETY: the thread's own cache, not in use elsewhere (this thread is here).
            unsafe { (*cache).flush(&self.heap) };
        }
    }

    /// Before `fork()` (a `pthread_atfork` prepare handler): takes every lock of the heap (see
    /// [`Heap::fork_prepare`]).
    pub fn fork_prepare(&self) {
        self.heap.fork_prepare();
    }

    /// After `fork()`, in the parent and in the child: releases the locks `fork_prepare` took.
    /// The child keeps the forking thread's cache; other threads' caches are gone with them.
    ///
    /// # Safety
    /// 1. The calling thread called `fork_prepare` (in the child: before `fork()`) and has not
    ///    called `fork_release` since.
    pub unsafe fn fork_release(&self) {
        // SAFETY: precondition 1.
        unsafe { self.heap.fork_release() };
    }

    /// After `fork()`, in the child (instead of [`NumaSlab::fork_release`]): releases the
    /// locks, flushes the calling thread's cache, and gives up the slabs the other threads'
    /// caches owned (they are gone in the child; see [`Heap::disown_all_slabs`]).
    ///
    /// # Safety
    /// 1. As for [`NumaSlab::fork_release`], in the child, which runs only this thread.
    pub unsafe fn fork_release_child(&self) {
        // SAFETY: precondition 1.
        unsafe { self.heap.fork_release() };
        self.flush_thread_cache();
        // SAFETY: the child's only thread just flushed its cache; the other caches are dead.
        unsafe { self.heap.disown_all_slabs() };
    }

    /// Frees `p` without its layout (the heap finds the block's size class from its segment):
    /// what a C `free` needs.
    ///
    /// # Safety
    /// 1. `p` came from this allocator and is live.
    #[inline]
    pub unsafe fn free(&self, p: *mut u8) {
        match self.cached() {
            // SAFETY: the thread's own cache (see `alloc`); precondition 1.
            Some(c) => unsafe { (*c).free(&self.heap, p) },
            // SAFETY: precondition 1.
            None => unsafe { self.dealloc_cold(p) },
        }
    }

    /// Bytes usable at `p` (at least what was asked for).
    ///
    /// # Safety
    /// 1. `p` is a live block of this allocator.
    pub unsafe fn usable_size(&self, p: *mut u8) -> usize {
        // SAFETY: precondition 1.
        unsafe { self.heap.usable_size(p) }
    }

    /// A handle that allocates on node `node` (an allocator-api2 `Allocator`).
    pub fn alloc_on_node(&self, node: usize) -> NodeAlloc<'_, LinuxPageSource> {
        self.heap.alloc_on_node(node)
    }

    /// The node the calling thread's cache serves (creating the cache).
    pub fn current_node(&self) -> usize {
        match self.thread_cache() {
            // SAFETY: the thread's own live cache.
            Some(c) => unsafe { (*c).node() },
            None => 0,
        }
    }

    /// The calling thread's cache for this heap if it is in the first slot (the fast path).
    #[inline(always)]
    fn cached(&self) -> Option<*mut Cache> {
        let me = self as *const NumaSlab as usize;
        SLOTS
            .try_with(|slots| {
                let (h, c) = slots[0].get();
                (h == me).then_some(c)
            })
            .ok()
            .flatten()
    }

    /// The calling thread's cache for this heap, created on first use; `None` when the thread
    /// cannot have one (no free slot, no memory, or its exit hook already ran).
    #[cold]
    #[inline(never)]
    fn thread_cache_slow(&self) -> Option<*mut Cache> {
        let me = self as *const NumaSlab as usize;
        SLOTS
            .try_with(|slots| self.find_or_make(slots, me))
            .ok()
            .flatten()
    }

    fn find_or_make(
        &self,
        slots: &[Cell<(usize, *mut Cache)>; TLS_SLOTS],
        me: usize,
    ) -> Option<*mut Cache> {
        for s in slots.iter() {
            let (h, c) = s.get();
            if h == me {
                return Some(c);
            }
            if h == me | DEAD_TAG {
                return None;
            }
        }
        let free = slots.iter().find(|s| s.get().0 == 0)?;
        let nested = MAKING_CACHE.try_with(|m| m.replace(true)).unwrap_or(true);
        if nested {
            return None;
        }
        let made = self.make_cache(free, me);
        let _ = MAKING_CACHE.try_with(|m| m.set(false));
        made
    }

    /// Arms the thread-exit hook and makes the thread's cache in slot `free`.
    fn make_cache(&self, free: &Cell<(usize, *mut Cache)>, me: usize) -> Option<*mut Cache> {
        if !register_exit_hook() {
            return None;
        }
        let node = self.uncached_node();
        let p = self
            .heap
            .alloc(node, Layout::new::<Cache>())
            .cast::<Cache>();
        if p.is_null() {
            return None;
        }
        // SAFETY: a fresh block of Cache's size and alignment (class sizes are multiples of 8,
        // Cache needs 8).
        unsafe { p.write(Cache::new(node, true)) };
        self.used.store(true, Ordering::Relaxed);
        free.set((me, p));
        Some(p)
    }

    /// `alloc` for a thread without a cache in the first slot.
    #[cold]
    #[inline(never)]
    fn alloc_cold(&self, layout: Layout) -> *mut u8 {
        match self.thread_cache_slow() {
            // SAFETY: the thread's own cache (see `alloc`).
            Some(c) => unsafe { (*c).alloc(&self.heap, layout.size(), layout.align()) },
            None => self.heap.alloc(self.uncached_node(), layout),
        }
    }

    /// The node for a thread without a cache: the one it runs on now.
    fn uncached_node(&self) -> usize {
        crate::sys::linux::current_cpu()
            .map(|cpu| self.heap.node_of_cpu(cpu))
            .unwrap_or(0)
    }

    /// `dealloc` for a thread without a cache in the first slot.
    ///
    /// # Safety
    /// 1. `p` came from this allocator and is live.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_cold(&self, p: *mut u8) {
        match self.thread_cache_slow() {
            // SAFETY: the thread's own cache; precondition 1.
            Some(c) => unsafe { (*c).free(&self.heap, p) },
            // SAFETY: precondition 1.
            None => unsafe { self.heap.free(p) },
        }
    }

    #[inline]
    fn thread_cache(&self) -> Option<*mut Cache> {
        match self.cached() {
            Some(c) => Some(c),
            None => self.thread_cache_slow(),
        }
    }
}

/// Creates the process's exit key once and arms it for this thread.
fn register_exit_hook() -> bool {
    let mut k = EXIT_KEY.load(Ordering::Acquire);
    if k == 0 {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: a valid out-pointer and an `extern "C"` destructor.
        if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
            return false;
        }
        match EXIT_KEY.compare_exchange(0, key as usize + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => k = key as usize + 1,
            Err(other) => {
                // SAFETY: our key, never armed.
                unsafe { libc::pthread_key_delete(key) };
                k = other;
            }
        }
    }
    // SAFETY: a key created above; any non-null value arms the destructor for this thread.
    unsafe {
        libc::pthread_setspecific(
            (k - 1) as libc::pthread_key_t,
            ptr::dangling::<libc::c_void>(),
        ) == 0
    }
}

/// Thread exit: flush and free every cache of the thread, mark its slots dead.
unsafe extern "C" fn thread_exit(_: *mut libc::c_void) {
    let _ = SLOTS.try_with(|slots| {
        for s in slots.iter() {
            let (h, c) = s.get();
            if h == 0 || h & DEAD_TAG != 0 || c.is_null() {
                continue;
            }
            s.set((h | DEAD_TAG, ptr::null_mut()));
            // SAFETY: `h` is the address of a NumaSlab that a live thread used, which must be a
            // static (see `NumaSlab`'s doc and Drop); `c` is this thread's cache in it.
            unsafe {
                let slab = &*(h as *const NumaSlab);
                (*c).flush(&slab.heap);
                slab.heap.free(c.cast());
            }
        }
    });
}

// SAFETY: every block comes from the heap with at least the layout's size and alignment;
// failures return null; frees go back to the heap the block came from (this one).
unsafe impl GlobalAlloc for NumaSlab {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.cached() {
            // SAFETY: the thread's own cache; no other reference to it is live (the allocator
            // is not reentrant on a thread: nothing below calls back into it).
            Some(c) => unsafe { (*c).alloc(&self.heap, layout.size(), layout.align()) },
            None => self.alloc_cold(layout),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.thread_cache() {
            // SAFETY: the thread's own cache (see `alloc`).
            Some(c) => unsafe { (*c).alloc_zeroed(&self.heap, layout.size(), layout.align()) },
            None => self.heap.alloc_zeroed(0, layout),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: the caller's contract: `p` came from this allocator and is live.
        unsafe { self.free(p) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(c) = self.thread_cache() else {
            // SAFETY: the caller's contract for `realloc`.
            if unsafe { self.heap.resize_in_place(p, layout.align(), new_size) } {
                return p;
            }
            let Ok(nl) = Layout::from_size_align(new_size, layout.align()) else {
                return ptr::null_mut();
            };
            let q = self.heap.alloc(self.uncached_node(), nl);
            if !q.is_null() {
                // SAFETY: distinct live blocks of at least min(old, new) bytes.
                unsafe {
                    ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.heap.free(p);
                }
            }
            return q;
        };
        // SAFETY: as in `alloc`; the caller's contract for `realloc`.
        unsafe { (*c).realloc(&self.heap, p, layout.align(), layout.size(), new_size) }
    }
}
