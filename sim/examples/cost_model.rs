//! Prints the default cost model in the file format `--cost-model` reads and
//! `manycore bench --calibrate FILE` is to write:
//! `cargo run -p manycore-sim --example cost_model > sim/cost-models/default.toml`.

fn main() {
    print!("{}", manycore_sim::CostModel::default().to_toml());
}
