//! Exit codes and one-line error reports.
//!
//! * 0: success.
//! * 1: the work failed (I/O while writing output, a peer failed, …).
//! * 2: bad input: a flag, a file or a value the user gave.

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
    if e.chain().any(|c| c.is::<BadInput>()) {
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
