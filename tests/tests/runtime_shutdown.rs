//! Shutdown leaves no thread behind. One test in this binary, so the thread count of the
//! process (`/proc/self/task`) is not disturbed by other tests running in parallel.

use std::sync::Arc;
use std::time::Duration;

use manycore_sched::rt::{self, Event, Runtime};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

#[test]
fn runtime_shuts_down_with_no_thread_left() {
    let before = threads();
    let rt = Runtime::new().expect("runtime");
    let tids = rt.worker_tids();
    assert_eq!(tids.len(), rt.num_cpus(), "one worker thread per CPU");
    assert_eq!(threads(), before + rt.num_cpus());
    // Leave work of every kind in flight: tasks that finish at once, tasks that sleep, tasks
    // blocked on an event until after shutdown has begun waiting for them.
    let gate = Arc::new(Event::new());
    let mut hs = Vec::new();
    for i in 0..1000u32 {
        hs.push(rt.spawn(move || i));
    }
    for _ in 0..10 {
        hs.push(rt.spawn(|| {
            rt::sleep(Duration::from_millis(20));
            0
        }));
    }
    for _ in 0..10 {
        let g = gate.clone();
        hs.push(rt.spawn(move || {
            g.wait();
            g.set(); // pass it on
            0
        }));
    }
    drop(hs); // detached: shutdown must still wait for them
    let g = gate.clone();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        g.set();
    });
    rt.shutdown_timeout(Duration::from_secs(60))
        .expect("every task finished");
    opener.join().expect("opener thread");
    for t in &tids {
        assert!(
            !std::path::Path::new(&format!("/proc/self/task/{t}")).exists(),
            "worker thread {t} still exists"
        );
    }
    assert_eq!(threads(), before, "no thread left behind");
}
