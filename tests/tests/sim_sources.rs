//! Every topology source the simulator accepts runs a simulation: presets, synthetic
//! descriptions, recorded sysfs trees and the host.

use manycore_sim::{Machine, Scenario, topo_source};
use manycore_tests::fixtures_dir;

fn runs(spec: &str) -> manycore_sim::Report {
    let topo = topo_source::load(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let params = vec![("requests".to_string(), "2000".to_string())];
    let s = Scenario::new(
        spec,
        Machine::new(topo),
        "server",
        params,
        vec!["topology".into(), "random".into()],
    );
    s.run(None).unwrap_or_else(|e| panic!("{spec}: {e}")).0
}

#[test]
fn recorded_sysfs_tree_becomes_a_simulated_machine() {
    let dir = fixtures_dir().join("sysfs").join("two-socket-four-node");
    let report = runs(dir.to_str().expect("utf-8 path"));
    for p in &report.policies {
        assert_eq!(p.details.tasks_completed, 2000, "{}", p.policy);
    }
}

#[test]
fn synthetic_description_with_distances_becomes_a_simulated_machine() {
    let report = runs(
        "pack:2 numa:2 l3:1 core:4 pu:2 distances=10,12,32,32;12,10,32,32;32,32,10,12;32,32,12,10",
    );
    assert_eq!(report.policies.len(), 2);
    assert_eq!(
        report.policies[0].details.node_load.len(),
        4,
        "one load series per node"
    );
}

#[test]
fn host_topology_runs() {
    let report = runs("host");
    assert!(
        report
            .policies
            .iter()
            .all(|p| p.details.tasks_completed == 2000)
    );
}

#[test]
fn hwloc_xml_file_becomes_a_simulated_machine() {
    let Some(lstopo) = manycore_tests::which("lstopo-no-graphics") else {
        assert!(
            !manycore_tests::tool_required("MANYCORE_REQUIRE_HWLOC"),
            "MANYCORE_REQUIRE_HWLOC=1 but lstopo-no-graphics is not on PATH"
        );
        eprintln!(
            "skipped: lstopo-no-graphics (hwloc) is not installed, so no XML can be produced"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("manycore-sim-xml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let xml = dir.join("machine.xml");
    let status = std::process::Command::new(lstopo)
        .args(["-i", "pack:2 numa:2 l3:1 core:4 pu:2", "--of", "xml"])
        .arg(&xml)
        .status()
        .expect("run lstopo");
    assert!(status.success(), "lstopo failed");
    let report = runs(xml.to_str().expect("utf-8 path"));
    assert_eq!(report.policies[0].details.node_load.len(), 4);
    std::fs::remove_dir_all(&dir).ok();
}
