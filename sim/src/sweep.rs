//! `manycore sim sweep`: topologies × policies × seeds, run in parallel, into one CSV.
//!
//! Each simulation stays sequential and deterministic; rayon only runs independent simulations
//! side by side. Rows come out in job order (topology, then seed, then policy), never in
//! completion order, so the CSV is identical whatever the thread count.

use rayon::prelude::*;

use crate::engine::RunOptions;
use crate::machine::Machine;
use crate::report::{CSV_HEADER, PolicyReport, Report};
use crate::scenario::Scenario;

/// A sweep definition.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Named machines.
    pub topologies: Vec<(String, Machine)>,
    /// Workload name.
    pub workload: String,
    /// Workload parameters.
    pub params: Vec<(String, String)>,
    /// Policies.
    pub policies: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Cost model and limits (the seed is replaced per job).
    pub opts: RunOptions,
}

impl Sweep {
    /// Number of simulations.
    pub fn jobs(&self) -> usize {
        self.topologies.len() * self.policies.len() * self.seeds.len()
    }

    /// Runs every job on `threads` threads (all cores when `None`) and returns the CSV;
    /// `done()` is called after each job.
    pub fn run(&self, threads: Option<usize>, done: &(dyn Fn() + Sync)) -> Result<String, String> {
        let mut jobs = Vec::new();
        for (ti, _) in self.topologies.iter().enumerate() {
            for &seed in &self.seeds {
                for policy in &self.policies {
                    jobs.push((ti, seed, policy.clone()));
                }
            }
        }
        // Validate parameters once per topology before spending time.
        for (name, m) in &self.topologies {
            Scenario::new(name, m.clone(), &self.workload, self.params.clone(), vec![])
                .validate()
                .map_err(|e| format!("topology {name}: {e}"))?;
        }
        let work = || -> Vec<Result<String, String>> {
            jobs.par_iter()
                .map(|(ti, seed, policy)| {
                    let (name, m) = &self.topologies[*ti];
                    let mut s = Scenario::new(
                        name,
                        m.clone(),
                        &self.workload,
                        self.params.clone(),
                        vec![policy.clone()],
                    );
                    s.opts = RunOptions {
                        seed: *seed,
                        ..self.opts.clone()
                    };
                    let described = s.validate()?;
                    let r = s.run_policy(policy, None, None)?;
                    let report = Report {
                        topology: name.clone(),
                        workload: format!("{} {described}", self.workload),
                        seed: *seed,
                        policies: vec![PolicyReport::from_run(&r, m)],
                    };
                    done();
                    Ok(report.csv_rows().concat())
                })
                .collect()
        };
        let rows = match threads {
            Some(n) => rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| format!("sweep: cannot start {n} threads: {e}"))?
                .install(work),
            None => work(),
        };
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for r in rows {
            out.push_str(&r?);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Parses `--seeds`: `N` (seeds 1 to N) or a comma-separated list.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let s = s.trim();
    if !s.contains(',')
        && let Ok(n) = s.parse::<u64>()
    {
        if n == 0 || n > 100_000 {
            return Err(format!(
                "--seeds {s}: expected a count between 1 and 100000, or a list like 1,5,9"
            ));
        }
        return Ok((1..=n).collect());
    }
    s.split(',')
        .map(|x| {
            x.trim().parse::<u64>().map_err(|_| {
                format!("--seeds {s}: {x:?} is not a seed (expected a count or a list like 1,5,9)")
            })
        })
        .collect()
}
