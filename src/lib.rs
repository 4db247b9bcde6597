//! # akihabara
//!
//! One dependency for embedding akihabara: re-exports [`akihabara_core`],
//! `akihabara_gpu` as `gpu` (feature `gpu`), and runs the miner and
//! validator roles ([`roles`], feature `roles`, on by default).
//!
//! ```
//! use akihabara::metagraph::snapshot;
//! use akihabara::schedule::{Layout, Schedule};
//! use akihabara::strategy::{self, AllocationRequest, Eligibility};
//! use akihabara::Window;
//!
//! let mg = snapshot::read("examples/metagraph.json")?;
//! let window = Window::containing(mg.block(), 720)?;
//! let req = AllocationRequest::new(window, 40, Eligibility::new().candidates(&mg))?;
//! let schedule = Schedule::build(&*strategy::by_name("proportional")?, &req, Layout::Interleaved)?;
//! let serving_now = schedule.validator_at(mg.block());
//! assert!(serving_now.is_some());
//! # Ok::<(), akihabara::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use akihabara_core::*;

/// The proof-of-work crate.
#[cfg(feature = "gpu")]
pub use akihabara_gpu as gpu;

#[cfg(feature = "roles")]
pub mod roles;

#[cfg(feature = "gateway")]
pub mod gateway;
