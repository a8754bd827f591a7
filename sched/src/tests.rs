//! Scheduler-level tests: a deterministic single-threaded driver (as the simulator drives it)
//! and multi-threaded stress with a std platform (as the runtime drives it).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use manycore_topology::{TierKind, Topology};

use crate::*;

/// A platform for a single-threaded driver: the test sets the current CPU and the clock; park
/// returns at once and records that the CPU sleeps until an unpark.
struct Driven {
    now: AtomicU64,
    current: AtomicUsize,
    asleep: Vec<AtomicBool>,
    unparks: AtomicUsize,
}

impl Driven {
    fn new(n: usize) -> Driven {
        Driven {
            now: AtomicU64::new(1),
            current: AtomicUsize::new(usize::MAX),
            asleep: (0..n).map(|_| AtomicBool::new(false)).collect(),
            unparks: AtomicUsize::new(0),
        }
    }
}

impl Platform for Driven {
    fn current_cpu(&self) -> Option<usize> {
        let c = self.current.load(Ordering::Relaxed);
        (c != usize::MAX).then_some(c)
    }
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn park(&self, cpu: usize, _: Option<u64>) {
        self.asleep[cpu].store(true, Ordering::Relaxed);
    }
    fn unpark(&self, cpu: usize) {
        self.asleep[cpu].store(false, Ordering::Relaxed);
        self.unparks.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    id: u32,
    last: Option<usize>,
    home: Option<usize>,
}

impl Task for Job {
    fn home_node(&self) -> Option<usize> {
        self.home
    }
    fn last_cpu(&self) -> Option<usize> {
        self.last
    }
}

#[derive(Default)]
struct Log(Mutex<Vec<(usize, usize, TierKind, usize)>>);

impl Observer for Log {
    fn steal(&self, thief: usize, victim: usize, tier: TierKind, count: usize) {
        if count > 0 {
            self.0.lock().unwrap().push((thief, victim, tier, count));
        }
    }
}

fn sched(topo: &str, policy: &str, config: Config) -> Scheduler<Job, Driven, Log> {
    let t = Topology::from_synthetic(topo).unwrap();
    let n = t.num_cpus();
    Scheduler::with(
        t,
        policy::by_name(policy).unwrap(),
        Driven::new(n),
        Log::default(),
        config,
    )
    .unwrap()
}

/// Drives every CPU round-robin until no task is left; returns (task, cpu) in run order.
fn drain(s: &Scheduler<Job, Driven, Log>) -> Vec<(u32, usize)> {
    let mut ran = Vec::new();
    let mut idle_rounds = 0;
    while idle_rounds < 3 {
        let mut any = false;
        for cpu in 0..s.num_cpus() {
            s.platform().current.store(cpu, Ordering::Relaxed);
            s.platform().now.fetch_add(1_000, Ordering::Relaxed);
            if let Some(job) = s.next_task(cpu) {
                ran.push((job.id, cpu));
                any = true;
            } else if !s.is_sleeping(cpu) {
                s.prepare_park(cpu);
            }
        }
        idle_rounds = if any { 0 } else { idle_rounds + 1 };
    }
    ran
}

fn spawn_on(s: &Scheduler<Job, Driven, Log>, cpu: usize, ids: core::ops::Range<u32>) {
    s.platform().current.store(cpu, Ordering::Relaxed);
    for id in ids {
        s.spawn(
            Job {
                id,
                last: None,
                home: None,
            },
            SpawnHint::default(),
        );
    }
}

#[test]
fn every_task_runs_once_and_steals_start_at_the_sibling() {
    // A ring large enough that nothing overflows to the injector: all work is on CPU 0's ring.
    let s = sched(
        "pack:2 numa:2 l3:2 core:4 pu:2",
        "topology",
        Config {
            ring_capacity: 4096,
            ..Config::default()
        },
    );
    spawn_on(&s, 0, 0..2000);
    let ran = drain(&s);
    let mut ids: Vec<u32> = ran.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..2000).collect::<Vec<_>>(),
        "every task exactly once"
    );
    let log = s.observer().0.lock().unwrap();
    let first_from_0 = log.iter().find(|e| e.1 == 0).unwrap();
    assert_eq!(
        (first_from_0.0, first_from_0.2),
        (1, TierKind::Smt),
        "CPU 1, CPU 0's SMT sibling, steals first"
    );
    let c = s.counters();
    assert!(
        c.steals(TierKind::Smt) > 0 && c.steals(TierKind::Remote) > 0,
        "{c:?}"
    );
    assert!(
        ran.iter().any(|&(_, cpu)| cpu >= 32),
        "work spread to the other package"
    );
}

