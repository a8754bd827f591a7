//! Workloads: what the simulated program does.
//!
//! A workload creates tasks and reacts to their progress. A task runs as a series of *segments*
//! ([`Seg`]: CPU time plus memory time, the latter priced by where the task runs relative to its
//! home node). When a segment ends the engine asks the workload what the task does next
//! ([`Step`]): run another segment, yield, block until some other task wakes it, or exit. External
//! events (request arrivals, trace releases) come through [`Workload::on_arrival`].
//!
//! Workloads see the machine only through [`Ctx`], which the engine implements; every random draw
//! goes through [`Ctx::rng`], the workload's own seeded stream, so workloads are deterministic.
//!
//! Tasks are never preempted: a segment runs to completion, as in cooperative runtimes (Tokio,
//! Go's goroutines between preemption points, Rayon, Seastar).

use manycore_topology::Topology;

use crate::params::Params;
use crate::rng::Rng;

pub mod fork_join;
pub mod imbalanced;
pub mod memory_bound;
pub mod pipeline;
pub mod producer_consumer;
pub mod replay;
pub mod server;

/// A task identifier, valid from spawn until the task exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u32);

/// One stretch of work a task does without interruption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seg {
    /// Pure CPU time.
    pub cpu_ns: u64,
    /// Memory-stall time when the task runs on its home node; multiplied by the cost model's
    /// remote factor elsewhere.
    pub mem_ns: u64,
}

impl Seg {
    /// A segment of pure CPU time.
    pub const fn cpu(cpu_ns: u64) -> Seg {
        Seg { cpu_ns, mem_ns: 0 }
    }

    /// A segment of `total_ns` of which a fraction `mem_frac` is memory time.
    pub fn split(total_ns: u64, mem_frac: f64) -> Seg {
        if mem_frac <= 0.0 {
            return Seg::cpu(total_ns);
        }
        let mem_ns = (total_ns as f64 * mem_frac).round() as u64;
        Seg {
            cpu_ns: total_ns - mem_ns.min(total_ns),
            mem_ns: mem_ns.min(total_ns),
        }
    }

    /// Local-node duration.
    pub fn total_ns(&self) -> u64 {
        self.cpu_ns + self.mem_ns
    }
}

/// What a task does when its segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep the CPU and run another segment.
    Run(Seg),
    /// Go back to the run queue, then run this segment.
    Yield(Seg),
    /// Wait until another task calls [`Ctx::wake`] on it.
    Block,
    /// Finish.
    Exit,
}

/// A task to create.
#[derive(Clone, Copy, Debug)]
pub struct NewTask {
    /// Its first segment.
    pub seg: Seg,
    /// Its home NUMA node (logical index); `None`: the node of the CPU that spawns it.
    pub home_node: Option<usize>,
    /// When its request was born (for latency); `None`: now.
    pub born_ns: Option<u64>,
    /// Whether its exit records a latency sample (exit time − born).
    pub latency: bool,
    /// Workload-private state.
    pub user: [u64; 2],
}

impl NewTask {
    /// A task running `seg`, homed where it is spawned, recording its latency.
    pub fn new(seg: Seg) -> NewTask {
        NewTask {
            seg,
            home_node: None,
            born_ns: None,
            latency: true,
            user: [0; 2],
        }
    }
}

/// What the engine offers a workload.
pub trait Ctx {
    /// The virtual time.
    fn now_ns(&self) -> u64;
    /// The workload's random stream.
    fn rng(&mut self) -> &mut Rng;
    /// The simulated machine.
    fn topology(&self) -> &Topology;
    /// The CPU on which the current callback runs (the task's CPU, or the arrival's target).
    fn current_cpu(&self) -> usize;
    /// Spawns a task from the current CPU.
    fn spawn(&mut self, task: NewTask) -> TaskId;
    /// Spawns a task as if from `cpu` (an arrival steered there, an initial placement).
    fn spawn_on(&mut self, cpu: usize, task: NewTask) -> TaskId;
    /// Makes a blocked task runnable; it runs `seg` next. Placement is the policy's.
    fn wake(&mut self, task: TaskId, seg: Seg);
    /// The task's home node.
    fn home_node(&self, task: TaskId) -> usize;
    /// The task's workload-private state.
    fn user(&mut self, task: TaskId) -> &mut [u64; 2];
    /// Calls [`Workload::on_arrival`] with `tag` at `time_ns`, on CPU `cpu`.
    fn at(&mut self, time_ns: u64, cpu: usize, tag: u64);
    /// Records a latency sample that is not a task's lifetime (e.g. an item's queueing).
    fn record_latency(&mut self, latency_ns: u64);
}

