//! `akihabara validator run`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akihabara_core::chain::{ChainClient, ChainError, Hyperparameters, Reveal};
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::schedule::ScheduleQuery;
use akihabara_core::score::{Ema, Measurements, MinerReport, PowReport, PowScorer, Scorer};
use akihabara_core::store::{self, Put, StateKeys, Store};
use akihabara_core::wallet::Keypair;
use akihabara_core::{Block, Metagraph, Netuid, Uid};
use akihabara_gpu::round::{RoundConfig, challenge_miner};
use akihabara_gpu::{Challenge, Seed, Verdict, Verifier};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Backoff, Health, HyperCache, Metrics, event, key_error};
use crate::args::DaemonArgs;
use crate::config::{self, ValidatorConfig};

/// Measurements kept between weight settings, at most (oldest dropped).
const MAX_MEASURED: usize = 10_000;

/// One round against one miner, as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Measured {
    uid: u16,
    hotkey: String,
    block: u64,
    class: String,
    passed: bool,
    ops_per_second: f64,
    verdict: String,
}

/// The last weights that landed, and a commitment waiting to be revealed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct WeightsState {
    block: Option<u64>,
    uids: Vec<u16>,
    weights: Vec<u16>,
    pending_reveal: Option<Reveal>,
}

/// Everything that must survive a restart.
#[derive(Clone)]
struct State {
    ema: Ema,
    measured: Vec<Measured>,
    weights: WeightsState,
}

fn check(c: &ValidatorConfig) -> anyhow::Result<(PowScorer, Ema)> {
    super::check_chain(&c.chain)?;
    super::check_state(&c.state)?;
    if c.validator.round_blocks == 0 {
        return Err(key_error("validator.round_blocks", "must be at least 1"));
    }
    if c.validator.poll.is_zero() {
        return Err(key_error("validator.poll", "must be positive"));
    }
    let n = u32::try_from(c.pow.n).map_err(|_| key_error("pow.n", "too large"))?;
    Challenge::new(Seed([0; 32]), n, c.pow.count).map_err(|e| key_error("pow.n / pow.count", e))?;
    if c.pow.samples == 0 {
        return Err(key_error("pow.samples", "must be at least 1"));
    }
    if c.pow.concurrency == 0 {
        return Err(key_error("pow.concurrency", "must be at least 1"));
    }
    if c.pow.timeout.is_zero() {
        return Err(key_error("pow.timeout", "must be positive"));
    }
    let scorer = PowScorer::new();
    let ema = Ema::new(c.scoring.ema_alpha).map_err(|e| key_error("scoring.ema_alpha", e))?;
    Ok((scorer, ema))
}

/// `akihabara validator run`.
pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    super::check_duration(a.duration)?;
    let cfg: ValidatorConfig = config::load(&a.config, config::process_env(), &a.set)?;
    let (scorer, ema) = check(&cfg)?;
    super::init_logging(a.log_format)?;
    if cfg.scoring.reference_ops.is_some() {
        tracing::warn!(
            "scoring.reference_ops is ignored: the pow score is the verified ops/s, whatever class a miner names"
        );
    }
    let keypair =
        crate::commands::wallet::load_hotkey(&super::wallet_args(&cfg.wallet), &a.password)?;
    let rt = crate::commands::axon::serve_runtime(2)?;
    rt.block_on(validator(cfg, keypair, scorer, ema, a.duration))
}

fn load_state(store: &dyn Store, keys: &StateKeys, fresh: Ema) -> anyhow::Result<State> {
    Ok(State {
        ema: store::get_json(store, &keys.scores())?.unwrap_or(fresh),
        measured: store::get_json(store, &keys.measurements())?.unwrap_or_default(),
        weights: store::get_json(store, &keys.weights())?.unwrap_or_default(),
    })
}

