//! Programs run at boot, chosen by the first word of the kernel command line (`-append`):
//!
//! - `selftest`: checks SMP, interrupts, memory placement, threads and synchronisation (see
//!   [`selftest`]); prints one `RESULT {json}` line and passes only if every check passes.
//! - `bench`: measures kernel-level switch, yield, wake and allocation costs ([`bench`]).
//! - `topo`: prints the discovered topology as a `RESULT` line and passes.
//! - `trap`: executes `ud2` on purpose, to show how exceptions are reported (fails).
//!
//! An empty or unknown command line is an error naming the programs, not a silent default.

use alloc::string::String;

use crate::exit::ExitCode;
use crate::json::Json;
use crate::{boot, kprintln, report};

pub mod bench;
pub mod selftest;
pub mod selftest_sched;

/// Runs the program named on the command line; returns the exit code.
pub fn run(cmdline: &str) -> ExitCode {
    let mut words = cmdline.split_whitespace();
    match words.next() {
        Some("selftest") => selftest::run(&words.collect::<alloc::vec::Vec<_>>()),
        Some("bench") => bench::run(),
        Some("topo") => {
            let mut j = Json::new();
            j.begin_object();
            j.field_str("program", "topo");
            j.field_bool("pass", true);
            j.key("topology");
            report::topology(&mut j, &boot::machine().topology);
            j.end_object();
            result_line(j.finish());
            ExitCode::Pass
        }
        Some("trap") => {
            // SAFETY: `ud2` raises #UD on purpose; the exception path reports it and fails.
            unsafe { core::arch::asm!("ud2") };
            ExitCode::Fail
        }
        Some(other) => {
            kprintln!(
                "manycore-kernel: unknown program {other:?} on the command line (programs: selftest, bench, topo, trap)"
            );
            ExitCode::Fail
        }
        None => {
            kprintln!(
                "manycore-kernel: no program on the command line (-append \"selftest\", \"bench\", \"topo\" or \"trap\")"
            );
            ExitCode::Fail
        }
    }
}

/// Prints one `RESULT {json}` line.
pub fn result_line(json: String) {
    kprintln!("RESULT {json}");
}
