//! manycore-sim: deterministic simulator of manycore-sched on virtual NUMA machines (filled by issue 7).
