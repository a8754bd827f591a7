//! `libmanycore_malloc.so` under real programs: each runs once on glibc's malloc and once with
//! `LD_PRELOAD=libmanycore_malloc.so`, and the two runs must print the same thing.
//!
//! The library is built here (`cargo build --release -p manycore-preload`, its own target
//! directory under this test's). Every preloaded run sets `MANYCORE_MALLOC_STATS=1` and must
//! print the library's exit report, so a run that silently fell back to glibc fails.
//!
//! Needs `cc` (the C programs in `tests/preload/`), `python3`, `git`, `gcc` and `sort`. A
//! missing tool makes its test print why and return, unless `MANYCORE_REQUIRE_PRELOAD_TOOLS=1`
//! (set by `.ci/run`), which turns it into a failure.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const REQUIRE_VAR: &str = "MANYCORE_REQUIRE_PRELOAD_TOOLS";
/// Upper bound on one program run; a deadlock (say, in a forked child) fails instead of hanging.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// The line the library prints at exit with `MANYCORE_MALLOC_STATS=1`.
const EXIT_REPORT: &str = "manycore-malloc: statistics at exit";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("preload")
}

/// The target directory this test binary was built in (`<target>/<profile>/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Returns false (after printing why) when `test` must skip for lack of `tools`; panics
/// instead when `MANYCORE_REQUIRE_PRELOAD_TOOLS=1`.
fn tools_available(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| manycore_tests::which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} not on PATH (Debian: apt-get install gcc python3 git coreutils)",
        missing.join(", ")
    );
    if manycore_tests::tool_required(REQUIRE_VAR) {
        panic!("{test}: {REQUIRE_VAR}=1 but {why}");
    }
    eprintln!("{test}: skipped: {why} (set {REQUIRE_VAR}=1 to make this a failure)");
    false
}

/// Builds the library (once per process) with `features`, in `<target>/<subdir>`.
fn build_library(features: &[&str], subdir: &str) -> PathBuf {
    let dir = target_dir().join(subdir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "--quiet", "--release", "-p", "manycore-preload"])
        .arg("--target-dir")
        .arg(&dir);
    for f in features {
        cmd.args(["--features", f]);
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p manycore-preload {features:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = dir.join("release/libmanycore_malloc.so");
    assert!(lib.is_file(), "{} missing after the build", lib.display());
    lib
}

fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| build_library(&[], "preload-lib"))
}

fn checked_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let built = build_library(&["checked"], "preload-lib-checked");
        let named = built.with_file_name("libmanycore_malloc_checked.so");
        std::fs::copy(&built, &named).expect("copy the checked library");
        named
    })
}

