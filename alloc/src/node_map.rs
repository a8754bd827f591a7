//! The machine as the allocator needs it: which NUMA node each CPU belongs to.
//!
//! A `#[global_allocator]` cannot allocate to learn the machine, so [`NodeMap`] is fixed-capacity
//! plain data with `const` constructors. It is filled from a [`Topology`], from Linux sysfs
//! without allocating (see `sys::linux`), or built by hand for tests ([`NodeMap::fake`]), so
//! every NUMA path runs on a one-node machine.

use manycore_topology::Topology;

/// Most NUMA nodes the allocator manages. Larger machines get a clear error from
/// [`NodeMap::from_topology`]; Linux's own limit is 1024, real machines have at most a few dozen.
pub const MAX_NODES: usize = 64;
/// Most CPUs (by OS index) the map covers. CPUs beyond it are treated as node 0.
pub const MAX_CPUS: usize = 4096;

/// Why a [`NodeMap`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMapError {
    /// The machine has more NUMA nodes than [`MAX_NODES`].
    TooManyNodes {
        /// Nodes the topology reports.
        nodes: usize,
    },
    /// A CPU's OS index is at least [`MAX_CPUS`].
    CpuOutOfRange {
        /// The offending OS CPU number.
        cpu: usize,
    },
    /// A NUMA node's OS index does not fit in 16 bits.
    NodeOutOfRange {
        /// The offending OS node number.
        os_node: usize,
    },
    /// Zero nodes requested.
    NoNodes,
    /// A cpulist (`0-3,8`) has a piece that is not `N` or `N-M` with `N <= M`.
    BadCpulist {
        /// The OS node whose list it is.
        os_node: usize,
        /// Byte offset of the bad piece in the list.
        offset: usize,
    },
}

impl core::fmt::Display for NodeMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NodeMapError::TooManyNodes { nodes } => write!(
                f,
                "topology has {nodes} NUMA nodes; manycore-alloc manages at most {MAX_NODES}"
            ),
            NodeMapError::CpuOutOfRange { cpu } => {
                write!(f, "CPU {cpu} is beyond the allocator's {MAX_CPUS}-CPU map")
            }
            NodeMapError::NodeOutOfRange { os_node } => {
                write!(f, "OS NUMA node {os_node} does not fit the allocator's map")
            }
            NodeMapError::NoNodes => write!(f, "a node map needs at least one node"),
            NodeMapError::BadCpulist { os_node, offset } => write!(
                f,
                "cpulist of OS node {os_node} is malformed at byte {offset} (want `N` or `N-M`, comma-separated)"
            ),
        }
    }
}

/// Why a platform could not describe the machine ([`PageSource::discover_nodes`]). The heap
/// then runs as one node and reports this through [`MapOrigin::Fallback`].
///
/// [`PageSource::discover_nodes`]: crate::PageSource::discover_nodes
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The page source has no way to describe the machine (the trait's default).
    Unsupported,
    /// `/sys/devices/system/node/online` could not be read (no NUMA support in the kernel, or
    /// no sysfs).
    NoNodeDirectory,
    /// `/sys/devices/system/node/node<N>/cpulist` could not be read.
    UnreadableCpulist {
        /// The OS node.
        os_node: usize,
    },
    /// `/sys/devices/system/node/online` is not a node list (`0-3,8`).
    BadOnlineList {
        /// Byte offset of the bad piece.
        offset: usize,
    },
    /// A file longer than the stack buffer that reads it.
    FileTooLong {
        /// The OS node whose cpulist it is, or `usize::MAX` for the `online` list.
        os_node: usize,
    },
    /// The files were read but the map cannot hold what they say, or they are malformed.
    Map(NodeMapError),
}

impl core::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DiscoveryError::Unsupported => write!(f, "the page source cannot describe the machine"),
            DiscoveryError::NoNodeDirectory => {
                write!(f, "/sys/devices/system/node/online is not readable")
            }
            DiscoveryError::UnreadableCpulist { os_node } => write!(
                f,
                "/sys/devices/system/node/node{os_node}/cpulist is not readable"
            ),
            DiscoveryError::BadOnlineList { offset } => write!(
                f,
                "/sys/devices/system/node/online is malformed at byte {offset}"
            ),
            DiscoveryError::FileTooLong {
                os_node: usize::MAX,
            } => write!(
                f,
                "/sys/devices/system/node/online is longer than the discovery buffer"
            ),
            DiscoveryError::FileTooLong { os_node } => write!(
                f,
                "/sys/devices/system/node/node{os_node}/cpulist is longer than the discovery buffer"
            ),
            DiscoveryError::Map(e) => write!(f, "sysfs node description rejected: {e}"),
        }
    }
}

