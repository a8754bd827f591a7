//! Conservation: every task the workload creates completes exactly once, under every policy, on
//! machines with one and with several nodes.

use manycore_sim::engine::RunOptions;
use manycore_sim::{Machine, Scenario, presets, sched_bridge};

#[test]
fn every_task_completes_exactly_once() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "fork-join",
            &[("depth", "10"), ("fanout", "3"), ("roots", "2")],
        ),
        (
            "server",
            &[
                ("requests", "4000"),
                ("service", "pareto"),
                ("arrival", "cpu0"),
            ],
        ),
        ("pipeline", &[("items", "1500"), ("stages", "5")]),
        ("imbalanced", &[("tasks", "4000")]),
        ("memory-bound", &[("tasks", "6000"), ("home", "0")]),
        (
            "producer-consumer",
            &[
                ("items", "4000"),
                ("capacity", "2"),
                ("producers", "3"),
                ("consumers", "2"),
            ],
        ),
    ];
    for preset in ["laptop", "epyc-2s-nps4"] {
        let m = Machine::new(
            presets::find(preset)
                .map(presets::Preset::build)
                .expect("preset"),
        );
        for (w, params) in cases {
            let params = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let policies = sched_bridge::POLICIES
                .iter()
                .map(|p| p.to_string())
                .collect();
            let mut s = Scenario::new(preset, m.clone(), w, params, policies);
            s.opts = RunOptions {
                record_completions: true,
                ..RunOptions::default()
            };
            let (_, results) = s.run(None).unwrap_or_else(|e| panic!("{preset}/{w}: {e}"));
            for r in results {
                let mut serials = r.completions.clone();
                let n = serials.len() as u64;
                serials.sort_unstable();
                serials.dedup();
                assert_eq!(
                    serials.len() as u64,
                    n,
                    "{preset}/{w}/{}: a task completed twice",
                    r.policy
                );
                assert_eq!(
                    n, r.stats.spawned,
                    "{preset}/{w}/{}: created {} but completed {n}",
                    r.policy, r.stats.spawned
                );
                // Serials are handed out 0, 1, 2, ...: all present means none lost.
                assert!(
                    serials.iter().enumerate().all(|(i, &s)| s == i as u64),
                    "{preset}/{w}/{}: a task was lost",
                    r.policy
                );
            }
        }
    }
}

#[test]
fn trace_replay_runs_each_record_once_after_its_dependencies() {
    let dir = std::env::temp_dir().join(format!("manycore-sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("chain.csv");
    let mut csv = String::from("id,arrival_ns,duration_ns,home_node,deps\n");
    for i in 0..200u64 {
        let deps = match i {
            0 => String::new(),
            1 => "0".to_string(),
            _ => format!("{};{}", i - 1, i - 2),
        };
        csv.push_str(&format!("{i},{},{},0,{deps}\n", i * 10, 1_000));
    }
    std::fs::write(&path, csv).expect("write trace");
    let m = Machine::new(
        presets::find("laptop")
            .map(presets::Preset::build)
            .expect("preset"),
    );
    let params = vec![("file".to_string(), path.display().to_string())];
    let mut s = Scenario::new(
        "laptop",
        m,
        "trace",
        params,
        vec!["topology".into(), "global".into()],
    );
    s.opts = RunOptions {
        record_completions: true,
        cost: manycore_sim::CostModel::zero(),
        ..RunOptions::default()
    };
    let (report, results) = s.run(None).expect("run");
    for r in &results {
        assert_eq!(r.completions.len(), 200);
    }
    // A strict chain of 1 us tasks: the makespan is at least 200 us whatever the policy.
    for p in &report.policies {
        assert!(
            p.makespan_ns >= 200_000,
            "{}: makespan {} is shorter than the chain",
            p.policy,
            p.makespan_ns
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
