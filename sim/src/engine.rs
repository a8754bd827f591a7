//! The discrete-event engine: virtual CPUs, tasks, the clock, and the glue between the workload
//! and the scheduler.
//!
//! # One step
//! Each event is handled at its virtual time, alone (the engine is single-threaded):
//! - `CpuReady`: the CPU's segment ended. The workload says what the task does next; if the CPU
//!   is free, the scheduler picks the next task. Every scheduler action the observer reports
//!   (spawn, wake placement, probes, steals, injector operations, the switch) is priced by the
//!   cost model and delays the next segment's start on that CPU.
//! - `CpuUnpark`: a parked CPU is awake (after the unpark latency) and asks the scheduler.
//! - `Arrival`: a workload event (request arrival, trace release), handled on its target CPU.
//! - `BalanceTick`: the policy's periodic balancing, if it has one.
//!
//! # Invariants
//! - A task is in exactly one state: runnable (queued in the scheduler), running (on one CPU), or
//!   blocked (held by the workload); the engine checks each transition.
//! - The task table is a slab with a free list: memory follows tasks in flight, not tasks run.
//! - At the end no task may remain: a leftover task is reported as an error (a lost wakeup if
//!   it was queued, a workload deadlock if it was blocked).

use crate::chrome_trace::TraceWriter;
use crate::cost::CostModel;
use crate::event::{EventKind, EventQueue};
use crate::machine::Machine;
use crate::metrics::{Stats, Timeline, Wasted};
use crate::rng::Rng;
use crate::sched_bridge::{self, SchedCore, SimPlatform};
use crate::workload::{Ctx, NewTask, Seg, Step, TaskId, Workload};
use manycore_topology::TierKind;

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Free,
    Runnable,
    Running,
    Blocked,
}

#[derive(Clone, Debug)]
struct Task {
    state: TaskState,
    seg: Seg,
    home: u32,
    last_cpu: u32,
    born_ns: u64,
    ready_ns: u64,
    serial: u64,
    /// Bumped on every enqueue and dequeue: tells stale wasted-core deadlines apart.
    epoch: u32,
    overdue: bool,
    woken: bool,
    started: bool,
    latency: bool,
    user: [u64; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpuState {
    Running,
    Parked,
    Waking,
}

#[derive(Clone, Copy, Debug)]
struct Cpu {
    state: CpuState,
    /// Announced asleep to the scheduler (`prepare_park` said sleep): its wake-up must call
    /// `finish_park`. False while it merely waits to retry a search.
    asleep: bool,
    /// When the failed search that put it to sleep ends: it cannot run anything before, even if
    /// it is unparked earlier (the scheduler announces the sleep at the start of the step).
    search_until_ns: u64,
    task: u32,
    generation: u64,
    idle_since_ns: u64,
}

/// Options of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The seed all random streams derive from.
    pub seed: u64,
    /// Prices.
    pub cost: CostModel,
    /// Wasted-core threshold: a runnable task counts once it has waited this long.
    pub wasted_threshold_ns: u64,
    /// Keep the serial number of every completed task (tests of conservation; memory grows
    /// with the run).
    pub record_completions: bool,
    /// Stop with an error after this many events (a guard against livelock).
    pub max_events: u64,
    /// Most schedule-trace events this run may write (when a trace is requested).
    pub trace_budget_events: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: 1,
            cost: CostModel::default(),
            wasted_threshold_ns: 100_000,
            record_completions: false,
            max_events: u64::MAX,
            trace_budget_events: u64::MAX,
        }
    }
}

/// Everything one run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Policy name.
    pub policy: String,
    /// Counters and histograms.
    pub stats: Stats,
    /// Busy time per CPU over time.
    pub timeline: Timeline,
    /// Wasted-core and idle integrals.
    pub wasted: Wasted,
    /// Virtual time of the last exit.
    pub makespan_ns: u64,
    /// Events handled.
    pub events: u64,
    /// Most tasks alive at once.
    pub peak_live_tasks: u64,
    /// Serial numbers of completed tasks, in completion order (only with `record_completions`).
    pub completions: Vec<u64>,
    /// CPUs of the machine.
    pub cpus: usize,
}

/// Progress callback: `(tasks completed, tasks expected if known)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

