//! Host tests of the core over `SystemPageSource` and fake multi-node machines.

use core::alloc::Layout;
use std::collections::HashSet;
use std::vec::Vec;

use crate::size_class::{NUM_CLASSES, class_bytes};
use crate::{Cache, Heap, NodeMap, SystemPageSource};

fn fake_heap(nodes: usize) -> Heap<SystemPageSource> {
    Heap::with_node_map(
        SystemPageSource::new(),
        NodeMap::fake(nodes, nodes * 2).unwrap(),
    )
}

fn fill(p: *mut u8, len: usize, tag: u8) {
    // SAFETY: tests only call this on live blocks of at least `len` bytes.
    unsafe { core::ptr::write_bytes(p, tag, len) };
}

fn check(p: *mut u8, len: usize, tag: u8) {
    // SAFETY: as for `fill`.
    let s = unsafe { core::slice::from_raw_parts(p, len) };
    assert!(s.iter().all(|&b| b == tag), "block {p:p} lost its contents");
}

#[test]
fn blocks_of_every_class_are_aligned_disjoint_and_keep_contents() {
    let heap = fake_heap(1);
    let mut cache = Cache::new(0, false);
    let mut live = Vec::new();
    for c in 0..NUM_CLASSES {
        let size = class_bytes(c);
        for k in 0..3 {
            let p = cache.alloc(&heap, size, 8);
            assert!(!p.is_null());
            assert_eq!(p.addr() % 8, 0);
            fill(p, size, (c * 3 + k) as u8);
            live.push((p, size, (c * 3 + k) as u8));
        }
    }
    let mut ranges: Vec<_> = live
        .iter()
        .map(|&(p, s, _)| (p.addr(), p.addr() + s))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "blocks overlap: {w:x?}");
    }
    for &(p, s, t) in &live {
        check(p, s, t);
        // SAFETY: live blocks of this heap.
        assert!(unsafe { heap.usable_size(p) } >= s);
        // SAFETY: as above.
        unsafe { cache.free(&heap, p) };
    }
    cache.flush(&heap);
    let st = heap.stats(0);
    assert_eq!(st.allocs(), (NUM_CLASSES * 3) as u64);
    assert_eq!(st.frees(), (NUM_CLASSES * 3) as u64);
    assert_eq!(st.bytes_in_use(), 0);
}

#[test]
fn remote_free_returns_home() {
    const NODES: usize = 4;
    const PER_NODE: usize = 500;
    let heap = fake_heap(NODES);
    let mut caches: Vec<Cache> = (0..NODES).map(|n| Cache::new(n, false)).collect();
    // Each node allocates blocks of a few classes.
    let mut blocks: Vec<Vec<*mut u8>> = Vec::new();
    for (n, cache) in caches.iter_mut().enumerate() {
        let mut v = Vec::new();
        for i in 0..PER_NODE {
            let size = [16, 48, 200, 1000][i % 4];
            let p = cache.alloc(&heap, size, 8);
            assert!(!p.is_null());
            assert_eq!(heap.source().node_of(p), Some(n), "allocated on node {n}");
            // SAFETY: live block.
            assert_eq!(unsafe { heap.owner_node(p) }, n);
            v.push(p);
        }
        blocks.push(v);
    }
    // Node n's blocks are freed by node (n + 1) % NODES.
    for (n, mine) in blocks.iter().enumerate() {
        let freer = (n + 1) % NODES;
        for &p in mine {
            // SAFETY: live blocks, freed once.
            unsafe { caches[freer].free(&heap, p) };
        }
    }
    // Before anything is flushed, no cache may hand out another node's block. Full remote
    // batches have already reached their owner, which reuses them.
    let mine: HashSet<usize> = blocks[2].iter().map(|p| p.addr()).collect();
    let mut seen_again: HashSet<usize> = HashSet::new();
    for (n, cache) in caches.iter_mut().enumerate() {
        let mut again = Vec::new();
        for i in 0..PER_NODE {
            let p = cache.alloc(&heap, [16, 48, 200, 1000][i % 4], 8);
            assert_eq!(
                heap.source().node_of(p),
                Some(n),
                "cache {n} got a foreign block"
            );
            if n == 2 {
                seen_again.insert(p.addr());
            }
            again.push(p);
        }
        for p in again {
            // SAFETY: live, freed once.
            unsafe { cache.free(&heap, p) };
        }
    }
    for cache in caches.iter_mut() {
        cache.flush(&heap);
    }
    // The owner takes its blocks back into its slabs (the uncached path drains the inbox
    // first) and hands them out again.
    let mut again = Vec::new();
    for i in 0..PER_NODE {
        let size = [16, 48, 200, 1000][i % 4];
        let p = heap.alloc(2, Layout::from_size_align(size, 8).unwrap());
        seen_again.insert(p.addr());
        assert_eq!(heap.source().node_of(p), Some(2));
        again.push(p);
    }
    let reused = mine.intersection(&seen_again).count();
    assert!(
        reused > PER_NODE / 2,
        "only {reused} of node 2's blocks came back to its slabs"
    );
    for p in again {
        // SAFETY: live, freed once.
        unsafe { heap.free(p) };
    }
    heap.trim();
    for n in 0..NODES {
        let st = heap.stats(n);
        assert_eq!(
            st.remote_frees(),
            PER_NODE as u64,
            "node {n} got its blocks back"
        );
        assert_eq!(st.remote_received, PER_NODE as u64);
        assert_eq!(st.bytes_in_use(), 0, "node {n}: {st:?}");
    }
}

