//! The measurements behind each row of `manycore bench`. Every function returns per-operation
//! samples (see [`Samples`]); "one-way" rows divide a round trip by two.
//!
//! Where the timing happens: rows on plain threads time on the calling thread (pinned); rows
//! inside a runtime (manycore or tokio) time inside one of the runtime's own tasks, so spawning
//! and joining the measuring task is never part of a sample.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use manycore_sched::arch::{TaskContext, init_task, resume, suspend};
use manycore_sched::rt::{self, Builder, Event};
use manycore_sched::stack::{MmapStack, TaskStack};
use manycore_sched::{NoStealPolicy, SpawnHint};

use super::clock::{Clock, Samples, sample};

/// What every row needs: the clock, how many samples, how long a sample is, and where to pin.
#[derive(Clone, Copy)]
pub struct Ctx {
    /// The clock.
    pub clock: Clock,
    /// Timed batches per row.
    pub samples: u32,
    /// Multiplies every row's batch length.
    pub scale: f64,
    /// OS index of the "same core" CPU (and the first of the "cross core" pair).
    pub os0: usize,
    /// OS index of the second CPU of the "cross core" pair.
    pub os1: usize,
}

impl Ctx {
    /// Operations per timed batch for a row whose base is `base`.
    pub fn ops(&self, base: u64) -> u64 {
        ((base as f64 * self.scale) as u64).max(4)
    }
}

/// Pins the calling thread to one CPU and restores its previous affinity on drop (so threads
/// spawned later, such as tokio's workers, do not inherit the pin).
pub struct Pin {
    saved: libc::cpu_set_t,
}

