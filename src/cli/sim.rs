//! `manycore sim`: compare scheduling policies on a simulated machine; `manycore sim sweep` runs
//! topologies × policies × seeds in parallel into one CSV.
//!
//! With no arguments it runs every policy on the default preset and workload and prints the
//! side-by-side table (the README's main command).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use manycore_sim::engine::RunOptions;
use manycore_sim::params::parse_kv;
use manycore_sim::progress::Bar;
use manycore_sim::sweep::{Sweep, parse_seeds};
use manycore_sim::{
    CostModel, Machine, Scenario, plot, presets, sched_bridge, topo_source, workload,
};

use super::print_stdout;

/// Arguments of `manycore sim`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    command: Option<SimCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Run topologies × policies × seeds in parallel into one CSV.
    Sweep(SweepArgs),
    /// List presets, workloads and policies.
    List,
}

/// What one comparison needs.
#[derive(Args, Debug, Clone)]
struct CommonArgs {
    /// Workload: fork-join, server, pipeline, imbalanced, memory-bound, producer-consumer, trace.
    #[arg(long, short, value_name = "NAME", default_value = workload::DEFAULT)]
    workload: String,
    /// A workload parameter, `key=value` (repeatable), e.g. `--param load=0.9`.
    #[arg(long = "param", short = 'p', value_name = "K=V")]
    params: Vec<String>,
    /// Policies to compare: a comma-separated list of topology, random, nosteal, global, linux,
    /// or `all`.
    #[arg(long, value_name = "LIST", default_value = "all")]
    policy: String,
    /// A cost-model file (TOML, or JSON by extension); unset fields keep the defaults.
    #[arg(long, value_name = "FILE")]
    cost_model: Option<PathBuf>,
    /// A runnable task counts as waiting "too long" for wasted-core time after this many ns.
    #[arg(long, value_name = "NS", default_value_t = 100_000)]
    wasted_threshold_ns: u64,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A preset name, `host`, an hwloc XML file, a sysfs directory, or a synthetic description.
    #[arg(long, short, value_name = "STR|FILE|PRESET", default_value = presets::DEFAULT_PRESET)]
    topology: String,
    #[command(flatten)]
    common: CommonArgs,
    /// The seed every random choice derives from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of the table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV instead of the table.
    #[arg(long)]
    csv: bool,
    /// Write SVG charts (latency CDF, per-CPU utilization heatmaps) into this directory.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Write the schedule as Chrome/Perfetto trace-event JSON.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Most events written to the trace file.
    #[arg(long, value_name = "N", default_value_t = 500_000)]
    trace_max_events: u64,
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// A topology (repeatable); see `manycore sim --help`.
    #[arg(long, short, value_name = "STR|FILE|PRESET", required = true)]
    topology: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
    /// Seeds: a count N (seeds 1..=N) or a list `1,5,9`.
    #[arg(long, value_name = "N|LIST", default_value = "3")]
    seeds: String,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Write the CSV here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn options(common: &CommonArgs, seed: u64) -> Result<RunOptions, String> {
    let cost = match &common.cost_model {
        Some(p) => CostModel::load(p)?,
        None => CostModel::default(),
    };
    Ok(RunOptions {
        seed,
        cost,
        wasted_threshold_ns: common.wasted_threshold_ns,
        ..RunOptions::default()
    })
}

fn params(common: &CommonArgs) -> Result<Vec<(String, String)>, String> {
    common.params.iter().map(|s| parse_kv(s)).collect()
}

/// Runs `manycore sim`.
pub fn run(args: &SimArgs) -> Result<ExitCode, String> {
    match &args.command {
        Some(SimCommand::Sweep(s)) => sweep(s),
        Some(SimCommand::List) => {
            print_stdout(&list());
            Ok(ExitCode::SUCCESS)
        }
        None => compare(&args.run),
    }
}

fn list() -> String {
    let mut out = String::from("presets:\n");
    for p in presets::PRESETS {
        let mark = if p.name == presets::DEFAULT_PRESET {
            " (default)"
        } else {
            ""
        };
        out.push_str(&format!("  {:<14} {}{mark}\n", p.name, p.description));
    }
    out.push_str(&format!(
        "workloads: {} (default {})\n",
        workload::NAMES.join(", "),
        workload::DEFAULT
    ));
    out.push_str(&format!(
        "policies: {}\n",
        sched_bridge::POLICIES.join(", ")
    ));
    out
}

fn compare(a: &RunArgs) -> Result<ExitCode, String> {
    let topo = topo_source::load(&a.topology)?;
    let policies = sched_bridge::parse_list(&a.common.policy)?;
    let mut scenario = Scenario::new(
        &a.topology,
        Machine::new(topo),
        &a.common.workload,
        params(&a.common)?,
        policies,
    );
    scenario.opts = options(&a.common, a.seed)?;
    scenario.trace_path = a.trace.clone();
    scenario.trace_max_events = a.trace_max_events;
    scenario.validate()?;

    let bar = Bar::new("simulating", "tasks");
    let n_policies = scenario.policies.len() as u64;
    let mut cb = |i: usize, done: u64, expected: Option<u64>| {
        if let Some(e) = expected {
            bar.set_total_once(e * n_policies);
            bar.set(i as u64 * e + done);
        }
    };
    let result = scenario.run(Some(&mut cb));
    bar.finish();
    let (report, results) = result?;
    if a.json {
        print_stdout(&format!("{}\n", report.to_json()));
    } else if a.csv {
        print_stdout(&report.to_csv());
    } else {
        print_stdout(&report.to_table());
    }
    if let Some(dir) = &a.plot {
        let files = plot::write_all(
            dir,
            &format!("{} / {}", a.topology, a.common.workload),
            &results,
        )?;
        eprintln!(
            "manycore sim: wrote {} charts to {}",
            files.len(),
            dir.display()
        );
    }
    if let Some(t) = &a.trace {
        eprintln!(
            "manycore sim: wrote the schedule trace to {} (open it in ui.perfetto.dev or chrome://tracing)",
            t.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn sweep(a: &SweepArgs) -> Result<ExitCode, String> {
    let mut topologies = Vec::new();
    for t in &a.topology {
        topologies.push((t.clone(), Machine::new(topo_source::load(t)?)));
    }
    if a.threads == Some(0) {
        return Err("--threads 0: expected at least one thread".to_string());
    }
    let sw = Sweep {
        topologies,
        workload: a.common.workload.clone(),
        params: params(&a.common)?,
        policies: sched_bridge::parse_list(&a.common.policy)?,
        seeds: parse_seeds(&a.seeds)?,
        opts: options(&a.common, 0)?,
    };
    let bar = Bar::new("sweep", "runs");
    bar.set_total_once(sw.jobs() as u64);
    let csv = sw.run(a.threads, &|| bar.inc());
    bar.finish();
    let csv = csv?;
    match &a.out {
        Some(p) => {
            std::fs::write(p, csv)
                .map_err(|e| format!("--out {}: cannot write: {e}", p.display()))?;
            eprintln!(
                "manycore sim sweep: wrote {} runs to {}",
                sw.jobs(),
                p.display()
            );
        }
        None => print_stdout(&csv),
    }
    Ok(ExitCode::SUCCESS)
}
