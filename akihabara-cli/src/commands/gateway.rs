//! `akihabara gateway serve|keys`: the organic-jobs HTTP API of a validator
//! (the library's [`akihabara::gateway`]), and its client keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use akihabara::gateway::http::{HttpSettings, Listener};
use akihabara::gateway::keys::{ClientLimits, Clients};
use akihabara::gateway::{ChainMiners, CrossChecker, Gateway, OrderRules, Router, RouterSettings};
use akihabara_core::AccountId;
use akihabara_core::executor::{Fleet, FleetConfig};
use akihabara_core::market::jobs::ReceiptStore;
use akihabara_core::market::server::unix_millis;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::{OutputArgs, PasswordArgs};
use crate::config::{self, GatewayConfig, GatewaySection, StateSection};
use crate::daemon::{self, LogFormat, event, key_error};
use crate::exit::bad_input;
use crate::out;

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
    Keys(KeysCommand),
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
    /// Log format on standard error
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Stop by itself after S seconds (as on SIGTERM)
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// `akihabara gateway keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue an API key (printed once; only its hash is kept), or admit a hotkey
    #[command(after_help = "\
Clients send the key as `Authorization: Bearer akh_…`. A hotkey client
(--hotkey) signs each request instead; see /openapi.json. Keys can be added
and revoked while the gateway runs.

Examples:
  akihabara gateway keys add --state-dir gw --name acme --jobs-per-day 500
  akihabara gateway keys add --state-dir gw --name lab --hotkey 5F… --json")]
    Add(KeysAddArgs),
    /// List the clients (never their keys)
    List(KeysListArgs),
    /// Refuse a client's key or hotkey from now on
    Revoke(KeysRevokeArgs),
}

/// `--state-dir` of the keys commands.
#[derive(Debug, Args)]
pub struct StateDirArgs {
    /// The gateway's state directory
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
}

