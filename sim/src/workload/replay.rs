//! Trace replay: tasks from a CSV or JSON file, with arrival times, durations, dependencies and
//! home nodes.
//!
//! # Format
//! CSV with a header row naming the columns (any order):
//! `id,arrival_ns,duration_ns[,mem_ns][,home_node][,cpu][,deps]`, where `deps` lists ids separated
//! by `;` or spaces. JSON: an array of objects with the same keys (`deps` an array of ids), or an
//! object `{"tasks": [...]}`.
//!
//! - `id`: unique, any u64. A task's dependencies must appear earlier in the file, so a trace can
//!   never hold a cycle.
//! - `arrival_ns`: earliest start. A task with dependencies starts at the later of its arrival and
//!   the end of its last dependency; latency is measured from `arrival_ns`.
//! - `duration_ns`: CPU time; `mem_ns` (default 0): memory time on its home node.
//! - `home_node` (logical node): where its memory is; absent means the node it is spawned on.
//! - `cpu` (logical CPU): where it arrives; absent means round-robin over the CPUs of its home node
//!   (over all CPUs when it has no home node). A task released by its last dependency is spawned on
//!   the CPU that ran that dependency.

use std::collections::HashMap;
use std::path::Path;

use manycore_topology::Topology;
use serde::Deserialize;

use super::{Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

/// One record as written in a file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: u64,
    arrival_ns: u64,
    duration_ns: u64,
    #[serde(default)]
    mem_ns: u64,
    #[serde(default)]
    home_node: Option<usize>,
    #[serde(default)]
    cpu: Option<usize>,
    #[serde(default, deserialize_with = "deps_any")]
    deps: Vec<u64>,
}

/// `deps` is a list in JSON and a `;`/space separated string in CSV.
fn deps_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Deps {
        List(Vec<u64>),
        One(u64),
        Text(String),
    }
    match Deps::deserialize(d)? {
        Deps::List(v) => Ok(v),
        Deps::One(x) => Ok(vec![x]),
        Deps::Text(s) => s
            .split([';', ' '])
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<u64>()
                    .map_err(|_| serde::de::Error::custom(format!("dependency {t:?} is not an id")))
            })
            .collect(),
    }
}

/// A validated trace, in file order.
#[derive(Clone, Debug)]
struct Entry {
    arrival_ns: u64,
    seg: Seg,
    home_node: Option<usize>,
    cpu: Option<usize>,
    /// Dependencies not yet finished.
    pending: u32,
}

/// The trace-replay workload.
#[derive(Clone, Debug)]
pub struct Replay {
    path: String,
    entries: Vec<Entry>,
    /// CSR lists of dependents: `dependents[dep_start[i]..dep_start[i+1]]` wait for entry i.
    dep_start: Vec<u32>,
    dependents: Vec<u32>,
    /// Entries without dependencies, by arrival time (stable in file order).
    roots: Vec<u32>,
    next_root: usize,
    next_cpu: usize,
}

const RELEASE: u64 = 1 << 63;

impl Replay {
    /// Reads `file` (CSV, or JSON when it ends in `.json`).
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<Replay, String> {
        let Some(path) = p.opt_string("file") else {
            return Err(
                "workload trace: parameter file=PATH is required (a CSV or JSON trace)".to_string(),
            );
        };
        Replay::load(Path::new(&path), topo)
    }

