//! Kernel threads on manycore-sched: spawn, join, yield, block/wake, timer preemption, and the
//! per-CPU scheduler loop.
//!
//! The queues, stealing by topology tier, wake placement and the idle protocol are
//! manycore-sched's [`Scheduler`]; the context switches are its `arch` module ([`switch`] for
//! yields and blocking, [`switch_preempt`] when the timer preempts). This module is the glue a
//! kernel writes (docs/PORTING.md): a [`Platform`], a task handle ([`ThreadRef`]), and the loop.
//!
//! # The scheduler loop, step by step (one per CPU, on the CPU's loop stack)
//! 1. A thread leaves its CPU by switching to a *fresh* loop context built on the CPU's loop
//!    stack ([`init_stack`]) with the switch kind it is saving itself with: cooperative for a yield,
//!    block or exit, FXSAVE for a preemption. The loop's own context is never resumed, so the
//!    thread's save format and the loop's restore format always match (`arch` requires a context
//!    to be restored by the function that saved it).
//! 2. The fresh loop first finishes the switch-out: it clears the thread's `on_cpu` (release) and
//!    acts on why it stopped: *yield* or *preempted* → [`Scheduler::yield_task`], which queues it
//!    and picks the next thread in one decision; *blocked* → nothing (whoever wakes it calls
//!    [`wake`]); *exited* → free its stack, wake its joiner.
//! 3. With interrupts off it runs a pending cross-CPU call, takes a pinned thread another CPU
//!    placed here if there is one (see [`place_pinned`]; the thread `yield_task` chose then goes
//!    back to the queue), else runs the thread `yield_task` chose, else asks
//!    [`Scheduler::next_task`]. A
//!    pinned thread taken by another CPU (a thief) is forwarded to its CPU's pinned list.
//! 4. It waits until the thread's previous CPU has switched away from it (`on_cpu` false), makes
//!    it current, arms the preemption timer unless a tick is pending, and switches to it with the
//!    function matching how the thread was saved. The tick preempts only if some task waits in
//!    the scheduler; otherwise it re-arms and the thread keeps the CPU.
//! 5. With nothing to run: [`Scheduler::park`] announces the CPU asleep, re-checks, and calls
//!    [`KernelPlatform::park`] (`sti; hlt` unless a wake token or a pinned thread is pending); an
//!    unpark sets the token and sends the wake IPI.
//!
//! # No lost wake-ups
//! A thread blocks by putting itself on a wait queue and setting `BLOCKED` under that queue's
//! lock, then switching to the loop. A waker may take it and hand it to the scheduler before it
//! has switched away; the CPU that picks it up spins on `on_cpu` (bounded by the few instructions
//! left before the switch) before running it. Idle CPUs are covered by the scheduler's announce /
//! re-check / park protocol with token-semantics park.
//!
//! # Interrupts
//! Every call into the scheduler is made with interrupts off: its critical sections are short
//! spin locks that the timer handler (which asks `queued()` and may requeue) must not re-enter on
//! the same CPU.

pub mod sync;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use manycore_sched::arch::{Context, SwitchKind, init_stack, switch, switch_preempt};
use manycore_sched::stack::{StackSource, TaskStack};
use manycore_sched::{Config, Platform, Scheduler, SpawnHint, Task, TopologyPolicy};
use manycore_topology::Topology;

use crate::arch::{apic, cpu, trap};
use crate::mem::alloc::{KernelStack, NodeStacks};
use crate::percpu::{self, PerCpu};
use crate::sync::{Once, SpinLock};
use crate::{smpcall, time};

