//! Exit codes and one-line error reports.
//!
//! * 0: success.
//! * 1: the work failed (I/O while writing output, a peer failed, …).
//! * 2: bad input: a flag, a file or a value the user gave.
//! * 3: the miner declined (a job or an allocation).
//! * 4: no answer from the miner: unreachable, timed out, or its axon
//!   refused the call.
//! * 5: the miner answered wrongly: a malformed reply, a receipt that is not
//!   its signature, login details that do not open.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// Marks an error as the user's input being wrong (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub anyhow::Error);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for BadInput {}

/// Wraps any error as bad input.
pub fn bad_input(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(BadInput(e.into()))
}

/// The miner declined (exit code 3).
pub const DECLINED: u8 = 3;
/// No answer from the miner (exit code 4).
pub const NO_ANSWER: u8 = 4;
/// A wrong answer from the miner (exit code 5).
pub const BAD_ANSWER: u8 = 5;

/// An error with its own exit code (one of the constants above).
#[derive(Debug)]
pub struct Coded(pub u8, pub anyhow::Error);

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.1)
    }
}

impl std::error::Error for Coded {}

/// Wraps `e` with exit code `code`.
pub fn coded(code: u8, e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Coded(code, e.into()))
}

/// Prints `error: …` on one line and picks the exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    // A reader that went away (`| head`) is not a failure.
    let closed_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if closed_pipe {
        return ExitCode::SUCCESS;
    }
    let line = format!("{e:#}").replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "error: {line}");
    if let Some(Coded(code, _)) = e.chain().find_map(|c| c.downcast_ref::<Coded>()) {
        ExitCode::from(*code)
    } else if e.chain().any(|c| c.is::<BadInput>()) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Help and version go to stdout with 0; usage errors become one line with 2.
pub fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
                .collect();
            let line = parts.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            let _ = writeln!(std::io::stderr(), "error: {line} (see --help)");
            ExitCode::from(2)
        }
    }
}
