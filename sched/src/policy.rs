//! Scheduling policies: victim order, wake placement, batch sizes and periodic balancing.
//!
//! The queues, the idle protocol and the accounting are the same for every policy; a policy only
//! makes decisions, from plain data (the topology, a CPU, the CPU's PRNG), so the simulator can
//! compare them on identical machinery:
//!
//! | policy | victims | wake placement | models |
//! |---|---|---|---|
//! | [`TopologyPolicy`] (default) | steal tiers nearest first, random start inside a tier, only CPUs the work summary marks loaded; remote tiers only after local ones fail, with a smaller batch, a threshold and a grace period | last CPU if idle, else an idle CPU of its LLC, then node | manycore |
//! | [`RandomPolicy`] | every other CPU in random order, no topology, sleeping CPUs skipped; one machine-wide injector | the waker's CPU | Tokio, Go |
//! | [`NoStealPolicy`] | none | the task's last CPU, always | Seastar (shared-nothing) |
//! | [`GlobalPolicy`] | none: one shared queue | the shared queue | a single run queue |

use manycore_topology::{TierKind, Topology};

use crate::rng::Rng;
use crate::summary::{Bits, WorkSummary};

/// How a woken task finds a CPU (see [`crate::WakeReason`] for what the scheduler reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakePolicy {
    /// Stay on the waker's CPU when the task last ran there; else its last CPU if idle, an idle
    /// CPU of its LLC, of its node; else the waker's CPU (its next slot, on any node); from
    /// outside the scheduler, the node's injector.
    NearLast,
    /// The waker's CPU (next slot); from outside the scheduler, the node's injector.
    Local,
    /// Always the task's last CPU (its inbox), never elsewhere.
    Pinned,
    /// The shared queue.
    Shared,
}

/// A scheduling policy. Implementations must be deterministic given the [`Rng`] they are passed.
pub trait Policy: Send + Sync {
    /// The name used on the command line and in reports.
    fn name(&self) -> &'static str;

    /// Whether all CPUs share one queue (rings, stealing and placement are then unused).
    fn shared_queue(&self) -> bool {
        false
    }

    /// Whether idle CPUs steal. Read once when the scheduler is built (constant).
    fn steals(&self) -> bool {
        true
    }

    /// Whether the scheduler keeps one injector for the whole machine instead of one per node:
    /// ring overflow, spawns and wakes from outside, and injector pops of every CPU all use
    /// node 0's injector (Tokio's and Go's global run queue). Rings and stealing stay per CPU.
    fn one_injector(&self) -> bool {
        false
    }

    /// Calls `visit(victim, tier)` for each victim of `cpu`, in the order to try them, until
    /// `visit` returns `true` (found work).
    fn for_each_victim(
        &self,
        topo: &Topology,
        cpu: usize,
        rng: &Rng,
        visit: &mut dyn FnMut(usize, TierKind) -> bool,
    );

    /// Like [`Policy::for_each_victim`], given the scheduler's [`WorkSummary`] (which CPUs may
    /// hold stealable work), so the policy can aim at loaded victims. The scheduler's searches
    /// call this one. The default ignores the summary and visits what `for_each_victim` names,
    /// so a policy keeps exactly the victim order it defines unless it opts in.
    fn for_each_loaded_victim(
        &self,
        topo: &Topology,
        cpu: usize,
        rng: &Rng,
        work: &WorkSummary,
        visit: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
        let _ = work;
        self.for_each_victim(topo, cpu, rng, visit);
    }

    /// Whether [`Policy::for_each_loaded_victim`] uses the summary: the victims a search visits
    /// then depend on where work is, not only on the topology and the PRNG.
    fn uses_work_summary(&self) -> bool {
        false
    }

    /// Whether a search skips victims announced asleep without probing them (their queues are
    /// empty: a CPU sleeps only after finding nothing, and a waker claims it, clearing its
    /// sleeper bit, before placing work on it). Go's thieves do this with `idlepMask`.
    fn skips_sleeping_victims(&self) -> bool {
        false
    }

