//! Runs one comparison and prints the table: `cargo run -p manycore-sim --release --example
//! compare -- PRESET WORKLOAD [k=v ...]` (the library-level twin of `manycore sim`).

use manycore_sim::params::parse_kv;
use manycore_sim::{Machine, Scenario, presets, sched_bridge, topo_source};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let topo = args.first().map_or(presets::DEFAULT_PRESET, String::as_str);
    let workload = args
        .get(1)
        .map_or(manycore_sim::workload::DEFAULT, String::as_str);
    let params = args
        .iter()
        .skip(2)
        .map(|s| parse_kv(s))
        .collect::<Result<Vec<_>, _>>()?;
    let machine = Machine::new(topo_source::load(topo)?);
    let policies = sched_bridge::POLICIES
        .iter()
        .map(|p| p.to_string())
        .collect();
    let s = Scenario::new(topo, machine, workload, params, policies);
    let t = std::time::Instant::now();
    let (report, _) = s.run(None)?;
    print!("{}", report.to_table());
    if std::env::var("SIM_JSON").is_ok() {
        println!("{}", report.to_json());
    }
    let events: u64 = report.policies.iter().map(|p| p.details.events).sum();
    eprintln!("{events} events in {:.2?}", t.elapsed());
    Ok(())
}
