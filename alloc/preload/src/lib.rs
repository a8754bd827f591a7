//! `libmanycore_malloc.so`: manycore-alloc as a drop-in replacement for the C library's
//! `malloc`, loaded with `LD_PRELOAD`.
//!
//! # What it promises
//! - **glibc's interface and semantics** for `malloc`, `free`, `calloc`, `realloc`,
//!   `reallocarray`, `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`,
//!   `malloc_usable_size`, `cfree` and `malloc_trim` ([`c_api`]): null with
//!   `errno = ENOMEM` on failure, `calloc` and `reallocarray` overflow checked, `free(NULL)`
//!   a no-op, `realloc(p, 0)` frees `p` and returns null (glibc's choice), `posix_memalign`
//!   returns `EINVAL` for an alignment that is not a power of two times `sizeof(void *)`,
//!   `memalign` rounds a non-power-of-two alignment up, `aligned_alloc` rejects one with
//!   `EINVAL` (C17, glibc 2.38). Every block of more than 8 bytes is 16-byte aligned (glibc's
//!   `MALLOC_ALIGNMENT`); blocks of 1 to 8 bytes are 8-byte aligned, like jemalloc's and
//!   mimalloc's.
//! - **No allocation recursion.** Nothing on the allocator's paths allocates through `malloc`,
//!   except C library calls made while a thread creates its cache (`pthread_setspecific` may
//!   `calloc`) and `dlsym` during the one-time rseq probe: manycore-alloc serves those nested
//!   calls from the heap without a cache (`NumaSlab`'s cache-making flag, the rseq probe's
//!   busy state), so they neither recurse nor deadlock. The heap needs no constructor: the first
//!   `malloc` of the process (from the dynamic linker, before this library's initializer runs)
//!   finds the machine with raw system calls and works.
//! - **fork.** A `pthread_atfork` handler takes every lock of the heap before `fork()` and
//!   releases them in the parent and the child, so a child forked while other threads were
//!   inside the allocator can allocate.
//! - **Thread exit** returns the thread's cached blocks to their nodes (manycore-alloc's pthread
//!   key destructor); frees from other threads are sent to the owning node.
//! - **Knobs** ([`knobs`]) are read once at load; a bad value or an unknown `MANYCORE_MALLOC_*`
//!   name stops the program with a message naming it (exit status 2), never a silent default.
//!
//! # What it assumes
//! - Linux with glibc, loaded by `LD_PRELOAD` (its thread-local storage is then in the static
//!   TLS block, so reading it never allocates). `dlopen`-ing it is not supported: blocks from the
//!   previous allocator would reach this `free`.
//! - Alignments up to 2 MiB (manycore-alloc's `ALIGN_MAX_BYTES`); larger ones fail with
//!   `ENOMEM`.
//!
//! # Layout
//! [`c_api`] (the exported functions) -> `NumaSlab` (manycore-alloc) ; [`knobs`] (environment
//! parsing, pure) ; [`report`] (statistics to stderr without allocating) ; [`lifecycle`]
//! (load-time initializer, fork handlers, exit-time report).
#![no_std]

#[cfg(test)]
extern crate std;

pub mod c_api;
pub mod knobs;
pub mod lifecycle;
pub mod report;

use manycore_alloc::NumaSlab;

/// The allocator behind every exported function. A static: threads keep pointers to it until
/// they exit.
pub static SLAB: NumaSlab = NumaSlab::new();