#[test]
fn same_seed_same_schedule() {
    let run = || {
        let s = sched(
            "pack:2 numa:2 l3:2 core:2 pu:2",
            "topology",
            Config {
                seed: 42,
                ..Config::default()
            },
        );
        spawn_on(&s, 3, 0..500);
        let ran = drain(&s);
        let log = s.observer().0.lock().unwrap().clone();
        (ran, log)
    };
    assert_eq!(run(), run());
}

#[test]
fn remote_threshold_keeps_a_single_task_home() {
    // Two nodes of one CPU: a lone task on node 0 is not worth a remote steal.
    let s = sched("numa:2 core:1 pu:1", "topology", Config::default());
    s.platform().current.store(0, Ordering::Relaxed);
    s.push_local(
        0,
        Job {
            id: 1,
            last: None,
            home: None,
        },
    );
    s.platform().current.store(1, Ordering::Relaxed);
    assert_eq!(s.next_task(1), None, "remote_min_tasks = 2");
    s.platform().current.store(0, Ordering::Relaxed);
    s.push_local(
        0,
        Job {
            id: 2,
            last: None,
            home: None,
        },
    );
    s.push_local(
        0,
        Job {
            id: 3,
            last: None,
            home: None,
        },
    );
    s.platform().current.store(1, Ordering::Relaxed);
    assert_eq!(
        s.next_task(1),
        None,
        "a backlog younger than remote_grace_ns stays on its node"
    );
    s.platform()
        .now
        .fetch_add(Config::default().remote_grace_ns, Ordering::Relaxed);
    assert!(
        s.next_task(1).is_some(),
        "with plenty queued for remote_grace_ns the remote CPU helps"
    );
}

fn job_n(id: u32) -> Job {
    Job {
        id,
        last: None,
        home: None,
    }
}

#[test]
fn remote_horizon_skips_remote_probes_until_the_declined_backlog_ripens() {
    // Two nodes of one CPU each: CPU 0 (busy, so its node has no idle CPU) holds a young
    // backlog; CPU 1 searches.
    let grace = Config::default().remote_grace_ns;
    let s = sched("numa:2 core:1 pu:1", "topology", Config::default());
    let now = |t: u64| s.platform().now.store(t, Ordering::Relaxed);
    now(1_000);
    s.platform().current.store(0, Ordering::Relaxed);
    for id in 0..3 {
        s.push_local(0, job_n(id));
    }
    s.platform().current.store(1, Ordering::Relaxed);
    let probes = |s: &Scheduler<Job, Driven, Log>| s.counters().steal_probes_empty;
    assert_eq!(
        s.next_task(1),
        None,
        "the backlog is younger than the grace"
    );
    let after_first = probes(&s);
    assert_eq!(
        after_first, 1,
        "the first search looked at CPU 0 and declined it"
    );
    now(1_000 + grace / 2);
    assert_eq!(s.next_task(1), None);
    assert_eq!(
        probes(&s),
        after_first,
        "before the backlog ripens the search does not look across nodes again"
    );
    // Parking before the horizon: not refused for the young backlog, and the timed sleep
    // ends no earlier than the horizon.
    assert!(s.prepare_park(1), "nothing CPU 1 may take yet: it sleeps");
    let wake = s
        .stranded_recheck_ns(1)
        .expect("a timed sleep for the backlog");
    assert!(
        wake >= 1_000 + grace,
        "sleeps until the backlog ripens ({wake})"
    );
    s.finish_park(1);
    now(1_000 + grace);
    assert!(
        s.next_task(1).is_some(),
        "at the horizon the remote backlog is taken"
    );
}

