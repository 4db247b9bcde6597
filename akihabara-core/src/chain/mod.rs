//! The chain, behind one object-safe async trait: [`ChainClient`].
//!
//! Behind feature `net` (it needs tokio). Implementations:
//! - [`Subtensor`] (feature `subtensor`): the real Bittensor runtime through
//!   subxt, by network name (`finney`, `test`, `local`) or URL.
//! - [`SnapshotChain`]: a **simulation** backed by a metagraph snapshot file
//!   that records what would have been submitted (the embedded default for
//!   offline work and the demo).
//!
//! Weights travel as the u16 values [`crate::weights::convert_for_emit`]
//! makes; [`check_weights`] is the shape check both implementations apply
//! before anything is sent.

mod commit;
mod snapshot;
#[cfg(feature = "subtensor")]
mod subtensor;
#[cfg(feature = "timelock")]
pub mod timelock;

use std::net::IpAddr;
use std::time::Duration;

pub use commit::{Reveal, commit_hash};
pub use snapshot::{SnapshotChain, Submission};
#[cfg(feature = "subtensor")]
pub use subtensor::{
    FINNEY_GENESIS, Network, Subtensor, SubtensorOptions, TEST_GENESIS, decode_hyperparams_answer,
    decode_metagraph_answer, requirements, trust,
};
#[cfg(feature = "timelock")]
pub use timelock::{DrandRound, TimelockError};

