//! The next slot: where a CPU keeps the task it just woke, to run it next.
//!
//! Running the wakee next keeps a ping-pong pair or a request/response chain on one warm cache.
//! Unlike Tokio's LIFO slot, another CPU may take the task once it has waited longer than a grace
//! period (tokio#4941: an unstealable slot strands the task behind a long-running one). The slot
//! records when the task entered it; a thief takes it only if `now - since >= grace_ns`.
//!
//! The owner bounds how many times in a row it runs from the slot (`next_streak_max` in
//! [`crate::Config`]), so two tasks waking each other cannot starve the ring.

use crate::sync::{AtomicBool, AtomicU64, Ordering, SpinLock};

/// `since` of a task put without a timestamp ([`NextSlot::put_unstamped`]).
const UNSTAMPED: u64 = u64::MAX;

/// A one-task slot, owner-filled, stealable after a grace period.
pub struct NextSlot<T> {
    /// The task and the time (ns) it entered; written by the owner, taken by owner or thief.
    slot: SpinLock<Option<(T, u64)>>,
    /// Whether `slot` holds a task: set by the owner's `put`, cleared by whoever takes it (under
    /// the lock). Lets the owner's `take` skip the lock when the slot is empty: only the owner
    /// fills the slot, so a `false` it reads cannot be stale in the direction that matters.
    occupied: AtomicBool,
    /// When the task now in the slot entered it (written by the owner's `put`). Lets a thief
    /// see that the slot's task is still within its grace period without taking the lock (a
    /// read-modify-write on the busy owner's line).
    since_ns: AtomicU64,
}

impl<T> Default for NextSlot<T> {
    fn default() -> Self {
        NextSlot {
            slot: SpinLock::new(None),
            occupied: AtomicBool::new(false),
            since_ns: AtomicU64::new(0),
        }
    }
}

impl<T> NextSlot<T> {
    /// Owner: puts `task` (entered at `now_ns`) in the slot and returns the task it displaced,
    /// which the caller queues on its ring.
    pub fn put(&self, task: T, now_ns: u64) -> Option<T> {
        self.slot.with(|s| {
            self.occupied.store(true, Ordering::Relaxed);
            self.since_ns.store(now_ns, Ordering::Relaxed);
            s.replace((task, now_ns)).map(|(t, _)| t)
        })
    }

    /// Owner: puts `task` without reading a clock (a clock read is a quarter of a spawn's cost
    /// on some machines) and returns the task it displaced. The first thief to find it stamps
    /// it with its own time (`steal`), and the grace period runs from that stamp: never earlier
    /// than from the real entry, at most one probe interval later.
    pub fn put_unstamped(&self, task: T) -> Option<T> {
        self.put(task, UNSTAMPED)
    }

    /// Owner: takes the task.
    pub fn take(&self) -> Option<T> {
        if !self.occupied.load(Ordering::Relaxed) {
            return None;
        }
        self.slot.with(|s| {
            self.occupied.store(false, Ordering::Relaxed);
            s.take().map(|(t, _)| t)
        })
    }

    /// Owner: takes the task if `pred` accepts it (decided under the slot's lock, so no thief
    /// takes it meanwhile).
    pub fn take_if(&self, pred: impl FnOnce(&T) -> bool) -> Option<T> {
        if !self.occupied.load(Ordering::Relaxed) {
            return None;
        }
        self.slot.with(|s| match s {
            Some((t, _)) if pred(t) => {
                self.occupied.store(false, Ordering::Relaxed);
                s.take().map(|(t, _)| t)
            }
            _ => None,
        })
    }

    /// Thief: takes the task if it has waited at least `grace_ns`. Never waits for the lock.
    ///
    /// A task put with [`NextSlot::put_unstamped`] is stamped with `now_ns` by the first thief
    /// that finds it (under the lock) and is not taken by that probe.
    pub fn steal(&self, now_ns: u64, grace_ns: u64) -> Option<T> {
        // Read-only pre-checks (may be stale; the locked check below decides).
        if !self.occupied.load(Ordering::Relaxed) {
            return None;
        }
        let since = self.since_ns.load(Ordering::Relaxed);
        if since != UNSTAMPED && now_ns.saturating_sub(since) < grace_ns {
            return None;
        }
        self.slot
            .try_with(|s| match s {
                Some((_, since)) if *since == UNSTAMPED => {
                    *since = now_ns;
                    self.since_ns.store(now_ns, Ordering::Relaxed);
                    None
                }
                Some((_, since)) if now_ns.saturating_sub(*since) >= grace_ns => {
                    self.occupied.store(false, Ordering::Relaxed);
                    s.take().map(|(t, _)| t)
                }
                _ => None,
            })
            .flatten()
    }