#[test]
fn large_objects_free_realloc_and_usable_size() {
    let heap = fake_heap(2);
    let mut cache = Cache::new(1, false);
    for &(size, align) in &[
        (40 << 10, 8usize),
        (5 << 20, 8),
        (100, 1 << 20),
        (64, 8192),
        ((1 << 20) + 3, 4096),
    ] {
        let p = cache.alloc(&heap, size, align);
        assert!(!p.is_null(), "size {size} align {align}");
        assert_eq!(p.addr() % align, 0);
        // SAFETY: live block.
        assert!(unsafe { heap.usable_size(p) } >= size);
        assert_eq!(heap.source().node_of(p), Some(1));
        fill(p, size, 0x5a);
        // SAFETY: live block, reallocated with its alignment.
        let q = unsafe { cache.realloc(&heap, p, align, size, size * 2 + 1) };
        assert!(!q.is_null());
        check(q, size, 0x5a);
        // SAFETY: live block.
        unsafe { cache.free(&heap, q) };
    }
    assert!(cache.alloc(&heap, 8, crate::ALIGN_MAX_BYTES * 2).is_null());
    assert!(cache.alloc(&heap, usize::MAX - 100, 8).is_null());
    cache.flush(&heap);
    let st = heap.stats(1);
    assert_eq!(st.large_bytes_in_use, 0);
    assert_eq!(st.large_allocs, st.large_frees);
}

#[test]
fn zeroed_allocations_read_zero_even_when_memory_is_reused() {
    let heap = fake_heap(1);
    let mut cache = Cache::new(0, false);
    for &size in &[24usize, 3000, 100_000, 3 << 20] {
        for _ in 0..3 {
            let p = cache.alloc(&heap, size, 8);
            fill(p, size, 0xee);
            // SAFETY: live, freed once.
            unsafe { cache.free(&heap, p) };
            let z = cache.alloc_zeroed(&heap, size, 8);
            check(z, size, 0);
            // SAFETY: live, freed once.
            unsafe { cache.free(&heap, z) };
        }
    }
    let z = heap.alloc_zeroed(0, Layout::from_size_align(200_000, 64).unwrap());
    check(z, 200_000, 0);
    // SAFETY: live, freed once.
    unsafe { heap.free(z) };
}

#[test]
fn trim_gives_pages_back() {
    let heap = fake_heap(1);
    let mut cache = Cache::new(0, false);
    let ps: Vec<_> = (0..20_000)
        .map(|i| cache.alloc(&heap, 64 + i % 900, 8))
        .collect();
    let peak = heap.source().held_bytes();
    for p in ps {
        // SAFETY: live, freed once.
        unsafe { cache.free(&heap, p) };
    }
    cache.flush(&heap);
    heap.trim();
    let after = heap.source().held_bytes();
    // What stays: the node state and the segment holding magazine metadata.
    assert!(
        after <= crate::node::NodeState::PAGES_BYTES + crate::SEGMENT_BYTES,
        "{after} of {peak}"
    );
    assert!(peak > after);
    assert_eq!(heap.stats(0).pages_held_bytes as usize, after);
}

#[test]
fn exhausted_pages_give_null_not_panic() {
    let heap = Heap::with_node_map(
        SystemPageSource::with_limit_bytes(crate::SEGMENT_BYTES * 2),
        NodeMap::single_node(),
    );
    let mut cache = Cache::new(0, false);
    let mut got = Vec::new();
    let mut nulls = 0;
    for _ in 0..4000 {
        let p = cache.alloc(&heap, 4096, 8);
        if p.is_null() {
            nulls += 1;
        } else {
            got.push(p);
        }
    }
    assert!(nulls > 0, "the limit was reached");
    assert!(
        heap.alloc(0, Layout::from_size_align(10 << 20, 8).unwrap())
            .is_null()
    );
    assert!(
        heap.alloc(7, Layout::from_size_align(8, 8).unwrap())
            .is_null(),
        "node beyond the map"
    );
    for p in got {
        // SAFETY: live, freed once.
        unsafe { cache.free(&heap, p) };
    }
}

