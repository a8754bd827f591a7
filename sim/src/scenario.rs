//! A scenario: one machine, one workload with its parameters, several policies, one seed.
//! Running it gives a [`Report`] with one entry per policy, in the order asked.

use std::path::PathBuf;

use crate::chrome_trace::TraceWriter;
use crate::engine::{self, Progress, RunOptions, RunResult};
use crate::machine::Machine;
use crate::report::{PolicyReport, Report};
use crate::workload;

/// Everything that defines a comparison.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// How the topology was named (preset, file, description).
    pub topology_name: String,
    /// The machine.
    pub machine: Machine,
    /// Workload name.
    pub workload: String,
    /// Workload `k=v` parameters.
    pub params: Vec<(String, String)>,
    /// Policies to compare, in output order.
    pub policies: Vec<String>,
    /// Seed, cost model and limits.
    pub opts: RunOptions,
    /// Where to write a Chrome trace, if anywhere.
    pub trace_path: Option<PathBuf>,
    /// Most trace events written.
    pub trace_max_events: u64,
}

impl Scenario {
    /// A scenario with default options.
    pub fn new(
        topology_name: &str,
        machine: Machine,
        workload: &str,
        params: Vec<(String, String)>,
        policies: Vec<String>,
    ) -> Scenario {
        Scenario {
            topology_name: topology_name.to_string(),
            machine,
            workload: workload.to_string(),
            params,
            policies,
            opts: RunOptions::default(),
            trace_path: None,
            trace_max_events: 500_000,
        }
    }

    /// Checks the workload parameters without running anything; returns the workload's
    /// description.
    pub fn validate(&self) -> Result<String, String> {
        let w = workload::build(&self.workload, &self.params, self.machine.topo())?;
        Ok(w.describe())
    }

    /// Runs one policy.
    pub fn run_policy(
        &self,
        policy: &str,
        trace: Option<&mut TraceWriter>,
        progress: Option<Progress<'_>>,
    ) -> Result<RunResult, String> {
        let w = workload::build(&self.workload, &self.params, self.machine.topo())?;
        engine::run(&self.machine, policy, w, &self.opts, trace, progress)
    }

    /// Runs every policy; `progress(policy index, done, expected)` is called now and then.
    pub fn run(
        &self,
        mut progress: Option<&mut dyn FnMut(usize, u64, Option<u64>)>,
    ) -> Result<(Report, Vec<RunResult>), String> {
        let described = self.validate()?;
        let mut trace = match &self.trace_path {
            Some(p) => Some(TraceWriter::create(p, self.trace_max_events)?),
            None => None,
        };
        let mut results = Vec::new();
        let budget = self.trace_max_events / self.policies.len().max(1) as u64;
        let mut scenario = self.clone();
        scenario.opts.trace_budget_events = budget;
        for (i, policy) in self.policies.iter().enumerate() {
            let mut cb = |done: u64, expected: Option<u64>| {
                if let Some(p) = progress.as_mut() {
                    p(i, done, expected);
                }
            };
            let r = scenario.run_policy(policy, trace.as_mut(), Some(&mut cb))?;
            results.push(r);
        }
        if let Some(t) = trace {
            t.finish()?;
        }
        let report = Report {
            topology: self.topology_name.clone(),
            workload: format!("{} {described}", self.workload),
            seed: self.opts.seed,
            policies: results
                .iter()
                .map(|r| PolicyReport::from_run(r, &self.machine))
                .collect(),
        };
        Ok((report, results))
    }
}
