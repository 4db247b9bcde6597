//! Daemon configuration: a TOML file, overridden by `AKIHABARA_<SECTION>__<KEY>`
//! environment variables, overridden by `--set section.key=value` flags.
//! Unknown keys are errors, and every error names its key.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::exit::bad_input;

/// The commented miner template (`akihabara config init --role miner`).
pub const MINER_TEMPLATE: &str = include_str!("miner.toml");
/// The commented validator template.
pub const VALIDATOR_TEMPLATE: &str = include_str!("validator.toml");

const ENV_PREFIX: &str = "AKIHABARA_";

/// A value from the environment or a flag: TOML when it parses as a TOML
/// value (`2`, `true`, `1.5`, `"x"`), else the raw string.
fn value_of(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    origin: &str,
) -> anyhow::Result<()> {
    let (last, parents) = path
        .split_last()
        .with_context(|| format!("{origin}: an empty key"))?;
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .with_context(|| format!("{origin}: `{p}` is a value, not a section"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

/// Loads `T` from `file` with the environment `env` (pairs, so tests can
/// pass their own) and `--set` overrides applied on top.
pub fn load<T: DeserializeOwned>(
    file: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    sets: &[String],
) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the config file {}", file.display()))
        .map_err(bad_input)?;
    let mut table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("config {}: {}", file.display(), e.to_string().trim()))
        .map_err(bad_input)?;
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    for (name, raw) in env {
        // Only names with `__` address config keys (AKIHABARA_REQUIRE_PEERS does not).
        let Some(rest) = name.strip_prefix(ENV_PREFIX).filter(|r| r.contains("__")) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        origins.insert(path.join("."), format!("environment variable {name}"));
        set(&mut table, &path, value_of(&raw), &name).map_err(bad_input)?;
    }
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected section.key=value"))
            .map_err(bad_input)?;
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(bad_input(anyhow::anyhow!(
                "--set {s:?}: expected section.key=value"
            )));
        }
        origins.insert(path.join("."), format!("--set {key}"));
        set(
            &mut table,
            &path,
            value_of(raw.trim()),
            &format!("--set {key}"),
        )
        .map_err(bad_input)?;
    }
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let from = origins
            .get(&key)
            .map_or_else(|| file.display().to_string(), Clone::clone);
        bad_input(anyhow::anyhow!(
            "config key `{key}` (from {from}): {}",
            e.inner().to_string().trim()
        ))
    })
}

/// The process environment, for [`load`].
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars()
}

/// `[wallet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletSection {
    pub path: PathBuf,
    pub name: String,
    pub hotkey: String,
}

impl Default for WalletSection {
    fn default() -> Self {
        WalletSection {
            path: akihabara_core::wallet::DEFAULT_WALLET_PATH.into(),
            name: "default".into(),
            hotkey: "default".into(),
        }
    }
}

/// `[chain]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    pub network: String,
    pub netuid: u16,
    #[serde(with = "humantime_serde", default = "thirty_seconds")]
    pub timeout: Duration,
    /// Only for `snapshot:FILE`: how fast the simulated chain's block advances.
    #[serde(with = "humantime_serde", default)]
    pub block_time: Option<Duration>,
    /// Only for `snapshot:FILE`: the simulated subnet's hyperparameters.
    #[serde(default)]
    pub hyperparameters: Option<akihabara_core::chain::Hyperparameters>,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn twelve_seconds() -> Duration {
    Duration::from_secs(12)
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    pub dir: PathBuf,
    pub store: Option<String>,
}

impl StateSection {
    /// The state directory, `~` expanded.
    pub fn dir(&self) -> PathBuf {
        akihabara_core::wallet::expand_tilde(&self.dir)
    }

    /// The store address: the configured one, else `embedded:DIR/state.redb`.
    pub fn store(&self) -> String {
        match &self.store {
            Some(s) => match s.strip_prefix("embedded:") {
                Some(p) => format!(
                    "embedded:{}",
                    akihabara_core::wallet::expand_tilde(Path::new(p)).display()
                ),
                None => s.clone(),
            },
            None => format!("embedded:{}", self.dir().join("state.redb").display()),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: Option<SocketAddr>,
}

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
}

impl Default for ScheduleSection {
    fn default() -> Self {
        ScheduleSection {
            strategy: "proportional".into(),
            window_blocks: 0,
            min_blocks: 10,
            layout: "contiguous".into(),
            poll: twelve_seconds(),
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
    pub state: StateSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).expect("write");
        (dir, p)
    }

    #[test]
    fn templates_parse_to_their_configs() {
        let (_d, p) = write(MINER_TEMPLATE);
        let m: MinerConfig = load(&p, [], &[]).expect("miner template");
        assert_eq!((m.chain.netuid, m.axon.port), (27, 8091));
        assert_eq!(m.chain.timeout, Duration::from_secs(30));
        let (_d, p) = write(VALIDATOR_TEMPLATE);
        let v: ValidatorConfig = load(&p, [], &[]).expect("validator template");
        assert_eq!(v.scoring.reference_ops, None);
        assert_eq!(v.pow.timeout, Duration::from_secs(60));
    }

    #[test]
    fn environment_then_flags_override_the_file() {
        let (_d, p) = write(MINER_TEMPLATE);
        let env = [
            ("AKIHABARA_CHAIN__NETUID".to_owned(), "3".to_owned()),
            ("AKIHABARA_AXON__PORT".to_owned(), "9000".to_owned()),
            ("AKIHABARA_SCHEDULE__POLL".to_owned(), "2s".to_owned()),
            ("AKIHABARA_REQUIRE_PEERS".to_owned(), "1".to_owned()),
        ];
        let m: MinerConfig = load(&p, env, &["axon.port=9001".into()]).expect("load");
        assert_eq!(m.chain.netuid, 3);
        assert_eq!(m.axon.port, 9001, "the flag beats the environment");
        assert_eq!(m.schedule.poll, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_key_and_where_it_came_from() {
        let err = |text: &str, env: Vec<(String, String)>, sets: &[String]| {
            let (_d, p) = write(text);
            format!("{:#}", load::<MinerConfig>(&p, env, sets).expect_err("bad"))
        };
        let base = MINER_TEMPLATE;
        let e = err(&format!("{base}\n[extra]\nx = 1\n"), vec![], &[]);
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = err(
            &base.replace("min_blocks = 10", "min_blocks = 10\nmin_blokcs = 3"),
            vec![],
            &[],
        );
        assert!(
            e.contains("`schedule`") && e.contains("unknown field `min_blokcs`"),
            "{e}"
        );
        let e = err(base, vec![], &["chain.netuid=-1".into()]);
        assert!(
            e.contains("`chain.netuid`") && e.contains("--set chain.netuid"),
            "{e}"
        );
        let env = vec![("AKIHABARA_CHAIN__TIMEOUT".into(), "soon".into())];
        let e = err(base, env, &[]);
        assert!(
            e.contains("`chain.timeout`") && e.contains("AKIHABARA_CHAIN__TIMEOUT"),
            "{e}"
        );
        let e = err("[chain]\nnetwork = \"local\"\n", vec![], &[]);
        assert!(e.contains("missing field `netuid`"), "{e}");
        let e = err("[chain\n", vec![], &[]);
        assert!(e.contains("c.toml"), "{e}");
        let e = err(base, vec![], &["nokey".into()]);
        assert!(e.contains("expected section.key=value"), "{e}");
    }
}
