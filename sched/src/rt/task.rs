//! A task: one allocation holding its header (what the scheduler, the worker and waiters touch)
//! and its body (the closure, then its result), plus the [`JoinHandle`] that reads the result.
//!
//! The scheduler queues [`TaskRef`]s (`Arc<Task<dyn Run>>`); a [`JoinHandle<R>`] holds the same
//! allocation as `Arc<Task<dyn Finish<R>>>`, so neither side needs a second allocation for the
//! closure or a box for the result.

use std::any::Any;
use std::boxed::Box;
use std::cell::UnsafeCell;
use std::fmt;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::builder::Shared;
use super::stacks::RtStack;
use super::wait::{Waiter, wait_probe};
use crate::arch::TaskContext;
use crate::stack::StackError;
use crate::task::Task as SchedTask;

pub(crate) use super::handshake::{BLOCKING, RUNNABLE};
/// On a worker.
pub(crate) const RUNNING: u32 = 1;
/// Asked to go back to the run queue (set by the task before it suspends).
pub(crate) const YIELDED: u32 = 2;
/// Finished; its result is stored.
pub(crate) const DONE: u32 = 5;
/// Its stack overflowed; the fault handler abandoned it.
pub(crate) const OVERFLOWED: u32 = 6;

/// What the runtime and waiters know about a task. Who touches what:
pub(crate) struct Header {
    /// Set at spawn; read by anyone (names in errors and overflow reports).
    pub(crate) name: String,
    /// Set at spawn; read by the scheduler's wake placement.
    pub(crate) home_node: Option<usize>,
    /// Written by the worker that resumes the task; read by wake placement on any CPU.
    pub(crate) last_cpu: AtomicUsize,
    /// The saved context. Touched only by the worker running or resuming the task and by the
    /// task itself: a task is in at most one queue or on one worker, never both.
    pub(crate) ctx: UnsafeCell<TaskContext>,
    /// The task's stack, attached by the worker that first runs it, taken by the worker that
    /// finishes it; only the worker currently holding the task touches it.
    pub(crate) stack: UnsafeCell<Option<RtStack>>,
    /// The task's guard page range, for the overflow handler: written with `stack`.
    pub(crate) guard_lo: AtomicUsize,
    /// See `guard_lo`.
    pub(crate) guard_hi: AtomicUsize,
    /// RUNNABLE ... OVERFLOWED (constants above). The task writes YIELDED/BLOCKING/DONE before
    /// suspending; its worker reads them after; wakers CAS BLOCKED to RUNNABLE; the fault
    /// handler writes OVERFLOWED on the worker's own thread.
    pub(crate) state: AtomicU32,
    /// Park token: set by [`TaskWaker::wake`](super::TaskWaker::wake) from any thread, consumed
    /// by the task when it blocks or resumes (see `wait.rs`).
    pub(crate) notify: AtomicBool,
    /// Set by whoever pops this task from a wait queue (see `wait.rs`), reset by the task when
    /// it registers; the task waits until it is set.
    pub(crate) signaled: AtomicBool,
    /// JOIN_NONE / JOIN_WAITING / JOIN_DONE: the joiner CASes NONE to WAITING after storing
    /// its waiter in `join_waiter`; the finisher swaps in DONE and, if it saw WAITING, takes the
    /// waiter and signals it.
    pub(crate) join_state: AtomicU8,
    /// The joiner's waiter: written by the joiner before its CAS, taken by the finisher after
    /// its swap (or by the joiner itself if its CAS found DONE).
    pub(crate) join_waiter: UnsafeCell<Option<Waiter>>,
    /// The runtime, for wakes from threads that are not its workers.
    pub(crate) shared: Weak<Shared>,
    /// Index of this task in the runtime's live-task registry shard `registry_shard`; written
    /// under that shard's lock.
    pub(crate) registry_slot: AtomicUsize,
    /// The registry shard (the spawning CPU's, or the shared one).
    pub(crate) registry_shard: usize,
    /// This very task as the worker sees it (the fat pointer a [`TaskRef`] is made from): set
    /// by `new_task` right after the allocation, before the task is shared; read-only after.
    me: core::cell::Cell<Option<core::ptr::NonNull<Task<dyn Run>>>>,
}

impl Header {
    /// The task allocation this header heads, as the worker uses it (a raw pointer, for a
    /// reference that must outlive the caller's borrow while something else keeps the task
    /// alive).
    pub(crate) fn task_ptr(&self) -> *const Task<dyn Run> {
        match self.me.get() {
            Some(p) => p.as_ptr(),
            None => unreachable!("a task's header is reachable only after new_task set `me`"),
        }
    }
}

const JOIN_NONE: u8 = 0;
const JOIN_WAITING: u8 = 1;
const JOIN_DONE: u8 = 2;

