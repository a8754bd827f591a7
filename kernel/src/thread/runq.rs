//! TEMPORARY per-CPU run queues with topology-ordered stealing, until manycore-sched (issue 3)
//! lands: the kernel will then keep only the platform glue and use that crate's rings, injectors
//! and steal policy.
//!
//! Each CPU owns one FIFO under a spin lock. A CPU with nothing to run steals half of a victim's
//! queue (at most [`STEAL_BATCH_MAX`]), visiting victims tier by tier in the order the topology
//! computes (SMT sibling, shared cache, same node, then remote nodes by distance), starting at a
//! rotating offset inside each tier. Only one queue lock is ever held at a time.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::Thread;
use crate::sync::SpinLock;

/// Most threads moved by one steal.
pub const STEAL_BATCH_MAX: usize = 32;
/// Steal counters kept per tier kind (SMT, L2, LLC, node, remote...).
pub const TIER_KINDS_MAX: usize = 8;

/// One CPU's queue. Pushed by any CPU (wake-ups, spawns), popped by its owner, stolen by others.
pub struct RunQueue {
    queue: SpinLock<VecDeque<Arc<Thread>>>,
    /// Threads this CPU stole, by tier kind index. Written by the owner; read by statistics.
    pub stolen_by_tier: [AtomicU64; TIER_KINDS_MAX],
    /// Rotating start offset inside tiers. Owner only.
    steal_cursor: AtomicU64,
}

impl RunQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            queue: SpinLock::new(VecDeque::new()),
            stolen_by_tier: [const { AtomicU64::new(0) }; TIER_KINDS_MAX],
            steal_cursor: AtomicU64::new(0),
        }
    }

    /// Appends a thread.
    pub fn push(&self, t: Arc<Thread>) {
        self.queue.lock().push_back(t);
    }

    /// Takes the oldest thread.
    pub fn pop(&self) -> Option<Arc<Thread>> {
        self.queue.lock().pop_front()
    }

    /// Number of queued threads.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Takes up to half the queue (newest half, which the owner would run last), leaving pinned
    /// threads in place.
    fn steal_half(&self) -> Vec<Arc<Thread>> {
        let mut q = self.queue.lock();
        let want = (q.len() / 2).clamp(usize::from(!q.is_empty()), STEAL_BATCH_MAX);
        let mut out = Vec::new();
        let mut i = q.len();
        while out.len() < want && i > 0 {
            i -= 1;
            if !q[i].pinned
                && let Some(t) = q.remove(i)
            {
                out.push(t);
            }
        }
        out
    }
}

/// Finds work for `cpu` by stealing, nearest tier first. Returns one thread to run and queues the
/// rest of the batch locally.
pub fn steal_for(cpu: usize) -> Option<Arc<Thread>> {
    let topo = &crate::boot::machine().topology;
    let me = &crate::percpu::get(cpu).sched.runq;
    for tier in topo.steal_order(cpu).iter() {
        let n = tier.cpus.len();
        if n == 0 {
            continue;
        }
        let start = me.steal_cursor.fetch_add(1, Ordering::Relaxed) as usize % n;
        for k in 0..n {
            let victim = tier.cpus[(start + k) % n] as usize;
            let mut batch = crate::percpu::get(victim).sched.runq.steal_half();
            if let Some(first) = batch.pop() {
                let kind = tier.kind.index().min(TIER_KINDS_MAX - 1);
                me.stolen_by_tier[kind].fetch_add(1 + batch.len() as u64, Ordering::Relaxed);
                if !batch.is_empty() {
                    let mut q = me.queue.lock();
                    for t in batch {
                        q.push_back(t);
                    }
                }
                return Some(first);
            }
        }
    }
    None
}
