//! Linux sysfs: the live machine (`/sys`) or a recorded tree standing for it.
//!
//! Files read, relative to the root (`/sys` on a live system):
//!
//! | file | meaning | when missing |
//! |---|---|---|
//! | `devices/system/cpu/online` | online CPUs | every `cpuN` directory is online |
//! | `devices/system/cpu/present` | CPUs that exist; present minus online = offline | the `cpuN` directories |
//! | `cpuN/topology/physical_package_id` | package | package 0 |
//! | `cpuN/topology/thread_siblings_list` (or `core_cpus_list`) | the core, keyed by its first CPU | `die_id`/`core_id`, else the CPU is its own core |
//! | `cpuN/cache/indexK/{level,type,size,coherency_line_size,ways_of_associativity,shared_cpu_list}` | caches, one instance per distinct sharing set | no caches |
//! | `devices/system/node/nodeN/{cpulist,meminfo,distance}` | NUMA nodes, their CPUs, `MemTotal`, SLIT row | no node directory: one node holding everything |
//!
//! A file that exists but does not parse is an error naming its path, the line and what was
//! expected. The process affinity mask (live system only) is recorded in
//! [`TopologyDesc::allowed`] without shrinking the model.

use std::collections::BTreeMap;
use std::format;
use std::fs;
use std::path::Path;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::cpuset::CpuSet;
use crate::desc::{CacheDesc, CacheKind, DistanceMatrix, NodeDesc, PuDesc, TopologyDesc};
use crate::error::{Error, ErrorKind};
use crate::model::Topology;

impl Topology {
    /// Reads a sysfs tree rooted at `root` (a directory standing for `/sys`).
    pub fn from_sysfs(root: &Path) -> Result<Topology, Error> {
        Topology::build(parse(root)?)
    }

    /// The machine this process runs on, from `/sys`, with the process affinity mask recorded
    /// (not applied) and APIC ids from `/proc/cpuinfo` where it lists them.
    pub fn host() -> Result<Topology, Error> {
        let mut desc = parse(Path::new("/sys"))?;
        desc.allowed = affinity_mask();
        if let Ok(text) = fs::read_to_string("/proc/cpuinfo") {
            let apic = apic_ids_from_cpuinfo(&text);
            for pu in &mut desc.pus {
                pu.apic_id = apic.get(&pu.os_index).copied();
            }
        }
        Topology::build(desc)
    }
}

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Sysfs, path.display().to_string(), msg)
}

/// Reads a file; `Ok(None)` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::new(
            ErrorKind::Io,
            path.display().to_string(),
            format!("cannot read: {e}"),
        )),
    }
}

fn read_cpulist(path: &Path) -> Result<Option<CpuSet>, Error> {
    match read_opt(path)? {
        None => Ok(None),
        Some(text) => CpuSet::parse_list(text.trim()).map(Some).map_err(|e| {
            err(
                path,
                format!("line 1: expected a CPU list like 0-3,8: {}", e.message),
            )
        }),
    }
}

fn read_u64(path: &Path) -> Result<Option<u64>, Error> {
    match read_opt(path)? {
        None => Ok(None),
        Some(text) => {
            let t = text.trim();
            // Some kernels print -1 for "unknown" (e.g. physical_package_id on odd VMs).
            if t == "-1" {
                return Ok(None);
            }
            t.parse::<u64>().map(Some).map_err(|_| {
                err(
                    path,
                    format!("line 1: expected an unsigned integer, found {t:?}"),
                )
            })
        }
    }
}

/// Numbered entries `prefixN` of a directory.
fn numbered_dirs(dir: &Path, prefix: &str) -> Result<Vec<u32>, Error> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                dir.display().to_string(),
                format!("cannot list: {e}"),
            ));
        }
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|d| d.parse::<u32>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Parses `size` files: `32K`, `1024K`, `32768K`, `2M`, or plain bytes.
fn parse_cache_size(path: &Path, text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'M') => (&t[..t.len() - 1], 1 << 20),
        Some(b'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            err(
                path,
                format!("line 1: expected a size like 32K or 2M, found {t:?}"),
            )
        })
}

