//! Physical memory: per-node frame pools built from the firmware's memory map and the SRAT, and
//! manycore-alloc on top of them (the global allocator and thread stacks).

pub mod alloc;
pub mod frames;

/// Size of a frame (a 4 KiB page).
pub const FRAME_BYTES: u64 = 4096;
