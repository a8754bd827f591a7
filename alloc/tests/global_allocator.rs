//! `NumaSlab` installed as the program's global allocator runs ordinary std code: threads,
//! channels, collections, strings, formatting, with blocks freed on other threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

use manycore_alloc::{CacheMode, NumaSlab};

#[global_allocator]
static A: NumaSlab = NumaSlab::new();

#[test]
fn std_program_runs_on_numaslab() {
    // Every heap allocation in this test binary goes through A; check that it did.
    let v: Vec<String> = (0..10_000).map(|i| format!("item-{i}")).collect();
    let total: usize = v.iter().map(String::len).sum();
    assert!(total > 60_000);

    let (tx, rx) = mpsc::channel::<Vec<u64>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut m = HashMap::new();
                for i in 0..20_000u64 {
                    m.insert(i, vec![i ^ t; (i % 17) as usize]);
                }
                for i in 0..2_000u64 {
                    // Freed by the consumer thread.
                    tx.send(vec![t * 1_000_000 + i; 1 + (i % 300) as usize])
                        .unwrap();
                }
                m.len()
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut by_thread = BTreeMap::new();
        for v in rx {
            let t = v[0] / 1_000_000;
            let i = v[0] % 1_000_000;
            assert_eq!(v.len(), 1 + (i % 300) as usize);
            assert!(
                v.iter().all(|&x| x == v[0]),
                "contents preserved across threads"
            );
            *by_thread.entry(t).or_insert(0) += 1;
        }
        by_thread
    });
    for p in producers {
        assert_eq!(p.join().unwrap(), 20_000);
    }
    let counts = consumer.join().unwrap();
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&c| c == 2_000));

    // Large objects and realloc growth through Vec.
    let mut big = Vec::new();
    for i in 0..3_000_000u32 {
        big.push(i);
    }
    assert_eq!(big[2_999_999], 2_999_999);
    drop(big);

    assert_eq!(A.cache_mode(), CacheMode::PerThread);
    A.trim();
    let st = A.stats(0);
    assert!(
        st.allocs() > 50_000,
        "the global allocator served this test: {}",
        st.allocs()
    );
    assert!(st.large_allocs > 0);
    assert!(st.pages_held_bytes > 0);
}

#[test]
fn threads_churn_and_objects_outlive_their_thread() {
    let mut survivors = Vec::new();
    for round in 0..20 {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                thread::spawn(move || {
                    let keep: Vec<Box<[u8; 100]>> = (0..500)
                        .map(|i| Box::new([(round + t + i) as u8; 100]))
                        .collect();
                    let tmp: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
                    drop(tmp);
                    (round, t, keep)
                })
            })
            .collect();
        for h in hs {
            survivors.push(h.join().unwrap());
        }
        if survivors.len() > 16 {
            let (r, t, keep) = survivors.remove(0);
            for (i, b) in keep.iter().enumerate() {
                assert!(b.iter().all(|&x| x == (r + t + i) as u8));
            }
        }
    }
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn zeroed_large_allocation_is_not_touched() {
    // `vec![0; n]` asks for zeroed memory; fresh mmap pages are already zero, so NumaSlab must
    // not write them (which would make all 256 MiB resident).
    let before = rss_kb();
    let v = vec![0u8; 256 << 20];
    let after = rss_kb();
    assert!(v.iter().step_by(4096).all(|&b| b == 0));
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
