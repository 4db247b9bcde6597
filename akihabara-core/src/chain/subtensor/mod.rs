//! [`Subtensor`]: the [`ChainClient`] on the real Bittensor runtime, through
//! subxt.
//!
//! The client reads the chain's metadata at run time and encodes calls and
//! decodes answers against it (subxt's dynamic API, into typed structs matched
//! by field name). A runtime upgrade that keeps the calls the SDK needs keeps
//! working without a rebuild; one that drops or renames one gives
//! [`ChainError::Unsupported`] naming it ([`requirements`]).
//!
//! It uses subxt's legacy RPC backend (`state_*`, `author_*`), which every
//! subtensor node and Chopsticks serve. Every call is bounded by
//! [`SubtensorOptions::timeout`]; reads that fail because the connection
//! dropped reconnect with exponential backoff and are tried once more.

mod decode;
pub mod requirements;
mod timelocked;
pub mod trust;

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use subxt::PolkadotConfig;
use subxt::backend::LegacyBackend;
use subxt::dynamic;
use subxt::ext::codec::Encode as _;
use subxt::ext::frame_decode::storage::{IntoDecodableValues, IntoEncodableValues};
use subxt::ext::futures::StreamExt as _;
use subxt::ext::scale_decode::DecodeAsType;
use subxt::transactions::TransactionStatus;
use subxt::utils::{AccountId32, MultiSignature};

use self::decode::{AxonInfo, HyperparamsInfo, MetagraphInfo, encode_ip};
use self::requirements::{Need, require};
use super::{
    BlockStream, ChainClient, ChainError, CommitStatus, Hyperparameters, MechId, Receipt, Reveal,
    SealedWeights, TimelockReceipt, TimelockWeights, check_weights,
};
use crate::wallet::Keypair;
use crate::{AccountId, Block, Hotkey, Metagraph, Netuid, Uid};

type Client = subxt::OnlineClient<PolkadotConfig>;
type AtBlock = subxt::client::OnlineClientAtBlock<PolkadotConfig>;
type Rpc = subxt::rpcs::LegacyRpcMethods<subxt::config::RpcConfigFor<PolkadotConfig>>;

/// A connection: the subxt client and the raw RPC methods beside it, with
/// the runtime version the client was configured for.
#[derive(Clone)]
struct Conn {
    client: Client,
    rpc: Rpc,
    spec_version: u32,
    /// Which connection of this client it is (the first is 0).
    generation: u64,
}

/// Which chain to talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// Bittensor mainnet.
    Finney,
    /// The public test network.
    Test,
    /// A node on this machine, `ws://127.0.0.1:9944`.
    Local,
    /// Any `ws://` or `wss://` endpoint.
    Url(String),
}

/// Whether two `ws(s)://` URLs name the same endpoint (case, a trailing `/`
/// and a default port aside).
fn same_endpoint(a: &str, b: &str) -> bool {
    let norm = |u: &str| {
        let u = u.trim_end_matches('/').to_ascii_lowercase();
        match host_port(&u) {
            Some((host, port)) => {
                format!("{}{host}:{port}", &u[..u.find("://").map_or(0, |i| i + 3)])
            }
            None => u,
        }
    };
    norm(a) == norm(b)
}

/// Finney's genesis block hash (hex): what a node must answer to be Finney.
pub const FINNEY_GENESIS: &str = "2f0555cc76fc2840a25a6ea3b9637146806f1f44b090c175ffde2a7e5ab36c03";
/// The public test network's genesis block hash (hex).
pub const TEST_GENESIS: &str = "8f9cf856bf558a14440e75569c9e58594757048d7b3a84b5d25f6bd978263105";

impl Network {
    /// The genesis hash (hex) a node of this network must have, where the
    /// network is known: every signature commits to it, so a node that
    /// answers `finney`'s or `test`'s URL with another chain's genesis is
    /// refused ([`ChainError::WrongChain`]) before anything is signed. So
    /// is a URL that is one of those networks' public endpoints. A local
    /// node or another URL may be any chain.
    ///
    /// ```
    /// use akihabara_core::chain::{Network, FINNEY_GENESIS};
    /// assert_eq!(Network::Finney.genesis(), Some(FINNEY_GENESIS));
    /// let url: Network = "wss://entrypoint-finney.opentensor.ai".parse()?;
    /// assert_eq!(url.genesis(), Some(FINNEY_GENESIS));
    /// assert_eq!(Network::Local.genesis(), None);
    /// # Ok::<(), akihabara_core::chain::ChainError>(())
    /// ```
    pub fn genesis(&self) -> Option<&'static str> {
        match self {
            Network::Finney => Some(FINNEY_GENESIS),
            Network::Test => Some(TEST_GENESIS),
            Network::Local => None,
            Network::Url(u) => [Network::Finney, Network::Test]
                .into_iter()
                .find(|n| same_endpoint(u, n.url()))
                .and_then(|n| n.genesis()),
        }
    }

    /// [`ChainError::WrongChain`] unless a node with genesis `found` may
    /// serve this network ([`Network::genesis`]).
    pub fn check_genesis(&self, found: &[u8]) -> Result<(), ChainError> {
        let found = hex::encode(found);
        match self.genesis() {
            Some(expected) if expected != found => Err(ChainError::WrongChain {
                url: self.url().to_owned(),
                expected: format!("0x{expected}"),
                found: format!("0x{found}"),
            }),
            _ => Ok(()),
        }
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        match self {
            Network::Finney => "wss://entrypoint-finney.opentensor.ai:443",
            Network::Test => "wss://test.finney.opentensor.ai:443",
            Network::Local => "ws://127.0.0.1:9944",
            Network::Url(u) => u,
        }
    }
}

impl FromStr for Network {
    type Err = ChainError;

    /// `finney`, `test`, `local`, or a `ws://`/`wss://` URL.
    ///
    /// ```
    /// use akihabara_core::chain::Network;
    /// assert_eq!("local".parse::<Network>().unwrap().url(), "ws://127.0.0.1:9944");
    /// assert!("ftp://example.com".parse::<Network>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Network, ChainError> {
        match s {
            "finney" => Ok(Network::Finney),
            "test" => Ok(Network::Test),
            "local" => Ok(Network::Local),
            u if (u.starts_with("ws://") || u.starts_with("wss://"))
                && u.len() > "wss://".len() =>
            {
                Ok(Network::Url(u.to_owned()))
            }
            other => Err(ChainError::connection(format!(
                "unknown network {other:?}: use finney, test, local, or a ws:// or wss:// URL"
            ))),
        }
    }
}

/// Time limits and retry policy.
#[derive(Clone, Debug)]
pub struct SubtensorOptions {
    /// Limit for connecting (all attempts together).
    pub connect_timeout: Duration,
    /// Limit for any one read.
    pub timeout: Duration,
    /// Limit for a submitted extrinsic to be included in a block.
    pub inclusion_timeout: Duration,
    /// First pause between reconnection attempts; it doubles, up to 5 s.
    pub backoff: Duration,
    /// Time per block, to turn the blocks until a reveal into a drand round
    /// (12 s on Finney and testnet, as the SDK assumes).
    pub block_time: Duration,
    /// Sign calls whose pallet index, call index or argument shape differ
    /// from every runtime this release knows ([`trust::PINNED_CALLS`]),
    /// with a warning, instead of refusing them. Off by default: the node
    /// could otherwise choose the bytes a key signs.
    pub sign_unpinned_calls: bool,
}

impl Default for SubtensorOptions {
    /// 10 s to connect, 30 s per read, 120 s for inclusion, 250 ms backoff,
    /// 12 s blocks; only pinned calls are signed.
    fn default() -> SubtensorOptions {
        SubtensorOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            inclusion_timeout: Duration::from_secs(120),
            backoff: Duration::from_millis(250),
            block_time: Duration::from_secs(12),
            sign_unpinned_calls: false,
        }
    }
}

