//! Bad input gets a clear error naming what and where, never a panic: topologies, workloads,
//! parameters, policies, cost models and trace files.

use std::panic::catch_unwind;

use manycore_sim::{CostModel, Machine, Scenario, presets, sched_bridge, topo_source};

fn laptop() -> Machine {
    Machine::new(
        presets::find("laptop")
            .map(presets::Preset::build)
            .expect("preset"),
    )
}

fn try_run(workload: &str, params: &[(&str, &str)]) -> Result<(), String> {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let s = Scenario::new(
        "laptop",
        laptop(),
        workload,
        params,
        vec!["topology".into()],
    );
    s.run(None).map(|_| ())
}

fn assert_err_mentions(r: Result<(), String>, words: &[&str]) {
    let e = r.expect_err("bad input must be an error");
    for w in words {
        assert!(e.contains(w), "error {e:?} does not mention {w:?}");
    }
}

#[test]
fn bad_topology_names_the_input() {
    let e = topo_source::load("no-such-machine").expect_err("unknown name");
    assert!(
        e.contains("no-such-machine") && e.contains("epyc-2s-nps4"),
        "{e}"
    );
    let e = topo_source::load("pack:2 core:x").expect_err("bad synthetic");
    assert!(e.contains("synthetic") && e.contains("byte 12"), "{e}");
    let e = topo_source::load("pack:2 numa:2 core:2 pu:1 distances=10,20;20")
        .expect_err("ragged matrix");
    assert!(e.contains("distance"), "{e}");
    let t = topo_source::load("pack:2 numa:2 core:2 pu:2").expect("valid synthetic");
    assert_eq!((t.num_cpus(), t.num_nodes()), (16, 4));
    let e = topo_source::load("").expect_err("empty");
    assert!(e.contains("--topology"), "{e}");
}

#[test]
fn bad_workload_and_parameters_are_named() {
    assert_err_mentions(try_run("forkjoin", &[]), &["forkjoin", "fork-join"]);
    assert_err_mentions(try_run("fork-join", &[("dept", "3")]), &["dept=3", "depth"]);
    assert_err_mentions(try_run("fork-join", &[("depth", "deep")]), &["depth=deep"]);
    assert_err_mentions(
        try_run("fork-join", &[("depth", "40"), ("fanout", "1024")]),
        &["2^40"],
    );
    assert_err_mentions(try_run("server", &[("load", "-1")]), &["load=-1"]);
    assert_err_mentions(
        try_run("server", &[("service", "gaussian")]),
        &["service=gaussian", "pareto"],
    );
    assert_err_mentions(
        try_run("server", &[("arrival", "cpu99")]),
        &["arrival=cpu99"],
    );
    assert_err_mentions(try_run("server", &[("requests", "0")]), &["requests=0"]);
    assert_err_mentions(
        try_run("memory-bound", &[("home", "3")]),
        &["home=3", "node 3"],
    );
    assert_err_mentions(try_run("imbalanced", &[("cpu", "16")]), &["cpu=16"]);
    assert_err_mentions(
        try_run("producer-consumer", &[("items", "2"), ("channels", "4")]),
        &["items=2"],
    );
    assert_err_mentions(try_run("trace", &[]), &["file="]);
    assert_err_mentions(
        try_run("trace", &[("file", "/nonexistent/t.csv")]),
        &["/nonexistent/t.csv"],
    );
}

#[test]
fn bad_policy_list_is_named() {
    let e = sched_bridge::parse_list("topology,fifo").expect_err("unknown policy");
    assert!(e.contains("fifo") && e.contains("linux"), "{e}");
    assert_eq!(
        sched_bridge::parse_list("all").expect("all").len(),
        sched_bridge::POLICIES.len()
    );
}

#[test]
fn bad_cost_model_files_are_named() {
    let dir = std::env::temp_dir().join(format!("manycore-sim-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let toml = dir.join("bad.toml");
    std::fs::write(&toml, "switch_ns = \"fast\"\n").expect("write");
    let e = CostModel::load(&toml).expect_err("type error");
    assert!(e.contains("bad.toml") && e.contains("switch_ns"), "{e}");
    let json = dir.join("bad.json");
    std::fs::write(&json, "{\"memory\": {\"remote_factor_far\": 1.2}}").expect("write");
    let e = CostModel::load(&json).expect_err("far < near");
    assert!(
        e.contains("bad.json") && e.contains("remote_factor_far"),
        "{e}"
    );
    let e = CostModel::load(&dir.join("missing.toml")).expect_err("missing");
    assert!(e.contains("missing.toml"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn garbage_parameter_values_never_panic() {
    let workloads = [
        "fork-join",
        "server",
        "pipeline",
        "imbalanced",
        "memory-bound",
        "producer-consumer",
    ];
    let keys = [
        "depth",
        "fanout",
        "roots",
        "leaf_ns",
        "requests",
        "load",
        "service",
        "service_ns",
        "stages",
        "items",
        "tasks",
        "task_ns",
        "batch",
        "cpu",
        "home",
        "channels",
        "capacity",
        "producers",
        "consumers",
        "mem_frac",
        "arrival",
        "bimodal_p",
        "pareto_alpha",
    ];
    let values = [
        "",
        "-1",
        "0",
        "1e400",
        "NaN",
        "inf",
        "18446744073709551616",
        "0.0000001",
        "abc",
        "1M",
        "3k",
    ];
    for w in workloads {
        for k in keys {
            for v in values {
                let outcome = catch_unwind(|| {
                    let params = vec![(k.to_string(), v.to_string())];
                    let s = Scenario::new("laptop", laptop(), w, params, vec!["topology".into()]);
                    // Only validate: running accepted extremes (1M tasks) is not this test's job.
                    s.validate().map(|_| ())
                });
                assert!(outcome.is_ok(), "workload {w} panicked on {k}={v:?}");
            }
        }
    }
}
