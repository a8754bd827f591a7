//! Raw context switches against corosensei in the same run. Each iteration is a round trip
//! (there and back: two one-way switches; halve the figure for "per switch").
//!
//! - `manycore_resume_suspend`: `arch::resume`/`arch::suspend`, the runtime's switch.
//! - `manycore_switch`: the symmetric thread-to-thread `arch::switch` (kernels).
//! - `manycore_switch_preempt_fxsave` / `_xsave`: the preemptive variants, with the FPU image.
//! - `corosensei_resume_suspend`: the reference.
//!
//! Run: `cargo bench -p manycore-benches --bench switch`

use std::hint::black_box;

use corosensei::{Coroutine, CoroutineResult};
use criterion::Criterion;
use manycore_sched::arch::{
    Context, SwitchKind, TaskContext, init_stack, init_task, resume, suspend, switch,
    switch_preempt, switch_preempt_xsave, xsave_area_bytes,
};
use manycore_sched::stack::{MmapStack, TaskStack};

struct Pair {
    main: Context,
    task: Context,
    kind: SwitchKind,
}

fn switch_kind(kind: SwitchKind, from: *mut Context, to: *const Context) {
    // SAFETY: both contexts were prepared for `kind` (init_stack with the same kind, or
    // suspended by the same switch) on live stacks.
    unsafe {
        match kind {
            SwitchKind::Cooperative => switch(from, to),
            SwitchKind::PreemptFxsave => switch_preempt(from, to),
            SwitchKind::PreemptXsave { area_bytes } => switch_preempt_xsave(from, to, area_bytes),
        }
    }
}

extern "sysv64" fn bounce(arg: usize) -> ! {
    // SAFETY: `arg` is the benchmark's `Pair`, alive while the task may run.
    let p = unsafe { &mut *(arg as *mut Pair) };
    loop {
        switch_kind(p.kind, &raw mut p.task, &raw const p.main);
    }
}

extern "sysv64" fn bounce_task(arg: usize) -> ! {
    let ctx = arg as *mut TaskContext;
    loop {
        // SAFETY: `arg` is the context this task is resumed through, alive for the benchmark.
        unsafe { suspend(ctx) };
    }
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch_round_trip");
    let stack = MmapStack::new(64 * 1024).expect("stack");
    let mut ctx = Box::new(TaskContext::new());
    let arg = &raw mut *ctx as usize;
    // SAFETY: the stack outlives the benchmark; `bounce_task` never returns.
    *ctx = unsafe { init_task(stack.top(), bounce_task, arg) };
    g.bench_function("manycore_resume_suspend", |b| {
        // SAFETY: the task is suspended in `bounce_task` (or fresh) on its live stack.
        b.iter(|| unsafe { resume(&raw mut *ctx) })
    });
    let mut kinds = vec![
        ("manycore_switch", SwitchKind::Cooperative),
        ("manycore_switch_preempt_fxsave", SwitchKind::PreemptFxsave),
    ];
    if let Some(area_bytes) = xsave_area_bytes() {
        kinds.push((
            "manycore_switch_preempt_xsave",
            SwitchKind::PreemptXsave { area_bytes },
        ));
    }
    let mut stacks = vec![stack];
    for (name, kind) in kinds {
        let stack = MmapStack::new(64 * 1024).expect("stack");
        let mut p = Box::new(Pair {
            main: Context::new(),
            task: Context::new(),
            kind,
        });
        let arg = &raw mut *p as usize;
        // SAFETY: the stack outlives the benchmark (kept in `stacks`); `bounce` never returns;
        // 64 KiB covers `kind.init_bytes()`.
        p.task = unsafe { init_stack(stack.top(), bounce, arg, kind) };
        g.bench_function(name, |b| {
            b.iter(|| switch_kind(kind, &raw mut p.main, &raw const p.task))
        });
        stacks.push(stack);
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
    // The tasks stay suspended on these stacks; nothing resumes them after this point.
    drop(stacks);
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion::criterion_group!(benches, round_trips);
}
use group::benches;
criterion::criterion_main!(benches);