/// Where a heap's machine description came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOrigin {
    /// Handed in by the caller (a fake map, one from a `Topology`, a kernel's).
    Given,
    /// Not known yet: the heap discovers the machine on first use.
    Pending,
    /// Read from the platform by the page source.
    Discovered,
    /// The platform could not describe the machine; the heap runs as one node (OS node 0).
    /// Every path stays correct, only placement is lost.
    Fallback(DiscoveryError),
}

/// CPU-to-node map with fixed capacity: logical nodes `0..nodes()`, each with the OS node
/// number the page source binds to.
#[derive(Clone)]
pub struct NodeMap {
    /// Number of logical nodes (1 ..= MAX_NODES).
    nodes: u16,
    /// Logical node of each OS CPU number; CPUs never seen map to 0.
    cpu_to_node: [u16; MAX_CPUS],
    /// OS node number of each logical node (what `mbind` takes).
    os_node: [u16; MAX_NODES],
}

impl core::fmt::Debug for NodeMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NodeMap")
            .field("nodes", &self.nodes)
            .field("os_node", &&self.os_node[..self.nodes as usize])
            .finish_non_exhaustive()
    }
}

impl NodeMap {
    /// One node (OS node 0) holding every CPU: the fallback when the machine cannot be read.
    pub const fn single_node() -> NodeMap {
        NodeMap {
            nodes: 1,
            cpu_to_node: [0; MAX_CPUS],
            os_node: [0; MAX_NODES],
        }
    }

    /// A fake machine for tests: `nodes` nodes (OS numbers 0..nodes), CPUs `0..cpus` dealt out
    /// in contiguous blocks (CPU `c` is on node `c * nodes / cpus`).
    pub const fn fake(nodes: usize, cpus: usize) -> Result<NodeMap, NodeMapError> {
        if nodes == 0 {
            return Err(NodeMapError::NoNodes);
        }
        if nodes > MAX_NODES {
            return Err(NodeMapError::TooManyNodes { nodes });
        }
        if cpus > MAX_CPUS {
            return Err(NodeMapError::CpuOutOfRange { cpu: cpus - 1 });
        }
        let mut map = NodeMap::single_node();
        map.nodes = nodes as u16;
        let mut n = 0;
        while n < nodes {
            map.os_node[n] = n as u16;
            n += 1;
        }
        let mut c = 0;
        while c < cpus {
            map.cpu_to_node[c] = (c * nodes / cpus) as u16;
            c += 1;
        }
        Ok(map)
    }

    /// The map of a topology: logical nodes in the topology's order, CPUs by OS index.
    pub fn from_topology(topo: &Topology) -> Result<NodeMap, NodeMapError> {
        let nodes = topo.num_nodes();
        if nodes == 0 {
            return Err(NodeMapError::NoNodes);
        }
        if nodes > MAX_NODES {
            return Err(NodeMapError::TooManyNodes { nodes });
        }
        let mut map = NodeMap::single_node();
        map.nodes = nodes as u16;
        for (i, node) in topo.nodes().iter().enumerate() {
            let os = node.os_index as usize;
            if os > u16::MAX as usize {
                return Err(NodeMapError::NodeOutOfRange { os_node: os });
            }
            map.os_node[i] = os as u16;
        }
        for cpu in 0..topo.num_cpus() {
            let os_cpu = topo.pu(cpu).os_index as usize;
            if os_cpu >= MAX_CPUS {
                return Err(NodeMapError::CpuOutOfRange { cpu: os_cpu });
            }
            map.cpu_to_node[os_cpu] = topo.node_of(cpu) as u16;
        }
        Ok(map)
    }

