//! `akihabara validator run`: configuration, logging, metrics and events
//! around the library's [`Validator`] (the round and the weights are there).

use std::collections::BTreeMap;

use akihabara::roles::{PowSettings, RoleError, RoundReport, Validator, WeightsReport};
use akihabara_core::chain::ChainClient;
use akihabara_core::score::PowScorer;
use akihabara_core::wallet::Keypair;
use anyhow::Context;
use serde_json::json;

use super::{Backoff, Health, HyperCache, Metrics, event, key_error, role_error};
use crate::args::DaemonArgs;
use crate::config::{self, ValidatorConfig};

fn check(c: &ValidatorConfig) -> anyhow::Result<PowSettings> {
    super::check_chain(&c.chain)?;
    super::check_state(&c.state)?;
    if c.validator.round_blocks == 0 {
        return Err(key_error("validator.round_blocks", "must be at least 1"));
    }
    if c.validator.poll.is_zero() {
        return Err(key_error("validator.poll", "must be positive"));
    }
    let n = u32::try_from(c.pow.n).map_err(|_| key_error("pow.n", "too large"))?;
    let mut pow = PowSettings::new(n, c.pow.count)
        .samples(c.pow.samples)
        .timeout(c.pow.timeout)
        .concurrency(c.pow.concurrency);
    if let Some(t) = c.pow.target_seconds {
        pow = pow.scaled(t, c.pow.max_count);
    }
    pow.check().map_err(|e| match e {
        RoleError::Setting { setting, reason } => key_error(setting, reason),
        e => key_error("pow", e),
    })?;
    akihabara_core::score::Ema::new(c.scoring.ema_alpha)
        .map_err(|e| key_error("scoring.ema_alpha", e))?;
    Ok(pow)
}

/// `akihabara validator run`.
pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    super::check_duration(a.duration)?;
    let cfg: ValidatorConfig = config::load(&a.config, config::process_env(), &a.set)?;
    let pow = check(&cfg)?;
    super::init_logging(a.log_format)?;
    if cfg.scoring.reference_ops.is_some() {
        tracing::warn!(
            "scoring.reference_ops is ignored: the pow score is the verified ops/s, whatever class a miner names"
        );
    }
    let keypair =
        crate::commands::wallet::load_hotkey(&super::wallet_args(&cfg.wallet), &a.password)?;
    let rt = crate::commands::axon::serve_runtime(2)?;
    rt.block_on(validator(cfg, keypair, pow, a.duration))
}

