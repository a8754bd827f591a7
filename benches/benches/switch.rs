//! Raw context switch against corosensei in the same run. Each iteration is a round trip:
//! main → task → main, i.e. two one-way switches (halve the figure for "per switch").
//!
//! Run: `cargo bench -p manycore-benches --bench switch`

use std::hint::black_box;

use corosensei::{Coroutine, CoroutineResult};
use criterion::Criterion;
use manycore_sched::arch::{Context, SwitchKind, init_stack, switch, switch_preempt};
use manycore_sched::stack::{MmapStack, TaskStack};

struct Pair {
    main: Context,
    task: Context,
    preempt: bool,
}

extern "sysv64" fn bounce(arg: usize) -> ! {
    // SAFETY: `arg` is the benchmark's `Pair`, alive while the task may run.
    let p = unsafe { &mut *(arg as *mut Pair) };
    loop {
        // SAFETY: `main` was filled by the switch that resumed us.
        unsafe {
            if p.preempt {
                switch_preempt(&raw mut p.task, &raw const p.main)
            } else {
                switch(&raw mut p.task, &raw const p.main)
            }
        }
    }
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch_round_trip");
    for preempt in [false, true] {
        let stack = MmapStack::new(64 * 1024).unwrap();
        let mut p = Box::new(Pair {
            main: Context::new(),
            task: Context::new(),
            preempt,
        });
        let arg = &raw mut *p as usize;
        // SAFETY: the stack outlives the benchmark; `bounce` never returns.
        let kind = if preempt {
            SwitchKind::PreemptFxsave
        } else {
            SwitchKind::Cooperative
        };
        p.task = unsafe { init_stack(stack.top(), bounce, arg, kind) };
        let name = if preempt {
            "manycore_switch_preempt_fxsave"
        } else {
            "manycore_switch"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                // SAFETY: `task` is suspended in `bounce` (or fresh), its stack alive.
                unsafe {
                    if preempt {
                        switch_preempt(&raw mut p.main, &raw const p.task)
                    } else {
                        switch(&raw mut p.main, &raw const p.task)
                    }
                }
            })
        });
        std::mem::forget(stack); // the task is parked mid-loop on it; never resumed again
    }
    let mut co = Coroutine::new(|yielder, ()| {
        loop {
            yielder.suspend(());
        }
    });
    g.bench_function("corosensei_resume_suspend", |b| {
        b.iter(|| match co.resume(()) {
            CoroutineResult::Yield(()) => black_box(()),
            CoroutineResult::Return(()) => unreachable!("the coroutine loops forever"),
        })
    });
    g.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion::criterion_group!(benches, round_trips);
}
use group::benches;
criterion::criterion_main!(benches);
