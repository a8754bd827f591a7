//! Unit tests of the runtime's pieces. The cross-core stress tests named in the issue live in
//! `tests/tests/runtime_*.rs`.

use std::string::ToString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::vec::Vec;

use manycore_topology::Topology;

use super::*;
use crate::scheduler::SpawnHint;

fn one_cpu_runtime() -> Runtime {
    let host = Topology::host().unwrap();
    let first = host.pu(0).os_index as usize;
    Builder::new()
        .cpus([first].into_iter().collect())
        .build()
        .unwrap()
}

#[test]
fn yield_interleaves_tasks_on_one_cpu() {
    let rt = one_cpu_runtime();
    assert_eq!(rt.num_cpus(), 1);
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let go = Arc::new(Event::new());
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let (log, go) = (log.clone(), go.clone());
            rt.spawn(move || {
                // Start together, so all three are queued on the one CPU.
                go.wait();
                go.set();
                for _ in 0..5 {
                    log.lock().unwrap().push(t);
                    yield_now();
                }
            })
        })
        .collect();
    go.set();
    for h in handles {
        h.join().unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 15);
    let switches = log.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 12, "yield hands the CPU to the others: {log:?}");
}

#[test]
fn tasks_spawn_and_join_tasks() {
    let rt = Runtime::new().unwrap();
    let h = rt.spawn(|| {
        let inner: Vec<_> = (0..100u32).map(|i| spawn(move || i * i).unwrap()).collect();
        inner.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    });
    assert_eq!(h.join().unwrap(), (0..100u32).map(|i| i * i).sum::<u32>());
    rt.shutdown();
}

#[test]
fn a_panic_is_returned_by_join_naming_the_task() {
    let rt = Runtime::new().unwrap();
    let h = rt
        .spawn_with("doomed", SpawnHint::default(), || -> u32 {
            panic!("boom in {}", current_name())
        })
        .unwrap();
    let err = h.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("boom in doomed"));
    assert_eq!(err.to_string(), "task 'doomed' panicked: boom in doomed");
    assert_eq!(
        rt.spawn(|| 41 + 1).join().unwrap(),
        42,
        "the runtime carries on"
    );
    rt.shutdown();
}

#[test]
fn an_os_thread_and_a_task_share_an_event() {
    let rt = Runtime::new().unwrap();
    let ev = Arc::new(Event::new());
    let e2 = ev.clone();
    let h = rt.spawn(move || {
        e2.wait();
        7
    });
    std::thread::sleep(Duration::from_millis(20));
    assert!(!h.is_finished(), "the task waits for the event");
    ev.set();
    assert_eq!(h.join().unwrap(), 7);
    rt.shutdown();
}

#[test]
fn sleep_lets_others_run_and_lasts_at_least_its_duration() {
    let rt = one_cpu_runtime();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t2 = ticks.clone();
    let sleeper = rt.spawn(move || {
        let t = Instant::now();
        sleep(Duration::from_millis(30));
        (t.elapsed(), t2.load(Ordering::Relaxed))
    });
    let t3 = ticks.clone();
    let busy = rt.spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(15) {
            t3.fetch_add(1, Ordering::Relaxed);
            yield_now();
        }
    });
    busy.join().unwrap();
    let (slept, ticks_seen) = sleeper.join().unwrap();
    assert!(slept >= Duration::from_millis(30), "slept {slept:?}");
    assert!(
        ticks_seen > 0,
        "another task ran on the only CPU while this one slept"
    );
    rt.shutdown();
}

