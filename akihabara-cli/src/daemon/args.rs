//! The flags of `akihabara miner run` and `akihabara validator run`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::PasswordArgs;

#[derive(Debug, Subcommand)]
pub enum MinerCommand {
    /// Run the miner daemon until SIGINT or SIGTERM
    #[command(after_help = "\
Reads FILE (see `akihabara config init --role miner`), then: loads the
hotkey, connects to the chain (or a snapshot: --set chain.network=snapshot:FILE
runs offline against a simulated chain), finds its uid, publishes its axon
address when it changed, and serves Ping, SpecsQuery, ScheduleQuery and the
proof of work (plus jobs and allocations with [executors] fleet). Every
window it computes its schedule with the configured strategy and stores it;
after a restart it resumes the stored schedule, jobs and allocations.

Standard output: one JSON line {\"event\":\"ready\",...} once serving, one
{\"event\":\"schedule\",...} per window, {\"event\":\"stopped\",...} at the end.
Logs go to standard error (--log-format json for JSON lines; level from
AKIHABARA_LOG, e.g. AKIHABARA_LOG=debug).

Examples:
  akihabara config init --role miner > miner.toml
  akihabara miner run --config miner.toml
  AKIHABARA_CHAIN__NETWORK=local akihabara miner run --config miner.toml --set axon.port=8092")]
    Run(DaemonArgs),
}

#[derive(Debug, Subcommand)]
pub enum ValidatorCommand {
    /// Run the validator daemon until SIGINT or SIGTERM
    #[command(after_help = "\
Reads FILE (see `akihabara config init --role validator`). Every
[validator] round_blocks blocks it syncs the metagraph and challenges the
miners that serve it now with the proof of work, verifying every answer.
Once per tempo, within the weights rate limit, it scores what it measured
(pow scorer + EMA) and sets weights the way the subnet requires: directly;
or, with commit-reveal on, committed timelocked to a drand round (the chain
reveals them; when a window passes without the round's pulse, fresh scores
or the same weights are sent again), or as a hash it reveals itself where
the runtime has no timelocked commits. Scores, measurements and pending
commits are stored, so a restart continues the EMA and keeps a pending
commit instead of sending another. [chain] block_time (default
12s) turns blocks into drand rounds; [weights] mechid picks a mechanism.

Standard output: JSON event lines (ready, round, weights, stopped). Logs go
to standard error.

Examples:
  akihabara config init --role validator > validator.toml
  akihabara validator run --config validator.toml --log-format json")]
    Run(DaemonArgs),
}

/// Flags shared by `miner run` and `validator run`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The TOML configuration file
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override one key (repeatable), after the file and AKIHABARA_<SECTION>__<KEY> variables
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// How a long-running command logs and when it stops by itself (the
/// daemons and `gateway serve`).
#[derive(Debug, Args)]
pub struct RunFlags {
    /// Log format on standard error
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Stop by itself after S seconds (as on SIGTERM)
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}
