//! `akihabara gateway keys add|list|revoke`: the gateway's clients, kept in
//! `STATE/clients.json` (hashes only), editable while the gateway runs.

use std::path::{Path, PathBuf};

use akihabara::gateway::keys::{ClientLimits, Clients};
use akihabara_core::AccountId;
use akihabara_core::market::server::unix_millis;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::OutputArgs;
use crate::exit::bad_input;
use crate::out;

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

/// Runs a keys command.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Add(a) => keys_add(a),
        KeysCommand::List(a) => keys_list(a),
        KeysCommand::Revoke(a) => keys_revoke(a),
    }
}

/// The clients file (the keys commands work while the gateway runs: it
/// holds `gateway.redb`, not this file).
pub(super) fn clients_in(dir: &Path) -> Clients {
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