#[test]
fn cache_stays_within_its_budget() {
    let heap = fake_heap(1);
    heap.set_cache_budget_bytes(256 << 10);
    let mut cache = Cache::new(0, false);
    for round in 0..4 {
        for c in (0..NUM_CLASSES).step_by(3) {
            let ps: Vec<_> = (0..200)
                .map(|_| cache.alloc(&heap, class_bytes(c), 8))
                .collect();
            for p in ps {
                // SAFETY: live, freed once.
                unsafe { cache.free(&heap, p) };
            }
            assert!(
                cache.held_bound_bytes() <= heap.cache_budget_bytes(),
                "round {round} class {c}: {}",
                cache.held_bound_bytes()
            );
        }
    }
}

#[test]
fn uncached_entry_points_place_on_the_requested_node() {
    let heap = fake_heap(4);
    let l = Layout::from_size_align(100, 16).unwrap();
    let ps: Vec<_> = (0..4).map(|n| heap.alloc(n, l)).collect();
    for (n, &p) in ps.iter().enumerate() {
        assert_eq!(heap.source().node_of(p), Some(n));
        assert_eq!(p.addr() % 16, 0);
    }
    for p in ps {
        // SAFETY: live, freed once.
        unsafe { heap.free(p) };
    }
    assert_eq!((0..4).map(|n| heap.stats(n).bytes_in_use()).sum::<u64>(), 0);
}

mod percpu_hooks {
    use core::cell::Cell;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use crate::CpuLocal;

    std::thread_local! {
        pub static CPU: Cell<usize> = const { Cell::new(0) };
        pub static DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    /// Each test thread plays one CPU; preemption depth is tracked per thread.
    pub struct FakeCpus {
        pub disables: AtomicUsize,
    }

    // SAFETY: each test thread sets a distinct CPU and is the only user of it, which is what
    // preemption-off guarantees in a kernel.
    unsafe impl CpuLocal for FakeCpus {
        fn current_cpu(&self) -> usize {
            assert!(DEPTH.with(Cell::get) > 0, "CPU read with preemption on");
            CPU.with(Cell::get)
        }
        fn preempt_disable(&self) {
            self.disables.fetch_add(1, Ordering::Relaxed);
            DEPTH.with(|d| d.set(d.get() + 1));
        }
        fn preempt_enable(&self) {
            DEPTH.with(|d| {
                assert!(d.get() > 0, "unbalanced preempt_enable");
                d.set(d.get() - 1)
            });
        }
    }
}

#[test]
fn per_cpu_front_end_holds_preemption_and_places_on_the_cpu_node() {
    use core::alloc::GlobalAlloc;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use percpu_hooks::{CPU, DEPTH, FakeCpus};

    let a = std::boxed::Box::new(crate::PerCpu::new(
        SystemPageSource::new(),
        NodeMap::fake(2, 4).unwrap(),
        FakeCpus {
            disables: AtomicUsize::new(0),
        },
    ));
    let a = &*a;
    std::thread::scope(|s| {
        for cpu in 0..4usize {
            s.spawn(move || {
                CPU.with(|c| c.set(cpu));
                let l = Layout::from_size_align(96, 8).unwrap();
                let mut ps = Vec::new();
                for _ in 0..1000 {
                    // SAFETY: non-zero layout.
                    let p = unsafe { a.alloc(l) };
                    assert_eq!(a.heap().source().node_of(p), Some(cpu * 2 / 4));
                    ps.push(p);
                }
                for p in ps {
                    // SAFETY: freed once.
                    unsafe { a.dealloc(p, l) };
                }
                assert_eq!(DEPTH.with(|d| d.get()), 0, "preemption re-enabled");
            });
        }
    });
    assert!(a.cpu().disables.load(Ordering::Relaxed) >= 8000);
}

#[test]
fn node_handles_and_object_caches_place_on_their_node() {
    let heap = fake_heap(4);
    let on3 = heap.alloc_on_node(3);
    let mut v = allocator_api2::vec::Vec::new_in(on3);
    for i in 0..10_000u64 {
        v.push(i);
    }
    assert_eq!(heap.source().node_of(v.as_ptr().cast()), Some(3));
    assert_eq!(v.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    drop(v);

    #[derive(Debug)]
    struct Conn {
        id: u64,
        buf: [u8; 200],
    }
    let conns = crate::ObjectCache::<Conn, _>::new(&heap, 1);
    let boxes: Vec<_> = (0..100)
        .map(|id| {
            conns
                .alloc(Conn {
                    id,
                    buf: [id as u8; 200],
                })
                .unwrap()
        })
        .collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b.id, i as u64);
        assert!(b.buf.iter().all(|&x| x == i as u8));
        assert_eq!(heap.source().node_of(b.as_ptr().cast()), Some(1));
    }
    drop(boxes);
    assert_eq!(heap.stats(1).bytes_in_use(), 0);
    assert_eq!(heap.stats(3).bytes_in_use(), 0);
}

