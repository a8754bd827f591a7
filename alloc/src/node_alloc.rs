//! Per-node handles: allocator-api2 `Allocator`s that place every block on one node.
//!
//! ```
//! # use manycore_alloc::{Heap, NodeMap, SystemPageSource};
//! # let heap = Heap::with_node_map(SystemPageSource::new(), NodeMap::fake(2, 2).unwrap());
//! use allocator_api2::alloc::Allocator;
//! let on1 = heap.alloc_on_node(1);
//! let block = on1.allocate(core::alloc::Layout::new::<[u64; 4]>()).unwrap();
//! assert_eq!(heap.source().node_of(block.as_ptr().cast()), Some(1));
//! unsafe { on1.deallocate(block.cast(), core::alloc::Layout::new::<[u64; 4]>()) };
//! ```
//!
//! A handle has no cache of its own: each call takes the class lock of its node (one
//! uncontended compare-exchange pair in the common case). Frees through the handle go straight
//! back to the owning node too.

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

use crate::heap::Heap;
use crate::page_source::PageSource;

/// Allocates on one node of a heap.
#[derive(Debug)]
pub struct NodeAlloc<'h, P: PageSource> {
    heap: &'h Heap<P>,
    node: usize,
}

impl<P: PageSource> Clone for NodeAlloc<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: PageSource> Copy for NodeAlloc<'_, P> {}

impl<'h, P: PageSource> NodeAlloc<'h, P> {
    /// The node this handle allocates on.
    pub fn node(&self) -> usize {
        self.node
    }

    /// The heap behind the handle.
    pub fn heap(&self) -> &'h Heap<P> {
        self.heap
    }
}

impl<P: PageSource> Heap<P> {
    /// A handle placing every allocation on `node`. Allocation through it fails (AllocError)
    /// when `node` is not a node of the heap's map.
    pub fn alloc_on_node(&self, node: usize) -> NodeAlloc<'_, P> {
        NodeAlloc { heap: self, node }
    }
}

// SAFETY: blocks are valid for the layout until deallocated; any handle of the same heap (or
// the heap itself) can free them, since a block's owner is found from its address; cloning a
// handle yields an equivalent allocator.
unsafe impl<P: PageSource> Allocator for NodeAlloc<'_, P> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = NonNull::new(self.heap.alloc(self.node, layout)).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the Allocator contract: `ptr` was allocated by this allocator (this heap).
        unsafe { self.heap.free(ptr.as_ptr()) }
    }
}
