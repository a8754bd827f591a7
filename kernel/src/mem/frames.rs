//! Per-NUMA-node physical frame pools.
//!
//! Each node owns a pool of free physical ranges (sorted, coalesced, 4 KiB granular) built at boot
//! from RAM that the PVH memory map calls usable *and* the SRAT assigns to the node, minus the first
//! MiB (BIOS data, the AP trampoline) and the kernel image. Pools are plain arrays with a fixed
//! capacity so that allocating a frame never allocates heap memory (the heap refills from here).
//!
//! Who touches what: a pool is locked by any CPU that allocates or frees frames of that node; the
//! node-of-address table is written once by the BSP before the APs start and read-only afterwards.

use crate::sync::{Once, SpinLock};

use super::FRAME_BYTES;

/// Most NUMA nodes the kernel supports.
pub const NODES_MAX: usize = 64;
/// Most disjoint free ranges a pool can hold (fragmentation bound; exceeding it is reported).
const RANGES_PER_NODE_MAX: usize = 512;
/// Most memory ranges in the node-of-address table.
const AFFINITY_RANGES_MAX: usize = 256;

/// A half-open physical range `[base, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub base: u64,
    /// One past the last byte.
    pub end: u64,
}

/// A node's free frames.
pub struct FramePool {
    ranges: [PhysRange; RANGES_PER_NODE_MAX],
    len: usize,
    /// Bytes currently free in this pool.
    free_bytes: u64,
    /// Bytes ever given to this pool at boot.
    total_bytes: u64,
}

impl FramePool {
    const fn new() -> Self {
        Self {
            ranges: [PhysRange { base: 0, end: 0 }; RANGES_PER_NODE_MAX],
            len: 0,
            free_bytes: 0,
            total_bytes: 0,
        }
    }

    /// Returns `[base, end)` to the pool, merging with neighbours. Fails only when the pool would
    /// need more than `RANGES_PER_NODE_MAX` disjoint ranges.
    fn insert(&mut self, base: u64, end: u64) -> Result<(), ()> {
        debug_assert!(
            base < end && base.is_multiple_of(FRAME_BYTES) && end.is_multiple_of(FRAME_BYTES)
        );
        let i = self.ranges[..self.len].partition_point(|r| r.end <= base);
        debug_assert!(
            i == self.len || self.ranges[i].base >= end,
            "double free of frames {base:#x}"
        );
        let merge_prev = i > 0 && self.ranges[i - 1].end == base;
        let merge_next = i < self.len && self.ranges[i].base == end;
        match (merge_prev, merge_next) {
            (true, true) => {
                self.ranges[i - 1].end = self.ranges[i].end;
                self.ranges.copy_within(i + 1..self.len, i);
                self.len -= 1;
            }
            (true, false) => self.ranges[i - 1].end = end,
            (false, true) => self.ranges[i].base = base,
            (false, false) => {
                if self.len == RANGES_PER_NODE_MAX {
                    return Err(());
                }
                self.ranges.copy_within(i..self.len, i + 1);
                self.ranges[i] = PhysRange { base, end };
                self.len += 1;
            }
        }
        self.free_bytes += end - base;
        Ok(())
    }

    /// First fit of `bytes` (a multiple of 4 KiB) aligned to `align_bytes` (a power of two).
    fn take(&mut self, bytes: u64, align_bytes: u64) -> Option<u64> {
        for i in 0..self.len {
            let r = self.ranges[i];
            let start = r.base.next_multiple_of(align_bytes);
            if start >= r.end || r.end - start < bytes {
                continue;
            }
            let end = start + bytes;
            // Cut [start, end) out of r: up to two pieces remain.
            let head = (r.base < start).then_some(PhysRange {
                base: r.base,
                end: start,
            });
            let tail = (end < r.end).then_some(PhysRange {
                base: end,
                end: r.end,
            });
            match (head, tail) {
                (None, None) => {
                    self.ranges.copy_within(i + 1..self.len, i);
                    self.len -= 1;
                }
                (Some(h), None) => self.ranges[i] = h,
                (None, Some(t)) => self.ranges[i] = t,
                (Some(h), Some(t)) => {
                    if self.len == RANGES_PER_NODE_MAX {
                        continue;
                    }
                    self.ranges[i] = h;
                    self.ranges.copy_within(i + 1..self.len, i + 2);
                    self.ranges[i + 1] = t;
                    self.len += 1;
                }
            }
            self.free_bytes -= bytes;
            return Some(start);
        }
        None
    }
}

static POOLS: [SpinLock<FramePool>; NODES_MAX] =
    [const { SpinLock::new(FramePool::new()) }; NODES_MAX];

/// Node of each RAM range (from the SRAT; one node covering everything without one).
struct Affinity {
    ranges: [(PhysRange, usize); AFFINITY_RANGES_MAX],
    len: usize,
}

static AFFINITY: Once<Affinity> = Once::new();