/// Parses a sysfs tree into a description (see the module docs).
pub fn parse(root: &Path) -> Result<TopologyDesc, Error> {
    let cpu_dir = root.join("devices/system/cpu");
    if !cpu_dir.is_dir() {
        return Err(err(
            &cpu_dir,
            "no such directory: expected a sysfs tree with devices/system/cpu",
        ));
    }
    let dirs: CpuSet = numbered_dirs(&cpu_dir, "cpu")?
        .into_iter()
        .map(|c| c as usize)
        .collect();
    let online = read_cpulist(&cpu_dir.join("online"))?.unwrap_or_else(|| dirs.clone());
    let present = read_cpulist(&cpu_dir.join("present"))?.unwrap_or_else(|| dirs.clone());
    let mut offline = present.clone();
    offline.union_with(&dirs);
    offline.difference_with(&online);
    if online.is_empty() {
        return Err(err(&cpu_dir.join("online"), "no online CPU"));
    }

    let mut desc = TopologyDesc {
        offline,
        ..TopologyDesc::default()
    };
    let mut cache_index: BTreeMap<(u8, CacheKind, CpuSet), usize> = BTreeMap::new();
    for cpu in online.iter() {
        let base = cpu_dir.join(format!("cpu{cpu}"));
        if !base.is_dir() {
            return Err(err(
                &base,
                format!("CPU {cpu} is listed online but has no directory"),
            ));
        }
        let topo = base.join("topology");
        let package = read_u64(&topo.join("physical_package_id"))?.unwrap_or(0);
        let package = u32::try_from(package)
            .map_err(|_| err(&topo.join("physical_package_id"), "exceeds 32 bits"))?;
        let siblings = match read_cpulist(&topo.join("thread_siblings_list"))? {
            Some(s) => Some(s),
            None => read_cpulist(&topo.join("core_cpus_list"))?,
        };
        let core = match siblings.and_then(|s| s.first()) {
            Some(first) => first as u64,
            None => match read_u64(&topo.join("core_id"))? {
                Some(core_id) => {
                    (read_u64(&topo.join("die_id"))?.unwrap_or(0) << 32)
                        | (core_id & 0xffff_ffff)
                        | (1 << 63)
                }
                None => cpu as u64,
            },
        };
        let mut caches = Vec::new();
        for k in numbered_dirs(&base.join("cache"), "index")? {
            let dir = base.join(format!("cache/index{k}"));
            let level_path = dir.join("level");
            let Some(level) = read_u64(&level_path)? else {
                continue;
            };
            if !(1..=4).contains(&level) {
                return Err(err(
                    &level_path,
                    format!("line 1: expected a cache level 1-4, found {level}"),
                ));
            }
            let type_path = dir.join("type");
            let kind = match read_opt(&type_path)?.as_deref().map(str::trim) {
                Some("Data") => CacheKind::Data,
                Some("Instruction") => CacheKind::Instruction,
                Some("Unified") | None => CacheKind::Unified,
                Some(other) => {
                    return Err(err(
                        &type_path,
                        format!("line 1: expected Data, Instruction or Unified, found {other:?}"),
                    ));
                }
            };
            let shared = read_cpulist(&dir.join("shared_cpu_list"))?
                .unwrap_or_else(|| [cpu].into_iter().collect());
            let key = (level as u8, kind, shared);
            let index = match cache_index.get(&key) {
                Some(&i) => i,
                None => {
                    let size_path = dir.join("size");
                    let size_bytes = match read_opt(&size_path)? {
                        Some(t) => parse_cache_size(&size_path, &t)?,
                        None => 0,
                    };
                    let line_bytes =
                        read_u64(&dir.join("coherency_line_size"))?.unwrap_or(0) as u32;
                    let ways = read_u64(&dir.join("ways_of_associativity"))?.unwrap_or(0) as i32;
                    let i = desc.add_cache(CacheDesc {
                        level: level as u8,
                        kind,
                        size_bytes,
                        line_bytes,
                        associativity: ways,
                    });
                    cache_index.insert(key, i);
                    i
                }
            };
            caches.push(index);
        }
        desc.pus.push(PuDesc {
            os_index: cpu as u32,
            apic_id: None,
            package,
            core,
            node: None,
            caches,
        });
    }

    // NUMA nodes.
    let node_dir = root.join("devices/system/node");
    let node_ids = numbered_dirs(&node_dir, "node")?;
    if node_ids.is_empty() {
        return Ok(desc);
    }
    let mut node_of_cpu: BTreeMap<u32, u32> = BTreeMap::new();
    let mut rows: Vec<Vec<u32>> = Vec::new();
    for &node in &node_ids {
        let dir = node_dir.join(format!("node{node}"));
        let cpus = read_cpulist(&dir.join("cpulist"))?.unwrap_or_default();
        for cpu in cpus.iter() {
            if let Some(prev) = node_of_cpu.insert(cpu as u32, node) {
                return Err(err(
                    &dir.join("cpulist"),
                    format!("CPU {cpu} is also listed by node {prev}"),
                ));
            }
        }
        let meminfo_path = dir.join("meminfo");
        let memory_bytes = match read_opt(&meminfo_path)? {
            None => 0,
            Some(text) => parse_meminfo(&meminfo_path, &text)?,
        };
        desc.nodes.push(NodeDesc {
            os_index: node,
            memory_bytes,
        });
        let distance_path = dir.join("distance");
        if let Some(text) = read_opt(&distance_path)? {
            let row: Result<Vec<u32>, Error> = text
                .split_whitespace()
                .enumerate()
                .map(|(i, v)| {
                    v.parse::<u32>().map_err(|_| {
                        err(
                            &distance_path,
                            format!("line 1, value {}: expected a distance, found {v:?}", i + 1),
                        )
                    })
                })
                .collect();
            let row = row?;
            if row.len() != node_ids.len() {
                return Err(err(
                    &distance_path,
                    format!(
                        "line 1: expected {} distances (one per node), found {}",
                        node_ids.len(),
                        row.len()
                    ),
                ));
            }
            rows.push(row);
        }
    }
    if !rows.is_empty() {
        if rows.len() != node_ids.len() {
            return Err(err(
                &node_dir,
                "some nodes have a distance file and others do not",
            ));
        }
        desc.distances = Some(DistanceMatrix {
            nodes: node_ids.clone(),
            values: rows.into_iter().flatten().collect(),
        });
    }
    for pu in &mut desc.pus {
        pu.node = Some(*node_of_cpu.get(&pu.os_index).ok_or_else(|| {
            err(
                &node_dir,
                format!("online CPU {} is in no node's cpulist", pu.os_index),
            )
        })?);
    }
    Ok(desc)
}

