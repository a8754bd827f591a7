//! No lost wakeup: a million cross-core ping-pong rounds between two tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use manycore_sched::SpawnHint;
use manycore_sched::rt::{Event, Runtime};

const ROUNDS: u64 = 1_000_000;
/// Far beyond what 10^6 rounds take even in a debug build on a loaded VM; reaching it means a
/// wakeup was lost (both tasks wait for each other forever).
const WATCHDOG: Duration = Duration::from_secs(300);

/// Task "ping" on CPU 0 sets one event and waits on another; task "pong" on CPU 1 does the
/// reverse. Each round needs a wake across cores; a single lost wakeup stalls both forever,
/// which the watchdog turns into a failure naming the round it stopped at.
#[test]
fn no_lost_wakeup_in_a_million_round_cross_core_ping_pong() {
    let rt = Runtime::new().expect("runtime");
    let n = rt.num_cpus();
    let (ping, pong) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let progress = Arc::new(AtomicU64::new(0));
    let hint = |c: usize| SpawnHint {
        cpu: Some(c % n),
        node: None,
    };
    let (a_ping, a_pong, a_prog) = (ping.clone(), pong.clone(), progress.clone());
    let a = rt
        .spawn_with("ping", hint(0), move || {
            for i in 0..ROUNDS {
                a_ping.set();
                a_pong.wait();
                a_prog.store(i + 1, Ordering::Relaxed);
            }
            ROUNDS
        })
        .expect("spawn");
    let b = rt
        .spawn_with("pong", hint(1), move || {
            let mut seen = 0;
            for _ in 0..ROUNDS {
                ping.wait();
                seen += 1;
                pong.set();
            }
            seen
        })
        .expect("spawn");
    let t = Instant::now();
    while !(a.is_finished() && b.is_finished()) {
        assert!(
            t.elapsed() < WATCHDOG,
            "stalled at round {} of {ROUNDS}: a wakeup was lost",
            progress.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(a.join().expect("ping"), ROUNDS);
    assert_eq!(b.join().expect("pong"), ROUNDS);
    let c = rt.counters();
    eprintln!(
        "{ROUNDS} rounds in {:.2?}; parks {}, wakes by placement {:?}",
        t.elapsed(),
        c.parks,
        manycore_sched::WakeReason::ALL
            .iter()
            .map(|r| (r.name(), c.wakes(*r)))
            .collect::<Vec<_>>()
    );
    rt.shutdown();
}