/// Usage of one node's pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    /// Bytes free now.
    pub free_bytes: u64,
    /// Bytes the pool started with.
    pub total_bytes: u64,
}

/// Builds the pools (BSP, once, before the APs start).
///
/// `ram` lists the usable RAM ranges (memory map), `node_ranges` the SRAT memory affinities as
/// (range, logical node); `reserved` ranges are never handed out.
pub fn init(
    ram: &[PhysRange],
    node_ranges: &[(PhysRange, usize)],
    nodes: usize,
    reserved: &[PhysRange],
) -> Result<(), &'static str> {
    if nodes == 0 || nodes > NODES_MAX {
        return Err("frame pools: node count is 0 or above NODES_MAX (64)");
    }
    if node_ranges.len() > AFFINITY_RANGES_MAX {
        return Err("frame pools: the SRAT lists more than 256 memory ranges");
    }
    let mut aff = Affinity {
        ranges: [(PhysRange::default(), 0); AFFINITY_RANGES_MAX],
        len: node_ranges.len(),
    };
    aff.ranges[..node_ranges.len()].copy_from_slice(node_ranges);
    for r in ram {
        for &(nr, node) in node_ranges {
            let base = r.base.max(nr.base).next_multiple_of(FRAME_BYTES);
            let end = r.end.min(nr.end) / FRAME_BYTES * FRAME_BYTES;
            if base < end {
                add_minus_reserved(node, base, end, reserved)?;
            }
        }
    }
    AFFINITY
        .set(aff)
        .map_err(|_| "frame pools initialised twice")?;
    Ok(())
}

fn add_minus_reserved(
    node: usize,
    base: u64,
    end: u64,
    reserved: &[PhysRange],
) -> Result<(), &'static str> {
    // Cut every reserved range out of [base, end), recursively on the pieces (few ranges).
    for res in reserved {
        let rb = res.base / FRAME_BYTES * FRAME_BYTES;
        let re = res.end.next_multiple_of(FRAME_BYTES);
        if rb < end && base < re {
            if base < rb {
                add_minus_reserved(node, base, rb, reserved)?;
            }
            if re < end {
                add_minus_reserved(node, re, end, reserved)?;
            }
            return Ok(());
        }
    }
    let mut pool = POOLS[node].lock();
    pool.insert(base, end)
        .map_err(|()| "frame pools: too many disjoint RAM ranges on one node")?;
    pool.total_bytes += end - base;
    Ok(())
}

/// Takes `bytes` (rounded up to 4 KiB) aligned to `align_bytes` from `node`'s pool.
pub fn alloc(node: usize, bytes: u64, align_bytes: u64) -> Option<u64> {
    let bytes = bytes.max(1).next_multiple_of(FRAME_BYTES);
    let align = align_bytes.max(FRAME_BYTES);
    POOLS.get(node)?.lock().take(bytes, align)
}

/// Takes frames from `node`, or from the nearest other node with room (`by_distance` lists the
/// nodes to try after `node`).
pub fn alloc_near(node: usize, bytes: u64, align_bytes: u64, by_distance: &[usize]) -> Option<u64> {
    alloc(node, bytes, align_bytes).or_else(|| {
        by_distance
            .iter()
            .find_map(|&n| alloc(n, bytes, align_bytes))
    })
}

/// Returns frames obtained from [`alloc`] with the same `bytes`.
///
/// # Safety
/// 1. `[paddr, paddr + bytes)` came from [`alloc`] with this size and is no longer used.
pub unsafe fn free(paddr: u64, bytes: u64) {
    let bytes = bytes.max(1).next_multiple_of(FRAME_BYTES);
    let node = node_of(paddr).unwrap_or(0);
    // Insertion fails only when the pool would exceed its range bound: the frames are then leaked,
    // which the pool statistics show, rather than corrupting the pool.
    let _ = POOLS[node].lock().insert(paddr, paddr + bytes);
}

/// Whether all of `[paddr, paddr + bytes)` is free in its node's pool (statistics and tests).
pub fn is_free(paddr: u64, bytes: u64) -> bool {
    let Some(node) = node_of(paddr) else {
        return false;
    };
    let p = POOLS[node].lock();
    p.ranges[..p.len]
        .iter()
        .any(|r| r.base <= paddr && paddr + bytes <= r.end)
}

/// The node owning physical address `paddr`, from the SRAT.
pub fn node_of(paddr: u64) -> Option<usize> {
    let aff = AFFINITY.get()?;
    aff.ranges[..aff.len]
        .iter()
        .find(|(r, _)| r.base <= paddr && paddr < r.end)
        .map(|&(_, n)| n)
}

/// Usage of `node`'s pool.
pub fn stats(node: usize) -> PoolStats {
    let p = POOLS[node].lock();
    PoolStats {
        free_bytes: p.free_bytes,
        total_bytes: p.total_bytes,
    }
}
