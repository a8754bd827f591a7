//! Run queues, injectors, stealing and the idle protocol for the `topology`, `random`,
//! `nosteal` and `global` policies, following the scheduler design in docs/DESIGN (per-CPU bounded
//! ring plus a next slot, per-node injectors, steal-half by tiers, bounded searchers, wakeups near
//! the task).
//!
//! **Stand-in.** This module models manycore-sched's queues in plain single-threaded data
//! structures so the simulator runs before that crate has landed; `sched_bridge` is the only
//! user, and swapping it for the real crate's queues and policies changes nothing else.
//!
//! # Per CPU
//! - `ring`: bounded FIFO (capacity [`RING_CAPACITY`]); the owner pushes at the tail and pops at
//!   the head; thieves take half from the head. On overflow half of it moves to the node injector.
//! - `next`: the task just woken by this CPU; runs before the ring, at most [`NEXT_STREAK_MAX`]
//!   times in a row, stealable once it has waited [`NEXT_GRACE_NS`].
//!
//! # Finding work (`topology`)
//! Every [`INJECTOR_CHECK_EVERY`]th pick the node injector first (fairness); then the next slot,
//! the ring, the node injector; then the steal tiers nearest first (SMT, L2, LLC, node, remote
//! node classes by distance), a random start inside each tier, remote injectors before remote CPUs
//! of a class. `random` probes all other CPUs from a random start, then all injectors. `nosteal`
//! only ever runs its own queue. `global` has one shared FIFO.
//!
//! # Idle protocol
//! A CPU that finds nothing parks. When work is queued and no CPU of that node is searching
//! (unparked, not yet looked), the parked CPU nearest the work is unparked and counts as searching.
//! A searcher that finds work and was the last of its node wakes another if work is still queued.

use std::collections::VecDeque;
use std::rc::Rc;

use manycore_topology::TierKind;

use crate::cost::CostModel;
use crate::machine::Machine;
use crate::rng::Rng;
use crate::sched_bridge::{SchedCore, SimPlatform};

/// Ring capacity per CPU (power of two).
pub const RING_CAPACITY: usize = 256;
/// Most tasks one steal takes.
pub const STEAL_BATCH_MAX: usize = 128;
/// Runs from the next slot in a row before the ring gets a turn.
pub const NEXT_STREAK_MAX: u32 = 3;
/// How long a task waits in a next slot before thieves may take it.
pub const NEXT_GRACE_NS: u64 = 2_000;
/// The node injector is checked first on every this-many-th pick.
pub const INJECTOR_CHECK_EVERY: u32 = 61;
/// Most tasks moved from an injector to a ring at once.
pub const INJECTOR_BATCH_MAX: usize = 32;
/// Most victims probed in one remote tier per search (remote probes cost a cross-node cache miss
/// each; scanning every CPU of a 7-node tier would cost tens of microseconds).
pub const REMOTE_PROBES_MAX: usize = 8;
/// Most CPUs of one node searching at once.
pub const SEARCHERS_PER_NODE_MAX: u32 = 2;

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Which stealing policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StealPolicy {
    /// Tiers nearest first.
    Topology,
    /// Flat random victims (Tokio, Go).
    Random,
    /// No stealing (Seastar-like static partition).
    NoSteal,
    /// One shared queue.
    Global,
}

/// One tier of a CPU's steal order. The CPU list itself stays in the topology's shared tier pool
/// (`Topology::steal_order`), which stores each distinct list once: copying it per CPU would be
/// O(CPUs²) memory and a cache miss per probe on big machines.
#[derive(Clone, Copy, Debug)]
struct Tier {
    kind: TierKind,
    /// CPUs in the tier.
    len: u32,
    /// Remote tiers: index into `remote_classes[node]` (the nodes it covers).
    class: u32,
    /// Price of one probe in this tier (every victim of a tier is at the same distance).
    probe_ns: u64,
}

impl Tier {
    fn probe_all_ns(&self) -> u64 {
        u64::from(self.len) * self.probe_ns
    }
}

