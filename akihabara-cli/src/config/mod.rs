//! Daemon configuration: a TOML file, overridden by `AKIHABARA_<SECTION>__<KEY>`
//! environment variables, overridden by `--set section.key=value` flags.
//! Unknown keys are errors, and every error names its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::exit::bad_input;

mod miner;
mod validator;

pub use self::miner::*;
pub use self::validator::*;

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
        // `policy.deny_hotkeys[1]` came from where `policy.deny_hotkeys` did.
        let mut from = None;
        let mut k = key.as_str();
        while from.is_none() && !k.is_empty() {
            from = origins.get(k);
            k = &k[..k.rfind(['.', '[']).unwrap_or(0)];
        }
        let from = from.map_or_else(|| file.display().to_string(), Clone::clone);
        // The key is named once, here (toml adds an "in `KEY`" line).
        let inner = e.inner().to_string();
        let why: Vec<&str> = inner
            .lines()
            .filter(|l| !l.starts_with("in `"))
            .map(str::trim)
            .collect();
        bad_input(anyhow::anyhow!(
            "config key `{key}` (from {from}): {}",
            why.join(" ").trim()
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

#[cfg(test)]
mod tests {
    use akihabara_core::{AccountId, Tao};

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
            &base.replace("min_blocks = 40", "min_blocks = 40\nmin_blokcs = 3"),
            vec![],
            &[],
        );
        assert!(
            e.contains("`schedule.min_blokcs`") && e.contains("unknown field `min_blokcs`"),
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

    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    const BOB: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";

    #[test]
    fn the_miner_template_has_the_policy_defaults() {
        let (_d, p) = write(MINER_TEMPLATE);
        let m: MinerConfig = load(&p, [], &[]).expect("miner template");
        assert_eq!(m.schedule.min_blocks, 40);
        assert!(m.schedule.enforce_slots);
        assert_eq!(m.schedule.slot_grace, 2);
        let p = &m.policy;
        assert_eq!(
            (p.deny_hotkeys.len(), p.allow_hotkeys.len()),
            (0, 0),
            "{p:?}"
        );
        assert_eq!((p.deny_coldkeys.len(), p.allow_coldkeys.len()), (0, 0));
        assert_eq!(p.min_stake, Tao::ZERO);
        assert!(p.require_permit);
        assert!(m.jobs.max_duration.is_empty());
        assert_eq!((m.jobs.only_listed, m.jobs.script.as_ref()), (false, None));
        // Sections left out take the same defaults.
        let (_d, p) = write("[chain]\nnetwork = \"local\"\nnetuid = 1\n[state]\ndir = \"/x\"\n");
        let m: MinerConfig = load(&p, [], &[]).expect("minimal");
        assert_eq!(m.schedule.min_blocks, 40);
        assert!(m.policy.require_permit && m.schedule.enforce_slots);
    }

    #[test]
    fn policy_and_jobs_sections_parse() {
        let text = MINER_TEMPLATE
            .replace(
                "deny_hotkeys = []",
                &format!("deny_hotkeys = [\"{ALICE}\"]"),
            )
            .replace(
                "allow_coldkeys = []",
                &format!("allow_coldkeys = [\"{BOB}\", \"{ALICE}\"]"),
            )
            .replace("min_stake = 0", "min_stake = 1000.5")
            .replace("require_permit = true", "require_permit = false")
            .replace(
                "# max_duration = { cpu = \"2h\", h100 = \"30m\" }",
                "max_duration = { cpu = \"2h\", h100 = \"30m\" }",
            )
            .replace("# script = ", "script = ")
            .replace("# script_timeout = \"5s\"", "script_timeout = \"2s\"");
        let (_d, p) = write(&text);
        let m: MinerConfig = load(&p, [], &[]).expect("policy");
        let alice: AccountId = ALICE.parse().expect("alice");
        let bob: AccountId = BOB.parse().expect("bob");
        assert_eq!(m.policy.deny_hotkeys, vec![alice]);
        assert_eq!(m.policy.allow_coldkeys, vec![bob, alice]);
        assert_eq!(
            m.policy.min_stake.to_rao(),
            akihabara_core::Rao(1_000_500_000_000)
        );
        assert!(!m.policy.require_permit);
        let max: Vec<(String, Duration)> = m
            .jobs
            .max_duration
            .iter()
            .map(|(k, v)| (k.clone(), **v))
            .collect();
        assert_eq!(
            max,
            [
                ("cpu".to_owned(), Duration::from_secs(7200)),
                ("h100".to_owned(), Duration::from_secs(1800))
            ]
        );
        assert_eq!(
            m.jobs.script,
            Some(PathBuf::from("/etc/akihabara/accept-job"))
        );
        assert_eq!(m.jobs.script_timeout, Some(Duration::from_secs(2)));
        // min_stake from a flag (a number) or as a string, exact to the rao.
        let (_d, p) = write(MINER_TEMPLATE);
        let m: MinerConfig =
            load(&p, [], &["policy.min_stake=0.000000001".into()]).expect("one rao");
        assert_eq!(m.policy.min_stake.to_rao(), akihabara_core::Rao(1));
        let m: MinerConfig = load(&p, [], &["policy.min_stake=\"12\"".into()]).expect("text");
        assert_eq!(
            m.policy.min_stake.to_rao(),
            akihabara_core::Rao(12_000_000_000)
        );
    }

    #[test]
    fn bad_policy_values_name_their_key() {
        let err = |sets: &[&str]| {
            let (_d, p) = write(MINER_TEMPLATE);
            let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
            format!("{:#}", load::<MinerConfig>(&p, [], &sets).expect_err("bad"))
        };
        assert_eq!(
            err(&[&format!(
                "policy.deny_hotkeys=[\"{ALICE}\", \"5Gnot-an-address\"]"
            )]),
            "config key `policy.deny_hotkeys[1]` (from --set policy.deny_hotkeys): \
             invalid SS58 address \"5Gnot-an-address\": not base58"
        );
        assert_eq!(
            err(&["policy.min_stake=-1"]),
            "config key `policy.min_stake` (from --set policy.min_stake): \
             invalid TAO amount \"-1\": expected a non-negative decimal such as 1000 or 0.5"
        );
        assert_eq!(
            err(&["policy.min_stake=0.0000000001"]),
            "config key `policy.min_stake` (from --set policy.min_stake): \
             TAO amount \"0.0000000001\" has more than 9 decimal places (1 rao = 0.000000001 TAO)"
        );
        assert_eq!(
            err(&["policy.allow_hotkey=[]"]),
            "config key `policy.allow_hotkey` (from --set policy.allow_hotkey): unknown field \
             `allow_hotkey`, expected one of `deny_hotkeys`, `allow_hotkeys`, `deny_coldkeys`, \
             `allow_coldkeys`, `min_stake`, `require_permit`"
        );
        assert_eq!(
            err(&["jobs.max_duration.h100=soon"]),
            "config key `jobs.max_duration.h100` (from --set jobs.max_duration.h100): \
             invalid value: string \"soon\", expected a duration"
        );
    }
}
