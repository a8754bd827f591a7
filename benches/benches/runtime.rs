//! The runtime's yield, wake-to-run and spawn+join against OS threads and tokio, in one run:
//! the same measurements as `manycore bench` (src/cli/bench/rows.rs), under criterion.
//!
//! Run: `cargo bench -p manycore-benches --bench runtime`
//!
//! Every manycore and tokio figure is timed inside one of the runtime's own tasks
//! (`iter_custom`), so building runtimes and spawning the measuring task is never counted.
//! Placement matches `manycore bench`: one-CPU runtimes and the tokio current-thread runtime on
//! the host's first CPU, two-CPU rows on the first and last; the main thread's pin is undone
//! after the rows that need it, so later runtimes' threads do not inherit it.
//! Units: per yield; per one-way handoff (`pingpong/*`, round trip halved); per spawn+join.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use manycore_sched::rt::{self, Builder, Event, FutexPingPong, Runtime};
use manycore_sched::{NoStealPolicy, SpawnHint};
use manycore_topology::Topology;

fn host_cpus() -> (usize, usize) {
    let t = Topology::host().expect("host topology");
    (
        t.pu(0).os_index as usize,
        t.pu(t.num_cpus() - 1).os_index as usize,
    )
}

fn pin(os_cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in bounds for the host's
    // CPUs; the call reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(os_cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Pins the calling thread (the benchmark's main thread) for as long as it lives, then restores
/// its affinity, as `manycore bench`'s `Pin` does: a pin left behind would be inherited by
/// threads created later (tokio's workers in `spawn_join`, which then all shared one CPU).
struct PinGuard(libc::cpu_set_t);

impl PinGuard {
    fn to(os_cpu: usize) -> PinGuard {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the call writes this set only.
        let saved = unsafe {
            let mut saved: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut saved);
            saved
        };
        pin(os_cpu);
        PinGuard(saved)
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        // SAFETY: restores the mask read in `to`.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
    }
}

fn on(cpu: usize) -> SpawnHint {
    SpawnHint {
        cpu: Some(cpu),
        node: None,
    }
}

fn yields(c: &mut Criterion) {
    let (os0, _) = host_cpus();
    let mut g = c.benchmark_group("yield");
    // Four tasks on one CPU; each measured yield lets the three others yield once.
    let rt = Builder::new()
        .cpus([os0].into_iter().collect())
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let others: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            rt.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    rt::yield_now();
                }
            })
        })
        .collect();
    g.bench_function("manycore", |b| {
        b.iter_custom(|iters| {
            rt.spawn(move || {
                let t = Instant::now();
                for _ in 0..iters {
                    rt::yield_now();
                }
                t.elapsed() / 4
            })
            .join()
            .expect("measuring task")
        })
    });
    stop.store(true, Ordering::Relaxed);
    for o in others {
        o.join().expect("yielder");
    }
    rt.shutdown();

    // As `manycore bench`: the current-thread runtime runs on the calling thread, pinned to the
    // same CPU as the manycore row's worker.
    let pin_guard = PinGuard::to(os0);
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async move {
                let stop = Arc::new(AtomicBool::new(false));
                let others: Vec<_> = (0..3)
                    .map(|_| {
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                tokio::task::yield_now().await;
                            }
                        })
                    })
                    .collect();
                let d = tokio::spawn(async move {
                    let t = Instant::now();
                    for _ in 0..iters {
                        tokio::task::yield_now().await;
                    }
                    t.elapsed() / 4
                })
                .await
                .expect("measuring task");
                stop.store(true, Ordering::Relaxed);
                for o in others {
                    o.await.expect("yielder");
                }
                d
            })
        })
    });
    g.bench_function("os_sched_yield", |b| {
        b.iter(|| {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() }
        })
    });
    drop(pin_guard);
    g.finish();
}

/// A ping-pong pair on `rt` through two events; returns the measuring closure's total for
/// `iters` rounds, halved (one-way).
fn manycore_pingpong(rt: &Runtime, a_cpu: usize, b_cpu: usize, iters: u64) -> Duration {
    let (ping, pong) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let (p2, q2) = (ping.clone(), pong.clone());
    let b = rt
        .spawn_with("pong", on(b_cpu), move || {
            for _ in 0..iters {
                p2.wait();
                q2.set();
            }
        })
        .expect("hint in range");
    let a = rt
        .spawn_with("ping", on(a_cpu), move || {
            let t = Instant::now();
            for _ in 0..iters {
                ping.set();
                pong.wait();
            }
            t.elapsed() / 2
        })
        .expect("hint in range");
    let d = a.join().expect("ping");
    b.join().expect("pong");
    d
}