    /// Loads and validates a trace file.
    pub fn load(path: &Path, topo: &Topology) -> Result<Replay, String> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("trace {name}: cannot read: {e}"))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Replay::parse(&text, json, &name, topo)
    }

    /// Parses and validates trace text.
    pub fn parse(text: &str, json: bool, name: &str, topo: &Topology) -> Result<Replay, String> {
        let records: Vec<(String, Record)> = if json {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("trace {name}: {e}"))?;
            let list = match v {
                serde_json::Value::Array(a) => a,
                serde_json::Value::Object(mut o) => match o.remove("tasks") {
                    Some(serde_json::Value::Array(a)) => a,
                    _ => {
                        return Err(format!(
                            "trace {name}: expected an array of tasks or an object with a \"tasks\" array"
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "trace {name}: expected an array of tasks or an object with a \"tasks\" array"
                    ));
                }
            };
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.into_iter().enumerate() {
                let r: Record = serde_json::from_value(item)
                    .map_err(|e| format!("trace {name} task #{i}: {e}"))?;
                out.push((format!("task #{i}"), r));
            }
            out
        } else {
            let mut rd = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let mut out = Vec::new();
            for (i, row) in rd.deserialize::<Record>().enumerate() {
                let r = row.map_err(|e| format!("trace {name}: {e}"))?;
                out.push((format!("line {}", i + 2), r));
            }
            out
        };
        if records.is_empty() {
            return Err(format!("trace {name}: no tasks"));
        }
        let mut index: HashMap<u64, u32> = HashMap::with_capacity(records.len());
        let mut entries = Vec::with_capacity(records.len());
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for (i, (at, r)) in records.iter().enumerate() {
            let here = |msg: String| format!("trace {name} {at} (id {}): {msg}", r.id);
            if index.insert(r.id, i as u32).is_some() {
                return Err(here("id appears twice".to_string()));
            }
            if let Some(n) = r.home_node
                && n >= topo.num_nodes()
            {
                return Err(here(format!(
                    "home_node {n} does not exist (the machine has nodes 0 to {})",
                    topo.num_nodes() - 1
                )));
            }
            if let Some(c) = r.cpu
                && c >= topo.num_cpus()
            {
                return Err(here(format!(
                    "cpu {c} does not exist (the machine has CPUs 0 to {})",
                    topo.num_cpus() - 1
                )));
            }
            for d in &r.deps {
                match index.get(d) {
                    Some(&j) if j != i as u32 => edges.push((j, i as u32)),
                    _ => {
                        return Err(here(format!(
                            "depends on id {d}, which does not appear earlier in the trace (dependencies must come first)"
                        )));
                    }
                }
            }
            entries.push(Entry {
                arrival_ns: r.arrival_ns,
                seg: Seg {
                    cpu_ns: r.duration_ns,
                    mem_ns: r.mem_ns,
                },
                home_node: r.home_node,
                cpu: r.cpu,
                pending: r.deps.len() as u32,
            });
        }
        edges.sort_unstable();
        let mut dep_start = vec![0u32; entries.len() + 1];
        for &(from, _) in &edges {
            dep_start[from as usize + 1] += 1;
        }
        for i in 0..entries.len() {
            dep_start[i + 1] += dep_start[i];
        }
        let dependents = edges.iter().map(|&(_, to)| to).collect();
        let mut roots: Vec<u32> = (0..entries.len() as u32)
            .filter(|&i| entries[i as usize].pending == 0)
            .collect();
        roots.sort_by_key(|&i| entries[i as usize].arrival_ns);
        Ok(Replay {
            path: name.to_string(),
            entries,
            dep_start,
            dependents,
            roots,
            next_root: 0,
            next_cpu: 0,
        })
    }

    fn schedule_next_root(&mut self, ctx: &mut dyn Ctx) {
        let Some(&i) = self.roots.get(self.next_root) else {
            return;
        };
        self.next_root += 1;
        let cpu = self.arrival_cpu(ctx, i);
        ctx.at(self.entries[i as usize].arrival_ns, cpu, u64::from(i));
    }

    fn arrival_cpu(&mut self, ctx: &mut dyn Ctx, i: u32) -> usize {
        let e = &self.entries[i as usize];
        if let Some(c) = e.cpu {
            return c;
        }
        self.next_cpu = self.next_cpu.wrapping_add(1);
        let topo = ctx.topology();
        match e
            .home_node
            .map(|n| topo.cpus_of_node(n))
            .filter(|cpus| !cpus.is_empty())
        {
            Some(cpus) => cpus[self.next_cpu % cpus.len()],
            None => self.next_cpu % topo.num_cpus(),
        }
    }

    fn spawn_entry(&self, ctx: &mut dyn Ctx, i: u32) {
        let e = &self.entries[i as usize];
        let mut t = NewTask::new(e.seg);
        t.home_node = e.home_node;
        t.born_ns = Some(e.arrival_ns);
        t.user = [u64::from(i), 0];
        ctx.spawn(t);
    }
}