    /// When the task now in the slot entered it, `None` when the slot looks empty (a lock-free
    /// snapshot that may race with the owner; for idle CPUs choosing how long to sleep).
    /// A task put unstamped and not yet probed by a thief reports `now_ns`: its grace period
    /// cannot have started before.
    pub fn occupied_since_ns(&self, now_ns: u64) -> Option<u64> {
        self.occupied
            .load(Ordering::Relaxed)
            .then(|| match self.since_ns.load(Ordering::Relaxed) {
                UNSTAMPED => now_ns,
                since => since,
            })
    }

    /// Owner: whether a task waits in the slot, without the lock (one plain load: the yield
    /// path asks on every yield). Only the owner fills the slot, so the owner never sees `false`
    /// while its own task is there; a `true` may be stale when a thief just took the task, and
    /// the caller's [`NextSlot::take`] then finds nothing.
    #[inline(always)]
    pub fn owner_sees_occupied(&self) -> bool {
        self.occupied.load(Ordering::Relaxed)
    }

    /// Whether a task waits in the slot (may race; for idle checks).
    pub fn is_occupied(&self) -> bool {
        self.slot.try_with(|s| s.is_some()).unwrap_or(true)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn grace_period_protects_a_fresh_task() {
        let s = NextSlot::default();
        assert_eq!(s.put(1, 1_000), None);
        assert_eq!(s.steal(1_500, 1_000), None, "too fresh to steal");
        assert_eq!(s.steal(2_000, 1_000), Some(1));
        assert_eq!(s.put(2, 3_000), None);
        assert_eq!(
            s.put(3, 3_100),
            Some(2),
            "a newer wakee displaces the older one"
        );
        assert_eq!(s.take(), Some(3));
        assert!(!s.is_occupied());
    }

    /// An unstamped task is never taken by the probe that finds it: the grace period runs from
    /// the first thief's look, so it cannot be cut short by a missing timestamp.
    #[test]
    fn unstamped_task_gets_its_grace_from_the_first_look() {
        let s = NextSlot::default();
        assert_eq!(s.put_unstamped(1), None);
        assert_eq!(s.occupied_since_ns(5_000), Some(5_000));
        assert_eq!(
            s.steal(10_000, 1_000),
            None,
            "first look stamps, takes nothing"
        );
        assert_eq!(s.occupied_since_ns(99_999), Some(10_000));
        assert_eq!(
            s.steal(10_500, 1_000),
            None,
            "still within the grace period"
        );
        assert_eq!(s.steal(11_000, 1_000), Some(1));
        assert_eq!(s.put_unstamped(2), None);
        assert_eq!(
            s.steal(50_000, 1_000),
            None,
            "a new occupant starts unstamped again"
        );
        assert_eq!(s.take(), Some(2));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::thread;

    use super::*;
    use crate::sync::Arc;

    /// Owner take races a thief's steal: exactly one of them gets the task.
    #[test]
    fn next_slot_owner_and_thief_never_both_get_it() {
        loom::model(|| {
            let s = Arc::new(NextSlot::default());
            s.put(7, 0);
            let t = s.clone();
            let thief = thread::spawn(move || t.steal(10, 5));
            let mine = s.take();
            let theirs = thief.join().unwrap();
            assert!(
                mine.is_some() ^ theirs.is_some(),
                "exactly one side gets the task"
            );
            assert_eq!(mine.or(theirs), Some(7));
        });
    }

    /// An unstamped task: the owner's `take_if` races a thief that looks twice (the first look
    /// stamps, the second is past the grace period). Exactly one side gets the task, and the
    /// thief never takes it on its first look.
    #[test]
    fn next_slot_unstamped_take_if_and_thief_never_both_get_it() {
        loom::model(|| {
            let s = Arc::new(NextSlot::default());
            s.put_unstamped(7);
            let t = s.clone();
            let thief = thread::spawn(move || {
                let first = t.steal(10, 5);
                assert_eq!(first, None, "the first look only stamps");
                t.steal(20, 5)
            });
            let mine = s.take_if(|&v| v == 7);
            let theirs = thief.join().unwrap();
            assert!(
                mine.is_some() ^ theirs.is_some(),
                "exactly one side gets the task"
            );
            assert_eq!(mine.or(theirs), Some(7));
        });
    }
}