fn futex_pingpong(cpus: (usize, usize), iters: u64) -> Duration {
    let (mut pp, other) = FutexPingPong::start(iters, move || {
        pin(cpus.1);
        Ok(())
    });
    let d = std::thread::spawn(move || {
        pin(cpus.0);
        let t = Instant::now();
        for _ in 0..iters {
            pp.round();
        }
        t.elapsed() / 2
    })
    .join()
    .expect("pinger");
    other.join().expect("ponger").expect("ponger setup");
    d
}

fn pingpong(c: &mut Criterion) {
    let (os0, os1) = host_cpus();
    let mut g = c.benchmark_group("pingpong");
    g.sample_size(20);
    let same = Builder::new()
        .cpus([os0].into_iter().collect())
        .build()
        .expect("runtime");
    g.bench_function("same_core/manycore", |b| {
        b.iter_custom(|iters| manycore_pingpong(&same, 0, 0, iters))
    });
    same.shutdown();
    g.bench_function("same_core/os_futex", |b| {
        b.iter_custom(|iters| futex_pingpong((os0, os0), iters))
    });
    if os0 != os1 {
        // nosteal: wakes go to the task's last CPU, so every handoff crosses cores (see
        // `manycore bench`'s docs for why the default policy would co-locate the pair).
        let cross = Builder::new()
            .cpus([os0, os1].into_iter().collect())
            .policy(Box::new(NoStealPolicy))
            .build()
            .expect("runtime");
        g.bench_function("cross_core/manycore", |b| {
            b.iter_custom(|iters| manycore_pingpong(&cross, 0, 1, iters))
        });
        cross.shutdown();
        g.bench_function("cross_core/os_futex", |b| {
            b.iter_custom(|iters| futex_pingpong((os0, os1), iters))
        });
        g.bench_function("cross_core/tokio", |b| {
            b.iter_custom(|iters| {
                let (ping, pong) = (
                    Arc::new(tokio::sync::Notify::new()),
                    Arc::new(tokio::sync::Notify::new()),
                );
                let (p2, q2) = (ping.clone(), pong.clone());
                let other = std::thread::spawn(move || {
                    pin(os1);
                    tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("tokio")
                        .block_on(async move {
                            for _ in 0..iters {
                                p2.notified().await;
                                q2.notify_one();
                            }
                        })
                });
                let d = std::thread::spawn(move || {
                    pin(os0);
                    tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("tokio")
                        .block_on(async move {
                            let t = Instant::now();
                            for _ in 0..iters {
                                ping.notify_one();
                                pong.notified().await;
                            }
                            t.elapsed() / 2
                        })
                })
                .join()
                .expect("pinger");
                other.join().expect("ponger");
                d
            })
        });
    }
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let (os0, os1) = host_cpus();
    let mut g = c.benchmark_group("spawn_join");
    // `manycore`: the default runtime (a join runs a child that has not started inline);
    // `manycore_no_inline`: `join_inline(false)`, every child on its own stack after a switch.
    // The same two rows as `manycore bench`.
    for (name, inline) in [("manycore", true), ("manycore_no_inline", false)] {
        let rt = Builder::new()
            .cpus([os0, os1].into_iter().collect())
            .join_inline(inline)
            .build()
            .expect("runtime");
        // Warm the stack pool once, as the goal states ("stacks warm in the pool").
        rt.spawn(|| rt::spawn(|| ()).expect("in a task").join().expect("child"))
            .join()
            .expect("warm-up");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.spawn(move || {
                    let t = Instant::now();
                    for i in 0..iters {
                        let h = rt::spawn(move || black_box(i)).expect("in a task");
                        black_box(h.join().expect("child"));
                    }
                    t.elapsed()
                })
                .join()
                .expect("measuring task")
            })
        });
        rt.shutdown();
    }
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async move {
                tokio::spawn(async move {
                    let t = Instant::now();
                    for i in 0..iters {
                        black_box(
                            tokio::spawn(async move { black_box(i) })
                                .await
                                .expect("child"),
                        );
                    }
                    t.elapsed()
                })
                .await
                .expect("measuring task")
            })
        })
    });
    g.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion::criterion_group!(benches, yields, pingpong, spawn_join);
}
use group::benches;
criterion::criterion_main!(benches);