/// The subtensor client. Cheap to share behind an `Arc`.
pub struct Subtensor {
    network: Network,
    opts: SubtensorOptions,
    conn: RwLock<Conn>,
    /// Connections older than this generation are stale (a call on one
    /// timed out): the next call connects afresh.
    stale_before: Arc<AtomicU64>,
    /// Held while a new connection is made, so that concurrent callers
    /// wait for one reconnect instead of each making their own.
    reconnecting: tokio::sync::Mutex<()>,
    /// When the runtime version last changed.
    upgrades: UpgradeGuard,
}

/// Runtime upgrades are weeks apart. Each change of the runtime version
/// makes the client download the new metadata (up to 24 MiB) and build a
/// new client: a node whose version changes again within this time is not
/// believed until it has passed.
pub const MIN_UPGRADE_INTERVAL: Duration = Duration::from_secs(60);

/// When the runtime version last changed (see [`MIN_UPGRADE_INTERVAL`]).
#[derive(Debug, Default)]
struct UpgradeGuard {
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl UpgradeGuard {
    /// Whether a change of the runtime version from `from` to `to`, seen at
    /// `now`, may be followed (it is recorded if so).
    fn allow(&self, from: u32, to: u32, now: std::time::Instant) -> Result<(), ChainError> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = *last
            && now.saturating_duration_since(t) < MIN_UPGRADE_INTERVAL
        {
            return Err(ChainError::UntrustedMetadata(format!(
                "the node's runtime version changed from {from} to {to} less than \
                 {MIN_UPGRADE_INTERVAL:?} after its last change: its metadata is not downloaded \
                 again so soon (runtime upgrades are weeks apart)"
            )));
        }
        *last = Some(now);
        Ok(())
    }
}

impl std::fmt::Debug for Subtensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subtensor")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// Signs extrinsics with a wallet key (sr25519).
struct WalletSigner<'a>(&'a Keypair);

impl subxt::transactions::Signer<PolkadotConfig> for WalletSigner<'_> {
    fn account_id(&self) -> AccountId32 {
        AccountId32(*self.0.account().as_bytes())
    }
    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign(payload).0)
    }
}

/// A failed exchange with the node at `url`, keeping subxt's error as the
/// cause.
fn at_node<E: std::error::Error + Send + Sync + 'static>(url: &str, e: E) -> ChainError {
    ChainError::Connection {
        what: url.to_owned(),
        source: Some(Box::new(e)),
    }
}

/// A failed exchange with the node, keeping subxt's error as the cause.
fn connection<E: std::error::Error + Send + Sync + 'static>(e: E) -> ChainError {
    ChainError::Connection {
        what: "talking to the node".to_owned(),
        source: Some(Box::new(e)),
    }
}

/// Whether the node at `url` runs on this machine or a private network
/// (`localhost`, a loopback or private address): a local chain's axons may
/// be private too.
fn node_is_local(url: &str) -> bool {
    host_port(url).is_some_and(|(host, _)| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip| !crate::addr::is_public(ip))
    })
}

/// The metagraph as a node at `url` may tell it. Validators send signed
/// requests to every axon in it, so a node that is not local cannot aim them
/// at loopback, private or link-local addresses (an admin port on this
/// machine, a cloud metadata service): those axons are forgotten, as if
/// not served, with a warning.
fn guard_axons(url: &str, mut metagraph: Metagraph) -> Metagraph {
    if !node_is_local(url) {
        let forgotten = metagraph.retain_axons(|a| crate::addr::is_public(a.ip()));
        if forgotten > 0 {
            tracing::warn!(
                netuid = metagraph.netuid().0,
                forgotten,
                node = url,
                "axons at loopback, private or link-local addresses ignored: a node that is not local does not decide what this machine calls"
            );
        }
    }
    metagraph
}

/// Whether a subxt error means the connection is gone (so a reconnect may
/// help), as opposed to an answer the chain gave.
fn is_disconnect(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "restart",
        "background task",
        "connection",
        "closed",
        "transport",
        "networking",
    ]
    .iter()
    .any(|k| t.contains(k))
}

/// The largest JSON-RPC answer or notification read from a node. The
/// largest we ask for is a whole block (`chain_getBlock`, to find an
/// extrinsic's events): subtensor's blocks are at most 10 MiB, about
/// 20 MiB as hex. Finney's metadata is about 0.6 MiB as hex.
pub const MAX_RPC_RESPONSE: u32 = 24 << 20;
/// The largest JSON-RPC request sent (a signed extrinsic is a few KiB).
pub const MAX_RPC_REQUEST: u32 = 1 << 20;
/// Notifications kept per subscription while the reader is busy (a block
/// subscription gets one every 12 s). subxt asked jsonrpsee for 4,096,
/// which at its 10 MiB answer cap let a node queue 40 GiB. A subscription
/// whose reader falls this far behind is closed by jsonrpsee; the block
/// stream then ends with an error, and the reader subscribes again.
pub const MAX_SUBSCRIPTION_BACKLOG: usize = 64;

/// A WebSocket JSON-RPC client with every limit set here, not left to the
/// library's defaults: answer and request sizes, and the backlog of each
/// subscription. Time is bounded by the callers.
async fn rpc_client(url: &str) -> Result<subxt::rpcs::RpcClient, ChainError> {
    use subxt::ext::jsonrpsee::client_transport::ws::{Url, WsTransportClientBuilder};
    use subxt::ext::jsonrpsee::core::client::Client;
    let parsed = Url::parse(url).map_err(|e| at_node(url, e))?;
    let (sender, receiver) = WsTransportClientBuilder::default()
        .max_response_size(MAX_RPC_RESPONSE)
        // Without a frame cap (soketto's own is 256 MiB), an oversized
        // answer is refused only after its bytes were read and dropped:
        // a node claiming 200 MiB keeps the reader busy until a timeout.
        // With it, the frame's header is enough.
        .max_frame_size(MAX_RPC_RESPONSE)
        .max_request_size(MAX_RPC_REQUEST)
        .build(parsed)
        .await
        .map_err(|e| at_node(url, e))?;
    let client = Client::builder()
        .max_buffer_capacity_per_subscription(MAX_SUBSCRIPTION_BACKLOG)
        .build_with_tokio(sender, receiver);
    Ok(subxt::rpcs::RpcClient::new(client))
}

/// Connects and configures subxt with the chain's current runtime version
/// for every block from the head on. Without it subxt asks the runtime for
/// its version (a WASM call) on every read; with it, a runtime upgrade is
/// noticed by [`Subtensor::fresh`] (one cheap RPC) and the client is rebuilt
/// for the new runtime's metadata.
async fn connect_once(url: &str) -> Result<Conn, ChainError> {
    use subxt::config::Header as _;

    let rpc_client = rpc_client(url).await?;
    let rpc = Rpc::new(rpc_client.clone());
    let version = rpc
        .state_get_runtime_version(None)
        .await
        .map_err(|e| at_node(url, e))?;
    let head = rpc
        .chain_get_finalized_head()
        .await
        .map_err(|e| at_node(url, e))?;
    let from = rpc
        .chain_get_header(Some(head))
        .await
        .map_err(|e| at_node(url, e))?
        .map(|h| h.number())
        .unwrap_or(0);
    let config = PolkadotConfig::builder()
        .use_historic_types(false)
        .set_spec_version_for_block_ranges([subxt::config::substrate::SpecVersionForRange {
            block_range: from..u64::MAX,
            spec_version: version.spec_version,
            transaction_version: version.transaction_version,
        }])
        .build();
    let backend = LegacyBackend::<PolkadotConfig>::builder().build(rpc_client);
    let client = trust::unpanicked("connecting", async {
        Client::from_backend_with_config(config, Arc::new(backend))
            .await
            .map_err(|e| at_node(url, e))
    })
    .await?;
    Ok(Conn {
        client,
        rpc,
        spec_version: version.spec_version,
        generation: 0,
    })
}

impl Subtensor {
    /// Connects with default options.
    pub async fn connect(network: &Network) -> Result<Subtensor, ChainError> {
        Subtensor::connect_with(network, SubtensorOptions::default()).await
    }

