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

/// Random but valid parameter combinations (small sizes, extreme shapes) on random presets: every
/// run completes, conserves its tasks, and no invariant check of the engine fires.
#[test]
fn random_valid_parameters_always_complete() {
    use manycore_sim::rng::Rng;
    let mut r = Rng::new(2024);
    let presets_list = ["laptop", "dual-socket", "xeon-4s"];
    for case in 0..60 {
        let preset = presets_list[r.below(presets_list.len() as u64) as usize];
        let pick = |r: &mut Rng, xs: &[&str]| xs[r.below(xs.len() as u64) as usize].to_string();
        let (workload, params): (&str, Vec<(&str, String)>) = match case % 6 {
            0 => (
                "fork-join",
                vec![
                    ("depth", pick(&mut r, &["0", "1", "5", "8"])),
                    ("fanout", pick(&mut r, &["1", "2", "5"])),
                    ("leaf_ns", pick(&mut r, &["0", "1", "3000"])),
                    ("mem_frac", pick(&mut r, &["0", "0.5", "1"])),
                ],
            ),
            1 => (
                "server",
                vec![
                    ("requests", pick(&mut r, &["1", "50", "2000"])),
                    ("load", pick(&mut r, &["0.01", "0.9", "3"])),
                    (
                        "service",
                        pick(&mut r, &["exp", "const", "bimodal", "pareto"]),
                    ),
                    ("service_ns", pick(&mut r, &["1", "10000"])),
                    ("arrival", pick(&mut r, &["random", "cpu0"])),
                ],
            ),
            2 => (
                "pipeline",
                vec![
                    ("stages", pick(&mut r, &["1", "3", "20"])),
                    ("items", pick(&mut r, &["1", "300"])),
                    ("load", pick(&mut r, &["0.1", "2"])),
                ],
            ),
            3 => (
                "imbalanced",
                vec![
                    ("tasks", pick(&mut r, &["1", "700", "3000"])),
                    ("batch", pick(&mut r, &["1", "64", "5000"])),
                    ("task_ns", pick(&mut r, &["0", "500"])),
                ],
            ),
            4 => (
                "memory-bound",
                vec![
                    ("tasks", pick(&mut r, &["1", "3", "2000"])),
                    ("batch", pick(&mut r, &["1", "300"])),
                    ("mem_ns", pick(&mut r, &["0", "4000"])),
                ],
            ),
            _ => (
                "producer-consumer",
                vec![
                    ("channels", pick(&mut r, &["1", "3"])),
                    ("producers", pick(&mut r, &["1", "4"])),
                    ("consumers", pick(&mut r, &["1", "5"])),
                    ("items", pick(&mut r, &["12", "500"])),
                    ("capacity", pick(&mut r, &["1", "64"])),
                    ("produce_ns", pick(&mut r, &["0", "2000"])),
                ],
            ),
        };
        let m = Machine::new(
            presets::find(preset)
                .map(presets::Preset::build)
                .expect("preset"),
        );
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let policies = sched_bridge::POLICIES
            .iter()
            .map(|p| p.to_string())
            .collect();
        let mut s = Scenario::new(preset, m, workload, params.clone(), policies);
        s.opts = RunOptions {
            record_completions: true,
            seed: case,
            ..RunOptions::default()
        };
        let (_, results) = s
            .run(None)
            .unwrap_or_else(|e| panic!("{preset}/{workload} {params:?}: {e}"));
        for res in results {
            assert_eq!(
                res.completions.len() as u64,
                res.stats.spawned,
                "{preset}/{workload} {params:?}/{}: tasks lost",
                res.policy
            );
        }
    }
}