#[test]
fn remote_horizon_is_shared_by_the_node() {
    // Node 0 = CPUs 0-1 (both busy), node 1 = CPUs 2-3. CPU 2's search declines CPU 0's young
    // backlog; CPU 3, of the same node, does not look across nodes again before it ripens.
    let grace = Config::default().remote_grace_ns;
    let s = sched("numa:2 core:2 pu:1", "topology", Config::default());
    s.platform().now.store(1_000, Ordering::Relaxed);
    s.platform().current.store(0, Ordering::Relaxed);
    for id in 0..3 {
        s.push_local(0, job_n(id));
    }
    s.platform().current.store(2, Ordering::Relaxed);
    assert_eq!(s.next_task(2), None);
    let probes = s.counters().steal_probes_empty;
    assert_eq!(probes, 1, "CPU 2 looked at CPU 0 and declined it");
    s.platform().now.store(1_000 + grace / 2, Ordering::Relaxed);
    s.platform().current.store(3, Ordering::Relaxed);
    assert_eq!(s.next_task(3), None);
    assert_eq!(
        s.counters().steal_probes_empty,
        probes,
        "CPU 3 knows from CPU 2's search that nothing across nodes is ripe yet"
    );
    s.platform().now.store(1_000 + grace, Ordering::Relaxed);
    assert!(s.next_task(3).is_some(), "at the horizon CPU 3 helps");
}

#[test]
fn park_recheck_clears_stale_summary_bits() {
    let s = sched("pack:1 core:4 pu:1", "topology", Config::default());
    s.platform().current.store(0, Ordering::Relaxed);
    s.push_local(0, job_n(1));
    assert!(s.summary_says_loaded(0));
    // CPU 0 runs its only task: its bit stays set (the owner does not clear it on the hot path).
    assert_eq!(s.next_task(0).map(|j| j.id), Some(1));
    assert!(s.summary_says_loaded(0), "stale until someone looks");
    s.platform().current.store(2, Ordering::Relaxed);
    assert!(s.prepare_park(2), "nothing queued anywhere: CPU 2 sleeps");
    assert!(
        !s.summary_says_loaded(0),
        "the sleeper's re-check cleared the stale bit, so later re-checks skip CPU 0"
    );
    // Work published afterwards is advertised again and found.
    s.platform().current.store(0, Ordering::Relaxed);
    s.push_local(0, job_n(2));
    assert!(s.summary_says_loaded(0));
}

#[test]
fn nosteal_never_moves_work_and_global_shares_it() {
    let s = sched("pack:1 core:4 pu:1", "nosteal", Config::default());
    spawn_on(&s, 2, 0..100);
    assert!(drain(&s).iter().all(|&(_, cpu)| cpu == 2));
    assert_eq!(s.counters().steals_by_tier.iter().sum::<u64>(), 0);

    let s = sched("pack:1 core:4 pu:1", "global", Config::default());
    spawn_on(&s, 2, 0..100);
    let ran = drain(&s);
    assert_eq!(ran.len(), 100);
    assert!(
        ran.iter()
            .map(|r| r.1)
            .collect::<alloc::collections::BTreeSet<_>>()
            .len()
            == 4
    );
}

#[test]
fn wake_prefers_idle_last_cpu_then_llc_then_node() {
    let s = sched(
        "pack:1 numa:2 l3:1 core:2 pu:1",
        "topology",
        Config::default(),
    );
    // CPUs 0,1 share node 0's L3; 2,3 node 1's.
    for cpu in 0..4 {
        assert!(s.prepare_park(cpu));
    }
    s.platform().current.store(usize::MAX, Ordering::Relaxed);
    s.wake(Job {
        id: 1,
        last: Some(1),
        home: None,
    });
    assert!(
        !s.is_sleeping(1) && s.queued_on(1) == 1,
        "idle last CPU gets it"
    );
    s.wake(Job {
        id: 2,
        last: Some(1),
        home: None,
    });
    assert!(
        !s.is_sleeping(0) && s.queued_on(0) == 1,
        "then an idle CPU of its LLC"
    );
    s.wake(Job {
        id: 3,
        last: Some(1),
        home: Some(1),
    });
    assert_eq!(s.queued_on(2) + s.queued_on(3), 1, "then its home node");
    let c = s.counters();
    assert_eq!(
        (
            c.wakes(WakeReason::LastCpu),
            c.wakes(WakeReason::Llc),
            c.wakes(WakeReason::Node)
        ),
        (1, 1, 1)
    );
    // A task waking a task that last ran on the waker's CPU keeps it local (next slot).
    s.platform().current.store(2, Ordering::Relaxed);
    s.wake(Job {
        id: 4,
        last: Some(2),
        home: None,
    });
    assert_eq!(
        s.next_task(2).map(|j| j.id),
        Some(4),
        "the next slot runs first"
    );
}

