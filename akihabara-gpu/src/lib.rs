//! # akihabara-gpu
//!
//! The seeded-matrix proof of work: a validator sends a fresh seed, the
//! miner computes `count` exact int8 products `C_j = A_j · B_j` of `n × n`
//! matrices generated from it, commits to every row with a blake3 Merkle
//! tree, and then opens the rows the validator picks. Any CPU can check an
//! opened row bit for bit: it regenerates row `i` of `A_j` and all of `B_j`
//! and multiplies. The full specification, with test vectors, is in
//! [`spec`].
//!
//! ```
//! use akihabara_gpu::{Challenge, CpuProver, Prover, Seed, Timing, Verifier, choose_rows, samples_for};
//! let challenge = Challenge::new(Seed([42; 32]), 64, 1)?;
//! let mut miner = CpuProver::new();
//! let commitment = miner.commit(&challenge)?;          // the miner's answer: a root
//! let rows = choose_rows(&challenge, &commitment.root, &[7; 32], samples_for(0.5, 40));
//! let openings = miner.open(&rows)?;                   // rows + Merkle paths
//! let timing = Timing { elapsed: commitment.elapsed, round_trip: Default::default() };
//! assert!(Verifier::new().verify(&challenge, &commitment.root, &rows, &openings, timing)?.is_valid());
//! # Ok::<(), akihabara_gpu::PowError>(())
//! ```
//!
//! The CUDA prover (feature `cuda`) loads the driver, NVRTC and cuBLAS at
//! run time: it builds on machines without CUDA and reports a typed error
//! there.
#![deny(missing_docs)]
// Denied everywhere but the two modules that need it: `kernel` (AVX2
// intrinsics, behind a run-time CPU check) and `cuda` (the driver API), each
// with a SAFETY note at every use.
#![deny(unsafe_code)]

mod challenge;
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub mod cuda;
mod error;
mod generate;
#[allow(unsafe_code)]
pub mod kernel;
pub mod merkle;
mod proof;
mod prover;
#[cfg(feature = "net")]
pub mod round;
mod skipping;
pub mod synapse;
mod throttled;
mod verify;

#[doc = include_str!("../SPEC.md")]
pub mod spec {}

pub use challenge::{Challenge, MAX_COUNT, MAX_N, PAD, Seed, padded};
pub use error::PowError;
pub use generate::{MATRIX_KEY_CONTEXT, MatrixGen, Side, splitmix64};
pub use proof::{MAX_PROOF_BYTES, PROOF_FORMAT, ProofFile, WireOpening};
pub use prover::{
    Commitment, CpuProver, MAX_PACKED_B_BYTES, MAX_ROWS_BYTES, Opening, Prover, RowRef,
    available_memory, compute_rows,
};
pub use skipping::SkippingProver;
pub use throttled::ThrottledProver;
pub use verify::{
    Failure, MAX_SAMPLES, Timing, Verdict, Verifier, choose_rows, escape_probability, samples_for,
};
