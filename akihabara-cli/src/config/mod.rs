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

mod gateway;
mod miner;
mod validator;

pub use self::gateway::*;
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

/// The largest config file read, bytes: a config is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Loads `T` from `file` with the environment `env` (pairs, so tests can
/// pass their own) and `--set` overrides applied on top.
pub fn load<T: DeserializeOwned>(
    file: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    sets: &[String],
) -> anyhow::Result<T> {
    let text = akihabara_core::fs::read_text_limited(file, MAX_CONFIG_BYTES)
        .with_context(|| format!("cannot read the config file {}", file.display()))
        .map_err(bad_input)?;
    parse(&text, &file.display().to_string(), env, sets)
}

/// [`load`] of a config's text; `origin` names it in errors. The fuzz
/// target `configs` calls this with arbitrary text, environment and flags.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
    sets: &[String],
) -> anyhow::Result<T> {
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| anyhow::anyhow!("config {origin}: {}", e.to_string().trim()))
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
        let from = from.map_or_else(|| origin.to_owned(), Clone::clone);
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
    /// For `snapshot:FILE`, how fast the simulated chain's block advances;
    /// for a real chain, the block time timelocked commits turn blocks into
    /// drand rounds with (default 12 s).
    #[serde(with = "humantime_serde", default)]
    pub block_time: Option<Duration>,
    /// Only for `snapshot:FILE`: the wall-clock time of the snapshot's
    /// block. Daemons given the same start see the same block; without it
    /// each counts from its own start.
    #[serde(with = "humantime_serde", default)]
    pub start: Option<std::time::SystemTime>,
    /// Only for `snapshot:FILE`: the simulated subnet's hyperparameters.
    #[serde(default)]
    pub hyperparameters: Option<akihabara_core::chain::Hyperparameters>,
    /// Sign calls whose pallet index, call index or argument shape in the
    /// node's metadata differ from every runtime this release knows
    /// (`SubtensorOptions::sign_unpinned_calls`). Warned about at every start.
    #[serde(default)]
    pub sign_unpinned_calls: bool,
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
        akihabara_core::fs::expand_tilde(&self.dir)
    }

    /// The store address: the configured one, else `embedded:DIR/state.redb`.
    pub fn store(&self) -> String {
        match &self.store {
            Some(s) => match s.strip_prefix("embedded:") {
                Some(p) => format!(
                    "embedded:{}",
                    akihabara_core::fs::expand_tilde(Path::new(p)).display()
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
mod tests;
