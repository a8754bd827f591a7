//! The indexed machine model and its O(1) queries.
//!
//! Logical indices are dense and follow tree order (package, node, LLC, L2, core, then OS index,
//! each compared by its smallest OS CPU index), so every source produces the same numbering for the
//! same machine. "CPU" in this crate's API means a logical PU index unless a name says `os`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use crate::cpuset::CpuSet;
use crate::desc::{CacheKind, TopologyDesc};
use crate::error::{Error, ErrorKind};
use crate::tiers::StealTiers;

/// Sentinel for "no such object" in the compact per-PU tables.
pub(crate) const NONE: u32 = u32::MAX;

/// The most NUMA nodes a topology may have: Linux's largest `MAX_NUMNODES` (`NODES_SHIFT` 10).
/// Remote steal tiers cost O(nodes × CPUs) memory, so the bound also bounds them.
pub const MAX_NODES: usize = 1024;

/// Distances used when a source gives no matrix: documented, and flagged by
/// [`DistanceOrigin::Derived`], never silent.
pub const DERIVED_DISTANCE_LOCAL: u32 = 10;
/// Derived distance between two nodes of one package.
pub const DERIVED_DISTANCE_SAME_PACKAGE: u32 = 20;
/// Derived distance between nodes of different packages (or CPU-less nodes).
pub const DERIVED_DISTANCE_REMOTE: u32 = 30;

/// Where the distance matrix came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistanceOrigin {
    /// Given by the source (SLIT, sysfs `distance`, hwloc `distances2`, synthetic `distances=`).
    Given,
    /// Not given: derived as 10 local, 20 same package, 30 otherwise.
    Derived,
}

/// A processing unit (hardware thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pu {
    /// Logical index (dense, tree order).
    pub logical: usize,
    /// OS index (Linux CPU number).
    pub os_index: u32,
    /// APIC id, when known.
    pub apic_id: Option<u32>,
    /// Logical index of its core.
    pub core: usize,
    /// Logical index of its package.
    pub package: usize,
    /// Logical index of its NUMA node.
    pub node: usize,
    /// Logical indices of its data/unified caches by level: `data_caches[0]` is L1 ... `[3]` L4.
    data_caches: [u32; 4],
}

impl Pu {
    /// Logical index of this PU's data or unified cache at `level` (1..=4).
    pub fn cache_at_level(&self, level: u8) -> Option<usize> {
        let slot = *self.data_caches.get(usize::from(level).checked_sub(1)?)?;
        (slot != NONE).then_some(slot as usize)
    }
}

/// A core: the PUs that share its execution resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    /// Logical index.
    pub logical: usize,
    /// Logical index of its package.
    pub package: usize,
    /// Logical PU indices, increasing.
    pub pus: Vec<usize>,
}

/// A package (socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Logical index.
    pub logical: usize,
    /// OS index (physical_package_id).
    pub os_index: u32,
    /// OS indices of its PUs.
    pub cpus: CpuSet,
    /// Logical PU indices, increasing.
    pub pus: Vec<usize>,
}

/// A cache instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    /// Logical index among all caches.
    pub logical: usize,
    /// 1 for L1, 2 for L2, ...
    pub level: u8,
    /// Unified, data or instruction.
    pub kind: CacheKind,
    /// Capacity in bytes (0 when unknown).
    pub size_bytes: u64,
    /// Line size in bytes (0 when unknown).
    pub line_bytes: u32,
    /// Ways (0 unknown, -1 fully associative).
    pub associativity: i32,
    /// OS indices of the PUs sharing it.
    pub cpus: CpuSet,
    /// Logical PU indices sharing it, increasing.
    pub pus: Vec<usize>,
}

/// A NUMA node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Logical index (nodes are ordered by OS index).
    pub logical: usize,
    /// OS index.
    pub os_index: u32,
    /// Local memory in bytes (0: memoryless node).
    pub memory_bytes: u64,
    /// OS indices of its online PUs (empty: CPU-less node).
    pub cpus: CpuSet,
    /// Logical PU indices, increasing.
    pub pus: Vec<usize>,
    /// Logical index of the package holding its CPUs, if they all sit in one.
    pub package: Option<usize>,
}