/// Default stack size of a kernel thread.
pub const STACK_BYTES: usize = 16 * 1024;
/// Stack of each CPU's scheduler loop (it runs the scheduler, stealing and interrupt handlers).
const LOOP_STACK_BYTES: usize = 64 * 1024;
/// Preemption quantum.
pub const QUANTUM_US: u64 = 2_000;

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
    /// Saved context while not running. Written by the CPU switching away from it, read by the
    /// CPU switching to it (ordered by `on_cpu`).
    ctx: UnsafeCell<Context>,
    /// How `ctx` was saved (cooperative or FXSAVE); same discipline as `ctx`.
    saved: UnsafeCell<SwitchKind>,
    /// The stack; taken and freed by the loop of the CPU the thread exits on.
    stack: UnsafeCell<Option<KernelStack>>,
    /// The closure to run; taken once by the thread itself.
    entry: UnsafeCell<Option<Box<dyn FnOnce() + Send>>>,
    /// READY / RUNNING / BLOCKED / DONE.
    state: AtomicU8,
    /// True from the moment a CPU switches to the thread until that CPU's loop has finished the
    /// switch-out. Set and cleared by that CPU; read by a CPU about to run the thread.
    on_cpu: AtomicBool,
    /// Node whose memory holds the stack.
    pub home_node: usize,
    /// Last CPU it ran on (wake placement, statistics). Written by the CPU running it.
    pub last_cpu: AtomicUsize,
    /// Runs only on this CPU (tests that need two threads on one CPU); see [`forward_pinned`].
    pub pin: Option<usize>,
    /// Set when the closure has returned.
    done: AtomicBool,
    /// A thread waiting in `join`. Lock order: taken alone.
    joiner: SpinLock<Option<Arc<Thread>>>,
}

// SAFETY: `ctx`, `saved`, `stack` and `entry` are only touched by the CPU that owns the thread at
// that moment (the one running it or switching to/from it), with ownership handed over through
// `on_cpu` and the scheduler's queues.
unsafe impl Sync for Thread {}
// SAFETY: see `Sync`.
unsafe impl Send for Thread {}

/// The scheduler's task handle: a counted reference to a thread.
#[derive(Clone)]
pub struct ThreadRef(pub Arc<Thread>);

impl Task for ThreadRef {
    fn home_node(&self) -> Option<usize> {
        Some(self.0.home_node)
    }
    fn last_cpu(&self) -> Option<usize> {
        Some(self.0.last_cpu.load(Ordering::Relaxed))
    }
}

/// The kernel's side of the platform seam.
pub struct KernelPlatform;

impl Platform for KernelPlatform {
    fn current_cpu(&self) -> Option<usize> {
        percpu::is_ready().then(|| percpu::current().cpu)
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    /// Halts the calling CPU until an interrupt, unless a wake token is pending. Called by the
    /// loop with interrupts off; `sti; hlt` takes an IPI sent after the token check.
    ///
    /// With a deadline (the scheduler's re-check of a task that becomes stealable later, e.g. in
    /// another CPU's next slot), the LAPIC timer is armed for it first, so the CPU halts until
    /// then instead of spinning through the loop; a deadline already past returns at once. The
    /// quantum timer is not running while the CPU is idle (no thread is current), so the park
    /// timer borrows it: `tick_pending` is cleared on return and the next thread's `run` arms
    /// a fresh quantum, which replaces whatever is left of the park timer.
    fn park(&self, cpu: usize, deadline_ns: Option<u64>) {
        let me = percpu::current();
        debug_assert_eq!(me.cpu, cpu, "park is called by the CPU itself");
        if let Some(deadline) = deadline_ns {
            let now = time::now_ns();
            if deadline <= now {
                return;
            }
            arm_timer_in(me, deadline - now);
        }
        if !me.sched.wake_token.swap(false, Ordering::AcqRel)
            && me.sched.pinned_waiting.load(Ordering::SeqCst) == 0
            && !me.call_pending.load(Ordering::SeqCst)
        {
            cpu::enable_interrupts_and_halt();
            cpu::interrupts_disable();
            me.sched.wake_token.store(false, Ordering::Relaxed);
        }
        if deadline_ns.is_some() {
            me.sched.tick_pending.store(false, Ordering::Relaxed);
        }
    }

    /// Leaves `cpu` a wake token and interrupts its `hlt` with the wake IPI.
    fn unpark(&self, cpu: usize) {
        percpu::get(cpu)
            .sched
            .wake_token
            .store(true, Ordering::SeqCst);
        smpcall::wake(cpu);
    }
}

/// The kernel's scheduler type.
pub type KernelScheduler = Scheduler<ThreadRef, KernelPlatform>;

static SCHED: Once<KernelScheduler> = Once::new();

/// The scheduler (after [`init_scheduler`]).
pub fn scheduler() -> &'static KernelScheduler {
    SCHED.get().expect("thread::init_scheduler ran at boot")
}