/// The queues of one simulated machine.
pub struct Queues {
    policy: StealPolicy,
    cpus: usize,
    node_of: Vec<u32>,
    node_cpus: Vec<Vec<u32>>,
    /// Per node: other nodes, nearest first.
    nodes_by_distance: Vec<Vec<u32>>,
    llc: Vec<u32>,
    tiers: Vec<Vec<Tier>>,
    /// Per node: the other nodes with CPUs, grouped by distance class, nearest first (the nodes of
    /// each remote tier).
    remote_classes: Vec<Vec<Vec<u32>>>,
    /// Strides coprime with the CPU count, for random victim orders.
    coprimes: Vec<u32>,
    /// Price of probing every other CPU once (random policy).
    probe_all_ns: Vec<u64>,
    attempt: crate::cost::TierCosts,
    machine: Rc<Machine>,
    rings: Vec<VecDeque<u32>>,
    next: Vec<Option<(u32, u64)>>,
    next_streak: Vec<u32>,
    picks: Vec<u32>,
    injectors: Vec<VecDeque<u32>>,
    global: VecDeque<u32>,
    /// Tasks in each CPU's ring + next slot.
    queued_cpu: Vec<u32>,
    /// Tasks in a node's rings, next slots and injector.
    queued_node: Vec<u64>,
    queued_total: u64,
    parked: Vec<bool>,
    parked_node: Vec<u32>,
    searching: Vec<u32>,
    searcher: Vec<bool>,
    rng: Vec<Rng>,
    cursor: usize,
}

impl Queues {
    /// Queues for `machine` under `policy`; per-CPU random streams derive from `seed`.
    pub fn new(policy: StealPolicy, machine: &Machine, cost: &CostModel, seed: u64) -> Queues {
        let topo = machine.topo();
        let n = machine.cpus();
        let nodes = machine.nodes();
        let node_of: Vec<u32> = (0..n).map(|c| machine.node_of(c) as u32).collect();
        let node_cpus: Vec<Vec<u32>> = (0..nodes)
            .map(|k| topo.cpus_of_node(k).iter().map(|&c| c as u32).collect())
            .collect();
        let nodes_by_distance: Vec<Vec<u32>> = (0..nodes)
            .map(|a| {
                let mut v: Vec<u32> = (0..nodes as u32).filter(|&b| b as usize != a).collect();
                v.sort_by_key(|&b| (topo.distance(a, b as usize), b));
                v
            })
            .collect();
        let attempt = cost.steal_attempt;
        let remote_classes: Vec<Vec<Vec<u32>>> = (0..nodes)
            .map(|a| {
                let mut classes: Vec<(u32, Vec<u32>)> = Vec::new();
                for &b in &nodes_by_distance[a] {
                    if node_cpus[b as usize].is_empty() {
                        continue;
                    }
                    let d = topo.distance(a, b as usize);
                    match classes.last_mut() {
                        Some((cd, list)) if *cd == d => list.push(b),
                        _ => classes.push((d, vec![b])),
                    }
                }
                classes.into_iter().map(|(_, list)| list).collect()
            })
            .collect();
        let mut tiers = Vec::with_capacity(n);
        let mut probe_all_ns = Vec::with_capacity(n);
        for c in 0..n {
            let mut list = Vec::new();
            let mut class = 0;
            for t in topo.steal_order(c).iter() {
                let probe_ns = t
                    .cpus
                    .first()
                    .map_or(0, |&x| attempt.at(machine.distance(c, x as usize)));
                list.push(Tier {
                    kind: t.kind,
                    len: t.cpus.len() as u32,
                    class,
                    probe_ns,
                });
                if t.kind == TierKind::Remote {
                    class += 1;
                }
            }
            probe_all_ns.push(list.iter().map(Tier::probe_all_ns).sum());
            tiers.push(list);
        }
        Queues {
            policy,
            cpus: n,
            llc: (0..n).map(|c| machine.llc_id(c)).collect(),
            node_of,
            node_cpus,
            nodes_by_distance,
            tiers,
            remote_classes,
            coprimes: (1..n.max(2) as u32)
                .filter(|&k| gcd(k, n as u32) == 1)
                .collect(),
            probe_all_ns,
            attempt,
            machine: Rc::new(machine.clone()),
            rings: (0..n).map(|_| VecDeque::new()).collect(),
            next: vec![None; n],
            next_streak: vec![0; n],
            picks: vec![0; n],
            injectors: (0..nodes).map(|_| VecDeque::new()).collect(),
            global: VecDeque::new(),
            queued_cpu: vec![0; n],
            queued_node: vec![0; nodes],
            queued_total: 0,
            parked: vec![false; n],
            parked_node: vec![0; nodes],
            searching: vec![0; nodes],
            searcher: vec![false; n],
            rng: (0..n)
                .map(|c| Rng::derive(seed, 0x5c4e_d000 + c as u64))
                .collect(),
            cursor: 0,
        }
    }