/// `akihabara gateway keys add`.
#[derive(Debug, Args)]
pub struct KeysAddArgs {
    #[command(flatten)]
    pub state: StateDirArgs,
    /// A name for people (1 to 64 characters)
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Admit requests signed by this hotkey instead of issuing a key
    #[arg(long, value_name = "SS58")]
    pub hotkey: Option<AccountId>,
    /// Sustained requests per second
    #[arg(long, value_name = "R", default_value_t = 5.0)]
    pub rate: f64,
    /// Requests at once after a quiet spell
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub burst: u32,
    /// Jobs a UTC day
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub jobs_per_day: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara gateway keys list`.
#[derive(Debug, Args)]
pub struct KeysListArgs {
    #[command(flatten)]
    pub state: StateDirArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara gateway keys revoke`.
#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    /// The client's id (c-…), as `keys list` shows it
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub state: StateDirArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs a gateway command.
pub fn run(cmd: GatewayCommand) -> anyhow::Result<()> {
    match cmd {
        GatewayCommand::Serve(a) => serve(a),
        GatewayCommand::Keys(KeysCommand::Add(a)) => keys_add(a),
        GatewayCommand::Keys(KeysCommand::List(a)) => keys_list(a),
        GatewayCommand::Keys(KeysCommand::Revoke(a)) => keys_revoke(a),
    }
}

fn state_section(dir: &Path) -> StateSection {
    StateSection {
        dir: dir.to_owned(),
        store: Some(format!("embedded:{}", dir.join("gateway.redb").display())),
    }
}

/// The clients file (the keys commands work while the gateway runs: it
/// holds `gateway.redb`, not this file).
fn clients_in(dir: &Path) -> Clients {
    Clients::new(dir.join("clients.json"))
}

fn keys_add(a: KeysAddArgs) -> anyhow::Result<()> {
    let limits = ClientLimits {
        rate_per_s: a.rate,
        burst: a.burst,
        jobs_per_day: a.jobs_per_day,
    };
    let clients = clients_in(&a.state.state_dir);
    let now = unix_millis();
    let (client, key) = match a.hotkey {
        Some(hk) => (
            clients
                .add_hotkey(&a.name, hk, &limits, now)
                .map_err(bad_input)?,
            None,
        ),
        None => {
            let (c, k) = clients.add_key(&a.name, &limits, now).map_err(bad_input)?;
            (c, Some(k))
        }
    };
    if a.output.json {
        out::println(
            json!({
                "id": client.id,
                "name": client.name,
                "key": key,
                "hotkey": client.hotkey,
                "rate_per_s": client.rate_per_s,
                "burst": client.burst,
                "jobs_per_day": client.jobs_per_day,
            })
            .to_string(),
        )?;
        return Ok(());
    }
    match key {
        Some(k) => {
            out::println(format!("client {} ({}): {k}", client.id, client.name))?;
            out::println(
                "Keep the key now: it is shown once, and the gateway keeps only its hash.",
            )?;
        }
        None => out::println(format!(
            "client {} ({}): requests signed by {}",
            client.id,
            client.name,
            a.hotkey.map(|h| h.to_string()).unwrap_or_default()
        ))?,
    }
    Ok(())
}

fn keys_list(a: KeysListArgs) -> anyhow::Result<()> {
    let clients = clients_in(&a.state.state_dir).list().map_err(bad_input)?;
    if a.output.json {
        let rows: Vec<_> = clients
            .iter()
            .map(|c| {
                json!({
                    "id": c.id, "name": c.name, "kind": if c.hotkey.is_some() { "hotkey" } else { "key" },
                    "hotkey": c.hotkey, "rate_per_s": c.rate_per_s, "burst": c.burst,
                    "jobs_per_day": c.jobs_per_day, "created_ms": c.created_ms, "revoked": c.revoked,
                })
            })
            .collect();
        out::println(json!({ "clients": rows }).to_string())?;
        return Ok(());
    }
    if clients.is_empty() {
        out::println("no clients; add one with `akihabara gateway keys add`")?;
    }
    for c in clients {
        out::println(format!(
            "{:<16} {:<24} {:<7} {:>8}/s burst {:<5} {:>6} jobs/day{}",
            c.id,
            c.name,
            if c.hotkey.is_some() { "hotkey" } else { "key" },
            c.rate_per_s,
            c.burst,
            c.jobs_per_day,
            if c.revoked { "  REVOKED" } else { "" }
        ))?;
    }
    Ok(())
}

fn keys_revoke(a: KeysRevokeArgs) -> anyhow::Result<()> {
    let c = clients_in(&a.state.state_dir)
        .revoke(&a.id)
        .map_err(bad_input)?;
    if a.output.json {
        out::println(json!({"id": c.id, "revoked": true}).to_string())?;
    } else {
        out::println(format!("client {} ({}) revoked", c.id, c.name))?;
    }
    Ok(())
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
        .map_err(|e| key_error("gateway.cross_check_share", e))?;
    Ok(Some(checker))
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    daemon::check_duration(a.duration)?;
    let cfg: Option<GatewayConfig> = match &a.config {
        Some(path) => Some(config::load(path, config::process_env(), &a.set)?),
        None => None,
    };
    if let Some(c) = &cfg {
        daemon::check_chain(&c.chain)?;
        check(&c.gateway)?;
    }
    daemon::init_logging(a.log_format)?;
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
                Some((
                    c.gateway.clone(),
                    chain,
                    akihabara_core::Netuid(c.chain.netuid),
                    kp,
                ))
            }
            _ => None,
        };
        let started = start(a.listen, &a.state_dir, store, routed, a.duration).await?;
        event(json!({
            "event": "ready",
            "role": "gateway",
            "listen": started.local.to_string(),
            "openapi": format!("http://{}/openapi.json", started.local),
            "routing": started.routing,
            "cross_check": started.cross_check,
            "classes": started.gateway.rules().classes.iter().collect::<Vec<_>>(),
            "unfinished_jobs": started.gateway.active_jobs().len(),
        }));
        tracing::info!(local = %started.local, routing = started.routing, "gateway serving");
        daemon::shutdown(a.duration).await;
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

/// Binds `listen` and serves a gateway over `store` (clients in
/// `state_dir/clients.json`, receipts in `state_dir/receipts.jsonl`) until
/// SIGTERM or `duration`; with `routed` (what is sold, the chain listing
/// the miners, the subnet and the validator's key), its router runs too.
/// `gateway serve` and `validator run`'s `[gateway]` both start it here.
pub(crate) async fn start(
    listen: SocketAddr,
    state_dir: &Path,
    store: Arc<dyn akihabara_core::store::Store>,
    routed: Option<(
        GatewaySection,
        Arc<dyn akihabara_core::chain::ChainClient>,
        akihabara_core::Netuid,
        akihabara_core::wallet::Keypair,
    )>,
    duration: Option<f64>,
) -> anyhow::Result<Started> {
    let (mut rules, router_settings, http) = rules_of(routed.as_ref().map(|r| &r.0))?;
    let listener = Listener::bind(listen, http).await?;
    let local = listener.local_addr()?;
    rules.own_addresses = vec![local, listen];
    let gateway = Gateway::open(store, clients_in(state_dir), rules)?;
    let (mut routing, mut cross_check) = (false, false);
    if let Some((g, chain, netuid, kp)) = routed {
        let miners = ChainMiners::new(chain, netuid, kp.account());
        let mut router = Router::new(
            gateway.clone(),
            Arc::new(miners),
            kp,
            ReceiptStore::new(state_dir.join("receipts.jsonl")),
            router_settings,
        )?;
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
