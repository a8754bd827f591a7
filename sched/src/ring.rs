//! The per-CPU run queue: a bounded ring that only its owner pushes to and pops from, and that
//! other CPUs steal half of.
//!
//! # Protocol
//! `tail` is written only by the owner. `head` packs two 32-bit indices: `real`, the next slot
//! the owner pops, and `steal`, the first slot a thief is still copying out (`steal == real` when
//! no steal is in flight). Indices grow without bound and wrap at 2³²; a slot is `index & mask`.
//!
//! - **push** (owner): if `tail - steal < capacity`, write the slot, then publish `tail + 1` with
//!   a release store. Slots in `[steal, real)` are being copied by a thief and are not reused.
//! - **pop** (owner, FIFO): compare-exchange `real` to `real + 1` (and `steal` along with it when
//!   no steal is in flight), then read the slot: the CAS is what keeps a thief from claiming it.
//! - **steal half** (thief into its own ring): read `head`; give up if another steal is in flight;
//!   claim `n = ceil(len / 2)` (bounded) by moving `real` forward while `steal` stays, copy the `n`
//!   slots into the thief's own ring, then set `steal = real` (the owner may have popped further
//!   meanwhile) and publish the thief's new tail.
//! - **overflow** (owner, ring full): claim half the ring the same way a thief would and hand the
//!   tasks to the caller, which moves them to the node's injector in one batch.
//!
//! FIFO pops keep the ring fair; the just-woken task that should run next goes to the separate
//! [next slot](crate::next_slot), not to the front of the ring.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

use crate::sync::{AtomicU32, AtomicU64, Ordering, UnsafeCell};

/// Default capacity (tasks) of a CPU's ring.
pub const RING_CAPACITY_DEFAULT: usize = 256;