struct Env<'a> {
    m: &'a Machine,
    cost: &'a CostModel,
    q: EventQueue,
    tasks: Vec<Task>,
    free: Vec<u32>,
    live: u64,
    peak_live: u64,
    /// Tasks in state `Runnable` (queued in the scheduler).
    runnable: u64,
    next_serial: u64,
    cpus: Vec<Cpu>,
    /// Overhead accumulated by the CPU currently acting (`acting`), charged before its next
    /// segment.
    overhead_ns: u64,
    acting: usize,
    stats: Stats,
    timeline: Timeline,
    wasted: Wasted,
    wl_rng: Rng,
    completions: Option<Vec<u64>>,
    trace: Option<&'a mut TraceWriter>,
}

impl Env<'_> {
    fn now(&self) -> u64 {
        self.q.now_ns()
    }

    fn alloc(&mut self, t: Task) -> u32 {
        self.live += 1;
        self.peak_live = self.peak_live.max(self.live);
        if let Some(i) = self.free.pop() {
            let epoch = self.tasks[i as usize].epoch;
            self.tasks[i as usize] = Task { epoch, ..t };
            i
        } else {
            self.tasks.push(t);
            (self.tasks.len() - 1) as u32
        }
    }

    fn make_runnable(&mut self, task: u32) {
        let now = self.now();
        let t = &mut self.tasks[task as usize];
        t.state = TaskState::Runnable;
        t.ready_ns = now;
        t.epoch = t.epoch.wrapping_add(1);
        let epoch = t.epoch;
        self.runnable += 1;
        self.wasted.enqueued(now, task, epoch);
    }

    fn dequeued(&mut self, task: u32) {
        let t = &mut self.tasks[task as usize];
        assert_eq!(
            t.state,
            TaskState::Runnable,
            "the scheduler returned a task that is not runnable"
        );
        self.runnable -= 1;
        t.epoch = t.epoch.wrapping_add(1);
        if t.overdue {
            t.overdue = false;
            self.wasted.overdue -= 1;
        }
    }

    fn charge(&mut self, ns: u64) {
        self.overhead_ns += ns;
    }

    /// Starts `task`'s pending segment on `cpu` at `start_ns`.
    fn start_segment(&mut self, cpu: usize, task: u32, start_ns: u64) {
        let node = self.m.node_of(cpu);
        let t = &mut self.tasks[task as usize];
        let mut dur = t.seg.cpu_ns;
        if t.seg.mem_ns > 0 {
            let d = self.m.node_distance(node, t.home as usize);
            if node == t.home as usize {
                self.stats.mem_local_ns += u128::from(t.seg.mem_ns);
                dur += t.seg.mem_ns;
            } else {
                self.stats.mem_remote_ns += u128::from(t.seg.mem_ns);
                dur += (t.seg.mem_ns as f64 * self.cost.memory_factor(d) + 0.5) as u64;
            }
        }
        if t.last_cpu != NONE && t.last_cpu as usize != cpu {
            let d = self.m.distance(t.last_cpu as usize, cpu);
            let cold = self.cost.cold_cache.at(d);
            dur += cold;
            self.stats.cold_ns += u128::from(cold);
            if let Some(k) = Machine::tier_of(d) {
                self.stats.migrations[k.index()] += 1;
            }
        }
        t.last_cpu = cpu as u32;
        t.state = TaskState::Running;
        let (serial, home) = (t.serial, t.home as usize);
        let c = &mut self.cpus[cpu];
        c.state = CpuState::Running;
        c.task = task;
        self.stats.busy_ns += u128::from(dur);
        self.stats.overhead_ns += u128::from(start_ns - self.now());
        self.timeline.add(cpu, start_ns, start_ns + dur);
        if let Some(tr) = self.trace.as_deref_mut() {
            tr.segment(cpu, serial, start_ns, dur, home);
        }
        // The end of a segment carries its task: the engine reads the task's record without
        // first reading the CPU's (two dependent cache misses on a 1024-CPU machine).
        self.q.push(
            start_ns + dur,
            EventKind::CpuReady,
            cpu as u32,
            u64::from(task),
        );
    }

    fn exit(&mut self, task: u32) {
        let now = self.now();
        let t = &mut self.tasks[task as usize];
        t.state = TaskState::Free;
        if t.latency {
            self.stats.latency.record(now - t.born_ns);
        }
        let serial = t.serial;
        self.free.push(task);
        self.live -= 1;
        self.stats.completed += 1;
        self.stats.last_exit_ns = now;
        if let Some(c) = self.completions.as_mut() {
            c.push(serial);
        }
    }
}