/// The machine: packages, NUMA nodes, caches, cores and PUs, node distances, and per-CPU steal
/// tiers, all precomputed by [`Topology::build`].
#[derive(Clone, Debug)]
pub struct Topology {
    pub(crate) pus: Vec<Pu>,
    pub(crate) cores: Vec<Core>,
    pub(crate) packages: Vec<Package>,
    pub(crate) caches: Vec<Cache>,
    pub(crate) nodes: Vec<Node>,
    /// Row-major `nodes²`, logical node order.
    pub(crate) distances: Vec<u32>,
    pub(crate) distance_origin: DistanceOrigin,
    /// OS index -> logical PU index (`NONE` for holes).
    os_to_logical: Vec<u32>,
    offline: CpuSet,
    allowed: Option<CpuSet>,
    machine_memory_bytes: u64,
    pub(crate) tiers: StealTiers,
}

impl Topology {
    /// Validates and indexes a description. Errors name the offending PU, node, cache or matrix
    /// entry.
    pub fn build(desc: TopologyDesc) -> Result<Topology, Error> {
        build(desc)
    }

    /// Number of online PUs (logical CPUs).
    #[inline]
    pub fn num_cpus(&self) -> usize {
        self.pus.len()
    }

    /// Number of NUMA nodes (including CPU-less ones).
    #[inline]
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Number of packages.
    #[inline]
    pub fn num_packages(&self) -> usize {
        self.packages.len()
    }

    /// Number of cores.
    #[inline]
    pub fn num_cores(&self) -> usize {
        self.cores.len()
    }

    /// All PUs in logical order.
    pub fn pus(&self) -> &[Pu] {
        &self.pus
    }

    /// One PU. Panics if `cpu >= num_cpus()`.
    #[inline]
    pub fn pu(&self, cpu: usize) -> &Pu {
        &self.pus[cpu]
    }

    /// All cores in logical order.
    pub fn cores(&self) -> &[Core] {
        &self.cores
    }

    /// All packages in logical order.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// All caches (every level and kind).
    pub fn caches(&self) -> &[Cache] {
        &self.caches
    }

    /// All NUMA nodes, ordered by OS index.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The logical node of a logical CPU. O(1).
    #[inline]
    pub fn node_of(&self, cpu: usize) -> usize {
        self.pus[cpu].node
    }

    /// The logical CPUs of a logical node. O(1).
    #[inline]
    pub fn cpus_of_node(&self, node: usize) -> &[usize] {
        &self.nodes[node].pus
    }

    /// SLIT-style distance between two logical nodes. O(1).
    #[inline]
    pub fn distance(&self, a: usize, b: usize) -> u32 {
        self.distances[a * self.nodes.len() + b]
    }

    /// Distance between the nodes of two logical CPUs. O(1).
    #[inline]
    pub fn cpu_distance(&self, a: usize, b: usize) -> u32 {
        self.distance(self.pus[a].node, self.pus[b].node)
    }

    /// The whole matrix, row-major, logical node order.
    pub fn distance_matrix(&self) -> &[u32] {
        &self.distances
    }

    /// Whether the matrix was given by the source or derived.
    pub fn distance_origin(&self) -> DistanceOrigin {
        self.distance_origin
    }

    /// Logical index of the PU with this OS index. O(1).
    #[inline]
    pub fn cpu_from_os(&self, os_index: u32) -> Option<usize> {
        match self.os_to_logical.get(os_index as usize) {
            Some(&l) if l != NONE => Some(l as usize),
            _ => None,
        }
    }

    /// Logical index of the node with this OS index.
    pub fn node_from_os(&self, os_index: u32) -> Option<usize> {
        self.nodes
            .binary_search_by_key(&os_index, |n| n.os_index)
            .ok()
    }

    /// The last-level data/unified cache of a CPU.
    pub fn llc_of(&self, cpu: usize) -> Option<usize> {
        let pu = &self.pus[cpu];
        pu.data_caches
            .iter()
            .rev()
            .find(|&&c| c != NONE)
            .map(|&c| c as usize)
    }

    /// OS indices of all online PUs.
    pub fn online_cpus(&self) -> CpuSet {
        self.pus.iter().map(|p| p.os_index as usize).collect()
    }

    /// OS indices of CPUs that exist but were offline when the topology was read.
    pub fn offline_cpus(&self) -> &CpuSet {
        &self.offline
    }

    /// The process affinity mask at discovery (OS indices), if the source knew it.
    pub fn allowed_cpus(&self) -> Option<&CpuSet> {
        self.allowed.as_ref()
    }

    /// Total memory: all nodes plus any machine-level memory.
    pub fn total_memory_bytes(&self) -> u64 {
        self.nodes.iter().map(|n| n.memory_bytes).sum::<u64>() + self.machine_memory_bytes
    }

