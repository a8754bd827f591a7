//! Per-CPU data, reached through the GS base (`gs:[0]` holds a pointer to the CPU's own block).

/// The logical CPU id of the caller, or 0 before per-CPU data is set up (boot and fault paths).
pub fn current_cpu_or_boot() -> usize {
    0
}
