//! The scheduling half of `selftest`: threads, preemption, blocking primitives, remote frees.
//!
//! - `every_thread_runs_once`: `threads=N` (default 100 000) threads, spawned by one spawner per
//!   CPU in bounded waves, each bump its own counter; every counter must be exactly 1 and every CPU
//!   must have run some of them.
//! - `mutex_is_exact_under_contention`: 2 threads per CPU each add 1 to a counter 200 times,
//!   yielding inside the critical section so others must sleep on the mutex; the sum must be exact
//!   and at least one locker must have slept.
//! - `channel_keeps_order_and_loses_nothing`: one producer and one consumer per CPU over a channel
//!   of capacity 8; every message arrives exactly once and each consumer sees each producer's
//!   messages in send order.
//! - `cpu_bound_thread_is_preempted`: one more never-yielding spinner than there are CPUs, each
//!   waiting for all to start; the last can start only through timer preemption, and each
//!   spinner's `xmm0` pattern must survive it (FXSAVE in `switch_preempt`).
//! - `remote_frees_return_home`: small blocks manycore-alloc gave a thread on node A, freed by a
//!   thread on node B, reach node A through the allocator's remote-free path (node A's
//!   `remote_received` counter grows by at least their number once B's batches are flushed), and
//!   a large object freed the same way is back in node A's frame pool after a trim.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::mem::frames;
use crate::percpu;
use crate::sync::SpinLock;
use crate::thread::sync::{Channel, Mutex};
use crate::thread::{self, JoinHandle};

/// Default number of threads in `every_thread_runs_once`.
pub const THREADS_DEFAULT: usize = 100_000;
/// Threads a spawner keeps alive at once (bounds stack memory: wave × 16 KiB per CPU).
const WAVE_THREADS_MAX: usize = 256;

fn join_all(handles: Vec<JoinHandle>) {
    for h in handles {
        h.join();
    }
}

/// `every_thread_runs_once`.
pub fn every_thread_runs_once(n: usize) -> Result<String, String> {
    let ncpus = percpu::all().len();
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
    let per_cpu: Arc<Vec<AtomicU64>> = Arc::new((0..ncpus).map(|_| AtomicU64::new(0)).collect());
    // Threads whose stack is not on their home node (the node of the CPU they were spawned for).
    let far_stacks = Arc::new(AtomicU64::new(0));
    let mut spawners = Vec::new();
    for cpu in 0..ncpus {
        let (runs, per_cpu, far_stacks) = (runs.clone(), per_cpu.clone(), far_stacks.clone());
        // Not pinned: each child is placed on `cpu` by its spawn hint wherever the spawner runs.
        let h = thread::spawn_on(Some(cpu), false, move || {
            let mut i = cpu;
            while i < n {
                let mut wave = Vec::with_capacity(WAVE_THREADS_MAX);
                while i < n && wave.len() < WAVE_THREADS_MAX {
                    let (runs, per_cpu, far_stacks) =
                        (runs.clone(), per_cpu.clone(), far_stacks.clone());
                    let idx = i;
                    match thread::spawn_on(Some(cpu), false, move || {
                        runs[idx].fetch_add(1, Ordering::Relaxed);
                        per_cpu[percpu::current().cpu].fetch_add(1, Ordering::Relaxed);
                        let local = 0u8;
                        let home = thread::current_thread().map(|t| t.home_node);
                        if frames::node_of(&local as *const u8 as u64) != home {
                            far_stacks.fetch_add(1, Ordering::Relaxed);
                        }
                    }) {
                        Ok(h) => wave.push(h),
                        Err(_) => break,
                    }
                    i += ncpus;
                }
                join_all(wave);
            }
        })
        .map_err(String::from)?;
        spawners.push(h);
    }
    join_all(spawners);
    let mut bad = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let v = r.load(Ordering::Relaxed);
        if v != 1 && bad.len() < 8 {
            bad.push((i, v));
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "threads not run exactly once (index, runs): {bad:?}"
        ));
    }
    let hits: Vec<u64> = per_cpu.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    if let Some(idle) = hits.iter().position(|&h| h == 0) {
        return Err(format!(
            "CPU {idle} ran none of the threads (per CPU: {hits:?})"
        ));
    }
    let far = far_stacks.load(Ordering::Relaxed);
    if far != 0 {
        return Err(format!("{far} threads had their stack off their home node"));
    }
    let stolen: u64 = crate::thread::scheduler()
        .counters()
        .stolen_tasks_by_tier
        .iter()
        .sum();
    Ok(format!(
        "{n} threads, each ran once, stacks on their home node; per CPU {hits:?}; {stolen} threads stolen so far"
    ))
}