/// A task: header plus body. `repr(C)`: the header is at offset 0, so a pointer to the header
/// is a pointer to the task (what [`TaskRef`] relies on).
#[repr(C)]
pub(crate) struct Task<B: ?Sized> {
    pub(crate) hdr: Header,
    pub(crate) body: B,
}

// SAFETY: the UnsafeCells in the header (`ctx`, `stack`) are touched only by the single worker
// holding the task at a time (see the field docs); the body's cells are written by the task
// before it publishes DONE and read by the joiner after seeing it. The header's `me` cell is
// written once by `new_task` before the task is shared and only read afterwards. Everything else
// is atomic or locked.
unsafe impl<B: ?Sized + Send> Sync for Task<B> {}
// SAFETY: as above; all contents are Send.
unsafe impl<B: ?Sized + Send> Send for Task<B> {}

/// The type-erased side the worker uses.
pub(crate) trait Run: Send {
    /// Runs the closure (once), catching a panic, and stores the result. `name` is the task's,
    /// for the error.
    fn run(&self, name: &str);
    /// Stores a failure instead of running (no stack) or after abandoning (overflow).
    fn fail(&self, e: JoinError);
}

/// The side a [`JoinHandle<R>`] uses.
pub(crate) trait Finish<R>: Send {
    /// Takes the stored result (once).
    fn take(&self) -> Option<Result<R, JoinError>>;
}

pub(crate) struct Body<F, R> {
    /// The closure; taken by the task when it starts.
    f: UnsafeCell<Option<F>>,
    /// The result; written once before DONE is published, taken by the joiner after. The error
    /// is boxed so the common case keeps the task allocation small.
    result: UnsafeCell<Option<Result<R, Box<JoinError>>>>,
}

impl<F: FnOnce() -> R + Send, R: Send> Run for Body<F, R> {
    fn run(&self, name: &str) {
        // SAFETY: only the task itself runs `run`, once (the worker calls it on the task's
        // stack before DONE); nobody else touches `f`.
        let f = unsafe { (*self.f.get()).take() };
        let r = match f {
            Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
                Box::new(JoinError::Panicked {
                    task: name.into(),
                    payload: p,
                })
            }),
            None => Err(Box::new(JoinError::Lost { task: name.into() })),
        };
        // SAFETY: the result is written before DONE is published (Release) and read only after
        // it is observed (Acquire); no concurrent access.
        unsafe { *self.result.get() = Some(r) };
    }
    fn fail(&self, e: JoinError) {
        // SAFETY: called by the worker holding the task, which never runs again; as in `run`.
        unsafe {
            *self.f.get() = None;
            *self.result.get() = Some(Err(Box::new(e)));
        }
    }
}

impl<F: Send, R: Send> Finish<R> for Body<F, R> {
    fn take(&self) -> Option<Result<R, JoinError>> {
        // SAFETY: called by the joiner after observing JOIN_DONE (set after the result was
        // written); the JoinHandle is the only taker.
        unsafe { (*self.result.get()).take() }.map(|r| r.map_err(|e| *e))
    }
}

/// A task handle as the scheduler queues it: one strong count of the task's `Arc`, kept as a
/// one-word pointer to the header (an `Arc<Task<dyn Run>>` is two words; a ring slot of two
/// words written from a value spilled as two halves missed store forwarding on every push,
/// measured at a third of a yield). The fat pointer lives in the header (`Header::me`).
pub(crate) struct TaskRef(core::ptr::NonNull<Header>);