    /// Connects, retrying with backoff until `opts.connect_timeout`.
    pub async fn connect_with(
        network: &Network,
        opts: SubtensorOptions,
    ) -> Result<Subtensor, ChainError> {
        let conn = connect_to(network, &opts).await?;
        Ok(Subtensor {
            network: network.clone(),
            opts,
            conn: RwLock::new(conn),
            stale_before: Arc::new(AtomicU64::new(0)),
            reconnecting: tokio::sync::Mutex::new(()),
            upgrades: UpgradeGuard::default(),
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        self.network.url()
    }

    fn conn(&self) -> Conn {
        match self.conn.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces connection `seen` with a new one, unless another caller
    /// already did while this one waited.
    async fn reconnect_from(&self, seen: u64) -> Result<(), ChainError> {
        let _one = self.reconnecting.lock().await;
        if self.conn().generation != seen {
            return Ok(());
        }
        let mut fresh = connect_to(&self.network, &self.opts).await?;
        fresh.generation = seen + 1;
        match self.conn.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Replaces the connection if a call on it timed out.
    async fn replace_if_stale(&self) -> Result<(), ChainError> {
        let seen = self.conn().generation;
        if seen < self.stale_before.load(Ordering::Acquire) {
            self.reconnect_from(seen).await?;
        }
        Ok(())
    }

    /// Marks connection `generation` (and older) stale.
    fn mark_stale(&self, generation: u64) {
        self.stale_before
            .fetch_max(generation + 1, Ordering::AcqRel);
    }

    /// The client, rebuilt first when a call on its connection timed out,
    /// or when the runtime was upgraded since it was configured (its
    /// metadata is then read afresh).
    async fn fresh(&self) -> Result<Client, ChainError> {
        self.replace_if_stale().await?;
        let conn = self.conn();
        let now = conn
            .rpc
            .state_get_runtime_version(None)
            .await
            .map_err(connection)?;
        if now.spec_version != conn.spec_version {
            self.upgrades.allow(
                conn.spec_version,
                now.spec_version,
                std::time::Instant::now(),
            )?;
            self.reconnect_from(conn.generation).await?;
            return Ok(self.conn().client);
        }
        Ok(conn.client)
    }

    /// The client at the current block, once the runtime provides `needs`.
    async fn at_current(&self, needs: &[Need]) -> Result<AtBlock, ChainError> {
        let client = self.fresh().await?;
        let at = trust::unpanicked("the client at the current block", async {
            client.at_current_block().await.map_err(connection)
        })
        .await
        .inspect_err(|e| {
            // The client keeps the metadata it failed on; the next call
            // reads it afresh on a new connection.
            if matches!(e, ChainError::UntrustedMetadata(_)) {
                self.mark_stale(self.conn().generation);
            }
        })?;
        require(at.metadata_ref(), needs)?;
        trust::check(at.metadata_ref(), needs, self.opts.sign_unpinned_calls)?;
        Ok(at)
    }

    /// Runs a read at the current block (after checking `needs`), bounded;
    /// on a dropped connection reconnects and tries once more.
    async fn read<T, F, Fut>(&self, needs: &[Need], op: F) -> Result<T, ChainError>
    where
        F: Fn(AtBlock) -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let attempt = || self.bounded(async { op(self.at_current(needs).await?).await });
        match attempt().await {
            Err(ref e @ ChainError::Connection { .. }) if is_disconnect(&e.full_text()) => {
                // The retry connects afresh first (see `bounded`).
                self.mark_stale(self.conn().generation);
                attempt().await
            }
            other => other,
        }
    }

    /// `fut` within [`SubtensorOptions::timeout`]. On a timeout the
    /// connection is marked stale and the next call connects afresh: a node
    /// that stops in the middle of an answer (a frame that never ends) would
    /// otherwise leave every later call waiting on the same socket.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, ChainError>>,
    ) -> Result<T, ChainError> {
        // A stale connection is replaced before the call's own time starts:
        // connecting (bounded by `connect_timeout`), or waiting for another
        // caller's reconnect, does not eat into it.
        self.replace_if_stale().await?;
        match tokio::time::timeout(self.opts.timeout, fut).await {
            Ok(r) => r,
            Err(_) => {
                // The connection now: the one this call reconnected to at
                // its start, if it did. Where another caller reconnected
                // meanwhile, its new connection is replaced once more: a
                // wasted connect, where blaming the old one could leave a
                // stuck connection in use.
                self.mark_stale(self.conn().generation);
                Err(ChainError::Timeout(self.opts.timeout))
            }
        }
    }

    /// What every write checks first, read at one block: the subnet's size
    /// ([`ChainError::NoSubnet`] if it does not exist) and `who`'s uid
    /// ([`ChainError::NotRegistered`] if it has none).
    async fn preflight(&self, netuid: Netuid, who: &Hotkey) -> Result<(usize, Uid), ChainError> {
        let key = *who.as_bytes();
        self.read(&SUBNET_AND_UID, |at| async move {
            let n = subnet_size_at(&at, netuid).await?;
            Ok((n, registered_uid_at(&at, netuid, key).await?))
        })
        .await
    }

    /// Signs, submits and waits (bounded) for inclusion in a block; maps the
    /// runtime's refusals to typed errors.
    /// `args`: the call's arguments as this release encodes them (SCALE),
    /// which the call data must match ([`trust::check_call_bytes`]).
    async fn submit<CallData>(
        &self,
        need: Need,
        call: &subxt::transactions::DynamicPayload<CallData>,
        args: &[u8],
        signer: &Keypair,
    ) -> Result<Receipt, ChainError>
    where
        subxt::transactions::DynamicPayload<CallData>: subxt::transactions::Payload,
    {
        let at = self.bounded(self.at_current(&[need])).await?;
        trust::check_call_bytes(at.metadata_ref(), call, args, self.opts.sign_unpinned_calls)?;
        let (rpc, generation) = {
            let c = self.conn();
            (c.rpc, c.generation)
        };
        let mut txs = at.transactions();
        let progress = self
            .bounded(async {
                txs.sign_and_submit_then_watch_default(call, &WalletSigner(signer))
                    .await
                    .map_err(|e| refusal(&e.to_string()))
            })
            .await?;
        let ext_hash = progress.extrinsic_hash();
        let extrinsic = format!("0x{}", hex::encode(ext_hash));
        let wait = async move {
            let mut progress = progress;
            loop {
                let status = progress
                    .next()
                    .await
                    .ok_or_else(|| {
                        ChainError::connection("the node closed the transaction's status stream")
                    })?
                    .map_err(connection)?;
                match status {
                    TransactionStatus::InBestBlock(in_block)
                    | TransactionStatus::InFinalizedBlock(in_block) => {
                        // The client at the including block. Its metadata is
                        // read afresh where the node says the runtime there
                        // differs, so it is checked before its events are
                        // decoded (subxt's `wait_for_success` would ask for
                        // the client again, unchecked).
                        let at_tx = trust::unpanicked("the client at the including block", async {
                            in_block.at().await.map_err(connection)
                        })
                        .await?;
                        trust::check_events(at_tx.metadata_ref())?;
                        outcome(&at_tx, &rpc, ext_hash).await?;
                        return Ok(Block(at_tx.block_number()));
                    }
                    TransactionStatus::Error { message }
                    | TransactionStatus::Invalid { message }
                    | TransactionStatus::Dropped { message } => return Err(refusal(&message)),
                    TransactionStatus::Validated
                    | TransactionStatus::Broadcasted
                    | TransactionStatus::NoLongerInBestBlock => {}
                }
            }
        };
        let block = tokio::time::timeout(self.opts.inclusion_timeout, wait)
            .await
            .map_err(|_| {
                // The status stream may be stuck like a read (see `bounded`).
                self.mark_stale(generation);
                ChainError::Timeout(self.opts.inclusion_timeout)
            })??;
        Ok(Receipt { block, extrinsic })
    }
}

/// Whether the extrinsic `ext_hash`, included in the block `at` is at,
/// succeeded: the runtime's `ExtrinsicFailed` for it is a refusal. What
/// cannot be read or decoded (the block, its events, the dispatch error) is
/// a connection error saying so: the extrinsic may well have been included.
async fn outcome(at: &AtBlock, rpc: &Rpc, ext_hash: subxt::utils::H256) -> Result<(), ChainError> {
    use subxt::config::Hasher as _;
    /// A connection error: `what` failed, for the reason `e`.
    fn failed<E: std::error::Error + Send + Sync + 'static>(
        what: &'static str,
    ) -> impl FnOnce(E) -> ChainError {
        move |e| ChainError::Connection {
            what: what.to_owned(),
            source: Some(Box::new(e)),
        }
    }
    let unreadable = |what: &str| {
        ChainError::connection(format!(
            "reading the block that includes the extrinsic: {what}"
        ))
    };
    let block = rpc
        .chain_get_block(Some(at.block_hash()))
        .await
        .map_err(failed("reading the block that includes the extrinsic"))?
        .ok_or_else(|| unreadable("the node does not have it"))?;
    let index = block
        .block
        .extrinsics
        .iter()
        .position(|x| at.hasher().hash(&x.0) == ext_hash)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| unreadable("the extrinsic is not in it"))?;
    let events = at.events().fetch().await.map_err(failed(
        "reading the events of the block that includes the extrinsic",
    ))?;
    for event in events.iter() {
        let event = event.map_err(failed(
            "decoding the events of the block that includes the extrinsic (it may have been \
             included)",
        ))?;
        if event.phase() == subxt::events::Phase::ApplyExtrinsic(index)
            && event.pallet_name() == "System"
            && event.event_name() == "ExtrinsicFailed"
        {
            let error =
                subxt::error::DispatchError::decode_from(event.field_bytes(), at.metadata())
                    .map_err(failed(
                        "decoding why the extrinsic failed (it was included)",
                    ))?;
            return Err(dispatch_refusal(&error));
        }
    }
    Ok(())
}