/// `mutex_is_exact_under_contention`.
pub fn mutex_is_exact_under_contention() -> Result<String, String> {
    let ncpus = percpu::all().len();
    let threads = 2 * ncpus;
    let rounds = 200u64;
    let m = Arc::new(Mutex::new(0u64));
    // Hold the mutex while the lockers start, until one of them has had to sleep on it: the
    // contention this check exists for is then certain rather than left to timing (under TCG
    // the threads could otherwise run one after another).
    let held = m.lock();
    let mut hs = Vec::new();
    for t in 0..threads {
        let m = m.clone();
        hs.push(
            thread::spawn_on(Some(t % ncpus), false, move || {
                for _ in 0..rounds {
                    let mut g = m.lock();
                    let v = *g;
                    thread::yield_now();
                    *g = v + 1;
                }
            })
            .map_err(String::from)?,
        );
    }
    let mut yields = 0u64;
    while m.waits.load(Ordering::Relaxed) == 0 && yields < 10_000_000 {
        thread::yield_now();
        yields += 1;
    }
    drop(held);
    join_all(hs);
    let total = *m.lock();
    let waits = m.waits.load(Ordering::Relaxed);
    let want = threads as u64 * rounds;
    if total != want {
        return Err(format!("counter {total}, expected {want}"));
    }
    if waits == 0 {
        return Err("no locker ever slept: the check did not create contention".into());
    }
    Ok(format!(
        "{threads} threads x {rounds}: {total}; {waits} sleeps on the mutex"
    ))
}

/// `channel_keeps_order_and_loses_nothing`.
pub fn channel_keeps_order_and_loses_nothing() -> Result<String, String> {
    let ncpus = percpu::all().len();
    let producers = ncpus;
    let consumers = ncpus;
    let per_producer = 2_000u64;
    let ch: Arc<Channel<u64>> = Arc::new(Channel::new(8));
    let seen: Arc<Vec<AtomicU8>> = Arc::new(
        (0..producers as u64 * per_producer)
            .map(|_| AtomicU8::new(0))
            .collect(),
    );
    let order_ok = Arc::new(AtomicBool::new(true));
    let received = Arc::new(AtomicU64::new(0));
    let total = producers as u64 * per_producer;
    let mut hs = Vec::new();
    for p in 0..producers {
        let ch = ch.clone();
        hs.push(
            thread::spawn_on(Some(p % ncpus), false, move || {
                for seq in 0..per_producer {
                    ch.send(((p as u64) << 32) | seq);
                }
            })
            .map_err(String::from)?,
        );
    }
    // Each consumer takes messages until all have arrived; a sentinel per consumer ends the rest.
    for c in 0..consumers {
        let (ch, seen, order_ok, received) =
            (ch.clone(), seen.clone(), order_ok.clone(), received.clone());
        hs.push(
            thread::spawn_on(Some((c + 1) % ncpus), false, move || {
                let mut last = alloc::vec![None::<u64>; producers];
                loop {
                    let m = ch.recv();
                    if m == u64::MAX {
                        break;
                    }
                    let (p, seq) = ((m >> 32) as usize, m & 0xffff_ffff);
                    if last[p].is_some_and(|l| l >= seq) {
                        order_ok.store(false, Ordering::Relaxed);
                    }
                    last[p] = Some(seq);
                    seen[p * per_producer as usize + seq as usize].fetch_add(1, Ordering::Relaxed);
                    if received.fetch_add(1, Ordering::AcqRel) + 1 == total {
                        for _ in 0..consumers {
                            ch.send(u64::MAX);
                        }
                    }
                }
            })
            .map_err(String::from)?,
        );
    }
    join_all(hs);
    let dup_or_lost = seen
        .iter()
        .filter(|s| s.load(Ordering::Relaxed) != 1)
        .count();
    if dup_or_lost != 0 {
        return Err(format!("{dup_or_lost} messages lost or duplicated"));
    }
    if !order_ok.load(Ordering::Relaxed) {
        return Err("a consumer saw a producer's messages out of order".into());
    }
    Ok(format!(
        "{producers} producers x {per_producer} messages to {consumers} consumers through capacity 8: exact and in order"
    ))
}

