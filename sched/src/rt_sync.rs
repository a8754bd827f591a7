//! Blocking primitives for runtime tasks: a task-blocking [`Mutex`], a bounded MPMC
//! [`channel`], [`sleep`], and [`block_on`] with a real `Waker`, all built on the runtime's
//! block/wake token ([`rt::block`], [`rt::TaskWaker`]). Waiters are queued FIFO; a woken waiter
//! re-checks its condition (wakeups may be spurious). Outside tasks they fall back to the OS
//! thread (short timed parks), so they also work between a task and a plain thread.

use std::boxed::Box;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex as StdMutex, MutexGuard as StdGuard, OnceLock};
use std::task::{Context as TaskCx, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::rt::{self, TaskWaker};

/// Waiters of one primitive: tasks by waker, threads by a condvar.
#[derive(Default)]
struct Waiters {
    tasks: VecDeque<TaskWaker>,
}

fn wait_on<'a, T>(
    lock: &'a StdMutex<T>,
    mut guard: StdGuard<'a, T>,
    waiters: impl FnOnce(&mut T) -> &mut Waiters,
    cv: &Condvar,
) -> StdGuard<'a, T>
where
    T: Send,
{
    match rt::current_waker() {
        Some(w) => {
            waiters(&mut guard).tasks.push_back(w);
            drop(guard);
            rt::block();
            lock.lock().unwrap_or_else(|p| p.into_inner())
        }
        None => {
            cv.wait_timeout(guard, Duration::from_millis(1))
                .unwrap_or_else(|p| p.into_inner())
                .0
        }
    }
}

fn wake_one(w: &mut Waiters, cv: &Condvar) {
    if let Some(t) = w.tasks.pop_front() {
        t.wake();
    }
    cv.notify_one();
}

/// A mutual-exclusion lock whose waiters block their task, not their worker thread.
pub struct Mutex<T> {
    state: StdMutex<(bool, Waiters)>,
    cv: Condvar,
    value: std::cell::UnsafeCell<T>,
    /// How many times a locker had to wait (for tests and stats).
    waits: AtomicU64,
}

// SAFETY: the value is reached only through a guard, and `locked` admits one guard at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: the mutex owns its value.
unsafe impl<T: Send> Send for Mutex<T> {}

/// Access to a locked [`Mutex`]'s value; unlocks on drop.
pub struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            state: StdMutex::new((false, Waiters::default())),
            cv: Condvar::new(),
            value: std::cell::UnsafeCell::new(value),
            waits: AtomicU64::new(0),
        }
    }

    /// Locks, blocking the calling task (or thread) while another holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.0 {
            self.waits.fetch_add(1, Ordering::Relaxed);
            st = wait_on(&self.state, st, |s| &mut s.1, &self.cv);
        }
        st.0 = true;
        MutexGuard { m: self }
    }

    /// Times a locker found the mutex held and waited.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (the mutex is locked) until it drops.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        let mut st = self.m.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = false;
        wake_one(&mut st.1, &self.m.cv);
    }
}

struct ChanState<T> {
    queue: VecDeque<T>,
    senders_waiting: Waiters,
    receivers_waiting: Waiters,
    closed: bool,
}

struct Chan<T> {
    state: StdMutex<ChanState<T>>,
    capacity: usize,
    cv: Condvar,
}

/// The sending half of a [`channel`].
pub struct Sender<T>(Arc<Chan<T>>);
/// The receiving half of a [`channel`].
pub struct Receiver<T>(Arc<Chan<T>>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}
impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver(self.0.clone())
    }
}

/// A bounded multi-producer multi-consumer FIFO channel of `capacity` (at least 1) messages.
pub fn channel<T: Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: StdMutex::new(ChanState {
            queue: VecDeque::new(),
            senders_waiting: Waiters::default(),
            receivers_waiting: Waiters::default(),
            closed: false,
        }),
        capacity: capacity.max(1),
        cv: Condvar::new(),
    });
    (Sender(chan.clone()), Receiver(chan))
}