/// A connection to `network` (retrying as `opts` says) whose node has the
/// network's genesis ([`Network::check_genesis`]): every connection, first
/// or again, is made here.
async fn connect_to(network: &Network, opts: &SubtensorOptions) -> Result<Conn, ChainError> {
    let conn = connect_retrying(network.url(), opts).await?;
    network.check_genesis(conn.client.genesis_hash().as_ref())?;
    Ok(conn)
}

/// The host and port a `ws://` or `wss://` URL names (80 and 443 by default).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (default, rest) = if let Some(r) = url.strip_prefix("ws://") {
        (80, r)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (443, r)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), default)),
    }
}

/// `Err` when, for all of `within`, nothing listens at `url`'s host and
/// port (every connection refused): a node that is not running fails in
/// seconds, not after the whole connect timeout. Anything else (a slow
/// network, a name that does not resolve) is left to the real connection.
async fn refused(url: &str, within: Duration) -> Result<(), String> {
    let Some((host, port)) = host_port(url) else {
        return Ok(());
    };
    let t = std::time::Instant::now();
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        match attempt {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if t.elapsed() >= within {
                    return Err("connection refused".into());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => return Ok(()),
        }
    }
}

async fn connect_retrying(url: &str, opts: &SubtensorOptions) -> Result<Conn, ChainError> {
    let fast = opts.connect_timeout.min(Duration::from_secs(5));
    if let Err(why) = refused(url, fast).await {
        return Err(ChainError::connection(format!(
            "no node at {url} ({why}): start one, or use --network finney"
        )));
    }
    let attempts = async {
        let mut pause = opts.backoff;
        loop {
            match connect_once(url).await {
                Ok(c) => return Ok::<Conn, ChainError>(c),
                // Attempts fail quietly; the final error names the cause.
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    };
    match tokio::time::timeout(opts.connect_timeout, attempts).await {
        Ok(r) => r,
        Err(_) => {
            // One last attempt for the message: it names what went wrong.
            match tokio::time::timeout(Duration::from_secs(2), connect_once(url)).await {
                Ok(Err(e @ ChainError::Connection { .. })) => Err(ChainError::Connection {
                    what: format!("no connection within {:?}", opts.connect_timeout),
                    source: Some(Box::new(e)),
                }),
                _ => Err(ChainError::connection(format!(
                    "no connection to {url} within {:?}",
                    opts.connect_timeout
                ))),
            }
        }
    }
}

/// What [`Subtensor::preflight`] reads.
const SUBNET_AND_UID: [Need; 3] = [
    requirements::NETWORKS_ADDED,
    requirements::SUBNETWORK_N,
    requirements::UIDS,
];

/// The subnet's number of uids, or [`ChainError::NoSubnet`].
async fn subnet_size_at(at: &AtBlock, netuid: Netuid) -> Result<usize, ChainError> {
    if !stored::<_, bool>(at, "NetworksAdded", (netuid.0,))
        .await?
        .unwrap_or(false)
    {
        return Err(ChainError::NoSubnet(netuid));
    }
    let n = stored::<_, u16>(at, "SubnetworkN", (netuid.0,)).await?;
    Ok(usize::from(n.unwrap_or(0)))
}

/// The hotkey's uid, if registered.
async fn uid_at(at: &AtBlock, netuid: Netuid, hotkey: [u8; 32]) -> Result<Option<Uid>, ChainError> {
    let uid = stored::<_, u16>(at, "Uids", (netuid.0, AccountId32(hotkey))).await?;
    Ok(uid.map(Uid))
}

/// The hotkey's uid, or [`ChainError::NotRegistered`].
async fn registered_uid_at(
    at: &AtBlock,
    netuid: Netuid,
    hotkey: [u8; 32],
) -> Result<Uid, ChainError> {
    uid_at(at, netuid, hotkey)
        .await?
        .ok_or(ChainError::NotRegistered {
            hotkey: AccountId::from_bytes(hotkey),
            netuid,
        })
}

/// `SubnetInfoRuntimeApi::<method>(netuid)`, whose `None` means no such
/// subnet ([`ChainError::NoSubnet`]).
async fn subnet_info<T: DecodeAsType>(
    at: &AtBlock,
    method: &'static str,
    netuid: Netuid,
) -> Result<T, ChainError> {
    let call =
        dynamic::runtime_api_call::<_, Option<T>>("SubnetInfoRuntimeApi", method, (netuid.0,));
    at.runtime_apis()
        .call(call)
        .await
        .map_err(|e| api_error(&e.to_string()))?
        .ok_or(ChainError::NoSubnet(netuid))
}

/// Decodes the raw SCALE answer of `SubnetInfoRuntimeApi::<method>` (typed
/// by `metadata`) into `T`, as [`subnet_info`] does after the call: `None`
/// when the runtime answered "no such subnet".
fn decode_answer<T: DecodeAsType>(
    metadata: &subxt::Metadata,
    method: &str,
    mut bytes: &[u8],
) -> Result<Option<T>, ChainError> {
    let ty = metadata
        .runtime_api_trait_by_name("SubnetInfoRuntimeApi")
        .and_then(|api| api.method_by_name(method))
        .map(|m| m.output_ty())
        .ok_or_else(|| {
            ChainError::Unsupported(format!(
                "this runtime has no SubnetInfoRuntimeApi::{method}"
            ))
        })?;
    trust::check_type(
        metadata,
        ty,
        &format!("the answer of SubnetInfoRuntimeApi::{method}"),
    )?;
    Option::<T>::decode_as_type(&mut bytes, ty, metadata.types())
        .map_err(|e| ChainError::Unsupported(format!("{method}: undecodable answer: {e}")))
}

/// A `get_metagraph` answer from its raw SCALE bytes, checked as the client
/// checks it (one entry per uid in every list). For fuzzing the decoder of
/// what a node sends; `Ok(None)` is the runtime's "no such subnet".
pub fn decode_metagraph_answer(
    metadata: &subxt::Metadata,
    bytes: &[u8],
) -> Result<Option<Metagraph>, ChainError> {
    decode_answer::<MetagraphInfo>(metadata, "get_metagraph", bytes)?
        .map(MetagraphInfo::into_metagraph)
        .transpose()
}

/// A `get_subnet_hyperparams` answer from its raw SCALE bytes (see
/// [`decode_metagraph_answer`]).
pub fn decode_hyperparams_answer(
    metadata: &subxt::Metadata,
    bytes: &[u8],
) -> Result<Option<Hyperparameters>, ChainError> {
    Ok(
        decode_answer::<HyperparamsInfo>(metadata, "get_subnet_hyperparams", bytes)?
            .map(Into::into),
    )
}

/// `get_subnet_hyperparams`, or [`ChainError::NoSubnet`].
async fn hyperparameters_at(at: &AtBlock, netuid: Netuid) -> Result<Hyperparameters, ChainError> {
    subnet_info::<HyperparamsInfo>(at, "get_subnet_hyperparams", netuid)
        .await
        .map(Into::into)
}

/// One `SubtensorModule` storage value at `at`; `None` where the chain holds
/// none under `key`.
async fn stored<K, V>(at: &AtBlock, entry: &str, key: K) -> Result<Option<V>, ChainError>
where
    K: IntoEncodableValues + IntoDecodableValues,
    V: DecodeAsType,
{
    stored_in(at, "SubtensorModule", entry, key).await
}

/// One storage value of any pallet at `at`; `None` where none is stored.
/// Its type is checked first ([`trust::check_storage`]).
async fn stored_in<K, V>(
    at: &AtBlock,
    pallet: &str,
    entry: &str,
    key: K,
) -> Result<Option<V>, ChainError>
where
    K: IntoEncodableValues + IntoDecodableValues,
    V: DecodeAsType,
{
    trust::check_storage(at.metadata_ref(), pallet, entry)?;
    let value = at
        .storage()
        .try_fetch(dynamic::storage::<K, V>(pallet, entry), key)
        .await
        .map_err(connection)?;
    value
        .map(|v| {
            v.decode()
                .map_err(|e| ChainError::Unsupported(format!("{pallet}.{entry}: {e}")))
        })
        .transpose()
}

/// Whether a storage value of any pallet is stored under `key` at `at`,
/// without decoding it. (Decoded into a dynamic value, a list's claimed
/// length is reserved before any element is read: a node could make that
/// reservation abort the process.)
async fn is_stored<K>(at: &AtBlock, pallet: &str, entry: &str, key: K) -> Result<bool, ChainError>
where
    K: IntoEncodableValues + IntoDecodableValues,
{
    let value = at
        .storage()
        .try_fetch(
            dynamic::storage::<K, subxt::ext::scale_value::Value>(pallet, entry),
            key,
        )
        .await
        .map_err(connection)?;
    Ok(value.is_some())
}

/// Why an included extrinsic failed, typed. Never a connection error,
/// whatever the error's name says (the Drand pallet has
/// `DrandConnectionFailure`): the extrinsic is in a block, and retrying it as
/// if it were lost would submit it twice.
fn dispatch_refusal(error: &subxt::error::DispatchError) -> ChainError {
    let subxt::error::DispatchError::Module(module) = error else {
        return ChainError::Rejected(error.to_string());
    };
    let Ok(details) = module.details() else {
        return ChainError::Rejected(error.to_string());
    };
    module_refusal(details.pallet.name(), &details.variant.name)
}

/// A pallet's error by name: out of funds, or [`ChainError::Dispatch`].
fn module_refusal(pallet: &str, error: &str) -> ChainError {
    // Subtensor's `NotEnoughBalanceToStake`, `NotEnoughBalanceToPaySwapHotKey`, …
    if error.starts_with("NotEnoughBalance") || error == "BalanceWithdrawalError" {
        return ChainError::InsufficientBalance(format!("{pallet}::{error}"));
    }
    ChainError::Dispatch {
        pallet: pallet.to_owned(),
        error: error.to_owned(),
    }
}

/// Whether `e` is subtensor's error `name`, failing an included extrinsic.
fn is_subtensor_error(e: &ChainError, names: &[&str]) -> bool {
    matches!(e, ChainError::Dispatch { pallet, error }
        if pallet == "SubtensorModule" && names.contains(&error.as_str()))
}

/// Maps the pool's (or the node's) refusal text, before the extrinsic is in
/// a block, to a typed error.
///
/// The transaction extension's refusals arrive as `Custom error: N` (codes
/// of subtensor's `CustomTransactionError`).
fn refusal(text: &str) -> ChainError {
    const NO_FUNDS: &[&str] = &[
        "NotEnoughBalance",
        "Inability to pay some fees",
        "BalanceWithdrawalError",
    ];
    if NO_FUNDS.iter().any(|k| text.contains(k)) {
        return ChainError::InsufficientBalance(text.to_owned());
    }
    if is_disconnect(text) {
        return ChainError::connection(text);
    }
    // The node words it `Custom error: N` or, as JSON, `{"custom":N}`.
    let code = ["Custom error: ", "\"custom\":"].iter().find_map(|marker| {
        text.split(marker)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse::<u8>().ok())
    });
    if let Some(code) = code {
        let what = match code {
            1 => "stake amount too low",
            2 => "balance too low",
            3 => "subnet does not exist",
            4 => "hotkey account does not exist",
            6 => "rate limit exceeded",
            10 => "hotkey not registered on the subnet",
            11 => "invalid IP address (the chain refuses loopback 127.0.0.1 and private ranges)",
            12 => "serving rate limit exceeded",
            13 => "invalid port",
            _ => "refused by subtensor's transaction extension",
        };
        return ChainError::Rejected(format!("{what} (custom error {code}): {text}"));
    }
    ChainError::Rejected(text.to_owned())
}

/// A block subscription on which no finalized block arrives for this long
/// ends with an error, and the reader subscribes again: a node that keeps
/// the socket open but stops sending must not hold a reader forever.
/// Subtensor finalizes a block every 12 s; a longer finality stall on an
/// honest node also ends the stream.
pub const BLOCK_STALL: Duration = Duration::from_secs(300);

/// Passes `blocks` on to `tx` until the first error (passed on, then the
/// end), the reader's going away, the node's ending the subscription (an
/// error: a closed stream is never the normal end of a block subscription),
/// or `stall` without a block (an error).
async fn forward_blocks<S>(
    mut blocks: S,
    tx: tokio::sync::mpsc::Sender<Result<Block, ChainError>>,
    stall: Duration,
    on_stall: impl Fn(),
) where
    S: subxt::ext::futures::Stream<Item = Result<Block, ChainError>> + Unpin,
{
    loop {
        let item = match tokio::time::timeout(stall, blocks.next()).await {
            Ok(Some(item)) => item,
            Ok(None) => Err(ChainError::connection(
                "the node ended the block subscription (closed, or this reader fell behind)",
            )),
            Err(_) => {
                // Its connection may be stuck like a read (see `bounded`).
                on_stall();
                Err(ChainError::connection(format!(
                    "the node sent no block for {stall:?} on a block subscription"
                )))
            }
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            return;
        }
    }
}

#[async_trait::async_trait]
impl ChainClient for Subtensor {
    async fn block(&self) -> Result<Block, ChainError> {
        self.read(&[], |at| async move { Ok(Block(at.block_number())) })
            .await
    }

    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        let blocks = self
            .bounded(async {
                let client = self.fresh().await?;
                trust::unpanicked("the block subscription", async {
                    client.stream_blocks().await.map_err(connection)
                })
                .await
            })
            .await?;
        let (tx, stream) = BlockStream::channel(16);
        let blocks = blocks.map(|next| next.map(|b| Block(b.number())).map_err(connection));
        let (stale, generation) = (self.stale_before.clone(), self.conn().generation);
        tokio::spawn(forward_blocks(blocks, tx, BLOCK_STALL, move || {
            stale.fetch_max(generation + 1, Ordering::AcqRel);
        }));
        Ok(stream)
    }

    async fn metagraph(&self, netuid: Netuid) -> Result<Metagraph, ChainError> {
        let metagraph = self
            .read(&[requirements::GET_METAGRAPH], |at| async move {
                subnet_info::<MetagraphInfo>(&at, "get_metagraph", netuid)
                    .await?
                    .into_metagraph()
            })
            .await?;
        Ok(guard_axons(self.url(), metagraph))
    }

    async fn hyperparameters(&self, netuid: Netuid) -> Result<Hyperparameters, ChainError> {
        self.read(&[requirements::GET_HYPERPARAMS], |at| async move {
            hyperparameters_at(&at, netuid).await
        })
        .await
    }

    async fn uid_of(&self, netuid: Netuid, hotkey: &Hotkey) -> Result<Option<Uid>, ChainError> {
        let key = *hotkey.as_bytes();
        self.read(&[requirements::UIDS], |at| async move {
            uid_at(&at, netuid, key).await
        })
        .await
    }

    async fn serve_axon(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        ip: IpAddr,
        port: u16,
    ) -> Result<Option<Receipt>, ChainError> {
        let key = *hotkey.account().as_bytes();
        let needs = [SUBNET_AND_UID.as_slice(), &[requirements::AXONS]].concat();
        let current = self
            .read(&needs, |at| async move {
                subnet_size_at(&at, netuid).await?;
                registered_uid_at(&at, netuid, key).await?;
                stored::<_, AxonInfo>(&at, "Axons", (netuid.0, AccountId32(key))).await
            })
            .await?;
        let (ip_bits, ip_type) = encode_ip(ip);
        if let Some(current) = current
            && current.ip == ip_bits
            && current.port == port
            && current.ip_type == ip_type
            && current.protocol == AXON_PROTOCOL
        {
            return Ok(None);
        }
        let args = (
            netuid.0,
            axon_version(),
            ip_bits,
            port,
            ip_type,
            AXON_PROTOCOL,
            0u8,
            0u8,
        );
        let call = dynamic::transaction("SubtensorModule", "serve_axon", args);
        self.submit(requirements::SERVE_AXON, &call, &args.encode(), hotkey)
            .await
            .map(Some)
    }

    async fn set_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        uids: &[Uid],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Receipt, ChainError> {
        check_weights(uids, weights, usize::from(u16::MAX) + 1)?;
        let key = *hotkey.account().as_bytes();
        // Everything the checks need, read at one block.
        let needs = [
            SUBNET_AND_UID.as_slice(),
            &[requirements::GET_HYPERPARAMS, requirements::LAST_UPDATE],
        ]
        .concat();
        let (n, hp, now, last) = self
            .read(&needs, |at| async move {
                let n = subnet_size_at(&at, netuid).await?;
                let uid = registered_uid_at(&at, netuid, key).await?;
                let hp = hyperparameters_at(&at, netuid).await?;
                let updates = stored::<_, Vec<u64>>(&at, "LastUpdate", (netuid.0,)).await?;
                let last = updates
                    .unwrap_or_default()
                    .get(usize::from(uid.0))
                    .copied()
                    .unwrap_or(0);
                Ok((n, hp, Block(at.block_number()), Block(last)))
            })
            .await?;
        check_weights(uids, weights, n)?;
        if version_key < hp.weights_version {
            return Err(ChainError::VersionTooLow {
                given: version_key,
                required: hp.weights_version,
            });
        }
        if hp.commit_reveal_enabled {
            return Err(ChainError::CommitRevealRequired(netuid));
        }
        let next = Block(last.0.saturating_add(hp.weights_rate_limit));
        if last.0 > 0 && now < next {
            return Err(ChainError::RateLimited { last, next });
        }
        let dests: Vec<u16> = uids.iter().map(|u| u.0).collect();
        let args = (netuid.0, dests, weights.to_vec(), version_key);
        let encoded = args.encode();
        let call = dynamic::transaction("SubtensorModule", "set_weights", args);
        // The checks above can race another submission: map the runtime's
        // own refusals to the same typed errors.
        self.submit(requirements::SET_WEIGHTS, &call, &encoded, hotkey)
            .await
            .map_err(|e| match e {
                e if is_subtensor_error(&e, &["SettingWeightsTooFast"]) => {
                    ChainError::RateLimited { last, next }
                }
                e if is_subtensor_error(&e, &["IncorrectWeightVersionKey"]) => {
                    ChainError::VersionTooLow {
                        given: version_key,
                        required: hp.weights_version,
                    }
                }
                e if is_subtensor_error(&e, &["CommitRevealEnabled"]) => {
                    ChainError::CommitRevealRequired(netuid)
                }
                other => other,
            })
    }

    async fn commit_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        commit: [u8; 32],
    ) -> Result<Receipt, ChainError> {
        self.preflight(netuid, &hotkey.account()).await?;
        let args = (netuid.0, subxt::utils::H256(commit));
        let call = dynamic::transaction("SubtensorModule", "commit_weights", args);
        self.submit(requirements::COMMIT_WEIGHTS, &call, &args.encode(), hotkey)
            .await
    }

    async fn reveal_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        reveal: &Reveal,
    ) -> Result<Receipt, ChainError> {
        let (n, _) = self.preflight(netuid, &hotkey.account()).await?;
        check_weights(&reveal.uids, &reveal.weights, n)?;
        let uids: Vec<u16> = reveal.uids.iter().map(|u| u.0).collect();
        let args = (
            netuid.0,
            uids,
            reveal.weights.clone(),
            reveal.salt.clone(),
            reveal.version_key,
        );
        let encoded = args.encode();
        let call = dynamic::transaction("SubtensorModule", "reveal_weights", args);
        self.submit(requirements::REVEAL_WEIGHTS, &call, &encoded, hotkey)
            .await
            .map_err(|e| match e {
                e if is_subtensor_error(
                    &e,
                    &["NoWeightsCommitFound", "InvalidRevealCommitHashNotMatch"],
                ) =>
                {
                    ChainError::NoCommitment(netuid)
                }
                other => other,
            })
    }

    async fn sealed_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        weights: &TimelockWeights,
        now: Duration,
    ) -> Result<SealedWeights, ChainError> {
        self.sealed_weights_impl(netuid, hotkey, weights, now).await
    }

    async fn commit_timelocked_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        weights: &TimelockWeights,
        now: Duration,
    ) -> Result<TimelockReceipt, ChainError> {
        self.commit_timelocked_impl(netuid, hotkey, weights, now)
            .await
    }

    async fn commit_status(
        &self,
        netuid: Netuid,
        hotkey: &Hotkey,
        mechid: Option<MechId>,
    ) -> Result<CommitStatus, ChainError> {
        self.commit_status_impl(netuid, hotkey, mechid).await
    }

    async fn burned_register(
        &self,
        netuid: Netuid,
        coldkey: &Keypair,
        hotkey: &Hotkey,
    ) -> Result<Receipt, ChainError> {
        let needs = [requirements::NETWORKS_ADDED, requirements::SUBNETWORK_N];
        self.read(
            &needs,
            |at| async move { subnet_size_at(&at, netuid).await },
        )
        .await?;
        let args = (netuid.0, AccountId32(*hotkey.as_bytes()));
        let call = dynamic::transaction("SubtensorModule", "burned_register", args);
        self.submit(
            requirements::BURNED_REGISTER,
            &call,
            &args.encode(),
            coldkey,
        )
        .await
    }
}

