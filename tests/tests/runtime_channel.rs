//! The bounded MPMC channel between tasks on different CPUs.

use std::collections::HashSet;

use manycore_sched::SpawnHint;
use manycore_sched::rt::{self, Runtime, TryRecvError};

/// Four producers (two per CPU) send 25 000 numbered messages each through a channel of
/// capacity 4 (so senders block often) to three consumers spread over the CPUs. Every message
/// arrives exactly once, and each consumer sees each producer's messages in sending order.
#[test]
fn channel_keeps_order_and_loses_nothing_across_cores() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 25_000;
    const CONSUMERS: usize = 3;
    let rt = Runtime::new().expect("runtime");
    let n = rt.num_cpus();
    let hint = |c: usize| SpawnHint {
        cpu: Some(c % n),
        node: None,
    };
    let (tx, rx) = rt::channel::<(u64, u64)>(4).expect("capacity 4");
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn_with(format!("producer-{p}"), hint(p as usize), move || {
                for seq in 0..PER_PRODUCER {
                    tx.send((p, seq)).expect("receivers alive");
                }
            })
            .expect("spawn")
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let rx = rx.clone();
            rt.spawn_with(format!("consumer-{c}"), hint(c + 1), move || {
                let mut got = Vec::new();
                // Until every sender is gone and the buffer is drained.
                while let Ok(m) = rx.recv() {
                    got.push(m);
                }
                got
            })
            .expect("spawn")
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().expect("producer");
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for c in consumers {
        let got = c.join().expect("consumer");
        let mut last = vec![None::<u64>; PRODUCERS as usize];
        for &(p, seq) in &got {
            let l = &mut last[p as usize];
            assert!(
                l.is_none_or(|prev| prev < seq),
                "producer {p}'s messages out of order at {seq} (after {l:?})"
            );
            *l = Some(seq);
            assert!(seen.insert((p, seq)), "({p}, {seq}) delivered twice");
        }
        total += got.len();
    }
    assert_eq!(total as u64, PRODUCERS * PER_PRODUCER, "nothing lost");
    rt.shutdown();
}

/// Dropping every sender ends the receivers after they drained the buffer; dropping every
/// receiver makes sends fail and return the value; capacity 0 is refused with an error.
#[test]
fn disconnection_is_reported_on_both_sides() {
    let (tx, rx) = rt::channel::<u32>(2).expect("capacity 2");
    tx.send(1).expect("room");
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.recv(), Err(rt::RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    let (tx, rx) = rt::channel::<u32>(2).expect("capacity 2");
    drop(rx);
    assert_eq!(tx.send(7), Err(rt::SendError(7)));
    let e = rt::channel::<u32>(0).expect_err("capacity 0");
    assert!(e.to_string().contains("at least 1"), "{e}");
}