    fn count(&mut self, cpu: usize, delta: i64) {
        let node = self.node_of[cpu] as usize;
        self.queued_cpu[cpu] = (i64::from(self.queued_cpu[cpu]) + delta) as u32;
        self.queued_node[node] = (self.queued_node[node] as i64 + delta) as u64;
        self.queued_total = (self.queued_total as i64 + delta) as u64;
    }

    fn count_injector(&mut self, node: usize, delta: i64) {
        self.queued_node[node] = (self.queued_node[node] as i64 + delta) as u64;
        self.queued_total = (self.queued_total as i64 + delta) as u64;
    }

    /// Pushes on `cpu`'s own ring, spilling half to the injector when full.
    /// The injector a CPU spills to and refills from: its node's, or for `random` the single
    /// global one (Tokio's inject queue, Go's global run queue: no idea of nodes).
    fn home_injector(&self, cpu: usize) -> usize {
        if self.policy == StealPolicy::Random {
            0
        } else {
            self.node_of[cpu] as usize
        }
    }

    fn push_local(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        if self.policy != StealPolicy::NoSteal && self.rings[cpu].len() >= RING_CAPACITY {
            let node = self.home_injector(cpu);
            let half = RING_CAPACITY / 2;
            for _ in 0..half {
                if let Some(t) = self.rings[cpu].pop_front() {
                    self.injectors[node].push_back(t);
                }
            }
            self.count(cpu, -(half as i64));
            self.count_injector(node, half as i64);
            p.injector(cpu, node, half);
        }
        self.rings[cpu].push_back(task);
        self.count(cpu, 1);
    }

    fn push_global(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        self.global.push_back(task);
        self.queued_total += 1;
        p.injector(cpu, 0, 1);
    }

    /// Puts a woken task in `cpu`'s next slot; a previous occupant goes to the ring.
    fn push_next(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        let now = p.now_ns();
        if let Some((old, _)) = self.next[cpu].replace((task, now)) {
            self.count(cpu, -1);
            self.push_local(p, cpu, old);
        }
        self.count(cpu, 1);
    }

    /// A parked CPU to run work queued near `cpu`: same LLC, same node, then nearest nodes.
    fn parked_near(&mut self, cpu: usize, allow_remote: bool) -> Option<usize> {
        let node = self.node_of[cpu] as usize;
        if self.parked_node[node] > 0 {
            let llc = self.llc[cpu];
            let list = &self.node_cpus[node];
            if let Some(&c) = list
                .iter()
                .find(|&&c| self.parked[c as usize] && self.llc[c as usize] == llc)
            {
                return Some(c as usize);
            }
            return list
                .iter()
                .find(|&&c| self.parked[c as usize])
                .map(|&c| c as usize);
        }
        if !allow_remote {
            return None;
        }
        for &b in &self.nodes_by_distance[node] {
            if self.parked_node[b as usize] > 0 {
                return self.node_cpus[b as usize]
                    .iter()
                    .find(|&&c| self.parked[c as usize])
                    .map(|&c| c as usize);
            }
        }
        None
    }

