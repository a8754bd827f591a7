//! Helpers shared by manycore's integration tests (fixture paths, tool discovery).

use std::path::PathBuf;

/// The directory holding recorded fixtures (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Whether an external tool is required to be present (set by `.ci/run`): a test that needs the
/// tool fails instead of skipping when this returns true.
pub fn tool_required(env_var: &str) -> bool {
    std::env::var(env_var).map(|v| v == "1").unwrap_or(false)
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The workspace's `manycore` binary, next to the running test executable
/// (`target/<profile>/deps/<test>-<hash>` -> `target/<profile>/manycore`).
///
/// `cargo test --workspace` builds it before any test runs; a test run of this package alone
/// (`cargo test -p manycore-tests`) does not, hence the message.
pub fn manycore_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("manycore{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace binary first (`cargo test --workspace` or `cargo build` \
         with the same profile)",
        bin.display()
    );
    bin
}

/// Runs the `manycore` binary with `args` (see [`run_binary`]).
pub fn run_manycore(args: &[&str]) -> (i32, String, String) {
    run_binary(&manycore_binary(), args)
}

/// Runs `bin` with `args`; returns its exit status (-1 when killed by a signal), standard output
/// and standard error, decoded lossily.
pub fn run_binary(bin: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("run the manycore binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
