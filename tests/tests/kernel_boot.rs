//! Boots the unikernel under QEMU (TCG) through `manycore boot` and checks that the machine the
//! kernel discovers from its firmware tables is the one requested, and that `selftest` passes.
//!
//! Needs `qemu-system-x86_64` and the `x86_64-unknown-none` Rust target. Without them each test
//! prints why and returns, unless `MANYCORE_REQUIRE_QEMU=1` (set by `.ci/run`), which turns the
//! missing tool into a failure.
//!
//! The expected topology is computed here from the same string with `Topology::from_synthetic`,
//! independently of `manycore boot`'s own comparison, so a bug in the command's comparison cannot
//! hide a wrong kernel report.

use std::path::{Path, PathBuf};
use std::process::Command;

use manycore_topology::Topology;
use serde_json::Value;

const REQUIRE_VAR: &str = "MANYCORE_REQUIRE_QEMU";
/// Memory per node given to QEMU (MiB).
const MEM_PER_NODE_MIB: u64 = 96;
/// Threads `selftest` runs in `every_thread_runs_once` by default (kernel/src/programs).
const SELFTEST_THREADS: u64 = 100_000;
/// Upper bound on one boot, passed to `manycore boot --timeout`.
const BOOT_TIMEOUT_SECS: u64 = 900;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Why the boot test cannot run here, if it cannot.
fn missing_tool() -> Option<String> {
    if manycore_tests::which("qemu-system-x86_64").is_none() {
        return Some(
            "qemu-system-x86_64 is not on PATH (Debian: apt-get install qemu-system-x86)".into(),
        );
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let target_lib = Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-none/lib");
    if !target_lib.is_dir() {
        return Some(format!(
            "the x86_64-unknown-none target is not installed ({} is missing; rustup target add x86_64-unknown-none)",
            target_lib.display()
        ));
    }
    None
}

/// Returns false (after printing a notice) when the test must skip; panics when skipping is not
/// allowed.
fn tools_available(test: &str) -> bool {
    match missing_tool() {
        None => true,
        Some(why) if manycore_tests::tool_required(REQUIRE_VAR) => {
            panic!("{test}: {REQUIRE_VAR}=1 but {why}")
        }
        Some(why) => {
            eprintln!("{test}: skipped: {why} (set {REQUIRE_VAR}=1 to make this a failure)");
            false
        }
    }
}

/// Runs `manycore boot --json` (through cargo, so the binary is current) and returns its status
/// and report.
fn manycore_boot(topology: &str, program: &str) -> (i32, Value, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "run", "--quiet", "-p", "manycore", "--bin", "manycore", "--", "boot",
        ])
        .args([
            "--topology",
            topology,
            "--mem-per-node",
            &MEM_PER_NODE_MIB.to_string(),
        ])
        .args([
            "--timeout",
            &BOOT_TIMEOUT_SECS.to_string(),
            "--json",
            "--",
            program,
        ])
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("manycore boot printed no JSON report ({e}).\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    (out.status.code().unwrap_or(-1), report, stderr)
}

