//! Times one policy on one workload and prints engine events per second of host time:
//! `cargo run -p manycore-sim --release --example speed -- PRESET WORKLOAD POLICY [k=v ...]`.
//!
//! Besides wall time it reads the thread's own on-CPU time (Linux `/proc/thread-self/schedstat`),
//! which a busy shared machine inflates much less than wall time (the simulator is
//! single-threaded).

use manycore_sim::params::parse_kv;
use manycore_sim::{Machine, Scenario, topo_source};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize, d: &'static str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let (topo, workload, policy) = (get(0, "epyc-2s-nps4"), get(1, "server"), get(2, "topology"));
    let params = args
        .iter()
        .skip(3)
        .map(|s| parse_kv(s))
        .collect::<Result<Vec<_>, _>>()?;
    let machine = Machine::new(topo_source::load(&topo)?);
    let s = Scenario::new(&topo, machine, &workload, params, vec![policy.clone()]);
    let cpu0 = on_cpu_ns();
    let t = std::time::Instant::now();
    let r = s.run_policy(&policy, None, None)?;
    let secs = t.elapsed().as_secs_f64();
    if let (Some(a), Some(b)) = (cpu0, on_cpu_ns()) {
        let cpu_secs = (b - a) as f64 / 1e9;
        println!(
            "on-CPU time {cpu_secs:.3} s: {:.2} M scheduling events per on-CPU second",
            r.stats.sched_events as f64 / cpu_secs / 1e6
        );
    }
    println!(
        "{topo} {workload} {policy}: {} tasks, {} engine events, {} scheduling events in {secs:.3} s = {:.2} M engine events/s, {:.2} M scheduling events/s, makespan {} ns, peak live {}",
        r.stats.completed,
        r.events,
        r.stats.sched_events,
        r.events as f64 / secs / 1e6,
        r.stats.sched_events as f64 / secs / 1e6,
        r.makespan_ns,
        r.peak_live_tasks
    );
    let st = &r.stats;
    println!(
        "  steals {:?}, failed probes {}, futile searches {}, unparks {} (stray {}, empty {}), timed wakes {}, re-searches {}, wasted core {:.3}%, remote memory {:.1}%, injector ops {}",
        st.steals,
        st.failed_probes,
        st.futile_searches,
        st.unparks,
        st.stray_unparks,
        st.empty_wakes,
        st.timed_wakes,
        st.research,
        r.wasted.wasted_ns as f64 * 100.0 / (r.makespan_ns.max(1) as f64 * r.cpus as f64),
        st.mem_remote_ns as f64 * 100.0 / (st.mem_remote_ns + st.mem_local_ns).max(1) as f64,
        st.injector_ops
    );
    Ok(())
}

/// This thread's time on a CPU, ns (`None` where the kernel does not report it).
fn on_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