/// Builds the scheduler over the discovered topology (BSP, after the heap is usable, before
/// any thread is spawned or any AP enters its loop).
pub fn init_scheduler(topo: &Topology) -> Result<(), alloc::string::String> {
    let s = Scheduler::with(
        topo.clone(),
        Box::new(TopologyPolicy::default()),
        KernelPlatform,
        manycore_sched::NoObserver,
        Config::default(),
    )
    .map_err(|e| alloc::format!("{e}"))?;
    SCHED
        .set(s)
        .map(|_| ())
        .map_err(|_| "thread::init_scheduler ran twice".into())
}

/// One CPU's scheduler state (a field of [`PerCpu`]).
pub struct CpuSched {
    /// The running thread. Owner CPU only, interrupts off.
    current: UnsafeCell<Option<ThreadRef>>,
    /// Where the loop saves itself when it switches into a thread (never resumed). Owner only.
    loop_ctx: UnsafeCell<Context>,
    /// One past the top of this CPU's loop stack. Written once by the owner.
    loop_stack_top: AtomicUsize,
    /// Why the current thread switched back. Owner CPU only.
    reason: UnsafeCell<Reason>,
    /// An unpark arrived: the next park returns at once. Set by unparkers (SeqCst), cleared by
    /// the owner.
    wake_token: AtomicBool,
    /// Thread switches done by this CPU's loop.
    pub switches: AtomicU64,
    /// Timer preemptions on this CPU.
    pub preemptions: AtomicU64,
    /// Threads that finished on this CPU.
    pub threads_run: AtomicU64,
    /// Pinned threads this CPU took (by stealing) and sent back to their CPU.
    pub pinned_forwards: AtomicU64,
    /// Pinned threads placed on this CPU from elsewhere (spawned, woken or forwarded by another
    /// CPU): not stealable, so a pinned thread is handed over once instead of being stolen and
    /// forwarded again and again while its CPU wakes. Pushed by any CPU, popped by the owner.
    pinned: SpinLock<VecDeque<ThreadRef>>,
    /// Length of `pinned`, so the loop takes the lock only when it holds something. Changed under
    /// the lock; read by the owner (SeqCst in `park`, against the pusher's unpark).
    pinned_waiting: AtomicUsize,
    /// Whether a preemption tick is pending. Owner CPU only (set when arming, cleared by the timer
    /// handler), so a switch re-arms the LAPIC timer only when no tick is pending: programming the
    /// timer is an MMIO write that costs microseconds under emulation.
    tick_pending: AtomicBool,
}

impl CpuSched {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            current: UnsafeCell::new(None),
            loop_ctx: UnsafeCell::new(Context::new()),
            loop_stack_top: AtomicUsize::new(0),
            reason: UnsafeCell::new(Reason::Yield),
            wake_token: AtomicBool::new(false),
            switches: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            threads_run: AtomicU64::new(0),
            pinned_forwards: AtomicU64::new(0),
            pinned: SpinLock::new(VecDeque::new()),
            pinned_waiting: AtomicUsize::new(0),
            tick_pending: AtomicBool::new(false),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
    let t = unsafe { (*percpu::current().sched.current.get()).as_ref() }.map(|t| t.0.clone());
    if irq {
        cpu::interrupts_enable();
    }
    t
}

/// Runs `f` with interrupts off (every scheduler call; see the module docs).
fn irq_off<R>(f: impl FnOnce() -> R) -> R {
    let irq = cpu::interrupts_disable();
    let r = f();
    if irq {
        cpu::interrupts_enable();
    }
    r
}