/// Checks the kernel's report against the request, field by field.
fn assert_reported_topology_is(requested: &str, reported: &Value) {
    let want = Topology::from_synthetic(requested).expect("valid synthetic string");
    assert_eq!(reported["packages"], want.num_packages(), "packages");
    assert_eq!(reported["cores"], want.num_cores(), "cores");
    assert_eq!(reported["pus"], want.num_cpus(), "PUs");
    let nodes = reported["nodes"].as_array().expect("nodes array");
    assert_eq!(nodes.len(), want.num_nodes(), "node count");
    for (i, n) in want.nodes().iter().enumerate() {
        assert_eq!(nodes[i]["os_index"], n.os_index, "node {i} OS index");
        // Synthetic PUs are numbered like QEMU's CPUs (package, core, thread order).
        let cpus: Vec<u64> = n.cpus.iter().map(|c| c as u64).collect();
        assert_eq!(
            nodes[i]["cpus"],
            serde_json::json!(cpus),
            "CPUs of node {i}"
        );
        let mem = nodes[i]["memory_bytes"].as_u64().expect("memory_bytes");
        let asked = MEM_PER_NODE_MIB << 20;
        assert!(
            mem <= asked && mem + (1 << 20) >= asked,
            "node {i}: {mem} bytes reported, {asked} asked"
        );
        for (j, _) in want.nodes().iter().enumerate() {
            assert_eq!(
                reported["distances"][i][j],
                want.distance(i, j),
                "distance {i}->{j}"
            );
        }
    }
    let cpus = reported["cpus"].as_array().expect("per-CPU list");
    assert_eq!(cpus.len(), want.num_cpus());
    for pu in want.pus() {
        let c = cpus
            .iter()
            .find(|c| c["os_index"] == pu.os_index)
            .unwrap_or_else(|| panic!("the kernel reports no CPU with OS index {}", pu.os_index));
        assert_eq!(
            c["package"],
            want.packages()[pu.package].os_index,
            "package of CPU {}",
            pu.os_index
        );
        assert_eq!(
            c["node"],
            want.nodes()[pu.node].os_index,
            "node of CPU {}",
            pu.os_index
        );
    }
}

fn boot_and_check(test: &str, topology: &str) {
    if !tools_available(test) {
        return;
    }
    let (code, report, stderr) = manycore_boot(topology, "selftest");
    let problems = &report["problems"];
    assert_eq!(
        code, 0,
        "manycore boot failed: {problems}\nstderr:\n{stderr}"
    );
    assert_eq!(report["pass"], true, "{problems}");
    assert_eq!(
        report["qemu_exit"], 33,
        "the kernel must exit through isa-debug-exit with the pass code"
    );
    assert_eq!(report["topology_matches"], true, "{problems}");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "selftest prints exactly one RESULT line");
    let r = &results[0];
    assert_eq!(r["program"], "selftest");
    assert_eq!(r["pass"], true);
    let checks = r["checks"].as_array().expect("checks");
    for name in [
        "every_cpu_online",
        "every_cpu_matches_firmware",
        "wake_ipi_reaches_every_cpu",
        "timer_fires_on_every_cpu",
        "frames_come_from_their_node",
        "every_thread_runs_once",
        "mutex_is_exact_under_contention",
        "channel_keeps_order_and_loses_nothing",
        "cpu_bound_thread_is_preempted",
        "remote_frees_return_home",
    ] {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("check {name} missing"));
        assert_eq!(c["pass"], true, "{name}: {}", c["detail"]);
    }
    assert!(checks.iter().all(|c| c["pass"] == true), "{checks:?}");
    let want = Topology::from_synthetic(topology).expect("valid");
    assert_eq!(r["cpus_online"], want.num_cpus(), "every CPU online");
    // The threads ran on manycore-sched: its loop counted them, and its counters are reported.
    let sched = &r["sched"];
    let threads_run = sched["threads_run"].as_u64().expect("sched.threads_run");
    assert!(
        threads_run >= SELFTEST_THREADS,
        "{threads_run} threads finished, selftest spawns at least {SELFTEST_THREADS}"
    );
    let stolen: u64 = sched["stolen_by_tier"]
        .as_object()
        .expect("sched.stolen_by_tier")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum();
    assert!(
        sched["wakes_by_reason"].is_object() && sched["parks"].is_u64(),
        "manycore-sched's counters are reported: {sched}"
    );
    eprintln!("{test}: {threads_run} threads run, {stolen} stolen, sched counters {sched}");
    assert_reported_topology_is(topology, &r["topology"]);
}

#[test]
fn eight_cpus_in_two_nodes_boot_with_the_requested_topology() {
    boot_and_check(
        "eight_cpus_in_two_nodes_boot_with_the_requested_topology",
        "pack:1 numa:2 core:2 pu:2 distances=10,21;21,10",
    );
}

#[test]
fn eight_cpus_in_four_nodes_boot_with_distinct_distances() {
    boot_and_check(
        "eight_cpus_in_four_nodes_boot_with_distinct_distances",
        "pack:2 numa:2 core:1 pu:2 distances=10,12,21,32;12,10,32,21;21,32,10,12;32,21,12,10",
    );
}