    /// The most tasks to take from one victim in `tier`. The scheduler reads this (and
    /// [`Policy::steal_min_tasks`]) once per tier kind when it is built: both must be pure
    /// functions of the tier.
    fn steal_batch_max(&self, tier: TierKind) -> usize {
        let _ = tier;
        128
    }

    /// The fewest tasks a victim in `tier` must hold to be robbed.
    fn steal_min_tasks(&self, tier: TierKind) -> usize {
        let _ = tier;
        1
    }

    /// Whether a CPU that found nothing nearby may take from other nodes' injectors. Read once
    /// when the scheduler is built (constant).
    fn takes_remote_injectors(&self) -> bool {
        true
    }

    /// Wake placement. Read once when the scheduler is built (constant).
    fn wake_policy(&self) -> WakePolicy;

    /// Periodic balancing (Linux-like policies): given the queue length of every CPU, the
    /// victim `cpu` should pull from and how many tasks, or `None`. Called by the host every
    /// [`Policy::balance_interval_ns`] on each CPU through [`crate::Scheduler::balance`].
    fn balance(
        &self,
        topo: &Topology,
        cpu: usize,
        load_of: &dyn Fn(usize) -> usize,
    ) -> Option<(usize, usize)> {
        let _ = (topo, cpu, load_of);
        None
    }

    /// How often to call [`Policy::balance`]; `None` when the policy does not balance.
    fn balance_interval_ns(&self) -> Option<u64> {
        None
    }
}

/// Topology-aware stealing (the default).
#[derive(Clone, Copy, Debug)]
pub struct TopologyPolicy {
    /// Tasks taken at most from a victim of a local tier (SMT .. node).
    pub local_batch_max: usize,
    /// Tasks taken at most from a victim on another node.
    pub remote_batch_max: usize,
    /// A victim on another node is robbed only if it holds at least this many tasks, so work
    /// stays near its memory unless there is plenty.
    pub remote_min_tasks: usize,
    /// Victims probed at most per remote tier (random ones), so a search on a 1024-CPU machine
    /// does not walk every remote CPU (found by the simulator: unbounded remote probing cost
    /// 50-70 µs per search on fork-join).
    pub remote_probes_per_tier_max: usize,
}

impl Default for TopologyPolicy {
    fn default() -> Self {
        TopologyPolicy {
            local_batch_max: 128,
            remote_batch_max: 32,
            remote_min_tasks: 2,
            remote_probes_per_tier_max: 8,
        }
    }
}

