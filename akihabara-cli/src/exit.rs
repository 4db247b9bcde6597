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
//! * `executor run`: the job's own code ([`JobExit`]).
//!
//! Every error class the commands meet is mapped here, once: [`chain`],
//! [`wallet`], [`pow`], [`executor`] and [`client`] mark the user's mistakes
//! as [`BadInput`] and the miner's as [`Coded`]; [`report`] turns any error
//! into its line and its code.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use akihabara_core::chain::ChainError;
use akihabara_core::dendrite::AxonTarget;
use akihabara_core::executor::ExecutorError;
use akihabara_core::market::client::ClientError;
use akihabara_core::wallet::WalletError;
use akihabara_gpu::PowError;

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

/// The job's own exit code, passed through as the command's (`executor run`);
/// nothing is printed, the job's output said it.
#[derive(Debug)]
pub struct JobExit(pub u8);

impl fmt::Display for JobExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the job exited with {}", self.0)
    }
}

impl std::error::Error for JobExit {}

/// Chain errors that mean the user's input was wrong are bad input (2).
pub fn chain(e: ChainError) -> anyhow::Error {
    match e {
        ChainError::NotRegistered { .. }
        | ChainError::NoSubnet(_)
        | ChainError::BadWeights(_)
        | ChainError::VersionTooLow { .. }
        | ChainError::CommitRevealRequired(_)
        | ChainError::CommitRevealDisabled(_)
        | ChainError::Timelock(_)
        | ChainError::NoCommitment(_) => bad_input(e),
        other => other.into(),
    }
}

/// Wallet errors: the user's input (names, files, flags, a missing
/// password) is 2; a wrong password and I/O failures are 1.
pub fn wallet(e: WalletError) -> anyhow::Error {
    match e {
        WalletError::WrongPassword { .. } | WalletError::Io { .. } => e.into(),
        _ => bad_input(e),
    }
}

/// Proof-of-work errors: out-of-range parameters are the user's to fix (2);
/// the rest is ours.
pub fn pow(e: PowError) -> anyhow::Error {
    match e {
        PowError::Challenge(_)
        | PowError::Seed(_)
        | PowError::Memory { .. }
        | PowError::TooLarge { .. }
        | PowError::NoBackend(_) => bad_input(e),
        e => anyhow::Error::new(e),
    }
}

/// Executor errors: a job that cannot start as given (a bad command, a
/// missing or refused image) is bad input (2).
pub fn executor(e: ExecutorError) -> anyhow::Error {
    match e {
        ExecutorError::BadJob(_)
        | ExecutorError::Spawn { .. }
        | ExecutorError::ImageNotFound(_)
        | ExecutorError::ImageNotAllowed(_) => bad_input(e),
        other => other.into(),
    }
}

/// A failed call to a miner, naming it: no answer (4), a wrong answer (5),
/// or a local failure to keep the receipt (1).
pub fn client(e: ClientError, target: &AxonTarget) -> anyhow::Error {
    let at = format!("miner {} at {}:{}", target.hotkey, target.ip, target.port);
    match &e {
        ClientError::BadAnswer(_) => coded(BAD_ANSWER, anyhow::Error::new(e).context(at)),
        // The dendrite's "payload error" and "failed to parse response".
        ClientError::Call { status, .. } if *status == 400 || *status == 422 => {
            coded(BAD_ANSWER, anyhow::Error::new(e).context(at))
        }
        ClientError::Call { .. } if e.is_unreachable() => coded(
            NO_ANSWER,
            anyhow::Error::new(e).context(format!("{at} is unreachable")),
        ),
        ClientError::Call { .. } => coded(NO_ANSWER, anyhow::Error::new(e).context(at)),
        _ => anyhow::Error::new(e).context(at),
    }
}

/// What the user sees of `e`: the one line for standard error (none for a
/// closed pipe or a job's own exit code) and the exit code.
pub fn outcome(e: &anyhow::Error) -> (Option<String>, u8) {
    // A reader that went away (`| head`) is not a failure.
    let closed_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if closed_pipe {
        return (None, 0);
    }
    if let Some(JobExit(code)) = e.chain().find_map(|c| c.downcast_ref::<JobExit>()) {
        return (None, *code);
    }
    let line = format!("error: {}", one_line(e));
    let code = if let Some(Coded(code, _)) = e.chain().find_map(|c| c.downcast_ref::<Coded>()) {
        *code
    } else if e.chain().any(|c| c.is::<BadInput>()) {
        2
    } else {
        1
    };
    (Some(line), code)
}

/// The error and its causes on one line, joined by `: `, each said once:
/// a cause whose text is already in the line (an error that names its
/// source in its own message and also keeps it as `source()`, so callers
/// can inspect it) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// Prints `error: …` on one line and picks the exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let (line, code) = outcome(e);
    if let Some(line) = line {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    ExitCode::from(code)
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

#[cfg(test)]
mod tests {
    use akihabara_core::Netuid;

    use super::*;

    #[test]
    fn one_mapping_gives_each_class_its_code() {
        let no_subnet = chain(ChainError::NoSubnet(Netuid(7)));
        let (line, code) = outcome(&no_subnet.context("reading the metagraph"));
        assert_eq!(code, 2);
        let line = line.unwrap_or_default();
        assert!(line.starts_with("error: reading the metagraph: "), "{line}");
        assert_eq!(line.lines().count(), 1);
        assert_eq!(outcome(&pow(PowError::NoBackend("cuda"))).1, 2);
        assert_eq!(
            outcome(&coded(NO_ANSWER, anyhow::anyhow!("no answer"))),
            (Some("error: no answer".to_owned()), NO_ANSWER)
        );
        assert_eq!(outcome(&anyhow::anyhow!("it broke")).1, 1);
        // The job's own code, and nothing printed.
        assert_eq!(outcome(&JobExit(7).into()), (None, 7));
        // A source an error already names in its message is said once.
        #[derive(Debug)]
        struct Named(std::io::Error);
        impl std::fmt::Display for Named {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "reading f: {}", self.0)
            }
        }
        impl std::error::Error for Named {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let named = anyhow::Error::new(Named(std::io::Error::other("gone"))).context("loading");
        assert_eq!(
            outcome(&named),
            (Some("error: loading: reading f: gone".to_owned()), 1)
        );
        // A closed pipe is no failure.
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(
            outcome(&anyhow::Error::new(pipe).context("writing")),
            (None, 0)
        );
    }
}
