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