    fn any_parked(&self) -> bool {
        self.parked_node.iter().any(|&n| n > 0)
    }

    fn do_unpark(&mut self, p: &mut dyn SimPlatform, from: usize, cpu: usize) {
        debug_assert!(self.parked[cpu]);
        let node = self.node_of[cpu] as usize;
        self.parked[cpu] = false;
        self.parked_node[node] -= 1;
        self.searching[node] += 1;
        self.searcher[cpu] = true;
        p.unpark(from, cpu);
    }

    /// Work was queued near `cpu` (on its ring, next slot or node injector): make sure someone
    /// comes for it.
    fn notify(&mut self, p: &mut dyn SimPlatform, cpu: usize) {
        match self.policy {
            StealPolicy::NoSteal => {
                if self.parked[cpu] {
                    self.do_unpark(p, cpu, cpu);
                }
            }
            StealPolicy::Topology => {
                // Work queued on a parked CPU's own queue (an arrival steered there): that CPU
                // wakes for it, no search needed.
                if self.parked[cpu] {
                    self.do_unpark(p, cpu, cpu);
                    return;
                }
                let node = self.node_of[cpu] as usize;
                if self.searching[node] > 0 {
                    return;
                }
                if let Some(c) = self.parked_near(cpu, true)
                    && self.searching[self.node_of[c] as usize] < SEARCHERS_PER_NODE_MAX
                {
                    self.do_unpark(p, cpu, c);
                }
            }
            StealPolicy::Random => {
                // The shared idle protocol (bounded searchers per node), with flat placement: a
                // random parked CPU anywhere, no idea of distance.
                if self.parked[cpu] {
                    self.do_unpark(p, cpu, cpu);
                    return;
                }
                let node = self.node_of[cpu] as usize;
                if self.searching[node] == 0 {
                    self.random_parked(p, cpu, false);
                }
            }
            StealPolicy::Global => {
                // A shared queue with a condition variable: wake one sleeper per queued task not
                // yet covered by a CPU on its way.
                let searching = self.searching.iter().sum::<u32>();
                if u64::from(searching) >= self.global.len() as u64 || !self.any_parked() {
                    return;
                }
                let start = self.cursor;
                for i in 0..self.cpus {
                    let c = (start + i) % self.cpus;
                    if self.parked[c] {
                        self.cursor = (c + 1) % self.cpus;
                        self.do_unpark(p, cpu, c);
                        return;
                    }
                }
            }
        }
    }

    /// Unparks a uniformly chosen parked CPU whose node has room for a searcher (`idle_node`:
    /// only in a node where nobody searches).
    fn random_parked(&mut self, p: &mut dyn SimPlatform, cpu: usize, idle_node: bool) {
        if !self.any_parked() {
            return;
        }
        let start = self.rng[cpu].below(self.cpus as u64) as usize;
        for i in 0..self.cpus {
            let c = (start + i) % self.cpus;
            let node = self.node_of[c] as usize;
            let limit = if idle_node { 1 } else { SEARCHERS_PER_NODE_MAX };
            if self.parked[c] && self.searching[node] < limit {
                self.do_unpark(p, cpu, c);
                return;
            }
        }
    }

    /// Unparks a CPU in the nearest other node that has parked CPUs and no searcher.
    fn notify_other_node(&mut self, p: &mut dyn SimPlatform, cpu: usize) {
        let node = self.node_of[cpu] as usize;
        let found = self.nodes_by_distance[node]
            .iter()
            .map(|&b| b as usize)
            .find(|&b| self.parked_node[b] > 0 && self.searching[b] == 0);
        if let Some(b) = found
            && let Some(&c) = self.node_cpus[b].iter().find(|&&c| self.parked[c as usize])
        {
            self.do_unpark(p, cpu, c as usize);
        }
    }

