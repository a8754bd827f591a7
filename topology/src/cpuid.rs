//! x86 CPUID: how an APIC id splits into thread, core and package, and which APIC ids share
//! each cache (no_std; decoding through `raw-cpuid`).
//!
//! CPUID only describes the CPU that executes it, so discovery has two pure steps that tests can
//! drive with recorded leaves (any [`raw_cpuid::CpuIdReader`], e.g. a closure over a table):
//!
//! 1. [`ApicLayout::from_cpuid`] reads the bit layout: leaf 0x1F (or 0xB) gives the SMT and
//!    package shifts; AMD parts without 0xB fall back to 0x8000001E (threads per core) and
//!    0x80000008 (core id size); cache leaves 4 (Intel) / 0x8000001D (AMD) give each cache's size
//!    and how many APIC ids share it, so `apic_id >> share_shift` names the cache instance.
//! 2. [`ApicLayout::desc_from_apic_ids`] turns a list of `(OS index, APIC id)` into a
//!    [`TopologyDesc`] (no NUMA nodes: those come from ACPI SRAT or sysfs).
//!
//! Leaf 0xB/0x1F level types are decoded here from the raw registers rather than through
//! `raw-cpuid`'s enum, whose conversion panics on reserved values: recorded or hostile input
//! must give an error, never a panic.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use raw_cpuid::{CacheType, CpuId, CpuIdReader};

use crate::desc::{CacheDesc, CacheKind, PuDesc, TopologyDesc};
use crate::error::{Error, ErrorKind};

/// One cache level as CPUID describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidCache {
    /// Size and kind.
    pub desc: CacheDesc,
    /// `apic_id >> share_shift` is the same for all logical processors sharing one instance.
    pub share_shift: u32,
}

/// How APIC ids decompose on this CPU model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApicLayout {
    /// `apic_id >> smt_shift` identifies the core.
    pub smt_shift: u32,
    /// `apic_id >> package_shift` identifies the package.
    pub package_shift: u32,
    /// Cache levels (data, instruction and unified).
    pub caches: Vec<CpuidCache>,
}

const MAX_SUBLEAVES: u32 = 8;
const MAX_CACHE_LEVELS: usize = 8;

fn cpuid_err(msg: impl Into<alloc::string::String>) -> Error {
    Error::new(ErrorKind::Cpuid, "", msg)
}

/// Ceiling of log2 for a count of ids (0 for 0 or 1).
fn bits_for(count: u32) -> u32 {
    if count <= 1 {
        0
    } else {
        32 - (count - 1).leading_zeros()
    }
}

