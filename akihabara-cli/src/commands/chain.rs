//! `akihabara metagraph`, `akihabara chain …` and the chain writes of
//! `akihabara weights set|commit|reveal`: thin wrappers over
//! [`akihabara_core::chain::Subtensor`].

use std::time::Duration;

use akihabara_core::chain::{
    ChainClient, ChainError, Network, Receipt, Reveal, Subtensor, SubtensorOptions,
};
use akihabara_core::metagraph::snapshot;
use akihabara_core::weights::convert_for_emit;
use akihabara_core::{Netuid, Uid};
use anyhow::Context;
use serde_json::json;

use super::wallet::{hotkey_account, load_coldkey, load_hotkey};
use crate::args::{
    ChainCommand, HyperparamsArgs, MetagraphArgs, NetworkArgs, RegisterArgs, ServeAxonArgs,
    WeightsCommitArgs, WeightsRevealArgs, WeightsSetArgs,
};
use crate::exit::bad_input;
use crate::{out, render};

/// `akihabara chain …`.
pub fn run(cmd: ChainCommand) -> anyhow::Result<()> {
    match cmd {
        ChainCommand::ServeAxon(a) => serve_axon(a),
        ChainCommand::Register(a) => register(a),
        ChainCommand::Hyperparams(a) => hyperparams(a),
    }
}

/// Chain errors that mean the user's input was wrong exit with 2.
pub(crate) fn classify(e: ChainError) -> anyhow::Error {
    match e {
        ChainError::NotRegistered { .. }
        | ChainError::NoSubnet(_)
        | ChainError::BadWeights(_)
        | ChainError::VersionTooLow { .. }
        | ChainError::CommitRevealRequired(_)
        | ChainError::NoCommitment(_) => bad_input(e),
        other => other.into(),
    }
}

pub(crate) async fn connect(n: &NetworkArgs) -> anyhow::Result<Subtensor> {
    let network: Network = n.network.parse().map_err(bad_input)?;
    if n.timeout == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--chain-timeout must be at least 1 second"
        )));
    }
    let opts = SubtensorOptions {
        connect_timeout: Duration::from_secs(n.timeout),
        timeout: Duration::from_secs(n.timeout),
        ..SubtensorOptions::default()
    };
    Subtensor::connect_with(&network, opts)
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("connecting to {}", network.url())))
}

fn print_receipt(what: &str, r: &Receipt, json: bool) -> anyhow::Result<()> {
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

/// `akihabara metagraph`.
pub fn metagraph(a: MetagraphArgs) -> anyhow::Result<()> {
    let mg = super::runtime()?.block_on(async {
        let chain = connect(&a.network).await?;
        chain.metagraph(Netuid(a.netuid)).await.map_err(classify)
    })?;
    if a.json {
        out::println(snapshot::to_string(&mg))?;
        return Ok(());
    }
    out::println(format!(
        "netuid {} at block {}: {} neurons",
        mg.netuid(),
        mg.block(),
        mg.len()
    ))?;
    let rows: Vec<Vec<String>> = mg
        .neurons()
        .iter()
        .map(|n| {
            vec![
                n.uid.to_string(),
                n.hotkey.to_string(),
                render::format_tao(n.stake.to_tao()),
                if n.validator_permit { "yes" } else { "" }.to_owned(),
                n.axon.map(|s| s.to_string()).unwrap_or_default(),
                n.incentive.map(|v| format!("{v:.4}")).unwrap_or_default(),
                n.dividends.map(|v| format!("{v:.4}")).unwrap_or_default(),
            ]
        })
        .collect();
    use render::Align::{Left, Right};
    out::print(render::table(
        &[
            ("UID", Right),
            ("HOTKEY", Left),
            ("STAKE (α)", Right),
            ("PERMIT", Left),
            ("AXON", Left),
            ("INCENTIVE", Right),
            ("DIVIDENDS", Right),
        ],
        &rows,
    ))?;
    Ok(())
}

/// The u16 weights the SDK would send for `a`.
fn emit(a: &WeightsSetArgs) -> anyhow::Result<(Vec<Uid>, Vec<u16>)> {
    let uids: Vec<Uid> = a.uids.iter().copied().map(Uid).collect();
    let w = convert_for_emit(&uids, &a.weights).map_err(bad_input)?;
    if w.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "every weight is zero: there is nothing to set"
        )));
    }
    Ok((w.uids, w.weights))
}

