//! Stack overflow detection: a `SIGSEGV` handler, running on a per-worker alternate signal
//! stack, that recognizes a fault in the guard page of the task running on the faulting worker,
//! names the task, and then either abandons the task or aborts the process
//! ([`OverflowAction`]).
//!
//! # Step by step
//! 1. The first runtime built installs the handler process-wide (`SA_SIGINFO | SA_ONSTACK`),
//!    keeping the previous action to chain to. Each worker thread makes sure it has an alternate
//!    signal stack ([`AltStack`]): the faulting stack is exhausted, so the handler cannot run on
//!    it.
//! 2. Before resuming a task, the worker records the task's header in its own `Worker`
//!    (`running`); the handler reads it through the worker's thread-local pointer and takes the
//!    guard-page range from the header (`guard_lo`, `guard_hi`, written when the stack was
//!    attached). A fault is synchronous, so these are never half-written when read.
//! 3. A fault whose address (`si_addr`) lies in that range is an overflow of that task. The
//!    handler writes one line to stderr with `write(2)` (no allocation, no locks): the task's
//!    name, its stack size, the fault address and the CPU.
//! 4. [`OverflowAction::Abort`]: `abort()`. [`OverflowAction::AbandonTask`] (the default): the
//!    handler stores OVERFLOWED in the task's state and rewrites the interrupted register state so
//!    that, when the handler returns, the thread continues in the worker loop as if the task had
//!    exited (`arch::abandon_point`). The worker fails the task's `JoinHandle` with
//!    `JoinError::StackOverflow`, quarantines its stack (unmapped pages, addresses reserved, so
//!    a stale pointer into it faults rather than reading reused memory) and carries on.
//! 5. Any other fault goes to the previous handler (Rust's own guard-page reporter for thread
//!    stacks, for instance), or, if there was none, to the default action (the process dies with
//!    SIGSEGV as it would have without us).
//!
//! # What abandoning costs (the known compromise)
//! The task's frames are dropped without unwinding: heap memory they owned leaks, and a lock it
//! held stays held. A task that overflows while holding a runtime `Mutex` leaves that mutex
//! locked forever (its waiters then show up in `Runtime::shutdown_timeout`'s report); one that
//! overflows inside the allocator or inside the scheduler's own critical sections (it runs them
//! on its stack) can wedge the process. Overflows happen almost always in the task's own deep
//! recursion, which holds none of these, so abandoning is the default; choose
//! [`OverflowAction::Abort`] when a wedged process would be worse than a dead one.

use std::boxed::Box;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::task::OVERFLOWED;
use super::worker::current_worker;
use crate::arch::abandon_point;

/// What happens to the process when a task overflows its stack (the message naming the task is
/// printed either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverflowAction {
    /// Abandon the task: its `JoinHandle` returns `JoinError::StackOverflow` and the runtime
    /// keeps running (see the module docs for what this leaks).
    #[default]
    AbandonTask,
    /// Abort the process after the message.
    Abort,
}

/// The action to take for overflows on the current worker, read by the handler. Set per runtime.
pub(crate) fn action_code(a: OverflowAction) -> u8 {
    match a {
        OverflowAction::AbandonTask => 0,
        OverflowAction::Abort => 1,
    }
}

/// The `SIGSEGV` action before ours: written once (inside `INSTALLED`'s initializer) before
/// our handler is installed, read by the handler.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(core::ptr::null_mut());
/// The outcome of the one installation: `Err(errno)` if a `sigaction` call failed.
static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// Installs the handler once per process. Returns an error naming the failed call.
pub(crate) fn install() -> Result<(), std::string::String> {
    let outcome = INSTALLED.get_or_init(|| {
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: plain sigaction calls with zeroed-then-filled structs; the previous action is
        // stored (leaked, read-only afterwards) before ours is installed, so the handler never
        // sees a half-written PREVIOUS.
        unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(libc::SIGSEGV, core::ptr::null(), &mut old) != 0 {
                return Err(errno());
            }
            PREVIOUS.store(Box::into_raw(Box::new(old)), Ordering::Release);
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_fault as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(libc::SIGSEGV, &act, core::ptr::null_mut()) != 0 {
                return Err(errno());
            }
        }
        Ok(())
    });
    outcome.map_err(|e| {
        std::format!(
            "cannot install the stack-overflow handler (sigaction SIGSEGV): {}",
            std::io::Error::from_raw_os_error(e)
        )
    })
}

/// Bytes of the alternate signal stack a worker maps when its thread has none.
const ALTSTACK_BYTES: usize = 64 * 1024;

/// A worker thread's alternate signal stack: the one already set up (Rust's runtime gives
/// threads one) or one mapped here and removed on drop.
pub(crate) struct AltStack {
    /// Our mapping (guard page included), if we made one.
    mapped: Option<(*mut libc::c_void, usize)>,
}

