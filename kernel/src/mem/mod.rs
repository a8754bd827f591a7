//! Physical memory: per-node frame pools built from the firmware's memory map and the SRAT, and
//! the kernel heap on top of them.

pub mod frames;
pub mod heap;

/// Size of a frame (a 4 KiB page).
pub const FRAME_BYTES: u64 = 4096;