/// Writes the whole state in one atomic write.
fn save_state(store: &dyn Store, keys: &StateKeys, s: &State) -> anyhow::Result<()> {
    let (a, b, c) = (keys.scores(), keys.measurements(), keys.weights());
    let (ema, measured, weights) = (
        serde_json::to_vec(&s.ema)?,
        serde_json::to_vec(&s.measured)?,
        serde_json::to_vec(&s.weights)?,
    );
    store.put(&[
        Put::new(&a, &ema),
        Put::new(&b, &measured),
        Put::new(&c, &weights),
    ])?;
    Ok(())
}

struct Validator {
    cfg: ValidatorConfig,
    chain: Arc<dyn ChainClient>,
    store: Arc<dyn Store>,
    keys: StateKeys,
    netuid: Netuid,
    uid: Uid,
    keypair: Keypair,
    dendrite: Arc<Dendrite>,
    scorer: PowScorer,
    round: Arc<RoundConfig>,
    metrics: Metrics,
    health: Arc<Health>,
    state: State,
    next_round: u64,
}

async fn validator(
    cfg: ValidatorConfig,
    keypair: Keypair,
    scorer: PowScorer,
    fresh: Ema,
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
    let keys = StateKeys::new(netuid, &hotkey);
    let state = load_state(&*store, &keys, fresh)
        .with_context(|| format!("reading the validator state from {}", store.describe()))?;
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
    let resumed = state.weights.block.is_some() || !state.measured.is_empty();
    event(json!({
        "event": "ready", "role": "validator", "hotkey": hotkey.to_ss58(), "uid": uid.0,
        "metrics_port": metrics_port, "store": store.describe(), "resumed": resumed,
        "measurements": state.measured.len(), "last_weights_block": state.weights.block,
    }));
    tracing::info!(uid = uid.0, resumed, store = %store.describe(), "validator running");
    let round = Arc::new(RoundConfig {
        samples: cfg.pow.samples,
        timeout: cfg.pow.timeout,
        verifier: Verifier::new(),
    });
    let mut v = Validator {
        dendrite: Arc::new(Dendrite::new(keypair.clone())?),
        cfg,
        chain,
        store,
        keys,
        netuid,
        uid,
        keypair,
        scorer,
        round,
        metrics,
        health,
        state,
        next_round: 0,
    };
    let stop = super::shutdown(duration);
    tokio::pin!(stop);
    let mut backoff = Backoff::new();
    let hyper = HyperCache::default();
    loop {
        // A step runs to its end (in-flight challenges finish) before a
        // signal is honoured.
        let result = v.step(&hyper).await;
        let pause = super::settle(
            result,
            &mut backoff,
            v.cfg.validator.poll,
            &v.metrics,
            &v.health,
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

impl Validator {
    async fn step(&mut self, hyper: &HyperCache) -> anyhow::Result<()> {
        let block = self.chain.block().await?;
        self.metrics
            .block
            .set(i64::try_from(block.0).unwrap_or(i64::MAX));
        self.health.set("block", block.0.into());
        let h = hyper.get(&*self.chain, self.netuid, block.0).await?;
        if block.0 >= self.next_round {
            let mg = self.chain.metagraph(self.netuid).await?;
            self.round(&mg, block).await?;
            self.next_round = block.0 + self.cfg.validator.round_blocks;
        }
        self.weights(block, &h).await
    }

    /// Challenges every miner that serves this validator now.
    async fn round(&mut self, mg: &Metagraph, block: Block) -> anyhow::Result<()> {
        let targets: Vec<(Uid, AxonTarget)> = mg
            .neurons()
            .iter()
            .filter(|n| n.uid != self.uid)
            .filter_map(|n| {
                let a = n.axon?;
                (a.port() != 0 && !a.ip().is_unspecified())
                    .then(|| (n.uid, AxonTarget::new(a.ip(), a.port(), n.hotkey)))
            })
            .collect();
        let limit = Arc::new(tokio::sync::Semaphore::new(self.cfg.pow.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for (uid, target) in targets {
            let (d, cfg, limit) = (self.dendrite.clone(), self.round.clone(), limit.clone());
            let (me, respect, n, count) = (
                self.uid,
                self.cfg.validator.respect_schedules,
                self.cfg.pow.n as u32,
                self.cfg.pow.count,
            );
            let (sent, passed, failed, hist) = (
                self.metrics.challenges_sent.clone(),
                self.metrics.challenges_passed.clone(),
                self.metrics.challenges_failed.clone(),
                self.metrics.verify_seconds.clone(),
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                if respect {
                    let q = d
                        .call(&target, ScheduleQuery::default(), Duration::from_secs(10))
                        .await;
                    if let Some(answer) = q.synapse.filter(|_| q.status == 200) {
                        let at = answer.block.map_or(block, Block);
                        if !answer.serves(me, at) {
                            return (
                                uid,
                                target.hotkey,
                                None,
                                format!("not our slot (serving uid {:?})", answer.serving_uid),
                            );
                        }
                    }
                }
                sent.inc();
                let t = Instant::now();
                let outcome = async {
                    let ch = Challenge::new(Seed::random()?, n, count)?;
                    let secret = Seed::random()?.0;
                    Ok::<_, anyhow::Error>(challenge_miner(&d, &target, &ch, &secret, &cfg).await?)
                }
                .await;
                if let Some(h) = &hist {
                    h.observe(t.elapsed().as_secs_f64());
                }
                let (report, verdict) = match outcome {
                    Ok(o) => match o.verdict {
                        Verdict::Valid { ops_per_second, .. } => {
                            passed.inc();
                            (Some((o.backend, true, ops_per_second)), "valid".to_owned())
                        }
                        Verdict::Rejected(f) => {
                            failed.inc();
                            (Some((o.backend, false, 0.0)), format!("rejected: {f}"))
                        }
                    },
                    Err(e) => {
                        failed.inc();
                        (
                            Some(("cpu".to_owned(), false, 0.0)),
                            format!("no verdict: {e:#}"),
                        )
                    }
                };
                (uid, target.hotkey, report, verdict)
            });
        }
        let (mut challenged, mut ok, mut skipped) = (0, 0, 0);
        for (uid, hotkey, report, verdict) in tasks.join_all().await {
            let Some((class, passed, ops)) = report else {
                skipped += 1;
                tracing::debug!(uid = uid.0, %verdict, "skipped");
                continue;
            };
            challenged += 1;
            ok += u32::from(passed);
            tracing::info!(uid = uid.0, %verdict, ops_per_second = ops, "challenged");
            self.state.measured.push(Measured {
                uid: uid.0,
                hotkey: hotkey.to_ss58(),
                block: block.0,
                class,
                passed,
                ops_per_second: ops,
                verdict,
            });
        }
        let over = self.state.measured.len().saturating_sub(MAX_MEASURED);
        self.state.measured.drain(..over);
        self.save().await?;
        event(
            json!({"event": "round", "block": block.0, "challenged": challenged, "passed": ok, "skipped": skipped}),
        );
        Ok(())
    }

    async fn save(&self) -> anyhow::Result<()> {
        let s = self.state.clone();
        let (store, keys) = (self.store.clone(), self.keys.clone());
        tokio::task::spawn_blocking(move || save_state(&*store, &keys, &s)).await?
    }

    /// One report per miner: passed only if every round passed; the median
    /// measured speed of its rounds. Rounds against a uid whose hotkey has
    /// changed since are dropped.
    fn measurements(&self, mg: &Metagraph) -> Measurements {
        let hotkeys: BTreeMap<u16, String> = mg
            .neurons()
            .iter()
            .map(|n| (n.uid.0, n.hotkey.to_ss58()))
            .collect();
        let mut by_uid: BTreeMap<u16, Vec<&Measured>> = BTreeMap::new();
        for m in &self.state.measured {
            if hotkeys.get(&m.uid) == Some(&m.hotkey) {
                by_uid.entry(m.uid).or_default().push(m);
            }
        }
        Measurements {
            miners: by_uid
                .into_iter()
                .map(|(uid, rounds)| MinerReport {
                    uid: Uid(uid),
                    pow: Some(PowReport::from_rounds(
                        rounds.last().map_or("", |r| r.class.as_str()),
                        rounds.iter().map(|r| r.passed.then_some(r.ops_per_second)),
                    )),
                    ..MinerReport::default()
                })
                .collect(),
        }
    }

    /// Reveals a pending commitment, or sets (or commits) weights once per
    /// tempo within the rate limit.
    async fn weights(&mut self, block: Block, h: &Hyperparameters) -> anyhow::Result<()> {
        if let Some(reveal) = self.state.weights.pending_reveal.clone() {
            match self
                .chain
                .reveal_weights(self.netuid, &self.keypair, &reveal)
                .await
            {
                Ok(r) => {
                    self.metrics.weights_set.inc();
                    self.state.weights.pending_reveal = None;
                    self.save().await?;
                    event(
                        json!({"event": "weights", "how": "reveal", "block": r.block.0, "uids": reveal.uids.iter().map(|u| u.0).collect::<Vec<_>>(), "weights": reveal.weights}),
                    );
                }
                // The chain holds no such commitment (expired, or a
                // simulated chain that restarted): drop it and go on.
                Err(e @ ChainError::NoCommitment(_)) => {
                    tracing::warn!(error = %e, "dropping a commitment the chain no longer holds");
                    self.state.weights.pending_reveal = None;
                    self.save().await?;
                }
                Err(e) => tracing::info!(error = %e, "the commitment cannot be revealed yet"),
            }
            return Ok(());
        }
        let due = match self.state.weights.block {
            None => true,
            Some(last) => block.0 >= last + h.tempo.max(h.weights_rate_limit).max(1),
        };
        if !due || self.state.measured.is_empty() {
            return Ok(());
        }
        let mg = self.chain.metagraph(self.netuid).await?;
        let epoch = self.scorer.score(&self.measurements(&mg))?;
        let mut ema = self.state.ema.clone();
        let smoothed = ema.update(&epoch);
        let (uids, values) = smoothed.to_vectors();
        let emit = akihabara_core::weights::convert_for_emit(&uids, &values)?;
        if emit.is_empty() {
            tracing::warn!("every score is zero: no weights to set this tempo");
            self.state.ema = ema;
            self.state.measured.clear();
            self.state.weights.block = Some(block.0);
            return self.save().await;
        }
        let version = self.cfg.weights.version_key;
        let (how, landed) = if h.commit_reveal_enabled {
            let reveal = Reveal::new(emit.uids.clone(), emit.weights.clone(), version)?;
            let hash = reveal.hash(&self.keypair.account(), self.netuid);
            let r = self
                .chain
                .commit_weights(self.netuid, &self.keypair, hash)
                .await;
            if r.is_ok() {
                self.state.weights.pending_reveal = Some(reveal);
            }
            ("commit", r)
        } else {
            (
                "set",
                self.chain
                    .set_weights(
                        self.netuid,
                        &self.keypair,
                        &emit.uids,
                        &emit.weights,
                        version,
                    )
                    .await,
            )
        };
        match landed {
            Ok(r) => {
                self.metrics.weights_set.inc();
                self.state.ema = ema;
                self.state.measured.clear();
                self.state.weights.block = Some(r.block.0);
                self.state.weights.uids = emit.uids.iter().map(|u| u.0).collect();
                self.state.weights.weights = emit.weights.clone();
                self.save().await?;
                let scores: BTreeMap<String, f64> = uids
                    .iter()
                    .zip(&values)
                    .map(|(u, v)| (u.0.to_string(), *v))
                    .collect();
                event(json!({
                    "event": "weights", "how": how, "block": r.block.0, "extrinsic": r.extrinsic,
                    "uids": self.state.weights.uids, "weights": emit.weights, "scores": scores,
                }));
                Ok(())
            }
            Err(ChainError::RateLimited { next, .. }) => {
                tracing::info!(next = next.0, "weights are rate limited; waiting");
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("{how} weights"))),
        }
    }
}
