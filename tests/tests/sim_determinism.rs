//! Same seed and inputs, same bits: two runs of the simulator produce identical JSON, and a
//! different seed produces a different schedule.

use manycore_sim::{Machine, Scenario, presets, sched_bridge};

fn scenario(preset: &str, workload: &str, params: &[(&str, &str)], seed: u64) -> Scenario {
    let m = Machine::new(
        presets::find(preset)
            .map(presets::Preset::build)
            .expect("preset exists"),
    );
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let policies = sched_bridge::POLICIES
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut s = Scenario::new(preset, m, workload, params, policies);
    s.opts.seed = seed;
    s
}

fn json(s: &Scenario) -> String {
    s.run(None).expect("run").0.to_json()
}

#[test]
fn two_runs_give_identical_json_for_every_workload() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("fork-join", &[("depth", "9")]),
        ("server", &[("requests", "5000"), ("service", "bimodal")]),
        ("pipeline", &[("items", "2000")]),
        ("imbalanced", &[("tasks", "5000")]),
        ("memory-bound", &[("tasks", "10000")]),
        ("producer-consumer", &[("items", "5000")]),
    ];
    for (w, params) in cases {
        let a = json(&scenario("epyc-2s-nps4", w, params, 42));
        let b = json(&scenario("epyc-2s-nps4", w, params, 42));
        assert!(a == b, "{w}: two runs with seed 42 differ");
    }
}

#[test]
fn another_seed_gives_another_schedule() {
    let a = json(&scenario(
        "dual-socket",
        "server",
        &[("requests", "5000")],
        1,
    ));
    let b = json(&scenario(
        "dual-socket",
        "server",
        &[("requests", "5000")],
        2,
    ));
    assert_ne!(
        a, b,
        "the seed must reach the arrival process and the steal choices"
    );
}

#[test]
fn parallel_sweep_output_does_not_depend_on_thread_count() {
    use manycore_sim::sweep::Sweep;
    let machines = ["laptop", "dual-socket"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                Machine::new(
                    presets::find(p)
                        .map(presets::Preset::build)
                        .expect("preset"),
                ),
            )
        })
        .collect();
    let sw = Sweep {
        topologies: machines,
        workload: "server".into(),
        params: vec![("requests".into(), "2000".into())],
        policies: vec!["topology".into(), "random".into()],
        seeds: vec![1, 2, 3],
        opts: Default::default(),
    };
    let one = sw.run(Some(1), &|| {}).expect("1 thread");
    let two = sw.run(Some(2), &|| {}).expect("2 threads");
    assert_eq!(one, two);
    assert_eq!(one.lines().count(), 1 + sw.jobs());
}
