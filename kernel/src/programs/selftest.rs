//! `selftest`: every check names the property it attacks; the program passes only if all pass.
//!
//! Checks (each bounded in time; a hang becomes a failure with a message):
//! - `every_cpu_online`: every CPU in the MADT reached Rust.
//! - `every_cpu_matches_firmware`: on each CPU, its LAPIC id, CPUID initial APIC id and x2APIC id
//!   equal the MADT's id for it, its CPUID topology shifts equal the BSP's, and the package its
//!   APIC id decodes to is the package the topology puts it in.
//! - `wake_ipi_reaches_every_cpu`: a wake IPI sent to each halted CPU is taken by that CPU.
//! - `timer_fires_on_every_cpu`: a one-shot LAPIC timer armed on each CPU interrupts that CPU.
//! - `frames_come_from_their_node`: frames taken from each node's pool lie in that node's SRAT
//!   ranges, and each pool holds RAM on its node only.
//! - the thread, preemption, mutex, channel and remote-free checks of [`super::selftest_sched`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use manycore_topology::cpuid::ApicLayout;

use crate::exit::ExitCode;
use crate::json::Json;
use crate::mem::frames;
use crate::percpu;
use crate::sync::SpinLock;
use crate::{boot, kprintln, report, smpcall, time};

/// Bound on waiting for other CPUs in one check.
const WAIT_MS: u64 = 10_000;

/// One check's outcome.
pub struct Check {
    /// Name of the property (stable: the host and tests look for it).
    pub name: &'static str,
    /// Whether it held.
    pub pass: bool,
    /// What was measured or what went wrong.
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self {
                name,
                pass: true,
                detail,
            },
            Err(detail) => Self {
                name,
                pass: false,
                detail,
            },
        }
    }
}

