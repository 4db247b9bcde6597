//! `akihabara chain serve-axon|register|hyperparams`, and the connection and
//! error classes the other chain commands (`metagraph`, `weights`) share:
//! thin wrappers over [`akihabara_core::chain::Subtensor`].

use std::time::Duration;

use akihabara_core::Netuid;
use akihabara_core::chain::{
    ChainClient, ChainError, Network, Receipt, Subtensor, SubtensorOptions,
};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::{ChainSignArgs, NetworkArgs, OutputArgs, SignerArgs, SubnetArgs};
use crate::exit::{self, bad_input};
use crate::out;

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Announce the hotkey's axon address (skipped when already served there)
    #[command(after_help = "\
The chain refuses loopback 127.0.0.1 and private ranges on public networks.

Example:
  akihabara chain serve-axon --network local --netuid 2 --ip 127.0.0.2 --port 8091")]
    ServeAxon(ServeAxonArgs),
    /// Register the wallet's hotkey by burning TAO from its coldkey
    #[command(after_help = "\
The coldkey signs (it is decrypted with its password); the burn is the
subnet's current registration cost.

Example:
  akihabara chain register --network local --netuid 2 --wallet.name miner")]
    Register(RegisterArgs),
    /// Show the subnet's hyperparameters that miners and validators act on
    Hyperparams(HyperparamsArgs),
}

#[derive(Debug, Args)]
pub struct ServeAxonArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub signing: ChainSignArgs,
    /// Public IP of the axon
    #[arg(long)]
    pub ip: std::net::IpAddr,
    /// Port of the axon
    #[arg(long)]
    pub port: u16,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub signing: ChainSignArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct HyperparamsArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara chain …`.
pub fn run(cmd: ChainCommand) -> anyhow::Result<()> {
    match cmd {
        ChainCommand::ServeAxon(a) => serve_axon(a),
        ChainCommand::Register(a) => register(a),
        ChainCommand::Hyperparams(a) => hyperparams(a),
    }
}

impl SubnetArgs {
    /// Connects to `--network` and makes one call about `--netuid`; chain
    /// errors that are the user's to fix exit with 2.
    pub(crate) fn call<T>(
        &self,
        call: impl AsyncFnOnce(&Subtensor, Netuid) -> Result<T, ChainError>,
    ) -> anyhow::Result<T> {
        self.call_signing(&ChainSignArgs::default(), call)
    }

    /// [`SubnetArgs::call`] for a call that signs, with what it may sign.
    pub(crate) fn call_signing<T>(
        &self,
        signing: &ChainSignArgs,
        call: impl AsyncFnOnce(&Subtensor, Netuid) -> Result<T, ChainError>,
    ) -> anyhow::Result<T> {
        super::runtime()?.block_on(async {
            let chain = connect_with(&self.network, None, signing).await?;
            call(&chain, self.netuid()).await.map_err(exit::chain)
        })
    }
}

pub(crate) async fn connect(n: &NetworkArgs) -> anyhow::Result<Subtensor> {
    connect_with(n, None, &ChainSignArgs::default()).await
}

/// [`connect`], with the block time drand rounds are computed with.
pub(crate) async fn connect_with(
    n: &NetworkArgs,
    block_time: Option<Duration>,
    signing: &ChainSignArgs,
) -> anyhow::Result<Subtensor> {
    let network: Network = n.network.parse().map_err(bad_input)?;
    if n.timeout == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--chain-timeout must be at least 1 second"
        )));
    }
    let opts = SubtensorOptions {
        connect_timeout: Duration::from_secs(n.timeout),
        timeout: Duration::from_secs(n.timeout),
        block_time: block_time.unwrap_or(SubtensorOptions::default().block_time),
        sign_unpinned_calls: signing.sign_unpinned_calls,
        ..SubtensorOptions::default()
    };
    Subtensor::connect_with(&network, opts)
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("connecting to {}", network.url())))
}

pub(crate) fn print_receipt(what: &str, r: &Receipt, json: bool) -> anyhow::Result<()> {
    if json {
        out::println(
            json!({ "call": what, "block": r.block, "extrinsic": r.extrinsic }).to_string(),
        )?;
    } else {
        out::println(format!(
            "{what}: included in block {} (extrinsic {})",
            r.block, r.extrinsic
        ))?;
    }
    Ok(())
}

fn serve_axon(a: ServeAxonArgs) -> anyhow::Result<()> {
    let hotkey = a.signer.hotkey()?;
    let r = a.subnet.call_signing(&a.signing, async |chain, netuid| {
        chain.serve_axon(netuid, &hotkey, a.ip, a.port).await
    })?;
    match r {
        Some(r) => print_receipt("serve_axon", &r, a.output.json),
        None if a.output.json => Ok(out::println(
            json!({ "call": "serve_axon", "unchanged": true }).to_string(),
        )?),
        None => Ok(out::println(format!(
            "the axon is already served at {}:{}: nothing sent",
            a.ip, a.port
        ))?),
    }
}

fn register(a: RegisterArgs) -> anyhow::Result<()> {
    let hotkey = a.signer.hotkey_account()?;
    let coldkey = a.signer.coldkey()?;
    let r = a.subnet.call_signing(&a.signing, async |chain, netuid| {
        chain.burned_register(netuid, &coldkey, &hotkey).await
    })?;
    print_receipt("burned_register", &r, a.output.json)
}

fn hyperparams(a: HyperparamsArgs) -> anyhow::Result<()> {
    let h = a
        .subnet
        .call(async |chain, netuid| chain.hyperparameters(netuid).await)?;
    if a.output.json {
        out::println(serde_json::to_string(&h)?)?;
    } else {
        out::println(format!(
            "tempo                  {}\nweights_rate_limit     {}\ncommit_reveal_enabled  {}\nweights_version        {}\nmax_weight_limit       {} ({:.4})",
            h.tempo,
            h.weights_rate_limit,
            h.commit_reveal_enabled,
            h.weights_version,
            h.max_weight_limit,
            f64::from(h.max_weight_limit) / f64::from(u16::MAX)
        ))?;
    }
    Ok(())
}
