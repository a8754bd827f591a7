//! Kernel threads: spawn, join, yield, block/wake, timer preemption, and the per-CPU scheduler
//! loop.
//!
//! TEMPORARY: this module carries its own queues ([`runq`]) and context switch
//! ([`crate::arch::switch`]) because manycore-sched (issues 3 and 4) has not landed; it keeps the
//! shape of the platform seam (current CPU, clock, park/unpark by IPI, per-CPU state through GS)
//! so that swapping in the crate replaces `runq` and the switch, not the kernel.
//!
//! # The scheduler loop, step by step (one per CPU, on the CPU's boot stack)
//! 1. With interrupts off, run a pending cross-CPU call, then take a thread: own queue first,
//!    then steal by topology tier ([`runq::steal_for`]).
//! 2. Wait until the thread's previous CPU has switched away from it (`on_cpu` false), make it
//!    current, arm the preemption timer unless a tick is already pending, and switch to it. The
//!    tick preempts the running thread only if another thread waits in this CPU's queue; otherwise
//!    it re-arms and the thread keeps the CPU.
//! 3. When it switches back, clear `on_cpu` (release), then act on why it stopped: *yield* or
//!    *preempted* → back on this CPU's queue; *blocked* → nothing (whoever wakes it queues it);
//!    *exited* → free its stack and wake its joiner.
//! 4. With no thread anywhere: mark this CPU idle, check the queue once more (a pusher that saw
//!    the CPU busy did not send an IPI), then `sti; hlt` until an IPI or the timer.
//!
//! # No lost wake-ups
//! A thread blocks by putting itself on a wait queue and setting `BLOCKED` under that queue's
//! lock, then switching to the scheduler loop. A waker may take it from the wait queue and push it
//! to a run queue before it has switched away; the CPU that picks it up then spins on `on_cpu`
//! (bounded by the few instructions left before the switch) before running it. Idle CPUs publish
//! `idle` with a SeqCst store and re-check their queue; pushers push, then read `idle` with SeqCst,
//! so either the idle CPU sees the thread or the pusher sees the CPU idle and sends the IPI.

pub mod runq;
pub mod sync;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::arch::switch::{prepare_stack, switch_context};
use crate::arch::{apic, cpu, trap};
use crate::mem::frames;
use crate::percpu::{self, PerCpu};
use crate::sync::SpinLock;
use crate::{smpcall, time};

/// Default stack size of a kernel thread.
pub const STACK_BYTES: u64 = 16 * 1024;
/// Preemption quantum.
pub const QUANTUM_US: u64 = 2_000;
/// Written at the lowest word of every thread stack and checked each time the thread switches
/// out: a thread that ran past the end of its stack is reported by name (its id) at its next
/// switch instead of corrupting its neighbour silently for ever. (The identity map uses 2 MiB
/// pages, so there are no guard pages; this catches overflows that reach the last word.)
const STACK_CANARY: u64 = 0x5354_4143_4b45_4e44;

/// Thread states (in `Thread::state`).
const READY: u8 = 0;
const RUNNING: u8 = 1;
const BLOCKED: u8 = 2;
const DONE: u8 = 3;

/// Why a thread went back to the scheduler loop (per-CPU, set by the thread just before switching).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reason {
    Yield,
    Preempted,
    Blocked,
    Exited,
}

/// A kernel thread.
pub struct Thread {
    /// Unique id (spawn order).
    pub id: u64,
    /// Saved stack pointer while not running. Written by the CPU switching away from it, read by
    /// the CPU switching to it (ordered by `on_cpu`).
    rsp: UnsafeCell<u64>,
    /// Physical (= virtual) base of the stack; freed by the scheduler loop after exit.
    stack_base: u64,
    /// The closure to run; taken once by the thread itself.
    entry: UnsafeCell<Option<Box<dyn FnOnce() + Send>>>,
    /// READY / RUNNING / BLOCKED / DONE.
    state: AtomicU8,
    /// True from the moment a CPU switches to the thread until that CPU is back on its scheduler
    /// stack. Set and cleared by that CPU; read by a CPU about to run the thread.
    on_cpu: AtomicBool,
    /// Node whose pool holds the stack.
    pub home_node: usize,
    /// Last CPU it ran on (wake placement, statistics).
    pub last_cpu: AtomicUsize,
    /// Never stolen (tests that need two threads on one CPU).
    pub pinned: bool,
    /// Set when the closure has returned.
    done: AtomicBool,
    /// A thread waiting in `join`. Lock order: taken alone.
    joiner: SpinLock<Option<Arc<Thread>>>,
}

