//! Steal tiers: for each CPU, the other online CPUs grouped by increasing distance.
//!
//! Tier order: SMT siblings (same core), shared L2, shared LLC, same NUMA node, then the other
//! nodes in classes of equal SLIT distance, nearest first. Each tier holds only CPUs not already in
//! an earlier tier, so every other CPU appears exactly once in a CPU's order. Empty tiers are
//! dropped (no SMT, no L2 information, an L2 that is the LLC, ...).
//!
//! The hierarchy need not nest: when an LLC spans two nodes, the LLC tier holds the CPUs of the
//! other node that share it, and those CPUs do not reappear in the remote tiers.
//!
//! Memory stays O(levels · CPUs + nodes · CPUs) rather than O(CPUs²). Where the hierarchy nests
//! (core ⊆ L2 ⊆ LLC ⊆ node), each group's members are stored twice back to back with every
//! sub-group contiguous, so "my group minus my sub-group" is one window of that list, shared by
//! all CPUs of the sub-group; inside a tier, CPUs therefore come in ring order starting after the
//! thief's own block. Where a level does not nest (an LLC spanning nodes), the list depends on
//! the groups that bound it and is memoized by their ids. Remote tiers are shared per node.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::model::Topology;

/// How far a victim is from the thief.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TierKind {
    /// Another hardware thread of the same core.
    Smt,
    /// Shares the L2 cache.
    L2,
    /// Shares the last-level cache.
    Llc,
    /// Same NUMA node, no shared cache.
    Node,
    /// Another NUMA node.
    Remote,
}

impl TierKind {
    /// All kinds, nearest first.
    pub const ALL: [TierKind; 5] = [
        TierKind::Smt,
        TierKind::L2,
        TierKind::Llc,
        TierKind::Node,
        TierKind::Remote,
    ];

    /// A short lowercase name (`smt`, `l2`, `llc`, `node`, `remote`).
    pub fn name(self) -> &'static str {
        match self {
            TierKind::Smt => "smt",
            TierKind::L2 => "l2",
            TierKind::Llc => "llc",
            TierKind::Node => "node",
            TierKind::Remote => "remote",
        }
    }

    /// Index in [`TierKind::ALL`] (for per-tier counters).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One tier of a CPU's steal order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StealTier<'a> {
    /// How near.
    pub kind: TierKind,
    /// SLIT distance from the thief's node to this tier's node(s) (the local distance for local
    /// tiers).
    pub distance: u32,
    /// Logical CPU indices: in ring order starting after the thief's own group where the
    /// hierarchy nests, increasing otherwise. Each other CPU appears in exactly one tier.
    pub cpus: &'a [u32],
}

/// A CPU's tiers, nearest first.
#[derive(Clone, Copy, Debug)]
pub struct StealOrder<'a> {
    tiers: &'a [TierRec],
    pool: &'a [u32],
}

impl<'a> StealOrder<'a> {
    /// Number of (non-empty) tiers.
    #[inline]
    pub fn len(&self) -> usize {
        self.tiers.len()
    }

    /// Whether the CPU has no other CPU to steal from.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// The kind of tier `i`, without building its CPU list.
    #[inline]
    pub fn kind(&self, i: usize) -> Option<TierKind> {
        self.tiers.get(i).map(|t| t.kind)
    }

