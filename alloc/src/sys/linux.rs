//! The Linux backend: pages from `mmap` bound with `mbind` before first touch, placement
//! checked with `move_pages`, the machine read from sysfs without allocating, and the current
//! CPU from glibc's registered rseq area (else `sched_getcpu`).
//!
//! Nothing here allocates through the Rust heap: it may run inside the global allocator.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

use crate::node_map::{DiscoveryError, MAX_NODES, NodeMap};
use crate::page_source::{PageSource, Placement};
use crate::segment::PAGE_BYTES;

/// How pages are tied to their node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePolicy {
    /// `MPOL_BIND`: pages only from the node; allocation fails when `mbind` fails.
    Bind,
    /// `MPOL_PREFERRED`: the node first, others when it is full; an `mbind` failure leaves the
    /// pages to first touch (counted in [`LinuxPageSource::mbind_failures`]).
    Preferred,
    /// No `mbind`: first-touch placement (the baseline other allocators use).
    FirstTouch,
}

/// Bits in the node mask passed to `mbind` (Linux's `MAX_NUMNODES` at most).
const NODE_MASK_BITS: usize = 1024;
/// Pages per `move_pages` call when checking placement (arrays live on the stack).
const PLACEMENT_CHUNK_PAGES: usize = 512;

/// `mmap` + `mbind` pages on NUMA nodes.
#[derive(Debug)]
pub struct LinuxPageSource {
    /// Node policy. Immutable.
    policy: NodePolicy,
    /// `mbind` calls that failed. Any thread.
    mbind_failures: AtomicUsize,
}

impl LinuxPageSource {
    /// A source with `policy`.
    pub const fn new(policy: NodePolicy) -> Self {
        LinuxPageSource {
            policy,
            mbind_failures: AtomicUsize::new(0),
        }
    }

    /// The node policy.
    pub fn policy(&self) -> NodePolicy {
        self.policy
    }

    /// `mbind` calls that failed so far.
    pub fn mbind_failures(&self) -> usize {
        self.mbind_failures.load(Ordering::Relaxed)
    }
}

/// Binds `[p, p + bytes)` to `os_node` with `mode`; returns whether the kernel accepted it.
///
/// # Safety
/// 1. The range is a page-aligned mapping owned by the caller.
pub unsafe fn mbind(p: *mut u8, bytes: usize, os_node: usize, mode: libc::c_int) -> bool {
    if os_node >= NODE_MASK_BITS {
        return false;
    }
    let mut mask = [0u64; NODE_MASK_BITS / 64];
    mask[os_node / 64] |= 1u64 << (os_node % 64);
    // SAFETY: precondition 1; `mask` is a readable array of NODE_MASK_BITS bits (the kernel
    // reads maxnode - 1 bits).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            p,
            bytes,
            mode,
            mask.as_ptr(),
            NODE_MASK_BITS + 1,
            0u32,
        )
    };
    r == 0
}

/// The node each page of `[p, p + pages * 4096)` sits on, via `move_pages(nodes = NULL)`:
/// `status[i]` is a node number, or a negative errno (`-ENOENT`: not resident).
///
/// # Safety
/// 1. The range lies inside mappings of this process.
pub unsafe fn page_nodes(p: *mut u8, status: &mut [i32]) -> bool {
    let mut addrs = [ptr::null_mut::<libc::c_void>(); PLACEMENT_CHUNK_PAGES];
    let n = status.len().min(PLACEMENT_CHUNK_PAGES);
    for (i, a) in addrs.iter_mut().take(n).enumerate() {
        *a = p.wrapping_add(i * PAGE_BYTES).cast();
    }
    // SAFETY: precondition 1; `addrs` and `status` hold `n` entries; pid 0 is this process;
    // a null `nodes` array asks only for status.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            n as libc::c_ulong,
            addrs.as_ptr(),
            ptr::null::<libc::c_int>(),
            status.as_mut_ptr(),
            0,
        )
    };
    r >= 0
}

// SAFETY: pages come from fresh anonymous private mappings trimmed to the requested size and
// alignment; `free_pages` unmaps exactly them; nothing else in the process uses them.
unsafe impl PageSource for LinuxPageSource {
    fn alloc_pages(&self, bytes: usize, align_bytes: usize, os_node: usize) -> Option<NonNull<u8>> {
        let extra = if align_bytes > PAGE_BYTES {
            align_bytes
        } else {
            0
        };
        let map_bytes = bytes.checked_add(extra)?;
        // SAFETY: an anonymous mapping request with no address hint.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let raw = raw.cast::<u8>();
        let start = raw.addr().next_multiple_of(align_bytes.max(PAGE_BYTES));
        let head = start - raw.addr();
        let tail = map_bytes - head - bytes;
        // SAFETY: head and tail are page-multiple pieces of the mapping just made, outside the
        // part we keep.
        unsafe {
            if head > 0 {
                libc::munmap(raw.cast(), head);
            }
            if tail > 0 {
                libc::munmap(raw.add(head + bytes).cast(), tail);
            }
        }
        // SAFETY: `head < map_bytes`, inside the mapping.
        let p = unsafe { raw.add(head) };
        let mode = match self.policy {
            NodePolicy::Bind => Some(libc::MPOL_BIND),
            NodePolicy::Preferred => Some(libc::MPOL_PREFERRED),
            NodePolicy::FirstTouch => None,
        };
        if let Some(mode) = mode {
            // SAFETY: our fresh mapping, untouched, so the policy applies to every page.
            if !unsafe { mbind(p, bytes, os_node, mode) } {
                self.mbind_failures.fetch_add(1, Ordering::Relaxed);
                if self.policy == NodePolicy::Bind {
                    // SAFETY: the mapping we made.
                    unsafe { libc::munmap(p.cast(), bytes) };
                    return None;
                }
            }
        }
        NonNull::new(p)
    }

