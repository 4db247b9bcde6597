//! `akihabara weights normalize|set|commit|reveal|status`.

mod timelock;

pub use timelock::drand_clock;

use std::path::PathBuf;

use akihabara_core::Uid;
use akihabara_core::chain::{ChainClient, Reveal, Subtensor};
use akihabara_core::weights::{convert_for_emit, normalize_max_weight};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::chain::{connect_with, print_receipt};
use crate::args::{ChainSignArgs, OutputArgs, SignerArgs, SubnetArgs};
use crate::exit::{self, bad_input};
use crate::{out, render};

#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Scale weights to u16 exactly as bittensor's convert_weights_and_uids_for_emit
    #[command(after_help = "\
The largest weight becomes 65535; the others are rounded (ties to even) and
zeros are dropped with their uids. --max-weight-limit first clips weights as
the SDK's normalize_max_weight does (sum 1, none above the limit).

Example:
  akihabara weights normalize --uids 0,1,2 --weights 0.5,0.25,0.125 --json
  {\"uids\":[0,1,2],\"weights\":[65535,32768,16384]}")]
    Normalize(WeightsNormalizeArgs),
    /// Set weights on chain, signed by the wallet's hotkey; waits for inclusion
    #[command(after_help = "\
Weights are scaled to u16 as the Bittensor SDK does (see `weights normalize`).
The rate limit, version key, registration and uids are checked first, so a
refused call costs no fee. Prints the block and the extrinsic hash.

On a subnet with commit-reveal enabled the weights are committed timelocked
instead, as the SDK's set_weights does (see `weights commit --timelock`): the
chain reveals them itself after the subnet's reveal period.

Example:
  akihabara weights set --network local --netuid 2 --wallet.name v1 \\
      --wallet.hotkey default --uids 2,3,4 --weights 1,0.5,0.25")]
    Set(WeightsSetArgs),
    /// Commit weights on a commit-reveal subnet: timelocked, or as a hash to reveal later
    #[command(after_help = "\
--timelock (what the SDK does): the weights are encrypted to a future round of
drand's quicknet beacon, picked from the subnet's reveal period, tempo and the
block time as bittensor-drand's get_encrypted_commit picks it. The chain
decrypts and applies them itself once that round's pulse is stored; nothing
is left to do, and a restart loses nothing. The call is chosen from the
runtime: commit_timelocked_weights (or its mechanism form with --mechid), or
commit_crv3_weights on older runtimes. A round already published or a
ciphertext over 5000 bytes is refused before any fee. --dry-run prints the
round and the reveal window without sending. Follow it with `weights status`.

--reveal-file (hash commit): writes what `weights reveal` needs (uids, u16
weights, salt, version key) to the file first, crash-safe, then sends the
commitment. Keep the file.

Environment: AKIHABARA_DRAND_NOW=UNIX_SECS replaces the clock the round is
computed from (for tests against recorded pulses).

Examples:
  akihabara weights commit --network local --netuid 2 --uids 2,3 --weights 1,1 --timelock
  akihabara weights commit --network local --netuid 2 --uids 2,3 --weights 1,1 \\
      --reveal-file reveal.json")]
    Commit(WeightsCommitArgs),
    /// Reveal weights committed earlier with `weights commit --reveal-file`
    Reveal(WeightsRevealArgs),
    /// Show the hotkey's pending commitments, their drand rounds, and the weights the chain holds
    #[command(after_help = "\
Reads, at one block: the timelocked commits the chain holds for the hotkey
(epoch, drand round, whether that round's pulse is stored yet, the blocks it
can be revealed in), hash commits awaiting `weights reveal`, the latest stored
drand round, and the weights the chain holds now with the block they were set.

Example:
  akihabara weights status --network local --netuid 2 --wallet.name v1 --json")]
    Status(timelock::WeightsStatusArgs),
}

