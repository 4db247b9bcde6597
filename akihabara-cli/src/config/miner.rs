//! The miner's sections: `[axon]`, `[schedule]`, `[policy]`, `[jobs]`,
//! `[prover]`, `[executors]`, and the whole [`MinerConfig`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use akihabara_core::{AccountId, Tao};
use serde::Deserialize;

use super::{ChainSection, MetricsSection, StateSection, WalletSection, twelve_seconds};

/// `[axon]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AxonSection {
    pub ip: IpAddr,
    pub port: u16,
    pub external_ip: Option<IpAddr>,
    pub external_port: Option<u16>,
    pub max_concurrent: usize,
    pub rate_limit: Option<f64>,
    pub burst: Option<u32>,
}

impl Default for AxonSection {
    fn default() -> Self {
        AxonSection {
            ip: IpAddr::from([0, 0, 0, 0]),
            port: 8091,
            external_ip: None,
            external_port: None,
            max_concurrent: 64,
            rate_limit: None,
            burst: None,
        }
    }
}

/// `[schedule]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSection {
    pub strategy: String,
    pub window_blocks: u64,
    pub min_blocks: u64,
    pub layout: String,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// Refuse a `PowChallenge` from a validator outside its slot.
    pub enforce_slots: bool,
    /// Blocks on each side of a slot that still count as inside it.
    pub slot_grace: u64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        ScheduleSection {
            strategy: "proportional".into(),
            window_blocks: 0,
            // As `akihabara schedule --min-blocks`.
            min_blocks: 40,
            layout: "contiguous".into(),
            poll: twelve_seconds(),
            enforce_slots: true,
            slot_grace: 2,
        }
    }
}

/// `[policy]` of the miner: who may call its axon (every synapse).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Hotkeys never served.
    pub deny_hotkeys: Vec<AccountId>,
    /// When not empty, only these hotkeys (still subject to the other checks).
    pub allow_hotkeys: Vec<AccountId>,
    /// Hotkeys owned by these coldkeys are never served.
    pub deny_coldkeys: Vec<AccountId>,
    /// When not empty, only hotkeys owned by these coldkeys.
    pub allow_coldkeys: Vec<AccountId>,
    /// Least stake a caller must hold, TAO.
    #[serde(deserialize_with = "tao")]
    pub min_stake: Tao,
    /// Callers need a validator permit.
    pub require_permit: bool,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            deny_hotkeys: Vec::new(),
            allow_hotkeys: Vec::new(),
            deny_coldkeys: Vec::new(),
            allow_coldkeys: Vec::new(),
            min_stake: Tao::ZERO,
            require_permit: true,
        }
    }
}

/// A TAO amount written as a number (`1000`, `0.5`) or a string (`"0.5"`),
/// exact to the rao.
fn tao<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Tao, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Amount {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let text = match Amount::deserialize(d)? {
        Amount::Int(i) => i.to_string(),
        // Rust prints floats without an exponent, as `Tao` parses them.
        Amount::Float(f) => f.to_string(),
        Amount::Text(t) => t,
    };
    text.parse::<Tao>().map_err(serde::de::Error::custom)
}

/// `[jobs]` of the miner: which jobs it accepts, beyond the protocol's rule
/// (a free executor of the class must accept unless the validator is
/// refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// The longest job sold per hardware class (a request carries no
    /// price; its class and `timeout_s` are what it costs).
    pub max_duration: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Decline classes `max_duration` does not list.
    pub only_listed: bool,
    /// An executable asked about each job: the request as JSON on stdin,
    /// exit 0 accepts, else the first line of stderr is the reason.
    pub script: Option<PathBuf>,
    /// How long the script may take.
    #[serde(with = "humantime_serde")]
    pub script_timeout: Option<Duration>,
    /// Largest input file a job may have downloaded, MiB.
    pub max_input_mb: u64,
    /// Largest output file a job may have uploaded, MiB.
    pub max_output_mb: u64,
    /// Let jobs' file URLs reach loopback and private addresses.
    pub allow_private_urls: bool,
    /// Ended jobs whose answers are kept for `JobQuery`, in all.
    pub keep_ended: usize,
    /// Ended jobs whose answers are kept for `JobQuery`, per validator.
    pub keep_ended_per_validator: usize,
}

impl Default for JobsSection {
    fn default() -> Self {
        JobsSection {
            max_duration: BTreeMap::new(),
            only_listed: false,
            script: None,
            script_timeout: None,
            max_input_mb: 1024,
            max_output_mb: 1024,
            allow_private_urls: false,
            keep_ended: akihabara_core::market::server::MAX_ENDED_JOBS,
            keep_ended_per_validator: akihabara_core::market::server::MAX_ENDED_PER_VALIDATOR,
        }
    }
}

impl JobsSection {
    /// How many ended jobs' answers the miner keeps.
    pub fn retention(&self) -> akihabara_core::market::server::Retention {
        akihabara_core::market::server::Retention {
            max_ended: self.keep_ended,
            max_ended_per_validator: self.keep_ended_per_validator,
        }
    }

    /// What jobs' input and output files may be.
    pub fn volumes(&self) -> akihabara_core::market::volumes::VolumePolicy {
        akihabara_core::market::volumes::VolumePolicy {
            max_input_bytes: self.max_input_mb.saturating_mul(1 << 20),
            max_output_bytes: self.max_output_mb.saturating_mul(1 << 20),
            allow_private: self.allow_private_urls,
            ..Default::default()
        }
    }
}

/// `[pow]` of the miner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProverSection {
    pub prover: String,
    /// Tests and demos only: run at this fraction of the prover's speed, a
    /// simulation of slower hardware (several miners on one machine).
    pub throttle: Option<f64>,
}

impl Default for ProverSection {
    fn default() -> Self {
        ProverSection {
            prover: "auto".into(),
            throttle: None,
        }
    }
}

/// `[executors]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorsSection {
    pub fleet: Option<PathBuf>,
}

/// `akihabara miner run`'s configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerConfig {
    #[serde(default)]
    pub wallet: WalletSection,
    pub chain: ChainSection,
    #[serde(default)]
    pub axon: AxonSection,
    #[serde(default)]
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub pow: ProverSection,
    #[serde(default)]
    pub executors: ExecutorsSection,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub jobs: JobsSection,
    pub state: StateSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}
