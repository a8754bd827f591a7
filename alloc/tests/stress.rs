//! Multi-threaded stress with cross-thread frees; every byte of every block is checked.
//!
//! Operation counts: 10^7 allocations and frees through `NumaSlab` (4 threads), in every build,
//! checked against the heap's own counters at the end: `cargo test -p manycore-alloc --test
//! stress` takes 9-34 s in a debug build on the project's shared 2-vCPU VM (depending on its
//! load), 1-4 s with `--release`. The four-fake-node run does a fifth of that.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;
use std::thread;

use manycore_alloc::size_class::{class_bytes, class_for};
use manycore_alloc::{Cache, Heap, NodeMap, NumaSlab, SystemPageSource};

/// Allocations plus frees over all threads of the `NumaSlab` run.
const TOTAL_OPS: u64 = 10_000_000;
const THREADS: u64 = 4;

static A: NumaSlab = NumaSlab::new();

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A live block: address, size, alignment, tag.
#[derive(Clone, Copy)]
struct Block(usize, usize, usize, u64);
// SAFETY: a Block is an owned allocation handed between threads by value.
unsafe impl Send for Block {}

fn size_for(r: &mut Rng) -> (usize, usize) {
    let x = r.next() % 1000;
    let size = if x < 800 {
        1 + (r.next() % 256) as usize
    } else if x < 998 {
        256 + (r.next() % 3840) as usize
    } else {
        33_000 + (r.next() % 200_000) as usize
    };
    let align = if r.next() % 8 == 0 { 64 } else { 8 };
    (size, align)
}

fn fill(b: Block) {
    let p = b.0 as *mut u8;
    let byte = (b.3 % 251) as u8;
    // SAFETY: `b` is a live block of b.1 bytes.
    unsafe {
        std::ptr::write_bytes(p, byte, b.1);
        if b.1 >= 8 {
            (p as *mut u64).write_unaligned(b.3);
        }
    }
}

fn verify(b: Block) {
    let p = b.0 as *const u8;
    let byte = (b.3 % 251) as u8;
    // SAFETY: `b` is a live block of b.1 bytes.
    let s = unsafe { std::slice::from_raw_parts(p, b.1) };
    let from = if b.1 >= 8 {
        // SAFETY: at least 8 bytes.
        let tag = unsafe { (p as *const u64).read_unaligned() };
        assert_eq!(tag, b.3, "tag of {p:p}");
        8
    } else {
        0
    };
    assert!(
        s[from..].iter().all(|&x| x == byte),
        "block {p:p} ({} B) corrupted",
        b.1
    );
    assert_eq!(b.0 % b.2, 0, "alignment");
}

