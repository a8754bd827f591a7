//! Producers and consumers on bounded channels, with blocking and wakeups.
//!
//! Each channel has `producers` producer tasks and `consumers` consumer tasks, placed round-robin
//! over the CPUs at start. A producer spends `produce_ns` making an item, then hands it to a
//! blocked consumer (waking it), or queues it, or, when the channel holds `capacity` items,
//! blocks holding it until a consumer makes room. A consumer takes an item, spends `consume_ns`
//! on it, and blocks when the channel is empty. Latency samples are per item: produced to
//! consumed. Wake placement (the next slot, an idle CPU near the waker) is what this stresses.
//!
//! Task state: `user[0]` = role | channel << 8 | flags; `user[1]` = the item held (its birth
//! time) or the items a producer still has to make.

use std::collections::VecDeque;

use manycore_topology::Topology;

use super::{Ctx, NewTask, Seg, Step, TaskId, Workload};
use crate::params::Params;

const PRODUCER: u64 = 1;
const CONSUMER: u64 = 2;
/// Producer flag: blocked holding an item (its birth time is in `Chan::held`).
const HOLDING: u64 = 1 << 4;
/// Consumer flag: woken to exit.
const EXITING: u64 = 1 << 5;
/// Consumer flag: holding an item whose birth time is in `user[1]`.
const HAS_ITEM: u64 = 1 << 6;
/// Producer flag: woken after a consumer queued the item it held.
const RESUMED: u64 = 1 << 7;

#[derive(Clone, Debug, Default)]
struct Chan {
    /// Birth times of queued items (bounded by `capacity`).
    items: VecDeque<u64>,
    /// Blocked producers and the item each holds.
    blocked_producers: VecDeque<(TaskId, u64)>,
    /// Blocked consumers.
    blocked_consumers: VecDeque<TaskId>,
    /// Items not yet taken by a consumer (produced or not).
    untaken: u64,
}

/// The producer-consumer workload.
#[derive(Clone, Debug)]
pub struct ProducerConsumer {
    channels: u64,
    producers: u64,
    consumers: u64,
    items: u64,
    capacity: u64,
    produce_ns: u64,
    consume_ns: u64,
    chans: Vec<Chan>,
    /// Items per channel, fixed at construction.
    chan_items: Vec<u64>,
}

impl ProducerConsumer {
    /// Reads `channels`, `producers`, `consumers` (per channel), `items` (total), `capacity`,
    /// `produce_ns`, `consume_ns`.
    pub fn from_params(p: &mut Params, topo: &Topology) -> Result<ProducerConsumer, String> {
        let default_channels = (topo.num_cpus() as u64 / 4).max(1);
        let channels = p.u64("channels", default_channels, 1, 1 << 20)?;
        let producers = p.u64("producers", 1, 1, 1 << 16)?;
        let consumers = p.u64("consumers", 1, 1, 1 << 16)?;
        let items = p.u64("items", 100_000, 1, 1 << 40)?;
        let capacity = p.u64("capacity", 16, 1, 1 << 20)?;
        let produce_ns = p.u64("produce_ns", 3_000, 0, 1_000_000_000_000)?;
        let consume_ns = p.u64("consume_ns", 3_000, 0, 1_000_000_000_000)?;
        if items < channels * producers {
            return Err(format!(
                "workload producer-consumer: items={items} is fewer than channels × producers = {}; every producer needs an item",
                channels * producers
            ));
        }
        let per_channel = items / channels;
        let mut chans = Vec::new();
        for c in 0..channels {
            let n = per_channel + u64::from(c < items % channels);
            chans.push(Chan {
                untaken: n,
                ..Chan::default()
            });
        }
        Ok(ProducerConsumer {
            channels,
            producers,
            consumers,
            items,
            capacity,
            produce_ns,
            consume_ns,
            chan_items: chans.iter().map(|c| c.untaken).collect(),
            chans,
        })
    }

    fn share(&self, chan: usize, producer: u64) -> u64 {
        let n = self.chan_items[chan];
        n / self.producers + u64::from(producer < n % self.producers)
    }