    /// Pops the owner's own work: next slot (bounded streak), then ring.
    fn pop_own(&mut self, cpu: usize) -> Option<u32> {
        if self.next[cpu].is_some()
            && (self.next_streak[cpu] < NEXT_STREAK_MAX || self.rings[cpu].is_empty())
        {
            self.next_streak[cpu] += 1;
            self.count(cpu, -1);
            return self.next[cpu].take().map(|(t, _)| t);
        }
        self.next_streak[cpu] = 0;
        let t = self.rings[cpu].pop_front()?;
        self.count(cpu, -1);
        Some(t)
    }

    /// Takes a batch from node `node`'s injector into `cpu`'s ring; returns the first task.
    fn take_injector(&mut self, p: &mut dyn SimPlatform, cpu: usize, node: usize) -> Option<u32> {
        let len = self.injectors[node].len();
        if len == 0 {
            return None;
        }
        let sharers = if self.policy == StealPolicy::Random {
            self.cpus
        } else {
            self.node_cpus[node].len()
        };
        let share = len.div_ceil(sharers.max(1));
        let n = share
            .clamp(1, INJECTOR_BATCH_MAX)
            .min(RING_CAPACITY - self.rings[cpu].len())
            .max(1);
        let first = self.injectors[node].pop_front()?;
        for _ in 1..n {
            if let Some(t) = self.injectors[node].pop_front() {
                self.rings[cpu].push_back(t);
                self.count(cpu, 1);
            }
        }
        self.count_injector(node, -(n as i64));
        p.injector(cpu, node, n);
        Some(first)
    }

    /// Tries to steal half of `victim`'s queue into `thief`; returns the first task.
    fn steal_from(&mut self, p: &mut dyn SimPlatform, thief: usize, victim: usize) -> Option<u32> {
        let len = self.rings[victim].len();
        if len == 0 {
            let now = p.now_ns();
            if let Some((t, since)) = self.next[victim]
                && now.saturating_sub(since) >= NEXT_GRACE_NS
            {
                self.next[victim] = None;
                self.count(victim, -1);
                p.stole(thief, victim, 1);
                return Some(t);
            }
            return None;
        }
        let n = len.div_ceil(2).min(STEAL_BATCH_MAX);
        let first = self.rings[victim].pop_front()?;
        for _ in 1..n {
            if let Some(t) = self.rings[victim].pop_front() {
                self.rings[thief].push_back(t);
            }
        }
        self.count(victim, -(n as i64));
        self.count(thief, n as i64 - 1);
        p.stole(thief, victim, n);
        Some(first)
    }