// SAFETY: a TaskRef is an `Arc<Task<dyn Run>>` in another shape; `Task<dyn Run>` is Send and
// Sync (see the impls above), so sharing or sending the handle is as sound as the Arc's.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Takes over one strong count of `arc`.
    fn from_arc(arc: Arc<Task<dyn Run>>) -> TaskRef {
        let fat = Arc::into_raw(arc);
        // SAFETY: `Arc::into_raw` never returns null; the header is the task's first field
        // (`repr(C)`), so the data pointer, cast thin, points at it.
        TaskRef(unsafe { core::ptr::NonNull::new_unchecked(fat as *const Header as *mut Header) })
    }

    pub(crate) fn hdr(&self) -> &Header {
        // SAFETY: we hold a strong count, so the allocation (and its header) is alive.
        unsafe { self.0.as_ref() }
    }

    /// The task allocation as the worker uses it.
    pub(crate) fn task(&self) -> &Task<dyn Run> {
        // SAFETY: `me` was set before this handle existed and points at the live allocation we
        // hold a count of.
        unsafe { &*self.fat() }
    }

    /// The fat pointer the task's `Arc` was made from.
    fn fat(&self) -> *const Task<dyn Run> {
        self.hdr().task_ptr()
    }

    /// A new handle (one more strong count) of the task whose header is `hdr`.
    ///
    /// # Safety
    /// 1. `hdr` is the header of a task made by `new_task`, and some handle keeps that task
    ///    alive for the duration of the call.
    pub(crate) unsafe fn clone_of(hdr: &Header) -> TaskRef {
        // The borrowed handle is never dropped: it only lends `clone` the pointer.
        let borrowed = core::mem::ManuallyDrop::new(TaskRef(core::ptr::NonNull::from(hdr)));
        // Precondition 1 is what `clone` needs of `borrowed`: `me` is set and the allocation
        // is alive with a count held elsewhere.
        TaskRef::clone(&borrowed)
    }

    /// Gives up the handle without dropping its count: the header pointer now carries it.
    pub(crate) fn into_raw(self) -> *const Header {
        let p = self.0.as_ptr() as *const Header;
        core::mem::forget(self);
        p
    }

    /// Takes back a handle given up by [`TaskRef::into_raw`].
    ///
    /// # Safety
    /// 1. `hdr` came from `into_raw` and its count is taken back at most once.
    pub(crate) unsafe fn from_raw(hdr: *const Header) -> TaskRef {
        // SAFETY: precondition 1: a pointer from `into_raw`, so non-null.
        TaskRef(unsafe { core::ptr::NonNull::new_unchecked(hdr as *mut Header) })
    }

    /// Whether both handles name the same task.
    pub(crate) fn same(&self, other: &TaskRef) -> bool {
        self.0 == other.0
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        // SAFETY: `fat()` came from `Arc::into_raw` of an `Arc<Task<dyn Run>>` whose count we
        // hold, so the allocation is alive and incrementing its count is sound.
        unsafe { Arc::increment_strong_count(self.fat()) };
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: as in `clone`; this handle owns one count, given back here exactly once.
        unsafe { Arc::decrement_strong_count(self.fat()) };
    }
}

impl SchedTask for TaskRef {
    fn home_node(&self) -> Option<usize> {
        self.hdr().home_node
    }
    fn last_cpu(&self) -> Option<usize> {
        let c = self.hdr().last_cpu.load(Ordering::Relaxed);
        (c != usize::MAX).then_some(c)
    }
}

/// Allocates a task for `f`; returns the scheduler's handle and the joiner's.
pub(crate) fn new_task<F, R>(
    name: String,
    home_node: Option<usize>,
    shared: Weak<Shared>,
    registry_shard: usize,
    f: F,
) -> (TaskRef, JoinHandle<R>)
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let task = Arc::new(Task {
        hdr: Header {
            name,
            home_node,
            last_cpu: AtomicUsize::new(usize::MAX),
            ctx: UnsafeCell::new(TaskContext::new()),
            stack: UnsafeCell::new(None),
            guard_lo: AtomicUsize::new(0),
            guard_hi: AtomicUsize::new(0),
            state: AtomicU32::new(RUNNABLE),
            notify: AtomicBool::new(false),
            signaled: AtomicBool::new(false),
            join_state: AtomicU8::new(JOIN_NONE),
            join_waiter: UnsafeCell::new(None),
            shared,
            registry_slot: AtomicUsize::new(usize::MAX),
            registry_shard,
            me: core::cell::Cell::new(None),
        },
        body: Body {
            f: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
        },
    });
    let run: Arc<Task<dyn Run>> = task.clone();
    // Set before any other thread can see the task (it is shared only through the returned
    // handles, which the caller registers and queues).
    task.hdr
        .me
        .set(core::ptr::NonNull::new(Arc::as_ptr(&run).cast_mut()));
    let finish: Arc<Task<dyn Finish<R>>> = task;
    (TaskRef::from_arc(run), JoinHandle { task: finish })
}

/// Why a task produced no value.
pub enum JoinError {
    /// The task panicked; the payload is what `panic!` was given.
    Panicked {
        /// The task's name.
        task: String,
        /// The panic payload.
        payload: Box<dyn Any + Send>,
    },
    /// The task overflowed its stack and was abandoned (see the runtime docs, "Stack overflow").
    StackOverflow {
        /// The task's name.
        task: String,
        /// Its usable stack size.
        stack_bytes: usize,
    },
    /// No stack could be allocated for the task, so it never ran.
    NoStack {
        /// The task's name.
        task: String,
        /// Why.
        error: StackError,
    },
    /// The runtime shut down before the task finished (see [`Runtime::shutdown_timeout`](super::Runtime::shutdown_timeout)).
    Abandoned {
        /// The task's name.
        task: String,
    },
    /// The task's closure was missing (an internal error; reported, never expected).
    Lost {
        /// The task's name.
        task: String,
    },
}