    /// A producer has an item ready (born `born`): hand it over, queue it, or block.
    fn offer(&mut self, ctx: &mut dyn Ctx, task: TaskId, chan: usize, born: u64) -> Step {
        let ch = &mut self.chans[chan];
        if let Some(consumer) = ch.blocked_consumers.pop_front() {
            ch.untaken -= 1;
            let u = ctx.user(consumer);
            u[0] |= HAS_ITEM;
            u[1] = born;
            ctx.wake(consumer, Seg::cpu(self.consume_ns));
        } else if (ch.items.len() as u64) < self.capacity {
            ch.items.push_back(born);
        } else {
            ch.blocked_producers.push_back((task, born));
            ctx.user(task)[0] |= HOLDING;
            return Step::Block;
        }
        self.after_offer(ctx, task)
    }

    fn after_offer(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        let u = ctx.user(task);
        u[1] -= 1;
        if u[1] == 0 {
            Step::Exit
        } else {
            Step::Run(Seg::cpu(self.produce_ns))
        }
    }

    /// A consumer is free: take an item, or block, or exit.
    fn take(&mut self, ctx: &mut dyn Ctx, task: TaskId, chan: usize) -> Step {
        let ch = &mut self.chans[chan];
        if let Some(born) = ch.items.pop_front() {
            ch.untaken -= 1;
            if let Some((producer, held)) = ch.blocked_producers.pop_front() {
                ch.items.push_back(held);
                let u = ctx.user(producer);
                u[0] = (u[0] & !HOLDING) | RESUMED;
                // The producer resumes where it blocked: its item is now queued.
                ctx.wake(producer, Seg::cpu(0));
            }
            let u = ctx.user(task);
            u[0] |= HAS_ITEM;
            u[1] = born;
            return Step::Run(Seg::cpu(self.consume_ns));
        }
        if ch.untaken == 0 {
            // No item will ever come: release every other waiting consumer too.
            while let Some(c) = ch.blocked_consumers.pop_front() {
                ctx.user(c)[0] |= EXITING;
                ctx.wake(c, Seg::cpu(0));
            }
            return Step::Exit;
        }
        ch.blocked_consumers.push_back(task);
        Step::Block
    }
}

impl Workload for ProducerConsumer {
    fn name(&self) -> &'static str {
        "producer-consumer"
    }

    fn describe(&self) -> String {
        format!(
            "channels={} producers={} consumers={} items={} capacity={} produce_ns={} consume_ns={}",
            self.channels,
            self.producers,
            self.consumers,
            self.items,
            self.capacity,
            self.produce_ns,
            self.consume_ns
        )
    }

    fn start(&mut self, ctx: &mut dyn Ctx) {
        let n = ctx.topology().num_cpus();
        let mut next_cpu = 0usize;
        for c in 0..self.chans.len() {
            for i in 0..self.producers {
                let share = self.share(c, i);
                if share == 0 {
                    continue;
                }
                let mut t = NewTask::new(Seg::cpu(self.produce_ns));
                t.latency = false;
                t.user = [PRODUCER | (c as u64) << 8, share];
                ctx.spawn_on(next_cpu % n, t);
                next_cpu += 1;
            }
            for _ in 0..self.consumers {
                let mut t = NewTask::new(Seg::cpu(0));
                t.latency = false;
                t.user = [CONSUMER | (c as u64) << 8, 0];
                ctx.spawn_on(next_cpu % n, t);
                next_cpu += 1;
            }
        }
    }

    fn on_arrival(&mut self, _ctx: &mut dyn Ctx, _tag: u64) {}

    fn on_segment_end(&mut self, ctx: &mut dyn Ctx, task: TaskId) -> Step {
        let [state, val] = *ctx.user(task);
        let chan = (state >> 8) as usize;
        if state & 0xf == PRODUCER {
            if state & RESUMED != 0 {
                // Woken after a consumer queued the item we held.
                ctx.user(task)[0] &= !RESUMED;
                return self.after_offer(ctx, task);
            }
            let now = ctx.now_ns();
            return self.offer(ctx, task, chan, now);
        }
        if state & EXITING != 0 {
            return Step::Exit;
        }
        if state & HAS_ITEM != 0 {
            let latency = ctx.now_ns().saturating_sub(val);
            ctx.record_latency(latency);
            ctx.user(task)[0] &= !HAS_ITEM;
        }
        self.take(ctx, task, chan)
    }

    fn expected_tasks(&self) -> Option<u64> {
        let producers: u64 = (0..self.chan_items.len())
            .map(|c| {
                (0..self.producers)
                    .filter(|&i| self.share(c, i) > 0)
                    .count() as u64
            })
            .sum();
        Some(producers + self.channels * self.consumers)
    }
}
