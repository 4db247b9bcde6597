//! # akihabara-core
//!
//! Domain types and extension points for running Bittensor compute subnets:
//! quantities and ids as newtypes ([`Rao`], [`Tao`], [`Block`], [`Uid`],
//! [`Netuid`], [`AccountId`]), the [`Metagraph`] and its snapshot file format,
//! the [`AllocationStrategy`] trait with its reference strategies, slot
//! layouts and [`Schedule`]s, and a seeded simulator that compares strategies.
//!
//! ```
//! use akihabara_core::metagraph::snapshot;
//! use akihabara_core::schedule::{Layout, Schedule};
//! use akihabara_core::strategy::{self, AllocationRequest, Eligibility};
//! use akihabara_core::{Block, Window};
//!
//! let mg = snapshot::from_slice(br#"{"netuid": 2, "block": 7300, "neurons": [
//!   {"uid": 0, "hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
//!    "stake_rao": 3000000000000, "validator_permit": true},
//!   {"uid": 1, "hotkey": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
//!    "stake_rao": 1000000000000, "validator_permit": true}]}"#)?;
//! let window = Window::containing(mg.block(), 720)?;
//! let candidates = Eligibility::new().candidates(&mg);
//! let req = AllocationRequest::new(window, 40, candidates)?;
//! let strategy = strategy::by_name("proportional")?;
//! let schedule = Schedule::build(&*strategy, &req, Layout::Contiguous)?;
//! assert_eq!(schedule.validator_at(Block(7300)).map(|s| s.uid.get()), Some(0));
//! # Ok::<(), akihabara_core::Error>(())
//! ```
#![deny(missing_docs)]
// Denied everywhere; `executor::sys` alone allows it (process groups and
// rlimits through libc), with a SAFETY note at each use.
#![deny(unsafe_code)]

pub mod guide {
    #![doc = include_str!("guide/writing-a-strategy.md")]
}
pub mod addr;
#[cfg(feature = "net")]
pub mod axon;
#[cfg(feature = "net")]
pub mod chain;
pub mod clock;
#[cfg(feature = "net")]
pub mod dendrite;
#[cfg(feature = "net")]
pub mod executor;
pub mod fs;
#[cfg(feature = "net")]
pub mod market;
pub mod metagraph;
pub mod protocol;
pub mod schedule;
pub mod score;
pub mod sim;
pub mod store;
pub mod strategy;
pub mod types;
pub mod wallet;
pub mod weights;

pub use metagraph::{Metagraph, MetagraphError, Neuron};
pub use schedule::{Layout, Schedule, Slot};
pub use strategy::{AllocationStrategy, ScheduleError};
pub use types::{
    AccountId, Block, Coldkey, Hotkey, Netuid, RAO_PER_TAO, Rao, SS58_PREFIX, Ss58Error, Tao,
    TaoParseError, Uid, Window, WindowError,
};

