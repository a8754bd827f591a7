//! A request server: Poisson arrivals, one task per request, service times drawn from an
//! exponential, bimodal or heavy-tailed (Pareto) distribution with a given mean.
//!
//! The arrival rate is `load × CPUs / mean service`, so `load` is the offered utilization ρ.
//! With `service=exp` and the `global` policy on a zero-cost model this is an M/M/c queue, the
//! one the Erlang-C test checks.

use manycore_topology::Topology;

use super::{ArrivalCpu, Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

/// Service-time distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Service {
    /// Exponential with the mean.
    Exp,
    /// Every request takes the mean.
    Const,
    /// Short with probability 1−p, `ratio`× longer with probability p; mean preserved.
    Bimodal {
        /// Probability of a long request.
        p: f64,
        /// Long / short.
        ratio: f64,
    },
    /// Pareto with shape `alpha` (> 1), scale chosen so the mean is the mean.
    Pareto {
        /// Tail index.
        alpha: f64,
    },
}

impl Service {
    /// Reads `service`, `bimodal_p`, `bimodal_ratio`, `pareto_alpha`.
    pub fn from_params(p: &mut Params) -> Result<Service, String> {
        let kind = p.string("service", "exp");
        let bimodal_p = p.f64("bimodal_p", 0.1, 0.0, 1.0)?;
        let ratio = p.f64("bimodal_ratio", 10.0, 1.0, 1e6)?;
        let alpha = p.f64("pareto_alpha", 2.0, 1.01, 100.0)?;
        match kind.as_str() {
            "exp" => Ok(Service::Exp),
            "const" => Ok(Service::Const),
            "bimodal" => Ok(Service::Bimodal {
                p: bimodal_p,
                ratio,
            }),
            "pareto" => Ok(Service::Pareto { alpha }),
            _ => Err(p.bad("service", &kind, "expected exp, const, bimodal or pareto")),
        }
    }

    /// Draws one service time with mean `mean_ns`.
    pub fn sample(self, ctx: &mut dyn Ctx, mean_ns: f64) -> u64 {
        let v = match self {
            Service::Exp => ctx.rng().exp(mean_ns),
            Service::Const => mean_ns,
            Service::Bimodal { p, ratio } => {
                let short = mean_ns / (1.0 - p + p * ratio);
                if ctx.rng().chance(p) {
                    short * ratio
                } else {
                    short
                }
            }
            Service::Pareto { alpha } => {
                let x_min = mean_ns * (alpha - 1.0) / alpha;
                ctx.rng().pareto(x_min, alpha)
            }
        };
        // Clamp the tail at 10^6 means (Pareto can draw arbitrarily large values).
        (v.clamp(0.0, mean_ns * 1e6) + 0.5) as u64
    }

    /// Its parameter spelling.
    pub fn spelling(self) -> String {
        match self {
            Service::Exp => "service=exp".into(),
            Service::Const => "service=const".into(),
            Service::Bimodal { p, ratio } => {
                format!("service=bimodal bimodal_p={p} bimodal_ratio={ratio}")
            }
            Service::Pareto { alpha } => format!("service=pareto pareto_alpha={alpha}"),
        }
    }
}

/// The server workload.
#[derive(Clone, Debug)]
pub struct Server {
    requests: u64,
    load: f64,
    service: Service,
    service_ns: u64,
    mem_frac: f64,
    arrival: ArrivalCpu,
    mean_gap_ns: f64,
    arrived: u64,
}

impl Server {
    /// Reads `requests`, `load`, `service` (+ shape parameters), `service_ns`, `mem_frac`,
    /// `arrival`.
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<Server, String> {
        let requests = p.u64("requests", 100_000, 1, 1 << 40)?;
        let load = p.f64("load", 0.7, 0.001, 10.0)?;
        let service = Service::from_params(p)?;
        let service_ns = p.u64("service_ns", 10_000, 1, 1_000_000_000_000)?;
        let mem_frac = p.f64("mem_frac", 0.0, 0.0, 1.0)?;
        let arrival = ArrivalCpu::parse(p, topo)?;
        let rate_per_ns = load * topo.num_cpus() as f64 / service_ns as f64;
        Ok(Server {
            requests,
            load,
            service,
            service_ns,
            mem_frac,
            arrival,
            mean_gap_ns: 1.0 / rate_per_ns,
            arrived: 0,
        })
    }

    fn next_arrival(&mut self, ctx: &mut dyn Ctx) {
        if self.arrived >= self.requests {
            return;
        }
        let gap = ctx.rng().exp(self.mean_gap_ns);
        let cpu = self.arrival.pick(ctx);
        let t = ctx.now_ns() + (gap + 0.5) as u64;
        ctx.at(t, cpu, 0);
    }
}

impl Workload for Server {
    fn name(&self) -> &'static str {
        "server"
    }

    fn describe(&self) -> String {
        format!(
            "requests={} load={} {} service_ns={} mem_frac={} arrival={}",
            self.requests,
            self.load,
            self.service.spelling(),
            self.service_ns,
            self.mem_frac,
            self.arrival.spelling()
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        self.next_arrival(ctx);
    }

    fn on_arrival(&mut self, ctx: &mut dyn Ctx, _tag: u64) {
        self.arrived += 1;
        let ns = self.service.sample(ctx, self.service_ns as f64);
        ctx.spawn(NewTask::new(Seg::split(ns, self.mem_frac)));
        self.next_arrival(ctx);
    }

    fn on_segment_end(&mut self, _ctx: &mut dyn Ctx, _task: TaskId) -> Step {
        Step::Exit
    }

    fn expected_tasks(&self) -> Option<u64> {
        Some(self.requests)
    }
}