#[test]
fn next_slot_is_bounded_and_stealable_after_grace() {
    let s = sched(
        "pack:1 core:2 pu:1",
        "topology",
        Config {
            next_streak_max: 2,
            next_slot_grace_ns: 10_000,
            ..Config::default()
        },
    );
    s.platform().current.store(0, Ordering::Relaxed);
    s.push_local(
        0,
        Job {
            id: 100,
            last: None,
            home: None,
        },
    );
    let mut order = Vec::new();
    for id in 0..3 {
        s.wake(Job {
            id,
            last: Some(0),
            home: None,
        });
        order.push(s.next_task(0).unwrap().id);
    }
    assert_eq!(
        order,
        [0, 1, 100],
        "after two next-slot runs the ring gets its turn"
    );
    // A woken task waits in the next slot; CPU 1 may take it only after the grace period.
    s.wake(Job {
        id: 7,
        last: Some(0),
        home: None,
    });
    s.platform().current.store(1, Ordering::Relaxed);
    let _ = s.next_task(1); // the ring task 2 (displaced) may be stolen here
    s.platform().now.fetch_add(1_000_000, Ordering::Relaxed);
    let mut got = Vec::new();
    // A woken task is put without a timestamp: the thief's first look stamps it, and it is
    // stealable a grace period after that look.
    while let Some(j) = s.next_task(1) {
        got.push(j.id);
    }
    assert!(!got.contains(&7), "not taken at the first look: {got:?}");
    s.platform().now.fetch_add(1_000_000, Ordering::Relaxed);
    while let Some(j) = s.next_task(1) {
        got.push(j.id);
    }
    assert!(
        got.contains(&7),
        "the stale next-slot task was stolen: {got:?}"
    );
    assert!(s.counters().next_slot_stolen >= 1);
}

#[test]
fn wasted_core_checker_sees_an_idle_cpu_beside_waiting_work() {
    let s = sched(
        "pack:1 core:2 pu:1",
        "nosteal",
        Config {
            stats: true,
            wasted_threshold_ns: 5_000,
            ..Config::default()
        },
    );
    s.platform().current.store(0, Ordering::Relaxed);
    s.push_local(
        0,
        Job {
            id: 1,
            last: None,
            home: None,
        },
    );
    s.push_local(
        0,
        Job {
            id: 2,
            last: None,
            home: None,
        },
    );
    assert!(s.prepare_park(1));
    s.sample_wasted(1_000);
    assert!(!s.sample_wasted(3_000), "below the threshold");
    assert!(
        s.sample_wasted(20_000),
        "CPU 1 sleeps while CPU 0's tasks wait 19 µs"
    );
    assert!(s.counters().wasted_core_ns >= 17_000);
    // Once CPU 0 drains its queue, nothing is wasted.
    while s.next_task(0).is_some() {}
    assert!(!s.sample_wasted(40_000));
}

/// A std platform: one OS thread per CPU, park/unpark through std's thread tokens.
struct Threads {
    threads: Mutex<Vec<Option<std::thread::Thread>>>,
    start: std::time::Instant,
}

std::thread_local! {
    static CPU: core::cell::Cell<usize> = const { core::cell::Cell::new(usize::MAX) };
}

