//! The `checked` feature aborts on double and invalid frees with a message naming the pointer.
//! Run with `cargo test -p manycore-alloc --features checked --test checked`.
//!
//! Each case runs in a child process (this test binary again, with `CHECKED_CASE` set), since
//! the expected outcome is an abort.

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

use manycore_alloc::NumaSlab;

static A: NumaSlab = NumaSlab::new();

fn child(case: &str) {
    let l = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: deliberately wrong frees (all arms); the checked heap must abort before any
    // damage.
    unsafe {
        match case {
            "double_free" => {
                let p = A.alloc(l);
                A.dealloc(p, l);
                eprintln!("PTR={p:p}");
                A.dealloc(p, l);
            }
            "double_free_remote_thread" => {
                let p = A.alloc(l) as usize;
                std::thread::spawn(move || A.dealloc(p as *mut u8, l))
                    .join()
                    .unwrap();
                eprintln!("PTR={:p}", p as *mut u8);
                A.dealloc(p as *mut u8, l);
            }
            "foreign_pointer" => {
                let mut local = [0u64; 4];
                let p = local.as_mut_ptr().cast::<u8>();
                eprintln!("PTR={p:p}");
                A.dealloc(p, l);
            }
            "interior_pointer" => {
                let p = A.alloc(l).add(8);
                eprintln!("PTR={p:p}");
                A.dealloc(p, l);
            }
            "large_double_free" => {
                let big = Layout::from_size_align(1 << 20, 8).unwrap();
                let p = A.alloc(big);
                A.dealloc(p, big);
                eprintln!("PTR={p:p}");
                A.dealloc(p, big);
            }
            other => panic!("unknown case {other}"),
        }
    }
    eprintln!("NOT CAUGHT");
    std::process::exit(0);
}

fn run_case(case: &str, expect: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("CHECKED_CASE", case)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{case}: child exited normally: {err}"
    );
    assert!(!err.contains("NOT CAUGHT"), "{case}: not caught: {err}");
    let ptr = err
        .lines()
        .find_map(|l| l.strip_prefix("PTR="))
        .unwrap_or_else(|| panic!("{case}: no pointer printed: {err}"));
    let want = format!("manycore-alloc: {expect} of pointer {ptr}");
    assert!(err.contains(&want), "{case}: expected `{want}` in: {err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "{case}: aborted (SIGABRT)");
    }
}

/// The child side: does nothing unless `CHECKED_CASE` names a case (set only by the parent
/// tests below).
#[test]
fn child_entry() {
    if let Ok(case) = std::env::var("CHECKED_CASE") {
        child(&case);
    }
}

#[test]
fn double_free_aborts_naming_the_pointer() {
    run_case("double_free", "double free");
}

#[test]
fn double_free_after_a_remote_free_is_caught() {
    run_case("double_free_remote_thread", "double free");
}

#[test]
fn foreign_pointer_free_is_invalid() {
    run_case("foreign_pointer", "invalid free (not from a manycore heap)");
}

#[test]
fn interior_pointer_free_is_invalid() {
    run_case(
        "interior_pointer",
        "invalid free (not the start of a block)",
    );
}

#[test]
fn large_double_free_is_caught() {
    // The freed mapping went to the node's segment cache, so the second free finds a segment
    // that is not in use.
    run_case(
        "large_double_free",
        "invalid free (segment not in use: a double free?)",
    );
}