    fn zeroes_new_pages(&self) -> bool {
        true
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, bytes: usize, _os_node: usize) {
        // SAFETY: precondition 1 of `free_pages`: exactly a mapping we handed out.
        unsafe { libc::munmap(ptr.as_ptr().cast(), bytes) };
    }

    unsafe fn decommit_pages(&self, ptr: NonNull<u8>, bytes: usize) {
        // SAFETY: precondition 1: owned pages with no live data.
        unsafe { libc::madvise(ptr.as_ptr().cast(), bytes, libc::MADV_DONTNEED) };
    }

    fn discover_nodes(&self, map: &mut NodeMap) -> Result<(), DiscoveryError> {
        discover(map)
    }

    fn current_cpu(&self) -> Option<usize> {
        current_cpu()
    }

    fn placement(&self, ptr: NonNull<u8>, bytes: usize, os_node: usize) -> Option<Placement> {
        let mut out = Placement::default();
        let pages = bytes / PAGE_BYTES;
        let mut done = 0;
        let mut status = [0i32; PLACEMENT_CHUNK_PAGES];
        while done < pages {
            let n = (pages - done).min(PLACEMENT_CHUNK_PAGES);
            // SAFETY: the range is inside a live mapping of this heap (the caller walks its own
            // segments under their lock).
            if !unsafe { page_nodes(ptr.as_ptr().add(done * PAGE_BYTES), &mut status[..n]) } {
                return None;
            }
            for &s in &status[..n] {
                out.pages_checked += 1;
                if s < 0 {
                    out.pages_absent += 1;
                } else if s as usize != os_node {
                    out.pages_off_node += 1;
                }
            }
            done += n;
        }
        Some(out)
    }

    fn corruption(&self, message: &str) -> ! {
        super::report_and_abort(message)
    }
}

// ----- machine discovery ----------------------------------------------------------------------

/// Why [`read_file`] failed.
enum ReadError {
    /// open(2) or read(2) failed.
    Unreadable,
    /// The file has more bytes than the buffer.
    TooLong,
}

/// Reads a small file into `buf` with raw system calls; returns the bytes read. Fails rather
/// than truncating when the file is longer than `buf`.
fn read_file(path: &core::ffi::CStr, buf: &mut [u8]) -> Result<usize, ReadError> {
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(ReadError::Unreadable);
    }
    let mut len = 0;
    let result;
    // Bounded: every turn reads at least one byte into `buf` or ends the loop; one extra turn
    // with a full buffer detects a longer file.
    loop {
        let mut probe = [0u8; 1];
        let tail: &mut [u8] = if len < buf.len() {
            &mut buf[len..]
        } else {
            &mut probe
        };
        // SAFETY: writing into `tail`, a live buffer of `tail.len()` bytes.
        let r = unsafe { libc::read(fd, tail.as_mut_ptr().cast(), tail.len()) };
        if r < 0 {
            result = Err(ReadError::Unreadable);
            break;
        }
        if r == 0 {
            result = Ok(len);
            break;
        }
        if len >= buf.len() {
            result = Err(ReadError::TooLong);
            break;
        }
        len += r as usize;
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    result
}