/// A page source whose "current CPU" a test moves.
struct MovingCpu {
    inner: SystemPageSource,
    cpu: core::sync::atomic::AtomicUsize,
}

// SAFETY: delegates pages to SystemPageSource unchanged.
unsafe impl crate::PageSource for MovingCpu {
    fn alloc_pages(&self, b: usize, a: usize, n: usize) -> Option<core::ptr::NonNull<u8>> {
        self.inner.alloc_pages(b, a, n)
    }
    unsafe fn free_pages(&self, p: core::ptr::NonNull<u8>, b: usize, n: usize) {
        // SAFETY: forwarded precondition.
        unsafe { self.inner.free_pages(p, b, n) }
    }
    fn current_cpu(&self) -> Option<usize> {
        Some(self.cpu.load(core::sync::atomic::Ordering::Relaxed))
    }
}

#[test]
fn migrated_thread_cache_rebinds_and_never_mixes_nodes() {
    use core::sync::atomic::Ordering;
    let heap = Heap::with_node_map(
        MovingCpu {
            inner: SystemPageSource::new(),
            cpu: core::sync::atomic::AtomicUsize::new(0),
        },
        NodeMap::fake(2, 2).unwrap(),
    );
    let mut cache = Cache::new(0, true);
    let a: Vec<_> = (0..300).map(|_| cache.alloc(&heap, 64, 8)).collect();
    // The thread moves to CPU 1 (node 1) and frees node 0's blocks there.
    heap.source().cpu.store(1, Ordering::Relaxed);
    for &p in &a {
        // SAFETY: freed once.
        unsafe { cache.free(&heap, p) };
    }
    assert_eq!(cache.node(), 1, "a slow path noticed the move");
    let b: Vec<_> = (0..300).map(|_| cache.alloc(&heap, 64, 8)).collect();
    for &p in &b {
        assert_eq!(
            heap.source().inner.node_of(p),
            Some(1),
            "only node 1 blocks after the move"
        );
    }
    for p in b {
        // SAFETY: freed once.
        unsafe { cache.free(&heap, p) };
    }
    cache.flush(&heap);
    heap.trim();
    assert_eq!(heap.stats(0).bytes_in_use(), 0);
    assert!(heap.stats(0).remote_frees() > 0);
}

/// A page source whose machine discovery answers what a test tells it to.
struct Discovering {
    inner: SystemPageSource,
    /// `Some(list)`: two nodes, node 1 with this cpulist; `None`: unsupported.
    node1_cpulist: Option<&'static [u8]>,
}

// SAFETY: delegates pages to SystemPageSource unchanged.
unsafe impl crate::PageSource for Discovering {
    fn alloc_pages(&self, b: usize, a: usize, n: usize) -> Option<core::ptr::NonNull<u8>> {
        self.inner.alloc_pages(b, a, n)
    }
    unsafe fn free_pages(&self, p: core::ptr::NonNull<u8>, b: usize, n: usize) {
        // SAFETY: forwarded precondition.
        unsafe { self.inner.free_pages(p, b, n) }
    }
    fn discover_nodes(&self, map: &mut NodeMap) -> Result<(), crate::DiscoveryError> {
        let Some(list) = self.node1_cpulist else {
            return Err(crate::DiscoveryError::Unsupported);
        };
        map.push_node(0, b"0-1")
            .map_err(crate::DiscoveryError::Map)?;
        map.push_node(5, list).map_err(crate::DiscoveryError::Map)?;
        Ok(())
    }
}

