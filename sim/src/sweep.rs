//! Parameter sweeps (placeholder replaced below).
