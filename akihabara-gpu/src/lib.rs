//! # akihabara-gpu
//!
//! The seeded-matrix proof of work (CPU reference and CUDA prover). This
//! crate is a placeholder until the proof-of-work issue lands: it compiles and
//! exports nothing yet.
#![deny(missing_docs)]