#[test]
fn discovery_failure_falls_back_to_one_node_and_says_why() {
    use crate::{DiscoveryError, MapOrigin, NodeMapError};
    let discovering = |list| {
        Heap::new(Discovering {
            inner: SystemPageSource::new(),
            node1_cpulist: list,
        })
    };

    let good = discovering(Some(b"2-3\n"));
    assert_eq!(good.map_origin(), MapOrigin::Discovered);
    assert_eq!(good.nodes(), 2);
    assert_eq!(good.node_of_cpu(3), 1);
    assert_eq!(good.node_map().os_node(1), 5);
    let p = good.alloc(1, Layout::from_size_align(64, 8).unwrap());
    assert_eq!(
        good.source().inner.node_of(p),
        Some(5),
        "bound to OS node 5"
    );
    // SAFETY: live, freed once.
    unsafe { good.free(p) };

    let bad = discovering(Some(b"2-x\n"));
    assert_eq!(
        bad.map_origin(),
        MapOrigin::Fallback(DiscoveryError::Map(NodeMapError::BadCpulist {
            os_node: 5,
            offset: 0
        }))
    );
    assert_eq!(
        bad.nodes(),
        1,
        "a malformed machine description runs as one node"
    );
    let p = bad.alloc(0, Layout::from_size_align(64, 8).unwrap());
    assert!(!p.is_null(), "the fallback heap still serves memory");
    // SAFETY: live, freed once.
    unsafe { bad.free(p) };

    let none = discovering(None);
    assert_eq!(
        none.map_origin(),
        MapOrigin::Fallback(DiscoveryError::Unsupported)
    );
    assert_eq!(fake_heap(2).map_origin(), MapOrigin::Given);
}

/// The core paths in a size Miri runs in minutes: two nodes, remote frees, depot trades,
/// large objects, realloc, trim, and dropping the heap (no leak).
/// `cargo +nightly miri test -p manycore-alloc --lib miri_`
#[test]
fn miri_core_paths_two_nodes() {
    let heap = fake_heap(2);
    let mut c0 = Cache::new(0, false);
    let mut c1 = Cache::new(1, false);
    let mut ps = Vec::new();
    for i in 0..150usize {
        let size = [8, 24, 300][i % 3];
        let p = c0.alloc(&heap, size, 8);
        fill(p, size, i as u8);
        ps.push((p, size, i as u8));
    }
    for &(p, size, tag) in &ps {
        check(p, size, tag);
        // SAFETY: live, freed once, by the other node's cache (remote path).
        unsafe { c1.free(&heap, p) };
    }
    let big = c1.alloc(&heap, 50_000, 64);
    fill(big, 50_000, 9);
    // SAFETY: live block.
    let big = unsafe { c1.realloc(&heap, big, 64, 50_000, 70_000) };
    check(big, 50_000, 9);
    let small = c0.alloc(&heap, 40, 16);
    // SAFETY: live block, grown out of its class.
    let small = unsafe { c0.realloc(&heap, small, 16, 40, 5000) };
    // SAFETY: live blocks freed once.
    unsafe {
        c0.free(&heap, big);
        c1.free(&heap, small);
    }
    c0.flush(&heap);
    c1.flush(&heap);
    heap.trim();
    assert_eq!(
        heap.stats(0).remote_frees(),
        151,
        "150 blocks and the realloc result"
    );
    assert_eq!(
        heap.stats(0).bytes_in_use() + heap.stats(1).bytes_in_use(),
        0
    );
    drop(heap);
}

/// Attacks cpu_cache invariant 4 (a loaded magazine's fill level lives in the class slot and
/// is written back whenever the magazine leaves it): live counts that hover around magazine
/// boundaries force Bonwick swaps on both the alloc and the free side, depot trades, refills
/// and flushes with blocks live. A count lost or written back stale would hand one block out
/// twice (caught by the live set), lose or resurrect a block (contents check, final counters)
/// or miscount (allocs and frees must match what was done, exactly).
/// Small enough for Miri: `cargo +nightly miri test -p manycore-alloc --lib miri_`.
#[test]
fn miri_magazine_counts_survive_swaps_trades_and_flushes() {
    // 16 KiB: 4 blocks per magazine (through `alloc_general`); 1 KiB: 64 per magazine
    // (through the inlined small-size fast path).
    // 48 B: an owned class (`owned`: no depot, magazines drained into and refilled from
    // the cache's own slab).
    for size in [16 << 10, 1 << 10, 48] {
        magazine_boundaries(size);
    }
}

