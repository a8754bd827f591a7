//! Differential test against real hwloc: for each synthetic description, `lstopo-no-graphics -i STR
//! --of xml` read back by our XML reader must build the same machine as our synthetic parser:
//! counts per level, CPU sets per node and per cache, cache sizes, memory and steal orders. A
//! `distances2` block written by `hwloc-annotate` must give the same matrix as our `distances=`
//! extension.
//!
//! Needs hwloc's command-line tools (Debian package `hwloc`). Without them the test prints why it
//! skips, and fails instead when `MANYCORE_REQUIRE_HWLOC=1` (set by `.ci/run`).

use std::process::Command;

use manycore_tests::{tool_required, which};
use manycore_topology::{CacheKind, Topology};

const DESCRIPTIONS: &[&str] = &[
    "pack:2 numa:2 l3:1 core:8 pu:2",
    "pack:2 numa:2 l3:2 core:4 pu:2",
    "pack:1 l3:1 numa:2 core:2 pu:2",
    "numa:4 pack:1 core:2 pu:1",
    "pack:2 [numa(memory=2GB)] l3:1(size=8MiB) l2:2 l1d:1 core:1 pu:2",
    "pack:2 [numa] core:2 [numa] pu:1",
    "pack:4 l3:2 core:4 pu:1",
    "core:4 pu:2",
    "2 2 2 2",
    "2 2 2 2 2 2 2 2",
    "pack:2 numa:2(memory=12GB) l2:2(size=1MB) core:2 pu:4",
    "pack:1 numa:2(indexes=1,0) core:2 pu:1",
    "pack:2 l3:1 [numa(memory=64GiB)] l2:4 l1i:1 l1d:1 core:1 pu:2",
];

fn hwloc_available() -> bool {
    if which("lstopo-no-graphics").is_some() && which("hwloc-annotate").is_some() {
        return true;
    }
    if tool_required("MANYCORE_REQUIRE_HWLOC") {
        panic!(
            "MANYCORE_REQUIRE_HWLOC=1 but lstopo-no-graphics/hwloc-annotate are not on PATH (apt-get install hwloc)"
        );
    }
    eprintln!(
        "skipped: hwloc's tools (lstopo-no-graphics, hwloc-annotate) are not installed; apt-get install hwloc"
    );
    false
}

fn lstopo_xml(description: &str) -> String {
    let out = Command::new("lstopo-no-graphics")
        .args(["-i", description, "--of", "xml", "-"])
        .output()
        .expect("run lstopo-no-graphics");
    assert!(
        out.status.success(),
        "lstopo rejected {description:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 XML")
}

/// Everything compared, keyed by OS indices so the two sources' numbering cannot hide a mismatch.
fn summary(t: &Topology) -> Vec<String> {
    let mut s = vec![format!(
        "packages={} nodes={} cores={} pus={}",
        t.num_packages(),
        t.num_nodes(),
        t.num_cores(),
        t.num_cpus()
    )];
    for n in t.nodes() {
        s.push(format!(
            "node P#{} cpus={} memory={}",
            n.os_index, n.cpus, n.memory_bytes
        ));
    }
    let mut caches: Vec<String> = t
        .caches()
        .iter()
        .map(|c| {
            let kind = match c.kind {
                CacheKind::Data => "d",
                CacheKind::Instruction => "i",
                CacheKind::Unified => "u",
            };
            format!("L{}{kind} cpus={} size={}", c.level, c.cpus, c.size_bytes)
        })
        .collect();
    caches.sort();
    s.extend(caches);
    for p in t.packages() {
        s.push(format!("package cpus={}", p.cpus));
    }
    for cpu in 0..t.num_cpus() {
        let order: Vec<String> = t
            .steal_order(cpu)
            .iter()
            .map(|tier| {
                let os: manycore_topology::CpuSet = tier
                    .cpus
                    .iter()
                    .map(|&c| t.pu(c as usize).os_index as usize)
                    .collect();
                format!("{}@{}:{os}", tier.kind.name(), tier.distance)
            })
            .collect();
        s.push(format!(
            "P#{} order {}",
            t.pu(cpu).os_index,
            order.join(" ")
        ));
    }
    s
}

#[test]
fn synthetic_parser_matches_hwloc_xml_export() {
    if !hwloc_available() {
        return;
    }
    for description in DESCRIPTIONS {
        let ours =
            Topology::from_synthetic(description).unwrap_or_else(|e| panic!("{description}: {e}"));
        let xml = lstopo_xml(description);
        let theirs =
            Topology::from_hwloc_xml(&xml).unwrap_or_else(|e| panic!("{description} via XML: {e}"));
        let (a, b) = (summary(&ours), summary(&theirs));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{description:?}: synthetic vs hwloc XML");
        }
        assert_eq!(a.len(), b.len(), "{description:?}");
    }
}

#[test]
fn distances2_matrix_equals_synthetic_distances() {
    if !hwloc_available() {
        return;
    }
    let base = "pack:2 numa:2 core:2 pu:1";
    let matrix = [
        [10, 12, 32, 32],
        [12, 10, 32, 32],
        [32, 32, 10, 12],
        [32, 32, 12, 10],
    ];
    let rows: Vec<String> = matrix
        .iter()
        .map(|r| r.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
        .collect();
    let ours = Topology::from_synthetic(&format!("{base} distances={}", rows.join(";"))).unwrap();

    let dir = std::env::temp_dir().join(format!("manycore-hwloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output, spec) = (
        dir.join("in.xml"),
        dir.join("out.xml"),
        dir.join("distances.txt"),
    );
    std::fs::write(&input, lstopo_xml(base)).unwrap();
    // hwloc-annotate's distances file: optional name=, kind (5 = latency from OS), count, objects,
    // then one value per line.
    let mut text = String::from("name=NUMALatency\n5\n4\n");
    for n in 0..4 {
        text.push_str(&format!("numa:{n}\n"));
    }
    for v in matrix.iter().flatten() {
        text.push_str(&format!("{v}\n"));
    }
    std::fs::write(&spec, text).unwrap();
    let status = Command::new("hwloc-annotate")
        .args([
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--",
            "root",
            "--",
            "distances",
        ])
        .arg(&spec)
        .status()
        .expect("run hwloc-annotate");
    assert!(status.success());
    let annotated = std::fs::read_to_string(&output).unwrap();
    assert!(
        annotated.contains("distances2"),
        "hwloc-annotate wrote no distances2 block"
    );
    let theirs = Topology::from_hwloc_xml(&annotated).unwrap();
    assert_eq!(theirs.distance_matrix(), ours.distance_matrix());
    assert_eq!(summary(&theirs), summary(&ours));
    let _ = std::fs::remove_dir_all(&dir);
}
