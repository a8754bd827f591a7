//! `mbind` before first touch really places pages: checked with `move_pages` on node 0.
//!
//! Needs a kernel with NUMA system calls (`mbind`, `move_pages`). Where they are missing
//! (ENOSYS, e.g. a kernel built without CONFIG_NUMA or a seccomp filter) the tests print why
//! they skip; set `MANYCORE_REQUIRE_NUMA=1` to make that a failure instead.

use std::alloc::Layout;

use manycore_alloc::sys::linux::{self, LinuxPageSource, NodePolicy};
use manycore_alloc::{Heap, PageSource, SEGMENT_BYTES};

fn numa_syscalls_work() -> bool {
    let src = LinuxPageSource::new(NodePolicy::FirstTouch);
    let p = src.alloc_pages(4096, 4096, 0).unwrap();
    // SAFETY: a fresh page we own.
    let ok = unsafe {
        p.as_ptr().write(1);
        linux::mbind(p.as_ptr(), 4096, 0, MPOL_PREFERRED)
            && linux::page_nodes(p.as_ptr(), &mut [0i32; 1])
    };
    // SAFETY: the page from alloc_pages above.
    unsafe { src.free_pages(p, 4096, 0) };
    if !ok {
        let msg = "skipping: mbind/move_pages unavailable on this kernel";
        assert!(
            std::env::var("MANYCORE_REQUIRE_NUMA").as_deref() != Ok("1"),
            "{msg} (MANYCORE_REQUIRE_NUMA=1)"
        );
        eprintln!("{msg}");
    }
    ok
}

/// Linux's `MPOL_PREFERRED` (uapi `mempolicy.h`).
const MPOL_PREFERRED: i32 = 1;

#[test]
fn mbind_bind_node0_pages_land_on_node0() {
    if !numa_syscalls_work() {
        return;
    }
    let src = LinuxPageSource::new(NodePolicy::Bind);
    let bytes = 64 * 4096;
    let p = src
        .alloc_pages(bytes, SEGMENT_BYTES, 0)
        .expect("mbind(MPOL_BIND, node 0)");
    assert_eq!(p.as_ptr() as usize % SEGMENT_BYTES, 0, "aligned as asked");
    // SAFETY: our fresh mapping; touch every page.
    unsafe { std::ptr::write_bytes(p.as_ptr(), 0xab, bytes) };
    let mut status = [0i32; 64];
    // SAFETY: the mapping above.
    assert!(unsafe { linux::page_nodes(p.as_ptr(), &mut status) });
    assert!(
        status.iter().all(|&s| s == 0),
        "pages off node 0: {status:?}"
    );
    let placement = src.placement(p, bytes, 0).unwrap();
    assert_eq!(placement.pages_checked, 64);
    assert_eq!(placement.pages_off_node, 0);
    assert_eq!(placement.pages_absent, 0);
    assert_eq!(src.mbind_failures(), 0);
    // SAFETY: returned once.
    unsafe { src.free_pages(p, bytes, 0) };
}

#[test]
fn heap_verify_placement_counts_resident_pages_on_node0() {
    if !numa_syscalls_work() {
        return;
    }
    let heap = Heap::new(LinuxPageSource::new(NodePolicy::Bind));
    assert!(heap.nodes() >= 1);
    let l = Layout::from_size_align(1000, 8).unwrap();
    let ps: Vec<_> = (0..2000).map(|_| heap.alloc(0, l)).collect();
    for &p in &ps {
        assert!(!p.is_null());
        // SAFETY: live blocks of 1000 bytes.
        unsafe { std::ptr::write_bytes(p, 7, 1000) };
    }
    let big = heap.alloc(0, Layout::from_size_align(3 << 20, 4096).unwrap());
    // SAFETY: a live 3 MiB block.
    unsafe { std::ptr::write_bytes(big, 1, 3 << 20) };
    let pl = heap.verify_placement(0).expect("move_pages works");
    let resident = pl.pages_checked - pl.pages_absent;
    assert!(
        resident >= (2000 * 1000 + (3 << 20)) / 4096,
        "resident {resident}: {pl:?}"
    );
    assert_eq!(pl.pages_off_node, 0, "{pl:?}");
    let st = heap.stats(0);
    assert_eq!(st.off_node_pages, 0);
    assert_eq!(st.pages_checked as usize, pl.pages_checked);
    for p in ps {
        // SAFETY: freed once.
        unsafe { heap.free(p) };
    }
    // SAFETY: freed once.
    unsafe { heap.free(big) };
}

#[test]
fn discovery_reads_sysfs_without_allocating() {
    let mut map = manycore_alloc::NodeMap::builder();
    if let Err(e) = linux::discover(&mut map) {
        panic!("sysfs node discovery failed: {e}");
    }
    assert!(map.nodes() >= 1);
    // A heap over the Linux source discovers the same machine on first use.
    let heap = Heap::new(LinuxPageSource::new(NodePolicy::Preferred));
    assert_eq!(heap.map_origin(), manycore_alloc::MapOrigin::Discovered);
    assert_eq!(heap.nodes(), map.nodes());
    let cpu = linux::current_cpu().expect("sched_getcpu or rseq");
    assert!(map.node_of_cpu(cpu) < map.nodes());
    // The topology crate agrees on the node count.
    let topo = manycore_topology::Topology::host().expect("host topology");
    let from_topo = manycore_alloc::NodeMap::from_topology(&topo).unwrap();
    assert_eq!(from_topo.nodes(), map.nodes());
    for c in 0..topo.num_cpus() {
        let os = topo.pu(c).os_index as usize;
        assert_eq!(from_topo.node_of_cpu(os), map.node_of_cpu(os), "cpu {os}");
    }
    eprintln!("cpu id source: {:?}", linux::cpu_id_source());
}