// SAFETY: `rsp` and `entry` are only touched by the CPU that owns the thread at that moment
// (the one running it or switching to/from it), with ownership handed over through `on_cpu` and
// the run-queue locks.
unsafe impl Sync for Thread {}
// SAFETY: see `Sync`.
unsafe impl Send for Thread {}

/// One CPU's scheduler state (a field of [`PerCpu`]).
pub struct CpuSched {
    /// The run queue.
    pub runq: runq::RunQueue,
    /// The running thread. Owner CPU only, interrupts off.
    current: UnsafeCell<Option<Arc<Thread>>>,
    /// Saved stack pointer of the scheduler loop. Owner CPU only.
    loop_rsp: UnsafeCell<u64>,
    /// Why the current thread switched back. Owner CPU only.
    reason: UnsafeCell<Reason>,
    /// Set while the CPU is halted (or about to halt) for lack of work. Written by the owner; read
    /// by pushers (SeqCst both sides).
    pub idle: AtomicBool,
    /// Thread switches done by this CPU's loop.
    pub switches: AtomicU64,
    /// Timer preemptions on this CPU.
    pub preemptions: AtomicU64,
    /// Threads that finished on this CPU.
    pub threads_run: AtomicU64,
    /// Whether a preemption tick is pending. Owner CPU only (set when arming, cleared by the timer
    /// handler), so a switch re-arms the LAPIC timer only when no tick is pending: programming the
    /// timer is an MMIO write that costs microseconds under emulation.
    tick_pending: AtomicBool,
}

