//! `akihabara config init`: a commented template for one daemon, or with
//! `--offline` a whole subnet on a simulated chain that both daemons run
//! on as written.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use akihabara_core::metagraph::snapshot;
use akihabara_core::wallet::{Keypair, Wallet};
use akihabara_core::{Block, Metagraph, Netuid, Neuron, Rao, Tao, Uid};
use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::{MINER_TEMPLATE, VALIDATOR_TEMPLATE};
use crate::exit::{self, bad_input};
use crate::out;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented template to standard output or --out, or with
    /// --offline a subnet to run both daemons on without a chain
    #[command(after_help = "\
Examples:
  akihabara config init --role miner --out miner.toml
  akihabara config init --offline --dir akihabara-offline

--offline writes DIR/subnet.json (a simulated chain: one validator, uid 0,
and one miner, uid 1, with 1-second blocks), dev hotkeys for both under
DIR/wallets (derived from public URIs: for offline use only), and
DIR/miner.toml and DIR/validator.toml. Then, in two terminals:
  akihabara miner run --config akihabara-offline/miner.toml
  akihabara validator run --config akihabara-offline/validator.toml")]
    Init(ConfigInitArgs),
}

#[derive(Debug, Args)]
pub struct ConfigInitArgs {
    /// Which daemon the template is for
    #[arg(long, value_enum, required_unless_present = "offline")]
    pub role: Option<Role>,
    /// Write here instead of standard output (refuses to overwrite)
    #[arg(long, value_name = "FILE", conflicts_with = "offline")]
    pub out: Option<PathBuf>,
    /// Write a subnet on a simulated chain, dev keys and both daemons'
    /// configs into --dir instead of one template
    #[arg(long, requires = "dir", conflicts_with = "role")]
    pub offline: bool,
    /// With --offline: the directory to write (created if missing; files
    /// already there are not overwritten)
    #[arg(long, value_name = "DIR", requires = "offline")]
    pub dir: Option<PathBuf>,
}

/// A daemon role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// `akihabara miner run`
    Miner,
    /// `akihabara validator run`
    Validator,
}