impl Pin {
    /// Pins the calling thread to OS CPU `os_cpu`.
    pub fn to(os_cpu: usize) -> Result<Pin, String> {
        if os_cpu >= libc::CPU_SETSIZE as usize {
            return Err(format!(
                "CPU {os_cpu} is beyond what sched_setaffinity can name"
            ));
        }
        // SAFETY: zeroed cpu_set_t values are valid empty sets; CPU_SET stays in bounds
        // (checked above); the calls read or write only these sets.
        unsafe {
            let mut saved: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut saved) != 0 {
                return Err(format!(
                    "sched_getaffinity: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(os_cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(format!(
                    "cannot pin to CPU {os_cpu}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(Pin { saved })
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        // SAFETY: restores the mask read in `to`.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.saved);
        }
    }
}

// --- switches -------------------------------------------------------------------------------

extern "sysv64" fn bounce(arg: usize) -> ! {
    let ctx = arg as *mut TaskContext;
    loop {
        // SAFETY: `arg` is the context `raw_switch` resumes this task through; it outlives the
        // task's use (the task is never resumed after the measurement).
        unsafe { suspend(ctx) };
    }
}

/// `switch.raw`: one-way `arch::resume`/`arch::suspend` switch (the runtime's switch).
pub fn raw_switch(c: &Ctx) -> Result<Samples, String> {
    let _pin = Pin::to(c.os0)?;
    let stack = MmapStack::new(64 * 1024).map_err(|e| e.to_string())?;
    let mut ctx = Box::new(TaskContext::new());
    let arg = &raw mut *ctx as usize;
    // SAFETY: the stack outlives every resume below; `bounce` never returns.
    *ctx = unsafe { init_task(stack.top(), bounce, arg) };
    let s = sample(&c.clock, c.samples, c.ops(20_000), |n| {
        for _ in 0..n {
            // SAFETY: the task is suspended in `bounce` on its live stack; only this thread
            // resumes it.
            unsafe { resume(&raw mut *ctx) };
        }
    });
    // The task stays suspended on its stack forever; unmapping is fine: nothing resumes it.
    drop(stack);
    Ok(s.per(2.0))
}

/// `switch.corosensei`: one-way corosensei resume/suspend.
pub fn corosensei_switch(c: &Ctx) -> Result<Samples, String> {
    let _pin = Pin::to(c.os0)?;
    let mut co = corosensei::Coroutine::new(|y, ()| {
        loop {
            y.suspend(());
        }
    });
    let s = sample(&c.clock, c.samples, c.ops(20_000), |n| {
        for _ in 0..n {
            black_box(co.resume(()));
        }
    });
    Ok(s.per(2.0))
}

// --- OS threads -----------------------------------------------------------------------------

/// `yield.os`: one `sched_yield` system call.
pub fn os_yield(c: &Ctx) -> Result<Samples, String> {
    let _pin = Pin::to(c.os0)?;
    Ok(sample(&c.clock, c.samples, c.ops(200), |n| {
        for _ in 0..n {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }))
}

/// `pingpong.*.os_futex`: two OS threads pinned to `cpus` hand a token back and forth through a
/// futex word; one-way handoff.
pub fn os_futex_pingpong(c: &Ctx, cpus: (usize, usize), base: u64) -> Result<Samples, String> {
    let ops = c.ops(base);
    // Exactly the rounds `sample` runs: one warm-up batch, then `samples` batches.
    let rounds_total = ops * (u64::from(c.samples) + 1);
    let other_cpu = cpus.1;
    let pin = Pin::to(cpus.0)?;
    let (mut pp, other) = rt::FutexPingPong::start(rounds_total, move || Pin::to(other_cpu));
    let s = sample(&c.clock, c.samples, ops, |n| {
        for _ in 0..n {
            pp.round();
        }
    });
    drop(pin);
    other
        .join()
        .map_err(|_| "the futex partner thread panicked".to_string())??;
    Ok(s.per(2.0))
}

// --- manycore -------------------------------------------------------------------------------

fn join_err(e: rt::JoinError) -> String {
    e.to_string()
}

/// `yield.manycore`: four tasks on a one-CPU runtime yield round-robin; one of them times
/// batches of its own yields, each of which lets the three others yield once.
pub fn manycore_yield(c: &Ctx) -> Result<Samples, String> {
    let rt = Builder::new().cpus([c.os0].into_iter().collect()).build()?;
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
    let (clock, samples, ops) = (c.clock, c.samples, c.ops(5_000));
    let st = stop.clone();
    let s = rt
        .spawn(move || {
            let s = sample(&clock, samples, ops, |n| {
                for _ in 0..n {
                    rt::yield_now();
                }
            });
            st.store(true, Ordering::Relaxed);
            s
        })
        .join()
        .map_err(join_err)?;
    for o in others {
        o.join().map_err(join_err)?;
    }
    rt.shutdown();
    Ok(s.per(4.0))
}

/// What a manycore ping-pong measured, with how often the two tasks really ran on different CPUs.
pub struct PingPong {
    /// One-way handoffs.
    pub samples: Samples,
    /// Fraction of rounds in which the two tasks ran on different CPUs.
    pub cross_fraction: f64,
}

/// `pingpong.*.manycore`: tasks "ping" (CPU 0) and "pong" (CPU 0, or CPU 1 when `cross`) hand a
/// token back and forth through two [`Event`]s; ping times batches of rounds; one-way handoff.
///
/// The cross-core row runs the `nosteal` policy, whose wakes always go to the task's last CPU:
/// with the default policy a wake finding no idle CPU announced goes to the waker's own CPU, the
/// pair ends up sharing one CPU, and the row would measure a same-core handoff. The report
/// prints the fraction of rounds in which the two tasks really ran apart.
pub fn manycore_pingpong(c: &Ctx, cross: bool, base: u64) -> Result<PingPong, String> {
    let rt = if cross {
        Builder::new()
            .cpus([c.os0, c.os1].into_iter().collect())
            .policy(Box::new(NoStealPolicy))
            .build()?
    } else {
        Builder::new().cpus([c.os0].into_iter().collect()).build()?
    };
    let b_cpu = if cross { 1 } else { 0 };
    let (ping, pong) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let pong_cpu = Arc::new(AtomicU64::new(u64::MAX));
    let apart = Arc::new(AtomicU64::new(0));
    let (p2, q2, stop2, pong_cpu2) = (ping.clone(), pong.clone(), stop.clone(), pong_cpu.clone());
    let b = rt
        .spawn_with(
            "pong",
            SpawnHint {
                cpu: Some(b_cpu),
                node: None,
            },
            move || {
                loop {
                    p2.wait();
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    pong_cpu2.store(
                        rt::current_cpu().map_or(u64::MAX, |c| c as u64),
                        Ordering::Relaxed,
                    );
                    q2.set();
                }
            },
        )
        .map_err(|e| e.to_string())?;
    let (clock, samples, ops) = (c.clock, c.samples, c.ops(base));
    let (apart2, pong_cpu3) = (apart.clone(), pong_cpu.clone());
    let a = rt
        .spawn_with(
            "ping",
            SpawnHint {
                cpu: Some(0),
                node: None,
            },
            move || {
                let s = sample(&clock, samples, ops, |n| {
                    for _ in 0..n {
                        ping.set();
                        pong.wait();
                        let here = rt::current_cpu().map_or(u64::MAX, |c| c as u64);
                        if pong_cpu3.load(Ordering::Relaxed) != here {
                            apart2.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                stop.store(true, Ordering::Relaxed);
                ping.set();
                s
            },
        )
        .map_err(|e| e.to_string())?;
    let s = a.join().map_err(join_err)?;
    b.join().map_err(join_err)?;
    rt.shutdown();
    let rounds = ops * (u64::from(samples) + 1);
    Ok(PingPong {
        samples: s.per(2.0),
        cross_fraction: apart.load(Ordering::Relaxed) as f64 / rounds as f64,
    })
}

/// `spawn_join.manycore` (`inline`: the default runtime, a join may run the unstarted child
/// inline) and `spawn_join.manycore_no_inline` (`Builder::join_inline(false)`: every child runs
/// on its own stack after a switch): a task spawns a task and joins it, with stacks warm in the
/// pool (the warm-up batch fills it).
pub fn manycore_spawn_join(c: &Ctx, inline: bool) -> Result<Samples, String> {
    let rt = Builder::new()
        .cpus([c.os0, c.os1].into_iter().collect())
        .join_inline(inline)
        .build()?;
    let (clock, samples, ops) = (c.clock, c.samples, c.ops(500));
    let s = rt
        .spawn(move || {
            sample(&clock, samples, ops, |n| {
                for i in 0..n {
                    let h = rt::spawn(move || black_box(i)).expect("inside a task");
                    black_box(h.join().expect("child"));
                }
            })
        })
        .join()
        .map_err(join_err)?;
    rt.shutdown();
    Ok(s)
}

// --- tokio ----------------------------------------------------------------------------------

/// `yield.tokio`: four tasks on a current-thread runtime yield round-robin; one times batches.
pub fn tokio_yield(c: &Ctx) -> Result<Samples, String> {
    let _pin = Pin::to(c.os0)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (clock, samples, ops) = (c.clock, c.samples, c.ops(2_000));
    let s = rt.block_on(async move {
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
        let s = tokio::spawn(async move {
            let mut s = Samples::default();
            for i in 0..=samples {
                let t0 = clock.now();
                for _ in 0..ops {
                    tokio::task::yield_now().await;
                }
                let t1 = clock.now();
                if i > 0 {
                    s.push(clock.ns(t0, t1), ops); // batch 0 is the warm-up
                }
            }
            stop.store(true, Ordering::Relaxed);
            s
        })
        .await;
        for o in others {
            let _ = o.await;
        }
        s
    });
    s.map(|s| s.per(4.0))
        .map_err(|e| format!("tokio task: {e}"))
}

/// `pingpong.cross_core.tokio`: two current-thread runtimes on threads pinned to the two CPUs
/// hand a token back and forth through two `Notify`s (a real cross-thread wake each way).
pub fn tokio_pingpong_cross(c: &Ctx) -> Result<Samples, String> {
    let (ping, pong) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let (clock, samples, ops) = (c.clock, c.samples, c.ops(500));
    let rounds_total = ops * (u64::from(samples) + 1);
    let (p2, q2, os1) = (ping.clone(), pong.clone(), c.os1);
    let other = std::thread::spawn(move || -> Result<(), String> {
        let _pin = Pin::to(os1)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        rt.block_on(async move {
            for _ in 0..rounds_total {
                p2.notified().await;
                q2.notify_one();
            }
        });
        Ok(())
    });
    let pin = Pin::to(c.os0)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let s = rt.block_on(async move {
        let mut s = Samples::default();
        for i in 0..=samples {
            let t0 = clock.now();
            for _ in 0..ops {
                ping.notify_one();
                pong.notified().await;
            }
            let t1 = clock.now();
            if i > 0 {
                s.push(clock.ns(t0, t1), ops);
            }
        }
        s
    });
    drop(pin);
    other
        .join()
        .map_err(|_| "the tokio partner thread panicked".to_string())??;
    Ok(s.per(2.0))
}

/// `spawn_join.tokio`: a task on a two-worker multi-thread runtime spawns a task and awaits it.
pub fn tokio_spawn_join(c: &Ctx) -> Result<Samples, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (clock, samples, ops) = (c.clock, c.samples, c.ops(500));
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut s = Samples::default();
            for i in 0..=samples {
                let t0 = clock.now();
                for j in 0..ops {
                    black_box(
                        tokio::spawn(async move { black_box(j) })
                            .await
                            .expect("child"),
                    );
                }
                let t1 = clock.now();
                if i > 0 {
                    s.push(clock.ns(t0, t1), ops);
                }
            }
            s
        })
        .await
    })
    .map_err(|e| format!("tokio task: {e}"))
}