impl ApicLayout {
    /// Reads the layout through `cpuid` (see the module docs).
    pub fn from_cpuid<R: CpuIdReader>(cpuid: &CpuId<R>, reader: &R) -> Result<ApicLayout, Error> {
        let max_basic = reader.cpuid1(0).eax;
        let max_ext = reader.cpuid1(0x8000_0000).eax;
        let mut smt_shift = None;
        let mut package_shift = None;
        for leaf in [0x1Fu32, 0xB] {
            if max_basic < leaf {
                continue;
            }
            let mut found = false;
            for sub in 0..MAX_SUBLEAVES {
                let r = reader.cpuid2(leaf, sub);
                let level_type = (r.ecx >> 8) & 0xff;
                if level_type == 0 {
                    break;
                }
                found = true;
                let shift = r.eax & 0x1f;
                if level_type == 1 {
                    smt_shift = Some(shift);
                }
                // The last valid level's shift leads to the package id.
                package_shift = Some(shift);
            }
            if found {
                break;
            }
        }
        if package_shift.is_none() && max_ext >= 0x8000_0008 {
            // AMD without leaf 0xB: core id size from 0x80000008, threads per core from 0x8000001E.
            let core_id_size = (reader.cpuid1(0x8000_0008).ecx >> 12) & 0xf;
            let threads = if max_ext >= 0x8000_001E {
                ((reader.cpuid1(0x8000_001E).ebx >> 8) & 0xff) + 1
            } else {
                1
            };
            if core_id_size != 0 {
                smt_shift = Some(bits_for(threads));
                package_shift = Some(core_id_size);
            }
        }
        if package_shift.is_none() && max_basic >= 1 {
            // Oldest fallback: leaf 1's count of addressable logical processor ids.
            let count = (reader.cpuid1(1).ebx >> 16) & 0xff;
            smt_shift = Some(0);
            package_shift = Some(bits_for(count));
        }
        let package_shift = package_shift.ok_or_else(|| {
            cpuid_err("no topology leaf (0x1F, 0xB, 0x80000008 or 1) is available")
        })?;
        let smt_shift = smt_shift.unwrap_or(0);
        if smt_shift > package_shift || package_shift > 31 {
            return Err(cpuid_err(format!(
                "inconsistent shifts: SMT {smt_shift}, package {package_shift}"
            )));
        }
        let mut caches = Vec::new();
        if let Some(params) = cpuid.get_cache_parameters() {
            for p in params.take(MAX_CACHE_LEVELS) {
                let kind = match p.cache_type() {
                    CacheType::Data => CacheKind::Data,
                    CacheType::Instruction => CacheKind::Instruction,
                    CacheType::Unified => CacheKind::Unified,
                    _ => continue,
                };
                let level = p.level();
                if !(1..=4).contains(&level) {
                    return Err(cpuid_err(format!("cache level {level} is outside 1..=4")));
                }
                let size_bytes = (p.associativity() as u64)
                    .saturating_mul(p.physical_line_partitions() as u64)
                    .saturating_mul(p.coherency_line_size() as u64)
                    .saturating_mul(p.sets() as u64);
                caches.push(CpuidCache {
                    desc: CacheDesc {
                        level,
                        kind,
                        size_bytes,
                        line_bytes: p.coherency_line_size() as u32,
                        associativity: if p.is_fully_associative() {
                            -1
                        } else {
                            p.associativity() as i32
                        },
                    },
                    share_shift: bits_for(p.max_cores_for_cache() as u32).min(31),
                });
            }
        }
        Ok(ApicLayout {
            smt_shift,
            package_shift,
            caches,
        })
    }

    /// The APIC id of the CPU executing `reader` (x2APIC id from leaf 0xB, else leaf 1's id).
    pub fn current_apic_id<R: CpuIdReader>(reader: &R) -> u32 {
        let max_basic = reader.cpuid1(0).eax;
        if max_basic >= 0xB && (reader.cpuid2(0xB, 0).ecx >> 8) & 0xff != 0 {
            return reader.cpuid2(0xB, 0).edx;
        }
        reader.cpuid1(1).ebx >> 24
    }

    /// Builds a description of the CPUs `(OS index, APIC id)` (no NUMA nodes).
    pub fn desc_from_apic_ids(&self, cpus: &[(u32, u32)]) -> TopologyDesc {
        let mut desc = TopologyDesc::default();
        let mut instances: BTreeMap<(usize, u32), usize> = BTreeMap::new();
        for &(os_index, apic) in cpus {
            let caches = self
                .caches
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    *instances
                        .entry((i, apic >> c.share_shift))
                        .or_insert_with(|| desc.add_cache(c.desc))
                })
                .collect();
            desc.pus.push(PuDesc {
                os_index,
                apic_id: Some(apic),
                package: apic.checked_shr(self.package_shift).unwrap_or(0),
                core: u64::from(apic >> self.smt_shift),
                node: None,
                caches,
            });
        }
        desc
    }
}