    /// Rebuilds a description equivalent to this topology (round-trips through `build`).
    pub fn to_desc(&self) -> TopologyDesc {
        let mut desc = TopologyDesc::default();
        for c in &self.caches {
            desc.caches.push(crate::desc::CacheDesc {
                level: c.level,
                kind: c.kind,
                size_bytes: c.size_bytes,
                line_bytes: c.line_bytes,
                associativity: c.associativity,
            });
        }
        let mut pu_caches: Vec<Vec<usize>> = alloc::vec![Vec::new(); self.pus.len()];
        for c in &self.caches {
            for &p in &c.pus {
                pu_caches[p].push(c.logical);
            }
        }
        for (pu, caches) in self.pus.iter().zip(pu_caches) {
            desc.pus.push(crate::desc::PuDesc {
                os_index: pu.os_index,
                apic_id: pu.apic_id,
                package: self.packages[pu.package].os_index,
                core: pu.core as u64,
                node: Some(self.nodes[pu.node].os_index),
                caches,
            });
        }
        for n in &self.nodes {
            desc.nodes.push(crate::desc::NodeDesc {
                os_index: n.os_index,
                memory_bytes: n.memory_bytes,
            });
        }
        if self.distance_origin == DistanceOrigin::Given {
            desc.distances = Some(crate::desc::DistanceMatrix {
                nodes: self.nodes.iter().map(|n| n.os_index).collect(),
                values: self.distances.clone(),
            });
        }
        desc.offline = self.offline.clone();
        desc.allowed = self.allowed.clone();
        desc.machine_memory_bytes = self.machine_memory_bytes;
        desc
    }
}

fn build_err(
    location: impl Into<alloc::string::String>,
    msg: impl Into<alloc::string::String>,
) -> Error {
    Error::new(ErrorKind::Build, location, msg)
}