use crate::wallet::Keypair;
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
        /// The hotkey that has no uid.
        hotkey: Hotkey,
        /// The subnet it was looked up on.
        netuid: Netuid,
    },
    /// No such subnet.
    #[error("netuid {0} does not exist")]
    NoSubnet(Netuid),
    /// Weights were set too recently.
    #[error("weights were set at block {last}; the rate limit allows the next at block {next}")]
    RateLimited {
        /// Block at which this hotkey last set weights.
        last: Block,
        /// First block at which the rate limit lets it set weights again.
        next: Block,
    },
    /// The version key is below the subnet's.
    #[error("version key {given} is below the subnet's {required}")]
    VersionTooLow {
        /// The version key sent with the weights.
        given: u64,
        /// The subnet's `weights_version` hyperparameter, the least it accepts.
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
    #[error("connection: {what}")]
    Connection {
        /// What failed, in words (the node, the step).
        what: String,
        /// The client library's error, where there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A bounded wait ran out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The chain refused the extrinsic for a reason without its own variant
    /// (the runtime's error name and text).
    #[error("the chain rejected the call: {0}")]
    Rejected(String),
    /// The extrinsic was included in a block and a pallet's error failed it
    /// there, by name (`SubtensorModule`, `SettingWeightsTooFast`), for
    /// errors without a variant of their own.
    #[error("the chain rejected the call: {pallet}::{error}")]
    Dispatch {
        /// The pallet, as the runtime's metadata names it.
        pallet: String,
        /// The pallet's error variant.
        error: String,
    },
    /// The runtime lacks a call, storage item or runtime API this client
    /// needs, or it has a shape this client cannot encode or decode.
    #[error("the runtime does not provide {0}")]
    Unsupported(String),
    /// The node's metadata describes something this client will not sign or
    /// decode against: a call whose pallet index, call index or argument
    /// shape differs from every runtime this release knows, or a type that
    /// contains itself or nests too deep (see `chain::trust`).
    #[error("untrusted chain metadata: {0}")]
    UntrustedMetadata(String),
    /// The node is not the network it was reached as: its genesis block
    /// differs from the network's ([`Network::genesis`]). Nothing was signed.
    #[cfg(feature = "subtensor")]
    #[error("the node at {url} is not that network: its genesis block is {found}, not {expected}")]
    WrongChain {
        /// The endpoint.
        url: String,
        /// The network's genesis hash.
        expected: String,
        /// The node's.
        found: String,
    },
    /// The subnet does not use commit/reveal: weights are set directly.
    #[error("netuid {0} does not use commit/reveal: set the weights directly")]
    CommitRevealDisabled(Netuid),
    /// Timelocked weights that cannot be sealed (too large, a past round).
    #[cfg(feature = "timelock")]
    #[error(transparent)]
    Timelock(#[from] timelock::TimelockError),
    /// This chain client does not implement the operation at all (a trait
    /// default): unlike [`ChainError::Unsupported`], which is the runtime
    /// lacking something.
    #[error("{0} is not provided by this chain client")]
    NotProvided(&'static str),
    /// A reveal that matches no commitment.
    #[error("no pending commitment matches this reveal on netuid {0}")]
    NoCommitment(Netuid),
    /// Local state that cannot be used (a simulated chain's lock poisoned by
    /// a panic).
    #[error("{0}")]
    Io(String),
    /// The operating system gave no randomness (for a commit's salt).
    #[error("no system randomness for the salt: {0}")]
    NoRandomness(#[source] getrandom::Error),
    /// A simulated chain's snapshot file could not be read.
    #[error("{source}")]
    Snapshot {
        /// Why, naming the file (its `source` is the I/O or parse error).
        #[source]
        source: crate::metagraph::snapshot::SnapshotError,
    },
    /// A simulated chain could not append a submission to its record file.
    #[error("recording to {}: {source}", path.display())]
    Record {
        /// The record file (`record_to`).
        path: std::path::PathBuf,
        /// The write that failed.
        #[source]
        source: std::io::Error,
    },
    /// A simulated chain's change left an invalid metagraph.
    #[error("{source}")]
    Metagraph {
        /// What is wrong with it.
        #[source]
        source: crate::MetagraphError,
    },
}

impl ChainError {
    /// [`ChainError::Connection`] with no library error behind it.
    pub fn connection(what: impl Into<String>) -> ChainError {
        ChainError::Connection {
            what: what.into(),
            source: None,
        }
    }

    /// This error and its causes in one line, as they would be printed.
    pub fn full_text(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// Checks weights before they are sent: equal lengths, no duplicate uid, every
/// uid below `subnet_size`.
///
/// ```
/// use akihabara_core::chain::check_weights;
/// use akihabara_core::Uid;
/// assert!(check_weights(&[Uid(0), Uid(2)], &[1, 2], 3).is_ok());
/// assert!(check_weights(&[Uid(0), Uid(0)], &[1, 2], 3).is_err());
/// assert!(check_weights(&[Uid(3)], &[1], 3).is_err());
/// ```
pub fn check_weights(uids: &[Uid], weights: &[u16], subnet_size: usize) -> Result<(), ChainError> {
    if uids.len() != weights.len() {
        return Err(ChainError::BadWeights(format!(
            "{} uids but {} weights",
            uids.len(),
            weights.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for u in uids {
        if !seen.insert(*u) {
            return Err(ChainError::BadWeights(format!("uid {u} appears twice")));
        }
        if usize::from(u.0) >= subnet_size {
            return Err(ChainError::BadWeights(format!(
                "uid {u} is beyond the subnet's {subnet_size} neurons"
            )));
        }
    }
    Ok(())
}

/// A subnet mechanism (sub-subnet) id; mechanism 0 is the subnet itself.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MechId(pub u8);

impl std::fmt::Display for MechId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Weights to commit encrypted to a drand round (see [`timelock`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelockWeights {
    /// Destination uids.
    pub uids: Vec<Uid>,
    /// u16 weights, one per uid.
    pub weights: Vec<u16>,
    /// Version key; must not be below the subnet's.
    pub version_key: u64,
    /// The mechanism, on runtimes that have mechanisms; `None` is the subnet
    /// itself through the plain call.
    pub mechid: Option<MechId>,
}

/// Where a timelocked commit landed, and when the chain reveals it.
#[cfg(feature = "timelock")]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TimelockReceipt {
    /// Block and extrinsic the commit landed in.
    pub receipt: Receipt,
    /// The runtime call used (`commit_timelocked_weights`, its mechanism
    /// form, or `commit_crv3_weights`).
    pub call: &'static str,
    /// The drand round the weights are encrypted to.
    pub reveal_round: DrandRound,
    /// The epoch the chain files the commit under.
    pub commit_epoch: u64,
    /// The first block the chain can reveal it in (once the pulse is stored).
    pub reveal_from: Block,
    /// The last block it can: the chain drops it after this one.
    pub reveal_until: Block,
    /// Bytes committed (the ciphertext).
    pub sealed_len: usize,
}

/// What [`ChainClient::sealed_weights`] would commit now, without sending it.
#[cfg(feature = "timelock")]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SealedWeights {
    /// The runtime call it goes through.
    pub call: &'static str,
    /// The block it was computed at.
    pub block: Block,
    /// The drand round the weights are encrypted to.
    pub reveal_round: DrandRound,
    /// The epoch the chain would file it under.
    pub commit_epoch: u64,
    /// First block of the reveal window.
    pub reveal_from: Block,
    /// Last block of the reveal window.
    pub reveal_until: Block,
    /// The ciphertext.
    #[serde(skip)]
    pub sealed: Vec<u8>,
    /// Its length in bytes.
    pub sealed_len: usize,
}

/// One commitment the chain holds for a hotkey, not yet revealed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PendingCommit {
    /// Weights encrypted to a drand round.
    Timelocked {
        /// The epoch it is filed under.
        epoch: u64,
        /// The block it landed in, where the runtime records it.
        commit_block: Option<Block>,
        /// The drand round that opens it.
        reveal_round: u64,
        /// Whether the chain holds that round's pulse yet.
        pulse_stored: bool,
        /// First block it can be revealed in.
        reveal_from: Block,
        /// Last block it can be revealed in; dropped after.
        reveal_until: Block,
        /// Ciphertext bytes.
        bytes: usize,
    },
    /// A hash of weights, to be revealed by the validator.
    Hash {
        /// The commitment, hex.
        hash: String,
        /// The block it landed in.
        commit_block: Block,
        /// First block the reveal is accepted in.
        reveal_from: Block,
        /// Last block the reveal is accepted in.
        reveal_until: Block,
    },
}

/// A hotkey's weights on the chain: what it committed and what is set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommitStatus {
    /// The block read at.
    pub block: Block,
    /// The hotkey's uid.
    pub uid: Uid,
    /// Whether the subnet wants commit/reveal.
    pub commit_reveal_enabled: bool,
    /// Commitments not yet revealed.
    pub pending: Vec<PendingCommit>,
    /// The latest drand round the chain has stored, if it has a drand pallet.
    pub last_stored_round: Option<u64>,
    /// The block the hotkey last set weights in (a reveal counts).
    pub last_update: Block,
    /// The weights the chain holds for the hotkey: (uid, u16 value).
    pub weights: Vec<(u16, u16)>,
}

/// New blocks as they arrive (see [`ChainClient::subscribe_blocks`]).
///
/// Ends (`None`) when the source closes; an error item means the
/// subscription broke and a new one must be made.
#[derive(Debug)]
pub struct BlockStream {
    rx: tokio::sync::mpsc::Receiver<Result<Block, ChainError>>,
}

impl BlockStream {
    /// A stream fed through a channel; the sender side belongs to the
    /// implementation.
    pub fn channel(
        capacity: usize,
    ) -> (
        tokio::sync::mpsc::Sender<Result<Block, ChainError>>,
        BlockStream,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (tx, BlockStream { rx })
    }

    /// The next block, or `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Block, ChainError>> {
        self.rx.recv().await
    }
}

/// Reads and writes of one subnet's chain state. Object-safe: use it as
/// `Box<dyn ChainClient>` or `Arc<dyn ChainClient>`.
///
/// Writes take the signing [`Keypair`]: the hotkey for weights and axons, the
/// coldkey for registration. Every call is bounded in time.
///
/// Six methods are required: the reads a miner and a validator need and
/// [`set_weights`](ChainClient::set_weights). The rest have defaults:
/// [`wait_for_block`](ChainClient::wait_for_block) polls
/// [`block`](ChainClient::block) every
/// [`block_poll_interval`](ChainClient::block_poll_interval), and the other
/// writes answer [`ChainError::NotProvided`], so a read-mostly client (a
/// simulation, an indexer) implements only what it has.
#[async_trait::async_trait]
pub trait ChainClient: Send + Sync {
    /// The best block.
    async fn block(&self) -> Result<Block, ChainError>;
    /// How often the default [`wait_for_block`](ChainClient::wait_for_block)
    /// asks for the block. Default 500 ms.
    fn block_poll_interval(&self) -> Duration {
        Duration::from_millis(500)
    }
    /// Waits (at most `timeout`) until a block after `after` exists. The
    /// default polls [`block`](ChainClient::block).
    async fn wait_for_block(&self, after: Block, timeout: Duration) -> Result<Block, ChainError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let b = tokio::time::timeout_at(deadline, self.block())
                .await
                .map_err(|_| ChainError::Timeout(timeout))??;
            if b > after {
                return Ok(b);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ChainError::Timeout(timeout));
            }
            tokio::time::sleep(self.block_poll_interval().min(deadline - now)).await;
        }
    }
    /// New blocks as they are made.
    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError>;
    /// The subnet's metagraph.
    async fn metagraph(&self, netuid: Netuid) -> Result<Metagraph, ChainError>;
    /// The subnet's hyperparameters.
    async fn hyperparameters(&self, netuid: Netuid) -> Result<Hyperparameters, ChainError>;
    /// The uid of `hotkey` on the subnet, if registered.
    async fn uid_of(&self, netuid: Netuid, hotkey: &Hotkey) -> Result<Option<Uid>, ChainError>;
    /// Announces the signer's axon; `None` when it is already served there.
    /// Default: [`ChainError::NotProvided`].
    async fn serve_axon(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        ip: IpAddr,
        port: u16,
    ) -> Result<Option<Receipt>, ChainError> {
        let _ = (netuid, hotkey, ip, port);
        Err(unsupported("serve_axon"))
    }
    /// Sets weights (u16, as [`crate::weights::convert_for_emit`] makes them).
    /// Fails with [`ChainError::CommitRevealRequired`] where the subnet wants
    /// [`commit_weights`](ChainClient::commit_weights) instead.
    async fn set_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        uids: &[Uid],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Receipt, ChainError>;
    /// Commits the hash of weights to reveal later ([`Reveal::hash`]).
    /// Default: [`ChainError::NotProvided`].
    async fn commit_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        commit: [u8; 32],
    ) -> Result<Receipt, ChainError> {
        let _ = (netuid, hotkey, commit);
        Err(unsupported("commit_weights"))
    }
    /// Reveals weights committed earlier. Default: [`ChainError::NotProvided`].
    async fn reveal_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        reveal: &Reveal,
    ) -> Result<Receipt, ChainError> {
        let _ = (netuid, hotkey, reveal);
        Err(unsupported("reveal_weights"))
    }
    /// Encrypts weights to the drand round the subnet's reveal period points
    /// at (`now`: time since the Unix epoch) and returns what would be
    /// committed, without sending it. Default: [`ChainError::NotProvided`].
    #[cfg(feature = "timelock")]
    async fn sealed_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        weights: &TimelockWeights,
        now: Duration,
    ) -> Result<SealedWeights, ChainError> {
        let _ = (netuid, hotkey, weights, now);
        Err(unsupported("sealed_weights"))
    }
    /// Commits weights encrypted to a future drand round; the chain decrypts
    /// and applies them itself once the round's pulse is stored. `now` is
    /// the time since the Unix epoch (the caller's clock). Default:
    /// [`ChainError::NotProvided`].
    #[cfg(feature = "timelock")]
    async fn commit_timelocked_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        weights: &TimelockWeights,
        now: Duration,
    ) -> Result<TimelockReceipt, ChainError> {
        let _ = (netuid, hotkey, weights, now);
        Err(unsupported("commit_timelocked_weights"))
    }
    /// What the chain holds for `hotkey`'s weights: pending commitments of
    /// either kind and the weights set. Default: [`ChainError::NotProvided`].
    async fn commit_status(
        &self,
        netuid: Netuid,
        hotkey: &Hotkey,
        mechid: Option<MechId>,
    ) -> Result<CommitStatus, ChainError> {
        let _ = (netuid, hotkey, mechid);
        Err(unsupported("commit_status"))
    }
    /// Registers `hotkey` on the subnet by burning the coldkey's TAO.
    /// Default: [`ChainError::NotProvided`].
    async fn burned_register(
        &self,
        netuid: Netuid,
        coldkey: &Keypair,
        hotkey: &Hotkey,
    ) -> Result<Receipt, ChainError> {
        let _ = (netuid, coldkey, hotkey);
        Err(unsupported("burned_register"))
    }
}

fn unsupported(call: &'static str) -> ChainError {
    ChainError::NotProvided(call)
}
