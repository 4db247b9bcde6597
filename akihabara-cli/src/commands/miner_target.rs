//! What the validator-side commands (`jobs`, `allocate`, `deallocate`,
//! `allocations`) share: the miner they call, the validator's wallet and
//! state directory, and how a failed call becomes an exit code.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use akihabara_core::AccountId;
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::executor::Requirements;
use akihabara_core::market::client::ClientError;
use akihabara_core::wallet::Keypair;
use anyhow::Context;
use clap::Args;

use akihabara_core::chain::ChainClient;

use crate::args::{NetworkArgs, PasswordArgs, WalletArgs};
use crate::commands::read_metagraph;
use crate::commands::wallet::{hotkey_account, load_hotkey};
use crate::exit::{self, bad_input};

/// The miner to call: its axon and hotkey, given, or found by uid in a
/// snapshot or on the chain.
#[derive(Debug, Args)]
pub struct MinerArgs {
    /// The miner's axon address
    #[arg(long, default_value = "127.0.0.1", conflicts_with_all = ["metagraph", "netuid"])]
    pub ip: IpAddr,
    /// The miner's axon port
    #[arg(
        long,
        required_unless_present_any = ["metagraph", "netuid"],
        conflicts_with_all = ["metagraph", "netuid"]
    )]
    pub port: Option<u16>,
    /// The miner's hotkey (SS58): signed into the call; its receipts must be this key's
    #[arg(
        long,
        value_name = "SS58",
        required_unless_present_any = ["metagraph", "netuid"],
        conflicts_with_all = ["metagraph", "netuid"]
    )]
    pub axon_hotkey: Option<AccountId>,
    /// Find the miner (--uid) in this metagraph snapshot
    /// (`akihabara metagraph --netuid N --json > mg.json`)
    #[arg(long, value_name = "FILE", requires = "uid", conflicts_with = "netuid")]
    pub metagraph: Option<PathBuf>,
    /// Find the miner (--uid) in this subnet's metagraph on --network
    #[arg(long, value_name = "N", requires = "uid")]
    pub netuid: Option<u16>,
    /// The miner's uid, with --metagraph or --netuid
    #[arg(long, value_name = "UID")]
    pub uid: Option<u16>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

impl MinerArgs {
    /// The target these flags name (reads the chain with --netuid).
    pub async fn target(&self) -> anyhow::Result<AxonTarget> {
        let (mg, from) = match (&self.metagraph, self.netuid) {
            (Some(path), _) => (
                read_metagraph(path).map_err(bad_input)?,
                path.display().to_string(),
            ),
            (None, Some(netuid)) => {
                let chain = super::chain::connect(&self.network).await?;
                let mg = chain
                    .metagraph(akihabara_core::Netuid(netuid))
                    .await
                    .map_err(exit::chain)?;
                (mg, format!("subnet {netuid} on {}", self.network.network))
            }
            (None, None) => {
                return match (self.port, self.axon_hotkey, self.uid) {
                    (_, _, Some(_)) => Err(bad_input(anyhow::anyhow!(
                        "--uid needs --metagraph or --netuid"
                    ))),
                    (Some(port), Some(hotkey), None) => Ok(AxonTarget::new(self.ip, port, hotkey)),
                    _ => Err(bad_input(anyhow::anyhow!(
                        "name the miner with --port and --axon-hotkey, or --uid with \
                         --metagraph or --netuid"
                    ))),
                };
            }
        };
        let uid = self
            .uid
            .ok_or_else(|| bad_input(anyhow::anyhow!("--uid is missing")))?;
        let n = mg
            .by_uid(akihabara_core::Uid(uid))
            .ok_or_else(|| bad_input(anyhow::anyhow!("no uid {uid} in {from}")))?;
        let axon = n
            .axon
            .ok_or_else(|| bad_input(anyhow::anyhow!("uid {uid} in {from} serves no axon")))?;
        Ok(AxonTarget::new(axon.ip(), axon.port(), n.hotkey))
    }
}

/// What the executor must offer (none by default).
#[derive(Debug, Args)]
pub struct RequirementsArgs {
    /// Logical CPUs wanted
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub cpus: u32,
    /// GPUs wanted
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gpus: u32,
    /// Memory wanted, MiB
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub ram_mb: u64,
    /// Disk wanted, MiB
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub disk_mb: u64,
}

impl RequirementsArgs {
    /// As the wire carries them.
    pub fn requirements(&self) -> Requirements {
        Requirements {
            cpu: self.cpus,
            gpu: self.gpus,
            ram_mb: self.ram_mb,
            hard_disk_mb: self.disk_mb,
        }
    }
}

/// The validator: its wallet, its state directory, how long to wait.
#[derive(Debug, Args)]
pub struct ValidatorArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Where receipts (receipts.jsonl) and allocations (allocations.json)
    /// are kept [default: ~/.akihabara/validator/<hotkey SS58>]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seconds to wait for the miner's answer
    #[arg(
        long = "timeout",
        value_name = "S",
        default_value_t = 30.0,
        allow_negative_numbers = true
    )]
    pub call_timeout: f64,
}

impl ValidatorArgs {
    /// The call timeout.
    pub fn timeout(&self) -> anyhow::Result<Duration> {
        seconds("--timeout", self.call_timeout)
    }

    /// The hotkey pair that signs calls and jobs.
    pub fn keypair(&self) -> anyhow::Result<Keypair> {
        load_hotkey(&self.wallet, &self.password)
    }

    /// The state directory (created), for `hotkey`.
    pub fn state_dir(&self, hotkey: &AccountId) -> anyhow::Result<PathBuf> {
        let dir = state_dir(self.state_dir.as_ref(), hotkey);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        Ok(dir)
    }
}

/// `--state-dir`, or `~/.akihabara/validator/<hotkey SS58>`.
pub fn state_dir(given: Option<&PathBuf>, hotkey: &AccountId) -> PathBuf {
    match given {
        Some(d) => d.clone(),
        None => akihabara_core::fs::expand_tilde(std::path::Path::new("~/.akihabara/validator"))
            .join(hotkey.to_ss58()),
    }
}

/// The state directory of `wallet` without loading its secret.
pub fn public_state_dir(given: Option<&PathBuf>, wallet: &WalletArgs) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => Ok(state_dir(None, &hotkey_account(wallet)?)),
    }
}

/// A positive number of seconds.
pub fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(bad_input(anyhow::anyhow!(
            "{flag} must be a positive number of seconds, not {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A dendrite signing with `keypair`, from the loopback address when the
/// miner is there.
pub fn dendrite(keypair: Keypair, target: &AxonTarget) -> anyhow::Result<Dendrite> {
    let own_ip = if target.ip.is_loopback() {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };
    Ok(Dendrite::with_options(
        keypair,
        akihabara_core::dendrite::AuthMode::Legacy,
        own_ip,
    )?)
}

/// A failed call, with its exit code (see [`exit::client`]).
pub fn client_error(e: ClientError, target: &AxonTarget) -> anyhow::Error {
    exit::client(e, target)
}

/// Milliseconds since the Unix epoch, as an RFC 3339 UTC time for people.
pub fn utc(ms: u64) -> String {
    humantime_serde::re::humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(ms),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_definition_is_consistent() {
        // Duplicate ids, dangling `requires` and the like panic here, not
        // at a user's first `--help`.
        <crate::args::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