fn pack(steal: u32, real: u32) -> u64 {
    (u64::from(steal) << 32) | u64::from(real)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// A bounded single-owner, multi-thief ring of tasks.
pub struct Ring<T> {
    /// `(steal, real)` packed; CAS by the owner (pop, overflow) and thieves (steal).
    head: AtomicU64,
    /// Next slot to push; written only by the owner, read by thieves.
    tail: AtomicU32,
    /// `capacity - 1`.
    mask: u32,
    /// Slots; a slot in `[real, tail)` holds an initialized task owned by the ring.
    buffer: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: tasks move between threads only through the protocol above, which hands each
// initialized slot to exactly one reader; `T: Send` lets them cross threads.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; shared access is mediated by the atomics.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring of `capacity` slots (a power of two, at least 2, at most 2³¹).
    ///
    /// # Panics
    /// If `capacity` is not a power of two in that range (a configuration error).
    pub fn new(capacity: usize) -> Ring<T> {
        assert!(
            capacity.is_power_of_two() && (2..=1 << 31).contains(&capacity),
            "ring capacity {capacity} must be a power of two between 2 and 2^31"
        );
        let buffer = (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect::<Vec<_>>();
        Ring {
            head: AtomicU64::new(0),
            tail: AtomicU32::new(0),
            mask: capacity as u32 - 1,
            buffer: buffer.into_boxed_slice(),
        }
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.mask as usize + 1
    }

    /// Tasks in the ring (a snapshot when called by another CPU).
    pub fn len(&self) -> usize {
        let (_, real) = unpack(self.head.load(Ordering::Acquire));
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(real) as usize
    }

    /// Whether the ring looks empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Owner: pushes a task, or returns it when the ring is full (see [`Ring::push_overflow`]).
    ///
    /// Must be called only by the ring's owner.
    #[inline(always)]
    pub fn push(&self, task: T) -> Result<(), T> {
        let (steal, _) = unpack(self.head.load(Ordering::Acquire));
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.wrapping_sub(steal) > self.mask {
            return Err(task);
        }
        let slot = &self.buffer[(tail & self.mask) as usize];
        // SAFETY: `tail - steal < capacity`, so this slot is outside `[steal, tail)`: no task
        // lives in it and no thief is copying it; only the owner (us) writes at `tail`.
        slot.with_mut(|p| unsafe { (*p).write(task) });
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Owner: pushes `task`; when the ring is full, moves `task` and half the ring (oldest first)
    /// into `overflow` for the caller to put on the node's injector. Returns how many tasks went
    /// to `overflow`.
    pub fn push_overflow(&self, task: T, overflow: &mut Vec<T>) -> usize {
        let task = match self.push(task) {
            Ok(()) => return 0,
            Err(t) => t,
        };
        let before = overflow.len();
        let half = self.capacity() / 2;
        let prev = self.head.load(Ordering::Acquire);
        let (steal, real) = unpack(prev);
        if steal == real {
            let tail = self.tail.load(Ordering::Relaxed);
            let n = (tail.wrapping_sub(real) as usize).min(half) as u32;
            let next = real.wrapping_add(n);
            if n > 0
                && self
                    .head
                    .compare_exchange(prev, pack(next, next), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                for i in 0..n {
                    let slot = &self.buffer[(real.wrapping_add(i) & self.mask) as usize];
                    // SAFETY: the CAS moved `real` and `steal` past these `n` initialized slots,
                    // so no pop or steal can reach them; we take each value exactly once.
                    overflow.push(slot.with_mut(|p| unsafe { (*p).assume_init_read() }));
                }
            }
        }
        // Whether or not half the ring moved, the ring may still be full (a thief was copying):
        // the new task goes with the overflow batch, keeping FIFO order among the moved tasks.
        match self.push(task) {
            Ok(()) => {}
            Err(t) => overflow.push(t),
        }
        overflow.len() - before
    }

    /// Owner: pops the oldest task.
    #[inline(always)]
    pub fn pop(&self) -> Option<T> {
        let mut prev = self.head.load(Ordering::Acquire);
        loop {
            let (steal, real) = unpack(prev);
            let tail = self.tail.load(Ordering::Relaxed);
            if real == tail {
                return None;
            }
            let next_real = real.wrapping_add(1);
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                pack(steal, next_real)
            };
            match self
                .head
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let slot = &self.buffer[(real & self.mask) as usize];
                    // SAFETY: slot `real` was initialized (it is in `[real, tail)`) and the CAS
                    // made us its only reader: `real` moved past it before anyone else could.
                    return Some(slot.with_mut(|p| unsafe { (*p).assume_init_read() }));
                }
                Err(actual) => prev = actual,
            }
        }
    }

    /// Owner: claims up to `max` of the oldest tasks with one compare-exchange and hands them to
    /// `take` oldest first, each with its position in the claim (from 0) and the claim's size;
    /// returns that size.
    ///
    /// Must be called only by the ring's owner.
    #[inline(always)]
    pub fn pop_many(&self, max: u32, mut take: impl FnMut(u32, u32, T)) -> u32 {
        let mut prev = self.head.load(Ordering::Acquire);
        let (real, n) = loop {
            let (steal, real) = unpack(prev);
            let tail = self.tail.load(Ordering::Relaxed);
            // `tail - real <= capacity`: only the owner moves `tail`, and `real` never passes it.
            let n = tail.wrapping_sub(real).min(max);
            if n == 0 {
                return 0;
            }
            let next_real = real.wrapping_add(n);
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                pack(steal, next_real)
            };
            match self
                .head
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (real, n),
                Err(actual) => prev = actual,
            }
        };
        for i in 0..n {
            let slot = &self.buffer[(real.wrapping_add(i) & self.mask) as usize];
            // SAFETY: as in `pop`: the slots `[real, real + n)` were initialized and the CAS
            // moved `real` past all of them before any thief could claim them; each is read once.
            take(i, n, slot.with_mut(|p| unsafe { (*p).assume_init_read() }));
        }
        n
    }

    /// Thief: moves about half of `self`'s tasks (at most `max`) into `dst`, the thief's own
    /// ring, and returns how many moved. Returns 0 when `self` is empty, another steal is in
    /// flight, or `dst` has no room for the batch.
    ///
    /// Must be called only by `dst`'s owner, with `dst` a different ring from `self`.
    pub fn steal_half_into(&self, dst: &Ring<T>, max: usize) -> usize {
        let dst_tail = dst.tail.load(Ordering::Relaxed);
        let (dst_steal, _) = unpack(dst.head.load(Ordering::Acquire));
        let room = dst.capacity() as u32 - dst_tail.wrapping_sub(dst_steal);
        let mut prev = self.head.load(Ordering::Acquire);
        let (first, n) = loop {
            let (steal, real) = unpack(prev);
            if steal != real {
                return 0;
            }
            let tail = self.tail.load(Ordering::Acquire);
            let len = tail.wrapping_sub(real);
            if len > self.mask + 1 {
                // A stale `tail` read against a newer `head`: retry with fresh values.
                prev = self.head.load(Ordering::Acquire);
                continue;
            }
            let n = (len - len / 2)
                .min(max.min(u32::MAX as usize) as u32)
                .min(room);
            if n == 0 {
                return 0;
            }
            match self.head.compare_exchange_weak(
                prev,
                pack(steal, real.wrapping_add(n)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break (real, n),
                Err(actual) => prev = actual,
            }
        };
        for i in 0..n {
            let from = &self.buffer[(first.wrapping_add(i) & self.mask) as usize];
            let to = &dst.buffer[(dst_tail.wrapping_add(i) & dst.mask) as usize];
            // SAFETY: our CAS claimed `[first, first + n)`: those slots are initialized and
            // `steal` still points at `first`, so the owner cannot overwrite them; the `dst` slots
            // are free because `n <= room` and only `dst`'s owner (us) pushes there.
            let task = from.with_mut(|p| unsafe { (*p).assume_init_read() });
            // SAFETY: see above: the destination slot is unused and owned by the caller.
            to.with_mut(|p| unsafe { (*p).write(task) });
        }
        // Release the claim: `steal` catches up with wherever `real` is now.
        let mut prev = self.head.load(Ordering::Acquire);
        loop {
            let (_, real) = unpack(prev);
            match self.head.compare_exchange_weak(
                prev,
                pack(real, real),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => prev = actual,
            }
        }
        dst.tail.store(dst_tail.wrapping_add(n), Ordering::Release);
        n as usize
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// Most tasks a CPU claims from its ring's head at once into its [`YieldBatch`]: at most
/// `YIELD_BATCH_MAX - 1` queued tasks are hidden from thieves at any time (the first one claimed
/// runs at once).
pub const YIELD_BATCH_MAX: usize = 4;

/// The owner's private batch of tasks claimed from its ring's head for the yield path.
///
/// # Why
/// Popping the ring's front costs one compare-exchange (a locked instruction, a third of a
/// yield on the machines measured): the CAS is what keeps thieves off the slot. The yield path
/// instead claims up to [`YIELD_BATCH_MAX`] tasks with one CAS ([`Ring::pop_many`]) into this
/// batch and pops them with plain loads and stores, one per yield; the yielder itself always goes
/// to the ring's back (a release store), where it stays stealable. With `n` tasks runnable on a
/// CPU that is one CAS per `min(n - 1, YIELD_BATCH_MAX)` yields instead of one per yield.
///
/// # What thieves lose, and for how long
/// Tasks in the batch are invisible to thieves (they are in no ring). The scheduler bounds that:
/// - only `Scheduler::yield_task` fills the batch, and only when it is empty; each further
///   yield on the CPU runs the batch's next task, oldest first;
/// - every other owner decision (`next_task`, `requeue`, `prepare_park`) first pushes what is
///   left back to the ring's tail (`flush`), so the batch is empty whenever the CPU leaves the
///   yield fast path: a task blocks or finishes, the host's direct-run bound ends, the CPU parks;
/// - so at most `YIELD_BATCH_MAX - 1` tasks are hidden, each for at most the time the tasks
///   ahead of it in the batch run before they yield (a kernel's preemption quantum bounds each).
///
/// A flushed task goes behind the tasks that yielded since the claim (at most
/// `YIELD_BATCH_MAX - 1` of them): a one-round unfairness, never a starvation.
///
/// # Who touches what
/// Slots and the order of tasks: the owner only. `len`: written only by the owner (plain
/// stores), read by anyone for accounting snapshots (`Scheduler::queued_on`).
pub struct YieldBatch<T> {
    /// Tasks left; slots `[0, len)` are initialized, the oldest at `len - 1`.
    len: AtomicU32,
    /// The claimed tasks, newest first (so a pop reads `len - 1` and needs no second index).
    slots: [UnsafeCell<MaybeUninit<T>>; YIELD_BATCH_MAX],
}

// SAFETY: the slots are touched only by the owning CPU's thread (the contract of every method
// but `len`); tasks move between threads only through the ring, and `T: Send` lets them.
unsafe impl<T: Send> Send for YieldBatch<T> {}
// SAFETY: as above; `len` is atomic.
unsafe impl<T: Send> Sync for YieldBatch<T> {}

impl<T> Default for YieldBatch<T> {
    fn default() -> Self {
        YieldBatch {
            len: AtomicU32::new(0),
            slots: core::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        }
    }
}

impl<T> YieldBatch<T> {
    /// Tasks in the batch (a snapshot when read by another CPU).
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed) as usize
    }

    /// Whether the batch is empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Owner: takes the oldest task of the batch.
    ///
    /// Must be called only by the owner of the ring the batch is filled from.
    #[inline(always)]
    pub fn pop(&self) -> Option<T> {
        let len = self.len.load(Ordering::Relaxed);
        if len == 0 {
            return None;
        }
        self.len.store(len - 1, Ordering::Relaxed);
        let slot = &self.slots[(len - 1) as usize];
        // SAFETY: slots `[0, len)` are initialized (the invariant on `len`) and only the owner
        // (the caller) reads them; lowering `len` first hands this one to us alone.
        Some(slot.with_mut(|p| unsafe { (*p).assume_init_read() }))
    }

    /// Owner: the batch's oldest task; when the batch is empty, claims up to
    /// [`YIELD_BATCH_MAX`] of `ring`'s oldest tasks (one compare-exchange), returns the oldest of
    /// them and keeps the rest. `None` when both are empty.
    ///
    /// Must be called only by `ring`'s owner, the only user of this batch.
    #[inline(always)]
    pub fn pop_or_claim(&self, ring: &Ring<T>) -> Option<T> {
        if let Some(t) = self.pop() {
            return Some(t);
        }
        let mut first = None;
        let n = ring.pop_many(YIELD_BATCH_MAX as u32, |i, n, t| {
            if i == 0 {
                first = Some(t);
            } else {
                // Newest first: claim position `i` (1..n) goes to slot `n - 1 - i`.
                let slot = &self.slots[(n - 1 - i) as usize];
                // SAFETY: the batch is empty (`pop` above found nothing), so no slot holds a
                // task; only the owner (us) writes the slots.
                slot.with_mut(|p| unsafe { (*p).write(t) });
            }
        });
        if n > 1 {
            self.len.store(n - 1, Ordering::Relaxed);
        }
        first
    }
}