/// Spawns a thread running `f`. `cpu` places it on that CPU's queue (None: the calling CPU's,
/// from where idle CPUs steal it); `pinned` keeps it on that CPU. The stack comes from the node
/// of the CPU it is placed on.
pub fn spawn_on(
    cpu: Option<usize>,
    pinned: bool,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle, &'static str> {
    let here = percpu::current().cpu;
    let target = cpu.unwrap_or(here);
    if target >= percpu::all().len() {
        return Err("spawn: no such CPU");
    }
    let node = percpu::get(target).node;
    let stack = NodeStacks { node }
        .allocate(STACK_BYTES)
        .map_err(|_| "spawn: out of memory for a thread stack")?;
    // SAFETY: the stack is fresh, owned by this thread, and larger than the initial frame.
    let ctx = unsafe { init_stack(stack.top(), thread_start, 0, SwitchKind::Cooperative) };
    let t = Arc::new(Thread {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        ctx: UnsafeCell::new(ctx),
        saved: UnsafeCell::new(SwitchKind::Cooperative),
        stack: UnsafeCell::new(Some(stack)),
        entry: UnsafeCell::new(Some(Box::new(f))),
        state: AtomicU8::new(READY),
        on_cpu: AtomicBool::new(false),
        home_node: node,
        last_cpu: AtomicUsize::new(target),
        pin: pinned.then_some(target),
        done: AtomicBool::new(false),
        joiner: SpinLock::new(None),
    });
    let r = ThreadRef(t.clone());
    irq_off(|| match r.0.pin {
        Some(pin) => place_pinned(pin, r),
        None => scheduler().spawn(
            r,
            SpawnHint {
                cpu: cpu.or(Some(here)),
                node: None,
            },
        ),
    });
    Ok(JoinHandle { thread: t })
}