impl SimPlatform for Env<'_> {
    fn now_ns(&self) -> u64 {
        self.now() + self.overhead_ns
    }

    fn task_home(&self, task: u32) -> usize {
        self.tasks[task as usize].home as usize
    }

    fn task_last_cpu(&self, task: u32) -> Option<usize> {
        let c = self.tasks[task as usize].last_cpu;
        (c != NONE).then_some(c as usize)
    }

    fn charge(&mut self, ns: u64) {
        self.overhead_ns += ns;
    }

    fn unpark(&mut self, from: usize, cpu: usize) {
        self.stats.sched_events += 1;
        if self.cpus[cpu].state != CpuState::Parked {
            // Token semantics: an unpark for a CPU that is not asleep in the engine (it cancelled
            // its sleep after being claimed) only makes its next park return; the engine's CPU
            // re-checks its queues after every park anyway.
            self.stats.stray_unparks += 1;
            return;
        }
        self.wake_cpu(from, cpu);
    }

    fn runnable(&self) -> u64 {
        self.runnable
    }

    fn trace_steal(&mut self, thief: usize, victim: usize, n: usize, tier: TierKind) {
        let now = self.now() + self.overhead_ns;
        if let Some(tr) = self.trace.as_deref_mut() {
            tr.steal(thief, victim, n, tier.name(), now);
        }
    }
}

impl Env<'_> {
    /// Schedules the wake-up of a parked CPU after the unpark latency from `from`.
    fn wake_cpu(&mut self, from: usize, cpu: usize) {
        let now = self.now();
        let extra = if from == self.acting {
            self.overhead_ns
        } else {
            0
        };
        let latency = self.cost.unpark.at(self.m.distance(from, cpu));
        let c = &mut self.cpus[cpu];
        c.state = CpuState::Waking;
        c.generation += 1;
        let generation = c.generation;
        let at = (now + extra + latency).max(c.search_until_ns);
        self.stats.unparks += 1;
        self.q
            .push(at, EventKind::CpuUnpark, cpu as u32, generation);
    }
}

struct CtxImpl<'e, 'a> {
    env: &'e mut Env<'a>,
    sched: &'e mut dyn SchedCore,
    cpu: usize,
}

impl Ctx for CtxImpl<'_, '_> {
    fn now_ns(&self) -> u64 {
        self.env.now()
    }

    fn rng(&mut self) -> &mut Rng {
        &mut self.env.wl_rng
    }

    fn topology(&self) -> &manycore_topology::Topology {
        self.env.m.topo()
    }

    fn current_cpu(&self) -> usize {
        self.cpu
    }

    fn spawn(&mut self, task: NewTask) -> TaskId {
        let cpu = self.cpu;
        self.spawn_on(cpu, task)
    }

    fn spawn_on(&mut self, cpu: usize, task: NewTask) -> TaskId {
        let env = &mut *self.env;
        let now = env.now();
        let home = task.home_node.unwrap_or_else(|| env.m.node_of(cpu)) as u32;
        let serial = env.next_serial;
        env.next_serial += 1;
        let id = env.alloc(Task {
            state: TaskState::Runnable,
            seg: task.seg,
            home,
            last_cpu: NONE,
            born_ns: task.born_ns.unwrap_or(now),
            ready_ns: now,
            serial,
            epoch: 0,
            overdue: false,
            woken: false,
            started: false,
            latency: task.latency,
            user: task.user,
        });
        env.stats.spawned += 1;
        env.stats.sched_events += 1;
        env.make_runnable(id);
        // A running task spawning on its own CPU is a local spawn; anything else (an arrival
        // steered to a CPU, the initial placement) comes from outside the scheduler's CPUs,
        // aimed at `cpu`.
        let local = cpu == env.acting && env.cpus[cpu].state == CpuState::Running;
        if local {
            env.charge(env.cost.spawn_ns);
        }
        self.sched.spawn(env, cpu, id, local);
        TaskId(id)
    }