    /// Tier `i`, nearest first.
    #[inline]
    pub fn get(&self, i: usize) -> Option<StealTier<'a>> {
        let t = self.tiers.get(i)?;
        Some(StealTier {
            kind: t.kind,
            distance: t.distance,
            cpus: &self.pool[t.start as usize..(t.start + t.len) as usize],
        })
    }

    /// Iterates the tiers nearest first.
    pub fn iter(&self) -> impl Iterator<Item = StealTier<'a>> + 'a {
        let this = *self;
        (0..self.tiers.len()).filter_map(move |i| this.get(i))
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TierRec {
    kind: TierKind,
    distance: u32,
    start: u32,
    len: u32,
}

/// Precomputed steal tiers for every CPU.
#[derive(Clone, Debug, Default)]
pub(crate) struct StealTiers {
    /// Per CPU: `(first, count)` in `tiers`.
    per_cpu: Vec<(u32, u32)>,
    tiers: Vec<TierRec>,
    /// Shared CPU lists referenced by `tiers`.
    pool: Vec<u32>,
}

/// Local group levels, innermost first.
const CORE: usize = 0;
const L2: usize = 1;
const LLC: usize = 2;
const NODE: usize = 3;
const LOCAL_KINDS: [TierKind; 4] = [TierKind::Smt, TierKind::L2, TierKind::Llc, TierKind::Node];

/// Group identity: a tag saying which table the id indexes, so a missing L2 can fall back to the
/// core group and still compare equal for the same CPUs.
type Gid = (u8, u32);
const TAG_CORE: u8 = 0;
const TAG_CACHE: u8 = 1;
const TAG_NODE: u8 = 2;
/// A single CPU as its own "group" (the block removed from the SMT tier).
const TAG_SELF: u8 = 3;

/// A group's members stored twice back to back, ordered so that each sub-group is one
/// contiguous block. For a CPU whose sub-group block is `[s, s + len)`, the rest of the group is
/// the window `[s + len, s + group_len)` of the doubled list: one slice, shared by every CPU of
/// the sub-group, in ring order starting after the CPU's own block.
struct Rotated {
    base: u32,
    len: u32,
    /// Sub-group -> (offset of its block, block length).
    blocks: BTreeMap<Gid, (u32, u32)>,
}

impl Rotated {
    fn build(
        topo: &Topology,
        pool: &mut Vec<u32>,
        group: Gid,
        sub: impl Fn(usize) -> Gid,
    ) -> Rotated {
        let members = members(topo, group);
        // Order sub-groups by first appearance (members are in logical, i.e. tree, order).
        let mut first: BTreeMap<Gid, usize> = BTreeMap::new();
        for (i, &x) in members.iter().enumerate() {
            first.entry(sub(x)).or_insert(i);
        }
        let mut ordered: Vec<usize> = members.to_vec();
        ordered.sort_by_key(|&x| (first[&sub(x)], x));
        let mut blocks: BTreeMap<Gid, (u32, u32)> = BTreeMap::new();
        for (i, &x) in ordered.iter().enumerate() {
            let e = blocks.entry(sub(x)).or_insert((i as u32, 0));
            e.1 += 1;
        }
        let base = pool.len() as u32;
        pool.extend(ordered.iter().map(|&x| x as u32));
        pool.extend(ordered.iter().map(|&x| x as u32));
        Rotated {
            base,
            len: members.len() as u32,
            blocks,
        }
    }
}

fn gid(topo: &Topology, level: usize, cpu: usize) -> Gid {
    let pu = &topo.pus[cpu];
    match level {
        CORE => (TAG_CORE, pu.core as u32),
        L2 => match pu.cache_at_level(2) {
            Some(c) => (TAG_CACHE, c as u32),
            None => gid(topo, CORE, cpu),
        },
        LLC => match topo.llc_of(cpu).filter(|&c| topo.caches[c].level >= 2) {
            Some(c) => (TAG_CACHE, c as u32),
            None => gid(topo, L2, cpu),
        },
        _ => (TAG_NODE, pu.node as u32),
    }
}

fn members(topo: &Topology, g: Gid) -> &[usize] {
    match g.0 {
        TAG_CORE => &topo.cores[g.1 as usize].pus,
        TAG_CACHE => &topo.caches[g.1 as usize].pus,
        _ => &topo.nodes[g.1 as usize].pus,
    }
}

impl StealTiers {
    pub(crate) fn compute(topo: &Topology) -> StealTiers {
        let n = topo.num_cpus();
        let mut out = StealTiers {
            per_cpu: Vec::with_capacity(n),
            tiers: Vec::new(),
            pool: Vec::new(),
        };
        // Nested levels: (level, group) -> its doubled member list.
        let mut rotated: BTreeMap<(usize, Gid), Rotated> = BTreeMap::new();
        // Memo for non-nested levels and remote classes: key -> (start, len) in pool.
        let mut lists: BTreeMap<Vec<u64>, (u32, u32)> = BTreeMap::new();
        // Memo: (level, gid) -> is G_level(c) a subset of G_level+1(c).
        let mut nested: BTreeMap<(usize, Gid), bool> = BTreeMap::new();
        // Remote classes per node: Vec of (distance, nodes).
        let classes: Vec<Vec<(u32, Vec<usize>)>> = (0..topo.num_nodes())
            .map(|a| remote_classes(topo, a))
            .collect();

        for c in 0..n {
            let first = out.tiers.len() as u32;
            let g: [Gid; 4] = core::array::from_fn(|l| gid(topo, l, c));
            let mut is_nested = [true; 4];
            for l in 0..NODE {
                is_nested[l] = *nested.entry((l, g[l])).or_insert_with(|| {
                    members(topo, g[l])
                        .iter()
                        .all(|&x| gid(topo, l + 1, x) == g[l + 1])
                });
            }
            let in_prior = |x: usize, upto: usize| (0..upto).any(|l| gid(topo, l, x) == g[l]);
            let local = topo.distance(g[NODE].1 as usize, g[NODE].1 as usize);
            for (k, &kind) in LOCAL_KINDS.iter().enumerate() {
                // Nested path: the tier is "my level-k group minus my level-(k-1) block", one
                // rotated window of the group's doubled member list, shared by every CPU.
                if (0..k).all(|i| is_nested[i]) {
                    let prev = if k == CORE {
                        (TAG_SELF, c as u32)
                    } else {
                        g[k - 1]
                    };
                    let rot = rotated.entry((k, g[k])).or_insert_with(|| {
                        Rotated::build(topo, &mut out.pool, g[k], |x| {
                            if k == CORE {
                                (TAG_SELF, x as u32)
                            } else {
                                gid(topo, k - 1, x)
                            }
                        })
                    });
                    let (s, len) = rot.blocks[&prev];
                    let count = rot.len - len;
                    if count > 0 {
                        out.tiers.push(TierRec {
                            kind,
                            distance: local,
                            start: rot.base + s + len,
                            len: count,
                        });
                    }
                    continue;
                }
                // General path (a level that does not nest, e.g. an LLC spanning two nodes):
                // the list depends on every non-nested group before it, memoized by those ids.
                let mut key = alloc::vec![k as u64, pack(g[k]), pack(g[k - 1])];
                key.extend((0..k - 1).filter(|&i| !is_nested[i]).map(|i| pack(g[i])));
                let (start, len) = *lists.entry(key).or_insert_with(|| {
                    let start = out.pool.len() as u32;
                    for &x in members(topo, g[k]) {
                        if x != c && !in_prior(x, k) {
                            out.pool.push(x as u32);
                        }
                    }
                    (start, out.pool.len() as u32 - start)
                });
                if len > 0 {
                    out.tiers.push(TierRec {
                        kind,
                        distance: local,
                        start,
                        len,
                    });
                }
            }
            let node = g[NODE].1 as usize;
            for (j, (distance, class_nodes)) in classes[node].iter().enumerate() {
                let mut key = alloc::vec![4, node as u64, j as u64];
                key.extend((0..NODE).filter(|&i| !is_nested[i]).map(|i| pack(g[i])));
                let (start, len) = *lists.entry(key).or_insert_with(|| {
                    let start = out.pool.len() as u32;
                    let mut cpus: Vec<u32> = class_nodes
                        .iter()
                        .flat_map(|&m| topo.nodes[m].pus.iter().copied())
                        .filter(|&x| !in_prior(x, NODE))
                        .map(|x| x as u32)
                        .collect();
                    cpus.sort_unstable();
                    out.pool.extend_from_slice(&cpus);
                    (start, out.pool.len() as u32 - start)
                });
                if len > 0 {
                    out.tiers.push(TierRec {
                        kind: TierKind::Remote,
                        distance: *distance,
                        start,
                        len,
                    });
                }
            }
            out.per_cpu.push((first, out.tiers.len() as u32 - first));
        }
        out
    }
}

fn pack(g: Gid) -> u64 {
    (u64::from(g.0) << 32) | u64::from(g.1)
}

/// Other nodes that have CPUs, grouped by equal distance from `a`, nearest first.
fn remote_classes(topo: &Topology, a: usize) -> Vec<(u32, Vec<usize>)> {
    let mut others: Vec<(u32, usize)> = (0..topo.num_nodes())
        .filter(|&b| b != a && !topo.nodes[b].pus.is_empty())
        .map(|b| (topo.distance(a, b), b))
        .collect();
    others.sort_unstable();
    let mut classes: Vec<(u32, Vec<usize>)> = Vec::new();
    for (d, b) in others {
        match classes.last_mut() {
            Some((cd, nodes)) if *cd == d => nodes.push(b),
            _ => classes.push((d, alloc::vec![b])),
        }
    }
    classes
}

impl Topology {
    /// The steal order of logical CPU `cpu`: its tiers, nearest first. O(1).
    #[inline]
    pub fn steal_order(&self, cpu: usize) -> StealOrder<'_> {
        let (first, count) = self.tiers.per_cpu[cpu];
        StealOrder {
            tiers: &self.tiers.tiers[first as usize..(first + count) as usize],
            pool: &self.tiers.pool,
        }
    }

    /// In which tier of `thief`'s order `victim` sits (`None` when they are the same CPU). O(1).
    pub fn tier_between(&self, thief: usize, victim: usize) -> Option<TierKind> {
        if thief == victim {
            return None;
        }
        (0..=NODE)
            .find(|&l| gid(self, l, thief) == gid(self, l, victim))
            .map(|l| LOCAL_KINDS[l])
            .or(Some(TierKind::Remote))
    }

    /// Bytes held by the steal-tier tables (for the memory bound in the benchmarks).
    pub fn steal_tiers_bytes(&self) -> usize {
        self.tiers.per_cpu.len() * 8 + self.tiers.tiers.len() * 16 + self.tiers.pool.len() * 4
    }
}