fn parse_meminfo(path: &Path, text: &str) -> Result<u64, Error> {
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.split_once("MemTotal:").map(|(_, r)| r) {
            let mut parts = rest.split_whitespace();
            let value = parts.next().and_then(|v| v.parse::<u64>().ok());
            let unit = parts.next();
            return match (value, unit) {
                (Some(kb), Some("kB")) => kb
                    .checked_mul(1024)
                    .ok_or_else(|| err(path, "MemTotal overflows")),
                _ => Err(err(
                    path,
                    format!(
                        "line {}: expected \"MemTotal: <n> kB\", found {line:?}",
                        i + 1
                    ),
                )),
            };
        }
    }
    Err(err(path, "no MemTotal line"))
}

fn apic_ids_from_cpuinfo(text: &str) -> BTreeMap<u32, u32> {
    let mut out = BTreeMap::new();
    let mut processor = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => processor = v.trim().parse::<u32>().ok(),
            "apicid" => {
                if let (Some(p), Ok(a)) = (processor, v.trim().parse::<u32>()) {
                    out.insert(p, a);
                }
            }
            _ => {}
        }
    }
    out
}

/// The calling thread's affinity mask (OS indices), via `sched_getaffinity`.
pub fn affinity_mask() -> Option<CpuSet> {
    // SAFETY: `cpu_set_t` is plain old data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size and pointer describe `set`, which lives
    // across the call.
    let rc =
        unsafe { libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    let max = 8 * core::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` was filled by the kernel; CPU_ISSET only reads it, and `cpu < max` keeps the
    // index inside the set.
    Some(
        (0..max)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matches_sys_online() {
        let t = Topology::host().expect("this host's /sys parses");
        let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        assert_eq!(t.online_cpus(), CpuSet::parse_list(online.trim()).unwrap());
        assert!(t.allowed_cpus().is_some());
        assert!(t.num_nodes() >= 1);
    }

    #[test]
    fn meminfo_and_sizes_parse_or_say_why() {
        let p = Path::new("/x/meminfo");
        assert_eq!(
            parse_meminfo(p, "Node 0 MemTotal:  1024 kB\n").unwrap(),
            1 << 20
        );
        let e = parse_meminfo(p, "Node 0 MemTotal: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/meminfo") && e.contains("line 1"), "{e}");
        assert_eq!(parse_cache_size(p, "32K\n").unwrap(), 32 << 10);
        assert!(parse_cache_size(p, "32Q").is_err());
    }
}