impl<T> Drop for YieldBatch<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::collections::VecDeque;
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fifo_push_pop_and_full() {
        let r = Ring::new(4);
        for i in 0..4 {
            r.push(i).unwrap();
        }
        assert_eq!(r.push(9), Err(9));
        assert_eq!((r.pop(), r.pop()), (Some(0), Some(1)));
        r.push(4).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            vec![r.pop(), r.pop(), r.pop(), r.pop()],
            vec![Some(2), Some(3), Some(4), None]
        );
    }

    #[test]
    fn steal_takes_half_rounded_up_and_bounded() {
        let (a, b) = (Ring::new(16), Ring::new(16));
        for i in 0..9 {
            a.push(i).unwrap();
        }
        assert_eq!(a.steal_half_into(&b, 64), 5);
        assert_eq!(a.len(), 4);
        assert_eq!(b.pop(), Some(0), "the oldest tasks move");
        assert_eq!(a.steal_half_into(&b, 1), 1, "bounded by max");
        assert_eq!(a.pop(), Some(6));
    }

    #[test]
    fn overflow_moves_half_plus_the_new_task() {
        let r = Ring::new(8);
        for i in 0..8 {
            r.push(i).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(r.push_overflow(8, &mut out), 4);
        assert_eq!(out, vec![0, 1, 2, 3]);
        assert_eq!(r.len(), 5);
        let rest: Vec<_> = core::iter::from_fn(|| r.pop()).collect();
        assert_eq!(rest, vec![4, 5, 6, 7, 8]);
    }

    #[test]
    fn pop_many_claims_the_oldest_up_to_max() {
        let r = Ring::new(8);
        for i in 0..6 {
            r.push(i).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(r.pop_many(4, |i, n, t| got.push((i, n, t))), 4);
        assert_eq!(got, vec![(0, 4, 0), (1, 4, 1), (2, 4, 2), (3, 4, 3)]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.pop_many(4, |_, _, _| {}), 2);
        assert_eq!(r.pop_many(4, |_, _, _| unreachable!("empty")), 0);
    }

    #[test]
    fn yield_batch_runs_claims_in_fifo_order_and_hides_only_the_rest() {
        let (r, b) = (Ring::new(16), YieldBatch::default());
        for i in 0..6 {
            r.push(i).unwrap();
        }
        // A yield: the claim runs task 0 and keeps 1..=3 hidden; the yielder (100) goes back.
        assert_eq!(b.pop_or_claim(&r), Some(0));
        r.push(100).unwrap();
        assert_eq!((b.len(), r.len()), (YIELD_BATCH_MAX - 1, 3));
        let thief = Ring::new(16);
        assert_eq!(
            r.steal_half_into(&thief, 16),
            2,
            "thieves see only the ring"
        );
        assert_eq!(thief.pop(), Some(4));
        assert_eq!(thief.pop(), Some(5));
        let order: Vec<_> = core::iter::from_fn(|| b.pop_or_claim(&r)).collect();
        assert_eq!(order, vec![1, 2, 3, 100]);
        assert!(b.is_empty() && r.is_empty());
    }

    #[test]
    fn yield_batch_drop_releases_its_tasks() {
        let counter = alloc::sync::Arc::new(());
        let (r, b) = (Ring::new(8), YieldBatch::default());
        for _ in 0..4 {
            r.push(counter.clone()).unwrap();
        }
        drop(b.pop_or_claim(&r));
        assert_eq!(b.len(), 3);
        drop(b);
        drop(r);
        assert_eq!(alloc::sync::Arc::strong_count(&counter), 1);
    }

    #[test]
    fn drop_releases_queued_tasks() {
        let counter = alloc::sync::Arc::new(());
        let r = Ring::new(8);
        for _ in 0..5 {
            r.push(counter.clone()).unwrap();
        }
        drop(r);
        assert_eq!(alloc::sync::Arc::strong_count(&counter), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        Pop,
        /// The yield path's take: the batch's next task, or a claim from the ring's front.
        YieldTake,
        Steal(usize),
        Overflow(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(Op::Push),
            3 => Just(Op::Pop),
            3 => Just(Op::YieldTake),
            1 => (1usize..40).prop_map(Op::Steal),
            1 => any::<u32>().prop_map(Op::Overflow),
        ]
    }

    proptest! {
        /// The ring (and a thief's ring it is robbed into, and the owner's yield batch) behave
        /// like three VecDeques: the batch takes the ring's oldest `YIELD_BATCH_MAX` at once.
        #[test]
        fn ring_matches_vecdeque_model(ops in proptest::collection::vec(op(), 0..400)) {
            let (r, thief, batch) = (Ring::new(16), Ring::new(16), YieldBatch::default());
            let (mut m, mut tm, mut bm) = (VecDeque::new(), VecDeque::new(), VecDeque::new());
            for op in ops {
                match op {
                    Op::Push(v) => {
                        let res = r.push(v);
                        if m.len() < 16 { prop_assert!(res.is_ok()); m.push_back(v); } else { prop_assert_eq!(res, Err(v)); }
                    }
                    Op::Pop => prop_assert_eq!(r.pop(), m.pop_front()),
                    Op::YieldTake => {
                        if bm.is_empty() {
                            let n = m.len().min(YIELD_BATCH_MAX);
                            bm.extend(m.drain(..n));
                        }
                        prop_assert_eq!(batch.pop_or_claim(&r), bm.pop_front());
                        prop_assert_eq!(batch.len(), bm.len());
                    }
                    Op::Steal(max) => {
                        let room = 16 - tm.len();
                        let n = r.steal_half_into(&thief, max);
                        let expect = (m.len() - m.len() / 2).min(max).min(room);
                        prop_assert_eq!(n, expect);
                        for _ in 0..n { tm.push_back(m.pop_front().unwrap()); }
                        // Drain the thief now and then so it has room again.
                        if tm.len() > 8 { while let Some(v) = thief.pop() { prop_assert_eq!(Some(v), tm.pop_front()); } }
                    }
                    Op::Overflow(v) => {
                        let mut out = Vec::new();
                        let moved = r.push_overflow(v, &mut out);
                        if m.len() < 16 {
                            prop_assert_eq!(moved, 0);
                            m.push_back(v);
                        } else {
                            let half: Vec<u32> = m.drain(..8).collect();
                            let mut expect = half;
                            m.push_back(v);
                            prop_assert_eq!(out.len(), moved);
                            prop_assert_eq!(&out[..], &expect[..]);
                            expect.clear();
                        }
                    }
                }
                prop_assert_eq!(r.len(), m.len());
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use alloc::vec::Vec;

    use loom::thread;

    use super::*;
    use crate::sync::Arc;

    /// Owner pushes and pops while a thief steals half: every task is taken exactly once.
    #[test]
    fn ring_push_pop_steal_every_task_once() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let owner = Arc::new(Ring::new(4));
            let thief_ring = Arc::new(Ring::new(4));
            for i in 0..3 {
                owner.push(i).unwrap();
            }
            let (o, t) = (owner.clone(), thief_ring.clone());
            let th = thread::spawn(move || {
                let n = o.steal_half_into(&t, 4);
                let mut got = Vec::new();
                for _ in 0..n {
                    got.push(t.pop().unwrap());
                }
                got
            });
            let mut mine = Vec::new();
            owner.push(3).unwrap();
            while let Some(v) = owner.pop() {
                mine.push(v);
            }
            let mut all = th.join().unwrap();
            // The thief may have claimed tasks the owner then found missing: what the owner
            // popped after the join completes the set.
            while let Some(v) = owner.pop() {
                mine.push(v);
            }
            all.extend(mine);
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2, 3]);
        });
    }

    /// The owner yields (the batch's next task or a claim from the ring's front, then the
    /// yielder back at the tail) while a thief steals half: every task is taken exactly once
    /// (the thief never gets one the owner runs or holds in its batch).
    #[test]
    fn yield_batch_claim_and_steal_every_task_once() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let owner = Arc::new(Ring::new(8));
            let thief_ring = Arc::new(Ring::new(8));
            for i in 1..5 {
                owner.push(i).unwrap();
            }
            let (o, t) = (owner.clone(), thief_ring.clone());
            let th = thread::spawn(move || {
                let n = o.steal_half_into(&t, 8);
                (0..n).map(|_| t.pop().unwrap()).collect::<Vec<_>>()
            });
            // Two yields of the running task 0: each runs the next task and requeues the
            // previous one, as `Scheduler::yield_task` does.
            let batch = YieldBatch::default();
            let mut running = 0;
            let mut ran = Vec::new();
            for _ in 0..2 {
                if let Some(next) = batch.pop_or_claim(&owner) {
                    owner.push(running).unwrap();
                    running = next;
                    ran.push(next);
                }
            }
            let mut all = th.join().unwrap();
            // A task running on the owner or hidden in its batch was never in reach of the
            // thief: a duplicate below would show it was taken twice.
            assert!(ran.len() <= 2);
            all.push(running);
            while let Some(v) = batch.pop() {
                all.push(v);
            }
            while let Some(v) = owner.pop() {
                all.push(v);
            }
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2, 3, 4]);
        });
    }

    /// Two thieves race for the same ring: no task is taken twice or lost.
    #[test]
    fn ring_two_thieves() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let owner = Arc::new(Ring::new(4));
            for i in 0..4 {
                owner.push(i).unwrap();
            }
            let spawn = |o: Arc<Ring<i32>>| {
                thread::spawn(move || {
                    let mine = Ring::new(4);
                    let n = o.steal_half_into(&mine, 4);
                    (0..n).map(|_| mine.pop().unwrap()).collect::<Vec<_>>()
                })
            };
            let (a, b) = (spawn(owner.clone()), spawn(owner.clone()));
            let mut all = a.join().unwrap();
            all.extend(b.join().unwrap());
            while let Some(v) = owner.pop() {
                all.push(v);
            }
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2, 3]);
        });
    }
}
