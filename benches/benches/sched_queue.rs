//! Run-queue benchmarks against crossbeam-deque in the same run:
//! - local push + pop of one task (owner fast path): `Ring` vs crossbeam `Worker` (FIFO);
//! - moving 128 tasks to a thief: `Ring::steal_half_into` in one claim (capped at 128) vs
//!   crossbeam `Stealer::steal_batch` and vs 128 single `Stealer::steal` calls.
//!
//! Run: `cargo bench -p manycore-benches --bench sched_queue`

use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use crossbeam_deque::{Steal, Worker};
use manycore_sched::Ring;

fn push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_push_pop");
    let ring = Ring::new(256);
    g.bench_function("manycore_ring", |b| {
        b.iter(|| {
            ring.push(black_box(7u64)).unwrap();
            black_box(ring.pop())
        })
    });
    let w = Worker::new_fifo();
    g.bench_function("crossbeam_worker_fifo", |b| {
        b.iter(|| {
            w.push(black_box(7u64));
            black_box(w.pop())
        })
    });
    g.finish();
}

fn steal_128(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_steal_128");
    g.bench_function("manycore_steal_half_into", |b| {
        b.iter_batched_ref(
            || {
                let (victim, thief) = (Ring::new(256), Ring::new(256));
                for i in 0..256u64 {
                    victim.push(i).unwrap();
                }
                (victim, thief)
            },
            |(victim, thief)| black_box(victim.steal_half_into(thief, 128)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("crossbeam_steal_batch", |b| {
        b.iter_batched_ref(
            || {
                let (victim, thief) = (Worker::new_fifo(), Worker::new_fifo());
                for i in 0..256u64 {
                    victim.push(i);
                }
                let stealer = victim.stealer();
                (victim, thief, stealer)
            },
            |(_, thief, stealer)| black_box(stealer.steal_batch(thief)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("crossbeam_128_single_steals", |b| {
        b.iter_batched_ref(
            || {
                let victim = Worker::new_fifo();
                for i in 0..256u64 {
                    victim.push(i);
                }
                let stealer = victim.stealer();
                (victim, stealer)
            },
            |(_, stealer)| {
                let mut n = 0;
                for _ in 0..128 {
                    if let Steal::Success(v) = stealer.steal() {
                        n += v;
                    }
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("manycore_128_single_steals", |b| {
        b.iter_batched_ref(
            || {
                let (victim, thief) = (Ring::new(256), Ring::new(256));
                for i in 0..256u64 {
                    victim.push(i).unwrap();
                }
                (victim, thief)
            },
            |(victim, thief)| {
                let mut n = 0;
                for _ in 0..128 {
                    n += victim.steal_half_into(thief, 1);
                    black_box(thief.pop());
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion::criterion_group!(benches, push_pop, steal_128);
}
use group::benches;
criterion::criterion_main!(benches);