impl Platform for Threads {
    fn current_cpu(&self) -> Option<usize> {
        let c = CPU.with(|c| c.get());
        (c != usize::MAX).then_some(c)
    }
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn park(&self, _cpu: usize, _: Option<u64>) {
        // Bounded so a bug shows as slowness plus a failed count, not a hung test.
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
    fn unpark(&self, cpu: usize) {
        if let Some(t) = &self.threads.lock().unwrap()[cpu] {
            t.unpark();
        }
    }
}

#[derive(Clone, Copy)]
struct Id(u32);
impl Task for Id {}

/// 10^7 tasks (10^6 in debug builds, where the same code runs ~20x slower; run
/// `cargo test -p manycore-sched --release stress` for the full count) pushed by four CPUs
/// while they and their thieves run them: each is taken exactly once.
#[test]
fn stress_every_task_taken_exactly_once() {
    let total: u32 = if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    };
    let cpus = 4;
    let topo = Topology::from_synthetic("pack:1 numa:2 core:2 pu:1").unwrap();
    let platform = Threads {
        threads: Mutex::new(alloc::vec![None; cpus]),
        start: std::time::Instant::now(),
    };
    let s: Arc<Scheduler<Id, Threads>> = Arc::new(
        Scheduler::with(
            topo,
            Box::new(TopologyPolicy::default()),
            platform,
            NoObserver,
            Config {
                ring_capacity: 64,
                ..Config::default()
            },
        )
        .unwrap(),
    );
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let taken = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..cpus)
        .map(|cpu| {
            let (s, seen, taken) = (s.clone(), seen.clone(), taken.clone());
            std::thread::spawn(move || {
                CPU.with(|c| c.set(cpu));
                s.platform().threads.lock().unwrap()[cpu] = Some(std::thread::current());
                let share = total / cpus as u32;
                let mut next_id = share * cpu as u32;
                let end = if cpu == cpus - 1 {
                    total
                } else {
                    next_id + share
                };
                loop {
                    // Producers push in bursts (CPU 0 and 2 push 4x faster, so work is uneven).
                    let burst = if cpu % 2 == 0 { 64 } else { 16 };
                    for _ in 0..burst {
                        if next_id < end {
                            s.push_local(cpu, Id(next_id));
                            next_id += 1;
                        }
                    }
                    for _ in 0..32 {
                        match s.next_task(cpu) {
                            Some(Id(id)) => {
                                assert_eq!(
                                    seen[id as usize].fetch_add(1, Ordering::Relaxed),
                                    0,
                                    "task {id} taken twice"
                                );
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                            None => break,
                        }
                    }
                    if next_id >= end && taken.load(Ordering::Relaxed) >= total as usize {
                        break;
                    }
                    if next_id >= end
                        && s.next_task(cpu)
                            .map(|Id(id)| {
                                assert_eq!(
                                    seen[id as usize].fetch_add(1, Ordering::Relaxed),
                                    0,
                                    "task {id} taken twice"
                                );
                                taken.fetch_add(1, Ordering::Relaxed);
                            })
                            .is_none()
                    {
                        s.park(cpu, None);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(taken.load(Ordering::Relaxed), total as usize);
    assert!(seen.iter().all(|v| v.load(Ordering::Relaxed) == 1));
    let c = s.counters();
    assert!(
        c.steals_by_tier.iter().sum::<u64>() > 0,
        "thieves took part: {c:?}"
    );
}

fn job(id: u32) -> Job {
    Job {
        id,
        last: None,
        home: None,
    }
}

/// The yield path's private batch keeps FIFO order: with five tasks on one CPU, each yield runs
/// the longest-waiting task, so every task runs once per five yields.
#[test]
fn yield_round_robin_runs_every_task_in_turn() {
    let s = sched("pack:1 core:1 pu:1", "topology", Config::default());
    s.platform().current.store(0, Ordering::Relaxed);
    for id in 1..5 {
        s.push_local(0, job(id));
    }
    let mut running = job(0);
    let mut order = Vec::new();
    for _ in 0..15 {
        running = s.yield_task(0, running).unwrap();
        order.push(running.id);
        assert_eq!(s.queued_on(0), 4, "the batch counts as queued");
    }
    assert_eq!(order, [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]);
}

/// Tasks in a CPU's yield batch are hidden from thieves only while the CPU keeps yielding: the
/// yielder stays stealable, and the owner's next other decision (a task blocked, the CPU goes
/// idle) puts the batch back in the ring, where a thief takes it.
#[test]
fn yield_batch_returns_to_the_ring_when_the_owner_leaves_the_yield_path() {
    let s = sched("pack:1 core:2 pu:1", "topology", Config::default());
    s.platform().current.store(0, Ordering::Relaxed);
    for id in 1..5 {
        s.push_local(0, job(id));
    }
    // CPU 0 yields task 0: task 1 runs, 2..=4 sit in the batch, 0 is back in the ring.
    let running = s.yield_task(0, job(0)).unwrap();
    assert_eq!(running.id, 1);
    s.platform().current.store(1, Ordering::Relaxed);
    let stolen = s.next_task(1).expect("the yielder is stealable");
    assert_eq!(stolen.id, 0, "a thief sees only the ring, not the batch");
    assert_eq!(
        s.next_task(1),
        None,
        "the batch is hidden while CPU 0 yields"
    );
    assert_eq!(s.queued_on(0), 3);
    // Task 1 blocks: CPU 0 picks its next task the ordinary way, which flushes the batch first.
    s.platform().current.store(0, Ordering::Relaxed);
    assert_eq!(s.next_task(0).map(|j| j.id), Some(2));
    s.platform().current.store(1, Ordering::Relaxed);
    let mut got: Vec<u32> = core::iter::from_fn(|| s.next_task(1).map(|j| j.id)).collect();
    got.sort_unstable();
    assert!(
        !got.is_empty() && got.iter().all(|id| [3, 4].contains(id)),
        "after the flush the rest is stealable: {got:?}"
    );
}

/// The runtime's task-to-task hand-off queues the yielder through its `YieldLane`, not
/// `push_quiet`: that push must advertise the CPU in the work summary, or a thief that cleared
/// the bit while the yield batch had emptied the ring would never aim at the yielder.
#[test]
fn yield_lane_push_advertises_the_yielder_to_thieves() {
    let s = sched("pack:1 core:2 pu:1", "topology", Config::default());
    s.platform().current.store(0, Ordering::Relaxed);
    for id in 1..4 {
        s.push_local(0, job(id));
    }
    let lane = s.yield_lane(0);
    // SAFETY: `s` made the lane and outlives it; this thread acts as CPU 0's owner.
    let running = match unsafe { lane.pick() } {
        crate::scheduler::YieldPick::Next(t) => t,
        _ => panic!("three tasks queued: the fast path hands one over"),
    };
    assert_eq!(running.id, 1);
    // The batch took the whole ring: a thief finds CPU 0 empty and clears its bit.
    s.platform().current.store(1, Ordering::Relaxed);
    assert_eq!(s.next_task(1), None, "the batch is hidden");
    assert!(
        !s.summary_says_loaded(0),
        "the thief's empty probe cleared CPU 0's bit (the attack's setup)"
    );
    // The landing task queues the yielder through the lane.
    s.platform().current.store(0, Ordering::Relaxed);
    // SAFETY: as above; no other owner call on CPU 0 since `pick`.
    unsafe { lane.push(&s, job(0)) };
    assert!(
        s.summary_says_loaded(0),
        "the lane's push re-advertised CPU 0"
    );
    s.platform().current.store(1, Ordering::Relaxed);
    assert_eq!(
        s.next_task(1).map(|j| j.id),
        Some(0),
        "a thief aims at the yielder"
    );
}

/// A CPU never sleeps holding hidden tasks: `prepare_park` flushes the batch and refuses to
/// sleep while its tasks wait.
#[test]
fn no_cpu_parks_holding_yield_batch_tasks() {
    let s = sched("pack:1 core:2 pu:1", "topology", Config::default());
    s.platform().current.store(0, Ordering::Relaxed);
    for id in 1..4 {
        s.push_local(0, job(id));
    }
    let running = s.yield_task(0, job(0)).unwrap();
    assert_eq!(running.id, 1);
    // A thief takes the yielder: CPU 0's ring is empty, tasks 2 and 3 are in its batch.
    s.platform().current.store(1, Ordering::Relaxed);
    assert_eq!(s.next_task(1).map(|j| j.id), Some(0));
    s.platform().current.store(0, Ordering::Relaxed);
    assert!(!s.prepare_park(0), "CPU 0 still has tasks 2 and 3");
    let rest: Vec<u32> = core::iter::from_fn(|| s.next_task(0).map(|j| j.id)).collect();
    assert_eq!(rest, [2, 3]);
}
