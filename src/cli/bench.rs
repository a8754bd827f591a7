//! `manycore bench`: context-switch, yield, wake-to-run and spawn costs of this runtime, side by
//! side with OS threads, corosensei and tokio, measured in one run on this machine.
//!
//! Method: each row runs `--samples` batches after a warm-up batch; a batch times `iters`
//! operations with `Instant` (a monotonic clock read costs ~20 ns, so batches are long enough
//! that it is noise) and yields one ns-per-operation sample. The row reports the median and
//! the 99th percentile of the samples. Threads are pinned where a row says "same core" or
//! "cross core". On a shared VM, compare rows of one run, not runs.

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use clap::Args;
use manycore_sched::SpawnHint;
use manycore_sched::arch::{TaskContext, init_task, resume, suspend};
use manycore_sched::rt::{self, Builder, Event};
use manycore_sched::stack::{MmapStack, TaskStack};
use manycore_topology::Topology;
use serde_json::json;

use super::print_stdout;

/// Arguments of `manycore bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print a JSON report instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed batches per row.
    #[arg(long, default_value_t = 21, value_parser = clap::value_parser!(u32).range(3..=1000))]
    samples: u32,
    /// Scale every batch (0.1 for a quick look, 10 for steadier figures).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Run only rows whose name contains this text.
    #[arg(long)]
    only: Option<String>,
}

struct Row {
    name: &'static str,
    median_ns: f64,
    p99_ns: f64,
    iters: u64,
}

fn measure(samples: u32, iters: u64, mut batch: impl FnMut(u64)) -> (f64, f64) {
    batch(iters.div_ceil(4).max(1)); // warm-up
    let mut ns: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            batch(iters);
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let median = ns[ns.len() / 2];
    let p99 = ns[((ns.len() as f64 * 0.99).ceil() as usize).min(ns.len()) - 1];
    (median, p99)
}

fn pin(os_cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays in bounds (checked); the call reads it.
    unsafe {
        if os_cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(os_cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

extern "sysv64" fn bounce(arg: usize) -> ! {
    let ctx = arg as *mut TaskContext;
    loop {
        // SAFETY: `arg` is the TaskContext of `raw_switch` this task was resumed through,
        // alive while the task can run.
        unsafe { suspend(ctx) };
    }
}

/// One-way raw switches: a round trip is two.
fn raw_switch(samples: u32, iters: u64) -> (f64, f64) {
    let stack = MmapStack::new(64 * 1024).expect("map a stack");
    let mut ctx = Box::new(TaskContext::new());
    let arg = &raw mut *ctx as usize;
    // SAFETY: the stack outlives the measurement (leaked below); bounce never returns.
    *ctx = unsafe { init_task(stack.top(), bounce, arg) };
    let r = measure(samples, iters, |n| {
        for _ in 0..n {
            // SAFETY: the task is suspended in `bounce` on a live stack; only this thread
            // resumes it.
            unsafe { resume(&raw mut *ctx) };
        }
    });
    std::mem::forget(stack); // the task stays suspended on it
    (r.0 / 2.0, r.1 / 2.0)
}

fn corosensei_switch(samples: u32, iters: u64) -> (f64, f64) {
    let mut co = corosensei::Coroutine::new(|y, ()| {
        loop {
            y.suspend(());
        }
    });
    let r = measure(samples, iters, |n| {
        for _ in 0..n {
            black_box(co.resume(()));
        }
    });
    (r.0 / 2.0, r.1 / 2.0)
}

fn os_yield(samples: u32, iters: u64) -> (f64, f64) {
    measure(samples, iters, |n| {
        for _ in 0..n {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    })
}

/// Two OS threads hand a token back and forth through futexes; ns per one-way handoff.
fn os_futex_pingpong(samples: u32, iters: u64, cpus: (usize, usize)) -> (f64, f64) {
    let word = Arc::new(AtomicU32::new(0));
    let w2 = word.clone();
    // Exactly what `measure` runs: one warm-up batch of iters/4, then `samples` batches.
    let rounds_total = iters * u64::from(samples) + iters.div_ceil(4).max(1);
    let wait = |w: &AtomicU32, expect: u32| {
        loop {
            // Sleep only on the value just seen: if it changes in between, FUTEX_WAIT returns.
            let seen = w.load(Ordering::Acquire);
            if seen == expect {
                return;
            }
            // SAFETY: futex wait on a live aligned u32; returns on change, wake or signal.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    w.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    seen,
                    std::ptr::null::<libc::timespec>(),
                );
            }
        }
    };
    let wake = |w: &AtomicU32, v: u32| {
        w.store(v, Ordering::Release);
        // SAFETY: futex wake on a live aligned u32.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                w.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
            )
        };
    };
    let other = std::thread::spawn(move || {
        pin(cpus.1);
        for i in 0..rounds_total {
            let base = (i as u32).wrapping_mul(2);
            wait(&w2, base.wrapping_add(1));
            wake(&w2, base.wrapping_add(2));
        }
    });
    pin(cpus.0);
    let mut i: u64 = 0;
    let r = measure(samples, iters, |n| {
        for _ in 0..n {
            let base = (i as u32).wrapping_mul(2);
            wake(&word, base.wrapping_add(1));
            wait(&word, base.wrapping_add(2));
            i += 1;
        }
    });
    other.join().expect("the futex partner thread");
    (r.0 / 2.0, r.1 / 2.0)
}

