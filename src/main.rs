//! The `manycore` command line.
fn main() {}