    /// Builds a map from `(os_node, cpulist)` pairs in increasing OS-node order, as sysfs gives
    /// them (`/sys/devices/system/node/nodeN/cpulist`). Used by the Linux discovery, which reads
    /// the files into stack buffers.
    pub fn push_node(&mut self, os_node: usize, cpulist: &[u8]) -> Result<(), NodeMapError> {
        if os_node > u16::MAX as usize {
            return Err(NodeMapError::NodeOutOfRange { os_node });
        }
        let logical = self.nodes as usize;
        if logical >= MAX_NODES {
            return Err(NodeMapError::TooManyNodes { nodes: logical + 1 });
        }
        // Check the whole list before changing the map, so a bad list leaves it untouched.
        let mut bad = None;
        for_each_in_cpulist(cpulist, |cpu| {
            if cpu >= MAX_CPUS && bad.is_none() {
                bad = Some(cpu);
            }
        })
        .map_err(|offset| NodeMapError::BadCpulist { os_node, offset })?;
        if let Some(cpu) = bad {
            return Err(NodeMapError::CpuOutOfRange { cpu });
        }
        // Already validated: cannot fail.
        let _ = for_each_in_cpulist(cpulist, |cpu| self.cpu_to_node[cpu] = logical as u16);
        self.os_node[logical] = os_node as u16;
        self.nodes = logical as u16 + 1;
        Ok(())
    }

    /// An empty builder for [`NodeMap::push_node`]; [`NodeMap::nodes`] is 0 until a node is pushed.
    pub const fn builder() -> NodeMap {
        let mut m = NodeMap::single_node();
        m.nodes = 0;
        m
    }

    /// Number of logical nodes.
    #[inline]
    pub fn nodes(&self) -> usize {
        self.nodes as usize
    }

    /// The logical node of OS CPU `cpu` (node 0 for CPUs beyond the map).
    #[inline]
    pub fn node_of_cpu(&self, cpu: usize) -> usize {
        match self.cpu_to_node.get(cpu) {
            Some(&n) => n as usize,
            None => 0,
        }
    }

    /// The OS node number of logical node `node` (what `mbind` and `move_pages` use).
    #[inline]
    pub fn os_node(&self, node: usize) -> usize {
        self.os_node[node % MAX_NODES] as usize
    }

    /// The logical node of OS node `os`, if the map has it.
    pub fn logical_of_os(&self, os: usize) -> Option<usize> {
        (0..self.nodes()).find(|&n| self.os_node[n] as usize == os)
    }
}

/// Largest number a cpulist may name (Linux's CPU and node numbers are far below it); bounds
/// the work one range can cause.
pub const CPULIST_VALUE_MAX: usize = 1 << 20;

impl TryFrom<&Topology> for NodeMap {
    type Error = NodeMapError;

    /// Same as [`NodeMap::from_topology`].
    fn try_from(topo: &Topology) -> Result<NodeMap, NodeMapError> {
        NodeMap::from_topology(topo)
    }
}

/// Calls `f` for each CPU in a Linux cpulist (`0-3,8,10-11`; an empty list and a trailing
/// newline are fine). Returns `Err(offset)` with the byte offset of the first piece that is not
/// `N` or `N-M` (`N <= M <= CPULIST_VALUE_MAX`); `f` has then seen the pieces before it.
/// Allocates nothing.
pub fn for_each_in_cpulist(list: &[u8], mut f: impl FnMut(usize)) -> Result<(), usize> {
    let mut offset = 0;
    for raw in list.split(|&b| b == b',') {
        let at = offset;
        offset += raw.len() + 1;
        let piece = trim_ascii(raw);
        if piece.is_empty() {
            // Only a wholly empty (or whitespace) list may have an empty piece.
            if trim_ascii(list).is_empty() {
                continue;
            }
            return Err(at);
        }
        let mut parts = piece.splitn(2, |&b| b == b'-');
        let lo = parts.next().and_then(parse_usize);
        let hi = match parts.next() {
            Some(h) => parse_usize(h),
            None => lo,
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi && hi <= CPULIST_VALUE_MAX => {
                for cpu in lo..=hi {
                    f(cpu);
                }
            }
            _ => return Err(at),
        }
    }
    Ok(())
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && s[a].is_ascii_whitespace() {
        a += 1;
    }
    while b > a && s[b - 1].is_ascii_whitespace() {
        b -= 1;
    }
    &s[a..b]
}