async fn version_key(chain: &Subtensor, a: &WeightsSetArgs) -> anyhow::Result<u64> {
    match a.version_key {
        Some(k) => Ok(k),
        None => Ok(chain
            .hyperparameters(Netuid(a.netuid))
            .await
            .map_err(classify)?
            .weights_version),
    }
}

/// `akihabara weights set`.
pub fn set_weights(a: WeightsSetArgs) -> anyhow::Result<()> {
    let (uids, weights) = emit(&a)?;
    let hotkey = load_hotkey(&a.wallet, &a.password)?;
    let r = super::runtime()?.block_on(async {
        let chain = connect(&a.network).await?;
        let key = version_key(&chain, &a).await?;
        chain
            .set_weights(Netuid(a.netuid), &hotkey, &uids, &weights, key)
            .await
            .map_err(classify)
    })?;
    print_receipt("set_weights", &r, a.json)
}

/// `akihabara weights commit`.
pub fn commit_weights(a: WeightsCommitArgs) -> anyhow::Result<()> {
    let (uids, weights) = emit(&a.set)?;
    let hotkey = load_hotkey(&a.set.wallet, &a.set.password)?;
    let r = super::runtime()?.block_on(async {
        let chain = connect(&a.set.network).await?;
        let key = version_key(&chain, &a.set).await?;
        let reveal = Reveal::new(uids, weights, key)?;
        let text = serde_json::to_string_pretty(&reveal)? + "\n";
        render::write_file(&a.reveal_file, &text)
            .with_context(|| format!("saving the reveal to {}", a.reveal_file.display()))?;
        let hash = reveal.hash(&hotkey.account(), Netuid(a.set.netuid));
        let r = chain
            .commit_weights(Netuid(a.set.netuid), &hotkey, hash)
            .await
            .map_err(classify)?;
        anyhow::Ok((r, hash))
    })?;
    let (r, hash) = r;
    if a.set.json {
        out::println(
            json!({
                "call": "commit_weights",
                "block": r.block,
                "extrinsic": r.extrinsic,
                "commit": format!("0x{}", hex::encode(hash)),
                "reveal_file": a.reveal_file,
            })
            .to_string(),
        )?;
        return Ok(());
    }
    print_receipt("commit_weights", &r, false)?;
    out::println(format!(
        "reveal it after the subnet's reveal period with: akihabara weights reveal --reveal-file {}",
        a.reveal_file.display()
    ))?;
    Ok(())
}

/// `akihabara weights reveal`.
pub fn reveal_weights(a: WeightsRevealArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.reveal_file)
        .with_context(|| format!("reading {}", a.reveal_file.display()))
        .map_err(bad_input)?;
    let reveal: Reveal = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a reveal file", a.reveal_file.display()))
        .map_err(bad_input)?;
    let hotkey = load_hotkey(&a.wallet, &a.password)?;
    let r = super::runtime()?.block_on(async {
        let chain = connect(&a.network).await?;
        chain
            .reveal_weights(Netuid(a.netuid), &hotkey, &reveal)
            .await
            .map_err(classify)
    })?;
    print_receipt("reveal_weights", &r, a.json)
}

fn serve_axon(a: ServeAxonArgs) -> anyhow::Result<()> {
    let hotkey = load_hotkey(&a.wallet, &a.password)?;
    let r = super::runtime()?.block_on(async {
        let chain = connect(&a.network).await?;
        chain
            .serve_axon(Netuid(a.netuid), &hotkey, a.ip, a.port)
            .await
            .map_err(classify)
    })?;
    match r {
        Some(r) => print_receipt("serve_axon", &r, a.json),
        None if a.json => Ok(out::println(
            json!({ "call": "serve_axon", "unchanged": true }).to_string(),
        )?),
        None => Ok(out::println(format!(
            "the axon is already served at {}:{}: nothing sent",
            a.ip, a.port
        ))?),
    }
}

fn register(a: RegisterArgs) -> anyhow::Result<()> {
    let hotkey = hotkey_account(&a.wallet)?;
    let coldkey = load_coldkey(&a.wallet, &a.password)?;
    let r = super::runtime()?.block_on(async {
        let chain = connect(&a.network).await?;
        chain
            .burned_register(Netuid(a.netuid), &coldkey, &hotkey)
            .await
            .map_err(classify)
    })?;
    print_receipt("burned_register", &r, a.json)
}

fn hyperparams(a: HyperparamsArgs) -> anyhow::Result<()> {
    let h = super::runtime()?.block_on(async {
        let chain = connect(&a.network).await?;
        chain
            .hyperparameters(Netuid(a.netuid))
            .await
            .map_err(classify)
    })?;
    if a.json {
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
