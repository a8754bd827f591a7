//! The task-blocking mutex and condvar under cross-core contention.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use manycore_sched::SpawnHint;
use manycore_sched::rt::{self, Condvar, Mutex, Runtime};

/// 16 tasks spread over the CPUs each add 1 to a shared counter 2000 times, yielding while they
/// hold the lock so that others find it taken and block. The counter must be exact, and the test
/// checks that contention really happened (some lockers found the mutex held).
#[test]
fn contended_mutex_keeps_the_counter_exact() {
    const TASKS: usize = 16;
    const ROUNDS: usize = 2000;
    let rt = Runtime::new().expect("runtime");
    let n = rt.num_cpus();
    let counter = Arc::new(Mutex::new(0u64));
    let found_held = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..TASKS)
        .map(|t| {
            let (counter, found_held) = (counter.clone(), found_held.clone());
            rt.spawn_with(
                format!("locker-{t}"),
                SpawnHint {
                    cpu: Some(t % n),
                    node: None,
                },
                move || {
                    for i in 0..ROUNDS {
                        let mut g = match counter.try_lock() {
                            Some(g) => g,
                            None => {
                                found_held.fetch_add(1, Ordering::Relaxed);
                                counter.lock()
                            }
                        };
                        let v = *g;
                        if i % 8 == 0 {
                            rt::yield_now(); // hold the lock across a switch
                        }
                        *g = v + 1;
                    }
                },
            )
            .expect("spawn")
        })
        .collect();
    for h in hs {
        h.join().expect("locker");
    }
    assert_eq!(*counter.lock(), (TASKS * ROUNDS) as u64);
    assert!(
        found_held.load(Ordering::Relaxed) > 0,
        "the test must exercise contention"
    );
    rt.shutdown();
}

/// A bounded queue built from the mutex and two condvars moves 50 000 items from two producers
/// to two consumers on different CPUs; every item arrives exactly once.
#[test]
fn condvar_queue_delivers_every_item_once() {
    const ITEMS: u64 = 50_000;
    struct Q {
        items: Mutex<Vec<u64>>,
        not_full: Condvar,
        not_empty: Condvar,
    }
    let rt = Runtime::new().expect("runtime");
    let n = rt.num_cpus();
    let q = Arc::new(Q {
        items: Mutex::new(Vec::new()),
        not_full: Condvar::new(),
        not_empty: Condvar::new(),
    });
    let hint = |c: usize| SpawnHint {
        cpu: Some(c % n),
        node: None,
    };
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = q.clone();
            rt.spawn_with(format!("producer-{p}"), hint(p as usize), move || {
                for i in (p..ITEMS).step_by(2) {
                    let g = q.items.lock();
                    let mut g = q.not_full.wait_until(g, |v| v.len() < 8);
                    g.push(i);
                    drop(g);
                    q.not_empty.notify_one();
                }
            })
            .expect("spawn")
        })
        .collect();
    let consumers: Vec<_> = (0..2u64)
        .map(|c| {
            let q = q.clone();
            rt.spawn_with(format!("consumer-{c}"), hint(c as usize + 1), move || {
                let mut got = Vec::new();
                for _ in 0..ITEMS / 2 {
                    let g = q.items.lock();
                    let mut g = q.not_empty.wait_until(g, |v| !v.is_empty());
                    got.push(g.remove(0));
                    drop(g);
                    q.not_full.notify_one();
                }
                got
            })
            .expect("spawn")
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().expect("consumer"))
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..ITEMS).collect::<Vec<_>>());
    rt.shutdown();
}
