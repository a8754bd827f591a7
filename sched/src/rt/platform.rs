//! The runtime as the scheduler's [`Platform`]: CPU identity from the worker thread, a monotonic
//! clock, and park/unpark on a per-CPU futex word with a bounded spin first.
//!
//! # The parker
//! One `AtomicU32` per CPU: `EMPTY`, `NOTIFIED` (a token is waiting) or `PARKED` (the owner sleeps
//! in `FUTEX_WAIT`). Unpark swaps in `NOTIFIED` and issues `FUTEX_WAKE` only if the word was
//! `PARKED`, so waking a CPU that is still spinning costs one atomic swap and no system call.
//! Park first spins up to [`PARK_SPIN_ROUNDS`] times looking for the token (a wake that lands
//! within a few microseconds skips the futex round trip, which costs ~2 µs same-core and 10+ µs
//! cross-core on the reference VM), then publishes `PARKED` and sleeps until woken or its
//! deadline. The token semantics the scheduler's protocol needs hold: an unpark before the park
//! leaves `NOTIFIED`, which the park consumes without sleeping.

use std::boxed::Box;
use std::string::String;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::worker::current_worker;
use crate::platform::Platform;

/// Spins (each a load and a spin hint) a parking CPU makes before it sleeps in the kernel.
pub(crate) const PARK_SPIN_ROUNDS: u32 = 2_000;

const EMPTY: u32 = 0;
const NOTIFIED: u32 = 1;
const PARKED: u32 = 2;

/// A futex-based token parker for one CPU (see the module docs).
#[derive(Default)]
pub(crate) struct Parker {
    /// EMPTY / NOTIFIED / PARKED. Swapped by any unparker; the owner CPU parks on it.
    state: AtomicU32,
}

impl Parker {
    /// Owner: waits for the token, at most until `deadline` (an `Instant`).
    pub(crate) fn park(&self, deadline: Option<Instant>) {
        for _ in 0..PARK_SPIN_ROUNDS {
            if self.state.load(Ordering::Relaxed) == NOTIFIED
                && self
                    .state
                    .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // EMPTY -> PARKED, or consume a token that arrived meanwhile.
        if self
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::Acquire, Ordering::Acquire)
            .is_err()
        {
            self.state.store(EMPTY, Ordering::Relaxed);
            return;
        }
        loop {
            let timeout = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    Some(d - now)
                }
                None => None,
            };
            futex_wait(&self.state, PARKED, timeout);
            if self.state.load(Ordering::Acquire) == NOTIFIED {
                break;
            }
        }
        // Woken, timed out, or both: leave EMPTY (a token, if any, is consumed).
        self.state.swap(EMPTY, Ordering::Acquire);
    }

    /// Anyone: leaves the token and wakes the owner if it sleeps.
    pub(crate) fn unpark(&self) {
        if self.state.swap(NOTIFIED, Ordering::Release) == PARKED {
            futex_wake(&self.state);
        }
    }
}

/// `FUTEX_WAIT` on `word` while it holds `expected`, up to `timeout` (returns early on a wake,
/// a signal, or when the word changed).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<std::time::Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT on a live, aligned u32; the timespec (if any) outlives the call. The
    // call returns on a wake, a timeout, a signal or when the word no longer holds `expected`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// `FUTEX_WAKE` of at most one waiter on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live, aligned u32 wakes at most one waiter; no memory is written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Pins the calling thread to OS CPU `os_cpu`.