/// A fresh scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p =
            std::env::temp_dir().join(format!("manycore-preload-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one run printed.
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `cmd` to completion within [`RUN_TIMEOUT`] (killed and failed after it).
fn run(what: &str, cmd: &mut Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {RUN_TIMEOUT:?} (deadlock?); killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
    }
}

/// Runs the command `make()` builds on glibc and under the library; both must succeed and
/// print the same stdout, and the preloaded run must show the library's exit report. Returns
/// the glibc run's stdout.
fn same_output(what: &str, make: impl Fn() -> Command) -> Vec<u8> {
    let glibc = run(&format!("{what} (glibc)"), make().env_remove("LD_PRELOAD"));
    let ours = run(
        &format!("{what} (manycore)"),
        make()
            .env("LD_PRELOAD", library())
            .env("MANYCORE_MALLOC_STATS", "1"),
    );
    assert!(
        glibc.status.success(),
        "{what} failed on glibc ({}): {}",
        glibc.status,
        glibc.stderr
    );
    assert!(
        ours.status.success(),
        "{what} failed under libmanycore_malloc.so ({}): {}",
        ours.status,
        ours.stderr
    );
    assert!(
        ours.stderr.contains(EXIT_REPORT),
        "{what}: no exit report from the preloaded library, so it did not run; stderr: {}",
        ours.stderr
    );
    assert!(
        glibc.stdout == ours.stdout,
        "{what}: output differs\n--- glibc ({} bytes) ---\n{}\n--- manycore ({} bytes) ---\n{}",
        glibc.stdout.len(),
        String::from_utf8_lossy(&glibc.stdout[..glibc.stdout.len().min(2000)]),
        ours.stdout.len(),
        String::from_utf8_lossy(&ours.stdout[..ours.stdout.len().min(2000)]),
    );
    glibc.stdout
}

/// Compiles `tests/preload/<name>.c` with `cc` (not preloaded) into `dir`.
fn compile_c(name: &str, dir: &Path) -> PathBuf {
    let exe = dir.join(name);
    let r = run(
        &format!("cc {name}.c"),
        Command::new("cc")
            .args(["-O2", "-w", "-pthread", "-o"])
            .arg(&exe)
            .arg(sources().join(format!("{name}.c")))
            .arg("-ldl")
            .env_remove("LD_PRELOAD"),
    );
    assert!(r.status.success(), "cc {name}.c failed: {}", r.stderr);
    exe
}

#[test]
fn python_churning_dicts_lists_strings_matches_glibc() {
    if !tools_available("python_churn", &["python3"]) {
        return;
    }
    let out = same_output("python3 churn.py", || {
        let mut c = Command::new("python3");
        c.arg(sources().join("churn.py")).arg("12");
        c
    });
    assert!(String::from_utf8_lossy(&out).starts_with("rounds 12 digest "));
}

#[test]
fn sort_of_a_multi_megabyte_file_matches_glibc() {
    if !tools_available("sort", &["sort"]) {
        return;
    }
    let dir = Scratch::new("sort");
    let file = dir.0.join("lines.txt");
    // 300k pseudo-random lines of 4..40 characters: about 7 MB.
    let mut text = String::new();
    let mut x: u64 = 88172645463325252;
    for _ in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 4 + (x % 37) as usize;
        for k in 0..len {
            text.push((b'a' + ((x >> (k % 58)) % 26) as u8) as char);
        }
        text.push('\n');
    }
    std::fs::write(&file, &text).expect("write input");
    let out = same_output("sort", || {
        let mut c = Command::new("sort");
        c.arg(&file).env("LC_ALL", "C");
        c
    });
    assert_eq!(out.len(), text.len(), "sort lost or added bytes");
    assert!(
        out.strip_suffix(b"\n")
            .unwrap_or(&out)
            .split(|&b| b == b'\n')
            .is_sorted(),
        "sort's output is not in byte order"
    );
}

