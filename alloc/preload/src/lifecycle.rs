//! Load, fork and exit.
//!
//! - **Load** (`.init_array`): reads the knobs from `environ` (a bad one: message, exit status
//!   2), sets the cache budget, registers the fork handlers, finishes machine discovery and the
//!   rseq probe (so later threads never do them inside `malloc`), and with
//!   `MANYCORE_MALLOC_VERBOSE=1` says what it found. Allocations made before this runs (the
//!   dynamic linker's) already work: the heap needs no constructor.
//! - **fork** (`pthread_atfork`): prepare takes every heap lock; parent and child release them;
//!   the child also gives up the small-class slabs the parent's other threads owned
//!   (`NumaSlab::fork_release_child`).
//!   Registered at load, so the prepare handler runs after those registered later (which may
//!   still allocate) and the release handlers run before theirs.
//! - **Exit** (`.fini_array`, after the program's own destructors): with
//!   `MANYCORE_MALLOC_STATS=1`, flushes the exiting thread's cache and prints each node's
//!   statistics to the stderr the program started with (duplicated at load: coreutils close
//!   stderr in their exit handlers). Caches of threads still running are not flushed, so their latest operations
//!   may be missing from the counts.

use core::ffi::c_char;
use core::sync::atomic::{AtomicBool, Ordering};

use manycore_alloc::NodeStats;

use crate::SLAB;
use crate::knobs::{self, KnobError, Knobs};
use crate::report::{self, Bytes, Line};

/// `MANYCORE_MALLOC_STATS=1` was given. Written once at load.
static STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);

/// Environment entries examined at most (a bound on the `environ` walk).
const ENV_ENTRIES_MAX: usize = 1 << 16;

unsafe extern "C" {
    /// The process environment (POSIX).
    static environ: *const *const c_char;
}

/// Reads every `MANYCORE_MALLOC_*` entry of the environment.
fn read_knobs() -> Result<Knobs, KnobError<'static>> {
    let mut k = Knobs::default();
    // SAFETY: `environ` is the C library's environment array, null-terminated; nothing
    // modifies it during a library's initializer on the main thread.
    let mut e = unsafe { environ };
    if e.is_null() {
        return Ok(k);
    }
    for _ in 0..ENV_ENTRIES_MAX {
        // SAFETY: `e` points into the null-terminated array (we stop at the null entry).
        let s = unsafe { *e };
        if s.is_null() {
            break;
        }
        // SAFETY: every entry is a NUL-terminated string that lives as long as the process
        // (the environment is not freed while we read it).
        let entry = unsafe { core::ffi::CStr::from_ptr(s) }.to_bytes();
        knobs::apply(&mut k, entry)?;
        // SAFETY: the array continues until its null entry.
        e = unsafe { e.add(1) };
    }
    Ok(k)
}

/// Writes what is wrong with the knobs and exits with status 2.
fn reject(err: KnobError<'_>) -> ! {
    let mut l = Line::new();
    match err {
        KnobError::UnknownName { entry } => {
            l.push_bytes(b"manycore-malloc: unknown knob in the environment: ");
            l.push_bytes(entry);
            l.push_bytes(
                b" (known: MANYCORE_MALLOC_STATS, MANYCORE_MALLOC_VERBOSE, \
                  MANYCORE_MALLOC_CACHE_BYTES)",
            );
        }
        KnobError::BadValue {
            name,
            value,
            expected,
        } => {
            l.push_bytes(b"manycore-malloc: ");
            l.push_bytes(name);
            l.push_bytes(b"=\"");
            l.push_bytes(value);
            l.push_bytes(b"\" is not valid: expected ");
            l.push_bytes(expected.as_bytes());
        }
    }
    l.emit();
    // SAFETY: _exit has no preconditions; no destructor runs in a half-initialized process.
    unsafe { libc::_exit(2) }
}

/// The load-time initializer.
pub extern "C" fn on_load() {
    let k = read_knobs().unwrap_or_else(|e| reject(e));
    if let Some(b) = k.cache_bytes {
        SLAB.heap().set_cache_budget_bytes(b);
    }
    STATS_AT_EXIT.store(k.stats, Ordering::Relaxed);
    if k.stats {
        report::keep_stderr();
    }
    // SAFETY: three `extern "C"` functions with no arguments, as pthread_atfork wants.
    let r =
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    if r != 0 {
        report::line(format_args!(
            "manycore-malloc: pthread_atfork failed (error {r}); a child forked while another \
             thread allocates may deadlock"
        ));
    }
    let origin = SLAB.map_origin();
    let cpu = SLAB.cpu_id_source();
    if k.verbose {
        report::line(format_args!(
            "manycore-malloc: loaded ({} build), {} node(s) (map: {origin:?}), current CPU \
             from {cpu:?}, caches {:?}, cache budget {}",
            if cfg!(feature = "checked") {
                "checked"
            } else {
                "plain"
            },
            SLAB.heap().nodes(),
            SLAB.cache_mode(),
            Bytes(SLAB.heap().cache_budget_bytes() as u64),
        ));
    }
}

/// The exit-time report.
pub extern "C" fn on_exit() {
    if !STATS_AT_EXIT.load(Ordering::Relaxed) {
        return;
    }
    SLAB.flush_thread_cache();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    report::line(format_args!(
        "manycore-malloc: statistics at exit of pid {pid} ({} node(s); caches of threads still \
         running are not flushed)",
        SLAB.heap().nodes()
    ));
    for node in 0..SLAB.heap().nodes() {
        let s: NodeStats = SLAB.stats(node);
        report::node_stats(&s);
    }
}

extern "C" fn fork_prepare() {
    SLAB.fork_prepare();
}

extern "C" fn fork_parent() {
    // SAFETY: the prepare handler of this fork took the locks on this thread.
    unsafe { SLAB.fork_release() };
}

extern "C" fn fork_child() {
    // SAFETY: the forking thread (this one, in the child) took the locks before fork(), and
    // is the child's only thread.
    unsafe { SLAB.fork_release_child() };
}

/// Registers `on_load` with the dynamic linker.
#[cfg(not(test))]
#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = on_load;

/// Registers `on_exit` with the dynamic linker.
#[cfg(not(test))]
#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = on_exit;
