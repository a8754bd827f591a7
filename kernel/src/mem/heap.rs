//! The interim kernel heap: power-of-two size classes (16 B to 4 KiB) with free lists, refilled
//! from the current CPU's node pool; larger objects take whole frames from the node pool.
//!
//! This is the "simple frame-backed heap" that lets the kernel run until manycore-alloc provides a
//! kernel-usable page-source hook; it has one lock for all size classes and no per-CPU caches.
//!
//! Before the frame pools exist (ACPI parsing needs a little heap), objects come from a static
//! bootstrap arena by bumping a pointer. Small objects from the arena are recycled through the free
//! lists like any other; large ones freed back are leaked (boot-time only, bounded by the arena).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

use super::frames;
use crate::sync::SpinLock;

/// Size classes: 2^MIN_SHIFT .. 2^MAX_SHIFT bytes.
const MIN_SHIFT: u32 = 4;
const MAX_SHIFT: u32 = 12;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Bytes taken from a frame pool per refill of a size class.
const REFILL_BYTES: u64 = 64 * 1024;
/// Bootstrap arena (used until [`frames`] is ready).
const ARENA_BYTES: usize = 4 << 20;

#[repr(C, align(4096))]
struct Arena([u8; ARENA_BYTES]);

/// The arena's bytes; handed out only under the heap lock, by bumping `State::arena_used`.
static mut ARENA: Arena = Arena([0; ARENA_BYTES]);

struct State {
    /// Head of each class's free list (objects hold the next pointer in their first word).
    free: [*mut u8; CLASSES],
    /// Bytes of the bootstrap arena handed out.
    arena_used: usize,
    /// Whether the frame pools can be used.
    frames_ready: bool,
}

// SAFETY: the raw pointers are owned by the heap and only touched under its lock.
unsafe impl Send for State {}

/// The kernel's `#[global_allocator]` until manycore-alloc is plugged in.
pub struct KernelHeap {
    state: SpinLock<State>,
}

impl KernelHeap {
    /// An empty heap (bootstrap arena only).
    pub const fn new() -> Self {
        Self {
            state: SpinLock::new(State {
                free: [null_mut(); CLASSES],
                arena_used: 0,
                frames_ready: false,
            }),
        }
    }

    /// Switches refills from the arena to the frame pools (after [`frames::init`]).
    pub fn frames_ready(&self) {
        self.state.lock().frames_ready = true;
    }
}

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout
        .size()
        .max(layout.align())
        .max(1 << MIN_SHIFT)
        .next_power_of_two();
    let shift = size.trailing_zeros();
    (shift <= MAX_SHIFT).then(|| (shift - MIN_SHIFT) as usize)
}

fn arena_bump(st: &mut State, bytes: usize, align: usize) -> *mut u8 {
    let base = core::ptr::addr_of_mut!(ARENA) as usize;
    let start = (base + st.arena_used).next_multiple_of(align);
    if start + bytes > base + ARENA_BYTES {
        return null_mut();
    }
    st.arena_used = start + bytes - base;
    start as *mut u8
}

fn is_arena(ptr: *mut u8) -> bool {
    let base = core::ptr::addr_of!(ARENA) as usize;
    (base..base + ARENA_BYTES).contains(&(ptr as usize))
}

// SAFETY: every block handed out is either a size-class object at least as large and as aligned as
// the layout asks (the class is the next power of two of max(size, align), carved at multiples of
// its size from 4 KiB-aligned chunks) or a run of whole frames; blocks are handed out once until
// freed, under the heap lock or the pool lock.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(&layout) else {
            let mut st = self.state.lock();
            if !st.frames_ready {
                return arena_bump(&mut st, layout.size(), layout.align());
            }
            drop(st);
            let node = crate::percpu::current_node_or_boot();
            return frames::alloc_near(
                node,
                layout.size() as u64,
                layout.align() as u64,
                crate::percpu::nodes_by_distance(),
            )
            .map_or(null_mut(), |p| p as *mut u8);
        };
        let obj_bytes = 1usize << (class as u32 + MIN_SHIFT);
        let mut st = self.state.lock();
        if st.free[class].is_null() {
            let (chunk, chunk_bytes) = if st.frames_ready {
                let node = crate::percpu::current_node_or_boot();
                match frames::alloc_near(
                    node,
                    REFILL_BYTES,
                    4096,
                    crate::percpu::nodes_by_distance(),
                ) {
                    Some(p) => (p as *mut u8, REFILL_BYTES as usize),
                    None => return null_mut(),
                }
            } else {
                let bytes = obj_bytes.max(4096);
                (arena_bump(&mut st, bytes, 4096), bytes)
            };
            if chunk.is_null() {
                return null_mut();
            }
            let mut off = chunk_bytes;
            while off >= obj_bytes {
                off -= obj_bytes;
                // SAFETY: `chunk + off` lies in the fresh chunk, aligned to `obj_bytes` ≥ 16.
                unsafe {
                    let obj = chunk.add(off);
                    obj.cast::<*mut u8>().write(st.free[class]);
                    st.free[class] = obj;
                }
            }
        }
        let obj = st.free[class];
        // SAFETY: `obj` is a free object of this class; its first word holds the next pointer.
        st.free[class] = unsafe { obj.cast::<*mut u8>().read() };
        obj
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(&layout) {
            Some(class) => {
                let mut st = self.state.lock();
                // SAFETY: the caller gives back an object of this layout, hence of this class; it is
                // no longer used, so its first word may hold the free-list link.
                unsafe { ptr.cast::<*mut u8>().write(st.free[class]) };
                st.free[class] = ptr;
            }
            None if is_arena(ptr) => {}
            None => {
                // SAFETY: large objects are whole-frame runs from `frames::alloc_near` of this size.
                unsafe { frames::free(ptr as u64, layout.size() as u64) };
            }
        }
    }
}
