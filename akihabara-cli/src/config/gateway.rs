//! The gateway's configuration (`akihabara gateway serve --config`):
//! `[wallet]` signs the jobs it routes, `[chain]` lists the miners, and
//! `[gateway]` says what it sells.

use std::time::Duration;

use serde::Deserialize;

use super::{ChainSection, WalletSection};

/// The whole gateway file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub wallet: WalletSection,
    pub chain: ChainSection,
    #[serde(default)]
    pub gateway: GatewaySection,
}

/// `[gateway]` (of `gateway serve --config`, or of `validator run`, which
/// then serves the gateway itself on `listen` and pays organic work).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// `validator run` only: the address the gateway listens on (`gateway
    /// serve` takes `--listen`).
    pub listen: Option<std::net::SocketAddr>,
    /// Hardware classes routed (a job of another class is refused with 422).
    pub classes: Vec<String>,
    /// Images a job may name, exactly as the miners' engines know them.
    pub images: Vec<String>,
    /// Whether a job may name no image (and run on a plain executor).
    pub allow_no_image: bool,
    /// The longest timeout a job may ask for, seconds.
    pub max_timeout_s: u64,
    /// How long a job waits for a free executor before it fails.
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// How often running jobs are asked for their state.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// How long one call to a miner may take.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// The share of finished deterministic jobs re-run on the trusted
    /// executor, in [0, 1].
    pub cross_check_share: f64,
    /// A fleet file holding the validator's own, trusted executor; without
    /// it nothing is cross-checked.
    pub trusted_fleet: Option<std::path::PathBuf>,
    /// Which executor of `trusted_fleet` (its first by default).
    pub trusted_executor: Option<String>,
    /// Whether jobs may have input and output files.
    pub volumes: bool,
    /// Largest input file, MiB (checked at submission; miners cap it too).
    pub max_input_mb: u64,
    /// Let input and output URLs reach loopback and private addresses.
    pub allow_private_urls: bool,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            listen: None,
            classes: Vec::new(),
            images: Vec::new(),
            allow_no_image: false,
            max_timeout_s: 24 * 3600,
            queue_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            call_timeout: Duration::from_secs(10),
            max_connections: 256,
            cross_check_share: akihabara::gateway::cross::DEFAULT_SHARE,
            trusted_fleet: None,
            trusted_executor: None,
            volumes: true,
            max_input_mb: 1024,
            allow_private_urls: false,
        }
    }
}
