//! Errors of the proof of work.

/// What went wrong making or checking a proof.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PowError {
    /// A challenge parameter is out of range.
    #[error("invalid challenge: {0}")]
    Challenge(String),
    /// A seed is not 64 hex digits.
    #[error("invalid seed: {0}")]
    Seed(String),
    /// The work does not fit in the memory it may use.
    #[error("the challenge needs {needed} bytes but {available} are allowed")]
    Memory {
        /// Bytes the work needs.
        needed: u64,
        /// Bytes it may use.
        available: u64,
    },
    /// An input is larger than its bound (checked before it is read or
    /// allocated for).
    #[error("{what} is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// What was too large (`the proof file`).
        what: &'static str,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// An opening or proof is malformed (wrong sizes, indices out of range).
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The CUDA backend is unavailable or failed.
    #[error("CUDA: {0}")]
    Cuda(String),
    /// A prover setting is out of range.
    #[error("invalid prover setting: {0}")]
    Setting(String),
    /// This build has no such backend.
    #[error("backend `{0}` is not in this build (build with feature `cuda`)")]
    NoBackend(&'static str),
}
