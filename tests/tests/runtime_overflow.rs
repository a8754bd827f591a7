//! Stack overflow in a task: reported naming the task, never silent corruption. Each case runs
//! in a child process (this test binary re-executed with `MANYCORE_OVERFLOW_CHILD` set), so the
//! test harness survives whatever the overflow does.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use manycore_sched::SpawnHint;
use manycore_sched::rt::{Builder, OverflowAction};

/// Recursion with a 512-byte frame that the optimizer cannot flatten.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = [n; 64];
    std::hint::black_box(&pad);
    if n == 0 {
        0
    } else {
        recurse(n - 1).wrapping_add(std::hint::black_box(pad[3]))
    }
}

/// The child side: runs when the parent re-executes this test with the variable set.
fn child(action: OverflowAction) {
    let rt = Builder::new()
        .stack_bytes(64 * 1024)
        .on_stack_overflow(action)
        .build()
        .expect("runtime");
    let h = rt
        .spawn_with("deep-recursion", SpawnHint::default(), || recurse(1 << 30))
        .expect("spawn");
    let e = h.join().expect_err("the task cannot finish");
    println!("join: {e}");
    // The runtime still serves: a normal task runs on the same workers afterwards, and a
    // second overflow is handled the same way.
    let ok = rt.spawn(|| recurse(100)).join().expect("a shallow task");
    println!("after: {ok}");
    let again = rt
        .spawn_with("second-overflow", SpawnHint::default(), || recurse(1 << 30))
        .expect("spawn")
        .join()
        .expect_err("overflows again");
    println!("join: {again}");
    rt.shutdown();
    println!("clean shutdown");
}

fn run_child(test: &str, action: &str) -> Output {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("MANYCORE_OVERFLOW_CHILD", action)
        .output()
        .expect("re-run the test binary")
}

#[test]
fn stack_overflow_is_reported_and_the_runtime_carries_on() {
    if std::env::var("MANYCORE_OVERFLOW_CHILD").as_deref() == Ok("abandon") {
        return child(OverflowAction::AbandonTask);
    }
    let out = run_child(
        "stack_overflow_is_reported_and_the_runtime_carries_on",
        "abandon",
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("manycore: task 'deep-recursion' overflowed its 65536-byte stack"),
        "stderr names the task: {stderr}"
    );
    assert!(
        stdout.contains(
            "join: task 'deep-recursion' overflowed its 65536-byte stack and was abandoned"
        ),
        "join returns StackOverflow: {stdout}"
    );
    assert!(stdout.contains("after: "), "a later task ran: {stdout}");
    assert!(
        stderr.contains("task 'second-overflow' overflowed"),
        "the second overflow is reported too: {stderr}"
    );
    assert!(stdout.contains("clean shutdown"), "{stdout}");
    assert!(
        out.status.success(),
        "the child exits normally: {:?}",
        out.status
    );
}

#[test]
fn stack_overflow_with_abort_names_the_task_then_aborts() {
    if std::env::var("MANYCORE_OVERFLOW_CHILD").as_deref() == Ok("abort") {
        return child(OverflowAction::Abort);
    }
    let out = run_child(
        "stack_overflow_with_abort_names_the_task_then_aborts",
        "abort",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("manycore: task 'deep-recursion' overflowed its 65536-byte stack")
            && stderr.contains("aborting"),
        "stderr: {stderr}"
    );
    assert_eq!(
        out.status.signal(),
        Some(6),
        "died by SIGABRT: {:?}",
        out.status
    );
}

/// A fault that is not a task's overflow still kills the process the ordinary way (the handler
/// must not swallow it).
#[test]
fn other_faults_keep_their_default_action() {
    if std::env::var("MANYCORE_OVERFLOW_CHILD").as_deref() == Ok("other") {
        let rt = Builder::new().build().expect("runtime"); // installs the handler
        let h = rt.spawn(|| {
            let p = std::hint::black_box(16usize) as *mut u64;
            // SAFETY: deliberately invalid: the test checks that this fault is not mistaken
            // for an overflow.
            unsafe { p.write_volatile(1) };
        });
        let _ = h.join();
        unreachable!("the fault kills the process");
    }
    let out = run_child("other_faults_keep_their_default_action", "other");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("overflowed"),
        "not reported as an overflow: {stderr}"
    );
    assert_eq!(
        out.status.signal(),
        Some(11),
        "died by SIGSEGV: {:?}",
        out.status
    );
}
