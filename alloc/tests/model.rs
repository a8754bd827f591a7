//! Model test: random alloc / realloc / free sequences on two caches of a two-node fake
//! machine (so frees cross nodes), against a model of the live blocks. Properties: no two live
//! blocks overlap, alignment is honoured, contents survive until free and across realloc.

use std::collections::BTreeMap;

use manycore_alloc::{Cache, Heap, NodeMap, SystemPageSource};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        cache: usize,
        size: usize,
        align_log2: u32,
    },
    Realloc {
        pick: usize,
        new_size: usize,
    },
    Free {
        pick: usize,
        by: usize,
    },
    Flush {
        cache: usize,
    },
    Trim,
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1usize..300,
        3 => 300usize..5000,
        1 => 5000usize..40_000,
        1 => 40_000usize..300_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..2, size(), 0u32..13).prop_map(|(cache, size, align_log2)| Op::Alloc { cache, size, align_log2 }),
        2 => (any::<usize>(), size()).prop_map(|(pick, new_size)| Op::Realloc { pick, new_size }),
        4 => (any::<usize>(), 0usize..2).prop_map(|(pick, by)| Op::Free { pick, by }),
        1 => (0usize..2).prop_map(|cache| Op::Flush { cache }),
        1 => Just(Op::Trim),
    ]
}

/// A live block in the model.
#[derive(Debug, Clone, Copy)]
struct Live {
    size: usize,
    align: usize,
    seed: u8,
}

fn pattern(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: a live block of at least `len` bytes.
        unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
    }
}

fn holds(p: *mut u8, len: usize, seed: u8) -> bool {
    // SAFETY: a live block of at least `len` bytes.
    (0..len).all(|i| unsafe { p.add(i).read() } == seed.wrapping_add(i as u8))
}

fn check_disjoint(
    live: &BTreeMap<usize, Live>,
    at: usize,
    size: usize,
) -> Result<(), TestCaseError> {
    if let Some((&a, l)) = live.range(..=at).next_back() {
        prop_assert!(
            a + l.size.max(1) <= at,
            "{at:#x} overlaps the block at {a:#x}"
        );
    }
    if let Some((&b, _)) = live.range(at + 1..).next() {
        prop_assert!(
            at + size.max(1) <= b,
            "{at:#x}+{size} overlaps the block at {b:#x}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 64 } else { 256 }, .. ProptestConfig::default() })]

    #[test]
    fn random_alloc_realloc_free_keeps_blocks_disjoint_aligned_and_intact(ops in prop::collection::vec(op(), 1..300)) {
        let heap = Heap::with_node_map(SystemPageSource::new(), NodeMap::fake(2, 2).unwrap());
        let mut caches = [Cache::new(0, false), Cache::new(1, false)];
        let mut live: BTreeMap<usize, Live> = BTreeMap::new();
        let mut seed = 0u8;
        for op in ops {
            match op {
                Op::Alloc { cache, size, align_log2 } => {
                    let align = 1usize << align_log2;
                    let p = caches[cache].alloc(&heap, size, align);
                    prop_assert!(!p.is_null());
                    prop_assert_eq!(p as usize % align, 0);
                    check_disjoint(&live, p as usize, size)?;
                    seed = seed.wrapping_add(31);
                    pattern(p, size, seed);
                    live.insert(p as usize, Live { size, align, seed });
                }
                Op::Realloc { pick, new_size } => {
                    if live.is_empty() { continue; }
                    let (&a, &l) = live.iter().nth(pick % live.len()).unwrap();
                    prop_assert!(holds(a as *mut u8, l.size, l.seed));
                    live.remove(&a);
                    // SAFETY: a live block with its size and alignment.
                    let q = unsafe { caches[0].realloc(&heap, a as *mut u8, l.align, l.size, new_size) };
                    prop_assert!(!q.is_null());
                    prop_assert_eq!(q as usize % l.align, 0);
                    prop_assert!(holds(q, l.size.min(new_size), l.seed), "realloc kept the prefix");
                    check_disjoint(&live, q as usize, new_size)?;
                    seed = seed.wrapping_add(31);
                    pattern(q, new_size, seed);
                    live.insert(q as usize, Live { size: new_size, align: l.align, seed });
                }
                Op::Free { pick, by } => {
                    if live.is_empty() { continue; }
                    let (&a, &l) = live.iter().nth(pick % live.len()).unwrap();
                    prop_assert!(holds(a as *mut u8, l.size, l.seed), "contents intact at free");
                    live.remove(&a);
                    // SAFETY: a live block, freed once (possibly by the other node's cache).
                    unsafe { caches[by].free(&heap, a as *mut u8) };
                }
                Op::Flush { cache } => caches[cache].flush(&heap),
                Op::Trim => heap.trim(),
            }
        }
        for (&a, &l) in &live {
            prop_assert!(holds(a as *mut u8, l.size, l.seed));
            // SAFETY: live blocks, freed once.
            unsafe { caches[0].free(&heap, a as *mut u8) };
        }
        for c in caches.iter_mut() { c.flush(&heap); }
        heap.trim();
        prop_assert_eq!(heap.stats(0).bytes_in_use() + heap.stats(1).bytes_in_use(), 0);
    }
}
