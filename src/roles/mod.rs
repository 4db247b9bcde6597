//! The miner and validator roles as library code (feature `roles`, on by
//! default).
//!
//! What a validator does each round (sync the metagraph, ask each miner
//! whether it serves this validator now, challenge it with a proof of
//! work, verify, time it) and each epoch (median speed per miner, score,
//! EMA, u16 weights, set or commit/reveal) is written once here, in
//! [`Validator`]; `akihabara validator run`, `akihabara demo` and
//! `akihabara score` call it, and so can an embedder with their own
//! [`Scorer`](crate::score::Scorer) and [`ChainClient`](crate::chain::ChainClient).
//! [`Miner`] is the other side: any [`Prover`](akihabara_gpu::Prover) and
//! [`AllocationStrategy`](crate::AllocationStrategy) behind an axon that
//! answers `ScheduleQuery`, `PowChallenge` and `PowOpen`.
//!
//! `examples/03-validator-custom-scorer.rs` runs a validator with a
//! user-written scorer against a [`SnapshotChain`](crate::chain::SnapshotChain)
//! and two local miners.

mod epoch;
mod jobs;
mod miner;
mod organic;
mod probe;
mod validator;

pub use epoch::{Epoch, score_epoch};
pub use jobs::MinerJobs;
pub use miner::{Miner, MinerBuilder, ScheduleChange};
pub use organic::{OrganicPenalty, OrganicReport, OrganicRun};
pub use probe::{
    AllocationCheck, BenchmarkJob, Check, JobCheck, MAX_GPU_MODEL_LEN, MAX_GPU_MODELS, Probe,
    ProbeReport, ProbeSettings, gpu_claims, public_key_path,
};
pub use validator::{
    Challenger, MAX_ROUND_DEADLINE, Measured, PowSettings, RoundReport, Step, Validator,
    ValidatorBuilder, WeightsReport,
};

use crate::chain::ChainError;
use crate::dendrite::DendriteError;
use crate::score::ScoreError;
use crate::store::StoreError;
use crate::weights::WeightError;

/// Why a role could not take its step. The round goes on for the other
/// miners where one miner fails: those failures are verdicts, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// Reading the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Setting, committing or revealing weights failed.
    #[error("{how} weights: {source}")]
    Weights {
        /// `set`, `commit` or `reveal`.
        how: &'static str,
        /// The chain's error.
        #[source]
        source: ChainError,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Scoring failed (a bad measurement, a scorer's error).
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// Scores that cannot become weights.
    #[error(transparent)]
    Emit(#[from] WeightError),
    /// No seed for a challenge or a probe (the system gave no randomness).
    #[error(transparent)]
    Pow(#[from] akihabara_gpu::PowError),
    /// A file a setting names could not be read.
    #[error("{setting}: {}: {source}", path.display())]
    Read {
        /// Which setting (`probe.allocation.ssh_key`).
        setting: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read (I/O, or larger than allowed).
        #[source]
        source: crate::fs::ReadError,
    },
    /// The dendrite could not be made.
    #[error(transparent)]
    Dendrite(#[from] DendriteError),
    /// No schedule could be made.
    #[error(transparent)]
    Schedule(#[from] crate::ScheduleError),
    /// A bad window.
    #[error(transparent)]
    Window(#[from] crate::WindowError),
    /// The hotkey has no uid on the subnet.
    #[error("hotkey {hotkey} is not registered on netuid {netuid}")]
    NotRegistered {
        /// The hotkey, SS58.
        hotkey: String,
        /// The subnet's netuid.
        netuid: u16,
    },
    /// A builder setting that cannot be used.
    #[error("{setting}: {reason}")]
    Setting {
        /// Which setting (`pow.n`, `chain`, …).
        setting: &'static str,
        /// Why the value cannot be used.
        reason: String,
    },
    /// A background task (a store write, a probe) panicked or was
    /// cancelled before it finished.
    #[error("{what} failed: {source}")]
    Task {
        /// Which task (`a background task`, `the probe task`).
        what: &'static str,
        /// The runtime's account of it.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Runs blocking work (a store read or write) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RoleError> + Send + 'static,
) -> Result<T, RoleError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| RoleError::Task {
            what: "a background task",
            source,
        })?
}

#[cfg(test)]
mod miner_tests;
#[cfg(test)]
mod tests;