    fn wake(&mut self, task: TaskId, seg: Seg) {
        let env = &mut *self.env;
        let t = &mut env.tasks[task.0 as usize];
        assert_eq!(
            t.state,
            TaskState::Blocked,
            "the workload woke task {} which is not blocked",
            task.0
        );
        t.seg = seg;
        t.woken = true;
        env.make_runnable(task.0);
        env.charge(env.cost.wake_task.same_ns);
        env.stats.sched_events += 1;
        self.sched.wake(env, self.cpu, task.0);
    }

    fn home_node(&self, task: TaskId) -> usize {
        self.env.tasks[task.0 as usize].home as usize
    }

    fn user(&mut self, task: TaskId) -> &mut [u64; 2] {
        &mut self.env.tasks[task.0 as usize].user
    }

    fn at(&mut self, time_ns: u64, cpu: usize, tag: u64) {
        self.env
            .q
            .push(time_ns, EventKind::Arrival, cpu as u32, tag);
    }

    fn record_latency(&mut self, latency_ns: u64) {
        self.env.stats.latency.record(latency_ns);
    }
}

/// How often the scheduler's own (sampled) wasted-core checker is sampled, in virtual time.
pub const SCHED_SAMPLE_NS: u64 = 10_000;

/// Most times a free CPU asks again in one step after the scheduler refused to let it sleep
/// (work appeared during its re-check) and then found nothing to take.
const PARK_RETRIES_MAX: u32 = 2;

/// When a CPU may not sleep yet finds nothing (work it is not allowed to take is queued, e.g. a
/// single task on a remote victim below the policy's remote threshold), it searches again after
/// the time its failed search cost, and at least this long.
pub const RESEARCH_MIN_NS: u64 = 1_000;

/// The CPU is free at `now + overhead`: pick the next task, or sleep, or search again later.
fn dispatch(env: &mut Env, sched: &mut dyn SchedCore, cpu: usize) {
    for _ in 0..=PARK_RETRIES_MAX {
        env.stats.sched_events += 1;
        if let Some(task) = sched.next(env, cpu) {
            run_next(env, cpu, task);
            return;
        }
        env.stats.sched_events += 1;
        if sched.park(env, cpu) {
            go_idle(env, cpu, true);
            if let Some(deadline) = sched.park_deadline(env, cpu) {
                // The platform's park ends at the deadline if nobody unparks the CPU first (a
                // claim bumps the generation, so this event is then dropped).
                let c = &env.cpus[cpu];
                let at = deadline.max(c.search_until_ns).max(env.q.now_ns() + 1);
                env.stats.timed_wakes += 1;
                env.q
                    .push(at, EventKind::CpuUnpark, cpu as u32, c.generation);
            }
            return;
        }
    }
    // Not allowed to sleep and nothing to take: the CPU keeps searching. It is idle for the
    // wasted-core accounting, and looks again after its search time.
    env.stats.research += 1;
    go_idle(env, cpu, false);
    let c = &mut env.cpus[cpu];
    c.state = CpuState::Waking;
    c.generation += 1;
    let at = env.q.now_ns() + env.overhead_ns.max(RESEARCH_MIN_NS);
    let generation = c.generation;
    env.q.push(at, EventKind::CpuUnpark, cpu as u32, generation);
}

fn run_next(env: &mut Env, cpu: usize, task: u32) {
    env.dequeued(task);
    let was_idle = env.cpus[cpu].state != CpuState::Running;
    env.charge(env.cost.switch_ns);
    let start = env.now() + env.overhead_ns;
    let t = &mut env.tasks[task as usize];
    let wait = start - t.ready_ns;
    let woken = std::mem::take(&mut t.woken);
    let first = !std::mem::replace(&mut t.started, true);
    env.stats.wait.record(wait);
    if woken {
        env.stats.wake_to_run.record(wait);
    }
    if first {
        env.stats.first_wait.record(wait);
    }
    if was_idle {
        env.wasted.idle -= 1;
        let since = env.cpus[cpu].idle_since_ns;
        let now = env.now();
        if let Some(tr) = env.trace.as_deref_mut() {
            tr.idle(cpu, since, now);
        }
    }
    env.cpus[cpu].asleep = false;
    env.start_segment(cpu, task, start);
}