/// Fills `map` (a [`NodeMap::builder`]) from `/sys/devices/system/node`: the `online` node
/// list, then each online node's `cpulist`. Allocates nothing (stack buffers, raw system
/// calls), so it can run inside the global allocator.
pub fn discover(map: &mut NodeMap) -> Result<(), DiscoveryError> {
    let mut online = [0u8; 256];
    let n = match read_file(c"/sys/devices/system/node/online", &mut online) {
        Ok(n) => n,
        Err(ReadError::Unreadable) => return Err(DiscoveryError::NoNodeDirectory),
        Err(ReadError::TooLong) => {
            return Err(DiscoveryError::FileTooLong {
                os_node: usize::MAX,
            });
        }
    };
    let mut nodes = [usize::MAX; MAX_NODES];
    let mut count = 0;
    crate::node_map::for_each_in_cpulist(&online[..n], |node| {
        if count < nodes.len() {
            nodes[count] = node;
        }
        count += 1;
    })
    .map_err(|offset| DiscoveryError::BadOnlineList { offset })?;
    if count == 0 {
        return Err(DiscoveryError::Map(crate::node_map::NodeMapError::NoNodes));
    }
    if count > MAX_NODES {
        return Err(DiscoveryError::Map(
            crate::node_map::NodeMapError::TooManyNodes { nodes: count },
        ));
    }
    for &node in &nodes[..count] {
        let mut path = [0u8; 64];
        let prefix = b"/sys/devices/system/node/node";
        path[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 10];
        let mut d = 0;
        let mut v = node;
        loop {
            digits[d] = b'0' + (v % 10) as u8;
            d += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let mut at = prefix.len();
        for i in (0..d).rev() {
            path[at] = digits[i];
            at += 1;
        }
        let suffix = b"/cpulist\0";
        path[at..at + suffix.len()].copy_from_slice(suffix);
        let mut list = [0u8; 4096];
        let Ok(path) = core::ffi::CStr::from_bytes_with_nul(&path[..at + suffix.len()]) else {
            return Err(DiscoveryError::UnreadableCpulist { os_node: node });
        };
        let len = match read_file(path, &mut list) {
            Ok(len) => len,
            Err(ReadError::Unreadable) => {
                return Err(DiscoveryError::UnreadableCpulist { os_node: node });
            }
            Err(ReadError::TooLong) => return Err(DiscoveryError::FileTooLong { os_node: node }),
        };
        map.push_node(node, &list[..len])
            .map_err(DiscoveryError::Map)?;
    }
    Ok(())
}

// ----- current CPU: rseq, else sched_getcpu ------------------------------------------------------

const RSEQ_UNKNOWN: u8 = 0;
const RSEQ_YES: u8 = 1;
const RSEQ_NO: u8 = 2;
/// One thread is inside `dlsym`; everyone (including an allocation `dlsym` itself makes on
/// that thread) uses `sched_getcpu` meanwhile instead of probing again.
const RSEQ_PROBING: u8 = 3;
static RSEQ_STATE: AtomicU8 = AtomicU8::new(RSEQ_UNKNOWN);
static RSEQ_OFFSET: AtomicIsize = AtomicIsize::new(0);

/// Where the current CPU number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuIdSource {
    /// glibc registered rseq: `cpu_id` is read from the thread's rseq area (one load).
    Rseq,
    /// `sched_getcpu` (a vDSO call).
    Getcpu,
}

#[inline]
fn thread_pointer() -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: on x86_64 Linux, %fs:0 holds the thread control block's own address (the
        // TLS ABI); reading it has no side effects.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        Some(tp)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reading TPIDR_EL0 (the thread pointer) has no side effects.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags))
        };
        Some(tp)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// Looks up glibc's `__rseq_offset` / `__rseq_size` (documented ABI since glibc 2.35). Only
/// one caller probes; the others (and allocations made inside `dlsym`, when this runs under a
/// `malloc` replacement) see `RSEQ_PROBING` and get `RSEQ_NO` for this call.
#[cold]
fn rseq_probe() -> u8 {
    if RSEQ_STATE
        .compare_exchange(
            RSEQ_UNKNOWN,
            RSEQ_PROBING,
            Ordering::Acquire,
            Ordering::Acquire,
        )
        .is_err()
    {
        return RSEQ_NO;
    }
    // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names; the results are checked for
    // null before being read as the documented types (ptrdiff_t, unsigned int).
    let state = unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr());
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr());
        if off.is_null() || size.is_null() || thread_pointer().is_none() {
            RSEQ_NO
        } else if *(size as *const u32) < 20 {
            // 0: glibc did not register rseq (disabled by tunable, or the kernel lacks it).
            RSEQ_NO
        } else {
            RSEQ_OFFSET.store(*(off as *const isize), Ordering::Relaxed);
            RSEQ_YES
        }
    };
    RSEQ_STATE.store(state, Ordering::Release);
    state
}

/// How [`current_cpu`] finds the CPU on this process.
pub fn cpu_id_source() -> CpuIdSource {
    let mut s = RSEQ_STATE.load(Ordering::Acquire);
    if s == RSEQ_UNKNOWN {
        s = rseq_probe();
    }
    // RSEQ_PROBING falls through to `Getcpu` below.
    if s == RSEQ_YES {
        CpuIdSource::Rseq
    } else {
        CpuIdSource::Getcpu
    }
}

/// The OS CPU the calling thread runs on (it may move right after).
pub fn current_cpu() -> Option<usize> {
    if cpu_id_source() == CpuIdSource::Rseq {
        if let Some(tp) = thread_pointer() {
            let off = RSEQ_OFFSET.load(Ordering::Relaxed);
            // `struct rseq { u32 cpu_id_start; u32 cpu_id; ... }` at tp + __rseq_offset.
            let cpu_id = tp.wrapping_add_signed(off).wrapping_add(4) as *const u32;
            // SAFETY: glibc registered this thread's rseq area at that offset from the thread
            // pointer (the documented ABI); the kernel updates `cpu_id`, hence the volatile
            // read.
            let cpu = unsafe { ptr::read_volatile(cpu_id) };
            // u32::MAX: not registered yet; u32::MAX - 1: registration failed.
            if cpu < u32::MAX - 1 {
                return Some(cpu as usize);
            }
        }
    }
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}