/// Runs a fixed git session (init, add, commit twice, log, fsck) in `dir`; returns the log.
fn git_session(dir: &Path, preload: bool) -> Vec<u8> {
    for i in 0..200 {
        std::fs::write(
            dir.join(format!("file{i:03}.txt")),
            format!("line {i}\n").repeat(i + 1),
        )
        .expect("write file");
    }
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.current_dir(dir)
            .args(args)
            .env("HOME", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z");
        if preload {
            c.env("LD_PRELOAD", library())
                .env("MANYCORE_MALLOC_STATS", "1");
        } else {
            c.env_remove("LD_PRELOAD");
        }
        let r = run(&format!("git {args:?} (preload {preload})"), &mut c);
        assert!(r.status.success(), "git {args:?}: {}", r.stderr);
        assert_eq!(
            preload,
            r.stderr.contains(EXIT_REPORT),
            "git {args:?}: exit report presence"
        );
        r.stdout
    };
    git(&["init", "-q", "-b", "main", "."]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(dir.join("file007.txt"), "changed\n").expect("write");
    git(&["commit", "-q", "-a", "-m", "second"]);
    git(&["fsck", "--strict"]);
    git(&["log", "--stat", "--format=%H %s"])
}

#[test]
fn git_init_add_commit_log_matches_glibc() {
    if !tools_available("git", &["git"]) {
        return;
    }
    let a = Scratch::new("git-glibc");
    let b = Scratch::new("git-manycore");
    let on_glibc = git_session(&a.0, false);
    let on_manycore = git_session(&b.0, true);
    assert!(!on_glibc.is_empty(), "git log printed nothing");
    assert_eq!(
        String::from_utf8_lossy(&on_glibc),
        String::from_utf8_lossy(&on_manycore),
        "git log differs (same content and dates give the same commit hashes)"
    );
}

#[test]
fn gcc_compiles_the_same_code_and_the_program_runs() {
    if !tools_available("gcc", &["gcc"]) {
        return;
    }
    let src = sources().join("threads.c");
    let asm = same_output("gcc -O2 -S threads.c", || {
        let mut c = Command::new("gcc");
        c.args(["-O2", "-S", "-o", "-"]).arg(&src);
        c
    });
    assert!(String::from_utf8_lossy(&asm).contains("short_lived"));
    let dir = Scratch::new("gcc");
    let exe = dir.0.join("threads-built-under-manycore");
    let built = run(
        "gcc threads.c (manycore)",
        Command::new("gcc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&exe)
            .arg(&src)
            .env("LD_PRELOAD", library()),
    );
    assert!(
        built.status.success(),
        "gcc under preload: {}",
        built.stderr
    );
    let r = run(
        "program built by gcc under manycore",
        Command::new(&exe).args(["2000", "50"]),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("phase 2: 50 short-lived threads") && !text.contains("CORRUPT"),
        "{text}"
    );
}

#[test]
fn cross_thread_frees_and_thousands_of_short_lived_threads_match_glibc() {
    if !tools_available("threads", &["cc"]) {
        return;
    }
    let dir = Scratch::new("threads");
    let exe = compile_c("threads", &dir.0);
    let out = same_output("threads 100000 4000", || {
        let mut c = Command::new(&exe);
        c.args(["100000", "4000"]);
        c
    });
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("4000 short-lived threads"), "{text}");
    assert!(!text.contains("CORRUPT"), "{text}");
}

/// The number after `label` in `text` (as in "small allocs 123").
fn number_after(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    text[at + label.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {text}"))
}

#[test]
fn thread_exit_returns_every_cached_block() {
    if !tools_available("thread_exit", &["cc"]) {
        return;
    }
    let dir = Scratch::new("thread-exit");
    let exe = compile_c("threads", &dir.0);
    // Every block the program allocates is freed before it exits, and every thread but main
    // has exited by then. Caches count their operations privately and publish them when they
    // flush, so a thread whose cache was not flushed at exit would leave its frees (and the
    // blocks it held) unaccounted: allocs would exceed frees by thousands.
    let r = run(
        "threads 20000 3000 (stats)",
        Command::new(&exe)
            .args(["20000", "3000"])
            .env("LD_PRELOAD", library())
            .env("MANYCORE_MALLOC_STATS", "1"),
    );
    assert!(r.status.success(), "{}", r.stderr);
    let node0 = r
        .stderr
        .lines()
        .find(|l| l.contains("manycore-malloc: node 0:"))
        .unwrap_or_else(|| panic!("no node 0 line: {}", r.stderr));
    let allocs = number_after(node0, "small allocs");
    let frees = number_after(node0, "frees");
    assert!(allocs > 100_000, "too few allocations counted: {node0}");
    // A few blocks stay live at exit (stdio's buffers and the like).
    assert!(
        allocs - frees <= 64,
        "{} blocks unaccounted at exit: {node0}",
        allocs - frees
    );
    assert_eq!(
        number_after(node0, "large allocs"),
        number_after(&node0[node0.find("large allocs").unwrap()..], "frees"),
        "large objects leaked: {node0}"
    );
}

#[test]
fn fork_while_threads_allocate_leaves_the_child_usable() {
    if !tools_available("forks", &["cc"]) {
        return;
    }
    let dir = Scratch::new("forks");
    let exe = compile_c("forks", &dir.0);
    let out = same_output("forks 150", || {
        let mut c = Command::new(&exe);
        c.arg("150");
        c
    });
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "forks: 150, children that allocated correctly: 150"
    );
}

#[test]
fn c_semantics_errno_overflow_alignment_usable_size() {
    if !tools_available("semantics", &["cc"]) {
        return;
    }
    let dir = Scratch::new("semantics");
    let exe = compile_c("semantics", &dir.0);
    let r = run(
        "semantics (manycore)",
        Command::new(&exe).env("LD_PRELOAD", library()),
    );
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("malloc provided by") && text.contains("libmanycore_malloc.so"),
        "malloc did not come from the preloaded library:\n{text}"
    );
    assert!(r.status.success(), "semantics failed:\n{text}{}", r.stderr);
    assert!(text.contains(", 0 failed"), "{text}");
}

