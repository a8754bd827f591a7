//! Fidelity: does the simulator predict the real runtime?
//!
//! The host's topology (`--topology host`) with a cost model calibrated on this host
//! (`manycore bench --calibrate FILE`, run by this test) must predict the makespan of the real
//! user-space runtime (`manycore_sched::rt`, `topology` policy, every CPU of the host, pinned
//! workers) within 20% on the same workloads:
//!
//! - **fork-join**: a binary divide-and-conquer tree; every internal task computes `SPLIT_NS`,
//!   spawns its two children, joins them (blocking) and computes `JOIN_NS`; leaves compute
//!   `LEAF_NS`. The runtime is built with `join_inline(false)` so that a join blocks and every
//!   child runs as its own task, as the simulator's `fork-join` workload models it.
//! - **server**: `REQUESTS` requests with exponential service times arrive from a thread outside
//!   the runtime (Poisson, at `SERVER_LOAD` times the machine's capacity), each steered to a
//!   CPU round-robin. The generator sleeps between deliveries (at least `GENERATOR_TICK_NS`, so
//!   it takes next to no CPU from the workers) and delivers what fell due meanwhile in a burst.
//!   The simulator replays the arrivals the real run actually produced, with the same service
//!   times and CPUs, through its `trace` workload.
//!
//! The runtime is built once and warmed by one unmeasured run of each workload: the simulator
//! models a runtime in steady state, as `--calibrate` measures it. A cold runtime's first
//! depth-10 tree costs ~4.5 ms more on the reference VM (2047 fresh stacks mapped and faulted
//! in), which the model does not contain.
//!
//! "Compute" is a spin on the monotonic clock for the given time. The machine is a shared VM:
//! each figure is the median of `RUNS` runs, and each workload lasts tens of milliseconds. Both
//! figures are printed (run with `--nocapture`), with the simulator's and the runtime's mean
//! task latency for the server, which is reported, not asserted.
//!
//! This machine is shared: a real run counts only if the runtime's workers waited for a CPU at
//! most 3% of their time (the kernel's schedstat); with fewer than `RUNS` quiet runs in
//! `ATTEMPTS_MAX` tries the comparison is not made and the test says so loudly, and fails when
//! `MANYCORE_SIM_FIDELITY=1` (set it wherever the figure must be checked).
//!
//! Run in release, like the calibration it relies on:
//! `cargo build --release && cargo test --release -p manycore-tests --test sim_fidelity -- --nocapture`.

use std::process::Command;
use std::time::{Duration, Instant};

use manycore_sched::SpawnHint;
use manycore_sched::rt::{self, Builder};
use manycore_sim::cost::CostModel;
use manycore_sim::{Machine, Scenario, topo_source};

/// Largest relative error of the prediction (issue 7's goal).
const TOLERANCE: f64 = 0.20;
/// Quiet runs per figure (the median is compared).
const RUNS: usize = 5;
/// Real runs tried at most per figure to find `RUNS` quiet ones.
const ATTEMPTS_MAX: usize = 40;
/// A real run counts when the runtime's workers waited for a CPU (held by other processes of
/// this shared machine) at most this fraction of their time.
const QUIET_WAIT_FRACTION: f64 = 0.03;

/// Fork-join tree: levels of internal tasks (2^DEPTH leaves).
const DEPTH: u32 = 10;
const LEAF_NS: u64 = 60_000;
const SPLIT_NS: u64 = 2_000;
const JOIN_NS: u64 = 2_000;

/// Server: requests, mean service time, offered load (above 1: a backlog builds, so the
/// makespan measures how fast the machine serves, not just when the last request arrived).
const REQUESTS: usize = 1_500;
const SERVICE_NS: f64 = 50_000.0;
const SERVER_LOAD: f64 = 1.2;
/// The request generator sleeps at least this long between deliveries.
const GENERATOR_TICK_NS: u64 = 500_000;

