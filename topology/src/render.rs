//! An lstopo-like text tree of a [`Topology`] (no_std: a kernel can print it on its console).
//!
//! Each PU's ancestors (package, node, caches, core) are ordered outermost first by how many PUs
//! they hold, so the tree follows whatever nesting the machine has, including an LLC that spans two
//! nodes. Ancestors holding exactly the same PUs share one line, joined by ` + `, as lstopo does.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::desc::CacheKind;
use crate::model::Topology;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Obj {
    Package(usize),
    Node(usize),
    Cache(usize),
    Core(usize),
    Pu(usize),
}

/// Displays the tree; see the module doc.
pub struct Tree<'a>(&'a Topology);

impl Topology {
    /// An lstopo-like tree for printing.
    pub fn tree(&self) -> Tree<'_> {
        Tree(self)
    }
}

/// Formats a byte count the way lstopo does (KB/MB/GB, powers of 1024).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size && bytes % size == 0 || bytes >= 10 * size {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes}B")
}

impl Tree<'_> {
    fn size(&self, o: Obj) -> usize {
        let t = self.0;
        match o {
            Obj::Package(i) => t.packages[i].pus.len(),
            Obj::Node(i) => t.nodes[i].pus.len(),
            Obj::Cache(i) => t.caches[i].pus.len(),
            Obj::Core(i) => t.cores[i].pus.len(),
            Obj::Pu(_) => 1,
        }
    }

    /// Tie-break rank for objects holding the same PUs: outer types first.
    fn rank(&self, o: Obj) -> u32 {
        match o {
            Obj::Package(_) => 0,
            Obj::Node(_) => 1,
            Obj::Cache(i) => {
                let c = &self.0.caches[i];
                // Higher levels first; at L1 the data cache before the instruction cache.
                2 + (5 - u32::from(c.level)) * 2 + u32::from(c.kind == CacheKind::Instruction)
            }
            Obj::Core(_) => 20,
            Obj::Pu(_) => 21,
        }
    }

    /// `type_index[c]`: index of cache `c` among caches of its level and kind (lstopo's L#).
    fn label(&self, o: Obj, type_index: &[usize]) -> String {
        let t = self.0;
        match o {
            Obj::Package(i) => format!("Package L#{i}"),
            Obj::Node(i) => {
                let n = &t.nodes[i];
                format!(
                    "NUMANode L#{i} (P#{} {})",
                    n.os_index,
                    human_bytes(n.memory_bytes)
                )
            }
            Obj::Cache(i) => {
                let c = &t.caches[i];
                let suffix = match (c.level, c.kind) {
                    (1, CacheKind::Data) => "d",
                    (1, CacheKind::Instruction) | (_, CacheKind::Instruction) => "i",
                    _ => "",
                };
                format!(
                    "L{}{suffix} L#{} ({})",
                    c.level,
                    type_index[i],
                    human_bytes(c.size_bytes)
                )
            }
            Obj::Core(i) => format!("Core L#{i}"),
            Obj::Pu(i) => format!("PU L#{i} (P#{})", t.pus[i].os_index),
        }
    }

    fn chain(&self, pu: usize) -> Vec<Obj> {
        let t = self.0;
        let p = &t.pus[pu];
        let mut chain = alloc::vec![
            Obj::Package(p.package),
            Obj::Node(p.node),
            Obj::Core(p.core)
        ];
        chain.extend(
            t.caches
                .iter()
                .filter(|c| c.pus.binary_search(&pu).is_ok())
                .map(|c| Obj::Cache(c.logical)),
        );
        chain.sort_by_key(|&o| (usize::MAX - self.size(o), self.rank(o)));
        chain.push(Obj::Pu(pu));
        chain
    }
}

impl fmt::Display for Tree<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        writeln!(f, "Machine ({} total)", human_bytes(t.total_memory_bytes()))?;
        let mut seen: alloc::collections::BTreeMap<(u8, CacheKind), usize> =
            alloc::collections::BTreeMap::new();
        let type_index: Vec<usize> = t
            .caches
            .iter()
            .map(|c| {
                let n = seen.entry((c.level, c.kind)).or_insert(0);
                *n += 1;
                *n - 1
            })
            .collect();
        let mut prev: Vec<Obj> = Vec::new();
        for pu in 0..t.num_cpus() {
            let chain = self.chain(pu);
            let common = chain.iter().zip(&prev).take_while(|(a, b)| a == b).count();
            // Depth of a chain element = number of distinct lines above it.
            let mut depth = 0;
            let mut i = 0;
            while i < chain.len() {
                let mut j = i + 1;
                while j < chain.len() && self.size(chain[j]) == self.size(chain[i]) {
                    j += 1;
                }
                if j > common {
                    let line: Vec<String> = chain[i..j]
                        .iter()
                        .map(|&o| self.label(o, &type_index))
                        .collect();
                    writeln!(
                        f,
                        "{:width$}{}",
                        "",
                        line.join(" + "),
                        width = 2 + depth * 2
                    )?;
                }
                depth += 1;
                i = j;
            }
            prev = chain;
        }
        for (i, n) in t.nodes.iter().enumerate().filter(|(_, n)| n.pus.is_empty()) {
            writeln!(
                f,
                "  NUMANode L#{i} (P#{} {}, no CPUs)",
                n.os_index,
                human_bytes(n.memory_bytes)
            )?;
        }
        if !t.offline_cpus().is_empty() {
            writeln!(f, "  offline CPUs: {}", t.offline_cpus())?;
        }
        Ok(())
    }
}