/// `key=value` from the program's arguments.
fn arg_usize(args: &[&str], key: &str) -> Option<usize> {
    args.iter()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Runs all checks and prints the `RESULT` line. `args` are the words after `selftest`
/// (`threads=N` sets the thread count of `every_thread_runs_once`).
pub fn run(args: &[&str]) -> ExitCode {
    let mut checks = alloc::vec![
        Check::new("every_cpu_online", every_cpu_online()),
        Check::new("every_cpu_matches_firmware", every_cpu_matches_firmware()),
        Check::new("wake_ipi_reaches_every_cpu", wake_ipi_reaches_every_cpu()),
        Check::new("timer_fires_on_every_cpu", timer_fires_on_every_cpu()),
        Check::new("frames_come_from_their_node", frames_come_from_their_node()),
    ];
    let threads = arg_usize(args, "threads").unwrap_or(super::selftest_sched::THREADS_DEFAULT);
    checks.push(Check::new(
        "every_thread_runs_once",
        super::selftest_sched::every_thread_runs_once(threads),
    ));
    checks.push(Check::new(
        "mutex_is_exact_under_contention",
        super::selftest_sched::mutex_is_exact_under_contention(),
    ));
    checks.push(Check::new(
        "channel_keeps_order_and_loses_nothing",
        super::selftest_sched::channel_keeps_order_and_loses_nothing(),
    ));
    checks.push(Check::new(
        "cpu_bound_thread_is_preempted",
        super::selftest_sched::cpu_bound_thread_is_preempted(),
    ));
    checks.push(Check::new(
        "remote_frees_return_home",
        super::selftest_sched::remote_frees_return_home(),
    ));
    let pass = checks.iter().all(|c| c.pass);
    for c in &checks {
        kprintln!(
            "selftest: {:<32} {} {}",
            c.name,
            if c.pass { "ok  " } else { "FAIL" },
            c.detail
        );
    }
    let mut j = Json::new();
    j.begin_object();
    j.field_str("program", "selftest");
    j.field_bool("pass", pass);
    j.field_uint(
        "cpus_online",
        percpu::all()
            .iter()
            .filter(|c| c.online.load(Ordering::Acquire))
            .count() as u64,
    );
    j.key("topology");
    report::topology(&mut j, &boot::machine().topology);
    let sum = |f: fn(&percpu::PerCpu) -> u64| percpu::all().iter().map(|c| f(c)).sum::<u64>();
    j.key("sched").begin_object();
    j.field_uint(
        "switches",
        sum(|c| c.sched.switches.load(Ordering::Relaxed)),
    );
    j.field_uint(
        "preemptions",
        sum(|c| c.sched.preemptions.load(Ordering::Relaxed)),
    );
    j.field_uint(
        "threads_run",
        sum(|c| c.sched.threads_run.load(Ordering::Relaxed)),
    );
    j.field_uint(
        "pinned_forwards",
        sum(|c| c.sched.pinned_forwards.load(Ordering::Relaxed)),
    );
    // manycore-sched's own counters: tasks stolen per tier (in `TierKind::ALL` order), wake
    // placements per reason, parks.
    let counters = crate::thread::scheduler().counters();
    j.key("stolen_by_tier").begin_object();
    for tier in manycore_topology::TierKind::ALL {
        j.field_uint(tier.name(), counters.stolen_tasks_by_tier[tier.index()]);
    }
    j.end_object();
    j.key("wakes_by_reason").begin_object();
    for reason in manycore_sched::WakeReason::ALL {
        j.field_uint(reason.name(), counters.wakes_by_reason[reason.index()]);
    }
    j.end_object();
    j.field_uint("parks", counters.parks);
    j.end_object();
    j.key("checks").begin_array();
    for c in &checks {
        j.begin_object();
        j.field_str("name", c.name);
        j.field_bool("pass", c.pass);
        j.field_str("detail", &c.detail);
        j.end_object();
    }
    j.end_array();
    j.end_object();
    super::result_line(j.finish());
    if pass { ExitCode::Pass } else { ExitCode::Fail }
}

/// Waits until `done()` or the bound passes.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ns() + WAIT_MS * 1_000_000;
    while !done() {
        if time::now_ns() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn every_cpu_online() -> Result<String, String> {
    let all = percpu::all();
    let offline: Vec<usize> = all
        .iter()
        .filter(|c| !c.online.load(Ordering::Acquire))
        .map(|c| c.cpu)
        .collect();
    if offline.is_empty() {
        Ok(format!("{} CPUs", all.len()))
    } else {
        Err(format!("offline CPUs: {offline:?}"))
    }
}

/// One CPU's outcome of the firmware comparison (`None` until it answered).
type FwResult = Option<Result<(), String>>;

/// Per-CPU outcome of the firmware comparison (index = logical CPU).
static FW_RESULTS: SpinLock<Vec<FwResult>> = SpinLock::new(Vec::new());

fn verify_this_cpu() -> Result<(), String> {
    let me = percpu::current();
    let machine = boot::machine();
    let topo = &machine.topology;
    let lapic_id = me.with_lapic(|l| l.id()).ok_or("no LAPIC driver")?;
    if lapic_id != me.apic_id {
        return Err(format!(
            "CPU {}: LAPIC id {lapic_id} but MADT {}",
            me.cpu, me.apic_id
        ));
    }
    let cpuid_apic = ApicLayout::current_apic_id(&raw_cpuid::CpuIdReaderNative);
    if cpuid_apic != me.apic_id {
        return Err(format!(
            "CPU {}: CPUID APIC id {cpuid_apic} but MADT {}",
            me.cpu, me.apic_id
        ));
    }
    let layout = crate::discovery::apic_layout_of_this_cpu()?;
    if layout != machine.apic_layout {
        return Err(format!(
            "CPU {}: CPUID topology {layout:?} differs from the BSP's {:?}",
            me.cpu, machine.apic_layout
        ));
    }
    let package = me.apic_id.checked_shr(layout.package_shift).unwrap_or(0);
    let pu = topo.pu(me.cpu);
    let topo_package = topo.packages()[pu.package].os_index;
    if package != topo_package {
        return Err(format!(
            "CPU {}: APIC id decodes to package {package}, topology says {topo_package}",
            me.cpu
        ));
    }
    for &sibling in &topo.cores()[pu.core].pus {
        let other = topo.pu(sibling).apic_id.unwrap_or(u32::MAX);
        if other >> layout.smt_shift != me.apic_id >> layout.smt_shift {
            return Err(format!(
                "CPU {}: core sibling {sibling} has APIC id {other} outside this core",
                me.cpu
            ));
        }
    }
    if pu.node != me.node {
        return Err(format!(
            "CPU {}: per-CPU node {} differs from the topology's {}",
            me.cpu, me.node, pu.node
        ));
    }
    Ok(())
}

fn record_fw_result(_: usize) {
    let r = verify_this_cpu();
    let cpu = percpu::current().cpu;
    FW_RESULTS.lock()[cpu] = Some(r);
}

fn every_cpu_matches_firmware() -> Result<String, String> {
    let n = percpu::all().len();
    *FW_RESULTS.lock() = (0..n).map(|_| None).collect();
    let me = percpu::current().cpu;
    for cpu in 0..n {
        if cpu == me {
            record_fw_result(0);
        } else {
            smpcall::run_on(cpu, record_fw_result, 0)?;
        }
    }
    if !wait_until(|| FW_RESULTS.lock().iter().all(Option::is_some)) {
        return Err("some CPUs did not answer within 10 s".into());
    }
    let results = FW_RESULTS.lock();
    for r in results.iter().flatten() {
        if let Err(e) = r {
            return Err(e.clone());
        }
    }
    Ok(format!(
        "{n} CPUs: LAPIC, CPUID and MADT ids agree; packages and cores match"
    ))
}

fn wake_ipi_reaches_every_cpu() -> Result<String, String> {
    let me = percpu::current().cpu;
    let others: Vec<usize> = (0..percpu::all().len()).filter(|&c| c != me).collect();
    let before: Vec<u64> = others
        .iter()
        .map(|&c| percpu::get(c).wake_ipis.load(Ordering::Relaxed))
        .collect();
    for &c in &others {
        smpcall::wake(c);
    }
    let ok = wait_until(|| {
        others
            .iter()
            .zip(&before)
            .all(|(&c, &b)| percpu::get(c).wake_ipis.load(Ordering::Relaxed) > b)
    });
    if ok {
        Ok(format!("{} CPUs woken", others.len()))
    } else {
        let missing: Vec<usize> = others
            .iter()
            .zip(&before)
            .filter(|&(&c, &b)| percpu::get(c).wake_ipis.load(Ordering::Relaxed) <= b)
            .map(|(&c, _)| c)
            .collect();
        Err(format!("no wake IPI taken by CPUs {missing:?}"))
    }
}

fn arm_timer(ticks: usize) {
    percpu::current().with_lapic(|l| l.timer_oneshot(ticks as u32));
}

fn timer_fires_on_every_cpu() -> Result<String, String> {
    let n = percpu::all().len();
    let before: Vec<u64> = (0..n)
        .map(|c| percpu::get(c).timer_ticks.load(Ordering::Relaxed))
        .collect();
    let ticks = time::apic_ticks_per_ms() as usize;
    let me = percpu::current().cpu;
    for cpu in 0..n {
        if cpu == me {
            arm_timer(ticks);
        } else {
            smpcall::run_on(cpu, arm_timer, ticks)?;
        }
    }
    let ok = wait_until(|| {
        (0..n).all(|c| percpu::get(c).timer_ticks.load(Ordering::Relaxed) > before[c])
    });
    if ok {
        Ok(format!("{n} CPUs took a 1 ms one-shot timer interrupt"))
    } else {
        let missing: Vec<usize> = (0..n)
            .filter(|&c| percpu::get(c).timer_ticks.load(Ordering::Relaxed) <= before[c])
            .collect();
        Err(format!("no timer interrupt on CPUs {missing:?}"))
    }
}

fn frames_come_from_their_node() -> Result<String, String> {
    let topo = &boot::machine().topology;
    let mut summary = String::new();
    for node in 0..topo.num_nodes() {
        let stats = frames::stats(node);
        let Some(p) = frames::alloc(node, 64 * 1024, 4096) else {
            if stats.total_bytes == 0 {
                summary.push_str(&format!("node {node}: memoryless; "));
                continue;
            }
            return Err(format!(
                "node {node}: no 64 KiB run in a pool of {} bytes",
                stats.free_bytes
            ));
        };
        let owner = frames::node_of(p);
        let end_owner = frames::node_of(p + 64 * 1024 - 1);
        // SAFETY: just taken with this size, never used.
        unsafe { frames::free(p, 64 * 1024) };
        if owner != Some(node) || end_owner != Some(node) {
            return Err(format!(
                "node {node}: frames at {p:#x} belong to {owner:?}/{end_owner:?} by the SRAT"
            ));
        }
        summary.push_str(&format!(
            "node {node}: {} MiB at {p:#x}; ",
            stats.total_bytes >> 20
        ));
    }
    Ok(summary)
}
