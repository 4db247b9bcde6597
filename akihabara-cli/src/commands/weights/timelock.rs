//! Timelocked commits (`weights commit --timelock`, and `weights set` on a
//! commit-reveal subnet) and `weights status`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use akihabara_core::chain::{
    ChainClient, CommitStatus, MechId, PendingCommit, Receipt, Subtensor, TimelockReceipt,
    TimelockWeights,
};
use akihabara_core::wallet::Keypair;
use akihabara_core::{Hotkey, Uid};
use clap::Args;
use serde_json::json;

use super::{WeightsSetArgs, version_key};
use crate::args::{OutputArgs, SubnetArgs, WalletArgs};
use crate::commands::chain::connect_with;
use crate::exit::{self, bad_input};

use crate::out;

/// The environment variable that replaces the clock drand rounds are
/// computed from: Unix seconds (fractions allowed).
pub const DRAND_NOW_ENV: &str = "AKIHABARA_DRAND_NOW";

/// How a timelocked commit is aimed.
#[derive(Debug, Args, Clone)]
pub struct TimelockArgs {
    /// Mechanism (sub-subnet) to commit for, on runtimes with mechanisms
    #[arg(long, value_name = "ID")]
    pub mechid: Option<u8>,
    /// Seconds per block, to turn the blocks until the reveal into a drand round
    #[arg(long, value_name = "SECS", default_value_t = 12.0)]
    pub block_time: f64,
}

#[derive(Debug, Args)]
pub struct WeightsStatusArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Mechanism (sub-subnet), on runtimes with mechanisms
    #[arg(long, value_name = "ID")]
    pub mechid: Option<u8>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `weights set` did.
pub enum Landed {
    /// Set in the clear.
    Set(Receipt),
    /// Committed timelocked (the subnet wants commit-reveal).
    Timelocked(TimelockReceipt),
}

/// The clock drand rounds are computed from: the system's, or
/// [`DRAND_NOW_ENV`].
pub fn drand_now() -> anyhow::Result<Duration> {
    match std::env::var(DRAND_NOW_ENV) {
        Ok(text) => {
            let secs: f64 = text.trim().parse().map_err(|_| {
                bad_input(anyhow::anyhow!(
                    "{DRAND_NOW_ENV}={text:?} is not a number of Unix seconds"
                ))
            })?;
            Duration::try_from_secs_f64(secs).map_err(|_| {
                bad_input(anyhow::anyhow!(
                    "{DRAND_NOW_ENV}={text:?} is not a time after 1970"
                ))
            })
        }
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| anyhow::anyhow!("the system clock is before 1970")),
    }
}

/// [`drand_now`] as a clock for the library (a frozen one when
/// [`DRAND_NOW_ENV`] pins it).
pub fn drand_clock() -> anyhow::Result<std::sync::Arc<dyn akihabara_core::clock::Clock>> {
    use akihabara_core::clock::{ManualClock, WallClock};
    if std::env::var_os(DRAND_NOW_ENV).is_none() {
        return Ok(std::sync::Arc::new(WallClock::since(UNIX_EPOCH)));
    }
    let pinned = ManualClock::new();
    pinned.advance(drand_now()?);
    tracing::warn!(
        env = DRAND_NOW_ENV,
        "the clock drand rounds are computed from is pinned"
    );
    Ok(std::sync::Arc::new(pinned))
}

impl TimelockArgs {
    fn block_time(&self) -> anyhow::Result<Duration> {
        if !(self.block_time.is_finite() && self.block_time > 0.0 && self.block_time <= 3600.0) {
            return Err(bad_input(anyhow::anyhow!(
                "--block-time must be a number of seconds above 0 and at most 3600"
            )));
        }
        Ok(Duration::from_secs_f64(self.block_time))
    }
}

/// Connects with `--block-time` set, so rounds are computed with it.
pub async fn connect_for(a: &WeightsSetArgs) -> anyhow::Result<Subtensor> {
    connect_with(
        &a.subnet.network,
        Some(a.timelock.block_time()?),
        &a.signing,
    )
    .await
}

fn weights(
    a: &WeightsSetArgs,
    uids: Vec<Uid>,
    weights: Vec<u16>,
    version_key: u64,
) -> TimelockWeights {
    TimelockWeights {
        uids,
        weights,
        version_key,
        mechid: a.timelock.mechid.map(MechId),
    }
}

/// Commits timelocked (also `weights set` on a commit-reveal subnet).
pub async fn commit(
    chain: &Subtensor,
    a: &WeightsSetArgs,
    hotkey: &Keypair,
    uids: Vec<Uid>,
    w: Vec<u16>,
    version_key: u64,
) -> anyhow::Result<TimelockReceipt> {
    let now = drand_now()?;
    chain
        .commit_timelocked_weights(
            a.subnet.netuid(),
            hotkey,
            &weights(a, uids, w, version_key),
            now,
        )
        .await
        .map_err(exit::chain)
}

