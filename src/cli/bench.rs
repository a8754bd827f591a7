//! `manycore bench`: context-switch, yield, wake-to-run and spawn costs of this runtime, side by
//! side with OS threads, corosensei and tokio, measured in one run on this machine.
//!
//! # Method
//! - **Clock**: the serialized TSC (`lfence; rdtsc; lfence`) when CPUID reports it invariant,
//!   calibrated against `CLOCK_MONOTONIC`; otherwise `Instant` (`bench/clock.rs`). The report
//!   names the clock used.
//! - **Samples**: every row runs one warm-up batch, then `--samples` timed batches (default 201)
//!   of a fixed number of operations; each batch gives one per-operation sample. The row reports
//!   the median and the 99th percentile (nearest rank) of those samples, and the total number of
//!   timed operations (`iters`).
//! - **Pinning**: "same core" rows run on the first CPU of the host, "cross core" rows on the
//!   first and the last; plain threads are pinned with `sched_setaffinity` (and unpinned
//!   afterwards), runtime workers pin themselves. Rows inside a runtime time inside one of its
//!   tasks.
//! - **Units**: nanoseconds per one-way switch (`switch.*`, `pingpong.*`), per yield, per
//!   spawn+join.
//! - **Spawn+join, two rows**: `spawn_join.manycore` is the runtime as built by default, where a
//!   join of a child that has not started runs it inline on the joiner's stack
//!   (`Builder::join_inline`); `spawn_join.manycore_no_inline` turns that off, so every child gets
//!   a stack of its own and runs after a switch, as a tokio child does.
//!
//! On a shared VM, compare rows of one run, not runs.

mod calibrate;
mod clock;
mod rows;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use manycore_topology::Topology;
use serde_json::json;

use self::clock::{Clock, Samples};
use self::rows::Ctx;
use super::print_stdout;

/// Arguments of `manycore bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print a JSON report instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed batches per row (the median and p99 are over these).
    #[arg(long, default_value_t = 201, value_parser = clap::value_parser!(u32).range(3..=100_000))]
    samples: u32,
    /// Multiply every batch's length (0.1 for a quick look, 10 for steadier figures).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Run only rows whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Also write a simulator cost model measured on this host to FILE (the format
    /// `manycore sim --cost-model FILE` reads). Needs every row (no --only).
    #[arg(long, value_name = "FILE")]
    calibrate: Option<PathBuf>,
}

struct Row {
    name: &'static str,
    median_ns: f64,
    p99_ns: f64,
    iters: u64,
}

/// Row names, in report order.
const ROWS: [&str; 13] = [
    "switch.raw",
    "switch.corosensei",
    "yield.manycore",
    "yield.tokio",
    "yield.os",
    "pingpong.same_core.manycore",
    "pingpong.same_core.os_futex",
    "pingpong.cross_core.manycore",
    "pingpong.cross_core.os_futex",
    "pingpong.cross_core.tokio",
    "spawn_join.manycore",
    "spawn_join.manycore_no_inline",
    "spawn_join.tokio",
];

