//! The `manycore` command line: `topo`, `sim`, `bench`, `boot`.
//!
//! Every subcommand reports bad input as one clear error line on stderr and exits with status 2;
//! a failed check (a benchmark or a kernel self-test) exits with status 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// manycore: scheduler, allocator, topology and simulator for many-core NUMA machines.
#[derive(Parser)]
#[command(name = "manycore", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a machine topology (the host by default) as a tree, JSON, or a CPU's steal order.
    Topo(cli::topo::TopoArgs),
    /// Compare scheduling policies on a simulated machine (`sim sweep` for parallel sweeps).
    Sim(Box<cli::sim::SimArgs>),
    /// Measure switch, yield, wake-to-run and spawn costs against OS threads, corosensei and tokio.
    Bench(Box<cli::bench::BenchArgs>),
    /// Build the unikernel and boot it under QEMU on the machine a topology string describes.
    Boot(Box<cli::boot::BootArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Topo(args) => cli::topo::run(&args),
        Command::Sim(args) => cli::sim::run(&args),
        Command::Boot(args) => cli::boot::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("manycore: {e}");
            ExitCode::from(2)
        }
    }
}
