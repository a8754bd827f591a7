//! Simulator speed and memory (docs/PERFORMANCE.md, "Simulator"):
//! - `sim_events/*`: scheduling events per second on one core, per workload, `topology` policy
//!   (criterion reports elements/s = scheduling events/s: calls into the scheduler plus the
//!   unparks and steals it made; the engine-event count of each case is printed too). Baseline in
//!   the same run: the bare event queue the engine uses (`sim_events/queue_only`, a radix heap),
//!   1 M push + pop pairs with 256 events in flight; beside it the 4-ary heap it replaced
//!   (`sim_events/quad_heap_only`) and both with 1024 in flight (`*_1024`, as on `ring-1024`).
//! - `sim_10m/ring-1024`: 10 million tasks on the 1024-PU, 16-node preset, one full run per
//!   iteration (goal: under a minute).
//! - memory: peak heap bytes of server runs of 100 k and 1 M requests, printed before the
//!   benchmarks (goal: memory follows tasks in flight, so the two peaks are close).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use manycore_sim::event::{EventKind, EventQueue, KeyQueue, QuadHeap, RadixHeap};
use manycore_sim::{Machine, Scenario, presets};

/// Counts live heap bytes and their peak, for the memory figure.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counters are plain atomics and never affect the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // exactly `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `alloc` above (i.e. by `System`) with this `layout`, as
        // the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn machine(preset: &str) -> Machine {
    Machine::new(
        presets::find(preset)
            .map(presets::Preset::build)
            .expect("preset"),
    )
}

fn scenario(preset: &str, workload: &str, params: &[(&str, &str)]) -> Scenario {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Scenario::new(
        preset,
        machine(preset),
        workload,
        params,
        vec!["topology".into()],
    )
}

/// (engine events, scheduling events) of one run.
fn events_of(s: &Scenario) -> (u64, u64) {
    let r = s.run_policy("topology", None, None).expect("run");
    (r.events, r.stats.sched_events)
}

fn peak_bytes(s: &Scenario) -> (usize, u64) {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let before = LIVE.load(Ordering::Relaxed);
    let r = s.run_policy("topology", None, None).expect("run");
    (PEAK.load(Ordering::Relaxed) - before, r.peak_live_tasks)
}

fn memory_report() {
    for requests in ["100000", "1000000"] {
        let s = scenario(
            "epyc-2s-nps4",
            "server",
            &[("requests", requests), ("load", "0.8")],
        );
        let (bytes, live) = peak_bytes(&s);
        eprintln!(
            "sim memory: server requests={requests} on epyc-2s-nps4: peak heap {bytes} bytes, peak live tasks {live}"
        );
    }
}

/// (preset, workload, parameters).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn bench_events(c: &mut Criterion) {
    memory_report();
    let mut g = c.benchmark_group("sim_events");
    g.sample_size(10);
    let cases: &[Case] = &[
        ("epyc-2s-nps4", "server", &[("requests", "200000")]),
        ("epyc-2s-nps4", "fork-join", &[("depth", "16")]),
        ("epyc-2s-nps4", "memory-bound", &[("tasks", "200000")]),
        ("epyc-2s-nps4", "producer-consumer", &[("items", "200000")]),
        ("ring-1024", "server", &[("requests", "200000")]),
    ];
    for (preset, w, params) in cases {
        let s = scenario(preset, w, params);
        let (engine, sched) = events_of(&s);
        eprintln!(
            "sim events: {w} on {preset}: {engine} engine events, {sched} scheduling events per run"
        );
        g.throughput(Throughput::Elements(sched));
        g.bench_with_input(BenchmarkId::new(*w, preset), &s, |b, s| {
            b.iter(|| black_box(s.run_policy("topology", None, None).expect("run").events))
        });
    }
    // Baseline: the event queue alone, the same number of push+pop pairs with 256 in flight:
    // the engine's (radix heap) and the 4-ary heap it replaced; then both with 1024 in flight.
    let n = 1_000_000u64;
    g.throughput(Throughput::Elements(n));
    g.bench_function("queue_only", |b| {
        b.iter(|| black_box(queue_pairs(EventQueue::new(), 256, n)))
    });
    g.bench_function("quad_heap_only", |b| {
        b.iter(|| {
            black_box(queue_pairs(
                EventQueue::<QuadHeap>::with_key_queue(),
                256,
                n,
            ))
        })
    });
    g.bench_function("queue_only_1024", |b| {
        b.iter(|| {
            black_box(queue_pairs(
                EventQueue::<RadixHeap>::with_key_queue(),
                1024,
                n,
            ))
        })
    });
    g.bench_function("quad_heap_only_1024", |b| {
        b.iter(|| {
            black_box(queue_pairs(
                EventQueue::<QuadHeap>::with_key_queue(),
                1024,
                n,
            ))
        })
    });
    g.finish();
}

/// `n` pops, each followed by a push up to 65 µs later, with `in_flight` events pending.
fn queue_pairs<Q: KeyQueue>(mut q: EventQueue<Q>, in_flight: u64, n: u64) -> usize {
    let mut x = 0x9e37_79b9_u64;
    for i in 0..in_flight {
        q.push(i, EventKind::CpuReady, i as u32, 0);
    }
    for _ in 0..n {
        let e = q.pop().expect("event");
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        q.push(e.time_ns + (x & 0xffff), EventKind::CpuReady, e.cpu, 0);
    }
    q.len()
}

fn bench_10m(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_10m");
    g.sample_size(10);
    let s = scenario(
        "ring-1024",
        "server",
        &[("requests", "10000000"), ("service_ns", "20000")],
    );
    g.throughput(Throughput::Elements(10_000_000));
    g.bench_function("ring-1024/server", |b| {
        b.iter(|| {
            black_box(
                s.run_policy("topology", None, None)
                    .expect("run")
                    .makespan_ns,
            )
        })
    });
    g.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench_events, bench_10m);
}
use group::benches;
criterion_main!(benches);
