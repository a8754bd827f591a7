//! Architecture-specific code: the context switch. One module per target re-exports the same
//! names (`Context`, `switch`, `switch_preempt`, `init_stack`); x86_64 is the one required
//! target. Other targets get a clear compile error rather than a silent fallback.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{Context, STACK_ALIGN_BYTES, init_stack, switch, switch_preempt};

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "manycore-sched's context switch supports only x86_64 (sched/src/arch/x86_64.rs); port arch/ to add a target"
);
