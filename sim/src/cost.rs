//! The cost model: what each scheduler action and each memory access costs in virtual time.
//!
//! Every figure is a default with a source (docs/SIMULATOR.md, "Cost model", gives the table and
//! the reasoning) and can be overridden from a TOML or JSON file with the same field names. A file
//! may set only some fields; the rest keep the documented defaults. Unknown fields are errors, so
//! a typo never silently leaves a default in place.
//!
//! Distances enter in two ways, and the SLIT value is only ever used as an *ordering*:
//! - Costs by steal tier (`smt`, `l2`, `llc`, `node`, then remote): what a cache-line handoff costs
//!   at that distance.
//! - Remote nodes are ranked by their SLIT distance among the machine's distinct remote distances;
//!   the nearest class pays `remote_near`, the farthest `remote_far`, classes in between are
//!   interpolated linearly by rank. A SLIT of 32 therefore never means "3.2× slower".
//!
//! This is the file format `manycore bench --calibrate FILE` writes (see [`CostModel::to_toml`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The version of the cost-model file format.
pub const FORMAT_VERSION: u32 = 1;

/// A cost charged by distance between two CPUs (or between a CPU and a task's home).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierCosts {
    /// Same CPU (or no distance at all).
    pub same_ns: u64,
    /// Another hardware thread of the same core.
    pub smt_ns: u64,
    /// A core sharing the L2.
    pub l2_ns: u64,
    /// A core sharing the last-level cache.
    pub llc_ns: u64,
    /// The same NUMA node, no shared cache.
    pub node_ns: u64,
    /// The nearest class of remote nodes.
    pub remote_near_ns: u64,
    /// The farthest class of remote nodes.
    pub remote_far_ns: u64,
}

impl Default for TierCosts {
    fn default() -> Self {
        TierCosts::ZERO
    }
}

impl TierCosts {
    /// All zero.
    pub const ZERO: TierCosts = TierCosts {
        same_ns: 0,
        smt_ns: 0,
        l2_ns: 0,
        llc_ns: 0,
        node_ns: 0,
        remote_near_ns: 0,
        remote_far_ns: 0,
    };

    /// The cost at a local tier (`0` same CPU, `1` SMT, `2` L2, `3` LLC, `4` node) or, for
    /// `Remote(rank)`, interpolated by the remote rank in `[0, 1]`.
    #[inline]
    pub fn at(&self, d: Distance) -> u64 {
        match d {
            Distance::Same => self.same_ns,
            Distance::Smt => self.smt_ns,
            Distance::L2 => self.l2_ns,
            Distance::Llc => self.llc_ns,
            Distance::Node => self.node_ns,
            Distance::Remote(rank) => {
                lerp(self.remote_near_ns as f64, self.remote_far_ns as f64, rank).round() as u64
            }
        }
    }

    fn check(&self, what: &str) -> Result<(), String> {
        if self.remote_far_ns < self.remote_near_ns {
            return Err(format!(
                "{what}.remote_far_ns ({}) is smaller than {what}.remote_near_ns ({}); the farthest nodes cannot be cheaper than the nearest",
                self.remote_far_ns, self.remote_near_ns
            ));
        }
        Ok(())
    }
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

/// How far apart two CPUs are, for pricing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distance {
    /// The same CPU.
    Same,
    /// SMT siblings.
    Smt,
    /// Sharing an L2.
    L2,
    /// Sharing an LLC.
    Llc,
    /// Same node.
    Node,
    /// Another node; the rank of its distance class in `[0, 1]` (0 nearest, 1 farthest).
    Remote(f64),
}

/// Memory access costs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryCosts {
    /// Multiplier on a task's memory time when it runs on the nearest class of remote nodes.
    pub remote_factor_near: f64,
    /// Multiplier on a task's memory time when it runs on the farthest class of remote nodes.
    pub remote_factor_far: f64,
}

impl Default for MemoryCosts {
    fn default() -> Self {
        MemoryCosts {
            remote_factor_near: 1.6,
            remote_factor_far: 1.9,
        }
    }
}

