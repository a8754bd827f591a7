//! `bench`: kernel-level costs in TSC cycles (and nanoseconds from the calibrated TSC rate).
//!
//! Under `manycore boot --icount` QEMU runs one instruction per virtual nanosecond and the TSC
//! follows the virtual clock, so `median_ns` is then an instruction count.
//!
//! Each measurement runs [`SAMPLES`] samples of a fixed number of operations after a warm-up and
//! reports the median and the 99th percentile of the per-operation cost:
//! - `switch.raw`: one one-way manycore-sched `arch::switch` between two bare contexts
//!   (interrupts off): the floor under every thread switch;
//! - `switch_preempt.raw`: the same with `arch::switch_preempt` (adds FXSAVE/FXRSTOR), what a
//!   timer preemption pays for the switch itself;
//! - `yield.kernel`: one `yield_now` with two threads pinned to one CPU (each yield is a switch
//!   into a fresh scheduler loop, `requeue` + `next_task` of manycore-sched, and a switch out);
//! - `pingpong.cross_cpu.kernel`: one one-way wake-to-run through a capacity-1 channel between
//!   threads on two CPUs (half a round trip);
//! - `spawn_join.kernel`: spawn a thread on this CPU and join it;
//! - `alloc_free.64`: one 64-byte heap allocation and its free.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use manycore_sched::arch::{Context, SwitchKind, init_stack, switch, switch_preempt};
use manycore_sched::stack::{StackSource, TaskStack};

use crate::arch::cpu::{self, rdtsc_ordered};
use crate::exit::ExitCode;
use crate::json::Json;
use crate::mem::alloc::NodeStacks;
use crate::sync::SpinLock;
use crate::thread::sync::Channel;
use crate::{kprintln, percpu, thread, time};

/// Samples per measurement.
pub const SAMPLES: usize = 31;

/// One measurement: per-operation costs in thousandths of a cycle.
struct Measurement {
    name: &'static str,
    ops_per_sample: u64,
    milli_cycles: Vec<u64>,
}

impl Measurement {
    fn percentile(&self, p: usize) -> u64 {
        let mut v = self.milli_cycles.clone();
        v.sort_unstable();
        v[(v.len() - 1) * p / 100]
    }
}

/// Times `sample()` (which performs `ops` operations) SAMPLES times after one warm-up.
fn measure(name: &'static str, ops: u64, mut sample: impl FnMut()) -> Measurement {
    sample();
    let mut milli_cycles = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t0 = rdtsc_ordered();
        sample();
        let t1 = rdtsc_ordered();
        milli_cycles.push((t1 - t0) * 1000 / ops);
    }
    Measurement {
        name,
        ops_per_sample: ops,
        milli_cycles,
    }
}

/// The two bare contexts of the raw switch measurements (touched only by the measuring CPU with
/// interrupts off).
static mut RAW_MAIN: Context = Context::new();
static mut RAW_PEER: Context = Context::new();

extern "sysv64" fn raw_peer(preempt: usize) -> ! {
    loop {
        // SAFETY: runs only inside `switch_raw`, with interrupts off, on the measuring CPU; the
        // main context saved itself (with the same switch function) before switching here.
        unsafe {
            if preempt != 0 {
                switch_preempt(&raw mut RAW_PEER, &raw const RAW_MAIN);
            } else {
                switch(&raw mut RAW_PEER, &raw const RAW_MAIN);
            }
        }
    }
}

/// One-way switches between two bare contexts with manycore-sched's `switch` (cooperative) or
/// `switch_preempt` (callee-saved registers plus FXSAVE/FXRSTOR).
fn switch_raw(round_trips: u64, kind: SwitchKind) -> Result<Measurement, &'static str> {
    let (name, preempt) = match kind {
        SwitchKind::Cooperative => ("switch.raw", false),
        _ => ("switch_preempt.raw", true),
    };
    let stack = NodeStacks {
        node: percpu::current().node,
    }
    .allocate(16 * 1024)
    .map_err(|_| "bench: no memory for a stack")?;
    let irq = cpu::interrupts_disable();
    // SAFETY: a fresh stack owned by this function; interrupts are off, so nothing else runs on
    // this CPU while the two contexts switch.
    unsafe { RAW_PEER = init_stack(stack.top(), raw_peer, usize::from(preempt), kind) };
    let m = measure(name, round_trips * 2, || {
        for _ in 0..round_trips {
            // SAFETY: interrupts are off; the peer context was built above for this switch kind
            // or saved by its last switch back here with the same function.
            unsafe {
                if preempt {
                    switch_preempt(&raw mut RAW_MAIN, &raw const RAW_PEER);
                } else {
                    switch(&raw mut RAW_MAIN, &raw const RAW_PEER);
                }
            }
        }
    });
    if irq {
        cpu::interrupts_enable();
    }
    // The peer is parked inside its switch and never resumed again, so its stack is free.
    drop(stack);
    Ok(m)
}

