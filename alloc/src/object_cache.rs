//! Typed object caches: blocks of one type on one node, with the class looked up once.
//!
//! ```
//! # use manycore_alloc::{Heap, NodeMap, ObjectCache, SystemPageSource};
//! # let heap = Heap::with_node_map(SystemPageSource::new(), NodeMap::fake(2, 2).unwrap());
//! struct Conn { id: u32, buf: [u8; 64] }
//! let conns = ObjectCache::<Conn, _>::new(&heap, 1);
//! let c = conns.alloc(Conn { id: 7, buf: [0; 64] }).ok().expect("memory");
//! assert_eq!(c.id, 7);
//! drop(c); // drops the Conn and frees its block
//! ```
//!
//! An [`ObjectCache`] is `Sync`: any thread may allocate and free through it. Blocks come from
//! the node's slabs under the class lock, like [`NodeAlloc`](crate::NodeAlloc).

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::heap::Heap;
use crate::page_source::PageSource;
use crate::size_class;

/// Blocks for values of `T` on one node.
#[derive(Debug)]
pub struct ObjectCache<'h, T, P: PageSource> {
    heap: &'h Heap<P>,
    node: usize,
    /// Size class of `T`, or `None` for a large `T` (or a zero-sized one, see `alloc`).
    class: Option<usize>,
    _t: PhantomData<fn(T) -> T>,
}

impl<'h, T, P: PageSource> ObjectCache<'h, T, P> {
    /// A cache of `T` blocks on `node` of `heap`.
    pub fn new(heap: &'h Heap<P>, node: usize) -> Self {
        let l = core::alloc::Layout::new::<T>();
        ObjectCache {
            heap,
            node,
            class: size_class::class_for(l.size(), l.align()),
            _t: PhantomData,
        }
    }

    /// The node the objects live on.
    pub fn node(&self) -> usize {
        self.node
    }

    /// Moves `value` into a block on the cache's node. Gives the value back when memory is
    /// exhausted.
    pub fn alloc(&self, value: T) -> Result<ObjectBox<'_, 'h, T, P>, T> {
        let p = match self.class {
            Some(c) => {
                let p = self.heap.alloc_block_uncached(self.node, c);
                #[cfg(feature = "checked")]
                if !p.is_null() {
                    crate::checked::on_alloc(self.heap, p);
                }
                p
            }
            None => self.heap.alloc(self.node, core::alloc::Layout::new::<T>()),
        };
        let Some(p) = NonNull::new(p.cast::<T>()) else {
            return Err(value);
        };
        // SAFETY: a fresh block with T's size and alignment.
        unsafe { p.as_ptr().write(value) };
        Ok(ObjectBox {
            cache: self,
            ptr: p,
        })
    }
}

/// A value of `T` in an [`ObjectCache`]'s block; dropping it drops the value and frees the
/// block.
#[derive(Debug)]
pub struct ObjectBox<'c, 'h, T, P: PageSource> {
    cache: &'c ObjectCache<'h, T, P>,
    ptr: NonNull<T>,
}

impl<T, P: PageSource> ObjectBox<'_, '_, T, P> {
    /// The block's address.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T, P: PageSource> Deref for ObjectBox<'_, '_, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the box owns an initialized T until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T, P: PageSource> DerefMut for ObjectBox<'_, '_, T, P> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T, P: PageSource> Drop for ObjectBox<'_, '_, T, P> {
    fn drop(&mut self) {
        // SAFETY: the box owns an initialized T in a live block of the cache's heap; the block
        // is freed once, after the value is dropped.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            self.cache.heap.free(self.ptr.as_ptr().cast());
        }
    }
}