impl JoinError {
    /// The panic message when the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked { payload, .. } => payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&'static str>().copied()),
            _ => None,
        }
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked { .. })
    }

    /// Whether the task overflowed its stack.
    pub fn is_stack_overflow(&self) -> bool {
        matches!(self, JoinError::StackOverflow { .. })
    }

    /// The panic payload, to resume the panic elsewhere (`None` for other errors).
    pub fn into_panic(self) -> Option<Box<dyn Any + Send>> {
        match self {
            JoinError::Panicked { payload, .. } => Some(payload),
            _ => None,
        }
    }

    fn task(&self) -> &str {
        match self {
            JoinError::Panicked { task, .. }
            | JoinError::StackOverflow { task, .. }
            | JoinError::NoStack { task, .. }
            | JoinError::Abandoned { task }
            | JoinError::Lost { task } => task,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.task();
        let name = if name.is_empty() { "<unnamed>" } else { name };
        match self {
            JoinError::Panicked { .. } => match self.panic_message() {
                Some(m) => write!(f, "task '{name}' panicked: {m}"),
                None => write!(f, "task '{name}' panicked"),
            },
            JoinError::StackOverflow { stack_bytes, .. } => write!(
                f,
                "task '{name}' overflowed its {stack_bytes}-byte stack and was abandoned"
            ),
            JoinError::NoStack { error, .. } => write!(f, "task '{name}' never ran: {error}"),
            JoinError::Abandoned { .. } => {
                write!(
                    f,
                    "task '{name}' had not finished when the runtime shut down"
                )
            }
            JoinError::Lost { .. } => write!(f, "task '{name}' lost its closure"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for JoinError {}

/// Waits for a task's result. Dropping it detaches the task (it still runs; its result is
/// dropped).
pub struct JoinHandle<R> {
    task: Arc<Task<dyn Finish<R>>>,
}

impl<R: Send + 'static> JoinHandle<R> {
    /// The task's value, or why there is none. From a task, the calling task blocks (its worker
    /// runs other tasks); from any other thread, the thread blocks. A finished task's value is
    /// returned at once, without blocking.
    ///
    /// **Inline joins.** When a task joins a child that has not started and still waits in the
    /// joiner's CPU's next slot (a child spawned from this task with no placement hint, joined
    /// before anything else ran), the joiner runs the child's closure itself, on its own stack,
    /// at the moment the child would have run anyway (unless the runtime was built with
    /// [`Builder::join_inline(false)`](super::Builder::join_inline), or less than half of the
    /// joiner's stack is left). The child's result, panic included, is returned as usual. What
    /// the child observes differs from running as its own task: [`current_name`](super::current_name)
    /// and [`current_waker`](super::current_waker) are the joiner's, a yield or block in the
    /// child yields or blocks the joiner, and a stack overflow in the child is reported as the
    /// joiner's (and abandons it).
    pub fn join(self) -> Result<R, JoinError> {
        let hdr = &self.task.hdr;
        if hdr.join_state.load(Ordering::Acquire) != JOIN_DONE
            && !super::worker::run_child_inline(hdr)
        {
            let w = Waiter::current();
            // The waiter itself goes to the cell; we keep only its probe (no count for a task).
            let probe = w.probe();
            // SAFETY: the JoinHandle is the only joiner (join consumes it), and the finisher
            // touches the cell only after seeing JOIN_WAITING, which we publish below.
            unsafe { *hdr.join_waiter.get() = Some(w) };
            match hdr.join_state.compare_exchange(
                JOIN_NONE,
                JOIN_WAITING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => wait_probe(&probe),
                // Finished meanwhile: the finisher never looked at the cell; take it back.
                // SAFETY: as above; the finisher saw NONE, so it will not touch the cell.
                Err(_) => drop(unsafe { (*hdr.join_waiter.get()).take() }),
            }
        }
        self.task.body.take().unwrap_or_else(|| {
            Err(JoinError::Lost {
                task: hdr.name.clone(),
            })
        })
    }

    /// Whether the task has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.task.hdr.join_state.load(Ordering::Acquire) == JOIN_DONE
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.task.hdr.name
    }
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("task", &self.task.hdr.name)
            .field(
                "finished",
                &(self.task.hdr.join_state.load(Ordering::Acquire) == JOIN_DONE),
            )
            .finish()
    }
}

/// Marks a task finished and wakes its joiner (called once the result is stored; a second
/// call does nothing).
pub(crate) fn mark_joinable(hdr: &Header) {
    if hdr.join_state.swap(JOIN_DONE, Ordering::AcqRel) == JOIN_WAITING {
        // SAFETY: the joiner stored its waiter before publishing JOIN_WAITING (Release), which
        // our swap acquired; it will not touch the cell again.
        if let Some(w) = unsafe { (*hdr.join_waiter.get()).take() } {
            w.signal();
        }
    }
}
