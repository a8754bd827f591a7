//! End-to-end tests of `manycore sim`: the no-argument default comparison, the JSON schema of
//! issue 7, CSV, plots, traces, sweeps, and one clear error line (exit status 2) for bad input.
//!
//! The `manycore` binary is found next to this test's executable (`target/<profile>/manycore`);
//! `cargo test --workspace` builds it before running any test.

use std::path::PathBuf;

use manycore_tests::run_manycore;
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("manycore-sim-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn no_argument_run_prints_every_policy_side_by_side() {
    let (code, out, err) = run_manycore(&["sim"]);
    assert_eq!(code, 0, "stderr: {err}");
    for policy in ["topology", "random", "nosteal", "global", "linux"] {
        assert!(
            out.lines().any(|l| l.starts_with(policy)),
            "no row for {policy} in:\n{out}"
        );
    }
    assert!(
        out.contains("makespan") && out.contains("remote mem") && out.contains("wasted"),
        "{out}"
    );
}

#[test]
fn json_has_the_schema_of_the_issue() {
    let (code, out, err) = run_manycore(&[
        "sim",
        "-t",
        "epyc-2s-nps4",
        "-w",
        "server",
        "-p",
        "requests=3000",
        "--json",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["topology"], "epyc-2s-nps4");
    assert!(
        v["workload"]
            .as_str()
            .is_some_and(|w| w.starts_with("server"))
    );
    assert_eq!(v["seed"], 1);
    let policies = v["policies"].as_array().expect("policies array");
    assert_eq!(policies.len(), 5);
    for p in policies {
        assert!(p["policy"].is_string());
        assert!(p["makespan_ns"].as_u64().is_some_and(|m| m > 0));
        assert!(
            p["throughput_tasks_per_s"]
                .as_f64()
                .is_some_and(|t| t > 0.0)
        );
        for q in ["p50", "p99", "p999"] {
            assert!(p["latency_ns"][q].is_u64(), "latency_ns.{q}");
        }
        for t in ["smt", "l2", "llc", "node", "remote"] {
            assert!(p["steals_by_tier"][t].is_u64(), "steals_by_tier.{t}");
        }
        for f in [
            "remote_memory_fraction",
            "wasted_core_fraction",
            "utilization",
        ] {
            let x = p[f].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&x), "{f} = {x}");
        }
    }
}

#[test]
fn csv_plots_trace_and_sweep_are_written() {
    let dir = temp_dir("outputs");
    let trace = dir.join("trace.json");
    let plots = dir.join("plots");
    let (code, out, err) = run_manycore(&[
        "sim",
        "-t",
        "laptop",
        "-w",
        "fork-join",
        "-p",
        "depth=8",
        "--policy",
        "topology,random",
        "--csv",
        "--plot",
        plots.to_str().expect("utf-8 path"),
        "--trace",
        trace.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "header + 2 policies:\n{out}");
    assert!(lines[0].starts_with("topology,workload,seed,policy,makespan_ns"));
    for f in [
        "latency_cdf.svg",
        "utilization_topology.svg",
        "utilization_random.svg",
    ] {
        let svg = std::fs::read_to_string(plots.join(f)).expect(f);
        assert!(svg.starts_with("<svg"), "{f} is not SVG");
    }
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&trace).expect("trace"))
        .expect("trace is JSON");
    let events = t["traceEvents"].as_array().expect("traceEvents");
    assert!(
        events.iter().any(|e| e["ph"] == "X" && e["cat"] == "run"),
        "no task segments in the trace"
    );

    let csv = dir.join("sweep.csv");
    let (code, _, err) = run_manycore(&[
        "sim",
        "sweep",
        "-t",
        "laptop",
        "-t",
        "dual-socket",
        "-w",
        "server",
        "-p",
        "requests=2000",
        "--seeds",
        "2",
        "--policy",
        "topology,global",
        "-o",
        csv.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let rows = std::fs::read_to_string(&csv).expect("sweep csv");
    assert_eq!(rows.lines().count(), 1 + 2 * 2 * 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_one_error_line_with_status_2() {
    let dir = temp_dir("errors");
    let cost = dir.join("cost.toml");
    std::fs::write(&cost, "switch_ns = -5\n").expect("write");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-t".into(), "pentium-4".into()], "pentium-4"),
        (vec!["-w".into(), "mapreduce".into()], "mapreduce"),
        (
            vec![
                "-w".into(),
                "server".into(),
                "-p".into(),
                "load=lots".into(),
            ],
            "load=lots",
        ),
        (vec!["-p".into(), "novalue".into()], "novalue"),
        (vec!["--policy".into(), "fifo".into()], "fifo"),
        (
            vec!["--cost-model".into(), cost.display().to_string()],
            "cost.toml",
        ),
        (
            vec![
                "-w".into(),
                "trace".into(),
                "-p".into(),
                "file=/no/such/trace.csv".into(),
            ],
            "/no/such/trace.csv",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["sim".to_string()];
        full.extend(args.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let (code, out, err) = run_manycore(&refs);
        assert_eq!(
            code, 2,
            "{args:?}: status {code}, stdout {out:?}, stderr {err:?}"
        );
        assert!(
            err.contains(needle),
            "{args:?}: stderr {err:?} does not name {needle:?}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: expected one error line, got {err:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