fn magazine_boundaries(size: usize) {
    let heap = fake_heap(1);
    let mut cache = Cache::new(0, false);
    let cap = crate::size_class::MAGAZINE_CAPACITY
        [crate::size_class::class_for(size, 8).expect("a small class")] as usize;
    let mut live: Vec<(*mut u8, u8)> = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    let mut ops = 0u64;
    // Live-count targets around 0, 1, 2 and 3 magazines' worth.
    let targets = [
        cap + 1,
        cap - 1,
        2 * cap + 1,
        1,
        3 * cap,
        cap,
        2 * cap - 1,
        0,
    ];
    for (round, &target) in targets.iter().cycle().take(3 * targets.len()).enumerate() {
        while live.len() < target {
            let p = cache.alloc(&heap, size, 8);
            assert!(!p.is_null(), "{size} B round {round}: allocation failed");
            assert!(
                seen.insert(p as usize),
                "{size} B round {round}: block {p:p} handed out while live"
            );
            let tag = (ops % 251) as u8;
            // Only the ends of the block: Miri time grows with bytes touched.
            fill(p, 8, tag);
            // SAFETY: a live block of `size` bytes.
            fill(unsafe { p.add(size - 8) }, 8, tag);
            live.push((p, tag));
            ops += 1;
        }
        while live.len() > target {
            // Alternate LIFO and FIFO order so different blocks come back each round.
            let (p, tag) = if round % 2 == 0 {
                live.pop().unwrap()
            } else {
                live.remove(0)
            };
            check(p, 8, tag);
            // SAFETY: as above.
            check(unsafe { p.add(size - 8) }, 8, tag);
            seen.remove(&(p as usize));
            // SAFETY: live, freed once.
            unsafe { cache.free(&heap, p) };
        }
        if round % 5 == 4 {
            // Magazines leave the slots with blocks live elsewhere.
            cache.flush(&heap);
        }
    }
    cache.flush(&heap);
    let s = heap.stats(0);
    assert_eq!(s.allocs(), ops, "{size} B: every allocation counted once");
    assert_eq!(s.frees(), ops, "{size} B: every free counted once");
    assert_eq!(s.bytes_in_use(), 0, "{size} B");
    // A block lost with a stale count keeps its slab busy: after a trim only the node state
    // and the magazine metadata segment may stay.
    heap.trim();
    let after = heap.source().held_bytes();
    assert!(
        after <= crate::node::NodeState::PAGES_BYTES + crate::SEGMENT_BYTES,
        "{size} B: {after} bytes still held after flush and trim: blocks were lost"
    );
}

/// A cache flush (thread exit) hands a magazine at least half full to the depot whole, and the
/// next cache's first allocation takes it by trade: it gets the last block the flushed cache
/// freed, not a block refilled from the slabs. A magazine less than half full is drained.
#[test]
fn flushed_half_full_magazine_reaches_the_next_cache_whole() {
    let heap = fake_heap(1);
    let size = 256;
    let c = crate::size_class::class_for(size, 8).unwrap();
    let cap = crate::size_class::MAGAZINE_CAPACITY[c] as usize;
    let depot_full = |heap: &Heap<SystemPageSource>| {
        heap.node_state(0).unwrap().classes[c]
            .lock
            .with(|inner| inner.depot.full_len())
    };
    for (kept, whole) in [(cap / 2, true), (cap / 2 - 1, false)] {
        let mut first = Cache::new(0, false);
        // Allocating `cap` blocks leaves the loaded magazine empty; freeing `kept` of them
        // refills it to `kept`.
        let ps: Vec<_> = (0..cap).map(|_| first.alloc(&heap, size, 8)).collect();
        for &p in &ps[..kept] {
            // SAFETY: live, freed once.
            unsafe { first.free(&heap, p) };
        }
        let before = depot_full(&heap);
        first.flush(&heap);
        assert_eq!(
            depot_full(&heap),
            before + u32::from(whole),
            "{kept} of {cap}: kept whole = {whole}"
        );
        let mut next = Cache::new(0, false);
        let q = next.alloc(&heap, size, 8);
        if whole {
            assert_eq!(
                q,
                ps[kept - 1],
                "the next cache pops the flushed magazine's top"
            );
        }
        // SAFETY: live blocks, freed once.
        unsafe {
            next.free(&heap, q);
            for &p in &ps[kept..] {
                first.free(&heap, p);
            }
        }
        first.flush(&heap);
        next.flush(&heap);
    }
    heap.trim();
    assert_eq!(heap.stats(0).bytes_in_use(), 0);
}

const LINE_BYTES: usize = 64;

