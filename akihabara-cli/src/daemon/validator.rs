//! `akihabara validator run`: configuration, logging, metrics and events
//! around the library's [`Validator`] (the round and the weights are there).

use std::collections::BTreeMap;

use akihabara::roles::{
    AllocationCheck, BenchmarkJob, Check, PowSettings, ProbeReport, ProbeSettings, RoleError,
    RoundReport, Validator, WeightsReport,
};
use akihabara_core::chain::ChainClient;
use akihabara_core::score::{SCORER_NAMES, Scorer};
use akihabara_core::wallet::Keypair;
use anyhow::Context;
use serde_json::json;

use super::args::DaemonArgs;
use super::{Backoff, Health, HyperCache, Metrics, event, key_error, role_error};
use crate::config::{self, ValidatorConfig};

fn check(c: &ValidatorConfig) -> anyhow::Result<PowSettings> {
    super::check_chain(&c.chain)?;
    super::check_state(&c.state)?;
    if let Some(g) = &c.gateway {
        if g.listen.is_none() {
            return Err(key_error(
                "gateway.listen",
                "the address to serve the gateway on is missing",
            ));
        }
        crate::commands::gateway::check(g)?;
    }
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
        .concurrency(c.pow.concurrency)
        .round_deadline(c.pow.round_deadline);
    if let Some(t) = c.pow.target_seconds {
        pow = pow.scaled(t, c.pow.max_count);
    }
    pow.check().map_err(|e| match e {
        RoleError::Setting { setting, reason } => key_error(setting, reason),
        e => key_error("pow", e),
    })?;
    akihabara_core::score::Ema::new(c.scoring.ema_alpha)
        .map_err(|e| key_error("scoring.ema_alpha", e))?;
    akihabara_core::score::Penalties::new(c.scoring.penalty_decay)
        .map_err(|e| key_error("scoring.penalty_decay", e))?;
    scorer(c)?;
    Ok(pow)
}

/// The scorer `[scoring]` names, built from its sections.
fn scorer(c: &ValidatorConfig) -> anyhow::Result<Box<dyn Scorer>> {
    let name = c.scoring.scorer.as_str();
    if !SCORER_NAMES.contains(&name) {
        return Err(key_error(
            "scoring.scorer",
            format!(
                "unknown scorer \"{name}\" (one of: {})",
                SCORER_NAMES.join(", ")
            ),
        ));
    }
    c.scoring
        .library()
        .build(name, None)
        .map_err(|e| key_error("scoring", e))
}

/// `[probe]` as the library's settings; creates the allocation check's SSH
/// key when it does not exist yet.
fn probe(c: &ValidatorConfig) -> anyhow::Result<Option<ProbeSettings>> {
    let p = &c.probe;
    if !p.enabled {
        return Ok(None);
    }
    let mut s = ProbeSettings::new(c.state.dir().join("receipts.jsonl")).poll(p.poll);
    s.specs = p.specs;
    s.call_timeout = p.call_timeout;
    for j in &p.jobs {
        s = s.job(BenchmarkJob {
            class: j.class.clone(),
            command: j.command.clone(),
            timeout: j.timeout,
            expect_stdout: j.expect_stdout.clone(),
        });
    }
    if let Some(a) = &p.allocation {
        let key = akihabara_core::fs::expand_tilde(&a.ssh_key);
        if !key.exists() {
            create_ssh_key(&key).map_err(|e| key_error("probe.allocation.ssh_key", e))?;
        }
        let mut check = AllocationCheck::new(&key, a.command.clone()).map_err(setting_error)?;
        check.expect = a.expect.clone();
        check.class = a.class.clone();
        check.duration = a.duration;
        check.login_timeout = a.login_timeout;
        s = s.allocation(check);
    }
    s.check().map_err(setting_error)?;
    Ok(Some(s))
}

fn setting_error(e: RoleError) -> anyhow::Error {
    match e {
        RoleError::Setting { setting, reason } => key_error(setting, reason),
        e => key_error("probe", e),
    }
}