/// `protocol` in `serve_axon`: 4, as the Python SDK sends.
const AXON_PROTOCOL: u8 = 4;

/// The axon version the Python SDK would send for this crate's version:
/// `100 * major + 10 * minor + patch`.
fn axon_version() -> u32 {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    100 * major + 10 * minor + patch
}

/// A runtime API call that failed: a dropped connection or a runtime that
/// cannot answer it in the expected shape.
fn api_error(text: &str) -> ChainError {
    if is_disconnect(text) {
        ChainError::connection(text)
    } else {
        ChainError::Unsupported(format!("the answer in the expected shape: {text}"))
    }
}

/// The runtime metadata `name` from `../shared/chain` (`finney.scale`, the
/// local runtime's): `None`, with a `SKIPPED` line, where it is not readable;
/// a failure under `AKIHABARA_REQUIRE_PEERS`.
#[cfg(test)]
pub(crate) fn shared_metadata(name: &str) -> Option<subxt::Metadata> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/chain")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(subxt::Metadata::decode_from(&bytes).expect("metadata decodes")),
        Err(e) => {
            assert!(
                std::env::var_os("AKIHABARA_REQUIRE_PEERS").is_none(),
                "{} is required under AKIHABARA_REQUIRE_PEERS: {e}",
                path.display()
            );
            // Straight to the terminal: libtest captures `eprintln!`.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {} not readable ({e})",
                path.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next item of `rx`, which must be a connection error: its text.
    async fn next_connection_error(rx: &mut BlockStream) -> String {
        match rx.next().await {
            Some(Err(ChainError::Connection { what, .. })) => what,
            other => panic!("expected a connection error, got {other:?}"),
        }
    }

    /// A node that keeps the subscription open but stops sending ends the
    /// stream with an error after the stall bound; it used to wait forever.
    /// A subscription the node ends is an error too, so the reader
    /// subscribes again; it used to end the stream as if nothing happened.
    #[tokio::test]
    async fn a_silent_or_ended_block_subscription_ends_with_an_error() {
        use subxt::ext::futures::stream;
        let stall = Duration::from_millis(300);
        let started = tokio::time::Instant::now();
        let blocks = stream::iter([Ok(Block(7))]).chain(stream::pending());
        let (tx, mut rx) = BlockStream::channel(4);
        let forward = tokio::spawn(forward_blocks(Box::pin(blocks), tx, stall, || {}));
        assert!(matches!(rx.next().await, Some(Ok(Block(7)))));
        let what = next_connection_error(&mut rx).await;
        assert!(what.contains("no block for 300ms"), "{what}");
        assert!(started.elapsed() >= stall);
        assert!(rx.next().await.is_none(), "the stream ends after the error");
        forward.await.expect("the forwarding task ends");

        let blocks = stream::iter([Ok(Block(8))]);
        let (tx, mut rx) = BlockStream::channel(4);
        let forward = tokio::spawn(forward_blocks(Box::pin(blocks), tx, stall, || {}));
        assert!(matches!(rx.next().await, Some(Ok(Block(8)))));
        let what = next_connection_error(&mut rx).await;
        assert!(what.contains("ended the block subscription"), "{what}");
        assert!(rx.next().await.is_none());
        forward.await.expect("the forwarding task ends");
    }

    /// A node whose answer is larger than [`MAX_RPC_RESPONSE`] is refused
    /// from the frame's header, before the answer is read; with the
    /// library's defaults the client read on, waiting for the 32 MiB. The
    /// fake node speaks just enough WebSocket: the handshake, then one frame
    /// claiming 32 MiB.
    #[tokio::test]
    async fn an_answer_over_the_cap_is_refused_unread() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (url, listener) = fake_node().await;
        let node = tokio::spawn(async move {
            let mut sock = accept_websocket(&listener).await;
            // The first request arrives; answer with a text frame whose
            // header claims 32 MiB, then a little of it.
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let mut frame = vec![0x81, 127];
            frame.extend_from_slice(&(32u64 << 20).to_be_bytes());
            frame.extend_from_slice(br#"{"jsonrpc":"2.0","id":0,"result":""#);
            let _ = sock.write_all(&frame).await;
            // Hold the socket: a client that waits for the rest hangs.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let result = tokio::time::timeout(Duration::from_secs(10), connect_once(&url))
            .await
            .expect("refused at once, not read to the end");
        let Err(e) = result else {
            panic!("a 32 MiB answer was accepted")
        };
        let text = e.full_text();
        assert!(text.contains("too large"), "{text}");
        node.abort();
    }

    /// A node that floods a subscription its reader is not keeping up with:
    /// at most [`MAX_SUBSCRIPTION_BACKLOG`] notifications are kept, then the
    /// subscription ends (subxt's default kept 4,096 of up to 10 MiB each).
    #[tokio::test]
    async fn a_flooded_subscription_keeps_a_bounded_backlog_then_ends() {
        use tokio::io::AsyncWriteExt as _;
        const SENT: usize = 1_000;
        let (url, listener) = fake_node().await;
        let (flooded, flooded_rx) = tokio::sync::oneshot::channel();
        let node = tokio::spawn(async move {
            let mut sock = accept_websocket(&listener).await;
            let request = read_client_frame(&mut sock).await;
            let request: serde_json::Value =
                serde_json::from_slice(&request).expect("a JSON-RPC request");
            assert_eq!(request["method"], "chain_subscribeFinalizedHeads");
            let id = request["id"].clone();
            let mut out = text_frame(
                &serde_json::json!({"jsonrpc": "2.0", "id": id, "result": "flood"}).to_string(),
            );
            for n in 0..SENT {
                out.extend(text_frame(
                    &serde_json::json!({
                        "jsonrpc": "2.0",
                        "method": "chain_finalizedHead",
                        "params": {"subscription": "flood", "result": {"n": n}},
                    })
                    .to_string(),
                ));
            }
            sock.write_all(&out).await.expect("flood");
            let _ = flooded.send(());
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let rpc = rpc_client(&url).await.expect("connects");
        let mut sub = rpc
            .subscribe::<serde_json::Value>(
                "chain_subscribeFinalizedHeads",
                subxt::rpcs::rpc_params![],
                "chain_unsubscribeFinalizedHeads",
            )
            .await
            .expect("subscribed");
        // Read nothing until every notification has been sent and handled.
        flooded_rx.await.expect("the node flooded");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut got = 0;
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(item) = sub.next().await {
                if item.is_ok() {
                    got += 1;
                }
            }
        })
        .await;
        assert!(drained.is_ok(), "the subscription did not end ({got} read)");
        assert!(
            (1..=MAX_SUBSCRIPTION_BACKLOG).contains(&got),
            "{got} of {SENT} notifications were kept"
        );
        node.abort();
    }

    async fn fake_node() -> (String, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        (url, listener)
    }

    /// Accepts one client and answers its WebSocket handshake.
    async fn accept_websocket(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
        use base64::Engine as _;
        use sha1::Digest as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 1];
        // Byte by byte, so nothing after the handshake is consumed here.
        while !request.ends_with(b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.expect("read");
            assert!(n > 0, "the client hung up during the handshake");
            request.push(buf[0]);
        }
        let text = String::from_utf8_lossy(&request);
        let key = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim())
            })
            .expect("a websocket key");
        let accept = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        ));
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        sock.write_all(answer.as_bytes()).await.expect("handshake");
        sock
    }

    /// The payload of one (masked) frame from the client.
    async fn read_client_frame(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt as _;
        let mut head = [0u8; 2];
        sock.read_exact(&mut head).await.expect("frame header");
        let len = match head[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                sock.read_exact(&mut l).await.expect("length");
                usize::from(u16::from_be_bytes(l))
            }
            127 => {
                let mut l = [0u8; 8];
                sock.read_exact(&mut l).await.expect("length");
                usize::try_from(u64::from_be_bytes(l)).expect("a small frame")
            }
            n => usize::from(n),
        };
        let mut mask = [0u8; 4];
        sock.read_exact(&mut mask).await.expect("mask");
        let mut payload = vec![0u8; len];
        sock.read_exact(&mut payload).await.expect("payload");
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        payload
    }

    /// An unmasked text frame, as a server sends it (under 64 KiB).
    fn text_frame(text: &str) -> Vec<u8> {
        let len = u16::try_from(text.len()).expect("under 64 KiB");
        let mut f = vec![0x81];
        if len < 126 {
            f.push(len as u8);
        } else {
            f.push(126);
            f.extend_from_slice(&len.to_be_bytes());
        }
        f.extend_from_slice(text.as_bytes());
        f
    }

    /// A node that is not local cannot aim validators at loopback, private
    /// or link-local addresses through the axons it reports; a local one can
    /// (test chains serve on loopback).
    #[test]
    fn a_remote_node_cannot_aim_validators_at_private_addresses() {
        use crate::{Hotkey, Neuron, Rao, Uid};
        for (url, local) in [
            ("ws://127.0.0.1:9944", true),
            ("ws://localhost:9944", true),
            ("ws://[::1]:9944", true),
            ("ws://10.1.2.3:9944", true),
            ("wss://entrypoint-finney.opentensor.ai:443", false),
            ("wss://node.example", false),
            ("ws://8.8.8.8:9944", false),
        ] {
            assert_eq!(node_is_local(url), local, "{url}");
        }
        let axons = [
            "169.254.169.254:80",
            "127.0.0.1:8091",
            "10.0.0.7:8091",
            "8.8.8.8:8091",
        ];
        let neurons = axons
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let key = Hotkey::from_bytes([i as u8; 32]);
                let mut n = Neuron::new(Uid(i as u16), key, Rao(0), false);
                n.axon = Some(a.parse().expect("addr"));
                n
            })
            .collect();
        let mg = Metagraph::new(Netuid(1), Block(1), neurons).expect("metagraph");
        let served = |m: &Metagraph| -> Vec<String> {
            m.neurons()
                .iter()
                .filter_map(|n| n.axon.map(|a| a.to_string()))
                .collect()
        };
        assert_eq!(
            served(&guard_axons(
                "wss://entrypoint-finney.opentensor.ai:443",
                mg.clone()
            )),
            ["8.8.8.8:8091"]
        );
        assert_eq!(served(&guard_axons("ws://127.0.0.1:9944", mg)), axons);
    }

    #[test]
    fn urls_name_their_host_and_port() {
        let hp = |u: &str| host_port(u);
        assert_eq!(hp("ws://127.0.0.1:9944"), Some(("127.0.0.1".into(), 9944)));
        assert_eq!(
            hp("wss://entrypoint-finney.opentensor.ai:443"),
            Some(("entrypoint-finney.opentensor.ai".into(), 443))
        );
        assert_eq!(
            hp("wss://node.example/path"),
            Some(("node.example".into(), 443))
        );
        assert_eq!(hp("ws://node"), Some(("node".into(), 80)));
        assert_eq!(hp("ws://[::1]:9944/x"), Some(("::1".into(), 9944)));
        assert_eq!(hp("ws://u:p@host:1"), Some(("host".into(), 1)));
        assert_eq!(hp("http://x"), None);
        assert_eq!(hp("ws://host:notaport"), None);
    }

    /// Issue 24: nothing listening fails fast, and says what to do.
    #[tokio::test]
    async fn a_node_that_is_not_running_is_named_and_what_to_do() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("ws://127.0.0.1:{port}");
        let opts = SubtensorOptions {
            connect_timeout: Duration::from_secs(1),
            ..SubtensorOptions::default()
        };
        let e = connect_retrying(&url, &opts).await.err().expect("no node");
        assert_eq!(
            e.to_string(),
            format!(
                "connection: no node at {url} (connection refused): start one, or use --network finney"
            )
        );
    }

    /// The raw-answer decoders on the runtime's own types: "no subnet",
    /// an empty metagraph, and bytes that are not an answer.
    #[test]
    fn runtime_answers_decode_or_fail_typed() {
        let Some(md) = shared_metadata("subtensor-local-spec293.scale") else {
            return;
        };
        assert!(matches!(decode_metagraph_answer(&md, &[0]), Ok(None)));
        assert!(matches!(decode_hyperparams_answer(&md, &[0]), Ok(None)));
        assert!(matches!(
            decode_metagraph_answer(&md, &[1, 0xff]),
            Err(ChainError::Unsupported(_))
        ));
        assert!(matches!(
            decode_metagraph_answer(&md, &[]),
            Err(ChainError::Unsupported(_))
        ));
    }

    #[test]
    fn networks_parse() {
        assert_eq!(
            "finney".parse::<Network>().expect("finney"),
            Network::Finney
        );
        assert_eq!(
            "test".parse::<Network>().expect("test").url(),
            "wss://test.finney.opentensor.ai:443"
        );
        assert_eq!(
            "ws://127.0.0.1:9955".parse::<Network>().expect("url"),
            Network::Url("ws://127.0.0.1:9955".into())
        );
        for bad in ["", "mainnet", "http://x", "ws://"] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?}");
        }
    }

    /// A node whose runtime version keeps changing does not make the client
    /// download its metadata on every call.
    #[test]
    fn runtime_upgrades_closer_than_a_minute_are_not_followed() {
        let guard = UpgradeGuard::default();
        let t0 = std::time::Instant::now();
        guard.allow(293, 294, t0).expect("the first upgrade");
        let err = guard
            .allow(294, 295, t0 + Duration::from_secs(5))
            .expect_err("5 s later");
        assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("changed from 294 to 295 less than 60s"),
            "{err}"
        );
        guard
            .allow(294, 295, t0 + MIN_UPGRADE_INTERVAL)
            .expect("a minute later");
    }

    /// A node reached as `finney` or `test` must have that network's
    /// genesis: every signature commits to the genesis hash, so a node
    /// answering with another chain's would collect signatures valid there.
    #[test]
    fn a_node_must_be_the_network_it_was_reached_as() {
        let finney = hex::decode(FINNEY_GENESIS).expect("hex");
        let test = hex::decode(TEST_GENESIS).expect("hex");
        Network::Finney
            .check_genesis(&finney)
            .expect("finney is finney");
        Network::Test.check_genesis(&test).expect("test is test");
        let err = Network::Test
            .check_genesis(&finney)
            .expect_err("finney answering as test");
        assert!(matches!(err, ChainError::WrongChain { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "the node at wss://test.finney.opentensor.ai:443 is not that network: its \
                 genesis block is 0x{FINNEY_GENESIS}, not 0x{TEST_GENESIS}"
            )
        );
        assert!(Network::Finney.check_genesis(&[0u8; 32]).is_err());
        // The public endpoints given as URLs are those networks.
        for url in [
            "wss://test.finney.opentensor.ai:443",
            "wss://TEST.finney.opentensor.ai/",
        ] {
            let n: Network = url.parse().expect("url");
            assert!(n.check_genesis(&finney).is_err(), "{url}");
            n.check_genesis(&test).expect(url);
        }
        // A local node or another URL may be any chain, Finney's included
        // (a lite node of one's own).
        Network::Local.check_genesis(&finney).expect("local");
        Network::Url("ws://10.0.0.5:9944".into())
            .check_genesis(&[7u8; 32])
            .expect("url");
    }

    #[test]
    fn refusals_are_typed() {
        assert!(matches!(
            refusal("Inability to pay some fees (e.g. account balance too low)"),
            ChainError::InsufficientBalance(_)
        ));
        let e = refusal("Transaction is invalid: Custom error: 11");
        assert!(e.to_string().contains("invalid IP address"), "{e}");
        let e = refusal(r#"RPC error: User error: {"invalid":{"custom":10}} (1010)"#);
        assert!(e.to_string().contains("not registered"), "{e}");
        assert!(matches!(
            refusal("SubtensorModule::Whatever"),
            ChainError::Rejected(_)
        ));
        // Included and failed: typed by name, never a lost connection.
        let e = module_refusal("Drand", "DrandConnectionFailure");
        assert!(
            matches!(&e, ChainError::Dispatch { pallet, error }
                if pallet == "Drand" && error == "DrandConnectionFailure"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "the chain rejected the call: Drand::DrandConnectionFailure"
        );
        assert!(matches!(
            module_refusal("SubtensorModule", "NotEnoughBalanceToStake"),
            ChainError::InsufficientBalance(_)
        ));
        let e = module_refusal("SubtensorModule", "SettingWeightsTooFast");
        assert!(is_subtensor_error(&e, &["SettingWeightsTooFast"]));
        // By exact name and pallet, not by a substring.
        assert!(!is_subtensor_error(&e, &["WeightsTooFast"]));
        let other = module_refusal("AdminUtils", "SettingWeightsTooFast");
        assert!(!is_subtensor_error(&other, &["SettingWeightsTooFast"]));
        let committing = module_refusal("SubtensorModule", "CommittingWeightsTooFast");
        assert!(!is_subtensor_error(&committing, &["SettingWeightsTooFast"]));
        assert!(matches!(
            refusal("The background task closed"),
            ChainError::Connection { .. }
        ));
    }

    #[test]
    fn axon_version_follows_the_sdk_rule() {
        let v = axon_version();
        assert!(v > 0 || env!("CARGO_PKG_VERSION").starts_with("0.0.0"));
    }
}