impl Workload for Replay {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn describe(&self) -> String {
        format!("file={} tasks={}", self.path, self.entries.len())
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        self.schedule_next_root(ctx);
    }

    fn on_arrival(&mut self, ctx: &mut dyn Ctx, tag: u64) {
        let i = (tag & !RELEASE) as u32;
        self.spawn_entry(ctx, i);
        if tag & RELEASE == 0 {
            self.schedule_next_root(ctx);
        }
    }

    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        let i = ctx.user(task)[0] as usize;
        for k in self.dep_start[i]..self.dep_start[i + 1] {
            let d = self.dependents[k as usize];
            let e = &mut self.entries[d as usize];
            e.pending -= 1;
            if e.pending == 0 {
                if e.arrival_ns > ctx.now_ns() {
                    let (at, cpu) = (e.arrival_ns, ctx.current_cpu());
                    ctx.at(at, cpu, u64::from(d) | RELEASE);
                } else {
                    self.spawn_entry(ctx, d);
                }
            }
        }
        Step::Exit
    }

    fn expected_tasks(&self) -> Option<u64> {
        Some(self.entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    fn topo() -> Topology {
        presets::find("laptop")
            .map(presets::Preset::build)
            .expect("laptop")
    }

    #[test]
    fn csv_and_json_parse_to_the_same_dependencies() {
        let csv =
            "id,arrival_ns,duration_ns,home_node,deps\n1,0,100,0,\n2,0,50,,1\n3,10,50,0,1;2\n";
        let json = r#"[{"id":1,"arrival_ns":0,"duration_ns":100,"home_node":0},
                       {"id":2,"arrival_ns":0,"duration_ns":50,"deps":[1]},
                       {"id":3,"arrival_ns":10,"duration_ns":50,"home_node":0,"deps":[1,2]}]"#;
        let a = Replay::parse(csv, false, "a.csv", &topo()).expect("csv");
        let b = Replay::parse(json, true, "b.json", &topo()).expect("json");
        assert_eq!(a.dependents, vec![1, 2, 2]);
        assert_eq!(a.dependents, b.dependents);
        assert_eq!(a.roots, vec![0]);
    }

    #[test]
    fn bad_traces_name_the_line_and_problem() {
        let t = topo();
        let e = Replay::parse(
            "id,arrival_ns,duration_ns,deps\n1,0,5,2\n2,0,5,\n",
            false,
            "x.csv",
            &t,
        )
        .expect_err("forward dep");
        assert!(e.contains("line 2") && e.contains("id 2"), "{e}");
        let e = Replay::parse(
            "id,arrival_ns,duration_ns,home_node\n1,0,5,9\n",
            false,
            "x.csv",
            &t,
        )
        .expect_err("node");
        assert!(e.contains("home_node 9"), "{e}");
        let e = Replay::parse("id,arrival_ns,duration_ns\n1,0,abc\n", false, "x.csv", &t)
            .expect_err("number");
        assert!(e.contains("x.csv"), "{e}");
        let e = Replay::parse(
            "id,arrival_ns,duration_ns\n1,0,5\n1,0,5\n",
            false,
            "x.csv",
            &t,
        )
        .expect_err("dup");
        assert!(e.contains("twice"), "{e}");
        let e = Replay::parse("[{\"id\":1}]", true, "y.json", &t).expect_err("missing field");
        assert!(e.contains("y.json") && e.contains("arrival_ns"), "{e}");
    }
}