/// `ssh-keygen -t ed25519` without a passphrase, in a private directory.
fn create_ssh_key(key: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = key.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "akihabara-validator-probe",
            "-f",
        ])
        .arg(key)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run ssh-keygen (apt install openssh-client)")?;
    if !out.status.success() {
        anyhow::bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    tracing::info!(key = %key.display(), "created the probe's SSH key");
    Ok(())
}

/// `akihabara validator run`.
pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    super::check_duration(a.run.duration)?;
    let cfg: ValidatorConfig = config::load(&a.config, config::process_env(), &a.set)?;
    let pow = check(&cfg)?;
    super::init_logging(a.run.log_format)?;
    if cfg.scoring.reference_ops.is_some() {
        tracing::warn!(
            "scoring.reference_ops is ignored: the pow score is the verified ops/s, whatever class a miner names"
        );
    }
    let keypair =
        crate::commands::wallet::load_hotkey(&super::wallet_args(&cfg.wallet), &a.password)?;
    let rt = crate::commands::axon::serve_runtime(2)?;
    rt.block_on(validator(cfg, keypair, pow, a.run.duration))
}

async fn validator(
    cfg: ValidatorConfig,
    keypair: Keypair,
    pow: PowSettings,
    duration: Option<f64>,
) -> anyhow::Result<()> {
    let hotkey = keypair.account();
    let probe = probe(&cfg)?;
    let scorer = scorer(&cfg)?;
    let super::Started {
        chain,
        store,
        netuid,
        uid,
        health,
        ..
    } = super::start("validator", &cfg.chain, &cfg.state, &hotkey).await?;
    let described = store.describe();
    let gateway_key = keypair.clone();
    let gateway_store = store.clone();
    let mut v = Validator::builder(keypair, netuid)
        .chain(chain.clone())
        .scorer(scorer)
        .penalty_decay(cfg.scoring.penalty_decay)
        .store(store)
        .uid(uid)
        .pow(pow)
        .ema_alpha(cfg.scoring.ema_alpha)
        .round_blocks(cfg.validator.round_blocks)
        .respect_schedules(cfg.validator.respect_schedules)
        .version_key(cfg.weights.version_key)
        .unix_clock(crate::commands::weights::drand_clock()?);
    if let Some(m) = cfg.weights.mechid {
        v = v.mechid(akihabara_core::chain::MechId(m));
    }
    if let Some(p) = probe {
        v = v.probe(p);
    }
    let mut v = v
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
    // The organic-jobs gateway, over the validator's own store: its jobs
    // are paid into this validator's ledger after each step.
    let gateway = match (&cfg.gateway, cfg.gateway.as_ref().and_then(|g| g.listen)) {
        (Some(g), Some(listen)) => Some(
            crate::commands::gateway::start(
                listen,
                &cfg.state.dir(),
                gateway_store,
                Some(crate::commands::gateway::Routed {
                    section: g.clone(),
                    chain: chain.clone(),
                    netuid,
                    keypair: gateway_key,
                    dendrite: Some(v.challenger().dendrite().clone()),
                }),
                duration,
            )
            .await?,
        ),
        _ => None,
    };
    let resumed = v.resumed();
    event(json!({
        "event": "ready", "role": "validator", "hotkey": hotkey.to_ss58(), "uid": uid.0,
        "metrics_port": metrics_port, "store": described, "resumed": resumed,
        "measurements": v.measured().len(), "last_weights_block": v.last_weights_block().map(|b| b.0),
        "gateway": gateway.as_ref().map(|g| g.local.to_string()),
        "gateway_id": gateway.as_ref().map(|g| g.gateway.id()),
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
        if let Some(g) = &gateway {
            account_organic(&mut v, &g.gateway).await;
        }
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

/// Pays the gateway's finished jobs into the validator's ledger and applies
/// its cross-check penalties; a failure is logged and retried next step.
async fn account_organic(v: &mut Validator, gateway: &akihabara::gateway::Gateway) {
    let work = match gateway.organic_work() {
        Ok(w) if w.ids.is_empty() => return,
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "reading the gateway's finished jobs");
            return;
        }
    };
    match v.record_organic(&work.runs, &work.penalties).await {
        Ok(r) => {
            if let Err(e) = gateway.mark_accounted(&work.ids).await {
                tracing::warn!(error = %e, "marking organic jobs as paid");
            }
            event(json!({
                "event": "organic", "paid": r.paid, "penalised": r.penalised,
                "unknown": r.unknown, "jobs": work.ids,
            }));
        }
        Err(e) => tracing::warn!(error = %e, "recording organic work"),
    }
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
    if let Some(p) = &step.probe {
        report_probe(p);
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
        Some(WeightsReport::RevealedByChain {
            block,
            reveal_round,
            uids,
            weights,
        }) => {
            event(json!({
                "event": "weights", "how": "revealed_by_chain", "block": block.0,
                "reveal_round": reveal_round,
                "uids": uids.iter().map(|u| u.0).collect::<Vec<_>>(), "weights": weights,
            }));
        }
        Some(WeightsReport::TimelockExpired {
            reveal_round,
            again,
        }) => {
            tracing::warn!(
                reveal_round,
                "the chain did not reveal the timelocked commit in its window (its drand pulse was not stored, or the subnet's settings changed): weights sent again"
            );
            report_weights(*again, metrics);
        }
        Some(WeightsReport::RevealRefused { reveal_round }) => {
            tracing::error!(
                reveal_round,
                "the chain had the drand pulse but did not apply the timelocked weights (no validator permit, weight limits or a raised version key?): they are dropped; the next epoch's weights go as usual"
            );
        }
        Some(other) => report_weights(other, metrics),
    }
    Ok(())
}

/// Events and metrics for weights that were sent.
fn report_weights(report: WeightsReport, metrics: &Metrics) {
    match report {
        WeightsReport::Landed {
            how,
            receipt,
            epoch,
            timelock,
        } => {
            metrics.weights_set.inc();
            let scores: BTreeMap<String, f64> = epoch
                .smoothed
                .scores
                .iter()
                .map(|(u, s)| (u.0.to_string(), s.get()))
                .collect();
            let mut e = json!({
                "event": "weights", "how": how, "block": receipt.block.0, "extrinsic": receipt.extrinsic,
                "uids": epoch.weights.uids.iter().map(|u| u.0).collect::<Vec<_>>(),
                "weights": epoch.weights.weights, "scores": scores,
            });
            if let Some(t) = timelock {
                e["call"] = json!(t.call);
                e["reveal_round"] = json!(t.reveal_round);
                e["reveal_from"] = json!(t.reveal_from);
                e["reveal_until"] = json!(t.reveal_until);
            }
            event(e);
        }
        other => tracing::info!(weights = ?other, "weights"),
    }
}

/// Logs and announces a probe.
fn report_probe(p: &ProbeReport) {
    let word = |c: &Check| match c {
        Check::Passed { .. } => "passed",
        Check::NotApplicable { .. } => "not_applicable",
        Check::Failed { .. } => "failed",
    };
    let mut miners = Vec::new();
    for m in &p.miners {
        let jobs: Vec<&str> = m.jobs.iter().map(|j| word(&j.check)).collect();
        let gpus = m
            .gpus
            .as_ref()
            .map(|g| g.iter().map(|c| c.count).sum::<u32>());
        let allocation = m.allocation.as_ref().map(word);
        tracing::info!(uid = m.uid, gpus, jobs = ?jobs, allocation, "probed");
        if let Some(reason) = m.penalty() {
            tracing::warn!(uid = m.uid, reason, "penalised");
        }
        miners.push(json!({
            "uid": m.uid, "gpus": gpus, "jobs": jobs, "allocation": allocation,
            "penalty": m.penalty(),
        }));
    }
    event(json!({"event": "probe", "block": p.block.0, "miners": miners}));
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