impl<T: Send> Sender<T> {
    /// Sends, blocking while the channel is full. Fails (returning the message) once closed.
    pub fn send(&self, msg: T) -> Result<(), T> {
        let c = &self.0;
        let mut st = c.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.closed {
                return Err(msg);
            }
            if st.queue.len() < c.capacity {
                st.queue.push_back(msg);
                wake_one(&mut st.receivers_waiting, &c.cv);
                return Ok(());
            }
            st = wait_on(&c.state, st, |s| &mut s.senders_waiting, &c.cv);
        }
    }

    /// Closes the channel: receivers drain what is queued, then get `None`.
    pub fn close(&self) {
        let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        st.closed = true;
        let mut all: Vec<TaskWaker> = st.receivers_waiting.tasks.drain(..).collect();
        all.extend(st.senders_waiting.tasks.drain(..));
        for w in all {
            w.wake();
        }
        self.0.cv.notify_all();
    }
}

impl<T: Send> Receiver<T> {
    /// Receives the oldest message, blocking while empty; `None` once closed and drained.
    pub fn recv(&self) -> Option<T> {
        let c = &self.0;
        let mut st = c.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(m) = st.queue.pop_front() {
                wake_one(&mut st.senders_waiting, &c.cv);
                return Some(m);
            }
            if st.closed {
                return None;
            }
            st = wait_on(&c.state, st, |s| &mut s.receivers_waiting, &c.cv);
        }
    }
}

struct Timer {
    deadline: Instant,
    waker: TaskWaker,
    fired: Arc<AtomicBool>,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        self.deadline == o.deadline
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.deadline.cmp(&self.deadline) // min-heap
    }
}

struct Timers {
    heap: StdMutex<BinaryHeap<Timer>>,
    cv: Condvar,
}

/// One process-wide timer thread, started on first use: it wakes sleeping tasks at their
/// deadlines, so a sleeping task costs no worker time.
fn timers() -> &'static Timers {
    static T: OnceLock<&'static Timers> = OnceLock::new();
    T.get_or_init(|| {
        let t: &'static Timers = Box::leak(Box::new(Timers {
            heap: StdMutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
        }));
        let _ = thread::Builder::new()
            .name("mc-timers".into())
            .spawn(move || {
                let mut heap = t.heap.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let now = Instant::now();
                    while heap.peek().is_some_and(|x| x.deadline <= now) {
                        if let Some(x) = heap.pop() {
                            x.fired.store(true, Ordering::Release);
                            x.waker.wake();
                        }
                    }
                    let wait = heap
                        .peek()
                        .map_or(Duration::from_secs(1), |x| x.deadline - now);
                    heap =
                        t.cv.wait_timeout(heap, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                }
            });
        t
    })
}

/// Suspends the calling task for `d` (its worker runs other tasks meanwhile); outside a task,
/// sleeps the thread.
pub fn sleep(d: Duration) {
    let Some(waker) = rt::current_waker() else {
        thread::sleep(d);
        return;
    };
    let deadline = Instant::now() + d;
    let fired = Arc::new(AtomicBool::new(false));
    {
        let t = timers();
        t.heap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Timer {
                deadline,
                waker,
                fired: fired.clone(),
            });
        t.cv.notify_one();
    }
    while !fired.load(Ordering::Acquire) {
        rt::block();
    }
}

struct BlockWaker(TaskWaker, Arc<AtomicBool>);

impl Wake for BlockWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.1.store(true, Ordering::Release);
        self.0.wake();
    }
}

