//! `akihabara gateway serve|keys`: the organic-jobs HTTP API of a validator
//! (the library's [`akihabara::gateway`]), and its client keys ([`keys`]).

mod keys;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use akihabara::gateway::http::{HttpSettings, Listener};
use akihabara::gateway::{ChainMiners, CrossChecker, Gateway, OrderRules, Router, RouterSettings};
use akihabara_core::executor::{Fleet, FleetConfig};
use akihabara_core::market::jobs::ReceiptStore;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::PasswordArgs;
use crate::config::{self, GatewayConfig, GatewaySection, StateSection};
use crate::daemon::{self, RunFlags, event, key_error};
use crate::exit::bad_input;

/// `akihabara gateway …`.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Serve the organic-jobs API: end users submit jobs, the validator routes them to miners
    #[command(after_help = "\
With only --listen and --state-dir the gateway starts, serves its OpenAPI
document at /openapi.json and refuses calls without a key; it routes nothing
until --config names the validator's wallet, the chain (or snapshot:FILE)
and the classes and images it sells:

  [wallet]
  name = \"validator\"
  [chain]
  network = \"finney\"          # or local, a ws:// URL, or snapshot:FILE
  netuid = 27
  [gateway]
  classes = [\"A100\"]
  images = [\"python:3.12-slim\"]
  max_timeout_s = 86400
  queue_timeout = \"5m\"
  cross_check_share = 0.02            # re-run this share of jobs on
  trusted_fleet = \"trusted.toml\"     # ... this fleet's executor

STATE holds gateway.redb (jobs, each state change written before it is acted
on, and the daily job counts), clients.json (the keys' hashes) and
receipts.jsonl (the miners' signed receipts). A gateway killed and started
again picks up every job where it was.

Prints one JSON line {\"event\":\"ready\",\"listen\":…} once it serves; stops on
SIGINT or SIGTERM.

Examples:
  akihabara gateway keys add --state-dir gw --name acme
  akihabara gateway serve --listen 0.0.0.0:8080 --state-dir gw --config gateway.toml")]
    Serve(ServeArgs),
    /// Issue, list and revoke the gateway's client keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// `akihabara gateway serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one, shown in the ready line)
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Directory for the jobs, client keys and receipts (created if missing)
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Wallet, chain and what is sold (see below); without it nothing is routed
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config key (repeatable)
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", requires = "config")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Runs a gateway command.
pub fn run(cmd: GatewayCommand) -> anyhow::Result<()> {
    match cmd {
        GatewayCommand::Serve(a) => serve(a),
        GatewayCommand::Keys(c) => keys::run(c),
    }
}

fn state_section(dir: &Path) -> StateSection {
    StateSection {
        dir: dir.to_owned(),
        store: Some(format!("embedded:{}", dir.join("gateway.redb").display())),
    }
}

fn rules_of(
    g: Option<&GatewaySection>,
) -> anyhow::Result<(OrderRules, RouterSettings, HttpSettings)> {
    let Some(g) = g else {
        return Ok((
            OrderRules::default(),
            RouterSettings::default(),
            HttpSettings::default(),
        ));
    };
    if g.max_timeout_s == 0 {
        return Err(key_error("gateway.max_timeout_s", "must be at least 1"));
    }
    if g.poll.is_zero() || g.call_timeout.is_zero() {
        return Err(key_error(
            "gateway.poll",
            "poll and call_timeout must be positive",
        ));
    }
    if g.max_connections == 0 {
        return Err(key_error("gateway.max_connections", "must be at least 1"));
    }
    if let Some(c) = g.classes.iter().find(|c| c.is_empty() || c.len() > 64) {
        return Err(key_error(
            "gateway.classes",
            format!("{c:?} is not a class name"),
        ));
    }
    let rules = OrderRules {
        classes: g.classes.iter().cloned().collect(),
        images: g.images.iter().cloned().collect(),
        allow_no_image: g.allow_no_image,
        max_timeout_s: g.max_timeout_s,
        volumes: g.volumes,
        max_input_bytes: g.max_input_mb.saturating_mul(1 << 20),
        allow_private_urls: g.allow_private_urls,
        ..OrderRules::default()
    };
    let router = RouterSettings {
        call_timeout: g.call_timeout,
        poll: g.poll,
        queue_timeout: g.queue_timeout,
        ..RouterSettings::default()
    };
    let http = HttpSettings {
        max_connections: g.max_connections,
        max_connections_per_ip: g.max_connections.min(32),
        ..HttpSettings::default()
    };
    Ok((rules, router, http))
}

/// The cross-checker `[gateway]` asks for: the trusted fleet's executor.
fn cross_checker(g: &GatewaySection) -> anyhow::Result<Option<CrossChecker>> {
    let Some(path) = &g.trusted_fleet else {
        return Ok(None);
    };
    let path = akihabara_core::fs::expand_tilde(path);
    let fleet = FleetConfig::read(&path).map_err(|e| key_error("gateway.trusted_fleet", e))?;
    // End users' code runs there: the same isolation rule as a miner's.
    for warning in fleet
        .check_remote_jobs(&path)
        .map_err(|e| key_error("gateway.trusted_fleet", e))?
    {
        eprintln!("warning: {warning}");
    }
    let id = match &g.trusted_executor {
        Some(id) => id.clone(),
        None => fleet
            .executors
            .first()
            .map(|e| e.id().to_owned())
            .ok_or_else(|| key_error("gateway.trusted_fleet", "the fleet has no executor"))?,
    };
    let fleet = Fleet::new(fleet);
    let backend = fleet.backend(&id).ok_or_else(|| {
        key_error(
            "gateway.trusted_executor",
            format!("no executor {id:?} in {}", path.display()),
        )
    })?;
    let checker = CrossChecker::new(backend, g.cross_check_share)
        .map_err(|e| key_error("gateway.cross_check_share", e))?
        .volumes(akihabara_core::market::volumes::VolumePolicy {
            allow_private: g.allow_private_urls,
            ..Default::default()
        });
    Ok(Some(checker))
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    daemon::check_duration(a.run.duration)?;
    let cfg: Option<GatewayConfig> = match &a.config {
        Some(path) => Some(config::load(path, config::process_env(), &a.set)?),
        None => None,
    };
    if let Some(c) = &cfg {
        daemon::check_chain(&c.chain)?;
        check(&c.gateway)?;
    }
    daemon::init_logging(a.run.log_format)?;
    let keypair = match &cfg {
        Some(c) => Some(crate::commands::wallet::load_hotkey(
            &daemon::wallet_args(&c.wallet),
            &a.password,
        )?),
        None => None,
    };
    std::fs::create_dir_all(&a.state_dir)
        .with_context(|| format!("creating the state directory {}", a.state_dir.display()))
        .map_err(bad_input)?;
    let state = state_section(&a.state_dir);
    let store = daemon::open_store(&state)?;
    let rt = crate::commands::axon::serve_runtime(2)?;
    rt.block_on(async move {
        let routed = match (&cfg, keypair) {
            (Some(c), Some(kp)) => {
                let chain = daemon::connect_chain(&c.chain, &state).await?;
                Some(Routed {
                    section: c.gateway.clone(),
                    chain,
                    netuid: akihabara_core::Netuid(c.chain.netuid),
                    keypair: kp,
                    dendrite: None,
                })
            }
            _ => None,
        };
        let started = start(a.listen, &a.state_dir, store, routed, a.run.duration).await?;
        event(json!({
            "event": "ready",
            "role": "gateway",
            "listen": started.local.to_string(),
            "gateway_id": started.gateway.id(),
            "openapi": format!("http://{}/openapi.json", started.local),
            "routing": started.routing,
            "cross_check": started.cross_check,
            "classes": started.gateway.rules().classes.iter().collect::<Vec<_>>(),
            "unfinished_jobs": started.gateway.active_jobs().len(),
        }));
        tracing::info!(local = %started.local, routing = started.routing, "gateway serving");
        // No validator keeps books here: finished jobs settle (and their
        // records expire) without pay; a validator's `[gateway]` pays them.
        started
            .gateway
            .settle_without_books_every(
                std::time::Duration::from_secs(30),
                daemon::shutdown(a.run.duration),
            )
            .await;
        anyhow::Ok(())
    })
}

/// Checks `[gateway]` before anything starts.
pub(crate) fn check(g: &GatewaySection) -> anyhow::Result<()> {
    rules_of(Some(g)).map(|_| ())
}

/// A gateway running in this process.
pub(crate) struct Started {
    pub gateway: Arc<Gateway>,
    pub local: SocketAddr,
    pub routing: bool,
    pub cross_check: bool,
}

/// What a gateway that routes jobs needs.
pub(crate) struct Routed {
    /// `[gateway]`.
    pub section: GatewaySection,
    /// The chain whose metagraph lists the miners.
    pub chain: Arc<dyn akihabara_core::chain::ChainClient>,
    /// The subnet.
    pub netuid: akihabara_core::Netuid,
    /// The validator's hotkey, which signs the routed jobs.
    pub keypair: akihabara_core::wallet::Keypair,
    /// Inside a validator, its rounds' dendrite, to share.
    pub dendrite: Option<akihabara_core::dendrite::Dendrite>,
}

/// Binds `listen` and serves a gateway over `store` (clients in
/// `state_dir/clients.json`, receipts in `state_dir/receipts.jsonl`) until
/// SIGTERM or `duration`; with `routed` (what is sold, the chain listing
/// the miners, the subnet and the validator's key), its router runs too.
/// `gateway serve` and `validator run`'s `[gateway]` both start it here.
pub(crate) async fn start(
    listen: SocketAddr,
    state_dir: &Path,
    store: Arc<dyn akihabara_core::store::Store>,
    routed: Option<Routed>,
    duration: Option<f64>,
) -> anyhow::Result<Started> {
    let (mut rules, router_settings, http) = rules_of(routed.as_ref().map(|r| &r.section))?;
    let listener = Listener::bind(listen, http).await?;
    let local = listener.local_addr()?;
    rules.own_addresses = vec![local, listen];
    let gateway = Gateway::open(store, keys::clients_in(state_dir), rules)?;
    let (mut routing, mut cross_check) = (false, false);
    if let Some(Routed {
        section: g,
        chain,
        netuid,
        keypair: kp,
        dendrite,
    }) = routed
    {
        let miners = ChainMiners::new(chain, netuid, kp.account());
        let mut router = Router::new(
            gateway.clone(),
            Arc::new(miners),
            kp,
            ReceiptStore::new(state_dir.join("receipts.jsonl")),
            router_settings,
        )?;
        // Inside a validator: one budget of calls in flight per miner for
        // the rounds and the routed jobs together.
        if let Some(d) = dendrite {
            router = router.sharing(d)?;
        }
        if let Some(checker) = cross_checker(&g)? {
            router = router.cross_check(checker);
            cross_check = true;
        }
        tokio::spawn(router.run(daemon::shutdown(duration)));
        routing = true;
    }
    tokio::spawn(listener.serve(gateway.clone(), daemon::shutdown(duration)));
    Ok(Started {
        gateway,
        local,
        routing,
        cross_check,
    })
}