/// Any error from this crate: every public error type converts into it
/// (`?` works across modules), and [`Error::Other`] carries a plug-in's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad SS58 address.
    #[error(transparent)]
    Ss58(#[from] Ss58Error),
    /// A bad TAO amount.
    #[error(transparent)]
    Tao(#[from] TaoParseError),
    /// A bad window.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// An invalid metagraph.
    #[error(transparent)]
    Metagraph(#[from] MetagraphError),
    /// A snapshot file that could not be read or parsed.
    #[error(transparent)]
    Snapshot(#[from] metagraph::snapshot::SnapshotError),
    /// No schedule could be made.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A bad layout name.
    #[error(transparent)]
    Layout(#[from] schedule::UnknownLayout),
    /// A wallet operation failed.
    #[error(transparent)]
    Wallet(#[from] wallet::WalletError),
    /// A key could not be made.
    #[error(transparent)]
    Key(#[from] wallet::KeyError),
    /// A simulation could not run.
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    /// A keyfile could not be decrypted.
    #[error(transparent)]
    Decrypt(#[from] wallet::DecryptError),
    /// A keyfile's contents are not a key.
    #[error(transparent)]
    KeyfileFormat(#[from] wallet::KeyfileFormatError),
    /// A password could not be read.
    #[error(transparent)]
    Password(#[from] wallet::PasswordError),
    /// A file could not be read within its size limit.
    #[error(transparent)]
    Read(#[from] fs::ReadError),
    /// Request headers of the axon/dendrite protocol are malformed.
    #[error(transparent)]
    Header(#[from] protocol::HeaderError),
    /// A `btauth/1` request is malformed or not signed by its caller.
    #[error(transparent)]
    BtAuth(#[from] protocol::btauth::BtAuthError),
    /// A nonce is stale, reused or out of bounds.
    #[error(transparent)]
    Nonce(#[from] protocol::NonceError),
    /// A synapse body could not be parsed.
    #[error(transparent)]
    Body(#[from] protocol::BodyError),
    /// A body hash could not be computed.
    #[error(transparent)]
    Hash(#[from] protocol::HashError),
    /// Weights could not be normalized or converted.
    #[error(transparent)]
    Weight(#[from] weights::WeightError),
    /// Scores could not be computed.
    #[error(transparent)]
    Score(#[from] score::ScoreError),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A chain call failed.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Chain(#[from] chain::ChainError),
    /// A timelocked commit could not be sealed or opened.
    #[cfg(feature = "timelock")]
    #[error(transparent)]
    Timelock(#[from] chain::timelock::TimelockError),
    /// The dendrite's HTTP client could not be built.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Dendrite(#[from] dendrite::DendriteError),
    /// A rate limit out of bounds.
    #[cfg(feature = "net")]
    #[error(transparent)]
    RateLimit(#[from] axon::RateLimitError),
    /// A synapse handler failed.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Handler(#[from] axon::HandlerError),
    /// An executor failed to run a job.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Executor(#[from] executor::ExecutorError),
    /// A fleet file is invalid.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Fleet(#[from] executor::FleetError),
    /// The miner's job service refused or failed a request.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Service(#[from] market::server::ServiceError),
    /// A validator's call to a miner's job service failed.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Client(#[from] market::client::ClientError),
    /// A job's input or output file could not be moved.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Volume(#[from] market::volumes::VolumeError),
    /// An error from user code plugged into the library.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps an error from a plug-in.
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Other(e.into())
    }
}

#[cfg(test)]
mod tests {
    /// Compiles only while every public error type converts into [`Error`].
    #[test]
    fn every_public_error_type_converts_into_error() {
        fn into<E: Into<super::Error>>() {}
        into::<crate::Ss58Error>();
        into::<crate::TaoParseError>();
        into::<crate::WindowError>();
        into::<crate::MetagraphError>();
        into::<crate::metagraph::snapshot::SnapshotError>();
        into::<crate::ScheduleError>();
        into::<crate::schedule::UnknownLayout>();
        into::<crate::wallet::WalletError>();
        into::<crate::wallet::KeyError>();
        into::<crate::wallet::DecryptError>();
        into::<crate::wallet::KeyfileFormatError>();
        into::<crate::wallet::PasswordError>();
        into::<crate::sim::SimError>();
        into::<crate::fs::ReadError>();
        into::<crate::protocol::HeaderError>();
        into::<crate::protocol::btauth::BtAuthError>();
        into::<crate::protocol::NonceError>();
        into::<crate::protocol::BodyError>();
        into::<crate::protocol::HashError>();
        into::<crate::weights::WeightError>();
        into::<crate::score::ScoreError>();
        into::<crate::store::StoreError>();
        #[cfg(feature = "timelock")]
        into::<crate::chain::timelock::TimelockError>();
        #[cfg(feature = "net")]
        {
            into::<crate::chain::ChainError>();
            into::<crate::dendrite::DendriteError>();
            into::<crate::axon::RateLimitError>();
            into::<crate::axon::HandlerError>();
            into::<crate::executor::ExecutorError>();
            into::<crate::executor::FleetError>();
            into::<crate::market::server::ServiceError>();
            into::<crate::market::client::ClientError>();
            into::<crate::market::volumes::VolumeError>();
        }
    }
}