impl CpuSched {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            runq: runq::RunQueue::new(),
            current: UnsafeCell::new(None),
            loop_rsp: UnsafeCell::new(0),
            reason: UnsafeCell::new(Reason::Yield),
            idle: AtomicBool::new(false),
            switches: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            threads_run: AtomicU64::new(0),
            tick_pending: AtomicBool::new(false),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Spawn round-robin cursor (placement when no CPU is given).
static SPAWN_CURSOR: AtomicUsize = AtomicUsize::new(0);

/// A handle to wait for a thread.
pub struct JoinHandle {
    thread: Arc<Thread>,
}

impl JoinHandle {
    /// Blocks the calling thread until the thread has finished.
    pub fn join(self) {
        let t = &self.thread;
        loop {
            if t.done.load(Ordering::Acquire) {
                return;
            }
            let me = current_thread().expect("join is called from a kernel thread");
            let irq = cpu::interrupts_disable();
            let mut j = t.joiner.lock();
            if t.done.load(Ordering::Acquire) {
                drop(j);
                if irq {
                    cpu::interrupts_enable();
                }
                return;
            }
            *j = Some(me.clone());
            me.state.store(BLOCKED, Ordering::Release);
            drop(j);
            drop(me);
            schedule(Reason::Blocked);
            if irq {
                cpu::interrupts_enable();
            }
        }
    }
}

/// The thread running on this CPU, if any (not the scheduler loop).
pub fn current_thread() -> Option<Arc<Thread>> {
    let irq = cpu::interrupts_disable();
    // SAFETY: owner CPU, interrupts off.
    let t = unsafe { (*percpu::current().sched.current.get()).clone() };
    if irq {
        cpu::interrupts_enable();
    }
    t
}

/// Spawns a thread running `f`. `cpu` places it (None: round-robin over all CPUs); `pinned`
/// keeps it off other CPUs. The stack comes from the target CPU's node.
pub fn spawn_on(
    cpu: Option<usize>,
    pinned: bool,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle, &'static str> {
    let ncpus = percpu::all().len();
    let target = cpu.unwrap_or_else(|| SPAWN_CURSOR.fetch_add(1, Ordering::Relaxed) % ncpus);
    let node = percpu::get(target).node;
    let stack_base = frames::alloc_near(node, STACK_BYTES, 4096, percpu::nodes_by_distance())
        .ok_or("spawn: out of memory for a thread stack")?;
    // SAFETY: the stack was just taken from the pools and is owned by this thread.
    let rsp = unsafe {
        (stack_base as *mut u64).write(STACK_CANARY);
        prepare_stack(stack_base + STACK_BYTES, thread_start)
    };
    let t = Arc::new(Thread {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        rsp: UnsafeCell::new(rsp),
        stack_base,
        entry: UnsafeCell::new(Some(Box::new(f))),
        state: AtomicU8::new(READY),
        on_cpu: AtomicBool::new(false),
        home_node: node,
        last_cpu: AtomicUsize::new(target),
        pinned,
        done: AtomicBool::new(false),
        joiner: SpinLock::new(None),
    });
    enqueue(target, t.clone());
    Ok(JoinHandle { thread: t })
}

/// Queues `t` on `cpu` and makes sure some CPU will look at it: the target if it is idle, else the
/// nearest idle CPU that may steal it.
fn enqueue(cpu: usize, t: Arc<Thread>) {
    let pinned = t.pinned;
    percpu::get(cpu).sched.runq.push(t);
    core::sync::atomic::fence(Ordering::SeqCst);
    if percpu::get(cpu).sched.idle.load(Ordering::SeqCst) {
        smpcall::wake(cpu);
        return;
    }
    if pinned {
        return;
    }
    let topo = &crate::boot::machine().topology;
    for tier in topo.steal_order(cpu).iter() {
        for &c in tier.cpus {
            if percpu::get(c as usize).sched.idle.load(Ordering::SeqCst) {
                smpcall::wake(c as usize);
                return;
            }
        }
    }
}

/// Makes a blocked thread runnable again (on its last CPU).
pub fn wake(t: Arc<Thread>) {
    if t.state
        .compare_exchange(BLOCKED, READY, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        let cpu = t.last_cpu.load(Ordering::Relaxed);
        enqueue(cpu, t);
    }
}

/// Marks the calling thread blocked; the caller, with interrupts off, publishes it where a waker
/// finds it (under that structure's lock) and then calls [`block_now`].
pub fn mark_blocked(t: &Thread) {
    t.state.store(BLOCKED, Ordering::Release);
}

/// Switches away from a thread marked blocked.
pub fn block_now() {
    schedule(Reason::Blocked);
}

/// Gives the CPU to another runnable thread, if any.
pub fn yield_now() {
    schedule(Reason::Yield);
}

/// Switches from the current thread to this CPU's scheduler loop.
fn schedule(reason: Reason) {
    let irq = cpu::interrupts_disable();
    let me = percpu::current();
    // SAFETY: owner CPU, interrupts off; the current thread is the caller, so it stays alive
    // (its Arc is in `current`) until the loop takes it.
    unsafe {
        let t = (*me.sched.current.get())
            .as_ref()
            .expect("schedule() from a kernel thread");
        if reason == Reason::Yield || reason == Reason::Preempted {
            let _ = t
                .state
                .compare_exchange(RUNNING, READY, Ordering::Relaxed, Ordering::Relaxed);
        }
        *me.sched.reason.get() = reason;
        let save = t.rsp.get();
        switch_context(save, *me.sched.loop_rsp.get());
    }
    // Resumed (possibly on another CPU).
    if irq {
        cpu::interrupts_enable();
    }
}

/// First code of every thread (entered by the first switch into its stack).
extern "C" fn thread_start() -> ! {
    let t = current_thread().expect("a thread runs as current");
    // SAFETY: only the thread itself takes its entry, once.
    let f = unsafe { (*t.entry.get()).take() };
    drop(t);
    cpu::interrupts_enable();
    if let Some(f) = f {
        f();
    }
    exit_current()
}

fn exit_current() -> ! {
    let t = current_thread().expect("exit from a thread");
    t.done.store(true, Ordering::Release);
    let joiner = t.joiner.lock().take();
    if let Some(j) = joiner {
        wake(j);
    }
    t.state.store(DONE, Ordering::Release);
    drop(t);
    schedule(Reason::Exited);
    unreachable!("an exited thread was resumed");
}

/// Bound on spinning for a thread's previous CPU to switch away from it.
const ON_CPU_SPINS_MAX: u64 = 1 << 32;

/// The scheduler loop of the calling CPU (never returns). Interrupts must be off.
pub fn scheduler_loop() -> ! {
    let me = percpu::current();
    loop {
        cpu::interrupts_disable();
        if smpcall::poll(me) {
            continue;
        }
        let next = me.sched.runq.pop().or_else(|| runq::steal_for(me.cpu));
        let Some(t) = next else {
            me.sched.idle.store(true, Ordering::SeqCst);
            if me.sched.runq.len() == 0 && me.call.lock().is_none() {
                cpu::enable_interrupts_and_halt();
                cpu::interrupts_disable();
            }
            me.sched.idle.store(false, Ordering::SeqCst);
            continue;
        };
        run_one(me, t);
    }
}

fn run_one(me: &'static PerCpu, t: Arc<Thread>) {
    let mut spins = 0u64;
    while t.on_cpu.load(Ordering::Acquire) {
        spins += 1;
        assert!(
            spins < ON_CPU_SPINS_MAX,
            "thread {} never left its previous CPU",
            t.id
        );
        core::hint::spin_loop();
    }
    t.on_cpu.store(true, Ordering::Relaxed);
    t.state.store(RUNNING, Ordering::Relaxed);
    t.last_cpu.store(me.cpu, Ordering::Relaxed);
    let rsp = {
        // SAFETY: `on_cpu` was false (acquire), so the previous CPU's write of `rsp` is visible and
        // no CPU touches it until this one clears `on_cpu`.
        unsafe { *t.rsp.get() }
    };
    // SAFETY: owner CPU, interrupts off.
    unsafe { *me.sched.current.get() = Some(t) };
    me.sched.switches.fetch_add(1, Ordering::Relaxed);
    if !me.sched.tick_pending.load(Ordering::Relaxed) {
        arm_quantum(me);
    }
    // SAFETY: `rsp` was saved by the thread's last switch (or built by `prepare_stack`), and that
    // context is resumed only here, once; interrupts are off.
    unsafe { switch_context(me.sched.loop_rsp.get(), rsp) };
    // SAFETY: owner CPU, interrupts off.
    let t = unsafe { (*me.sched.current.get()).take() }.expect("the thread we switched to");
    // SAFETY: as above.
    let reason = unsafe { *me.sched.reason.get() };
    // SAFETY: the stack base is this thread's, mapped, and not in use by another CPU (the thread
    // has just switched out on this one).
    let canary = unsafe { (t.stack_base as *const u64).read_volatile() };
    if canary != STACK_CANARY {
        panic!(
            "thread {} overflowed its {} KiB stack",
            t.id,
            STACK_BYTES / 1024
        );
    }
    t.on_cpu.store(false, Ordering::Release);
    match reason {
        Reason::Yield | Reason::Preempted => me.sched.runq.push(t),
        Reason::Blocked => {}
        Reason::Exited => {
            me.sched.threads_run.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the thread has exited and no CPU is on its stack any more (this CPU is on its
            // scheduler stack); the stack came from `frames::alloc_near` with this size.
            unsafe { frames::free(t.stack_base, STACK_BYTES) };
        }
    }
}

/// Arms the next preemption tick: TSC-deadline mode where the CPU has it, else the one-shot
/// count-down timer.
fn arm_quantum(me: &PerCpu) {
    me.sched.tick_pending.store(true, Ordering::Relaxed);
    if apic::has_tsc_deadline() {
        let deadline = cpu::rdtsc() + time::ns_to_tsc(QUANTUM_US * 1000);
        me.with_lapic(|l| l.timer_deadline(deadline));
    } else {
        let ticks =
            (time::apic_ticks_per_ms() * QUANTUM_US / 1000).clamp(1, u64::from(u32::MAX)) as u32;
        me.with_lapic(|l| l.timer_oneshot(ticks));
    }
}

/// Timer interrupt: count it and preempt the running thread (the trap stub has saved all its
/// registers and FPU/SSE state on its stack).
fn on_timer(_frame: &mut trap::TrapFrame) {
    let me = percpu::current();
    me.timer_ticks.fetch_add(1, Ordering::Relaxed);
    me.sched.tick_pending.store(false, Ordering::Relaxed);
    me.with_lapic(|l| l.eoi());
    // SAFETY: owner CPU, interrupts off (interrupt gate).
    let running = unsafe { (*me.sched.current.get()).is_some() };
    if running && me.sched.runq.len() > 0 {
        me.sched.preemptions.fetch_add(1, Ordering::Relaxed);
        schedule(Reason::Preempted);
    } else if running {
        arm_quantum(me);
    }
}

/// Installs the timer handler (BSP, before any thread runs).
pub fn init() {
    trap::set_handler(apic::TIMER_VECTOR, on_timer);
}