/// Runs a future to completion inside a task: while it is pending the *task* blocks (its worker
/// runs other tasks), and the future's `Waker` unblocks it. Outside a task, polls with short
/// thread parks.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match rt::current_waker() {
        Some(tw) => {
            let woken = Arc::new(AtomicBool::new(true));
            let waker = Waker::from(Arc::new(BlockWaker(tw, woken.clone())));
            let mut cx = TaskCx::from_waker(&waker);
            loop {
                woken.store(false, Ordering::Release);
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
                while !woken.load(Ordering::Acquire) {
                    rt::block();
                }
            }
        }
        None => {
            let thread = thread::current();
            struct ThreadWaker(thread::Thread);
            impl Wake for ThreadWaker {
                fn wake(self: Arc<Self>) {
                    self.0.unpark();
                }
            }
            let waker = Waker::from(Arc::new(ThreadWaker(thread)));
            let mut cx = TaskCx::from_waker(&waker);
            loop {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
                thread::park_timeout(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::Runtime;

    #[test]
    fn contended_mutex_keeps_the_counter_exact() {
        let rt = Runtime::new().unwrap();
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let m = m.clone();
                rt.spawn(move || {
                    for _ in 0..500 {
                        let mut g = m.lock();
                        let v = *g;
                        rt::yield_now(); // hold the lock across a switch: others must wait
                        *g = v + 1;
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(*m.lock(), 16 * 500);
        assert!(m.waits() > 0, "the test created contention");
        rt.shutdown();
    }

    #[test]
    fn channel_keeps_order_per_producer_and_loses_nothing_across_cores() {
        let rt = Runtime::new().unwrap();
        let (tx, rx) = channel::<(u32, u32)>(4);
        let producers = 4u32;
        let per = 5_000u32;
        let ps: Vec<_> = (0..producers)
            .map(|p| {
                let tx = tx.clone();
                rt.spawn(move || (0..per).for_each(|i| tx.send((p, i)).unwrap()))
            })
            .collect();
        let cs: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(move || {
                    let mut got = Vec::new();
                    while let Some(m) = rx.recv() {
                        got.push(m);
                    }
                    got
                })
            })
            .collect();
        ps.into_iter().for_each(|h| h.join().unwrap());
        tx.close();
        let mut all = Vec::new();
        for c in cs {
            let got = c.join().unwrap();
            // Each consumer sees each producer's messages in the order they were sent.
            for p in 0..producers {
                let seq: Vec<u32> = got.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                assert!(
                    seq.windows(2).all(|w| w[0] < w[1]),
                    "producer {p} out of order"
                );
            }
            all.extend(got);
        }
        all.sort_unstable();
        let want: Vec<(u32, u32)> = (0..producers)
            .flat_map(|p| (0..per).map(move |i| (p, i)))
            .collect();
        assert_eq!(all, want, "every message received exactly once");
        rt.shutdown();
    }

    #[test]
    fn sleep_suspends_the_task_not_the_worker() {
        let host = manycore_topology::Topology::host().unwrap();
        let rt = crate::rt::Builder::new()
            .cpus([host.pu(0).os_index as usize].into_iter().collect())
            .build()
            .unwrap();
        let t0 = Instant::now();
        let sleeper = rt.spawn(|| {
            sleep(Duration::from_millis(50));
            Instant::now()
        });
        // On the same single CPU, another task runs while the first sleeps.
        let other = rt.spawn(Instant::now);
        let ran_at = other.join().unwrap();
        let woke_at = sleeper.join().unwrap();
        assert!(
            ran_at < woke_at,
            "the worker ran another task during the sleep"
        );
        assert!(woke_at - t0 >= Duration::from_millis(50));
        rt.shutdown();
    }

    #[test]
    fn block_on_parks_the_task_until_its_waker_fires() {
        let rt = Runtime::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        struct Once(Arc<AtomicBool>, std::sync::mpsc::Sender<Waker>, bool);
        impl Future for Once {
            type Output = u32;
            fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<u32> {
                if self.0.load(Ordering::Acquire) {
                    return Poll::Ready(9);
                }
                if !self.2 {
                    self.2 = true;
                    let _ = self.1.send(cx.waker().clone());
                }
                Poll::Pending
            }
        }
        let flag = Arc::new(AtomicBool::new(false));
        let f2 = flag.clone();
        let h = rt.spawn(move || block_on(Once(f2, tx, false)));
        let waker = rx.recv().unwrap();
        thread::sleep(Duration::from_millis(10));
        flag.store(true, Ordering::Release);
        waker.wake();
        assert_eq!(h.join().unwrap(), 9);
        rt.shutdown();
    }
}