/// The host's CPUs by CPUID: each CPU of the affinity mask is visited by a helper thread pinned
/// to it (the caller's affinity is untouched). No NUMA nodes: combine with sysfs or SRAT.
#[cfg(feature = "std")]
pub fn host_desc() -> Result<TopologyDesc, Error> {
    let mask =
        crate::sysfs::affinity_mask().ok_or_else(|| cpuid_err("sched_getaffinity failed"))?;
    let cpus: Vec<usize> = mask.iter().collect();
    let ids = std::thread::spawn(move || {
        let mut out = Vec::new();
        for cpu in cpus {
            // SAFETY: `cpu_set_t` is plain data; zeroed is the empty set; CPU_SET writes inside it
            // because `cpu` came from a mask of the same type.
            let pinned = unsafe {
                let mut set: libc::cpu_set_t = core::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            };
            if pinned {
                out.push((
                    cpu as u32,
                    ApicLayout::current_apic_id(&raw_cpuid::CpuIdReaderNative),
                ));
            }
        }
        out
    })
    .join()
    .map_err(|_| cpuid_err("the pinning thread panicked"))?;
    let reader = raw_cpuid::CpuIdReaderNative;
    let layout = ApicLayout::from_cpuid(&CpuId::with_cpuid_reader(reader), &reader)?;
    Ok(layout.desc_from_apic_ids(&ids))
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use raw_cpuid::CpuIdResult;

    use super::*;
    use crate::{TierKind, Topology};

    type Dump = BTreeMap<(u32, u32), [u32; 4]>;

    fn reader(dump: Dump) -> impl Fn(u32, u32) -> CpuIdResult + Clone {
        move |leaf, sub| {
            let r = dump
                .get(&(leaf, sub))
                .or_else(|| dump.get(&(leaf, u32::MAX)))
                .copied()
                .unwrap_or([0; 4]);
            CpuIdResult {
                eax: r[0],
                ebx: r[1],
                ecx: r[2],
                edx: r[3],
            }
        }
    }

    fn vendor(d: &mut Dump, max: u32, name: &[u8; 12]) {
        let w = |i: usize| u32::from_le_bytes([name[i], name[i + 1], name[i + 2], name[i + 3]]);
        d.insert((0, u32::MAX), [max, w(0), w(8), w(4)]);
    }

    /// Leaf 4 / 0x8000001D encoding: type, level, sharing-1 in 25:14; ways-1, partitions-1,
    /// line-1; sets-1.
    fn cache(level: u32, ty: u32, sharing: u32, ways: u32, line: u32, sets: u32) -> [u32; 4] {
        [
            ty | (level << 5) | ((sharing - 1) << 14),
            ((ways - 1) << 22) | (line - 1),
            sets - 1,
            0,
        ]
    }

    /// An Intel part: 4 cores x 2 threads per package, L1d/L1i/L2 per core, L3 per package.
    fn intel() -> Dump {
        let mut d = Dump::new();
        vendor(&mut d, 0xB, b"GenuineIntel");
        d.insert((0x8000_0000, u32::MAX), [0x8000_0008, 0, 0, 0]);
        d.insert((4, 0), cache(1, 1, 2, 12, 64, 64)); // 48 KiB L1d
        d.insert((4, 1), cache(1, 2, 2, 8, 64, 64)); // 32 KiB L1i
        d.insert((4, 2), cache(2, 3, 2, 16, 64, 2048)); // 2 MiB L2
        d.insert((4, 3), cache(3, 3, 16, 12, 64, 32768)); // 24 MiB L3, 16 ids share it
        d.insert((0xB, 0), [1, 2, 1 << 8, 0]);
        d.insert((0xB, 1), [3, 8, (2 << 8) | 1, 0]);
        d
    }

    /// An AMD part: 8 cores x 2 threads, L3 per CCX of 4 cores (8 ids).
    fn amd() -> Dump {
        let mut d = Dump::new();
        vendor(&mut d, 0xD, b"AuthenticAMD");
        d.insert((0x8000_0000, u32::MAX), [0x8000_001E, 0, 0, 0]);
        d.insert((0x8000_001D, 0), cache(1, 1, 2, 8, 64, 64));
        d.insert((0x8000_001D, 1), cache(1, 2, 2, 8, 64, 64));
        d.insert((0x8000_001D, 2), cache(2, 3, 2, 8, 64, 2048));
        d.insert((0x8000_001D, 3), cache(3, 3, 8, 16, 64, 32768));
        d.insert((0xB, 0), [1, 2, 1 << 8, 0]);
        d.insert((0xB, 1), [4, 16, (2 << 8) | 1, 0]);
        d
    }

    fn layout(d: Dump) -> ApicLayout {
        let r = reader(d);
        ApicLayout::from_cpuid(&CpuId::with_cpuid_reader(r.clone()), &r).unwrap()
    }

    #[test]
    fn intel_two_packages_from_apic_ids() {
        let l = layout(intel());
        assert_eq!((l.smt_shift, l.package_shift), (1, 3));
        assert_eq!(l.caches.len(), 4);
        assert_eq!(l.caches[0].desc.size_bytes, 48 << 10);
        assert_eq!(l.caches[3].desc.size_bytes, 24 << 20);
        // Two packages of 4 cores x 2 threads: APIC ids 0..8 and 16..24 (holes are normal).
        let cpus: Vec<(u32, u32)> = (0..16)
            .map(|i| (i, if i < 8 { i } else { 8 + i }))
            .collect();
        let t = Topology::build(l.desc_from_apic_ids(&cpus)).unwrap();
        assert_eq!((t.num_packages(), t.num_cores(), t.num_cpus()), (2, 8, 16));
        assert_eq!(t.caches().iter().filter(|c| c.level == 3).count(), 2);
        let kinds: Vec<_> = t.steal_order(0).iter().map(|x| x.kind).collect();
        assert_eq!(kinds, vec![TierKind::Smt, TierKind::Llc, TierKind::Node]);
    }

    #[test]
    fn amd_ccx_l3_from_0x8000001d() {
        let l = layout(amd());
        assert_eq!((l.smt_shift, l.package_shift), (1, 4));
        let cpus: Vec<(u32, u32)> = (0..16).map(|i| (i, i)).collect();
        let t = Topology::build(l.desc_from_apic_ids(&cpus)).unwrap();
        assert_eq!((t.num_packages(), t.num_cores()), (1, 8));
        let l3: Vec<_> = t
            .caches()
            .iter()
            .filter(|c| c.level == 3)
            .map(|c| c.cpus.to_string())
            .collect();
        assert_eq!(l3, ["0-7", "8-15"]);
    }

    #[test]
    fn reserved_level_types_and_garbage_never_panic() {
        let mut d = intel();
        d.insert((0xB, 0), [1, 2, 9 << 8, 0]); // reserved level type 9
        let r = reader(d);
        let _ = ApicLayout::from_cpuid(&CpuId::with_cpuid_reader(r.clone()), &r);
        // Pseudo-random leaves.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut d = Dump::new();
            for leaf in [
                0u32,
                1,
                4,
                0xB,
                0x1F,
                0x8000_0000,
                0x8000_0008,
                0x8000_001D,
                0x8000_001E,
            ] {
                for sub in [0u32, 1, 2, u32::MAX] {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    d.insert(
                        (leaf, sub),
                        [
                            x as u32,
                            (x >> 32) as u32,
                            (x >> 16) as u32,
                            (x >> 8) as u32,
                        ],
                    );
                }
            }
            let r = reader(d);
            if let Ok(l) = ApicLayout::from_cpuid(&CpuId::with_cpuid_reader(r.clone()), &r) {
                let _ = Topology::build(l.desc_from_apic_ids(&[(0, 0), (1, 1)]));
            }
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn host_cpuid_agrees_with_sysfs_counts() {
        let by_cpuid = Topology::build(host_desc().unwrap()).unwrap();
        let by_sysfs = Topology::host().unwrap();
        let allowed = by_sysfs
            .allowed_cpus()
            .cloned()
            .unwrap_or_else(|| by_sysfs.online_cpus());
        assert_eq!(by_cpuid.online_cpus(), allowed);
        if allowed == by_sysfs.online_cpus() {
            assert_eq!(by_cpuid.num_packages(), by_sysfs.num_packages());
            assert_eq!(by_cpuid.num_cores(), by_sysfs.num_cores());
        }
    }
}
