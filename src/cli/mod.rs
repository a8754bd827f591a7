//! Subcommand implementations. Each `run` returns an exit code or an error message for the user.

pub mod bench;
pub mod boot;
pub mod sim;
pub mod source;
pub mod topo;

/// Writes `text` to stdout. A closed pipe (`manycore topo | head`) ends the program quietly with
/// success, as Unix tools do, instead of panicking inside `print!`.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("manycore: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