/// The weights to normalize or set: one per uid.
#[derive(Debug, Args)]
pub struct UidWeightsArgs {
    /// Destination uids (comma-separated)
    #[arg(long, value_name = "UID,…", value_delimiter = ',', required = true)]
    pub uids: Vec<u16>,
    /// Weights, one per uid (comma-separated, non-negative)
    #[arg(
        long,
        value_name = "W,…",
        value_delimiter = ',',
        required = true,
        allow_negative_numbers = true
    )]
    pub weights: Vec<f64>,
}

#[derive(Debug, Args)]
pub struct WeightsNormalizeArgs {
    #[command(flatten)]
    pub weights: UidWeightsArgs,
    /// Clip so no weight exceeds this share of the total first (0 < X <= 1)
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub max_weight_limit: Option<f64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WeightsSetArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub signing: ChainSignArgs,
    #[command(flatten)]
    pub weights: UidWeightsArgs,
    /// Version key [default: the subnet's weights_version]
    #[arg(long, value_name = "K")]
    pub version_key: Option<u64>,
    #[command(flatten)]
    pub timelock: timelock::TimelockArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WeightsCommitArgs {
    #[command(flatten)]
    pub set: WeightsSetArgs,
    /// Encrypt the weights to a drand round; the chain reveals them itself
    #[arg(
        long,
        conflicts_with = "reveal_file",
        required_unless_present = "reveal_file"
    )]
    pub timelock: bool,
    /// With --timelock: print the round and reveal window, send nothing
    #[arg(long, requires = "timelock")]
    pub dry_run: bool,
    /// Hash commit: where to save the reveal (JSON)
    #[arg(long, value_name = "FILE")]
    pub reveal_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WeightsRevealArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub signing: ChainSignArgs,
    /// The file `weights commit` wrote
    #[arg(long, value_name = "FILE")]
    pub reveal_file: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara weights …`.
pub fn run(cmd: WeightsCommand) -> anyhow::Result<()> {
    match cmd {
        WeightsCommand::Normalize(a) => normalize(a),
        WeightsCommand::Set(a) => set_weights(a),
        WeightsCommand::Commit(a) => commit_weights(a),
        WeightsCommand::Reveal(a) => reveal_weights(a),
        WeightsCommand::Status(a) => timelock::status(a),
    }
}

impl UidWeightsArgs {
    fn uids(&self) -> Vec<Uid> {
        self.uids.iter().copied().map(Uid).collect()
    }
}

fn normalize(a: WeightsNormalizeArgs) -> anyhow::Result<()> {
    let uids = a.weights.uids();
    let weights = match a.max_weight_limit {
        Some(limit) => normalize_max_weight(&a.weights.weights, limit).map_err(bad_input)?,
        None => a.weights.weights.clone(),
    };
    let w = convert_for_emit(&uids, &weights).map_err(bad_input)?;
    let uids: Vec<u16> = w.uids.iter().map(|u| u.0).collect();
    if a.output.json {
        out::println(json!({ "uids": uids, "weights": w.weights }).to_string())?;
    } else if w.is_empty() {
        out::println("every weight is zero: nothing to set on chain")?;
    } else {
        out::println("UID  WEIGHT (u16)")?;
        for (u, v) in uids.iter().zip(&w.weights) {
            out::println(format!("{u:<4} {v}"))?;
        }
    }
    Ok(())
}

/// The u16 weights the SDK would send for `a`.
fn emit(a: &WeightsSetArgs) -> anyhow::Result<(Vec<Uid>, Vec<u16>)> {
    let uids = a.weights.uids();
    let w = convert_for_emit(&uids, &a.weights.weights).map_err(bad_input)?;
    if w.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "every weight is zero: there is nothing to set"
        )));
    }
    Ok((w.uids, w.weights))
}

pub(super) async fn version_key(chain: &Subtensor, a: &WeightsSetArgs) -> anyhow::Result<u64> {
    match a.version_key {
        Some(k) => Ok(k),
        None => Ok(chain
            .hyperparameters(a.subnet.netuid())
            .await
            .map_err(exit::chain)?
            .weights_version),
    }
}

/// `akihabara weights set`.
pub fn set_weights(a: WeightsSetArgs) -> anyhow::Result<()> {
    let (uids, weights) = emit(&a)?;
    let hotkey = a.signer.hotkey()?;
    let r = super::runtime()?.block_on(async {
        let chain = timelock::connect_for(&a).await?;
        let h = chain
            .hyperparameters(a.subnet.netuid())
            .await
            .map_err(exit::chain)?;
        let key = a.version_key.unwrap_or(h.weights_version);
        if h.commit_reveal_enabled {
            return timelock::commit(&chain, &a, &hotkey, uids, weights, key)
                .await
                .map(timelock::Landed::Timelocked);
        }
        if let Some(m) = a.timelock.mechid {
            return Err(bad_input(anyhow::anyhow!(
                "--mechid {m}: weights for a mechanism are only sent as timelocked commits, and netuid {} does not use commit-reveal",
                a.subnet.netuid
            )));
        }
        chain
            .set_weights(a.subnet.netuid(), &hotkey, &uids, &weights, key)
            .await
            .map(timelock::Landed::Set)
            .map_err(exit::chain)
    })?;
    match r {
        timelock::Landed::Set(r) => print_receipt("set_weights", &r, a.output.json),
        timelock::Landed::Timelocked(t) => timelock::print_commit(&t, a.output.json),
    }
}

/// `akihabara weights commit`.
pub fn commit_weights(a: WeightsCommitArgs) -> anyhow::Result<()> {
    let (uids, weights) = emit(&a.set)?;
    let hotkey = a.set.signer.hotkey()?;
    let Some(reveal_file) = a.reveal_file.clone() else {
        return timelock::commit_command(&a.set, a.dry_run, &hotkey, uids, weights);
    };
    if let Some(m) = a.set.timelock.mechid {
        return Err(bad_input(anyhow::anyhow!(
            "--mechid {m}: weights for a mechanism are only sent as timelocked commits (use --timelock)"
        )));
    }
    let r = super::runtime()?.block_on(async {
        let chain = connect_with(&a.set.subnet.network, None, &a.set.signing).await?;
        let key = version_key(&chain, &a.set).await?;
        let reveal = Reveal::new(uids, weights, key)?;
        let text = serde_json::to_string_pretty(&reveal)? + "\n";
        render::write_file(&reveal_file, &text)
            .with_context(|| format!("saving the reveal to {}", reveal_file.display()))?;
        let hash = reveal.hash(&hotkey.account(), a.set.subnet.netuid());
        let r = chain
            .commit_weights(a.set.subnet.netuid(), &hotkey, hash)
            .await
            .map_err(exit::chain)?;
        anyhow::Ok((r, hash))
    })?;
    let (r, hash) = r;
    if a.set.output.json {
        out::println(
            json!({
                "call": "commit_weights",
                "block": r.block,
                "extrinsic": r.extrinsic,
                "commit": format!("0x{}", hex::encode(hash)),
                "reveal_file": reveal_file,
            })
            .to_string(),
        )?;
        return Ok(());
    }
    print_receipt("commit_weights", &r, false)?;
    out::println(format!(
        "reveal it after the subnet's reveal period with: akihabara weights reveal --reveal-file {}",
        reveal_file.display()
    ))?;
    Ok(())
}

/// `akihabara weights reveal`.
pub fn reveal_weights(a: WeightsRevealArgs) -> anyhow::Result<()> {
    // A reveal file is a few KiB even for 4,096 uids' weights.
    let text = akihabara_core::fs::read_text_limited(&a.reveal_file, 16 << 20)
        .with_context(|| format!("reading {}", a.reveal_file.display()))
        .map_err(bad_input)?;
    let reveal: Reveal = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a reveal file", a.reveal_file.display()))
        .map_err(bad_input)?;
    let hotkey = a.signer.hotkey()?;
    let r = a.subnet.call_signing(&a.signing, async |chain, netuid| {
        chain.reveal_weights(netuid, &hotkey, &reveal).await
    })?;
    print_receipt("reveal_weights", &r, a.output.json)
}