/// Calibrates a cost model on this host with `manycore bench --calibrate`.
fn calibrate() -> CostModel {
    let dir = std::env::temp_dir().join(format!("manycore-sim-fidelity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("host.toml");
    let out = Command::new(manycore_tests::manycore_binary())
        .args(["bench", "--samples", "21", "--scale", "0.2", "--calibrate"])
        .arg(&file)
        .output()
        .expect("run manycore bench");
    assert!(
        out.status.success(),
        "manycore bench --calibrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = CostModel::load(&file).expect("the simulator reads the calibrated model");
    println!(
        "calibrated cost model ({}): switch {} ns, yield {} ns, spawn {} ns, park {} ns, task {} ns, injector {} ns, unpark same/other CPU {} / {} ns",
        file.display(),
        m.switch_ns,
        m.yield_ns,
        m.spawn_ns,
        m.park_ns,
        m.task_ns,
        m.injector_ns,
        m.unpark.same_ns,
        m.unpark
            .smt_ns
            .max(m.unpark.l2_ns)
            .max(m.unpark.llc_ns)
            .max(m.unpark.node_ns)
    );
    m
}

/// Computes for `ns` nanoseconds of wall time (the simulator's segment of `ns`).
fn spin(ns: u64) {
    let t = Instant::now();
    let d = Duration::from_nanos(ns);
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds the runtime's workers spent runnable but waiting for a CPU (the kernel's
/// `/proc/self/task/TID/schedstat`, second field): time other processes on this shared machine
/// took from them.
fn cpu_wait_ns(rt: &rt::Runtime) -> u64 {
    rt.worker_tids()
        .iter()
        .map(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn runtime() -> rt::Runtime {
    Builder::new()
        .join_inline(false)
        .build()
        .expect("build the runtime on the host")
}

fn fork_join(depth: u32) {
    if depth == 0 {
        spin(LEAF_NS);
        return;
    }
    spin(SPLIT_NS);
    let children: Vec<_> = (0..2)
        .map(|_| rt::spawn(move || fork_join(depth - 1)).expect("spawn from a task"))
        .collect();
    for c in children {
        c.join().expect("child");
    }
    spin(JOIN_NS);
}

/// The real fork-join makespan, ns: from the root's spawn to the root's end; and the workers'
/// time waiting for a CPU meanwhile.
fn real_fork_join(rt: &rt::Runtime) -> (f64, u64) {
    let w0 = cpu_wait_ns(rt);
    let t0 = Instant::now();
    let end = rt
        .spawn(|| {
            fork_join(DEPTH);
            Instant::now()
        })
        .join()
        .expect("root");
    let waited = cpu_wait_ns(rt) - w0;
    ((end - t0).as_nanos() as f64, waited)
}

fn scenario(workload: &str, params: Vec<(String, String)>, cost: &CostModel) -> Scenario {
    let topo = topo_source::load("host").expect("host topology");
    let mut s = Scenario::new(
        "host",
        Machine::new(topo),
        workload,
        params,
        vec!["topology".into()],
    );
    s.opts.cost = cost.clone();
    s
}

/// The simulator's fork-join makespan, ns (median over seeds).
fn sim_fork_join(cost: &CostModel) -> f64 {
    let params = [
        ("depth", DEPTH.to_string()),
        ("fanout", "2".into()),
        ("leaf_ns", LEAF_NS.to_string()),
        ("split_ns", SPLIT_NS.to_string()),
        ("join_ns", JOIN_NS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect::<Vec<_>>();
    median(
        (1..=RUNS as u64)
            .map(|seed| {
                let mut s = scenario("fork-join", params.clone(), cost);
                s.opts.seed = seed;
                s.run_policy("topology", None, None)
                    .expect("simulate fork-join")
                    .makespan_ns as f64
            })
            .collect(),
    )
}

/// One real server run: `(makespan_ns, workers' CPU wait ns, mean latency ns, trace CSV of
/// what arrived when)`.
fn real_server(rt: &rt::Runtime, seed: u64, cpus: usize) -> (f64, u64, f64, String) {
    // The plan: Poisson arrivals and exponential service times from a small xorshift stream.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let gap_mean_ns = SERVICE_NS / (SERVER_LOAD * cpus as f64);
    let mut at = 0.0;
    let plan: Vec<(u64, u64)> = (0..REQUESTS)
        .map(|_| {
            at += -uniform().ln() * gap_mean_ns;
            (at as u64, (-uniform().ln() * SERVICE_NS) as u64 + 1)
        })
        .collect();
    let w0 = cpu_wait_ns(rt);
    let t0 = Instant::now();
    let mut arrived = Vec::with_capacity(REQUESTS);
    let mut handles = Vec::with_capacity(REQUESTS);
    for (i, &(due_ns, service_ns)) in plan.iter().enumerate() {
        let now = t0.elapsed().as_nanos() as u64;
        if due_ns > now {
            // Sleep (not spin), and not for less than a tick, so the generator takes next to no
            // CPU from the workers; the arrivals that fall due meanwhile are delivered together.
            std::thread::sleep(Duration::from_nanos((due_ns - now).max(GENERATOR_TICK_NS)));
        }
        let cpu = i % cpus;
        arrived.push((t0.elapsed().as_nanos() as u64, service_ns, cpu));
        let h = rt
            .spawn_with(
                "request",
                SpawnHint {
                    cpu: Some(cpu),
                    node: None,
                },
                move || {
                    spin(service_ns);
                    Instant::now()
                },
            )
            .expect("spawn a request");
        handles.push(h);
    }
    let ends: Vec<u64> = handles
        .into_iter()
        .map(|h| (h.join().expect("request") - t0).as_nanos() as u64)
        .collect();
    let waited = cpu_wait_ns(rt) - w0;
    let makespan = *ends.iter().max().expect("requests") as f64;
    let latency = ends
        .iter()
        .zip(&arrived)
        .map(|(&e, &(a, _, _))| e.saturating_sub(a) as f64)
        .sum::<f64>()
        / REQUESTS as f64;
    let mut csv = String::from("id,arrival_ns,duration_ns,cpu\n");
    for (i, (a, d, c)) in arrived.iter().enumerate() {
        csv.push_str(&format!("{i},{a},{d},{c}\n"));
    }
    (makespan, waited, latency, csv)
}

/// The simulator on the arrivals a real run produced: `(makespan_ns, mean latency ns)`.
fn sim_server(csv: &str, cost: &CostModel, run: usize) -> (f64, f64) {
    let dir = std::env::temp_dir().join(format!("manycore-sim-fidelity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(format!("server-{run}.csv"));
    std::fs::write(&file, csv).expect("write the trace");
    let s = scenario(
        "trace",
        vec![("file".into(), file.to_string_lossy().into_owned())],
        cost,
    );
    let r = s.run_policy("topology", None, None).expect("simulate");
    (r.makespan_ns as f64, r.stats.latency.mean())
}

/// Prints both figures; returns the failure, if the prediction is off by more than `TOLERANCE`.
fn check(what: &str, real_ns: f64, sim_ns: f64) -> Option<String> {
    let err = (sim_ns - real_ns) / real_ns;
    println!(
        "{what}: real runtime {:.2} ms, simulator {:.2} ms, error {:+.1}% (tolerance ±{:.0}%)",
        real_ns / 1e6,
        sim_ns / 1e6,
        err * 100.0,
        TOLERANCE * 100.0
    );
    (err.abs() > TOLERANCE).then(|| {
        format!(
            "{what}: the simulator predicts {:.2} ms, the real runtime took {:.2} ms ({:+.1}%)",
            sim_ns / 1e6,
            real_ns / 1e6,
            err * 100.0
        )
    })
}

/// Runs `run` until `RUNS` of its runs were quiet (the workers waited for a CPU at most
/// `QUIET_WAIT_FRACTION` of their time), at most `ATTEMPTS_MAX` times. `run` returns
/// `(makespan_ns, workers' CPU wait ns, anything)`. `None` when the machine never was quiet.
fn quiet_runs<T>(
    what: &str,
    cpus: usize,
    mut run: impl FnMut(usize) -> (f64, u64, T),
) -> Option<Vec<(f64, T)>> {
    let mut quiet = Vec::new();
    for attempt in 0..ATTEMPTS_MAX {
        let (ns, waited, x) = run(attempt);
        let frac = waited as f64 / (ns * cpus as f64);
        println!(
            "  {what} run {attempt}: {:.2} ms; the workers waited {:.1}% of their time for a CPU{}",
            ns / 1e6,
            frac * 100.0,
            if frac <= QUIET_WAIT_FRACTION {
                ""
            } else {
                " (busy machine: not counted)"
            }
        );
        if frac <= QUIET_WAIT_FRACTION {
            quiet.push((ns, x));
            if quiet.len() == RUNS {
                return Some(quiet);
            }
        }
    }
    None
}

/// Whether the comparison must happen even on a busy machine (set by CI and the final check).
const STRICT_ENV: &str = "MANYCORE_SIM_FIDELITY";

fn not_measurable(what: &str) {
    let msg = format!(
        "{what}: fewer than {RUNS} of {ATTEMPTS_MAX} real runs had the CPUs to themselves (other \
         processes held the CPUs more than {:.0}% of the time): the real makespan would measure \
         the machine's load, not the runtime; comparison NOT made",
        QUIET_WAIT_FRACTION * 100.0
    );
    if std::env::var(STRICT_ENV).is_ok_and(|v| v == "1") {
        panic!("{msg} ({STRICT_ENV}=1)");
    }
    println!("SKIPPED: {msg}; set {STRICT_ENV}=1 to make this a failure");
}

/// One test, so the calibration runs once and the two workloads do not run concurrently (each
/// needs every CPU of the host).
#[test]
fn simulator_predicts_the_real_runtime_makespan_within_20_percent() {
    let cost = calibrate();
    let cpus = topo_source::load("host").expect("host topology").num_cpus();
    println!("host: {cpus} CPUs; median of {RUNS} quiet runs per figure");

    let work_ns = (1u64 << DEPTH) * LEAF_NS + ((1u64 << DEPTH) - 1) * (SPLIT_NS + JOIN_NS);
    println!(
        "fork-join depth {DEPTH}: work {:.2} ms, work/P {:.2} ms",
        work_ns as f64 / 1e6,
        work_ns as f64 / cpus as f64 / 1e6
    );
    let sim = sim_fork_join(&cost);
    let mut failures = Vec::new();
    // One runtime for every run, warmed by one unmeasured run of each workload (see the module
    // doc: the model is of a runtime in steady state).
    let rt = runtime();
    real_fork_join(&rt);
    match quiet_runs("fork-join", cpus, |_| {
        let (ns, waited) = real_fork_join(&rt);
        (ns, waited, ())
    }) {
        Some(runs) => failures.extend(check(
            "fork-join makespan",
            median(runs.iter().map(|r| r.0).collect()),
            sim,
        )),
        None => not_measurable("fork-join"),
    }

    println!(
        "server: {REQUESTS} requests, exponential service {:.0} µs, load {SERVER_LOAD}",
        SERVICE_NS / 1e3
    );
    real_server(&rt, 0x5eed, cpus);
    match quiet_runs("server", cpus, |attempt| {
        let (ns, waited, lat, csv) = real_server(&rt, attempt as u64 + 1, cpus);
        let (sim_ns, sim_lat) = sim_server(&csv, &cost, attempt);
        (ns, waited, (sim_ns, lat, sim_lat))
    }) {
        Some(runs) => {
            let real_lat = median(runs.iter().map(|r| r.1.1).collect());
            let sim_lat = median(runs.iter().map(|r| r.1.2).collect());
            println!(
                "server mean latency: real {:.2} ms, simulator {:.2} ms (reported, not asserted)",
                real_lat / 1e6,
                sim_lat / 1e6
            );
            failures.extend(check(
                "server makespan",
                median(runs.iter().map(|r| r.0).collect()),
                median(runs.iter().map(|r| r.1.0).collect()),
            ));
        }
        None => not_measurable("server"),
    }
    rt.shutdown();
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