/// Runs `manycore bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode, String> {
    if !(args.scale.is_finite() && (0.001..=1000.0).contains(&args.scale)) {
        return Err(format!(
            "--scale {}: expected a factor between 0.001 and 1000",
            args.scale
        ));
    }
    if args.calibrate.is_some() && args.only.is_some() {
        return Err("--calibrate uses every row; drop --only".into());
    }
    let selected: Vec<&'static str> = ROWS
        .iter()
        .copied()
        .filter(|n| args.only.as_deref().is_none_or(|o| n.contains(o)))
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "--only {:?} matches no row (rows: {})",
            args.only.as_deref().unwrap_or(""),
            ROWS.join(", ")
        ));
    }
    let host = Topology::host().map_err(|e| format!("cannot read the host topology: {e}"))?;
    let os0 = host.pu(0).os_index as usize;
    let os1 = host.pu(host.num_cpus() - 1).os_index as usize;
    let clock = Clock::new();
    let c = Ctx {
        clock,
        samples: args.samples,
        scale: args.scale,
        os0,
        os1,
    };
    let mut results = Vec::new();
    let mut cross_fraction = None;
    for name in selected {
        if !args.json {
            eprint!("  measuring {name}...          \r");
        }
        let s: Samples = match name {
            "switch.raw" => rows::raw_switch(&c),
            "switch.corosensei" => rows::corosensei_switch(&c),
            "yield.manycore" => rows::manycore_yield(&c),
            "yield.tokio" => rows::tokio_yield(&c),
            "yield.os" => rows::os_yield(&c),
            "pingpong.same_core.manycore" => {
                rows::manycore_pingpong(&c, false, 1_000).map(|p| p.samples)
            }
            "pingpong.same_core.os_futex" => rows::os_futex_pingpong(&c, (os0, os0), 50),
            "pingpong.cross_core.manycore" => rows::manycore_pingpong(&c, true, 500).map(|p| {
                cross_fraction = Some(p.cross_fraction);
                p.samples
            }),
            "pingpong.cross_core.os_futex" => rows::os_futex_pingpong(&c, (os0, os1), 25),
            "pingpong.cross_core.tokio" => rows::tokio_pingpong_cross(&c),
            "spawn_join.manycore" => rows::manycore_spawn_join(&c, true),
            "spawn_join.manycore_no_inline" => rows::manycore_spawn_join(&c, false),
            "spawn_join.tokio" => rows::tokio_spawn_join(&c),
            other => unreachable!("row {other} is listed but not measured"),
        }
        .map_err(|e| format!("bench row {name}: {e}"))?;
        let (median_ns, p99_ns) = s.median_p99();
        results.push(Row {
            name,
            median_ns,
            p99_ns,
            iters: s.ops,
        });
    }
    if !args.json {
        eprint!("                                                  \r");
    }
    let calibrated = match &args.calibrate {
        None => None,
        Some(path) => {
            let med = |n: &str| {
                results
                    .iter()
                    .find(|r| r.name == n)
                    .map(|r| r.median_ns)
                    .unwrap_or(f64::NAN)
            };
            let m = calibrate::Measured {
                yield_manycore: med("yield.manycore"),
                futex_same: med("pingpong.same_core.os_futex"),
                futex_cross: med("pingpong.cross_core.os_futex"),
            };
            Some(calibrate::write(&c, &host, &m, path)?)
        }
    };
    let model = cpu_model();
    if args.json {
        let machine = json!({
            "cpu_model": model,
            "cpus": host.num_cpus(),
            "nodes": host.num_nodes(),
            "packages": host.num_packages(),
            "same_core_cpu": os0,
            "cross_core_cpus": [os0, os1],
            "clock": clock.name(),
            "tsc_invariant": clock::invariant_tsc(),
            "tsc_ghz": clock.tsc_ghz(),
            "samples_per_row": args.samples,
            "pingpong_cross_core_manycore_apart_fraction": cross_fraction,
        });
        let rows: Vec<_> = results
            .iter()
            .map(|r| json!({"name": r.name, "median_ns": r.median_ns, "p99_ns": r.p99_ns, "iters": r.iters}))
            .collect();
        let text = serde_json::to_string_pretty(&json!({"machine": machine, "results": rows}))
            .map_err(|e| format!("cannot encode the report: {e}"))?;
        print_stdout(&(text + "\n"));
    } else {
        let mut out = format!(
            "machine: {model}, {} CPU(s), {} node(s), {} package(s); same core = P#{os0}, cross core = P#{os0}/P#{os1}\n\
             clock: {}; {} samples per row\n\n",
            host.num_cpus(),
            host.num_nodes(),
            host.num_packages(),
            match clock.tsc_ghz() {
                Some(g) => format!("invariant TSC at {g:.3} GHz (serialized reads)"),
                None => "CLOCK_MONOTONIC (no invariant TSC)".into(),
            },
            args.samples
        );
        out.push_str(&format!(
            "{:<30} {:>12} {:>12} {:>12}\n",
            "benchmark", "median ns", "p99 ns", "iters"
        ));
        for r in &results {
            out.push_str(&format!(
                "{:<30} {:>12.1} {:>12.1} {:>12}\n",
                r.name, r.median_ns, r.p99_ns, r.iters
            ));
        }
        out.push_str(
            "\nper operation: one-way switch (switch.*, pingpong.*), one yield, one spawn+join\n",
        );
        if let Some(f) = cross_fraction {
            out.push_str(&format!(
                "pingpong.cross_core.manycore: the two tasks ran on different CPUs in {:.1}% of rounds\n",
                f * 100.0
            ));
        }
        print_stdout(&out);
    }
    if let Some(line) = calibrated {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The CPU model from /proc/cpuinfo (or "unknown CPU").
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