/// Each thread allocates, frees its own blocks, and sends every fourth block to the next thread
/// (which checks and frees it): `alloc` and `free` are the two halves of `GlobalAlloc`-like
/// operations, `free` possibly on another thread.
fn run(
    threads: u64,
    ops_per_thread: u64,
    alloc: impl Fn(u64, Layout) -> *mut u8 + Sync,
    free: impl Fn(u64, *mut u8, Layout) + Sync,
    finish: impl Fn(u64) + Sync,
) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel::<Vec<Block>>()).unzip();
    thread::scope(|s| {
        for (t, rx) in rxs.into_iter().enumerate() {
            let tx = txs[(t + 1) % threads as usize].clone();
            let (alloc, free, finish) = (&alloc, &free, &finish);
            s.spawn(move || {
                let t = t as u64;
                let mut r = Rng(0x9e37_79b9 ^ ((t + 1) * 0x1234_5678_9abc));
                let mut live: Vec<Block> = Vec::new();
                let mut outgoing = Vec::new();
                let mut ops = 0;
                let mut tag = t << 48;
                while ops < ops_per_thread {
                    if live.len() < 2000 && (live.is_empty() || r.next() % 2 == 0) {
                        let (size, align) = size_for(&mut r);
                        let l = Layout::from_size_align(size, align).unwrap();
                        let p = alloc(t, l);
                        assert!(!p.is_null());
                        tag += 1;
                        let b = Block(p as usize, size, align, tag);
                        fill(b);
                        if r.next() % 4 == 0 {
                            outgoing.push(b);
                            if outgoing.len() == 64 {
                                tx.send(std::mem::take(&mut outgoing)).unwrap();
                            }
                        } else {
                            live.push(b);
                        }
                    } else {
                        let i = (r.next() as usize) % live.len();
                        let b = live.swap_remove(i);
                        verify(b);
                        free(
                            t,
                            b.0 as *mut u8,
                            Layout::from_size_align(b.1, b.2).unwrap(),
                        );
                    }
                    ops += 1;
                    while let Ok(batch) = rx.try_recv() {
                        for b in batch {
                            verify(b);
                            free(
                                t,
                                b.0 as *mut u8,
                                Layout::from_size_align(b.1, b.2).unwrap(),
                            );
                            ops += 1;
                        }
                    }
                }
                if !outgoing.is_empty() {
                    tx.send(outgoing).unwrap();
                }
                drop(tx);
                for b in live {
                    verify(b);
                    free(
                        t,
                        b.0 as *mut u8,
                        Layout::from_size_align(b.1, b.2).unwrap(),
                    );
                }
                // Blocks still arriving from the previous thread.
                for batch in rx {
                    for b in batch {
                        verify(b);
                        free(
                            t,
                            b.0 as *mut u8,
                            Layout::from_size_align(b.1, b.2).unwrap(),
                        );
                    }
                }
                finish(t);
            });
        }
        drop(txs);
    });
}

#[test]
fn stress_numaslab_cross_thread_frees_keep_every_byte() {
    run(
        THREADS,
        TOTAL_OPS / THREADS,
        // SAFETY: non-zero layouts; blocks are freed once with their layout.
        |_, l| unsafe { A.alloc(l) },
        // SAFETY: as above.
        |_, p, l| unsafe { A.dealloc(p, l) },
        |_| A.flush_thread_cache(),
    );
    A.trim();
    let st = A.stats(0);
    // `A` serves only this test, so its counters are this test's operations.
    let ops = st.allocs() + st.frees() + st.large_allocs + st.large_frees;
    assert!(
        ops >= TOTAL_OPS,
        "{ops} allocations and frees, fewer than the {TOTAL_OPS} the stress test promises"
    );
    // What may stay in use: the per-thread caches themselves (blocks of the heap), until each
    // thread's exit hook frees its own.
    let cache_class = class_for(std::mem::size_of::<Cache>(), 8).unwrap();
    let caches = st.classes[cache_class].bytes_in_use();
    assert!(caches <= 5 * class_bytes(cache_class) as u64, "{caches}");
    assert_eq!(
        st.bytes_in_use() - caches,
        0,
        "every block came back: {st:?}"
    );
}

#[test]
fn stress_four_fake_nodes_remote_frees_keep_every_byte() {
    // Each thread is a CPU of its own node; every cross-thread free is a remote free.
    let heap = Heap::with_node_map(SystemPageSource::new(), NodeMap::fake(4, 4).unwrap());
    let caches: Vec<std::sync::Mutex<Cache>> = (0..4)
        .map(|n| std::sync::Mutex::new(Cache::new(n, false)))
        .collect();
    run(
        4,
        TOTAL_OPS / 4 / 5,
        |t, l| {
            caches[t as usize]
                .lock()
                .unwrap()
                .alloc(&heap, l.size(), l.align())
        },
        // SAFETY: blocks of `heap`, freed once.
        |t, p, _| unsafe { caches[t as usize].lock().unwrap().free(&heap, p) },
        |t| caches[t as usize].lock().unwrap().flush(&heap),
    );
    for c in &caches {
        c.lock().unwrap().flush(&heap);
    }
    heap.trim();
    for n in 0..4 {
        let st = heap.stats(n);
        assert_eq!(st.bytes_in_use(), 0, "node {n}: {st:?}");
        assert!(st.remote_frees() > 0, "node {n} received remote frees");
    }
}