    fn steal_topology(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32> {
        let node = self.node_of[cpu] as usize;
        let machine = Rc::clone(&self.machine);
        let order = machine.topo().steal_order(cpu);
        let mut failed_probes = 0u64;
        let mut failed_ns = 0u64;
        let mut local_skipped = false;
        for ti in 0..self.tiers[cpu].len() {
            let tier = self.tiers[cpu][ti];
            let tier_len = tier.len as usize;
            if tier.kind != TierKind::Remote {
                // Nothing queued on the node's CPUs but ours: every local tier would come back empty.
                let others = self.queued_node[node]
                    - self.injectors[node].len() as u64
                    - u64::from(self.queued_cpu[cpu]);
                if others == 0 || local_skipped {
                    local_skipped = true;
                    failed_probes += tier_len as u64;
                    failed_ns += tier.probe_all_ns();
                    continue;
                }
            } else {
                let tier_nodes = &self.remote_classes[node][tier.class as usize];
                if let Some(&b) = tier_nodes
                    .iter()
                    .find(|&&b| !self.injectors[b as usize].is_empty())
                {
                    p.probes(cpu, failed_probes, failed_ns);
                    return self.take_injector(p, cpu, b as usize);
                }
                let probes = tier_len.min(REMOTE_PROBES_MAX);
                if tier_nodes
                    .iter()
                    .all(|&b| self.queued_node[b as usize] == 0)
                {
                    failed_probes += probes as u64;
                    failed_ns += probes as u64 * tier.probe_ns;
                    continue;
                }
            }
            // Local tiers are scanned whole; a remote tier gets at most REMOTE_PROBES_MAX probes,
            // spread over it.
            let victims = order.get(ti).map_or(&[][..], |t| t.cpus);
            let probes = if tier.kind == TierKind::Remote {
                tier_len.min(REMOTE_PROBES_MAX)
            } else {
                tier_len
            };
            let step = (tier_len / probes.max(1)).max(1);
            let mut idx = self.rng[cpu].below(tier_len as u64) as usize;
            for _ in 0..probes {
                let victim = victims[idx] as usize;
                idx += step;
                if idx >= tier_len {
                    idx -= tier_len;
                }
                if self.queued_cpu[victim] > 0
                    && let Some(t) = self.steal_from(p, cpu, victim)
                {
                    p.probes(cpu, failed_probes, failed_ns);
                    return Some(t);
                }
                failed_probes += 1;
                failed_ns += tier.probe_ns;
            }
        }
        p.probes(cpu, failed_probes, failed_ns);
        None
    }

    fn steal_random(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32> {
        let n = self.cpus;
        let own = u64::from(self.queued_cpu[cpu]);
        let injected: u64 = self.injectors.iter().map(|q| q.len() as u64).sum();
        if self.queued_total - own - injected == 0 {
            p.probes(cpu, n as u64 - 1, self.probe_all_ns[cpu]);
        } else {
            // Every CPU once, in a random order: a random start and a random stride coprime with
            // the CPU count (Go's `stealOrder`). A plain sequential scan from a random start would
            // favour the start's neighbours, which share its node on most numberings.
            let start = self.rng[cpu].below(n as u64) as usize;
            let stride =
                self.coprimes[self.rng[cpu].below(self.coprimes.len() as u64) as usize] as usize;
            let mut probes = 0;
            let mut ns = 0;
            let mut victim = start;
            for _ in 0..n {
                victim += stride;
                if victim >= n {
                    victim -= n;
                }
                if victim == cpu {
                    continue;
                }
                if self.queued_cpu[victim] > 0
                    && let Some(t) = self.steal_from(p, cpu, victim)
                {
                    p.probes(cpu, probes, ns);
                    return Some(t);
                }
                probes += 1;
                ns += self.attempt.at(self.machine.distance(cpu, victim));
            }
            p.probes(cpu, probes, ns);
        }
        let nodes = self.injectors.len();
        let start = self.rng[cpu].below(nodes as u64) as usize;
        (0..nodes)
            .find_map(|i| {
                let b = (start + i) % nodes;
                if self.injectors[b].is_empty() {
                    None
                } else {
                    Some(b)
                }
            })
            .and_then(|b| self.take_injector(p, cpu, b))
    }

    fn end_search(&mut self, p: &mut dyn SimPlatform, cpu: usize, found: bool) {
        if !self.searcher[cpu] {
            return;
        }
        self.searcher[cpu] = false;
        let node = self.node_of[cpu] as usize;
        self.searching[node] -= 1;
        // The last searcher of the node to find work passes the baton if work is still queued.
        if found && self.searching[node] == 0 && self.queued_total > 0 {
            match self.policy {
                StealPolicy::NoSteal => {}
                StealPolicy::Global => self.notify(p, cpu),
                StealPolicy::Random => {
                    self.notify(p, cpu);
                    if self.queued_total > u64::from(self.searching.iter().sum::<u32>()) {
                        self.random_parked(p, cpu, true);
                    }
                }
                StealPolicy::Topology => {
                    self.notify(p, cpu);
                    // Fan out: also start a search in the nearest node where nobody is looking, so
                    // waking P CPUs takes O(log P) unpark latencies, not O(P) (a chain of one
                    // wake-up at a time leaves cores idle for P × unpark on big machines).
                    if self.queued_total > u64::from(self.searching.iter().sum::<u32>()) {
                        self.notify_other_node(p, cpu);
                    }
                }
            }
        }
    }
}

impl SchedCore for Queues {
    fn spawn(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        match self.policy {
            StealPolicy::Global => self.push_global(p, cpu, task),
            _ => self.push_local(p, cpu, task),
        }
        self.notify(p, cpu);
    }

    fn wake(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        match self.policy {
            StealPolicy::Global => {
                self.push_global(p, cpu, task);
                self.notify(p, cpu);
            }
            StealPolicy::NoSteal => {
                // Shared-nothing: a task belongs to the CPU it last ran on.
                let home = p.task_last_cpu(task).unwrap_or(cpu);
                if home != cpu {
                    p.placed(cpu, home);
                }
                self.rings[home].push_back(task);
                self.count(home, 1);
                self.notify(p, home);
            }
            StealPolicy::Random => {
                self.push_next(p, cpu, task);
                self.notify(p, cpu);
            }
            StealPolicy::Topology => {
                // Prefer an idle CPU near the task's data: its last CPU, its LLC, its node.
                let last = p.task_last_cpu(task).unwrap_or(cpu);
                let target = if self.parked[last] {
                    Some(last)
                } else {
                    self.parked_near(last, false)
                };
                match target {
                    Some(t) => {
                        let node = self.node_of[t] as usize;
                        self.injectors[node].push_back(task);
                        self.count_injector(node, 1);
                        p.placed(cpu, t);
                        self.do_unpark(p, cpu, t);
                    }
                    _ => {
                        self.push_next(p, cpu, task);
                        self.notify(p, cpu);
                    }
                }
            }
        }
    }

    fn requeue(&mut self, p: &mut dyn SimPlatform, cpu: usize, task: u32) {
        match self.policy {
            StealPolicy::Global => self.push_global(p, cpu, task),
            _ => self.push_local(p, cpu, task),
        }
        self.notify(p, cpu);
    }

    fn next(&mut self, p: &mut dyn SimPlatform, cpu: usize) -> Option<u32> {
        let found = match self.policy {
            StealPolicy::Global => {
                let t = self.global.pop_front();
                if t.is_some() {
                    self.queued_total -= 1;
                    p.injector(cpu, 0, 1);
                }
                t
            }
            StealPolicy::NoSteal => self.pop_own(cpu),
            StealPolicy::Topology | StealPolicy::Random => {
                let node = self.home_injector(cpu);
                self.picks[cpu] = self.picks[cpu].wrapping_add(1);
                let fair = self.picks[cpu] % INJECTOR_CHECK_EVERY == 0;
                let mut t = if fair {
                    self.take_injector(p, cpu, node)
                } else {
                    None
                };
                if t.is_none() {
                    t = self.pop_own(cpu);
                }
                if t.is_none() {
                    t = self.take_injector(p, cpu, node);
                }
                if t.is_none() {
                    t = if self.policy == StealPolicy::Topology {
                        self.steal_topology(p, cpu)
                    } else {
                        self.steal_random(p, cpu)
                    };
                }
                t
            }
        };
        self.end_search(p, cpu, found.is_some());
        found
    }

    fn park(&mut self, p: &mut dyn SimPlatform, cpu: usize) {
        debug_assert!(!self.parked[cpu]);
        self.end_search(p, cpu, false);
        self.parked[cpu] = true;
        self.parked_node[self.node_of[cpu] as usize] += 1;
        // Work may have been queued for this CPU alone (nosteal) while it was looking elsewhere.
        if self.queued_cpu[cpu] > 0 && self.policy == StealPolicy::NoSteal {
            self.do_unpark(p, cpu, cpu);
        }
    }

    fn tick_ns(&self) -> Option<u64> {
        None
    }

    fn tick(&mut self, _p: &mut dyn SimPlatform, _busy: &[bool]) {}

    fn queued(&self) -> u64 {
        self.queued_total
    }
}
