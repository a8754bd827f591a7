//! Whole-engine checks on small machines (the integration tests in tests/tests/sim_*.rs cover
//! the CLI and the larger properties).

use crate::engine::RunOptions;
use crate::machine::Machine;
use crate::presets;
use crate::scenario::Scenario;
use crate::sched_bridge::POLICIES;
use crate::workload;

fn small(workload: &str, params: &[(&str, &str)]) -> Scenario {
    let m = Machine::new(
        presets::find("dual-socket")
            .map(presets::Preset::build)
            .expect("preset"),
    );
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut s = Scenario::new(
        "dual-socket",
        m,
        workload,
        params,
        POLICIES.iter().map(|p| p.to_string()).collect(),
    );
    s.opts = RunOptions {
        record_completions: true,
        ..RunOptions::default()
    };
    s
}

#[test]
fn every_workload_under_every_policy_completes_each_task_once() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("fork-join", &[("depth", "8")]),
        ("server", &[("requests", "3000")]),
        ("server", &[("requests", "2000"), ("service", "bimodal")]),
        ("server", &[("requests", "2000"), ("service", "pareto")]),
        ("pipeline", &[("items", "1000")]),
        ("imbalanced", &[("tasks", "3000")]),
        ("memory-bound", &[("tasks", "5000")]),
        ("producer-consumer", &[("items", "3000")]),
    ];
    for (w, params) in cases {
        let s = small(w, params);
        let (report, results) = s.run(None).unwrap_or_else(|e| panic!("{w}: {e}"));
        for r in &results {
            let mut c = r.completions.clone();
            let n = c.len();
            c.sort_unstable();
            c.dedup();
            assert_eq!(c.len(), n, "{w}/{}: a task completed twice", r.policy);
            assert_eq!(
                n as u64, r.stats.spawned,
                "{w}/{}: spawned vs completed",
                r.policy
            );
            assert_eq!(
                c.last().copied(),
                Some(n as u64 - 1),
                "{w}/{}: serials are 0..n",
                r.policy
            );
        }
        assert_eq!(report.policies.len(), POLICIES.len());
    }
    assert_eq!(workload::NAMES.len(), 7);
}