#[test]
fn block_on_parks_the_task_until_the_future_is_woken() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    /// Ready once `ready` is set; records the waker so a thread can wake it.
    struct Flag {
        ready: Arc<std::sync::Mutex<(bool, Option<Waker>)>>,
    }
    impl Future for Flag {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            let mut g = self.ready.lock().unwrap();
            if g.0 {
                Poll::Ready(5)
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
    let rt = one_cpu_runtime();
    let ready = Arc::new(std::sync::Mutex::new((false, None::<Waker>)));
    let r2 = ready.clone();
    let h = rt.spawn(move || block_on(Flag { ready: r2 }));
    // The CPU is free while the task waits: another task runs to completion.
    assert_eq!(rt.spawn(|| 1).join().unwrap(), 1);
    let waker = loop {
        if let Some(w) = ready.lock().unwrap().1.clone() {
            break w;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    ready.lock().unwrap().0 = true;
    waker.wake();
    assert_eq!(h.join().unwrap(), 5);
    rt.shutdown();
}

#[test]
fn spawn_rejects_hints_out_of_range_and_calls_outside_a_runtime() {
    let rt = Runtime::new().unwrap();
    let n = rt.num_cpus();
    let e = rt
        .spawn_with(
            "x",
            SpawnHint {
                cpu: Some(n),
                node: None,
            },
            || (),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("out of range") && e.to_string().contains(&std::format!("{n} CPU")),
        "{e}"
    );
    assert_eq!(spawn(|| ()).unwrap_err(), SpawnError::NotInRuntime);
    rt.shutdown();
}

#[test]
fn spawn_on_a_cpu_runs_there() {
    let rt = Runtime::new().unwrap();
    for cpu in 0..rt.num_cpus() {
        let h = rt
            .spawn_with(
                "placed",
                SpawnHint {
                    cpu: Some(cpu),
                    node: None,
                },
                current_cpu,
            )
            .unwrap();
        // A hinted task goes to that CPU's inbox; a thief may still take it, but on an idle
        // machine the target's own worker (woken by the placement) almost always runs it.
        let ran = h.join().unwrap();
        assert!(ran.is_some_and(|c| c < rt.num_cpus()));
    }
    rt.shutdown();
}

#[test]
fn two_runtimes_keep_their_cpus_apart() {
    let a = Runtime::new().unwrap();
    let b = Runtime::new().unwrap();
    // A task of `a` spawning on `b` is an external spawn for `b` (not a push to `b`'s ring as
    // if it were one of b's workers).
    let b = Arc::new(b);
    let b2 = b.clone();
    let h = a.spawn(move || b2.spawn(|| 3).join().unwrap());
    assert_eq!(h.join().unwrap(), 3);
    a.shutdown();
    match Arc::try_unwrap(b) {
        Ok(b) => b.shutdown(),
        Err(_) => unreachable!("the task holding the other handle has finished"),
    }
}

#[test]
fn shutdown_timeout_reports_a_task_blocked_forever() {
    let rt = Runtime::new().unwrap();
    let never = Arc::new(Event::new());
    let n2 = never.clone();
    let h = rt
        .spawn_with("stuck-on-event", SpawnHint::default(), move || n2.wait())
        .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let err = rt.shutdown_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.unfinished, ["stuck-on-event"]);
    assert!(err.stuck_cpus.is_empty(), "{err}");
    let j = h.join().unwrap_err();
    assert!(matches!(j, JoinError::Abandoned { .. }), "{j}");
}

/// A stack source that counts what it hands out and for which CPU, wrapping `mmap` stacks.
struct CountingSource {
    made: Arc<AtomicUsize>,
    cpus_seen: Arc<std::sync::Mutex<Vec<Option<usize>>>>,
}

impl crate::stack::StackSource for CountingSource {
    type Stack = crate::stack::MmapStack;
    fn allocate(&self, usable_bytes: usize) -> Result<Self::Stack, crate::stack::StackError> {
        self.allocate_for(usable_bytes, None)
    }
    fn allocate_for(
        &self,
        usable_bytes: usize,
        cpu: Option<usize>,
    ) -> Result<Self::Stack, crate::stack::StackError> {
        self.made.fetch_add(1, Ordering::Relaxed);
        self.cpus_seen.lock().unwrap().push(cpu);
        crate::stack::MmapStack::new(usable_bytes)
    }
}

/// The builder's custom stack source is the one tasks run on: every stack comes from it, it is
/// told the starting CPU, and warm stacks are recycled (far fewer stacks made than tasks run).
#[test]
fn custom_stack_source_supplies_every_stack_and_is_recycled() {
    let host = Topology::host().unwrap();
    let first = host.pu(0).os_index as usize;
    let made = Arc::new(AtomicUsize::new(0));
    let cpus_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rt = Builder::new()
        .cpus([first].into_iter().collect())
        // Every child on a stack of its own (no inline joins), so the pool is exercised.
        .join_inline(false)
        .stack_source(CountingSource {
            made: made.clone(),
            cpus_seen: cpus_seen.clone(),
        })
        .build()
        .unwrap();
    assert_eq!(rt.stack_source_name(), "custom");
    let on_stack = rt
        .spawn(|| {
            let local = 0u8;
            let here = &raw const local as usize;
            let mut sum = 0;
            for i in 0..200u32 {
                sum += spawn(move || i).unwrap().join().unwrap();
            }
            (here, sum)
        })
        .join()
        .unwrap();
    assert_eq!(on_stack.1, (0..200).sum::<u32>());
    let n = made.load(Ordering::Relaxed);
    assert!(n >= 1, "the custom source made the stacks");
    assert!(
        n <= 4,
        "201 tasks ran on {n} stacks: the pool recycles them"
    );
    assert!(
        cpus_seen.lock().unwrap().iter().all(|&c| c == Some(0)),
        "the source is told the starting CPU: {:?}",
        cpus_seen.lock().unwrap()
    );
    rt.shutdown();
}

/// A one-node host gets plain `mmap` stacks by default; a runtime on a two-node topology gets
/// stacks bound to their CPU's node.
#[test]
fn default_stack_source_follows_the_node_count() {
    let rt = one_cpu_runtime();
    assert_eq!(rt.stack_source_name(), "mmap");
    rt.shutdown();
    let host = Topology::host().unwrap();
    if host.num_nodes() > 1 {
        let rt = Runtime::new().unwrap();
        assert_eq!(rt.stack_source_name(), "mmap+mbind");
        rt.shutdown();
    }
}

/// A child joined before it started runs inline, as the joiner (it sees the joiner's name);
/// with `join_inline(false)` it runs as its own task (its own name). Either way its value, and
/// its panic, come back through the join, and a child that blocks still finishes.
#[test]
fn join_runs_an_unstarted_child_inline_unless_told_not_to() {
    for inline in [true, false] {
        let host = Topology::host().unwrap();
        let first = host.pu(0).os_index as usize;
        let rt = Builder::new()
            .cpus([first].into_iter().collect())
            .join_inline(inline)
            .build()
            .unwrap();
        let (seen, panicked, blocked) = rt
            .spawn_with("parent", SpawnHint::default(), || {
                let seen = spawn_named("child", SpawnHint::default(), current_name)
                    .unwrap()
                    .join()
                    .unwrap();
                let panicked = spawn(|| -> u32 { panic!("child boom") })
                    .unwrap()
                    .join()
                    .unwrap_err();
                // A child that blocks on an event another task sets.
                let ev = Arc::new(Event::new());
                let ev2 = ev.clone();
                let child = spawn(move || {
                    ev2.wait();
                    7
                })
                .unwrap();
                let setter = spawn_named(
                    "setter",
                    SpawnHint {
                        cpu: Some(0),
                        node: None,
                    },
                    {
                        let ev = ev.clone();
                        move || ev.set()
                    },
                )
                .unwrap();
                let blocked = child.join().unwrap();
                setter.join().unwrap();
                (seen, panicked, blocked)
            })
            .unwrap()
            .join()
            .unwrap();
        let expected = if inline { "parent" } else { "child" };
        assert_eq!(seen, expected, "join_inline({inline})");
        assert!(panicked.is_panic(), "{panicked}");
        assert_eq!(panicked.panic_message(), Some("child boom"));
        assert_eq!(blocked, 7);
        assert_eq!(rt.live_tasks(), 0, "every child unregistered");
        rt.shutdown();
    }
}

/// A child that already started is never run inline (it has a stack and a context of its
/// own): the joiner waits for it as usual.
#[test]
fn join_of_a_started_child_waits_for_it() {
    let rt = one_cpu_runtime();
    let v = rt
        .spawn_with("parent", SpawnHint::default(), || {
            let h = spawn_named("child", SpawnHint::default(), || {
                yield_now();
                current_name()
            })
            .unwrap();
            yield_now(); // the child starts, then yields back to the ring
            h.join().unwrap()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(v, "child");
    rt.shutdown();
}

/// A child left in its spawner's next slot while the spawner runs on without blocking is taken
/// by the other CPU (no idle CPU is woken for a next-slot placement; the idle worker's bounded
/// sleep and the grace period make it stealable), long before the spawner finishes.
#[test]
fn next_slot_child_of_a_busy_spawner_runs_elsewhere() {
    let host = Topology::host().unwrap();
    if host.num_cpus() < 2 {
        std::eprintln!("skip: needs two CPUs");
        return;
    }
    let rt = Runtime::new().unwrap();
    // Let every worker go to sleep first, so nobody is searching when the child is placed.
    std::thread::sleep(Duration::from_millis(50));
    let ran_on = Arc::new(AtomicUsize::new(usize::MAX));
    let r2 = ran_on.clone();
    let spawner_cpu = rt
        .spawn(move || {
            let me = current_cpu().unwrap();
            let _child = spawn(move || r2.store(current_cpu().unwrap(), Ordering::Release));
            // Run on, never blocking, for up to 2 s or until the child ran.
            let t0 = Instant::now();
            while r2_ran(&ran_on) == usize::MAX && t0.elapsed() < Duration::from_secs(2) {
                core::hint::spin_loop();
            }
            (me, r2_ran(&ran_on), t0.elapsed())
        })
        .join()
        .unwrap();
    let (me, child_cpu, waited) = spawner_cpu;
    assert_ne!(
        child_cpu,
        usize::MAX,
        "the child never ran while its spawner was busy"
    );
    assert_ne!(child_cpu, me, "it ran on the other CPU");
    std::eprintln!("child ran on CPU {child_cpu} after {waited:?}");
    rt.shutdown();
}

fn r2_ran(a: &AtomicUsize) -> usize {
    a.load(Ordering::Acquire)
}

/// Recursion with a 512-byte frame that the optimizer cannot flatten (overflows any stack).
#[inline(never)]
fn recurse_deep(n: u64) -> u64 {
    let pad = [n; 64];
    std::hint::black_box(&pad);
    if n == 0 {
        0
    } else {
        recurse_deep(n - 1).wrapping_add(std::hint::black_box(pad[3]))
    }
}

/// Attacks the yield's task-to-task hand-off (worker.rs, "Hand-offs"): tasks that yield, block
/// on a mutex held across a yield, sleep, panic and overflow their stacks, interleaved on one
/// CPU (every yield a hand-off candidate) and then on every CPU (thieves resume tasks whose last
/// switch was a hand-off). Every body starts exactly once; the ones that should finish finish
/// once; after every yield the task still sees its own name (the worker's running task follows
/// the hand-offs); a panic and an overflow are charged to the task that had them.
#[test]
fn handoffs_interleaved_with_blocks_panics_and_overflows_run_each_task_once() {
    const TASKS: usize = 40;
    const ROUNDS: usize = 50;
    let host = Topology::host().unwrap();
    let one = [host.pu(0).os_index as usize].into_iter().collect();
    let all = host.pus().iter().map(|p| p.os_index as usize).collect();
    for cpus in [one, all] {
        let rt = Builder::new()
            .cpus(cpus)
            .stack_bytes(64 * 1024)
            .on_stack_overflow(OverflowAction::AbandonTask)
            .build()
            .unwrap();
        let starts: Arc<Vec<AtomicUsize>> =
            Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
        let ends: Arc<Vec<AtomicUsize>> =
            Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
        let total = Arc::new(Mutex::new(0usize));
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let (starts, ends, total) = (starts.clone(), ends.clone(), total.clone());
                let name = std::format!("t{i}");
                rt.spawn_with(name.clone(), SpawnHint::default(), move || -> usize {
                    starts[i].fetch_add(1, Ordering::Relaxed);
                    let yield_checked = || {
                        yield_now();
                        assert_eq!(current_name(), name, "the running task after a yield");
                    };
                    match i % 5 {
                        0 => (0..ROUNDS).for_each(|_| yield_checked()),
                        1 => {
                            for _ in 0..ROUNDS {
                                let mut g = total.lock();
                                *g += 1;
                                // Held across the yield: the other lockers block meanwhile.
                                yield_checked();
                                drop(g);
                            }
                        }
                        2 => {
                            for _ in 0..ROUNDS / 10 {
                                sleep(Duration::from_micros(100));
                                yield_checked();
                            }
                        }
                        3 => {
                            (0..i).for_each(|_| yield_checked());
                            panic!("planned panic in {}", current_name());
                        }
                        _ => {
                            (0..i).for_each(|_| yield_checked());
                            std::hint::black_box(recurse_deep(1 << 30));
                        }
                    }
                    ends[i].fetch_add(1, Ordering::Relaxed);
                    i
                })
                .unwrap()
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let name = std::format!("t{i}");
            match (i % 5, h.join()) {
                (0..=2, Ok(v)) => assert_eq!(v, i),
                (3, Err(JoinError::Panicked { task, .. })) => assert_eq!(task, name),
                (4, Err(JoinError::StackOverflow { task, .. })) => assert_eq!(task, name),
                (kind, r) => panic!(
                    "task {name} (kind {kind}) ended with {:?}",
                    r.map_err(|e| e.to_string())
                ),
            }
            assert_eq!(starts[i].load(Ordering::Relaxed), 1, "{name} started once");
            let finished = usize::from(i % 5 <= 2);
            assert_eq!(
                ends[i].load(Ordering::Relaxed),
                finished,
                "{name} finished {finished} times"
            );
        }
        let lockers = (0..TASKS).filter(|i| i % 5 == 1).count();
        assert_eq!(*total.lock(), lockers * ROUNDS);
        rt.shutdown();
    }
}
