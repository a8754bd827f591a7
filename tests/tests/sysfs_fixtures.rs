//! Recorded sysfs trees (written by tools/mk-sysfs-fixtures.py) parse to the machines they record.

use std::path::PathBuf;

use manycore_tests::fixtures_dir;
use manycore_topology::{DistanceOrigin, TierKind, Topology};

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join("sysfs").join(name)
}

fn load(name: &str) -> Topology {
    Topology::from_sysfs(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn two_socket_four_node_machine_with_slit() {
    let t = load("two-socket-four-node");
    assert_eq!(
        (t.num_packages(), t.num_nodes(), t.num_cores(), t.num_cpus()),
        (2, 4, 16, 32)
    );
    assert_eq!(t.distance_origin(), DistanceOrigin::Given);
    let n = t.num_nodes();
    let matrix: Vec<u32> = (0..n * n).map(|i| t.distance(i / n, i % n)).collect();
    assert_eq!(
        matrix,
        [
            10, 11, 21, 21, 11, 10, 21, 21, 21, 21, 10, 11, 21, 21, 11, 10
        ]
    );
    assert_eq!(t.nodes()[1].cpus.to_string(), "4-7,20-23");
    assert_eq!(t.nodes()[3].memory_bytes, 64 << 30);
    // SMT siblings are n and n+16: the first victim of OS CPU 5 is OS CPU 21.
    let cpu5 = t.cpu_from_os(5).unwrap();
    let order = t.steal_order(cpu5);
    let first = order.get(0).unwrap();
    assert_eq!(first.kind, TierKind::Smt);
    assert_eq!(
        first
            .cpus
            .iter()
            .map(|&c| t.pu(c as usize).os_index)
            .collect::<Vec<_>>(),
        [21]
    );
    let kinds: Vec<_> = order.iter().map(|x| (x.kind, x.distance)).collect();
    assert_eq!(
        kinds,
        [
            (TierKind::Smt, 10),
            (TierKind::Llc, 10),
            (TierKind::Remote, 11),
            (TierKind::Remote, 21)
        ]
    );
    // L1d/L1i/L2 per core, L3 per node: 16 + 16 + 16 + 4 caches.
    assert_eq!(t.caches().len(), 52);
    let l3 = t.caches().iter().filter(|c| c.level == 3).count();
    assert_eq!(l3, 4);
    assert!(t.offline_cpus().is_empty());
}

#[test]
fn memoryless_and_cpuless_nodes() {
    let t = load("memoryless-node");
    assert_eq!(t.num_nodes(), 3);
    assert_eq!(
        t.nodes()[1].memory_bytes,
        0,
        "node 1 has CPUs but no memory"
    );
    assert_eq!(t.nodes()[1].cpus.to_string(), "4-7");
    assert!(t.nodes()[2].pus.is_empty(), "node 2 is memory only");
    assert_eq!(t.nodes()[2].memory_bytes, 128 << 30);
    // CPU-less node 2 never appears in a steal order; node 1 is the nearest remote tier.
    let order = t.steal_order(0);
    let last = order.get(order.len() - 1).unwrap();
    assert_eq!((last.kind, last.distance), (TierKind::Remote, 12));
}

#[test]
fn offline_cpus_and_holes_in_the_numbering() {
    let t = load("offline-noncontiguous");
    assert_eq!(t.num_cpus(), 6);
    assert_eq!(t.online_cpus().to_string(), "0-1,3,8,10-11");
    assert_eq!(t.offline_cpus().to_string(), "2,9");
    assert_eq!(t.num_packages(), 2);
    assert_eq!(t.cpu_from_os(9), None);
    assert_eq!(t.cpu_from_os(10), Some(4));
    assert_eq!(
        t.distance_origin(),
        DistanceOrigin::Derived,
        "no distance file: derived and flagged"
    );
}

#[test]
fn malformed_files_name_path_and_line() {
    let dir = std::env::temp_dir().join(format!("manycore-bad-sysfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = fixture("offline-noncontiguous");
    copy_dir(&src, &dir);
    std::fs::write(
        dir.join("devices/system/node/node0/meminfo"),
        "Node 0 MemTotal: many kB\n",
    )
    .unwrap();
    let e = Topology::from_sysfs(&dir).unwrap_err().to_string();
    assert!(e.contains("node0/meminfo") && e.contains("line 1"), "{e}");

    copy_dir(&src, &dir);
    std::fs::write(dir.join("devices/system/cpu/online"), "0-1,x\n").unwrap();
    let e = Topology::from_sysfs(&dir).unwrap_err().to_string();
    assert!(e.contains("cpu/online") && e.contains("CPU list"), "{e}");

    copy_dir(&src, &dir);
    std::fs::write(
        dir.join("devices/system/cpu/cpu0/cache/index0/size"),
        "lots\n",
    )
    .unwrap();
    let e = Topology::from_sysfs(&dir).unwrap_err().to_string();
    assert!(e.contains("index0/size") && e.contains("32K"), "{e}");

    let e = Topology::from_sysfs(&dir.join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing/devices/system/cpu"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn live_host_sysfs_parses_and_agrees_with_proc() {
    let t = Topology::from_sysfs(std::path::Path::new("/sys")).expect("live /sys parses");
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(t.online_cpus().to_string(), online.trim());
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("node") && name[4..].parse::<u32>().is_ok()
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(t.num_nodes(), nodes.max(1));
}
