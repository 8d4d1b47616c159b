//! The `chatprobe` binary: parse the command line, run it
//! ([`chatprobe::cmd::run`]), and map errors to exit codes with
//! `chatprobe::cmd::exit_code` (0 ok, 1 failure, 2 bad input, 130
//! interrupted).

use clap::Parser;

use chatprobe::cmd::cli::Cli;
use chatprobe::cmd::exit_code;
use chatprobe::error::{Interrupted, EXIT_OK};

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let code = match chatprobe::cmd::run(cli) {
        Ok(()) => EXIT_OK,
        // `chatprobe plan | head`: the reader has what it wanted.
        Err(err) if broken_pipe(&err) => EXIT_OK,
        Err(err) => {
            // An interrupted command has said where it stopped.
            if err.downcast_ref::<Interrupted>().is_none() {
                eprintln!("error: {err:#}");
            }
            exit_code(&err)
        }
    };
    std::process::exit(code);
}

/// Whether the error is a write to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|e| {
                matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}

/// `println!` panics when stdout is a closed pipe; that is a reader that
/// stopped reading, not a failure: exit 0 without a word.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(EXIT_OK);
        }
        default(info);
    }));
}