fn manycore_yield(samples: u32, iters: u64, os_cpu: usize) -> (f64, f64) {
    let rt = Builder::new()
        .cpus([os_cpu].into_iter().collect())
        .build()
        .expect("a one-CPU runtime");
    let tasks = 4;
    let r = measure(samples, iters, |n| {
        let per = n / tasks;
        let hs: Vec<_> = (0..tasks)
            .map(|_| rt.spawn(move || (0..per).for_each(|_| rt::yield_now())))
            .collect();
        hs.into_iter().for_each(|h| h.join().expect("yield task"));
    });
    rt.shutdown();
    r
}

fn manycore_pingpong(samples: u32, iters: u64, cross: bool) -> (f64, f64) {
    let rt = Builder::new().build().expect("the runtime");
    let n_cpus = rt.num_cpus();
    let (a_cpu, b_cpu) = if cross && n_cpus > 1 { (0, 1) } else { (0, 0) };
    let r = measure(samples, iters, |n| {
        let (ping, pong) = (Arc::new(Event::new()), Arc::new(Event::new()));
        let (p2, q2) = (ping.clone(), pong.clone());
        let a = rt.spawn_with(
            "ping",
            SpawnHint {
                cpu: Some(a_cpu),
                node: None,
            },
            move || {
                for _ in 0..n {
                    p2.set();
                    q2.wait();
                }
            },
        )
        .expect("a valid hint");
        let b = rt.spawn_with(
            "pong",
            SpawnHint {
                cpu: Some(b_cpu),
                node: None,
            },
            move || {
                for _ in 0..n {
                    ping.wait();
                    pong.set();
                }
            },
        )
        .expect("a valid hint");
        a.join().expect("ping");
        b.join().expect("pong");
    });
    rt.shutdown();
    (r.0 / 2.0, r.1 / 2.0)
}

fn manycore_spawn_join(samples: u32, iters: u64) -> (f64, f64) {
    let rt = Builder::new().build().expect("the runtime");
    let r = measure(samples, iters, |n| {
        let h = rt.spawn(move || {
            for i in 0..n {
                let h = rt::spawn(move || black_box(i)).expect("inside a task");
                black_box(h.join().expect("child"));
            }
        });
        h.join().expect("spawner");
    });
    rt.shutdown();
    r
}

fn tokio_yield(samples: u32, iters: u64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    measure(samples, iters, |n| {
        rt.block_on(async {
            let per = n / 4;
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..per {
                            tokio::task::yield_now().await
                        }
                    })
                })
                .collect();
            for h in hs {
                h.await.expect("tokio task");
            }
        })
    })
}

fn tokio_pingpong(samples: u32, iters: u64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let r = measure(samples, iters, |n| {
        rt.block_on(async {
            let (ping, pong) = (
                Arc::new(tokio::sync::Notify::new()),
                Arc::new(tokio::sync::Notify::new()),
            );
            let (p2, q2) = (ping.clone(), pong.clone());
            let a = tokio::spawn(async move {
                for _ in 0..n {
                    p2.notify_one();
                    q2.notified().await;
                }
            });
            let b = tokio::spawn(async move {
                for _ in 0..n {
                    ping.notified().await;
                    pong.notify_one();
                }
            });
            a.await.expect("ping");
            b.await.expect("pong");
        })
    });
    (r.0 / 2.0, r.1 / 2.0)
}