/// `akihabara weights commit --timelock [--dry-run]`.
pub fn commit_command(
    a: &WeightsSetArgs,
    dry_run: bool,
    hotkey: &Keypair,
    uids: Vec<Uid>,
    w: Vec<u16>,
) -> anyhow::Result<()> {
    crate::commands::runtime()?.block_on(async {
        let chain = connect_for(a).await?;
        let key = version_key(&chain, a).await?;
        if dry_run {
            let now = drand_now()?;
            let s = chain
                .sealed_weights(a.subnet.netuid(), hotkey, &weights(a, uids, w, key), now)
                .await
                .map_err(exit::chain)?;
            if a.output.json {
                let mut v = serde_json::to_value(&s)?;
                v["dry_run"] = json!(true);
                out::println(v.to_string())?;
            } else {
                out::println(format!(
                    "dry run at block {}: {} would encrypt {} bytes to drand round {}; \
                     the chain would reveal them in blocks {}-{} (epoch {} + the reveal period)",
                    s.block,
                    s.call,
                    s.sealed_len,
                    s.reveal_round,
                    s.reveal_from,
                    s.reveal_until,
                    s.commit_epoch
                ))?;
            }
            return Ok(());
        }
        let t = commit(&chain, a, hotkey, uids, w, key).await?;
        print_commit(&t, a.output.json)
    })
}

/// Prints a timelocked commit: where it landed and when it is revealed.
pub fn print_commit(t: &TimelockReceipt, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(t)?;
        v["block"] = json!(t.receipt.block);
        v["extrinsic"] = json!(t.receipt.extrinsic);
        if let Some(o) = v.as_object_mut() {
            o.remove("receipt");
        }
        return out::println(v.to_string()).map_err(Into::into);
    }
    out::println(format!(
        "{}: included in block {} (extrinsic {})",
        t.call, t.receipt.block, t.receipt.extrinsic
    ))?;
    out::println(format!(
        "encrypted to drand round {} ({} bytes); the chain reveals the weights in blocks {}-{} \
         once that round's pulse is stored; see `akihabara weights status`",
        t.reveal_round, t.sealed_len, t.reveal_from, t.reveal_until
    ))?;
    Ok(())
}

/// `akihabara weights status`.
pub fn status(a: WeightsStatusArgs) -> anyhow::Result<()> {
    let hotkey: Hotkey = crate::commands::wallet::hotkey_account(&a.wallet)?;
    let mechid = a.mechid.map(MechId);
    let s = a
        .subnet
        .call(async |chain, netuid| chain.commit_status(netuid, &hotkey, mechid).await)?;
    if a.output.json {
        return out::println(serde_json::to_string(&s)?).map_err(Into::into);
    }
    print_status(&s)
}

fn print_status(s: &CommitStatus) -> anyhow::Result<()> {
    let drand = match s.last_stored_round {
        Some(r) => format!("latest stored drand round {r}"),
        None => "no drand pallet".to_owned(),
    };
    out::println(format!(
        "uid {} at block {}: commit-reveal {}, {drand}",
        s.uid,
        s.block,
        if s.commit_reveal_enabled { "on" } else { "off" }
    ))?;
    if s.pending.is_empty() {
        out::println("no pending commitments")?;
    } else {
        out::println("KIND        COMMITTED  ROUND / HASH         PULSE    REVEAL BLOCKS")?;
    }
    for p in &s.pending {
        match p {
            PendingCommit::Timelocked {
                epoch,
                commit_block,
                reveal_round,
                pulse_stored,
                reveal_from,
                reveal_until,
                ..
            } => {
                let at = commit_block.map_or(format!("epoch {epoch}"), |b| format!("block {b}"));
                let pulse = if *pulse_stored { "stored" } else { "waiting" };
                out::println(format!(
                    "timelocked  {at:<10} {reveal_round:<20} {pulse:<8} {reveal_from}-{reveal_until}"
                ))?;
            }
            PendingCommit::Hash {
                hash,
                commit_block,
                reveal_from,
                reveal_until,
            } => {
                let short: String = hash.chars().take(18).collect();
                out::println(format!(
                    "hash        block {commit_block:<4} {short:<20} -        {reveal_from}-{reveal_until}"
                ))?;
            }
            _ => {}
        }
    }
    if s.weights.is_empty() {
        out::println("weights on chain: none")?;
    } else {
        let list: Vec<String> = s.weights.iter().map(|(u, w)| format!("{u}={w}")).collect();
        out::println(format!(
            "weights on chain (last update at block {}): {}",
            s.last_update,
            list.join(" ")
        ))?;
    }
    Ok(())
}
