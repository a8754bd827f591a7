//! manycore-sched: per-core run queues with topology-aware work stealing (filled by issue 3).
#![no_std]