/// A simulated program.
pub trait Workload {
    /// Its command-line name.
    fn name(&self) -> &'static str;
    /// Its parameters, `k=v` separated by spaces, as used (defaults included).
    fn describe(&self) -> String;
    /// Creates the initial tasks and events at time 0.
    fn start(&mut self, ctx: &mut dyn Ctx);
    /// An event scheduled with [`Ctx::at`] fires.
    fn on_arrival(&mut self, ctx: &mut dyn Ctx, tag: u64);
    /// `task`'s segment ended on [`Ctx::current_cpu`]; what next?
    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step;
    /// Total tasks the run will create, when known in advance (for conservation checks and the
    /// progress bar).
    fn expected_tasks(&self) -> Option<u64>;
}

/// Workload names accepted by [`build`].
pub const NAMES: &[&str] = &[
    "fork-join",
    "server",
    "pipeline",
    "imbalanced",
    "memory-bound",
    "producer-consumer",
    "trace",
];

/// The workload `manycore sim` runs when none is named.
pub const DEFAULT: &str = "memory-bound";

/// Builds a workload from its name and `k=v` parameters. Errors name the workload and the bad
/// parameter.
pub fn build(
    name: &str,
    params: &[(String, String)],
    topo: &Topology,
) -> Result<Box<dyn Workload>, String> {
    let mut p = Params::new(name, params);
    let w: Box<dyn Workload> = match name {
        "fork-join" => Box::new(fork_join::ForkJoin::from_params(&mut p)?),
        "server" => Box::new(server::Server::from_params(&mut p, topo)?),
        "pipeline" => Box::new(pipeline::Pipeline::from_params(&mut p, topo)?),
        "imbalanced" => Box::new(imbalanced::Imbalanced::from_params(&mut p, topo)?),
        "memory-bound" => Box::new(memory_bound::MemoryBound::from_params(&mut p, topo)?),
        "producer-consumer" => Box::new(producer_consumer::ProducerConsumer::from_params(
            &mut p, topo,
        )?),
        "trace" => Box::new(replay::Replay::from_params(&mut p, topo)?),
        _ => {
            return Err(format!(
                "unknown workload {name:?}; expected one of: {}",
                NAMES.join(", ")
            ));
        }
    };
    p.finish()?;
    Ok(w)
}

/// Where arrivals from outside land.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrivalCpu {
    /// A uniformly random CPU (receive-side scaling spreads connections).
    Random,
    /// Always this CPU (one network queue, one acceptor).
    Fixed(usize),
}

impl ArrivalCpu {
    /// Parses `random` or `cpuN`.
    pub fn parse(p: &mut Params, topo: &Topology) -> Result<ArrivalCpu, String> {
        let v = p.string("arrival", "random");
        if v == "random" {
            return Ok(ArrivalCpu::Random);
        }
        let cpu = v
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| p.bad("arrival", &v, "expected `random` or `cpuN` (a logical CPU)"))?;
        if cpu >= topo.num_cpus() {
            return Err(p.bad(
                "arrival",
                &v,
                &format!("the machine has CPUs 0 to {}", topo.num_cpus() - 1),
            ));
        }
        Ok(ArrivalCpu::Fixed(cpu))
    }

    /// Picks the CPU for one arrival.
    pub fn pick(self, ctx: &mut dyn Ctx) -> usize {
        match self {
            ArrivalCpu::Random => {
                let n = ctx.topology().num_cpus() as u64;
                ctx.rng().below(n) as usize
            }
            ArrivalCpu::Fixed(c) => c,
        }
    }

    /// Its parameter spelling.
    pub fn spelling(self) -> String {
        match self {
            ArrivalCpu::Random => "random".to_string(),
            ArrivalCpu::Fixed(c) => format!("cpu{c}"),
        }
    }
}