impl AltStack {
    /// Makes sure the calling thread has an alternate signal stack.
    pub(crate) fn ensure() -> Result<AltStack, std::string::String> {
        // SAFETY: querying the current alternate stack into a zeroed struct.
        let mut cur: libc::stack_t = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::sigaltstack(core::ptr::null(), &mut cur) } == 0
            && cur.ss_flags & libc::SS_DISABLE == 0
            && cur.ss_size >= libc::MINSIGSTKSZ
        {
            return Ok(AltStack { mapped: None });
        }
        let page = crate::stack::PAGE_BYTES;
        let len = ALTSTACK_BYTES + page;
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::format!(
                "cannot map an alternate signal stack: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: the first page of our own mapping becomes its guard; then the rest is
        // installed as this thread's alternate stack.
        let rc = unsafe {
            libc::mprotect(base, page, libc::PROT_NONE);
            let st = libc::stack_t {
                ss_sp: base.cast::<u8>().add(page).cast(),
                ss_flags: 0,
                ss_size: ALTSTACK_BYTES,
            };
            libc::sigaltstack(&st, core::ptr::null_mut())
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: unmapping our own mapping, never installed.
            unsafe { libc::munmap(base, len) };
            return Err(std::format!(
                "cannot install an alternate signal stack: {e}"
            ));
        }
        Ok(AltStack {
            mapped: Some((base, len)),
        })
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        if let Some((base, len)) = self.mapped {
            // SAFETY: disable the alternate stack before unmapping it (we are not running on
            // it: drop runs in the worker's normal code).
            unsafe {
                let st = libc::stack_t {
                    ss_sp: core::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&st, core::ptr::null_mut());
                libc::munmap(base, len);
            }
        }
    }
}

/// A fixed buffer for building the report without allocating.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }
    fn push_dec(&mut self, mut v: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
    fn push_hex(&mut self, v: usize) {
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            let nib = (v >> ((15 - i) * 4)) & 0xF;
            *d = b"0123456789abcdef"[nib];
        }
        self.push(b"0x");
        self.push(&digits);
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(w) = current_worker() {
        let hdr = w.running.get();
        // SAFETY: a non-null `running` is the header of the task this worker is running (set
        // before resume, cleared after); the worker holds it alive.
        let hdr = (!hdr.is_null()).then(|| unsafe { &*hdr });
        let guard =
            hdr.map(|h| h.guard_lo.load(Ordering::Relaxed)..h.guard_hi.load(Ordering::Relaxed));
        if let (Some(hdr), Some(guard)) = (hdr, guard)
            && guard.contains(&addr)
        {
            let lo = guard.start;
            let abort = w.shared().overflow_action_code() == action_code(OverflowAction::Abort);
            let mut line = Line {
                buf: [0; 512],
                len: 0,
            };
            line.push(b"manycore: task '");
            let name = if hdr.name.is_empty() {
                "<unnamed>"
            } else {
                hdr.name.as_str()
            };
            line.push(&name.as_bytes()[..name.len().min(200)]);
            line.push(b"' overflowed its ");
            line.push_dec(w.shared().stack_bytes());
            line.push(b"-byte stack (fault at ");
            line.push_hex(addr);
            line.push(b", guard page ");
            line.push_hex(lo);
            line.push(b") on CPU ");
            line.push_dec(w.cpu);
            if abort {
                line.push(b"; aborting (OverflowAction::Abort)\n");
            } else {
                line.push(
                    b"; abandoning the task: its JoinHandle returns JoinError::StackOverflow\n",
                );
            }
            // SAFETY: write(2) is async-signal-safe; the buffer is ours.
            unsafe { libc::write(2, line.buf.as_ptr().cast(), line.len) };
            if abort {
                // SAFETY: abort is async-signal-safe.
                unsafe { libc::abort() };
            }
            hdr.state.store(OVERFLOWED, Ordering::Release);
            // SAFETY: the task is running on this thread, so its context holds the worker's
            // parent_sp from the resume that started it.
            let (ip, sp) = abandon_point(unsafe { &*hdr.ctx.get() });
            // SAFETY: `uctx` is the ucontext_t the kernel saved for this signal; rewriting the
            // instruction and stack pointers makes sigreturn continue in the worker (see
            // `arch::abandon_point`: every other register may hold anything).
            unsafe {
                let uc = uctx.cast::<libc::ucontext_t>();
                (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] = ip as i64;
                (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] = sp as i64;
            }
            return;
        }
    }
    chain(sig, info, uctx);
}

/// Hands a fault that is not a task overflow to the previous handler, or restores the default
/// action so the faulting instruction, re-executed on return, kills the process as usual.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let prev = PREVIOUS.load(Ordering::Acquire);
    if !prev.is_null() {
        // SAFETY: PREVIOUS points at a leaked, never-modified sigaction.
        let prev = unsafe { &*prev };
        let h = prev.sa_sigaction;
        if h != libc::SIG_DFL && h != libc::SIG_IGN {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
                // signature; we pass it the kernel's arguments unchanged.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { core::mem::transmute(h) };
                f(sig, info, uctx);
            } else {
                // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(h) };
                f(sig);
            }
            return;
        }
    }
    // SAFETY: resetting SIGSEGV to its default action; the fault re-occurs on return and the
    // kernel then terminates the process with SIGSEGV.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(sig, &dfl, core::ptr::null_mut());
    }
}
