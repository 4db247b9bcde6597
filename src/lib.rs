//! # akihabara
//!
//! One dependency for embedding akihabara: re-exports [`akihabara_core`] (and
//! `akihabara_gpu` as `gpu` with the `gpu` feature).
//!
//! ```
//! use akihabara::strategy;
//! assert!(strategy::BUILTIN_STRATEGIES.contains(&"proportional"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use akihabara_core::*;

/// The proof-of-work crate.
#[cfg(feature = "gpu")]
pub use akihabara_gpu as gpu;