fn yield_pinned(yields: u64) -> Result<Measurement, &'static str> {
    let cpu = percpu::current().cpu;
    // Both yielders are pinned to this CPU (the program's own thread is not pinned), and the
    // partner counts its turns: the figure is a switch between two threads only if the partner
    // ran between the measurer's yields.
    let out: Arc<SpinLock<Option<Result<Measurement, &'static str>>>> =
        Arc::new(SpinLock::new(None));
    let measurer = {
        let out = out.clone();
        thread::spawn_on(Some(cpu), true, move || {
            let r = (|| {
                let stop = Arc::new(AtomicU64::new(0));
                let turns = Arc::new(AtomicU64::new(0));
                let partner = {
                    let (stop, turns) = (stop.clone(), turns.clone());
                    thread::spawn_on(Some(cpu), true, move || {
                        while stop.load(Ordering::Relaxed) == 0 {
                            turns.fetch_add(1, Ordering::Relaxed);
                            thread::yield_now();
                        }
                    })?
                };
                thread::yield_now();
                let before = turns.load(Ordering::Relaxed);
                let m = measure("yield.kernel", yields, || {
                    for _ in 0..yields {
                        thread::yield_now();
                    }
                });
                let partner_turns = turns.load(Ordering::Relaxed) - before;
                stop.store(1, Ordering::Relaxed);
                partner.join();
                // (SAMPLES + 1) samples of `yields` yields each.
                if partner_turns < yields * (SAMPLES as u64 + 1) / 2 {
                    return Err("bench: yield.kernel's partner did not run between the yields");
                }
                Ok(m)
            })();
            *out.lock() = Some(r);
        })?
    };
    measurer.join();
    out.lock()
        .take()
        .unwrap_or(Err("bench: the yield measurer left no result"))
}

fn pingpong_cross_cpu(round_trips: u64) -> Result<Measurement, &'static str> {
    let ncpus = percpu::all().len();
    let me = percpu::current().cpu;
    let other = (me + 1) % ncpus;
    let ping: Arc<Channel<u64>> = Arc::new(Channel::new(1));
    let pong: Arc<Channel<u64>> = Arc::new(Channel::new(1));
    let echo = {
        let (ping, pong) = (ping.clone(), pong.clone());
        thread::spawn_on(Some(other), true, move || {
            loop {
                let v = ping.recv();
                pong.send(v);
                if v == u64::MAX {
                    break;
                }
            }
        })?
    };
    let m = measure("pingpong.cross_cpu.kernel", round_trips * 2, || {
        for i in 0..round_trips {
            ping.send(i);
            pong.recv();
        }
    });
    ping.send(u64::MAX);
    pong.recv();
    echo.join();
    Ok(m)
}

fn spawn_join(n: u64) -> Result<Measurement, &'static str> {
    let cpu = percpu::current().cpu;
    let mut failed = false;
    let m = measure("spawn_join.kernel", n, || {
        for _ in 0..n {
            match thread::spawn_on(Some(cpu), true, || {}) {
                Ok(h) => h.join(),
                Err(_) => failed = true,
            }
        }
    });
    if failed {
        Err("bench: spawn failed")
    } else {
        Ok(m)
    }
}

fn alloc_free(n: u64) -> Measurement {
    measure("alloc_free.64", n, || {
        for i in 0..n {
            let b = Box::new([i as u8; 64]);
            core::hint::black_box(&b);
        }
    })
}

/// Runs every measurement and prints the `RESULT` line.
pub fn run() -> ExitCode {
    let tsc_hz = time::tsc_hz();
    let mut ms = Vec::new();
    let mut errors = Vec::new();
    for r in [
        switch_raw(2_000, SwitchKind::Cooperative),
        switch_raw(2_000, SwitchKind::PreemptFxsave),
        yield_pinned(2_000),
        pingpong_cross_cpu(200),
        spawn_join(200),
    ] {
        match r {
            Ok(m) => ms.push(m),
            Err(e) => errors.push(e),
        }
    }
    ms.push(alloc_free(5_000));
    let mut j = Json::new();
    j.begin_object();
    j.field_str("program", "bench");
    j.field_bool("pass", errors.is_empty());
    j.field_uint("tsc_hz", tsc_hz);
    j.field_uint("samples", SAMPLES as u64);
    j.key("results").begin_array();
    for m in &ms {
        let (med, p99) = (m.percentile(50), m.percentile(99));
        // thousandths of a cycle → thousandths of a nanosecond.
        let to_milli_ns =
            |mc: u64| ((u128::from(mc) * 1_000_000_000) / u128::from(tsc_hz.max(1))) as u64;
        kprintln!(
            "bench: {:<28} median {:>10}.{:03} cycles  p99 {:>10}.{:03} cycles",
            m.name,
            med / 1000,
            med % 1000,
            p99 / 1000,
            p99 % 1000
        );
        j.begin_object();
        j.field_str("name", m.name);
        j.key("median_cycles").milli(med);
        j.key("p99_cycles").milli(p99);
        j.key("median_ns").milli(to_milli_ns(med));
        j.key("p99_ns").milli(to_milli_ns(p99));
        j.field_uint("ops_per_sample", m.ops_per_sample);
        j.end_object();
    }
    j.end_array();
    j.key("errors").begin_array();
    for e in &errors {
        j.str(e);
    }
    j.end_array();
    j.end_object();
    super::result_line(j.finish());
    if errors.is_empty() {
        ExitCode::Pass
    } else {
        ExitCode::Fail
    }
}