fn build(desc: TopologyDesc) -> Result<Topology, Error> {
    if desc.pus.is_empty() {
        return Err(build_err("", "the description has no online PU"));
    }
    // --- Nodes, ordered by OS index. An empty list means one implicit node 0.
    let mut node_descs = desc.nodes.clone();
    if node_descs.is_empty() {
        node_descs.push(crate::desc::NodeDesc {
            os_index: 0,
            memory_bytes: desc.machine_memory_bytes,
        });
    }
    if node_descs.len() > MAX_NODES {
        return Err(build_err(
            "",
            format!(
                "{} NUMA nodes; at most {MAX_NODES} are supported (Linux's MAX_NUMNODES)",
                node_descs.len()
            ),
        ));
    }
    node_descs.sort_by_key(|n| n.os_index);
    for w in node_descs.windows(2) {
        if w[0].os_index == w[1].os_index {
            return Err(build_err(format!("node {}", w[0].os_index), "listed twice"));
        }
    }
    let implicit_node = desc.nodes.is_empty();
    let node_logical = |os: Option<u32>, pu_os: u32| -> Result<usize, Error> {
        match os {
            None if implicit_node => Ok(0),
            None => Err(build_err(
                format!("PU {pu_os}"),
                "has no NUMA node although the description lists nodes",
            )),
            Some(os) => node_descs
                .binary_search_by_key(&os, |n| n.os_index)
                .map_err(|_| {
                    build_err(
                        format!("PU {pu_os}"),
                        format!("names NUMA node {os}, which is not listed"),
                    )
                }),
        }
    };

    // --- Validate PUs and caches.
    let mut seen = CpuSet::new();
    for pu in &desc.pus {
        if pu.os_index as usize >= CpuSet::MAX_CPUS {
            return Err(build_err(
                format!("PU {}", pu.os_index),
                format!(
                    "OS index exceeds the supported maximum {}",
                    CpuSet::MAX_CPUS - 1
                ),
            ));
        }
        if !seen.insert(pu.os_index as usize) {
            return Err(build_err(format!("PU {}", pu.os_index), "listed twice"));
        }
        if desc.offline.contains(pu.os_index as usize) {
            return Err(build_err(
                format!("PU {}", pu.os_index),
                "is listed both online and offline",
            ));
        }
        let mut levels = [false; 8];
        for &c in &pu.caches {
            let cache = desc.caches.get(c).ok_or_else(|| {
                build_err(
                    format!("PU {}", pu.os_index),
                    format!("names cache #{c}, which does not exist"),
                )
            })?;
            if cache.level == 0 || cache.level > 4 {
                return Err(build_err(
                    format!("cache #{c}"),
                    format!("level {} is outside 1..=4", cache.level),
                ));
            }
            if cache.kind != CacheKind::Instruction {
                let slot = &mut levels[usize::from(cache.level)];
                if *slot {
                    return Err(build_err(
                        format!("PU {}", pu.os_index),
                        format!("has two data/unified L{} caches", cache.level),
                    ));
                }
                *slot = true;
            }
        }
    }

    // --- Group keys (smallest member OS index) for tree-order sorting.
    let n_pus = desc.pus.len();
    let mut cache_min_os = alloc::vec![u32::MAX; desc.caches.len()];
    let mut package_min_os: BTreeMap<u32, u32> = BTreeMap::new();
    let mut core_min_os: BTreeMap<(u32, u64), u32> = BTreeMap::new();
    let mut node_min_os = alloc::vec![u32::MAX; node_descs.len()];
    let mut pu_node = Vec::with_capacity(n_pus);
    for pu in &desc.pus {
        let node = node_logical(pu.node, pu.os_index)?;
        pu_node.push(node);
        node_min_os[node] = node_min_os[node].min(pu.os_index);
        for &c in &pu.caches {
            cache_min_os[c] = cache_min_os[c].min(pu.os_index);
        }
        let e = package_min_os.entry(pu.package).or_insert(u32::MAX);
        *e = (*e).min(pu.os_index);
        let e = core_min_os.entry((pu.package, pu.core)).or_insert(u32::MAX);
        *e = (*e).min(pu.os_index);
    }
    let level_key = |pu: &crate::desc::PuDesc, level: u8| -> u32 {
        pu.caches
            .iter()
            .filter(|&&c| {
                desc.caches[c].level == level && desc.caches[c].kind != CacheKind::Instruction
            })
            .map(|&c| cache_min_os[c])
            .next()
            .unwrap_or(u32::MAX)
    };
    let mut order: Vec<usize> = (0..n_pus).collect();
    order.sort_by_key(|&i| {
        let pu = &desc.pus[i];
        (
            package_min_os[&pu.package],
            node_min_os[pu_node[i]],
            level_key(pu, 4),
            level_key(pu, 3),
            level_key(pu, 2),
            level_key(pu, 1),
            core_min_os[&(pu.package, pu.core)],
            pu.os_index,
        )
    });

    // --- Assign logical indices in tree order.
    let mut packages: Vec<Package> = Vec::new();
    let mut package_index: BTreeMap<u32, usize> = BTreeMap::new();
    let mut cores: Vec<Core> = Vec::new();
    let mut core_index: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut cache_index: Vec<u32> = alloc::vec![NONE; desc.caches.len()];
    let mut caches: Vec<Cache> = Vec::new();
    let mut nodes: Vec<Node> = node_descs
        .iter()
        .enumerate()
        .map(|(i, n)| Node {
            logical: i,
            os_index: n.os_index,
            memory_bytes: n.memory_bytes,
            cpus: CpuSet::new(),
            pus: Vec::new(),
            package: None,
        })
        .collect();
    let max_os = desc.pus.iter().map(|p| p.os_index).max().unwrap_or(0) as usize;
    let mut os_to_logical = alloc::vec![NONE; max_os + 1];
    let mut pus = Vec::with_capacity(n_pus);
    let mut node_packages: Vec<Option<Option<usize>>> = alloc::vec![None; nodes.len()];
    for (logical, &i) in order.iter().enumerate() {
        let d = &desc.pus[i];
        let package = *package_index.entry(d.package).or_insert_with(|| {
            packages.push(Package {
                logical: packages.len(),
                os_index: d.package,
                cpus: CpuSet::new(),
                pus: Vec::new(),
            });
            packages.len() - 1
        });
        packages[package].cpus.insert(d.os_index as usize);
        packages[package].pus.push(logical);
        let core = *core_index.entry((d.package, d.core)).or_insert_with(|| {
            cores.push(Core {
                logical: cores.len(),
                package,
                pus: Vec::new(),
            });
            cores.len() - 1
        });
        cores[core].pus.push(logical);
        let node = pu_node[i];
        nodes[node].cpus.insert(d.os_index as usize);
        nodes[node].pus.push(logical);
        node_packages[node] = match node_packages[node] {
            None => Some(Some(package)),
            Some(Some(p)) if p == package => Some(Some(p)),
            _ => Some(None),
        };
        let mut data_caches = [NONE; 4];
        for &c in &d.caches {
            if cache_index[c] == NONE {
                let cd = &desc.caches[c];
                cache_index[c] = caches.len() as u32;
                caches.push(Cache {
                    logical: caches.len(),
                    level: cd.level,
                    kind: cd.kind,
                    size_bytes: cd.size_bytes,
                    line_bytes: cd.line_bytes,
                    associativity: cd.associativity,
                    cpus: CpuSet::new(),
                    pus: Vec::new(),
                });
            }
            let ci = cache_index[c] as usize;
            caches[ci].cpus.insert(d.os_index as usize);
            caches[ci].pus.push(logical);
            if caches[ci].kind != CacheKind::Instruction {
                data_caches[usize::from(caches[ci].level) - 1] = ci as u32;
            }
        }
        os_to_logical[d.os_index as usize] = logical as u32;
        pus.push(Pu {
            logical,
            os_index: d.os_index,
            apic_id: d.apic_id,
            core,
            package,
            node,
            data_caches,
        });
    }
    for (node, p) in nodes.iter_mut().zip(node_packages) {
        node.package = p.flatten();
    }
    // A core's PUs must agree on node and on their caches: a core split across nodes is a broken
    // description, not a machine.
    for core in &cores {
        let first = &pus[core.pus[0]];
        for &p in &core.pus[1..] {
            if pus[p].node != first.node {
                return Err(build_err(
                    format!("core of PU {}", first.os_index),
                    format!(
                        "spans NUMA nodes (PU {} is on another node)",
                        pus[p].os_index
                    ),
                ));
            }
        }
    }

    // --- Distances.
    let n = nodes.len();
    let (distances, distance_origin) = match &desc.distances {
        Some(m) => (reorder_matrix(m, &nodes)?, DistanceOrigin::Given),
        None => {
            let mut v = alloc::vec![0; n * n];
            for a in 0..n {
                for b in 0..n {
                    v[a * n + b] = if a == b {
                        DERIVED_DISTANCE_LOCAL
                    } else if nodes[a].package.is_some() && nodes[a].package == nodes[b].package {
                        DERIVED_DISTANCE_SAME_PACKAGE
                    } else {
                        DERIVED_DISTANCE_REMOTE
                    };
                }
            }
            (v, DistanceOrigin::Derived)
        }
    };

    let mut topo = Topology {
        pus,
        cores,
        packages,
        caches,
        nodes,
        distances,
        distance_origin,
        os_to_logical,
        offline: desc.offline,
        allowed: desc.allowed,
        machine_memory_bytes: if implicit_node {
            0
        } else {
            desc.machine_memory_bytes
        },
        tiers: StealTiers::default(),
    };
    topo.tiers = StealTiers::compute(&topo);
    Ok(topo)
}

