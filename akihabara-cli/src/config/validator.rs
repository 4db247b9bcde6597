//! The validator's sections: `[validator]`, `[challenge]`, `[scoring]`,
//! `[probe]`, `[weights]`, and the whole [`ValidatorConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    ChainSection, MetricsSection, StateSection, WalletSection, thirty_seconds, twelve_seconds,
};

/// `[validator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoundSection {
    pub round_blocks: u64,
    pub respect_schedules: bool,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
}

impl Default for RoundSection {
    fn default() -> Self {
        RoundSection {
            round_blocks: 10,
            respect_schedules: true,
            poll: twelve_seconds(),
        }
    }
}

/// `[pow]` of the validator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeSection {
    pub n: usize,
    pub count: u32,
    pub samples: u32,
    pub concurrency: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Seconds of compute a challenge aims at, by the miner's last verified
    /// speed; absent: every challenge has `count` products.
    pub target_seconds: Option<f64>,
    /// The most products a scaled challenge asks for.
    pub max_count: u32,
    /// The longest a round takes; miners not done by then are skipped.
    #[serde(with = "humantime_serde")]
    pub round_deadline: Duration,
}

impl Default for ChallengeSection {
    fn default() -> Self {
        ChallengeSection {
            n: 1024,
            count: 4,
            samples: 16,
            concurrency: 8,
            timeout: Duration::from_secs(60),
            target_seconds: None,
            max_count: 64,
            round_deadline: Duration::from_secs(30 * 60),
        }
    }
}

/// `[scoring]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringSection {
    pub ema_alpha: f64,
    /// Retired: the pow score is verified ops/s, whatever class a miner
    /// names. Still accepted so older files load; a warning says it is ignored.
    pub reference_ops: Option<BTreeMap<String, f64>>,
    /// `pow`, `gpu-table`, `hardware-class` or `composite`.
    pub scorer: String,
    /// How much of a penalty is left after each epoch, in `[0, 1)`.
    pub penalty_decay: f64,
    /// Points `hardware-class` takes off per job declined with capacity.
    pub decline_penalty_points: f64,
    /// Weight per scorer name, for `composite`.
    pub composite: Option<BTreeMap<String, f64>>,
    /// Relative value per class, for `hardware-class`.
    pub hardware_classes: Option<BTreeMap<String, f64>>,
    /// Base value per GPU model, for `gpu-table` (default: NI Compute's).
    pub gpu_table: Option<BTreeMap<String, f64>>,
    /// Verified ops/s range per GPU model, for `gpu-table`.
    pub gpu_reference: Option<BTreeMap<String, [f64; 2]>>,
}

impl Default for ScoringSection {
    fn default() -> Self {
        ScoringSection {
            ema_alpha: 0.3,
            reference_ops: None,
            scorer: "pow".into(),
            penalty_decay: 0.5,
            decline_penalty_points: 0.0,
            composite: None,
            hardware_classes: None,
            gpu_table: None,
            gpu_reference: None,
        }
    }
}

impl ScoringSection {
    /// The library's scorer configuration these keys describe.
    pub fn library(&self) -> akihabara_core::score::ScoringConfig {
        akihabara_core::score::ScoringConfig {
            gpu_table: self.gpu_table.clone(),
            gpu_reference: self.gpu_reference.clone(),
            hardware_classes: self.hardware_classes.clone(),
            composite: self.composite.clone(),
            declines: Some(akihabara_core::score::DeclineConfig {
                penalty_points: self.decline_penalty_points,
            }),
            ..Default::default()
        }
    }
}

/// `[probe]`: what the validator checks besides the proof of work, once
/// per tempo.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSection {
    pub enabled: bool,
    pub specs: bool,
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    pub jobs: Vec<ProbeJob>,
    pub allocation: Option<ProbeAllocation>,
}

impl Default for ProbeSection {
    fn default() -> Self {
        ProbeSection {
            enabled: true,
            specs: true,
            call_timeout: Duration::from_secs(20),
            poll: Duration::from_secs(1),
            jobs: Vec::new(),
            allocation: None,
        }
    }
}

/// `[[probe.jobs]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeJob {
    pub class: String,
    pub command: Vec<String>,
    #[serde(with = "humantime_serde", default = "sixty_seconds")]
    pub timeout: Duration,
    #[serde(default)]
    pub expect_stdout: Option<String>,
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

/// `[probe.allocation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeAllocation {
    pub ssh_key: PathBuf,
    #[serde(default = "true_command")]
    pub command: Vec<String>,
    #[serde(default)]
    pub expect: Option<String>,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(with = "humantime_serde", default = "ten_minutes")]
    pub duration: Duration,
    #[serde(with = "humantime_serde", default = "thirty_seconds")]
    pub login_timeout: Duration,
}

fn true_command() -> Vec<String> {
    vec!["true".into()]
}

fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}

/// `[weights]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightsSection {
    pub version_key: u64,
    /// The mechanism (sub-subnet) to commit weights for, on runtimes with
    /// mechanisms.
    pub mechid: Option<u8>,
}

/// `akihabara validator run`'s configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorConfig {
    #[serde(default)]
    pub wallet: WalletSection,
    pub chain: ChainSection,
    #[serde(default)]
    pub validator: RoundSection,
    #[serde(default)]
    pub pow: ChallengeSection,
    #[serde(default)]
    pub scoring: ScoringSection,
    #[serde(default)]
    pub probe: ProbeSection,
    #[serde(default)]
    pub weights: WeightsSection,
    pub state: StateSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Serve the organic-jobs gateway from this daemon (its jobs are paid
    /// into the validator's ledger).
    #[serde(default)]
    pub gateway: Option<super::GatewaySection>,
}
