//! One module per command.

pub mod allocate;
pub mod axon;
pub mod chain;
pub mod config;
pub mod demo;
pub mod dendrite;
pub mod executor;
pub mod gateway;
pub mod jobs;
pub mod metagraph;
pub mod miner_target;
pub mod pow;
pub mod schedule;
pub mod score;
pub mod sim;
pub mod wallet;
pub mod weights;

use std::path::Path;

use akihabara_core::Metagraph;
use akihabara_core::metagraph::snapshot;
use anyhow::Context;

/// A one-thread async runtime for commands that wait on the network or on
/// child processes (the chain and executor commands).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Reads a metagraph snapshot from a file, or standard input for `-`.
pub fn read_metagraph(path: &Path) -> anyhow::Result<Metagraph> {
    if path == Path::new("-") {
        Ok(snapshot::from_reader(std::io::stdin().lock())?)
    } else {
        Ok(snapshot::read(path)?)
    }
}

/// Window length from `--window-len` or `--tempo` (default 720).
pub fn window_len(window_len: Option<u64>, tempo: Option<u64>) -> anyhow::Result<u64> {
    let len = match (window_len, tempo) {
        (Some(l), _) => l,
        (None, Some(t)) => t
            .checked_mul(2)
            .with_context(|| format!("--tempo {t} is too large"))?,
        (None, None) => 720,
    };
    if len == 0 {
        anyhow::bail!("the window must be at least 1 block long (--window-len, or 2 x --tempo)");
    }
    Ok(len)
}
