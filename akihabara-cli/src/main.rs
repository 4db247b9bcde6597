//! The `akihabara` command: thin wrappers around the akihabara libraries.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod config;
mod daemon;
mod exit;
#[cfg(test)]
mod help_snapshots;
mod out;
mod progress;
mod render;

use std::process::ExitCode;

use crate::args::{Cli, Command};

/// mimalloc instead of the system allocator: an axon allocates a few dozen
/// small buffers per call, and with glibc's malloc that was about a tenth of
/// its CPU (`cargo bench --bench axon`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let parsed = args::command()
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return exit::clap_error(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report(&e),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Schedule(a) => commands::schedule::run(a),
        Command::Sim(a) => commands::sim::run(a),
        Command::Wallet(c) => commands::wallet::run(c),
        Command::Axon(c) => commands::axon::serve(c),
        Command::Dendrite(c) => commands::dendrite::run(c),
        Command::Score(a) => commands::score::run(a),
        Command::Weights(c) => commands::weights::run(c),
        Command::Pow(c) => commands::pow::run(c),
        Command::Demo(a) => commands::demo::run(a),
        Command::Metagraph(a) => commands::metagraph::run(a),
        Command::Chain(c) => commands::chain::run(c),
        Command::Executor(c) => commands::executor::run(c),
        Command::Jobs(c) => commands::jobs::run(c),
        Command::Gateway(c) => commands::gateway::run(c),
        Command::Allocate(a) => commands::allocate::run_allocate(a),
        Command::Deallocate(a) => commands::allocate::run_deallocate(a),
        Command::Allocations(a) => commands::allocate::run_allocations(a),
        Command::Miner(daemon::MinerCommand::Run(a)) => daemon::miner::run(a),
        Command::Validator(daemon::ValidatorCommand::Run(a)) => daemon::validator::run(a),
        Command::Config(commands::config::ConfigCommand::Init(a)) => commands::config::init(a),
    }
}
