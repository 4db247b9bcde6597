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
    /// The operating system gave no randomness for a fresh seed.
    #[error("no system randomness: {0}")]
    NoRandomness(#[source] getrandom::Error),
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
        /// Its size in bytes.
        size: u64,
        /// The most bytes allowed.
        max: u64,
    },
    /// An opening or proof is malformed (wrong sizes, indices out of range).
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The CUDA backend is unavailable here (no driver, no device, a build
    /// without it); a failing CUDA call is [`PowError::CudaCall`].
    #[error("CUDA: {0}")]
    Cuda(String),
    /// A CUDA call failed (the driver, NVRTC or cuBLAS).
    #[error("CUDA: {what}: {source}")]
    CudaCall {
        /// What was being done (`compiling kernels/pow.cu`, `int8 GEMM`).
        what: String,
        /// The library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A prover setting is out of range.
    #[error("invalid prover setting: {0}")]
    Setting(String),
    /// The challenge asks for more work than this miner does for one call.
    #[error(
        "the challenge is {work} multiply-adds (n^3 x count); this miner does at most {max} per challenge"
    )]
    TooMuchWork {
        /// Multiply-adds asked for.
        work: u128,
        /// The most multiply-adds this miner does per challenge.
        max: u128,
    },
    /// The caller went away (or timed out) before the work was done.
    #[error("cancelled: the caller went away")]
    Cancelled,
    /// The same caller already has a challenge or an opening being worked.
    #[error(
        "a challenge or opening from this validator is already being worked; wait for its answer"
    )]
    Busy,
    /// This build has no such backend.
    #[error("backend `{0}` is not in this build (build with feature `cuda`)")]
    NoBackend(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed CUDA call says what was being done and keeps the library's
    /// error as its source.
    #[test]
    fn a_cuda_call_keeps_its_cause() {
        let e = PowError::CudaCall {
            what: "int8 GEMM".into(),
            source: Box::new(std::io::Error::other("CUBLAS_STATUS_NOT_SUPPORTED")),
        };
        assert_eq!(
            e.to_string(),
            "CUDA: int8 GEMM: CUBLAS_STATUS_NOT_SUPPORTED"
        );
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("CUBLAS_STATUS_NOT_SUPPORTED"));
    }
}
