//! Statistics per node and size class.
//!
//! Counters live in each node's state (on that node) as relaxed atomics, updated only on slow
//! paths: a cache counts its fast-path allocations and frees in plain per-class fields and
//! adds them to its node's counters whenever it visits the depot, flushes, or exits. A snapshot
//! is therefore exact for everything flushed and may lag a live cache by at most the
//! operations since its last slow path. Remote frees are counted by the owning node when it
//! takes them from its inbox, so a block in flight still counts as in use.

use crate::size_class::{NUM_CLASSES, class_bytes};
use crate::sync::{AtomicU64, Ordering};

/// One class's counters on one node.
#[derive(Debug, Default)]
pub struct ClassCounters {
    /// Blocks handed out.
    pub allocs: AtomicU64,
    /// Blocks returned (local and remote).
    pub frees: AtomicU64,
    /// Of `frees`, blocks freed on another node and sent home.
    pub remote_frees: AtomicU64,
}

/// A node's counters (all-zero when created).
#[derive(Debug)]
pub struct NodeCounters {
    /// Per class.
    pub classes: [ClassCounters; NUM_CLASSES],
    /// Large objects handed out.
    pub large_allocs: AtomicU64,
    /// Large objects freed.
    pub large_frees: AtomicU64,
    /// Bytes of live large objects (as requested).
    pub large_bytes_in_use: AtomicU64,
    /// Bytes of pages this node holds from the page source.
    pub pages_held_bytes: AtomicU64,
    /// Off-node pages found by the last placement check of this node.
    pub off_node_pages: AtomicU64,
    /// Pages examined by the last placement check.
    pub pages_checked: AtomicU64,
    /// Blocks other nodes sent to this node's inbox.
    pub remote_received: AtomicU64,
}

#[inline]
pub(crate) fn add(c: &AtomicU64, v: u64) {
    if v != 0 {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn sub(c: &AtomicU64, v: u64) {
    if v != 0 {
        c.fetch_sub(v, Ordering::Relaxed);
    }
}

/// A copy of one class's counters on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Block size of the class.
    pub block_bytes: usize,
    /// Blocks handed out.
    pub allocs: u64,
    /// Blocks returned.
    pub frees: u64,
    /// Of `frees`, those sent home from another node.
    pub remote_frees: u64,
}

impl ClassStats {
    /// Bytes handed out and not yet returned (blocks in caches and magazines count as free).
    pub fn bytes_in_use(&self) -> u64 {
        self.allocs.saturating_sub(self.frees) * self.block_bytes as u64
    }
}

/// A copy of one node's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStats {
    /// Logical node.
    pub node: usize,
    /// Per class.
    pub classes: [ClassStats; NUM_CLASSES],
    /// Large objects handed out.
    pub large_allocs: u64,
    /// Large objects freed.
    pub large_frees: u64,
    /// Bytes of live large objects.
    pub large_bytes_in_use: u64,
    /// Bytes of pages the node holds from the page source.
    pub pages_held_bytes: u64,
    /// Off-node pages found by the last placement check.
    pub off_node_pages: u64,
    /// Pages examined by the last placement check.
    pub pages_checked: u64,
    /// Blocks other nodes sent to this node's inbox.
    pub remote_received: u64,
}

impl NodeStats {
    /// A snapshot of `c` for node `node`.
    pub(crate) fn read(node: usize, c: &NodeCounters) -> NodeStats {
        let classes = core::array::from_fn(|i| ClassStats {
            block_bytes: class_bytes(i),
            allocs: c.classes[i].allocs.load(Ordering::Relaxed),
            frees: c.classes[i].frees.load(Ordering::Relaxed),
            remote_frees: c.classes[i].remote_frees.load(Ordering::Relaxed),
        });
        NodeStats {
            node,
            classes,
            large_allocs: c.large_allocs.load(Ordering::Relaxed),
            large_frees: c.large_frees.load(Ordering::Relaxed),
            large_bytes_in_use: c.large_bytes_in_use.load(Ordering::Relaxed),
            pages_held_bytes: c.pages_held_bytes.load(Ordering::Relaxed),
            off_node_pages: c.off_node_pages.load(Ordering::Relaxed),
            pages_checked: c.pages_checked.load(Ordering::Relaxed),
            remote_received: c.remote_received.load(Ordering::Relaxed),
        }
    }

    /// An all-zero snapshot (a node never used).
    pub fn empty(node: usize) -> NodeStats {
        NodeStats {
            node,
            classes: core::array::from_fn(|i| ClassStats {
                block_bytes: class_bytes(i),
                ..ClassStats::default()
            }),
            large_allocs: 0,
            large_frees: 0,
            large_bytes_in_use: 0,
            pages_held_bytes: 0,
            off_node_pages: 0,
            pages_checked: 0,
            remote_received: 0,
        }
    }

    /// Bytes handed out and not yet returned, small and large.
    pub fn bytes_in_use(&self) -> u64 {
        self.classes
            .iter()
            .map(ClassStats::bytes_in_use)
            .sum::<u64>()
            + self.large_bytes_in_use
    }

    /// Blocks freed remotely and received by this node, over all classes.
    pub fn remote_frees(&self) -> u64 {
        self.classes.iter().map(|c| c.remote_frees).sum()
    }

    /// Small blocks handed out, over all classes.
    pub fn allocs(&self) -> u64 {
        self.classes.iter().map(|c| c.allocs).sum()
    }

    /// Small blocks returned, over all classes.
    pub fn frees(&self) -> u64 {
        self.classes.iter().map(|c| c.frees).sum()
    }
}
