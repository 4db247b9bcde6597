//! The chain, behind one object-safe async trait: [`ChainClient`].
//!
//! Behind feature `net` (it needs tokio). Implementations: [`SnapshotChain`], a **simulation** backed by a
//! metagraph snapshot file that records what would have been submitted
//! (the embedded default for offline work and the demo). The subtensor
//! client (subxt) arrives with its issue.

mod snapshot;

use std::net::IpAddr;
use std::time::Duration;

pub use snapshot::{SnapshotChain, Submission};

use crate::{Block, Hotkey, Metagraph, Netuid, Uid};

/// A subnet's hyperparameters that miners and validators act on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hyperparameters {
    /// Blocks per epoch.
    pub tempo: u64,
    /// Blocks a validator must wait between weight settings.
    pub weights_rate_limit: u64,
    /// Whether weights go through commit/reveal.
    pub commit_reveal_enabled: bool,
    /// Least version key weights must carry.
    pub weights_version: u64,
    /// Largest normalized weight, as a u16 fraction of 65535.
    pub max_weight_limit: u16,
}

impl Default for Hyperparameters {
    /// Mainnet-like defaults: tempo 360, rate limit 100, no commit-reveal.
    fn default() -> Hyperparameters {
        Hyperparameters {
            tempo: 360,
            weights_rate_limit: 100,
            commit_reveal_enabled: false,
            weights_version: 0,
            max_weight_limit: u16::MAX,
        }
    }
}

/// Where an extrinsic landed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// Block it was included in.
    pub block: Block,
    /// Extrinsic hash, hex (a simulation's is derived from its content).
    pub extrinsic: String,
}

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The hotkey has no uid on the subnet.
    #[error("hotkey {hotkey} is not registered on netuid {netuid}")]
    NotRegistered {
        /// The hotkey.
        hotkey: Hotkey,
        /// The subnet.
        netuid: Netuid,
    },
    /// No such subnet.
    #[error("netuid {0} does not exist")]
    NoSubnet(Netuid),
    /// Weights were set too recently.
    #[error("weights were set at block {last}; the rate limit allows the next at block {next}")]
    RateLimited {
        /// Last setting.
        last: Block,
        /// Earliest next one.
        next: Block,
    },
    /// The version key is below the subnet's.
    #[error("version key {given} is below the subnet's {required}")]
    VersionTooLow {
        /// Given.
        given: u64,
        /// Required.
        required: u64,
    },
    /// The subnet wants commit/reveal.
    #[error("netuid {0} requires commit/reveal for weights")]
    CommitRevealRequired(Netuid),
    /// Weights that cannot be sent (lengths, duplicates, uids beyond the subnet).
    #[error("bad weights: {0}")]
    BadWeights(String),
    /// Not enough balance for the operation.
    #[error("insufficient balance: {0}")]
    InsufficientBalance(String),
    /// The connection failed or was lost.
    #[error("connection: {0}")]
    Connection(String),
    /// A bounded wait ran out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Reading or writing local state.
    #[error("{0}")]
    Io(String),
}

/// Reads and writes of one subnet's chain state. Object-safe.
#[async_trait::async_trait]
pub trait ChainClient: Send + Sync {
    /// The best block.
    async fn block(&self) -> Result<Block, ChainError>;
    /// Waits (at most `timeout`) until a block after `after` exists.
    async fn wait_for_block(&self, after: Block, timeout: Duration) -> Result<Block, ChainError>;
    /// The subnet's metagraph.
    async fn metagraph(&self, netuid: Netuid) -> Result<Metagraph, ChainError>;
    /// The subnet's hyperparameters.
    async fn hyperparameters(&self, netuid: Netuid) -> Result<Hyperparameters, ChainError>;
    /// The uid of `hotkey` on the subnet, if registered.
    async fn uid_of(&self, netuid: Netuid, hotkey: &Hotkey) -> Result<Option<Uid>, ChainError>;
    /// Announces `hotkey`'s axon; `None` when it is already served there.
    async fn serve_axon(
        &self,
        netuid: Netuid,
        hotkey: &Hotkey,
        ip: IpAddr,
        port: u16,
    ) -> Result<Option<Receipt>, ChainError>;
    /// Sets weights (u16, as `weights::convert_for_emit` makes them).
    async fn set_weights(
        &self,
        netuid: Netuid,
        hotkey: &Hotkey,
        uids: &[Uid],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Receipt, ChainError>;
}