impl Policy for TopologyPolicy {
    fn name(&self) -> &'static str {
        "topology"
    }

    fn for_each_victim(
        &self,
        topo: &Topology,
        cpu: usize,
        rng: &Rng,
        visit: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
        for tier in topo.steal_order(cpu).iter() {
            let n = tier.cpus.len();
            let start = rng.below(n);
            let probes = if tier.kind == TierKind::Remote {
                n.min(self.remote_probes_per_tier_max.max(1))
            } else {
                n
            };
            for i in 0..probes {
                let victim = tier.cpus[(start + i) % n] as usize;
                if visit(victim, tier.kind) {
                    return;
                }
            }
        }
    }

    /// Aimed search: local tiers as in `for_each_victim` (every CPU once from a random start)
    /// but only CPUs the summary marks loaded. Each remote tier visits at most
    /// `remote_probes_per_tier_max` *loaded* CPUs from a random start, found by the summary's
    /// words (random probes on a 1024-CPU machine with a few loaded CPUs among 960 remote ones
    /// missed them: docs/SIMULATOR.md, findings 4 and 5). The scheduler still declines remote
    /// victims whose work is young or whose node has idle CPUs (see `Scheduler`'s search).
    ///
    /// A tier whose CPU list is sorted by id has a mask in the summary
    /// ([`WorkSummary::tier_mask`]): its loaded CPUs are found a word at a time, in the same
    /// order as the per-CPU walk (profiled on `ring-1024`: testing every local CPU's bit and
    /// galloping through remote lists for each loaded CPU outside the tier was ~60% of this
    /// function). Tiers without a mask take the walk.
    fn for_each_loaded_victim(
        &self,
        topo: &Topology,
        cpu: usize,
        rng: &Rng,
        work: &WorkSummary,
        visit: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
        let order = topo.steal_order(cpu);
        for t in 0..order.len() {
            // Remote tiers read the backlog bits: another node's CPU is worth a look only if
            // it holds what this CPU may take from it (see `crate::summary`).
            let which = if order.kind(t) == Some(TierKind::Remote) {
                Bits::Backlog
            } else {
                Bits::Loaded
            };
            let mask = work.tier_mask(cpu, t);
            if mask.is_some_and(|m| !work.any_in(m, which)) {
                // The common case on a big machine: decided before the tier's list is read.
                continue;
            }
            let Some(tier) = order.get(t) else { break };
            let cpus = tier.cpus;
            let n = cpus.len();
            if mask.is_none() && !cpus.iter().any(|&c| work.may_hold_in(c as usize, which)) {
                // Nothing loaded in this tier: no start is drawn (most tiers of a search on a
                // big machine with a few busy CPUs), with or without a mask.
                continue;
            }
            let start = rng.below(n);
            let remote = tier.kind == TierKind::Remote;
            if let Some(mask) = mask {
                // The tier's CPUs as a mask: its loaded CPUs in the order the loops below
                // visit them, found a word at a time. Each step reloads the summary word, as the
                // loops below read each CPU's bit just before visiting it.
                let mut budget = if remote {
                    self.remote_probes_per_tier_max.max(1)
                } else {
                    usize::MAX
                };
                let pivot = cpus[start] as usize;
                // The tier's CPUs from `pivot` up, then from the smallest up to `pivot`: the
                // list's order from `start` (the list is sorted up to a rotation).
                for (lo, hi) in [(pivot, usize::MAX), (0, pivot)] {
                    let mut from = lo;
                    while budget > 0 {
                        let Some(c) = work.next_loaded_in(from, mask, which) else {
                            break;
                        };
                        if c >= hi {
                            break;
                        }
                        budget -= 1;
                        if visit(c, tier.kind) {
                            return;
                        }
                        from = c + 1;
                    }
                }
                continue;
            }
            if !remote {
                for i in 0..n {
                    let j = if start + i >= n {
                        start + i - n
                    } else {
                        start + i
                    };
                    let victim = cpus[j] as usize;
                    if work.may_hold_in(victim, which) && visit(victim, tier.kind) {
                        return;
                    }
                }
                continue;
            }
            // A remote tier's CPU list is sorted by id (topology's steal tiers), so the next
            // loaded CPU of the tier is a summary scan plus a binary search.
            let mut budget = self.remote_probes_per_tier_max.max(1);
            for (lo, hi) in [(start, n), (0, start)] {
                let mut i = lo;
                while i < hi && budget > 0 {
                    let Some(c) = work.next_loaded(cpus[i] as usize, which) else {
                        break;
                    };
                    let j = if cpus[i] as usize >= c {
                        i
                    } else {
                        i + gallop(&cpus[i..hi], c)
                    };
                    if j >= hi {
                        break;
                    }
                    if cpus[j] as usize == c {
                        budget -= 1;
                        if visit(c, TierKind::Remote) {
                            return;
                        }
                        i = j + 1;
                    } else {
                        // `c` is not in this tier: go on from the tier's next CPU after it.
                        i = j;
                    }
                }
            }
        }
    }

    fn uses_work_summary(&self) -> bool {
        true
    }

    fn steal_batch_max(&self, tier: TierKind) -> usize {
        if tier == TierKind::Remote {
            self.remote_batch_max
        } else {
            self.local_batch_max
        }
    }

    fn steal_min_tasks(&self, tier: TierKind) -> usize {
        if tier == TierKind::Remote {
            self.remote_min_tasks
        } else {
            1
        }
    }

    fn wake_policy(&self) -> WakePolicy {
        WakePolicy::NearLast
    }
}

/// Flat random stealing, topology-blind, the way Tokio and Go schedule: uniformly random
/// victims among all other CPUs, skipping those asleep (Go's `idlepMask`), and one global
/// injector (no per-node queues that would keep overflow on its node), so it is the
/// topology-unaware baseline the simulator compares against.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomPolicy;