/// Bound on a spinner's loop (a machine that never preempts ends the check with a failure).
const SPIN_ITERATIONS_MAX: u64 = 1 << 31;
/// Base of the spinners' xmm0 patterns (spinner `i` holds `XMM_PATTERN + i`).
const XMM_PATTERN: u64 = 0x5eed_f00d_dead_0000;

/// `cpu_bound_thread_is_preempted`.
///
/// One more CPU-bound spinner than there are CPUs, none pinned: each loads its own pattern into
/// `xmm0`, announces itself, and spins (never yielding) until all have announced. The last one
/// can only start if the timer preempts a spinner, so the check finishing at all proves
/// preemption; a spinner whose FPU/SSE state was not saved and restored across that preemption
/// finds another spinner's pattern in `xmm0` afterwards.
pub fn cpu_bound_thread_is_preempted() -> Result<String, String> {
    let ncpus = percpu::all().len();
    let spinners = ncpus + 1;
    let arrived = Arc::new(AtomicU64::new(0));
    let results: Arc<Vec<AtomicU64>> = Arc::new((0..spinners).map(|_| AtomicU64::new(0)).collect());
    let remaining: Arc<Vec<AtomicU64>> =
        Arc::new((0..spinners).map(|_| AtomicU64::new(0)).collect());
    let preemptions = || {
        percpu::all()
            .iter()
            .map(|c| c.sched.preemptions.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let before = preemptions();
    let mut hs = Vec::new();
    for i in 0..spinners {
        let (arrived, results, remaining) = (arrived.clone(), results.clone(), remaining.clone());
        hs.push(
            thread::spawn_on(Some(i % ncpus), false, move || {
                let out: u64;
                let left: u64;
                // SAFETY: the block uses xmm0 only inside itself (the kernel is compiled without
                // SSE, so no compiler-generated code holds a value there), and reads and bumps the
                // counter of a live Arc. It never yields: only a timer preemption can let another
                // thread run on this CPU while it spins.
                unsafe {
                    core::arch::asm!(
                        "movq xmm0, {pattern}",
                        "lock inc qword ptr [{arrived}]",
                        "2:",
                        "pause",
                        "cmp qword ptr [{arrived}], {all}",
                        "jae 3f",
                        "dec {count}",
                        "jnz 2b",
                        "3:",
                        "movq {out}, xmm0",
                        pattern = in(reg) XMM_PATTERN + i as u64,
                        arrived = in(reg) arrived.as_ptr(),
                        all = in(reg) spinners as u64,
                        count = inout(reg) SPIN_ITERATIONS_MAX => left,
                        out = lateout(reg) out,
                        options(nostack),
                    );
                }
                results[i].store(out, Ordering::Relaxed);
                remaining[i].store(left, Ordering::Relaxed);
            })
            .map_err(String::from)?,
        );
    }
    join_all(hs);
    let preempted = preemptions() - before;
    if let Some(i) = remaining
        .iter()
        .position(|r| r.load(Ordering::Relaxed) == 0)
    {
        return Err(format!(
            "spinner {i} ran {SPIN_ITERATIONS_MAX} iterations without every spinner starting: no CPU was preempted"
        ));
    }
    if preempted == 0 {
        return Err(format!(
            "all {spinners} spinners started on {ncpus} CPUs but no preemption was counted"
        ));
    }
    for (i, r) in results.iter().enumerate() {
        let xmm = r.load(Ordering::Relaxed);
        if xmm != XMM_PATTERN + i as u64 {
            return Err(format!(
                "spinner {i}: xmm0 was {xmm:#x} after its spin, expected {:#x} (FPU/SSE state lost on preemption)",
                XMM_PATTERN + i as u64
            ));
        }
    }
    Ok(format!(
        "{spinners} spinners on {ncpus} CPUs all started: {preempted} preemption(s); every xmm0 preserved"
    ))
}

/// Small blocks per direction in `remote_frees_return_home` (more than one remote batch).
const REMOTE_BLOCKS: usize = 512;
/// Their size (a small size class: they go through the per-CPU caches and remote batches).
const REMOTE_BLOCK_BYTES: usize = 256;
/// A large object (straight from the page source) freed remotely too.
const REMOTE_LARGE_BYTES: usize = 128 * 1024;

/// `remote_frees_return_home`.
pub fn remote_frees_return_home() -> Result<String, String> {
    let topo = &crate::boot::machine().topology;
    if topo.num_nodes() < 2 {
        return Ok("one NUMA node: no remote free to make".into());
    }
    let heap = crate::HEAP.heap();
    if heap.map_origin() != manycore_alloc::MapOrigin::Discovered
        || heap.nodes() != topo.num_nodes()
    {
        return Err(format!(
            "manycore-alloc's node map is {:?} with {} nodes; the topology has {}",
            heap.map_origin(),
            heap.nodes(),
            topo.num_nodes()
        ));
    }
    let mut summary = String::new();
    for home in 0..topo.num_nodes() {
        let away = (home + 1) % topo.num_nodes();
        let (Some(&home_cpu), Some(&away_cpu)) = (
            topo.cpus_of_node(home).first(),
            topo.cpus_of_node(away).first(),
        ) else {
            continue;
        };
        let received_before = heap.stats(home).remote_received;
        let away_received_before = heap.stats(away).remote_received;
        // (small block addresses, large object address)
        let ch: Arc<Channel<(Vec<usize>, usize)>> = Arc::new(Channel::new(1));
        let producer = {
            let ch = ch.clone();
            thread::spawn_on(Some(home_cpu), true, move || {
                let small: Vec<usize> = (0..REMOTE_BLOCKS)
                    .map(|i| {
                        let b = alloc::boxed::Box::new([i as u8; REMOTE_BLOCK_BYTES]);
                        alloc::boxed::Box::into_raw(b) as usize
                    })
                    .collect();
                let large: alloc::boxed::Box<[u8]> =
                    alloc::vec![0xa5u8; REMOTE_LARGE_BYTES].into_boxed_slice();
                ch.send((
                    small,
                    alloc::boxed::Box::into_raw(large) as *mut u8 as usize,
                ));
            })
            .map_err(String::from)?
        };
        let got = Arc::new(SpinLock::new((Vec::new(), 0usize)));
        let consumer = {
            let (ch, got) = (ch.clone(), got.clone());
            thread::spawn_on(Some(away_cpu), true, move || {
                let (small, large) = ch.recv();
                for &p in &small {
                    // SAFETY: each came from `Box::into_raw` of a `[u8; REMOTE_BLOCK_BYTES]`.
                    drop(unsafe {
                        alloc::boxed::Box::from_raw(p as *mut [u8; REMOTE_BLOCK_BYTES])
                    });
                }
                // SAFETY: from `Box::into_raw` of a boxed slice of REMOTE_LARGE_BYTES bytes.
                drop(unsafe {
                    alloc::boxed::Box::from_raw(core::ptr::slice_from_raw_parts_mut(
                        large as *mut u8,
                        REMOTE_LARGE_BYTES,
                    ))
                });
                // Send this CPU's remote batches home and let every node take its inbox and
                // give spare pages back to the frame pools.
                crate::HEAP.trim();
                *got.lock() = (small, large);
            })
            .map_err(String::from)?
        };
        producer.join();
        consumer.join();
        let (small, large) = core::mem::take(&mut *got.lock());
        if let Some(&p) = small
            .iter()
            .find(|&&p| frames::node_of(p as u64) != Some(home))
        {
            return Err(format!(
                "a thread on node {home} got a small block at {p:#x} on node {:?}",
                frames::node_of(p as u64)
            ));
        }
        let received = heap.stats(home).remote_received - received_before;
        if received < REMOTE_BLOCKS as u64 {
            return Err(format!(
                "node {home} received {received} of the {REMOTE_BLOCKS} blocks freed on node {away}"
            ));
        }
        let away_received = heap.stats(away).remote_received - away_received_before;
        let owner = frames::node_of(large as u64);
        if owner != Some(home) {
            return Err(format!(
                "a thread on node {home} got a large object from node {owner:?}"
            ));
        }
        if !frames::is_free(large as u64, REMOTE_LARGE_BYTES as u64) {
            return Err(format!(
                "{REMOTE_LARGE_BYTES} bytes allocated on node {home} and freed on node {away} are not free in node {home}'s frame pool after a trim"
            ));
        }
        summary.push_str(&format!(
            "node {home}->{away}->{home}: {received} small blocks received home ({away_received} by node {away}), large object back in the pool; "
        ));
    }
    Ok(summary)
}