fn tokio_spawn_join(samples: u32, iters: u64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    measure(samples, iters, |n| {
        rt.block_on(async {
            for i in 0..n {
                black_box(
                    tokio::spawn(async move { black_box(i) })
                        .await
                        .expect("child"),
                );
            }
        })
    })
}

/// Runs `manycore bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode, String> {
    if !(0.001..=1000.0).contains(&args.scale) {
        return Err(format!(
            "--scale {}: expected a factor between 0.001 and 1000",
            args.scale
        ));
    }
    let host = Topology::host().map_err(|e| format!("cannot read the host topology: {e}"))?;
    let os0 = host.pu(0).os_index as usize;
    let os1 = host.pu(host.num_cpus().saturating_sub(1)).os_index as usize;
    let s = args.samples;
    let it = |base: u64| ((base as f64 * args.scale) as u64).max(8);
    type Bench = Box<dyn Fn(u32, u64) -> (f64, f64)>;
    let rows: Vec<(&'static str, u64, Bench)> = vec![
        ("switch.raw", it(2_000_000), Box::new(raw_switch)),
        (
            "switch.corosensei",
            it(2_000_000),
            Box::new(corosensei_switch),
        ),
        (
            "yield.manycore",
            it(400_000),
            Box::new(move |s, n| manycore_yield(s, n, os0)),
        ),
        ("yield.tokio", it(400_000), Box::new(tokio_yield)),
        ("yield.os", it(200_000), Box::new(os_yield)),
        (
            "pingpong.same_core.manycore",
            it(100_000),
            Box::new(|s, n| manycore_pingpong(s, n, false)),
        ),
        (
            "pingpong.same_core.os_futex",
            it(20_000),
            Box::new(move |s, n| os_futex_pingpong(s, n, (os0, os0))),
        ),
        (
            "pingpong.cross_core.manycore",
            it(50_000),
            Box::new(|s, n| manycore_pingpong(s, n, true)),
        ),
        (
            "pingpong.cross_core.os_futex",
            it(10_000),
            Box::new(move |s, n| os_futex_pingpong(s, n, (os0, os1))),
        ),
        (
            "pingpong.cross_core.tokio",
            it(50_000),
            Box::new(tokio_pingpong),
        ),
        (
            "spawn_join.manycore",
            it(50_000),
            Box::new(manycore_spawn_join),
        ),
        ("spawn_join.tokio", it(50_000), Box::new(tokio_spawn_join)),
    ];
    let mut results = Vec::new();
    for (name, iters, f) in rows {
        if args.only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        if !args.json {
            eprint!("  measuring {name}...\r");
        }
        let (median_ns, p99_ns) = f(s, iters);
        results.push(Row {
            name,
            median_ns,
            p99_ns,
            iters,
        });
    }
    if results.is_empty() {
        return Err(format!(
            "--only {:?} matches no row",
            args.only.as_deref().unwrap_or("")
        ));
    }
    let machine = json!({
        "cpus": host.num_cpus(),
        "nodes": host.num_nodes(),
        "packages": host.num_packages(),
        "pinned_cpus": [os0, os1],
        "samples": s,
    });
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| json!({"name": r.name, "median_ns": r.median_ns, "p99_ns": r.p99_ns, "iters": r.iters}))
            .collect();
        let text = serde_json::to_string_pretty(&json!({"machine": machine, "results": rows}))
            .unwrap_or_default();
        print_stdout(&(text + "\n"));
    } else {
        let mut out = format!(
            "machine: {} CPUs, {} node(s), {} package(s); {} samples per row; same core = P#{os0}, cross core = P#{os0}/P#{os1}\n\n",
            host.num_cpus(),
            host.num_nodes(),
            host.num_packages(),
            s
        );
        out.push_str(&format!(
            "{:<30} {:>12} {:>12} {:>10}\n",
            "benchmark", "median ns", "p99 ns", "iters"
        ));
        for r in &results {
            out.push_str(&format!(
                "{:<30} {:>12.1} {:>12.1} {:>10}\n",
                r.name, r.median_ns, r.p99_ns, r.iters
            ));
        }
        out.push_str(
            "\nper operation: one-way switch (switch.*, pingpong.*), one yield, one spawn+join\n",
        );
        print_stdout(&out);
    }
    Ok(ExitCode::SUCCESS)
}
