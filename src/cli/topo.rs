//! `manycore topo`: print a topology as an lstopo-like tree, as JSON, or one CPU's steal order.

use std::process::ExitCode;

use clap::Args;
use manycore_topology::{CpuSet, Topology};
use serde_json::{Value, json};

use super::print_stdout;
use super::source::SourceArgs;

fn print_json(value: &Value) {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    print_stdout(&text);
}

/// Arguments of `manycore topo`.
#[derive(Args, Debug)]
pub struct TopoArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Print the machine as JSON instead of a tree.
    #[arg(long)]
    json: bool,
    /// Print this CPU's steal tiers, nearest first. CPU is an OS index (as in taskset), or
    /// `L#n` for a logical index.
    #[arg(long, value_name = "CPU")]
    steal_order: Option<String>,
}

/// Runs `manycore topo`.
pub fn run(args: &TopoArgs) -> Result<ExitCode, String> {
    let topo = args.source.load()?;
    if let Some(cpu) = &args.steal_order {
        let cpu = parse_cpu(&topo, cpu)?;
        if args.json {
            print_json(&steal_order_json(&topo, cpu));
        } else {
            print_stdout(&steal_order_text(&topo, cpu));
        }
    } else if args.json {
        print_json(&to_json(&topo));
    } else {
        print_stdout(&topo.tree().to_string());
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `7` (OS index) or `L#3` (logical index) into a logical CPU.
pub fn parse_cpu(topo: &Topology, s: &str) -> Result<usize, String> {
    if let Some(logical) = s.strip_prefix("L#") {
        let n: usize = logical.parse().map_err(|_| {
            format!("--steal-order: expected a number after 'L#', found {logical:?}")
        })?;
        if n >= topo.num_cpus() {
            return Err(format!(
                "--steal-order: logical CPU {n} does not exist (the machine has L#0 to L#{})",
                topo.num_cpus() - 1
            ));
        }
        return Ok(n);
    }
    let os: u32 = s
        .parse()
        .map_err(|_| format!("--steal-order: expected an OS CPU number or L#n, found {s:?}"))?;
    topo.cpu_from_os(os).ok_or_else(|| {
        format!(
            "--steal-order: CPU {os} is not an online CPU of this topology (online: {})",
            topo.online_cpus()
        )
    })
}

fn os_set(topo: &Topology, logical: impl IntoIterator<Item = usize>) -> CpuSet {
    logical
        .into_iter()
        .map(|c| topo.pu(c).os_index as usize)
        .collect()
}

/// Human-readable steal order of one CPU.
pub fn steal_order_text(topo: &Topology, cpu: usize) -> String {
    let pu = topo.pu(cpu);
    let mut out = format!(
        "steal order of CPU L#{cpu} (P#{}), node P#{}:\n",
        pu.os_index,
        topo.nodes()[pu.node].os_index
    );
    let order = topo.steal_order(cpu);
    if order.is_empty() {
        out.push_str("  (no other CPU)\n");
    }
    for (i, tier) in order.iter().enumerate() {
        let cpus = os_set(topo, tier.cpus.iter().map(|&c| c as usize));
        out.push_str(&format!(
            "  {i}: {:<6} distance {:>3}  {} CPU{}: P#{cpus}\n",
            tier.kind.name(),
            tier.distance,
            tier.cpus.len(),
            if tier.cpus.len() == 1 { "" } else { "s" },
        ));
    }
    out
}

fn steal_order_json(topo: &Topology, cpu: usize) -> Value {
    let tiers: Vec<Value> = topo
        .steal_order(cpu)
        .iter()
        .map(|t| {
            json!({
                "kind": t.kind.name(),
                "distance": t.distance,
                "cpus": t.cpus.iter().map(|&c| topo.pu(c as usize).os_index).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "cpu": topo.pu(cpu).os_index, "logical": cpu, "tiers": tiers })
}

/// The `--json` report: `packages`, `cores`, `pus`, `nodes`, `distances`, and details.
pub fn to_json(topo: &Topology) -> Value {
    let nodes: Vec<Value> = topo
        .nodes()
        .iter()
        .map(|n| {
            json!({
                "os_index": n.os_index,
                "cpus": n.cpus.iter().collect::<Vec<_>>(),
                "memory_bytes": n.memory_bytes,
            })
        })
        .collect();
    let n = topo.num_nodes();
    let distances: Vec<Vec<u32>> = (0..n)
        .map(|a| (0..n).map(|b| topo.distance(a, b)).collect())
        .collect();
    let caches: Vec<Value> = topo
        .caches()
        .iter()
        .map(|c| {
            json!({
                "level": c.level,
                "kind": format!("{:?}", c.kind).to_lowercase(),
                "size_bytes": c.size_bytes,
                "line_bytes": c.line_bytes,
                "cpus": c.cpus.to_string(),
            })
        })
        .collect();
    let pus: Vec<Value> = topo
        .pus()
        .iter()
        .map(|p| {
            json!({
                "logical": p.logical,
                "os_index": p.os_index,
                "apic_id": p.apic_id,
                "core": p.core,
                "package": p.package,
                "node": p.node,
            })
        })
        .collect();
    json!({
        "packages": topo.num_packages(),
        "cores": topo.num_cores(),
        "pus": topo.num_cpus(),
        "nodes": nodes,
        "distances": distances,
        "distances_origin": format!("{:?}", topo.distance_origin()).to_lowercase(),
        "offline_cpus": topo.offline_cpus().to_string(),
        "allowed_cpus": topo.allowed_cpus().map(|s| s.to_string()),
        "caches": caches,
        "pu_list": pus,
    })
}