impl Policy for RandomPolicy {
    fn name(&self) -> &'static str {
        "random"
    }

    fn for_each_victim(
        &self,
        topo: &Topology,
        cpu: usize,
        rng: &Rng,
        visit: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
        let n = topo.num_cpus();
        if n < 2 {
            return;
        }
        // A random start and a random stride coprime with n visit every CPU once.
        let start = rng.below(n);
        let mut stride = 1 + rng.below(n - 1);
        while gcd(stride, n) != 1 {
            stride = stride % (n - 1) + 1;
        }
        for i in 0..n {
            let victim = (start + i * stride) % n;
            if victim == cpu {
                continue;
            }
            let tier = topo.tier_between(cpu, victim).unwrap_or(TierKind::Remote);
            if visit(victim, tier) {
                return;
            }
        }
    }

    fn one_injector(&self) -> bool {
        true
    }

    /// As Go's `stealWork`, which skips Ps in `idlepMask` (found by the simulator: without it, a
    /// flat search on a 1024-CPU machine probed up to 1023 victims, ~300 µs at remote prices,
    /// and a fork-join's ramp left 2.8-6.3% of core time wasted; with it, 0%).
    fn skips_sleeping_victims(&self) -> bool {
        true
    }

    fn wake_policy(&self) -> WakePolicy {
        WakePolicy::Local
    }
}

/// The first index of sorted `cpus` whose value is `>= c` (`cpus.len()` if none), by
/// galloping from the front: loaded CPUs are usually a few places ahead in a remote tier.
fn gallop(cpus: &[u32], c: usize) -> usize {
    let mut hi = 1;
    while hi < cpus.len() && (cpus[hi] as usize) < c {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(cpus.len());
    lo + cpus[lo..hi].partition_point(|&x| (x as usize) < c)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// No stealing: each task stays on the CPU it was placed on (Seastar's shared-nothing model).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStealPolicy;

impl Policy for NoStealPolicy {
    fn name(&self) -> &'static str {
        "nosteal"
    }

    fn steals(&self) -> bool {
        false
    }

    fn takes_remote_injectors(&self) -> bool {
        false
    }

    fn for_each_victim(
        &self,
        _: &Topology,
        _: usize,
        _: &Rng,
        _: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
    }

    fn wake_policy(&self) -> WakePolicy {
        WakePolicy::Pinned
    }
}

/// One queue shared by every CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalPolicy;

impl Policy for GlobalPolicy {
    fn name(&self) -> &'static str {
        "global"
    }

    fn shared_queue(&self) -> bool {
        true
    }

    fn steals(&self) -> bool {
        false
    }

    fn for_each_victim(
        &self,
        _: &Topology,
        _: usize,
        _: &Rng,
        _: &mut dyn FnMut(usize, TierKind) -> bool,
    ) {
    }

    fn wake_policy(&self) -> WakePolicy {
        WakePolicy::Shared
    }
}

/// The built-in policies by name (`topology`, `random`, `nosteal`, `global`).
pub fn by_name(name: &str) -> Option<alloc::boxed::Box<dyn Policy>> {
    Some(match name {
        "topology" => alloc::boxed::Box::new(TopologyPolicy::default()),
        "random" => alloc::boxed::Box::new(RandomPolicy),
        "nosteal" => alloc::boxed::Box::new(NoStealPolicy),
        "global" => alloc::boxed::Box::new(GlobalPolicy),
        _ => return None,
    })
}

