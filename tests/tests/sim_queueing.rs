//! Queueing-theory checks of the engine on the idealized (zero-cost) machine:
//! - the `global` policy on a server with Poisson arrivals and exponential service is an M/M/c
//!   queue, whose mean waiting time is given by the Erlang-C formula;
//! - a fork-join computation's makespan lies between work/P and work/P + c·span (the greedy
//!   scheduling bound of Graham and of Blumofe and Leiserson).

use manycore_sim::engine::RunOptions;
use manycore_sim::params::Params;
use manycore_sim::workload::fork_join::ForkJoin;
use manycore_sim::{CostModel, Machine, Scenario, presets};

fn machine(preset: &str) -> Machine {
    Machine::new(
        presets::find(preset)
            .map(presets::Preset::build)
            .expect("preset"),
    )
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Erlang-C mean waiting time of M/M/c with `c` servers, arrival rate `lambda`, service rate `mu`.
fn erlang_c_wait(c: u32, lambda: f64, mu: f64) -> f64 {
    let a = lambda / mu;
    let rho = a / f64::from(c);
    assert!(rho < 1.0);
    // Σ a^k / k! for k < c, and a^c / c!, computed by the recurrence term_k = term_{k-1} · a / k.
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        sum += term;
        term *= a / f64::from(k + 1);
    }
    let top = term / (1.0 - rho);
    let p_wait = top / (sum + top);
    p_wait / (f64::from(c) * mu - lambda)
}

#[test]
fn erlang_c_formula_matches_known_values() {
    // M/M/1: W_q = rho / (mu - lambda).
    let w = erlang_c_wait(1, 0.5, 1.0);
    assert!((w - 1.0).abs() < 1e-12, "{w}");
    // M/M/2 with a = 1: P_wait = 1/3, W_q = (1/3) / (2 - 1) = 1/3.
    let w = erlang_c_wait(2, 1.0, 1.0);
    assert!((w - 1.0 / 3.0).abs() < 1e-12, "{w}");
}

#[test]
fn global_policy_on_mmc_server_matches_erlang_c_within_5_percent() {
    let m = machine("laptop");
    let c = m.cpus() as u32;
    let service_ns = 10_000.0;
    for load in [0.7, 0.85] {
        // Several seeds: the sample mean of waiting times converges slowly near saturation.
        let mut total_wait = 0.0;
        let mut total_n = 0.0;
        for seed in 1..=4 {
            let params = kv(&[
                ("requests", "400000"),
                ("load", &load.to_string()),
                ("service", "exp"),
                ("service_ns", "10000"),
            ]);
            let mut s = Scenario::new("laptop", m.clone(), "server", params, vec!["global".into()]);
            s.opts = RunOptions {
                seed,
                cost: CostModel::zero(),
                ..RunOptions::default()
            };
            let (report, _) = s.run(None).expect("run");
            let p = &report.policies[0];
            total_wait += p.details.first_wait_mean_ns * p.details.tasks_completed as f64;
            total_n += p.details.tasks_completed as f64;
        }
        let measured = total_wait / total_n;
        let mu = 1.0 / service_ns;
        let lambda = load * f64::from(c) * mu;
        let expected = erlang_c_wait(c, lambda, mu);
        let err = (measured - expected).abs() / expected;
        eprintln!(
            "M/M/{c} load {load}: mean wait {measured:.1} ns, Erlang-C {expected:.1} ns ({:+.2}%)",
            (measured - expected) / expected * 100.0
        );
        assert!(
            err < 0.05,
            "load {load}: mean wait {measured:.1} ns vs Erlang-C {expected:.1} ns ({:.1}% off)",
            err * 100.0
        );
    }
}

/// Checks `work/P <= makespan <= work_exec/P + c·span + ramp` for each policy, where `work` is the
/// workload's nominal work, `work_exec` the busy time as executed (nominal work plus the cold-cache
/// and remote-memory time the cost model charged) plus scheduler overhead, and `ramp` the time to
/// wake every CPU one after the other (`P × slowest unpark`), zero on the ideal machine.
fn fork_join_bounds(cost: CostModel, c_factor: f64, policies: &[&str]) {
    let m = machine("dual-socket");
    let p = m.cpus() as f64;
    let ramp = p * cost.unpark.remote_far_ns.max(cost.unpark.node_ns) as f64;
    for (depth, fanout, leaf) in [
        ("12", "2", "20000"),
        ("6", "4", "5000"),
        ("4", "8", "50000"),
    ] {
        let params = kv(&[("depth", depth), ("fanout", fanout), ("leaf_ns", leaf)]);
        let fj = ForkJoin::from_params(&mut Params::new("fork-join", &params)).expect("params");
        let (work, span) = (fj.work_ns() as f64, fj.span_ns() as f64);
        let mut s = Scenario::new(
            "dual-socket",
            m.clone(),
            "fork-join",
            params,
            policies.iter().map(|s| s.to_string()).collect(),
        );
        s.opts = RunOptions {
            cost: cost.clone(),
            ..RunOptions::default()
        };
        let (_, results) = s.run(None).expect("run");
        for r in &results {
            let t = r.makespan_ns as f64;
            let executed = (r.stats.busy_ns + r.stats.overhead_ns) as f64;
            assert!(
                executed >= work,
                "{}: executed less than the nominal work",
                r.policy
            );
            assert!(
                t >= work / p,
                "{} depth={depth} fanout={fanout}: makespan {t} below work/P {}",
                r.policy,
                work / p
            );
            let upper = executed / p + c_factor * span + ramp;
            assert!(
                t <= upper,
                "{} depth={depth} fanout={fanout}: makespan {t} above work_exec/P + {c_factor}·span + ramp = {upper}",
                r.policy
            );
        }
    }
}

#[test]
fn fork_join_makespan_within_greedy_bounds_on_the_ideal_machine() {
    // On the ideal machine work_exec = work and ramp = 0: this is the classical greedy bound
    // T <= W/P + span, which our policies meet because a free CPU finds any queued task at once.
    fork_join_bounds(CostModel::zero(), 1.0, &["topology", "random", "global"]);
}

#[test]
fn fork_join_makespan_within_bounds_with_scheduler_costs() {
    // With costs, each level of the tree can pay a wake-up and a steal on the critical path (c = 2),
    // and CPUs are woken one after another at the start (the ramp).
    fork_join_bounds(CostModel::default(), 2.0, &["topology", "random", "global"]);
}