/// Passive false sharing (Hoard's cache-scratch): blocks of a small class carved for cache
/// `a` and freed by cache `b` must not come back out of `b` (which would have `b`'s thread use
/// a block whose neighbours `a`'s thread still uses); none of `b`'s blocks may share a cache
/// line with `a`'s; and the freed blocks reach `a`, whose next refill hands them out again.
#[test]
fn foreign_frees_of_small_blocks_go_home_never_into_the_freeing_cache() {
    for size in [8, 24, 40, 56] {
        let heap = fake_heap(1);
        let mut a = Cache::new(0, false);
        let mut b = Cache::new(0, false);
        let c = crate::size_class::class_for(size, 8).unwrap();
        assert!(crate::owned::is_owned_class(c));
        let cap = crate::size_class::MAGAZINE_CAPACITY[c] as usize;
        // `a` takes half its first magazine; `b` frees those blocks.
        let given: Vec<*mut u8> = (0..cap / 2).map(|_| a.alloc(&heap, size, 8)).collect();
        let a_lines: HashSet<usize> = given
            .iter()
            .flat_map(|&p| [p.addr() / LINE_BYTES, (p.addr() + size - 1) / LINE_BYTES])
            .collect();
        for &p in &given {
            // SAFETY: live, freed once.
            unsafe { b.free(&heap, p) };
        }
        let given_set: HashSet<usize> = given.iter().map(|p| p.addr()).collect();
        // `b` allocates and frees far more than a magazine's worth: never one of `a`'s
        // blocks, never a line `a`'s blocks touch.
        let mut mine = Vec::new();
        for round in 0..4 * cap {
            let q = b.alloc(&heap, size, 8);
            assert!(
                !given_set.contains(&q.addr()),
                "{size} B: b reused a's block {q:p}"
            );
            for line in [q.addr() / LINE_BYTES, (q.addr() + size - 1) / LINE_BYTES] {
                assert!(
                    !a_lines.contains(&line),
                    "{size} B: b's block {q:p} shares a line with a's blocks"
                );
            }
            mine.push(q);
            if round % 3 == 2 {
                // SAFETY: live, freed once.
                unsafe { b.free(&heap, mine.swap_remove(0)) };
            }
        }
        // They reached `a`: after the rest of its loaded magazine, its next refill puts every
        // one of them in the magazine (under the blocks carved to fill it up).
        let next: HashSet<usize> = (0..2 * cap)
            .map(|_| a.alloc(&heap, size, 8).addr())
            .collect();
        assert!(
            given_set.is_subset(&next),
            "{size} B: blocks freed by b did not come back to their owner a"
        );
        for p in next {
            // SAFETY: live, freed once (by `a`, their owner).
            unsafe { a.free(&heap, p as *mut u8) };
        }
        for p in mine {
            // SAFETY: live, freed once.
            unsafe { a.free(&heap, p) };
        }
        a.flush(&heap);
        b.flush(&heap);
        let st = heap.stats(0);
        assert_eq!(st.allocs(), st.frees(), "{size} B: {st:?}");
        assert_eq!(st.bytes_in_use(), 0, "{size} B");
        heap.trim();
        assert!(
            heap.source().held_bytes()
                <= crate::node::NodeState::PAGES_BYTES + crate::SEGMENT_BYTES,
            "{size} B: slabs still held after every block came back"
        );
    }
}

/// The hand-offs of slab ownership with blocks in flight: the owner flushes (thread exit)
/// while other caches' frees wait on its thread-free list; another cache adopts the slab
/// while the first cache's users still hold its blocks; those are freed through the first
/// cache and must reach the adopter. No block is lost or handed out twice, and every slab
/// comes back. Small enough for Miri.
#[test]
fn miri_owned_slabs_survive_flush_adoption_and_stale_frees() {
    let heap = fake_heap(1);
    let size = 16;
    let mut a = Cache::new(0, false);
    let mut b = Cache::new(0, false);
    let mut live: Vec<*mut u8> = (0..100).map(|_| a.alloc(&heap, size, 8)).collect();
    let mut seen: HashSet<usize> = live.iter().map(|p| p.addr()).collect();
    assert_eq!(seen.len(), live.len());
    for (i, &p) in live.iter().enumerate() {
        fill(p, size, i as u8);
    }
    // `b` frees a third: they wait on a's slab's thread-free list.
    for p in live.drain(..33) {
        seen.remove(&p.addr());
        // SAFETY: live, freed once.
        unsafe { b.free(&heap, p) };
    }
    // `a` exits: its slab becomes shared with the pending blocks folded in.
    a.flush(&heap);
    // `c` adopts the shared partial slab while 67 of its blocks are still live.
    let mut c = Cache::new(0, false);
    for _ in 0..40 {
        let q = c.alloc(&heap, size, 8);
        assert!(seen.insert(q.addr()), "block {q:p} handed out twice");
        live.push(q);
    }
    // Everything is freed through `a` again (its cache reused after the flush), then `b`.
    for (k, p) in live.drain(..).enumerate() {
        // SAFETY: live, freed once.
        unsafe {
            if k % 2 == 0 {
                a.free(&heap, p);
            } else {
                b.free(&heap, p);
            }
        }
    }
    for cache in [&mut a, &mut b, &mut c] {
        cache.flush(&heap);
    }
    let st = heap.stats(0);
    assert_eq!(st.allocs(), 140);
    assert_eq!(st.frees(), 140);
    assert_eq!(st.bytes_in_use(), 0);
    heap.trim();
    assert!(
        heap.source().held_bytes() <= crate::node::NodeState::PAGES_BYTES + crate::SEGMENT_BYTES,
        "slabs still held after every block came back: blocks were lost"
    );
}