/// Names accepted by [`by_name`].
pub const POLICY_NAMES: [&str; 4] = ["topology", "random", "nosteal", "global"];

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn victims(p: &dyn Policy, t: &Topology, cpu: usize, seed: u64) -> Vec<(usize, TierKind)> {
        let rng = Rng::new(seed, cpu);
        let mut out = Vec::new();
        p.for_each_victim(t, cpu, &rng, &mut |v, k| {
            out.push((v, k));
            false
        });
        out
    }

    #[test]
    fn topology_policy_visits_sibling_first_and_remote_nodes_last() {
        let t = Topology::from_synthetic("pack:2 numa:2 l3:2 core:4 pu:2").unwrap();
        for seed in 0..20 {
            let v = victims(&TopologyPolicy::default(), &t, 0, seed);
            let local = t.num_cpus() / 4 - 1;
            assert_eq!(
                v.len(),
                local + 2 * TopologyPolicy::default().remote_probes_per_tier_max,
                "every local CPU once, bounded remote probes"
            );
            assert_eq!(v[0], (1, TierKind::Smt), "first victim is the SMT sibling");
            let first_remote = v.iter().position(|&(_, k)| k == TierKind::Remote).unwrap();
            assert!(
                v[first_remote..]
                    .iter()
                    .all(|&(_, k)| k == TierKind::Remote),
                "remote nodes come last"
            );
            assert!(
                v[first_remote..]
                    .iter()
                    .take(TopologyPolicy::default().remote_probes_per_tier_max)
                    .all(|&(c, _)| (16..32).contains(&c)),
                "nearer node before the other package"
            );
        }
        let p = TopologyPolicy::default();
        assert!(p.steal_batch_max(TierKind::Remote) < p.steal_batch_max(TierKind::Llc));
        assert!(p.steal_min_tasks(TierKind::Remote) > p.steal_min_tasks(TierKind::Node));
    }

    /// The loaded victims a search visits (up to the `stop`-th, whose visit ends the search).
    fn loaded_victims(
        t: &Topology,
        work: &WorkSummary,
        cpu: usize,
        seed: u64,
        stop: usize,
    ) -> Vec<(usize, TierKind)> {
        let rng = Rng::new(seed, cpu);
        let mut out = Vec::new();
        TopologyPolicy::default().for_each_loaded_victim(t, cpu, &rng, work, &mut |v, k| {
            out.push((v, k));
            out.len() == stop
        });
        out
    }

    #[test]
    fn tier_masks_visit_the_same_loaded_victims_in_the_same_order_as_the_cpu_walk() {
        for spec in [
            "pack:2 numa:2 l3:2 core:4 pu:2",
            "pack:4 numa:4 l3:2 core:8 pu:2",
            "pack:1 numa:1 l3:1 core:8 pu:1",
            // 1024 CPUs: masks whose words span part of the summary.
            "pack:4 numa:4 l3:2 core:16 pu:2",
        ] {
            let t = Topology::from_synthetic(spec).unwrap();
            let n = t.num_cpus();
            let masked = WorkSummary::with_tiers(&t);
            let plain = WorkSummary::new(n);
            let remote_tiers = (0..t.steal_order(0).len())
                .filter(|&i| t.steal_order(0).get(i).unwrap().kind == TierKind::Remote)
                .count();
            let with_mask = (0..t.steal_order(0).len())
                .filter(|&i| masked.tier_mask(0, i).is_some())
                .count();
            assert!(
                with_mask >= remote_tiers.max(1),
                "{spec}: the mask path is exercised ({with_mask} tiers have masks)"
            );
            // Every tier list of these machines is sorted up to a rotation (an LLC's list
            // starts after the thief's core), so every CPU's every tier has a mask.
            for cpu in 0..n {
                for i in 0..t.steal_order(cpu).len() {
                    assert!(
                        masked.tier_mask(cpu, i).is_some(),
                        "{spec}: cpu {cpu} tier {i} has no mask"
                    );
                }
            }
            let rng = Rng::new(7, 0);
            for round in 0..40u64 {
                // A random set of loaded CPUs, the same in both summaries.
                for c in 0..n {
                    masked.retract(c);
                    plain.retract(c);
                    if rng.below(4) == 0 {
                        masked.advertise(c);
                        plain.advertise(c);
                    }
                    // The backlog bits (remote tiers) drawn independently.
                    masked.retract_backlog(c);
                    plain.retract_backlog(c);
                    if rng.below(3) == 0 {
                        masked.advertise_backlog(c);
                        plain.advertise_backlog(c);
                    }
                }
                let cpu = rng.below(n);
                let stop = if round % 2 == 0 {
                    usize::MAX
                } else {
                    1 + rng.below(6)
                };
                assert_eq!(
                    loaded_victims(&t, &masked, cpu, round, stop),
                    loaded_victims(&t, &plain, cpu, round, stop),
                    "{spec}, cpu {cpu}, round {round}"
                );
            }
        }
    }

    #[test]
    fn topology_policy_randomizes_inside_a_tier() {
        let t = Topology::from_synthetic("pack:1 numa:1 l3:1 core:8 pu:1").unwrap();
        let firsts: alloc::collections::BTreeSet<usize> = (0..40)
            .map(|s| victims(&TopologyPolicy::default(), &t, 0, s)[0].0)
            .collect();
        assert!(firsts.len() > 3, "start varies with the seed: {firsts:?}");
    }

    #[test]
    fn random_policy_ignores_topology_but_visits_everyone() {
        let t = Topology::from_synthetic("pack:2 numa:2 l3:2 core:4 pu:2").unwrap();
        let mut remote_first = 0;
        for seed in 0..50 {
            let v = victims(&RandomPolicy, &t, 3, seed);
            let mut cpus: Vec<usize> = v.iter().map(|&(c, _)| c).collect();
            cpus.sort_unstable();
            assert_eq!(cpus, (0..64).filter(|&c| c != 3).collect::<Vec<_>>());
            remote_first += usize::from(v[0].1 == TierKind::Remote);
        }
        assert!(
            remote_first > 25,
            "3/4 of CPUs are remote, so most first victims are: {remote_first}/50"
        );
    }

    /// Records which injector (node) each injector operation used.
    #[derive(Default)]
    struct InjectorLog(std::sync::Mutex<Vec<(Option<usize>, bool)>>);

    impl crate::Observer for InjectorLog {
        fn injector(&self, _cpu: usize, node: Option<usize>, push: bool, _count: usize) {
            self.0.lock().unwrap().push((node, push));
        }
    }

    struct Outside;

    impl crate::Platform for Outside {
        fn current_cpu(&self) -> Option<usize> {
            None
        }
        fn now_ns(&self) -> u64 {
            1
        }
        fn park(&self, _: usize, _: Option<u64>) {}
        fn unpark(&self, _: usize) {}
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Job;
    impl crate::Task for Job {}

    /// Injector traffic for a task spawned from outside for node 1 and then taken by CPU 8
    /// (node 1): `(node pushed to, node popped from)`.
    fn injector_nodes_of(policy: alloc::boxed::Box<dyn Policy>) -> Vec<(Option<usize>, bool)> {
        let t = Topology::from_synthetic("pack:1 numa:2 core:8 pu:1").unwrap();
        let s = crate::Scheduler::with(
            t,
            policy,
            Outside,
            InjectorLog::default(),
            crate::Config::default(),
        )
        .unwrap();
        s.spawn(
            Job,
            crate::SpawnHint {
                cpu: None,
                node: Some(1),
            },
        );
        assert_eq!(s.next_task(8), Some(Job), "a CPU of node 1 finds the task");
        s.observer().0.lock().unwrap().clone()
    }

    #[test]
    fn random_policy_uses_one_injector_for_the_machine() {
        // Tokio and Go keep one global queue: a node hint does not make a per-node queue.
        assert_eq!(
            injector_nodes_of(alloc::boxed::Box::new(RandomPolicy)),
            [(Some(0), true), (Some(0), false)]
        );
        // The topology policy keeps the task on its node's own injector.
        assert_eq!(
            injector_nodes_of(alloc::boxed::Box::new(TopologyPolicy::default())),
            [(Some(1), true), (Some(1), false)]
        );
        assert!(RandomPolicy.one_injector() && !TopologyPolicy::default().one_injector());
    }

    #[test]
    fn nosteal_and_global_never_steal() {
        let t = Topology::from_synthetic("pack:1 core:4 pu:1").unwrap();
        assert!(victims(&NoStealPolicy, &t, 0, 1).is_empty());
        assert!(victims(&GlobalPolicy, &t, 0, 1).is_empty());
        assert_eq!(NoStealPolicy.wake_policy(), WakePolicy::Pinned);
        assert!(GlobalPolicy.shared_queue());
        for name in POLICY_NAMES {
            assert_eq!(by_name(name).unwrap().name(), name);
        }
        assert!(by_name("linux").is_none());
    }
}