/// Makes a blocked thread runnable again: a pinned thread on its CPU, others where the
/// scheduler's wake placement puts them (near their last CPU).
pub fn wake(t: Arc<Thread>) {
    if t.state
        .compare_exchange(BLOCKED, READY, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        irq_off(|| match t.pin {
            Some(pin) => place_pinned(pin, ThreadRef(t)),
            None => scheduler().wake(ThreadRef(t)),
        });
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

/// Switches from the current thread to a fresh scheduler loop on this CPU's loop stack.
fn schedule(reason: Reason) {
    let irq = cpu::interrupts_disable();
    let me = percpu::current();
    // SAFETY: owner CPU, interrupts off; the current thread is the caller, so it stays alive (its
    // handle is in `current`) until the loop takes it, and whoever resumes it holds it again.
    unsafe {
        let t: *const Thread = match &*me.sched.current.get() {
            Some(t) => Arc::as_ptr(&t.0),
            None => panic!("schedule() outside a kernel thread"),
        };
        if reason == Reason::Yield || reason == Reason::Preempted {
            let _ =
                (*t).state
                    .compare_exchange(RUNNING, READY, Ordering::Relaxed, Ordering::Relaxed);
        }
        *me.sched.reason.get() = reason;
        let kind = if reason == Reason::Preempted {
            SwitchKind::PreemptFxsave
        } else {
            SwitchKind::Cooperative
        };
        *(*t).saved.get() = kind;
        // The loop stack is free: the loop that switched to this thread is never resumed.
        let fresh = init_stack(
            me.sched.loop_stack_top.load(Ordering::Relaxed) as *mut u8,
            loop_entry,
            0,
            kind,
        );
        match kind {
            SwitchKind::Cooperative => switch((*t).ctx.get(), &fresh),
            _ => switch_preempt((*t).ctx.get(), &fresh),
        }
    }
    // Resumed (possibly on another CPU).
    if irq {
        cpu::interrupts_enable();
    }
}

/// First code of every thread (entered by the first switch into its stack).
extern "sysv64" fn thread_start(_arg: usize) -> ! {
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

/// Enters the scheduler loop of the calling CPU (never returns). Interrupts must be off. The
/// boot stack is left behind: the loop runs on its own stack from the CPU's node.
pub fn scheduler_loop() -> ! {
    let me = percpu::current();
    let stack = match (NodeStacks { node: me.node }).allocate(LOOP_STACK_BYTES) {
        Ok(s) => s,
        Err(e) => panic!("CPU {}: no loop stack: {e}", me.cpu),
    };
    me.sched
        .loop_stack_top
        .store(stack.top() as usize, Ordering::Relaxed);
    // The loop stack lives as long as the CPU.
    core::mem::forget(stack);
    let mut boot = Context::new();
    // SAFETY: the loop stack is fresh and ours; interrupts are off; the boot context saved in
    // `boot` is never resumed (the loop never returns).
    unsafe {
        let fresh = init_stack(
            me.sched.loop_stack_top.load(Ordering::Relaxed) as *mut u8,
            loop_entry,
            0,
            SwitchKind::Cooperative,
        );
        switch(&mut boot, &fresh);
    }
    unreachable!("the boot context is never resumed")
}

/// A fresh scheduler loop: finish the switch-out of the thread that just left, then loop.
extern "sysv64" fn loop_entry(_arg: usize) -> ! {
    let me = percpu::current();
    // A yield or preemption hands the next thread over in the same scheduler decision.
    let mut handed = finish_switch_out(me);
    let sched = scheduler();
    loop {
        cpu::interrupts_disable();
        if smpcall::poll(me) {
            continue;
        }
        let next = match take_pinned(me) {
            Some(p) => {
                // The pinned thread goes first; the handed one goes back to the queue.
                if let Some(h) = handed.take() {
                    sched.requeue(me.cpu, h);
                }
                Some(p)
            }
            None => handed.take().or_else(|| sched.next_task(me.cpu)),
        };
        match next {
            Some(t) if t.0.pin.is_some_and(|p| p != me.cpu) => forward_pinned(me, t),
            Some(t) => run(me, t),
            None => {
                sched.park(me.cpu, None);
            }
        }
    }
}

/// Makes pinned thread `t` runnable on `cpu`: on the caller's own CPU through manycore-sched's
/// ring (a yield or wake there costs what any other does), from elsewhere through `cpu`'s pinned
/// list and an unpark. Interrupts off.
///
/// manycore-sched has no CPU affinity (its queues are stealable by design); the kernel keeps
/// pinning for the checks and benchmarks that need threads on given CPUs. A pinned thread that a
/// thief takes from the ring is forwarded here once ([`forward_pinned`]).
fn place_pinned(cpu: usize, t: ThreadRef) {
    if percpu::current().cpu == cpu {
        scheduler().push_local(cpu, t);
        return;
    }
    let target = &percpu::get(cpu).sched;
    {
        let mut q = target.pinned.lock();
        q.push_back(t);
        target.pinned_waiting.store(q.len(), Ordering::SeqCst);
    }
    KernelPlatform.unpark(cpu);
}

/// A pinned thread reached another CPU (a thief took it): send it to its CPU's pinned list.
fn forward_pinned(me: &PerCpu, t: ThreadRef) {
    me.sched.pinned_forwards.fetch_add(1, Ordering::Relaxed);
    if let Some(pin) = t.0.pin {
        place_pinned(pin, t);
    }
}

/// The next pinned thread placed on this CPU from elsewhere, if any. Owner, interrupts off.
fn take_pinned(me: &PerCpu) -> Option<ThreadRef> {
    if me.sched.pinned_waiting.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut q = me.sched.pinned.lock();
    let t = q.pop_front();
    me.sched.pinned_waiting.store(q.len(), Ordering::SeqCst);
    t
}

/// Switches into `t` (never returns: the loop's context is discarded).
fn run(me: &'static PerCpu, t: ThreadRef) -> ! {
    let mut spins = 0u64;
    while t.0.on_cpu.load(Ordering::Acquire) {
        spins += 1;
        assert!(
            spins < ON_CPU_SPINS_MAX,
            "thread {} never left its previous CPU",
            t.0.id
        );
        core::hint::spin_loop();
    }
    t.0.on_cpu.store(true, Ordering::Relaxed);
    t.0.state.store(RUNNING, Ordering::Relaxed);
    t.0.last_cpu.store(me.cpu, Ordering::Relaxed);
    let ctx = t.0.ctx.get();
    // SAFETY: `on_cpu` was false (acquire), so the previous CPU's writes of `ctx` and `saved` are
    // visible and no CPU touches them until this one clears `on_cpu`.
    let kind = unsafe { *t.0.saved.get() };
    // SAFETY: owner CPU, interrupts off.
    unsafe { *me.sched.current.get() = Some(t) };
    me.sched.switches.fetch_add(1, Ordering::Relaxed);
    if !me.sched.tick_pending.load(Ordering::Relaxed) {
        arm_quantum(me);
    }
    // SAFETY: `ctx` was saved by the thread's last switch-out with `kind` (or built by
    // `init_stack` as cooperative), is resumed only here, once, and with the function matching
    // `kind`; the thread is kept alive by `current`; interrupts are off.
    unsafe {
        match kind {
            SwitchKind::Cooperative => switch(me.sched.loop_ctx.get(), ctx),
            _ => switch_preempt(me.sched.loop_ctx.get(), ctx),
        }
    }
    unreachable!("a scheduler loop context is never resumed")
}

/// Step 2 of the loop (module docs): the thread that just switched to this loop. After a yield
/// or a preemption, returns the thread to run next, chosen by [`Scheduler::yield_task`] in the
/// same decision that queued the one that left (one decision instead of `requeue` and then
/// `next_task`).
fn finish_switch_out(me: &PerCpu) -> Option<ThreadRef> {
    // SAFETY: owner CPU, interrupts off.
    let t = (unsafe { (*me.sched.current.get()).take() })?;
    // SAFETY: as above.
    let reason = unsafe { *me.sched.reason.get() };
    // SAFETY: the thread has switched out on this CPU and `on_cpu` is still set: nobody else
    // touches its stack field.
    let stack = unsafe { &mut *t.0.stack.get() };
    if stack.as_ref().is_some_and(|s| !s.canary_intact()) {
        panic!(
            "thread {} overflowed its {} KiB stack",
            t.0.id,
            STACK_BYTES / 1024
        );
    }
    let stack = if reason == Reason::Exited {
        stack.take()
    } else {
        None
    };
    t.0.on_cpu.store(false, Ordering::Release);
    match reason {
        Reason::Yield | Reason::Preempted => scheduler().yield_task(me.cpu, t),
        Reason::Blocked => None,
        Reason::Exited => {
            me.sched.threads_run.fetch_add(1, Ordering::Relaxed);
            // No CPU is on the stack any more (this one is on its loop stack).
            drop(stack);
            None
        }
    }
}

/// Arms the next preemption tick: TSC-deadline mode where the CPU has it, else the one-shot
/// count-down timer.
fn arm_quantum(me: &PerCpu) {
    arm_timer_in(me, QUANTUM_US * 1000);
}

/// Arms this CPU's one timer interrupt `ns` from now (TSC-deadline mode where the CPU has it,
/// else the one-shot count-down) and marks a tick pending. Interrupts off.
fn arm_timer_in(me: &PerCpu, ns: u64) {
    me.sched.tick_pending.store(true, Ordering::Relaxed);
    if apic::has_tsc_deadline() {
        let deadline = cpu::rdtsc() + time::ns_to_tsc(ns);
        me.with_lapic(|l| l.timer_deadline(deadline));
    } else {
        let ticks = (time::apic_ticks_per_ms().saturating_mul(ns) / 1_000_000)
            .clamp(1, u64::from(u32::MAX)) as u32;
        me.with_lapic(|l| l.timer_oneshot(ticks));
    }
}

/// Timer interrupt: count it and preempt the running thread if any task waits. The trap stub
/// saved the caller-saved registers; [`switch_preempt`] saves the rest and the FPU/SSE state.
fn on_timer(_frame: &mut trap::TrapFrame) {
    let me = percpu::current();
    me.timer_ticks.fetch_add(1, Ordering::Relaxed);
    me.sched.tick_pending.store(false, Ordering::Relaxed);
    me.with_lapic(|l| l.eoi());
    // SAFETY: owner CPU, interrupts off (interrupt gate).
    let running = unsafe { (*me.sched.current.get()).is_some() };
    let waiting = scheduler().queued() > 0 || me.sched.pinned_waiting.load(Ordering::Relaxed) > 0;
    if running && waiting {
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