fn go_idle(env: &mut Env, cpu: usize, asleep: bool) {
    env.charge(if asleep { env.cost.park_ns } else { 0 });
    env.stats.overhead_ns += u128::from(env.overhead_ns);
    let c = &mut env.cpus[cpu];
    if c.state == CpuState::Running {
        env.wasted.idle += 1;
        c.idle_since_ns = env.q.now_ns();
    }
    c.state = CpuState::Parked;
    c.asleep = asleep;
    c.search_until_ns = env.q.now_ns() + env.overhead_ns;
    c.task = NONE;
}

/// Runs `workload` on `machine` under `policy`. `trace`, if given, receives the schedule;
/// `progress` is called every 65536 events.
pub fn run(
    machine: &Machine,
    policy: &str,
    mut workload: Box<dyn Workload>,
    opts: &RunOptions,
    trace: Option<&mut TraceWriter>,
    mut progress: Option<Progress<'_>>,
) -> Result<RunResult, String> {
    let mut sched = sched_bridge::build(
        policy,
        machine,
        &opts.cost,
        opts.seed,
        opts.wasted_threshold_ns,
        trace.is_some(),
    )?;
    let sched: &mut dyn SchedCore = &mut *sched;
    let n = machine.cpus();
    let expected = workload.expected_tasks();
    let mut env = Env {
        m: machine,
        cost: &opts.cost,
        q: EventQueue::new(),
        tasks: Vec::new(),
        free: Vec::new(),
        live: 0,
        peak_live: 0,
        runnable: 0,
        next_serial: 0,
        cpus: vec![
            Cpu {
                state: CpuState::Parked,
                asleep: true,
                search_until_ns: 0,
                task: NONE,
                generation: 0,
                idle_since_ns: 0
            };
            n
        ],
        overhead_ns: 0,
        acting: usize::MAX,
        stats: Stats::default(),
        timeline: Timeline::new(n),
        wasted: Wasted::new(opts.wasted_threshold_ns),
        wl_rng: Rng::derive(opts.seed, 0x776c),
        completions: opts.record_completions.then(Vec::new),
        trace,
    };
    env.wasted.idle = n as u64;
    if let Some(tr) = env.trace.as_deref_mut() {
        let nodes: Vec<usize> = (0..n).map(|c| machine.node_of(c)).collect();
        let pid = sched_bridge::POLICIES
            .iter()
            .position(|p| *p == policy)
            .unwrap_or(0) as u32;
        tr.begin_run(pid, policy, &nodes, opts.trace_budget_events);
    }
    // Every CPU starts parked; the scheduler learns it before any task exists.
    for cpu in 0..n {
        env.acting = cpu;
        let sleeps = sched.park(&mut env, cpu);
        debug_assert!(sleeps, "nothing is queued before the workload starts");
    }
    env.acting = usize::MAX;
    workload.start(&mut CtxImpl {
        env: &mut env,
        sched,
        cpu: 0,
    });
    let tick_ns = sched.tick_ns();
    if let Some(t) = tick_ns {
        env.q.push(t, EventKind::BalanceTick, 0, 0);
    }

    let mut next_sample_ns = 0;
    while let Some(ev) = env.q.pop() {
        if env.q.popped() > opts.max_events {
            return Err(format!(
                "policy {policy}: stopped after {} events with {} tasks still alive (raise the event limit if the run is simply long)",
                opts.max_events, env.live
            ));
        }
        let now = ev.time_ns;
        {
            let tasks = &mut env.tasks;
            env.wasted.advance(now, |task, epoch| {
                let t = &mut tasks[task as usize];
                let overdue = t.epoch == epoch && t.state == TaskState::Runnable;
                t.overdue |= overdue;
                overdue
            });
        }
        env.overhead_ns = 0;
        if now >= next_sample_ns {
            sched.sample_wasted(now);
            next_sample_ns = now + SCHED_SAMPLE_NS;
        }
        let cpu = ev.cpu as usize;
        match ev.kind {
            EventKind::CpuReady => {
                env.acting = cpu;
                let task = ev.tag as u32;
                debug_assert_eq!(env.cpus[cpu].task, task, "segment end of another task");
                let step = workload.on_segment_end(
                    &mut CtxImpl {
                        env: &mut env,
                        sched,
                        cpu,
                    },
                    TaskId(task),
                );
                match step {
                    Step::Run(seg) => {
                        env.tasks[task as usize].seg = seg;
                        let start = now + env.overhead_ns;
                        env.start_segment(cpu, task, start);
                    }
                    Step::Yield(seg) => {
                        env.tasks[task as usize].seg = seg;
                        env.make_runnable(task);
                        env.charge(env.cost.yield_ns);
                        env.stats.sched_events += 1;
                        sched.requeue(&mut env, cpu, task);
                        dispatch(&mut env, sched, cpu);
                    }
                    Step::Block => {
                        env.tasks[task as usize].state = TaskState::Blocked;
                        dispatch(&mut env, sched, cpu);
                    }
                    Step::Exit => {
                        env.charge(env.cost.task_ns);
                        env.exit(task);
                        dispatch(&mut env, sched, cpu);
                    }
                }
            }
            EventKind::CpuUnpark => {
                // Waking: unparked (or retrying a search). Parked with the same generation: its
                // timed park ended with nobody having claimed it.
                if env.cpus[cpu].generation == ev.tag && env.cpus[cpu].state != CpuState::Running {
                    env.acting = cpu;
                    let was_asleep = std::mem::take(&mut env.cpus[cpu].asleep);
                    if was_asleep {
                        sched.unparked(&mut env, cpu);
                    }
                    dispatch(&mut env, sched, cpu);
                    if was_asleep && env.cpus[cpu].state != CpuState::Running {
                        // Woken (or its timed park ended) and found nothing to run: whatever
                        // it was woken for was taken by another CPU first, or never existed.
                        env.stats.empty_wakes += 1;
                    }
                }
            }
            EventKind::Arrival => {
                env.acting = usize::MAX;
                workload.on_arrival(
                    &mut CtxImpl {
                        env: &mut env,
                        sched,
                        cpu,
                    },
                    ev.tag,
                );
            }
            EventKind::BalanceTick => {
                env.acting = usize::MAX;
                let sleeping: Vec<bool> = env
                    .cpus
                    .iter()
                    .map(|c| c.state == CpuState::Parked && c.asleep)
                    .collect();
                for c in sched.tick(&mut env, &sleeping) {
                    // The host ends a park early (a legal spurious wakeup): the CPU got work.
                    if env.cpus[c].state == CpuState::Parked {
                        env.wake_cpu(c, c);
                    }
                }
                let running = env.cpus.iter().any(|c| c.state == CpuState::Running);
                if let Some(t) = tick_ns
                    && (running || sched.queued() > 0 || !env.q.is_empty())
                {
                    env.q.push(now + t, EventKind::BalanceTick, 0, 0);
                }
            }
        }
        if env.q.popped() & 0xffff == 0
            && let Some(p) = progress.as_mut()
        {
            p(env.stats.completed, expected);
        }
    }

    if env.live > 0 {
        let queued = sched.queued();
        let blocked = env
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Blocked)
            .count();
        return Err(if queued > 0 {
            format!(
                "policy {policy}: lost wakeup: {queued} runnable tasks were left queued with every CPU parked at t={} ns (scheduler bug)",
                env.now()
            )
        } else {
            format!(
                "policy {policy}: {blocked} tasks stayed blocked forever (workload {} deadlocked)",
                workload.name()
            )
        });
    }
    if let Some(e) = expected
        && e != env.stats.spawned
    {
        return Err(format!(
            "workload {}: created {} tasks but announced {e} (workload bug)",
            workload.name(),
            env.stats.spawned
        ));
    }
    sched.finish(&mut env.stats);
    env.timeline.finish();
    let makespan = env.stats.last_exit_ns;
    let events = env.q.popped();
    Ok(RunResult {
        policy: policy.to_string(),
        makespan_ns: makespan,
        events,
        peak_live_tasks: env.peak_live,
        completions: env.completions.take().unwrap_or_default(),
        cpus: n,
        stats: env.stats,
        timeline: env.timeline,
        wasted: env.wasted,
    })
}