pub(crate) fn pin_to(os_cpu: usize) -> Result<(), String> {
    if os_cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::format!(
            "CPU {os_cpu} is beyond the {} CPUs sched_setaffinity can name",
            libc::CPU_SETSIZE
        ));
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (bound checked
    // above); sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(os_cpu, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(std::format!(
            "cannot pin to CPU {os_cpu}: {} (is it in this process's allowed CPU set?)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The runtime's clock: the TSC scaled to nanoseconds when CPUID says it is invariant (a raw
/// `rdtsc` costs a few nanoseconds, against ~20 for `clock_gettime` through the vDSO, and the
/// scheduler reads the clock on every wake to date the next slot), else `Instant`.
pub(crate) struct Clock {
    start: Instant,
    /// `Some((tsc at start, ns per tick as 32.32 fixed point))` when the TSC is used.
    tsc: Option<(u64, u64)>,
}

/// Calibration window of the TSC against `Instant` (once per process).
const TSC_CALIBRATION: std::time::Duration = std::time::Duration::from_millis(2);

fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64 and touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn tsc_ns_per_tick_fixed() -> Option<u64> {
    static CAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *CAL.get_or_init(|| {
        use core::arch::x86_64::__cpuid;
        // CPUID leaf 0x8000_0007 EDX bit 8: invariant TSC (constant rate, never stops).
        if __cpuid(0x8000_0000).eax < 0x8000_0007 || __cpuid(0x8000_0007).edx & (1 << 8) == 0 {
            return None;
        }
        let (t0, c0) = (Instant::now(), rdtsc());
        while t0.elapsed() < TSC_CALIBRATION {
            core::hint::spin_loop();
        }
        let (c1, t1) = (rdtsc(), Instant::now());
        let ticks = c1.checked_sub(c0).filter(|&t| t > 0)?;
        let ns = (t1 - t0).as_nanos();
        u64::try_from((ns << 32) / u128::from(ticks)).ok()
    })
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let start = Instant::now();
        Clock {
            start,
            tsc: tsc_ns_per_tick_fixed().map(|m| (rdtsc(), m)),
        }
    }

    /// Nanoseconds since the runtime started.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        match self.tsc {
            Some((c0, mult)) => {
                let ticks = rdtsc().saturating_sub(c0);
                u64::try_from((u128::from(ticks) * u128::from(mult)) >> 32).unwrap_or(u64::MAX)
            }
            None => u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The `Instant` at `ns` on this clock (for futex timeouts).
    pub(crate) fn instant_at(&self, ns: u64) -> Instant {
        self.start + std::time::Duration::from_nanos(ns)
    }
}

/// The user-space [`Platform`].
pub(crate) struct RtPlatform {
    /// One per logical CPU; parked by that CPU's worker, unparked by anyone.
    pub(crate) parkers: Box<[Parker]>,
    /// `now_ns`.
    pub(crate) clock: Clock,
    /// The runtime's `Shared` address, to tell our workers from another runtime's.
    pub(crate) shared_addr: core::sync::atomic::AtomicUsize,
}

impl Platform for RtPlatform {
    fn current_cpu(&self) -> Option<usize> {
        let w = current_worker()?;
        (w.shared_ptr() as usize == self.shared_addr.load(Ordering::Relaxed)).then_some(w.cpu)
    }
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }
    fn park(&self, cpu: usize, deadline_ns: Option<u64>) {
        let deadline = deadline_ns.map(|d| self.clock.instant_at(d));
        self.parkers[cpu].park(deadline);
    }
    fn unpark(&self, cpu: usize) {
        self.parkers[cpu].unpark();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn unpark_before_park_is_not_lost() {
        let p = Parker::default();
        p.unpark();
        let t = Instant::now();
        p.park(None); // would hang without the token
        assert!(t.elapsed() < Duration::from_secs(5));
        p.park(Some(Instant::now() + Duration::from_millis(5))); // token used up: times out
    }

    #[test]
    fn unpark_wakes_a_parker_asleep_in_the_kernel() {
        let p = Arc::new(Parker::default());
        let q = p.clone();
        let h = std::thread::spawn(move || q.park(None));
        // Wait until it has given up spinning and sleeps in FUTEX_WAIT.
        while p.state.load(Ordering::Acquire) != PARKED {
            std::thread::yield_now();
        }
        p.unpark();
        let t = Instant::now();
        while !h.is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the sleeping parker was not woken"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        h.join().unwrap();
        assert_eq!(
            p.state.load(Ordering::Relaxed),
            EMPTY,
            "the token was consumed"
        );
    }
}
