//! Shared helpers for manycore's criterion benchmarks. The benchmarks themselves live in
//! `benches/benches/*.rs`; run them with `cargo bench -p manycore-benches`.