/// Writes the role's commented template, or the offline subnet.
pub fn init(a: ConfigInitArgs) -> anyhow::Result<()> {
    if let (true, Some(dir)) = (a.offline, &a.dir) {
        return offline(dir);
    }
    let text = match a.role {
        Some(Role::Miner) => MINER_TEMPLATE,
        Some(Role::Validator) => VALIDATOR_TEMPLATE,
        None => return Err(bad_input(anyhow::anyhow!("give --role or --offline"))),
    };
    match &a.out {
        None => Ok(out::print(text)?),
        Some(path) => {
            refuse_existing(path)?;
            write(path, text)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
    }
}

fn refuse_existing(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Err(bad_input(anyhow::anyhow!(
            "{} exists; not overwriting it (remove it first)",
            path.display()
        )));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    akihabara_core::fs::write_atomic(path, text.as_bytes(), akihabara_core::fs::Access::Shared)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The offline subnet's dev keys: public URIs, so anyone can derive them.
const VALIDATOR_URI: &str = "//akihabara-offline/validator";
const MINER_URI: &str = "//akihabara-offline/miner";

/// `config init --offline --dir DIR`.
fn offline(dir: &Path) -> anyhow::Result<()> {
    for name in ["subnet.json", "miner.toml", "validator.toml", "wallets"] {
        refuse_existing(&dir.join(name))?;
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(bad_input)?;
    // Absolute paths in the configs, so the daemons run from anywhere.
    let dir = std::path::absolute(dir).context("the current directory")?;
    let validator = Keypair::from_uri(VALIDATOR_URI)?;
    let miner = Keypair::from_uri(MINER_URI)?;
    let wallets = dir.join("wallets");
    for (name, kp) in [("validator", &validator), ("miner", &miner)] {
        Wallet::new(&wallets, name, "default")
            .write_hotkey(kp, None, false)
            .map_err(exit::wallet)?;
    }
    // The miner's axon port, free now; the snapshot publishes it, as
    // `serve_axon` would on a chain.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port for the miner's axon")?
        .port();
    let stake = Tao::from_whole(1_000).context("stake")?.to_rao();
    let mut m = Neuron::new(Uid(1), miner.account(), Rao(0), false);
    m.axon = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let neurons = vec![Neuron::new(Uid(0), validator.account(), stake, true), m];
    let mg = Metagraph::new(Netuid(1), Block(1_000), neurons)?;
    let subnet = dir.join("subnet.json");
    snapshot::write(&subnet, &mg).with_context(|| format!("cannot write {}", subnet.display()))?;
    let start = humantime_serde::re::humantime::format_rfc3339_seconds(SystemTime::now());
    let chain = format!(
        "[chain]\n\
         # A simulation, not a chain: the subnet in subnet.json, one block a\n\
         # second from `start` (both daemons count from it, so they agree on\n\
         # the block). Weights land in STATE/simulated-chain.jsonl.\n\
         network = \"snapshot:{}\"\n\
         netuid = 1\n\
         block_time = \"1s\"\n\
         start = \"{start}\"\n\n\
         [chain.hyperparameters]\n\
         tempo = 20\n\
         weights_rate_limit = 5\n\
         commit_reveal_enabled = false\n\
         weights_version = 0\n\
         max_weight_limit = 65535\n",
        subnet.display()
    );
    let wallet = |name: &str, uri: &str| {
        format!(
            "[wallet]\n# Dev hotkeys from {uri}: for offline use only.\npath = \"{}\"\nname = \"{name}\"\nhotkey = \"default\"\n",
            wallets.display()
        )
    };
    let header = "# Written by `akihabara config init --offline`. Every key is explained in\n\
                  # `akihabara config init --role ROLE`.\n\n";
    let miner_toml = format!(
        "{header}{}\n{chain}\n\
         [axon]\nip = \"127.0.0.1\"\nport = {port}\n\n\
         [schedule]\n# A 40-block window (two tempos); slots of at least 10 blocks.\nmin_blocks = 10\npoll = \"1s\"\n\n\
         [pow]\nprover = \"cpu\"\n\n\
         [state]\ndir = \"{}\"\n\n\
         [metrics]\n# Any free port.\nlisten = \"127.0.0.1:0\"\n",
        wallet("miner", MINER_URI),
        dir.join("miner-state").display()
    );
    let validator_toml = format!(
        "{header}{}\n{chain}\n\
         [validator]\n# A proof-of-work round every 2 blocks.\nround_blocks = 2\npoll = \"1s\"\n\n\
         [pow]\n# Small challenges: a fraction of a second on one CPU core.\nn = 256\ncount = 1\nsamples = 8\n\n\
         [state]\ndir = \"{}\"\n\n\
         [metrics]\n# Any free port.\nlisten = \"127.0.0.1:0\"\n",
        wallet("validator", VALIDATOR_URI),
        dir.join("validator-state").display()
    );
    write(&dir.join("miner.toml"), &miner_toml)?;
    write(&dir.join("validator.toml"), &validator_toml)?;
    let shown = |f: &str| dir.join(f).display().to_string();
    out::println(format!(
        "wrote an offline subnet to {}: a simulated chain (subnet.json, netuid 1, 1-second blocks),\n\
         dev hotkeys for validator uid 0 and miner uid 1 (wallets/), miner.toml and validator.toml.\n\
         Run each daemon in its own terminal:\n  \
         akihabara miner run --config {}\n  \
         akihabara validator run --config {}\n\
         The validator prints a `round` line for each proof-of-work round and a `weights` line\n\
         when it sets weights (within a minute).",
        dir.display(),
        shown("miner.toml"),
        shown("validator.toml"),
    ))?;
    Ok(())
}