fn parse_usize(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v = 0usize;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as usize;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulist_ranges_and_singles() {
        let mut seen = [false; 16];
        for_each_in_cpulist(b"0-2,5,7-8\n", |c| seen[c] = true).unwrap();
        let want = [0, 1, 2, 5, 7, 8];
        for (c, &s) in seen.iter().enumerate() {
            assert_eq!(s, want.contains(&c), "cpu {c}");
        }
        let mut n = 0;
        for_each_in_cpulist(b"\n", |_| n += 1).unwrap();
        assert_eq!(n, 0, "an empty list (a memory-only node) names no CPU");
    }

    #[test]
    fn malformed_cpulist_is_an_error_naming_the_offset() {
        let none = |list: &[u8]| for_each_in_cpulist(list, |_| {});
        assert_eq!(none(b"x-3"), Err(0));
        assert_eq!(none(b"0-3,,5"), Err(4));
        assert_eq!(none(b"0-3,7-5"), Err(4), "descending range");
        assert_eq!(none(b"0-7:2"), Err(0), "strides are not in sysfs output");
        assert_eq!(none(b"0,99999999"), Err(2), "beyond CPULIST_VALUE_MAX");
        let mut m = NodeMap::builder();
        assert_eq!(
            m.push_node(4, b"0-1,zz\n").unwrap_err(),
            NodeMapError::BadCpulist {
                os_node: 4,
                offset: 4
            }
        );
        assert_eq!(m.nodes(), 0, "a rejected list leaves the map unchanged");
        assert_eq!(
            std::format!(
                "{}",
                NodeMapError::BadCpulist {
                    os_node: 4,
                    offset: 4
                }
            ),
            "cpulist of OS node 4 is malformed at byte 4 (want `N` or `N-M`, comma-separated)"
        );
    }

    #[test]
    fn fake_map_deals_cpus_in_blocks() {
        let m = NodeMap::fake(4, 8).unwrap();
        assert_eq!(m.nodes(), 4);
        let nodes: [usize; 8] = core::array::from_fn(|c| m.node_of_cpu(c));
        assert_eq!(nodes, [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(m.os_node(3), 3);
        assert_eq!(m.node_of_cpu(MAX_CPUS + 5), 0);
        assert_eq!(
            NodeMap::fake(MAX_NODES + 1, 8).unwrap_err(),
            NodeMapError::TooManyNodes {
                nodes: MAX_NODES + 1
            }
        );
        assert_eq!(NodeMap::fake(0, 8).unwrap_err(), NodeMapError::NoNodes);
    }

    #[test]
    fn map_from_a_topology_follows_node_of() {
        // 2 packages x 2 nodes x 4 cores x 2 PUs: 32 PUs on 4 nodes.
        let topo = Topology::from_synthetic("pack:2 numa:2 core:4 pu:2").unwrap();
        let map = NodeMap::try_from(&topo).unwrap();
        assert_eq!(map.nodes(), topo.num_nodes());
        assert_eq!(map.nodes(), 4);
        for cpu in 0..topo.num_cpus() {
            let os = topo.pu(cpu).os_index as usize;
            assert_eq!(
                map.node_of_cpu(os),
                topo.node_of(cpu),
                "cpu {cpu} (OS {os})"
            );
        }
        for (n, node) in topo.nodes().iter().enumerate() {
            assert_eq!(map.os_node(n), node.os_index as usize);
        }
        let huge = Topology::from_synthetic("numa:65 pu:1").unwrap();
        assert_eq!(
            NodeMap::try_from(&huge).unwrap_err(),
            NodeMapError::TooManyNodes { nodes: 65 }
        );
    }

    #[test]
    fn builder_reads_sparse_sysfs_nodes() {
        let mut m = NodeMap::builder();
        m.push_node(0, b"0-1\n").unwrap();
        m.push_node(2, b"2-3\n").unwrap();
        assert_eq!(m.nodes(), 2);
        assert_eq!(m.node_of_cpu(3), 1);
        assert_eq!(m.os_node(1), 2);
        assert_eq!(m.logical_of_os(2), Some(1));
        assert_eq!(
            m.push_node(3, b"5000").unwrap_err(),
            NodeMapError::CpuOutOfRange { cpu: 5000 }
        );
    }
}
