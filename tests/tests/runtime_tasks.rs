//! Spawning across CPUs: every task runs exactly once and its value comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use manycore_sched::rt::{self, Builder, Runtime};
use manycore_sched::{NoStealPolicy, SpawnHint};

const TASKS: usize = 100_000;

/// Two spawner tasks, placed on the first two CPUs, spawn half the tasks each and join them.
/// Every task counts its runs (each counter must end at exactly 1) and the CPU it ran on, and
/// returns a value derived from its index, which its joiner checks. Returns the per-CPU counts.
fn spawn_across_cpus(rt: &Runtime) -> Vec<u32> {
    let cpus = rt.num_cpus();
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..TASKS).map(|_| AtomicU8::new(0)).collect());
    let ran_on: Arc<Vec<AtomicU32>> = Arc::new((0..cpus).map(|_| AtomicU32::new(0)).collect());
    let spawners: Vec<_> = (0..2)
        .map(|half| {
            let (runs, ran_on) = (runs.clone(), ran_on.clone());
            rt.spawn_with(
                format!("spawner-{half}"),
                SpawnHint {
                    cpu: Some(half % cpus),
                    node: None,
                },
                move || {
                    let range = half * TASKS / 2..(half + 1) * TASKS / 2;
                    let handles: Vec<_> = range
                        .clone()
                        .map(|i| {
                            let (runs, ran_on) = (runs.clone(), ran_on.clone());
                            rt::spawn(move || {
                                runs[i].fetch_add(1, Ordering::Relaxed);
                                let cpu = rt::current_cpu().expect("tasks run on workers");
                                ran_on[cpu].fetch_add(1, Ordering::Relaxed);
                                (i as u64) * 3 + 1
                            })
                            .expect("spawn from a task")
                        })
                        .collect();
                    for (i, h) in range.zip(handles) {
                        assert_eq!(h.join().expect("task"), (i as u64) * 3 + 1);
                    }
                },
            )
            .expect("spawner")
        })
        .collect();
    for s in spawners {
        s.join().expect("spawner finished");
    }
    let not_once: Vec<usize> = (0..TASKS)
        .filter(|&i| runs[i].load(Ordering::Relaxed) != 1)
        .collect();
    assert!(
        not_once.is_empty(),
        "tasks not run exactly once: {:?}",
        &not_once[..not_once.len().min(10)]
    );
    let per_cpu: Vec<u32> = ran_on.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(per_cpu.iter().sum::<u32>() as usize, TASKS);
    assert_eq!(rt.live_tasks(), 0, "every finished task left the registry");
    per_cpu
}

/// With the default (stealing) policy. Where the children run is the scheduler's choice (a
/// spawner busy spawning leaves its children to the other CPU, which steals them all), so only
/// exactly-once and the values are asserted; the spread is printed.
#[test]
fn every_task_runs_once_and_returns_its_value() {
    let rt = Runtime::new().expect("runtime");
    let per_cpu = spawn_across_cpus(&rt);
    eprintln!("tasks per CPU (topology policy): {per_cpu:?}");
    rt.shutdown();
}

/// With the `nosteal` policy nothing moves between CPUs except through the node injector, so
/// each spawner's CPU runs children too: the tasks provably run on both CPUs.
#[test]
fn every_task_runs_once_on_both_cpus_without_stealing() {
    let rt = Builder::new()
        .policy(Box::new(NoStealPolicy))
        .build()
        .expect("runtime");
    let per_cpu = spawn_across_cpus(&rt);
    if rt.num_cpus() >= 2 {
        assert!(
            per_cpu.iter().filter(|&&n| n > 0).count() >= 2,
            "tasks ran on both CPUs: {per_cpu:?}"
        );
    }
    rt.shutdown();
}

/// A panicking task is reported by its join, naming it, and the runtime keeps serving.
#[test]
fn a_panic_is_reported_not_fatal() {
    let rt = Runtime::new().expect("runtime");
    let bad = rt
        .spawn_with("will-panic", SpawnHint::default(), || -> u32 {
            panic!("deliberate")
        })
        .expect("spawn");
    let e = bad.join().expect_err("the task panicked");
    assert!(e.is_panic());
    assert_eq!(e.to_string(), "task 'will-panic' panicked: deliberate");
    let after: u32 = (0..100)
        .map(|i| rt.spawn(move || i).join().expect("later task"))
        .sum();
    assert_eq!(after, (0..100).sum::<u32>());
    rt.shutdown();
}
