//! Slab owners that exit while other threads free their small blocks.
//!
//! Blocks up to 128 B live in slabs owned by one thread's cache; other threads send their frees
//! of them back to the owner in batches (`manycore_alloc::owned`). This attacks the hand-offs
//! around an owner's exit: short-lived producers allocate tagged small blocks and pass them to
//! long-lived consumers, which free them while the producer gives its slabs up, and while the
//! next producer adopts them. A block folded into a slab twice, or lost, shows up as a block
//! handed out while live, a changed byte, a hang, or counters that disagree. (The narrowest
//! race here, a batch push that loses its CAS to the owner's close and bounces, is too rare to
//! hit reliably in a run; the loom model `loom_thread_frees_arrive_exactly_once_or_bounce`
//! covers it.)

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread;

use manycore_alloc::NumaSlab;

static A: NumaSlab = NumaSlab::new();

const PRODUCERS: usize = 60;
const BLOCKS_PER_PRODUCER: usize = 4000;
const CONSUMERS: usize = 2;
const BATCH: usize = 50;

#[derive(Clone, Copy)]
struct Block(usize, usize);

fn tag_of(addr: usize, size: usize) -> u8 {
    ((addr / 8) ^ size) as u8
}

#[test]
fn owners_exit_while_others_free_their_small_blocks() {
    let live: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    let (tx, rx) = mpsc::sync_channel::<Vec<Block>>(8);
    let rx = Mutex::new(rx);
    thread::scope(|s| {
        for _ in 0..CONSUMERS {
            let (rx, live) = (&rx, &live);
            s.spawn(move || {
                loop {
                    let got = rx.lock().unwrap().recv();
                    let Ok(batch) = got else { break };
                    for Block(p, size) in batch {
                        // SAFETY: a live block of `size` bytes handed over by its producer.
                        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
                        let t = tag_of(p, size);
                        assert!(bytes.iter().all(|&b| b == t), "block {p:#x} changed");
                        assert!(live.lock().unwrap().remove(&p));
                        // SAFETY: allocated by `A` with this layout, freed once.
                        unsafe {
                            A.dealloc(p as *mut u8, Layout::from_size_align(size, 8).unwrap())
                        };
                    }
                }
                // What the thread-exit hook does, done here so the counters are published
                // before the scope ends (a scoped thread counts as finished before its pthread
                // key destructors run).
                A.flush_thread_cache();
            });
        }
        for k in 0..PRODUCERS {
            let tx = tx.clone();
            let live = &live;
            // One producer at a time: it exits (flushing its cache, giving its slabs up) while
            // the consumers still free its blocks, and the next one adopts the slabs.
            thread::scope(|ps| {
                ps.spawn(move || {
                    let mut batch = Vec::with_capacity(BATCH);
                    for i in 0..BLOCKS_PER_PRODUCER {
                        let size = 8 + (i * 7 + k) % 121;
                        let l = Layout::from_size_align(size, 8).unwrap();
                        // SAFETY: non-zero layout.
                        let p = unsafe { A.alloc(l) };
                        assert!(!p.is_null());
                        assert!(
                            live.lock().unwrap().insert(p as usize),
                            "block {p:p} handed out while live"
                        );
                        // SAFETY: a fresh block of `size` bytes.
                        unsafe { p.write_bytes(tag_of(p as usize, size), size) };
                        batch.push(Block(p as usize, size));
                        if batch.len() == BATCH {
                            tx.send(std::mem::take(&mut batch)).unwrap();
                        }
                    }
                    tx.send(batch).unwrap();
                    // Give the slabs up now, as the exit hook would, while the consumers
                    // still free this producer's blocks.
                    A.flush_thread_cache();
                });
            });
        }
        drop(tx);
    });
    assert!(live.lock().unwrap().is_empty());
    A.trim();
    let st = A.stats(0);
    let small: u64 = (0..manycore_alloc::owned::OWNED_CLASSES)
        .map(|c| st.classes[c].bytes_in_use())
        .sum();
    assert_eq!(small, 0, "every small block came back: {st:?}");
}
