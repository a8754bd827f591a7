//! manycore-alloc: NUMA-local slab allocator (filled by issue 5).
#![no_std]