#[test]
fn checked_build_aborts_on_double_and_invalid_free() {
    if !tools_available("checked", &["cc"]) {
        return;
    }
    let dir = Scratch::new("checked");
    let exe = compile_c("doublefree", &dir.0);
    for (arg, message) in [
        ("double", "double free of pointer"),
        (
            "invalid",
            "invalid free (not from a manycore heap) of pointer",
        ),
    ] {
        let r = run(
            &format!("doublefree {arg} (checked)"),
            Command::new(&exe)
                .arg(arg)
                .env("LD_PRELOAD", checked_library()),
        );
        let out = String::from_utf8_lossy(&r.stdout);
        assert!(!r.status.success(), "{arg}: survived: {out}");
        assert!(!out.contains("survived"), "{arg}: {out}");
        assert!(r.stderr.contains(message), "{arg}: stderr: {}", r.stderr);
        if arg == "double" {
            let ptr = out.trim().trim_start_matches("freeing ");
            assert!(
                r.stderr.contains(ptr),
                "the message does not name the pointer {ptr}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn bad_or_misspelt_knobs_stop_the_program_with_a_message() {
    let Some(true_bin) = manycore_tests::which("true") else {
        assert!(
            !manycore_tests::tool_required(REQUIRE_VAR),
            "{REQUIRE_VAR}=1 but `true` is not on PATH"
        );
        eprintln!("knobs: skipped: `true` is not on PATH");
        return;
    };
    for (var, value, needle) in [
        (
            "MANYCORE_MALLOC_STATS",
            "yes",
            "MANYCORE_MALLOC_STATS=\"yes\" is not valid",
        ),
        (
            "MANYCORE_MALLOC_VERBOSE",
            "2",
            "MANYCORE_MALLOC_VERBOSE=\"2\" is not valid",
        ),
        (
            "MANYCORE_MALLOC_CACHE_BYTES",
            "lots",
            "MANYCORE_MALLOC_CACHE_BYTES=\"lots\"",
        ),
        (
            "MANYCORE_MALLOC_STAT",
            "1",
            "unknown knob in the environment: MANYCORE_MALLOC_STAT=1",
        ),
    ] {
        let r = run(
            &format!("{var}={value}"),
            Command::new(&true_bin)
                .env("LD_PRELOAD", library())
                .env(var, value),
        );
        assert_eq!(r.status.code(), Some(2), "{var}={value}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{var}={value}: {}", r.stderr);
    }
    let r = run(
        "valid knobs",
        Command::new(&true_bin)
            .env("LD_PRELOAD", library())
            .env("MANYCORE_MALLOC_VERBOSE", "1")
            .env("MANYCORE_MALLOC_CACHE_BYTES", "256K")
            .env("MANYCORE_MALLOC_STATS", "1"),
    );
    assert!(r.status.success(), "{}", r.stderr);
    assert!(r.stderr.contains("cache budget 256.0 KiB"), "{}", r.stderr);
    assert!(r.stderr.contains("node 0: pages held"), "{}", r.stderr);
}
