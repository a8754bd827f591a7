//! Architecture-specific code: the context switch. One module per target re-exports the same
//! names (`Context`, `switch`, `switch_preempt`, `init_stack`); x86_64 is the one required
//! target. Other targets get a clear compile error rather than a silent fallback.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{
    Context, INIT_TASK_BYTES, STACK_ALIGN_BYTES, SwitchKind, TaskContext, abandon_point, exit,
    init_stack, init_task, resume, suspend, switch, switch_preempt, switch_preempt_xsave,
    switch_task, xsave_area_bytes,
};

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "manycore-sched's context switch supports only x86_64 (sched/src/arch/x86_64.rs); port arch/ to add a target"
);
