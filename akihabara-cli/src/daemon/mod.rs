//! The long-running roles: `akihabara miner run` and `akihabara validator run`,
//! and what they share: logging, the chain connection, health and metrics.

mod accept;
mod args;
pub mod miner;
mod ops;
pub mod validator;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akihabara_core::chain::{
    ChainClient, ChainError, Hyperparameters, Network, SnapshotChain, Subtensor, SubtensorOptions,
};
use akihabara_core::store::Store;
use akihabara_core::{AccountId, Netuid, Uid};
use anyhow::Context;

use crate::config::{ChainSection, StateSection, WalletSection};
use crate::exit::bad_input;

pub use self::args::{LogFormat, MinerCommand, RunFlags, ValidatorCommand};
pub use ops::{Health, Metrics};

/// A bad configuration value, naming its key (exit 2).
pub fn key_error(key: &str, e: impl std::fmt::Display) -> anyhow::Error {
    bad_input(anyhow::anyhow!("config key `{key}`: {e}"))
}

/// A role error as the daemons report it: chain failures stay
/// [`ChainError`]s, so [`settle`] counts them and shows them in `/health`.
pub fn role_error(e: akihabara::roles::RoleError) -> anyhow::Error {
    use akihabara::roles::RoleError;
    match e {
        RoleError::Chain(c) => anyhow::Error::new(c),
        RoleError::Weights { how, source } => {
            anyhow::Error::new(source).context(format!("{how} weights"))
        }
        e => anyhow::Error::new(e),
    }
}

/// What both daemons hold once started.
pub struct Started {
    pub dir: PathBuf,
    pub chain: Arc<dyn ChainClient>,
    pub store: Arc<dyn Store>,
    pub netuid: Netuid,
    pub uid: Uid,
    pub health: Arc<Health>,
}

/// Creates the state directory, connects to the chain, opens the store and
/// finds `hotkey`'s uid (an error naming the fix when it has none).
pub async fn start(
    role: &'static str,
    chain: &ChainSection,
    state: &StateSection,
    hotkey: &AccountId,
) -> anyhow::Result<Started> {
    let dir = state_dir(state)?;
    let client = connect_chain(chain, state).await?;
    let store = open_store(state)?;
    let netuid = Netuid(chain.netuid);
    let uid = client
        .uid_of(netuid, hotkey)
        .await
        .context("looking up this hotkey's uid")?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "hotkey {} is not registered on netuid {}; register it first (akihabara chain register --help)",
                hotkey.to_ss58(),
                netuid.0
            )
        })?;
    let health = Health::new(role);
    health.set("uid", uid.0.into());
    health.set("hotkey", hotkey.to_ss58().into());
    Ok(Started {
        dir,
        chain: client,
        store,
        netuid,
        uid,
        health,
    })
}

/// Records how a step of a daemon's loop went and returns the pause before
/// the next: `poll` after a success, the backoff after a failure (a chain
/// failure is counted and shown in `/health`).
pub fn settle(
    result: anyhow::Result<()>,
    backoff: &mut Backoff,
    poll: Duration,
    metrics: &Metrics,
    health: &Health,
    what: &str,
) -> Duration {
    match result {
        Ok(()) => {
            backoff.reset();
            health.chain_ok();
            poll
        }
        Err(e) => {
            let pause = backoff.pause();
            if e.downcast_ref::<ChainError>().is_some() {
                metrics.chain_errors.inc();
                health.chain_failed(format!("{e:#}"));
            }
            tracing::warn!(error = %format!("{e:#}"), retry_in = ?pause, "{what}");
            pause
        }
    }
}