/// Everything the simulator charges. All times are nanoseconds of virtual time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostModel {
    /// File format version; must be [`FORMAT_VERSION`].
    pub version: u32,
    /// Free text: where the figures come from ("defaults", or the host a calibration ran on).
    pub source: String,
    /// Switching from one task to the next on a CPU (dequeue + context switch).
    pub switch_ns: u64,
    /// A task yielding (requeue itself, then a switch).
    pub yield_ns: u64,
    /// Spawning a task onto the spawner's own queue.
    pub spawn_ns: u64,
    /// One push to or pop from a node injector (shared cache line).
    pub injector_ns: u64,
    /// A CPU deciding to park (publishing itself idle).
    pub park_ns: u64,
    /// A task's lifecycle in the runtime beyond the spawn call and the switches: allocating the
    /// task and its stack, the first entry on a fresh stack, its exit and the join handshake.
    /// Charged to the CPU the task exits on (found missing by the fidelity test: the runtime
    /// spends 1-2 µs per task on the reference VM where the other fields add up to ~0.1 µs).
    pub task_ns: u64,
    /// One steal attempt on a victim (reading its queue indices and a CAS), by distance.
    pub steal_attempt: TierCosts,
    /// Moving one stolen task, by distance.
    pub steal_per_task: TierCosts,
    /// Cost to the waker of placing a woken task on a CPU, by distance from the waker.
    pub wake_task: TierCosts,
    /// Latency from `unpark(cpu)` until that CPU runs again, by distance from the unparker.
    pub unpark: TierCosts,
    /// Extra time on a task's first segment after it moved, by distance moved (cold caches).
    pub cold_cache: TierCosts,
    /// Local versus remote memory.
    pub memory: MemoryCosts,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            version: FORMAT_VERSION,
            source: "defaults (docs/SIMULATOR.md)".to_string(),
            switch_ns: 50,
            yield_ns: 60,
            spawn_ns: 30,
            injector_ns: 100,
            park_ns: 100,
            task_ns: 300,
            steal_attempt: TierCosts {
                same_ns: 0,
                smt_ns: 10,
                l2_ns: 15,
                llc_ns: 40,
                node_ns: 200,
                remote_near_ns: 250,
                remote_far_ns: 400,
            },
            steal_per_task: TierCosts {
                same_ns: 0,
                smt_ns: 2,
                l2_ns: 3,
                llc_ns: 10,
                node_ns: 50,
                remote_near_ns: 60,
                remote_far_ns: 100,
            },
            wake_task: TierCosts {
                same_ns: 10,
                smt_ns: 20,
                l2_ns: 20,
                llc_ns: 40,
                node_ns: 100,
                remote_near_ns: 120,
                remote_far_ns: 200,
            },
            unpark: TierCosts {
                same_ns: 2_000,
                smt_ns: 2_000,
                l2_ns: 3_000,
                llc_ns: 3_000,
                node_ns: 5_000,
                remote_near_ns: 6_000,
                remote_far_ns: 8_000,
            },
            cold_cache: TierCosts {
                same_ns: 0,
                smt_ns: 0,
                l2_ns: 200,
                llc_ns: 500,
                node_ns: 5_000,
                remote_near_ns: 7_500,
                remote_far_ns: 10_000,
            },
            memory: MemoryCosts::default(),
        }
    }
}

impl CostModel {
    /// A model where every scheduler action is free and remote memory costs the same as local:
    /// the idealized machine of queueing theory (used by the Erlang-C and work/span tests).
    pub fn zero() -> CostModel {
        CostModel {
            version: FORMAT_VERSION,
            source: "zero (idealized)".to_string(),
            switch_ns: 0,
            yield_ns: 0,
            spawn_ns: 0,
            injector_ns: 0,
            park_ns: 0,
            task_ns: 0,
            steal_attempt: TierCosts::ZERO,
            steal_per_task: TierCosts::ZERO,
            wake_task: TierCosts::ZERO,
            unpark: TierCosts::ZERO,
            cold_cache: TierCosts::ZERO,
            memory: MemoryCosts {
                remote_factor_near: 1.0,
                remote_factor_far: 1.0,
            },
        }
    }

