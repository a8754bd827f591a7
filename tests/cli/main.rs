//! End-to-end tests of the `manycore` binary (root package; discovered as `tests/cli/main.rs`).

use serde_json::Value;

fn manycore(args: &[&str]) -> (i32, String, String) {
    manycore_tests::run_binary(std::path::Path::new(env!("CARGO_BIN_EXE_manycore")), args)
}

#[test]
fn topo_json_has_the_documented_shape() {
    let (code, out, err) = manycore(&[
        "topo",
        "--synthetic",
        "pack:2 numa:2 core:2 pu:2 distances=10,12,32,32;12,10,32,32;32,32,10,12;32,32,12,10",
        "--json",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["packages"], 2);
    assert_eq!(v["cores"], 8);
    assert_eq!(v["pus"], 16);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert_eq!(nodes[1]["os_index"], 1);
    assert_eq!(nodes[1]["cpus"], serde_json::json!([4, 5, 6, 7]));
    assert!(nodes[1]["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["distances"][0], serde_json::json!([10, 12, 32, 32]));
    assert_eq!(v["distances"][3], serde_json::json!([32, 32, 12, 10]));
}

#[test]
fn topo_steal_order_lists_sibling_first_and_far_node_last() {
    let (code, out, err) = manycore(&[
        "topo",
        "--synthetic",
        "pack:2 numa:2 l3:2 core:4 pu:2",
        "--steal-order",
        "0",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].contains("smt") && lines[1].contains("P#1"),
        "{out}"
    );
    assert!(
        lines.last().unwrap().contains("remote") && lines.last().unwrap().contains("P#32-63"),
        "{out}"
    );
}

#[test]
fn topo_tree_prints_lstopo_style() {
    let (code, out, err) = manycore(&["topo", "--synthetic", "pack:1 numa:2 core:1 pu:2"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.starts_with("Machine ("), "{out}");
    assert!(out.contains("NUMANode L#1 (P#1"), "{out}");
    assert!(out.contains("PU L#3 (P#3)"), "{out}");
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let (code, _, err) = manycore(&["topo", "--synthetic", "pack:2 core:x"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("synthetic") && !err.contains("panicked"),
        "{err}"
    );
    let (code, _, err) = manycore(&["topo", "--synthetic", "core:2 pu:1", "--steal-order", "9"]);
    assert_eq!(code, 2);
    assert!(err.contains("CPU 9 is not an online CPU"), "{err}");
    let (code, _, err) = manycore(&["topo", "--xml", "/nonexistent/file.xml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/file.xml"), "{err}");
    let (code, _, err) = manycore(&["topo", "--sysfs", "/nonexistent/sys"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/sys"), "{err}");
}

#[test]
fn topo_host_matches_the_machine() {
    let (code, out, err) = manycore(&["topo", "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let expected: usize = online
        .trim()
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum();
    assert_eq!(v["pus"].as_u64().unwrap() as usize, expected);
}
