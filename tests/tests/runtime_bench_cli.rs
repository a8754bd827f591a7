//! End-to-end tests of `manycore bench`: the JSON report's shape, the calibration file the
//! simulator reads, and one clear error line (exit status 2) for bad input. Runs with tiny
//! batches (`--scale 0.01 --samples 3`): these check the harness, not the figures.
//!
//! The `manycore` binary is found next to this test's executable (`target/<profile>/manycore`);
//! `cargo test --workspace` builds it before running any test.

use manycore_sim::cost::CostModel;
use manycore_tests::run_manycore;
use serde_json::Value;

#[test]
fn json_report_has_the_documented_shape() {
    let (code, out, err) = run_manycore(&[
        "bench",
        "--json",
        "--only",
        "switch",
        "--samples",
        "3",
        "--scale",
        "0.01",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    let top: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["machine", "results"]);
    assert!(v["machine"]["cpus"].as_u64().is_some_and(|n| n >= 1));
    assert!(["tsc", "monotonic"].contains(&v["machine"]["clock"].as_str().unwrap_or("")));
    let rows = v["results"].as_array().expect("results array");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["switch.raw", "switch.corosensei"]);
    for r in rows {
        let mut keys: Vec<&str> = r
            .as_object()
            .expect("row")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["iters", "median_ns", "name", "p99_ns"]);
        let (m, p) = (
            r["median_ns"].as_f64().unwrap(),
            r["p99_ns"].as_f64().unwrap(),
        );
        assert!(m > 0.0 && p >= m, "median {m}, p99 {p}");
        assert!(r["iters"].as_u64().is_some_and(|n| n >= 3 * 4));
    }
}

#[test]
fn calibrate_writes_a_cost_model_the_simulator_reads() {
    let dir = std::env::temp_dir().join(format!("manycore-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("host.toml");
    let (code, _, err) = run_manycore(&[
        "bench",
        "--samples",
        "3",
        "--scale",
        "0.01",
        "--calibrate",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let m = CostModel::load(&file).expect("the simulator reads the calibrated model");
    assert!(
        m.source.contains("manycore bench --calibrate"),
        "{}",
        m.source
    );
    let d = CostModel::default();
    assert!(
        m.switch_ns > 0 && m.unpark.same_ns > 0,
        "measured fields are filled: {m:?}"
    );
    assert!(
        m.switch_ns != d.switch_ns
            || m.yield_ns != d.yield_ns
            || m.unpark.same_ns != d.unpark.same_ns,
        "the model is not just the defaults: {m:?}"
    );
    assert_eq!(m.memory, d.memory, "unmeasured fields keep the defaults");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_clear_error() {
    for (args, needle) in [
        (vec!["bench", "--scale", "0"], "--scale 0"),
        (vec!["bench", "--only", "no-such-row"], "matches no row"),
        (
            vec!["bench", "--only", "switch", "--calibrate", "x.toml"],
            "--calibrate uses every row",
        ),
    ] {
        let (code, out, err) = run_manycore(&args);
        assert_eq!(code, 2, "{args:?}: stdout {out} stderr {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}