    /// Parses a cost model from TOML or JSON text; `origin` names the input in errors.
    pub fn parse(text: &str, json: bool, origin: &str) -> Result<CostModel, String> {
        let model: CostModel = if json {
            serde_json::from_str(text).map_err(|e| format!("cost model {origin}: {e}"))?
        } else {
            toml::from_str(text).map_err(|e: toml::de::Error| {
                let at = e.span().map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    let column = before.len() - line_start + 1;
                    let source = text[line_start..].lines().next().unwrap_or("").trim();
                    format!(" line {line} column {column} (`{source}`)")
                });
                format!(
                    "cost model {origin}{}: {}",
                    at.unwrap_or_default(),
                    e.message().trim_end()
                )
            })?
        };
        model
            .validate()
            .map_err(|e| format!("cost model {origin}: {e}"))?;
        Ok(model)
    }

    /// Loads a cost model file: `.json` is JSON, anything else TOML.
    pub fn load(path: &Path) -> Result<CostModel, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read cost model {}: {e}", path.display()))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        CostModel::parse(&text, json, &path.display().to_string())
    }

    /// Checks the figures are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != FORMAT_VERSION {
            return Err(format!(
                "version {} is not supported (this simulator reads version {FORMAT_VERSION})",
                self.version
            ));
        }
        for (name, t) in [
            ("steal_attempt", &self.steal_attempt),
            ("steal_per_task", &self.steal_per_task),
            ("wake_task", &self.wake_task),
            ("unpark", &self.unpark),
            ("cold_cache", &self.cold_cache),
        ] {
            t.check(name)?;
        }
        let m = &self.memory;
        for (name, v) in [
            ("remote_factor_near", m.remote_factor_near),
            ("remote_factor_far", m.remote_factor_far),
        ] {
            if !v.is_finite() || !(1.0..=100.0).contains(&v) {
                return Err(format!(
                    "memory.{name} is {v}; expected a multiplier between 1.0 (remote as fast as local) and 100"
                ));
            }
        }
        if m.remote_factor_far < m.remote_factor_near {
            return Err(format!(
                "memory.remote_factor_far ({}) is smaller than memory.remote_factor_near ({})",
                m.remote_factor_far, m.remote_factor_near
            ));
        }
        Ok(())
    }

    /// The memory-time multiplier at a distance (1 for every local distance).
    #[inline]
    pub fn memory_factor(&self, d: Distance) -> f64 {
        match d {
            Distance::Remote(rank) => lerp(
                self.memory.remote_factor_near,
                self.memory.remote_factor_far,
                rank,
            ),
            _ => 1.0,
        }
    }

    /// The model as a TOML document (the calibration file format).
    pub fn to_toml(&self) -> String {
        // Serializing plain integers, floats and strings into TOML cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_partial_files_keep_defaults() {
        let m = CostModel::default();
        let back = CostModel::parse(&m.to_toml(), false, "test").expect("round trip");
        assert_eq!(back, m);
        let partial = CostModel::parse(
            "switch_ns = 7\n[memory]\nremote_factor_near = 1.2\n",
            false,
            "p",
        )
        .expect("partial");
        assert_eq!(partial.switch_ns, 7);
        assert_eq!(partial.memory.remote_factor_near, 1.2);
        assert_eq!(partial.memory.remote_factor_far, 1.9);
        assert_eq!(partial.steal_attempt, m.steal_attempt);
    }

    #[test]
    fn typo_and_bad_values_are_named() {
        let e = CostModel::parse("swich_ns = 7\n", false, "f.toml").expect_err("typo");
        assert!(e.contains("swich_ns") && e.contains("f.toml"), "{e}");
        let e = CostModel::parse("[memory]\nremote_factor_near = 0.5\n", false, "f")
            .expect_err("factor");
        assert!(e.contains("remote_factor_near"), "{e}");
        let e = CostModel::parse("{\"switch_ns\": -3}", true, "f.json").expect_err("negative");
        assert!(e.contains("f.json"), "{e}");
        let e = CostModel::parse("version = 9\n", false, "f").expect_err("version");
        assert!(e.contains("version 9"), "{e}");
    }

    #[test]
    fn shipped_default_file_is_the_default_model() {
        // sim/cost-models/default.toml documents the calibration format by example; it must not
        // drift from the built-in defaults (regenerate it from `CostModel::default().to_toml()`).
        let text = include_str!("../cost-models/default.toml");
        assert_eq!(
            CostModel::parse(text, false, "default.toml"),
            Ok(CostModel::default())
        );
    }

    #[test]
    fn remote_costs_interpolate_by_rank_not_by_slit_value() {
        let m = CostModel::default();
        assert_eq!(m.steal_attempt.at(Distance::Remote(0.0)), 250);
        assert_eq!(m.steal_attempt.at(Distance::Remote(1.0)), 400);
        assert!((m.memory_factor(Distance::Remote(0.5)) - 1.75).abs() < 1e-9);
        assert_eq!(m.memory_factor(Distance::Node), 1.0);
    }
}