async fn validator(
    cfg: ValidatorConfig,
    keypair: Keypair,
    pow: PowSettings,
    duration: Option<f64>,
) -> anyhow::Result<()> {
    let hotkey = keypair.account();
    let super::Started {
        chain,
        store,
        netuid,
        uid,
        health,
        ..
    } = super::start("validator", &cfg.chain, &cfg.state, &hotkey).await?;
    let described = store.describe();
    let mut v = Validator::builder(keypair, netuid)
        .chain(chain.clone())
        .scorer(Box::new(PowScorer::new()))
        .store(store)
        .uid(uid)
        .pow(pow)
        .ema_alpha(cfg.scoring.ema_alpha)
        .round_blocks(cfg.validator.round_blocks)
        .respect_schedules(cfg.validator.respect_schedules)
        .version_key(cfg.weights.version_key)
        .build()
        .await
        .with_context(|| format!("reading the validator state from {described}"))?;
    let metrics = Metrics::new();
    let metrics_port = match cfg.metrics.listen {
        Some(listen) => {
            let (local, task) =
                super::ops::serve(listen, metrics.clone(), health.clone(), None).await?;
            // The server lives as long as the runtime.
            drop(task);
            Some(local.port())
        }
        None => None,
    };
    let resumed = v.resumed();
    event(json!({
        "event": "ready", "role": "validator", "hotkey": hotkey.to_ss58(), "uid": uid.0,
        "metrics_port": metrics_port, "store": described, "resumed": resumed,
        "measurements": v.measured().len(), "last_weights_block": v.last_weights_block().map(|b| b.0),
    }));
    tracing::info!(uid = uid.0, resumed, store = %described, "validator running");
    let stop = super::shutdown(duration);
    tokio::pin!(stop);
    let mut backoff = Backoff::new();
    let hyper = HyperCache::default();
    loop {
        // A step runs to its end (in-flight challenges finish) before a
        // signal is honoured.
        let result = step(&mut v, &*chain, &hyper, &metrics, &health).await;
        let pause = super::settle(
            result,
            &mut backoff,
            cfg.validator.poll,
            &metrics,
            &health,
            "validator step failed",
        );
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    event(json!({"event": "stopped", "role": "validator"}));
    Ok(())
}

/// One step of the library's validator, with its events, logs and metrics.
async fn step(
    v: &mut Validator,
    chain: &dyn ChainClient,
    hyper: &HyperCache,
    metrics: &Metrics,
    health: &Health,
) -> anyhow::Result<()> {
    let block = chain.block().await?;
    metrics
        .block
        .set(i64::try_from(block.0).unwrap_or(i64::MAX));
    health.set("block", block.0.into());
    let h = hyper.get(chain, v.netuid(), block.0).await?;
    let step = v.step(block, &h).await.map_err(role_error)?;
    if let Some(round) = &step.round {
        report_round(round, metrics);
    }
    match step.weights {
        None => {}
        Some(WeightsReport::Revealed {
            receipt,
            uids,
            weights,
        }) => {
            metrics.weights_set.inc();
            event(json!({
                "event": "weights", "how": "reveal", "block": receipt.block.0,
                "uids": uids.iter().map(|u| u.0).collect::<Vec<_>>(), "weights": weights,
            }));
        }
        Some(WeightsReport::DroppedCommitment(e)) => {
            tracing::warn!(error = %e, "dropping a commitment the chain no longer holds");
        }
        Some(WeightsReport::RevealLater(e)) => {
            tracing::info!(error = %e, "the commitment cannot be revealed yet");
        }
        Some(WeightsReport::AllZero { .. }) => {
            tracing::warn!("every score is zero: no weights to set this tempo");
        }
        Some(WeightsReport::RateLimited { next }) => {
            tracing::info!(next = next.0, "weights are rate limited; waiting");
        }
        Some(WeightsReport::Landed {
            how,
            receipt,
            epoch,
        }) => {
            metrics.weights_set.inc();
            let scores: BTreeMap<String, f64> = epoch
                .smoothed
                .scores
                .iter()
                .map(|(u, s)| (u.0.to_string(), s.get()))
                .collect();
            event(json!({
                "event": "weights", "how": how, "block": receipt.block.0, "extrinsic": receipt.extrinsic,
                "uids": epoch.weights.uids.iter().map(|u| u.0).collect::<Vec<_>>(),
                "weights": epoch.weights.weights, "scores": scores,
            }));
        }
        Some(other) => tracing::info!(weights = ?other, "weights"),
    }
    Ok(())
}

/// Counts, logs and announces a round.
fn report_round(round: &RoundReport, metrics: &Metrics) {
    for m in &round.challenged {
        metrics.challenges_sent.inc();
        if m.passed {
            metrics.challenges_passed.inc();
        } else {
            metrics.challenges_failed.inc();
        }
        if let Some(h) = &metrics.verify_seconds {
            h.observe(m.seconds);
        }
        tracing::info!(uid = m.uid, verdict = %m.verdict, ops_per_second = m.ops_per_second, "challenged");
    }
    for (uid, why) in &round.skipped {
        tracing::debug!(uid = uid.0, verdict = %why, "skipped");
    }
    let passed = round.challenged.iter().filter(|m| m.passed).count();
    event(json!({
        "event": "round", "block": round.block.0, "challenged": round.challenged.len(),
        "passed": passed, "skipped": round.skipped.len(),
    }));
}