fn reorder_matrix(m: &crate::desc::DistanceMatrix, nodes: &[Node]) -> Result<Vec<u32>, Error> {
    let k = m.nodes.len();
    if m.values.len() != k * k {
        return Err(build_err(
            "distance matrix",
            format!(
                "has {} values for {k} nodes; expected {}",
                m.values.len(),
                k * k
            ),
        ));
    }
    let n = nodes.len();
    // Position of each model node in the matrix.
    let mut pos = alloc::vec![usize::MAX; n];
    for (i, &os) in m.nodes.iter().enumerate() {
        let node = nodes
            .binary_search_by_key(&os, |n| n.os_index)
            .map_err(|_| {
                build_err(
                    "distance matrix",
                    format!("names node {os}, which is not in the topology"),
                )
            })?;
        if pos[node] != usize::MAX {
            return Err(build_err(
                "distance matrix",
                format!("names node {os} twice"),
            ));
        }
        pos[node] = i;
    }
    if let Some(missing) = (0..n).find(|&i| pos[i] == usize::MAX) {
        return Err(build_err(
            "distance matrix",
            format!("has no row for node {}", nodes[missing].os_index),
        ));
    }
    let mut out = alloc::vec![0; n * n];
    for a in 0..n {
        for b in 0..n {
            let v = m.values[pos[a] * k + pos[b]];
            if v == 0 {
                return Err(build_err(
                    format!(
                        "distance matrix entry ({}, {})",
                        nodes[a].os_index, nodes[b].os_index
                    ),
                    "is 0; distances must be positive",
                ));
            }
            out[a * n + b] = v;
        }
    }
    for a in 0..n {
        let local = out[a * n + a];
        if let Some(b) = (0..n).find(|&b| out[a * n + b] < local) {
            return Err(build_err(
                format!("distance matrix row of node {}", nodes[a].os_index),
                format!(
                    "local distance {local} is larger than the distance {} to node {}",
                    out[a * n + b],
                    nodes[b].os_index
                ),
            ));
        }
    }
    Ok(out)
}