/// A thread's exit hands its magazines to the depot whole; two fresh caches that take them
/// must still not be handed neighbouring blocks: the first adopts the slab the blocks came
/// from, the second sends the blocks of that (now owned) slab to their owner and refills from
/// a slab of its own.
#[test]
fn fresh_caches_taking_an_exited_caches_magazines_share_no_line() {
    let heap = fake_heap(1);
    let size = 8;
    let c = crate::size_class::class_for(size, 8).unwrap();
    let cap = crate::size_class::MAGAZINE_CAPACITY[c] as usize;
    let mut x = Cache::new(0, false);
    let blocks: Vec<*mut u8> = (0..2 * cap).map(|_| x.alloc(&heap, size, 8)).collect();
    // Even blocks first, then odd ones: each magazine then holds one of every two
    // neighbours, so the two magazines cover the same lines.
    let evens = blocks.iter().step_by(2);
    for &p in evens.chain(blocks.iter().skip(1).step_by(2)) {
        // SAFETY: live, freed once.
        unsafe { x.free(&heap, p) };
    }
    // Both magazines are full: the flush gives them to the depot whole.
    x.flush(&heap);
    let depot_full = heap.node_state(0).unwrap().classes[c]
        .lock
        .with(|inner| inner.depot.full_len());
    assert_eq!(
        depot_full, 2,
        "the flushed magazines reached the depot whole"
    );
    let mut a = Cache::new(0, false);
    let mut b = Cache::new(0, false);
    let mut lines = [HashSet::new(), HashSet::new()];
    let mut live = Vec::new();
    for _ in 0..3 * cap {
        for (k, cache) in [&mut a, &mut b].into_iter().enumerate() {
            let p = cache.alloc(&heap, size, 8);
            lines[k].insert(p.addr() / LINE_BYTES);
            live.push((k, p));
        }
    }
    assert_eq!(
        lines[0].intersection(&lines[1]).count(),
        0,
        "two live caches were handed blocks of one cache line"
    );
    for (k, p) in live {
        // SAFETY: live, freed once (by the cache that allocated it).
        unsafe { [&mut a, &mut b][k].free(&heap, p) };
    }
    a.flush(&heap);
    b.flush(&heap);
    let st = heap.stats(0);
    assert_eq!(st.allocs(), st.frees());
    assert_eq!(st.bytes_in_use(), 0);
}

/// A forked child has only the forking thread: the other threads' caches, and the slabs they
/// owned, are orphans. `disown_all_slabs` (run by the child's fork handler) must give those
/// slabs up with the frees queued on them, so the child reuses the blocks it frees.
#[test]
fn forked_child_gives_up_the_slabs_of_threads_it_does_not_have() {
    let heap = fake_heap(1);
    let size = 24;
    let mut gone = Cache::new(0, false);
    let blocks: Vec<*mut u8> = (0..100).map(|_| gone.alloc(&heap, size, 8)).collect();
    // SAFETY: a live block of this heap.
    let seg = crate::segment::segment_of(blocks[0]);
    // SAFETY: as above.
    assert_ne!(unsafe { crate::segment::owner_at(seg, blocks[0]) }, 0);
    // `gone`'s thread is not in the child (its cache is never used or flushed again); the
    // child's thread frees its blocks.
    let mut child = Cache::new(0, false);
    for &p in &blocks {
        // SAFETY: live, freed once.
        unsafe { child.free(&heap, p) };
    }
    child.flush(&heap);
    // SAFETY: no cache in use owns a slab (`child` flushed; `gone` is never used again).
    unsafe { heap.disown_all_slabs() };
    // SAFETY: as above.
    assert_eq!(unsafe { crate::segment::owner_at(seg, blocks[0]) }, 0);
    // SAFETY: as above.
    let slab = unsafe { crate::segment::slab_of(seg, blocks[0]) };
    // SAFETY: a slab of this heap; nothing else runs.
    unsafe {
        assert!(!(*slab).xfree.is_open(), "the orphan's list is closed");
        // Only the blocks left in the dead cache's magazine are still out.
        let cap =
            crate::size_class::MAGAZINE_CAPACITY[crate::size_class::class_for(size, 8).unwrap()];
        assert_eq!(
            (*slab).used,
            2 * cap - 100,
            "the queued frees were folded into the slab"
        );
    }
    // The child's next allocations reuse them.
    let mut again = Cache::new(0, false);
    let set: HashSet<usize> = blocks.iter().map(|p| p.addr()).collect();
    let reused = (0..200)
        .map(|_| again.alloc(&heap, size, 8).addr())
        .filter(|a| set.contains(a))
        .count();
    assert!(reused > 0, "blocks the child freed are not reused");
}