/// Starts logging to standard error; the level comes from `AKIHABARA_LOG`
/// (`info` by default; `debug`, `warn`, or per target like `akihabara=debug`).
pub fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::filter::Targets;
    let filter: Targets = match std::env::var("AKIHABARA_LOG") {
        Ok(v) => v
            .parse()
            .map_err(|e| bad_input(anyhow::anyhow!("AKIHABARA_LOG={v:?}: {e}")))?,
        Err(_) => "info".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// Prints one JSON event line on standard output.
pub fn event(value: serde_json::Value) {
    let _ = crate::out::println(value.to_string());
}

/// The wallet section as the wallet commands take it.
pub fn wallet_args(w: &WalletSection) -> crate::args::WalletArgs {
    crate::args::WalletArgs {
        path: w.path.clone(),
        name: w.name.clone(),
        hotkey: w.hotkey.clone(),
    }
}

/// Connects to the configured chain: a network name or URL, or
/// `snapshot:FILE` (a simulated chain recording weights beside the state).
pub async fn connect_chain(
    c: &ChainSection,
    state: &StateSection,
) -> anyhow::Result<Arc<dyn ChainClient>> {
    if let Some(path) = c.network.strip_prefix("snapshot:") {
        let path = akihabara_core::fs::expand_tilde(std::path::Path::new(path));
        let mut chain = SnapshotChain::open(&path)
            .map_err(|e| key_error("chain.network", e))?
            .record_to(state.dir().join("simulated-chain.jsonl"));
        if let Some(h) = &c.hyperparameters {
            chain = chain.hyperparameters(h.clone());
        }
        if let Some(t) = c.block_time {
            chain = chain.block_time(t);
        }
        if let Some(start) = c.start {
            chain = chain.with_clock(Arc::new(akihabara_core::clock::WallClock::since(start)));
        }
        tracing::warn!(snapshot = %path.display(), "the chain is a simulation (SnapshotChain): nothing is sent to a real chain");
        return Ok(Arc::new(chain));
    }
    let network: Network = c
        .network
        .parse()
        .map_err(|e| key_error("chain.network", e))?;
    let opts = SubtensorOptions {
        connect_timeout: c.timeout,
        timeout: c.timeout,
        block_time: c
            .block_time
            .unwrap_or(SubtensorOptions::default().block_time),
        sign_unpinned_calls: c.sign_unpinned_calls,
        ..SubtensorOptions::default()
    };
    if c.sign_unpinned_calls {
        tracing::warn!(
            "[chain] sign_unpinned_calls is on: calls whose index or shape in the node's metadata \
             differ from every runtime this release knows are signed anyway; the node can choose \
             what this daemon's keys sign"
        );
    }
    let chain = Subtensor::connect_with(&network, opts)
        .await
        .with_context(|| format!("connecting to {}", network.url()))?;
    Ok(Arc::new(chain))
}

/// Checks the chain section before anything starts.
pub fn check_chain(c: &ChainSection) -> anyhow::Result<()> {
    if c.timeout.is_zero() {
        return Err(key_error("chain.timeout", "must be positive"));
    }
    if c.block_time.is_some_and(|t| t.is_zero()) {
        return Err(key_error("chain.block_time", "must be positive"));
    }
    Ok(())
}

/// Checks the store address's form before anything starts (whether it
/// opens is learnt when it is opened).
/// A mistyped URL (`redis//user:pw@host`) is refused here, and no message
/// shows a password.
pub fn check_state(s: &StateSection) -> anyhow::Result<()> {
    akihabara_core::store::check_address(&s.store()).map_err(|e| key_error("state.store", e))
}

/// Opens the configured store.
pub fn open_store(state: &StateSection) -> anyhow::Result<Arc<dyn Store>> {
    let address = state.store();
    let store = akihabara_core::store::open(&address).map_err(|e| {
        let e = anyhow::Error::new(e);
        if matches!(
            e.downcast_ref(),
            Some(akihabara_core::store::StoreError::Unsupported(_))
        ) {
            bad_input(e.context("config key `state.store`"))
        } else {
            e
        }
    })?;
    Ok(Arc::from(store))
}

/// The state directory, created.
pub fn state_dir(state: &StateSection) -> anyhow::Result<PathBuf> {
    let dir = state.dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    Ok(dir)
}

/// Exponential backoff for retrying the chain: 1 s doubling to 60 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: Duration::from_secs(1),
        }
    }

    /// The pause before the next attempt (and doubles the one after).
    pub fn pause(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(60));
        d
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }
}

/// Hyperparameters, re-read at most once per `every` blocks.
#[derive(Debug, Default)]
pub struct HyperCache {
    at: Mutex<Option<(u64, Hyperparameters)>>,
}

impl HyperCache {
    pub async fn get(
        &self,
        chain: &dyn ChainClient,
        netuid: akihabara_core::Netuid,
        block: u64,
    ) -> Result<Hyperparameters, ChainError> {
        if let Ok(g) = self.at.lock()
            && let Some((at, h)) = g.as_ref()
            && block < at + h.tempo.max(1)
        {
            return Ok(h.clone());
        }
        let h = chain.hyperparameters(netuid).await?;
        if let Ok(mut g) = self.at.lock() {
            *g = Some((block, h.clone()));
        }
        Ok(h)
    }
}

/// Resolves on SIGINT, SIGTERM or after `duration` seconds.
pub async fn shutdown(duration: Option<f64>) {
    crate::commands::axon::shutdown_signal(duration.map(Duration::from_secs_f64)).await;
}

/// Checks `--duration`.
pub fn check_duration(d: Option<f64>) -> anyhow::Result<()> {
    match d {
        Some(v) if !(v.is_finite() && v > 0.0 && v < 1e9) => Err(bad_input(anyhow::anyhow!(
            "--duration must be a positive number of seconds, not {v}"
        ))),
        _ => Ok(()),
    }
}
