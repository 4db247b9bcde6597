//! `akihabara demo`: a whole local subnet in one process, on loopback.
//!
//! Real parts: sr25519 keys, axons and dendrites speaking the Bittensor wire
//! protocol with signatures, CPU proofs of work verified by the validators,
//! the pow scorer with an EMA, and u16 weights. Simulated: the chain
//! ([`SnapshotChain`], named so in the output).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akihabara_core::axon::Axon;
use akihabara_core::chain::{ChainClient, Hyperparameters, SnapshotChain};
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::metagraph::{Metagraph, Neuron};
use akihabara_core::schedule::{Layout, Schedule};
use akihabara_core::score::{Ema, Measurements, MinerReport, PowReport, PowScorer, Scorer};
use akihabara_core::strategy::{self, AllocationRequest, Eligibility};
use akihabara_core::wallet::Keypair;
use akihabara_core::{Block, Netuid, RAO_PER_TAO, Rao, Tao, Uid, Window};
use akihabara_gpu::round::{RoundConfig, challenge_miner, serve_pow};
use akihabara_gpu::synapse::PowService;
use akihabara_gpu::{Challenge, CpuProver, Prover, Seed, SkippingProver, Verdict, Verifier};
use anyhow::Context;
use serde::Serialize;

use crate::args::DemoArgs;
use crate::exit::bad_input;
use crate::out;

const NETUID: Netuid = Netuid(1);
const TEMPO: u64 = 100;
const BLOCK_TIME: Duration = Duration::from_millis(5);
/// Reference ops/s of the pow scorer: far above any CPU, so scores stay
/// proportional to measured speed instead of saturating at 1.
const REFERENCE_OPS: f64 = 1e13;

#[derive(Debug, Serialize)]
struct MinerOut {
    uid: u16,
    hotkey: String,
    port: u16,
    cheating: bool,
    pow_passed: u32,
    pow_failed: u32,
}

#[derive(Debug, Serialize)]
struct WeightOut {
    uid: u16,
    weight: u16,
}

#[derive(Debug, Serialize)]
struct ValidatorOut {
    uid: u16,
    hotkey: String,
    stake_tao: f64,
    scores: Vec<(u16, f64)>,
    weights: Vec<WeightOut>,
    weights_set_at: Option<u64>,
    weights_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct RoundOut {
    window_start: u64,
    miner: u16,
    validator: u16,
    slot: [u64; 2],
    passed: bool,
    ops_per_second: f64,
    verdict: String,
}

#[derive(Debug, Serialize)]
struct Report {
    demo: &'static str,
    strategy: String,
    challenge: serde_json::Value,
    windows: Vec<serde_json::Value>,
    rounds: Vec<RoundOut>,
    miners: Vec<MinerOut>,
    validators: Vec<ValidatorOut>,
    elapsed_s: f64,
}

/// A validator's latest epoch: scores, weights, and where they were set (or
/// why not).
type LastEpoch = (Vec<(u16, f64)>, Vec<WeightOut>, Option<u64>, Option<String>);

fn check(a: &DemoArgs) -> anyhow::Result<()> {
    let bad = |m: String| Err(bad_input(anyhow::anyhow!(m)));
    if !(1..=16).contains(&a.validators) {
        return bad(format!(
            "--validators must be 1 to 16, not {}",
            a.validators
        ));
    }
    if !(1..=32).contains(&a.miners) {
        return bad(format!("--miners must be 1 to 32, not {}", a.miners));
    }
    if !(1..=50).contains(&a.windows) {
        return bad(format!("--windows must be 1 to 50, not {}", a.windows));
    }
    if a.samples == 0 {
        return bad("--samples must be at least 1".into());
    }
    if a.n > 2048 {
        return bad(format!(
            "--n {} is too large for a demo (at most 2048)",
            a.n
        ));
    }
    if let Some(i) = a.cheat_miner.iter().find(|i| **i == 0 || **i > a.miners) {
        return bad(format!(
            "--cheat-miner {i}: miners are numbered 1 to {}",
            a.miners
        ));
    }
    Challenge::new(Seed([0; 32]), a.n, a.count).map_err(bad_input)?;
    strategy::by_name(&a.strategy).map_err(bad_input)?;
    Ok(())
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    check(&a)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(demo(&a))?;
    if a.json {
        out::println(serde_json::to_string_pretty(&report)?)?;
    } else {
        out::print(render(&report))?;
    }
    Ok(())
}

struct MinerNode {
    uid: Uid,
    target: AxonTarget,
    cheating: bool,
}

async fn demo(a: &DemoArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let key = |role: &str, i: u16| Keypair::from_uri(&format!("//akihabara-demo/{role}/{i}"));
    let validators: Vec<Keypair> = (0..a.validators)
        .map(|i| key("validator", i))
        .collect::<Result<_, _>>()?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));

    // Miners: one axon each on a free loopback port.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut miners = Vec::new();
    let mut servers = Vec::new();
    for i in 0..a.miners {
        let kp = key("miner", i)?;
        let cheating = a.cheat_miner.contains(&(i + 1));
        let prover: Box<dyn Prover> = if cheating {
            Box::new(SkippingProver::new())
        } else {
            Box::new(CpuProver::new())
        };
        let axon = serve_pow(
            Axon::builder(kp.clone()).builtins(Vec::new),
            Arc::new(PowService::new(prover)),
        )
        .bind(loopback(0))
        .await
        .context("binding a miner's axon on 127.0.0.1")?;
        let port = axon.local_addr()?.port();
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(axon.serve(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
        miners.push(MinerNode {
            uid: Uid(a.validators + i),
            target: AxonTarget::new([127, 0, 0, 1].into(), port, kp.account()),
            cheating,
        });
    }

    // The subnet as the simulated chain holds it.
    let mut neurons = Vec::new();
    for (i, v) in validators.iter().enumerate() {
        // Stakes 100 000, 50 000, 33 333 … TAO.
        let tao = Tao::from_whole(100_000 / (i as u64 + 1)).context("stake")?;
        neurons.push(Neuron::new(Uid(i as u16), v.account(), tao.to_rao(), true));
    }
    for m in &miners {
        let mut n = Neuron::new(m.uid, m.target.hotkey, Rao(10 * RAO_PER_TAO), false);
        n.axon = Some(loopback(m.target.port));
        neurons.push(n);
    }
    let mg = Metagraph::new(NETUID, Block(7_200), neurons)?;
    let chain = Arc::new(
        SnapshotChain::new(mg.clone())
            .hyperparameters(Hyperparameters {
                tempo: TEMPO,
                weights_rate_limit: TEMPO / 5,
                ..Hyperparameters::default()
            })
            .block_time(BLOCK_TIME),
    );

    let strat = strategy::by_name(&a.strategy)?;
    let dendrites: Vec<Dendrite> = validators
        .iter()
        .map(|v| Dendrite::new(v.clone()))
        .collect::<Result<_, _>>()?;
    let dendrites = Arc::new(dendrites);
    let round = Arc::new(RoundConfig {
        samples: a.samples,
        timeout: Duration::from_secs(60),
        verifier: Verifier::new(),
    });
    let scorer = PowScorer::new([("cpu".to_owned(), REFERENCE_OPS)].into())?;
    let mut emas: Vec<Ema> = (0..a.validators)
        .map(|_| Ema::new(0.5))
        .collect::<Result<_, _>>()?;
    let mut rounds: Vec<RoundOut> = Vec::new();
    let mut windows = Vec::new();
    let mut last: Vec<LastEpoch> = (0..a.validators).map(|_| Default::default()).collect();

    let mut window = Window::containing(chain.block().await?, 2 * TEMPO)?;
    for w in 0..a.windows {
        if w > 0 {
            window = Window::containing(window.end(), 2 * TEMPO)?;
        }
        // Each miner computes its own schedule from the metagraph.
        let req = AllocationRequest::new(window, 10, Eligibility::new().candidates(&mg))?;
        let mut tasks = tokio::task::JoinSet::new();
        let mut schedules = Vec::new();
        for m in &miners {
            let schedule = Schedule::build(&*strat, &req, Layout::Contiguous)?;
            schedules.push(serde_json::json!({
                "miner": m.uid.0,
                "slots": schedule.slots().iter().map(|s| serde_json::json!({
                    "validator": s.uid.0, "start": s.start.0, "end": s.end.0,
                })).collect::<Vec<_>>(),
            }));
            let (target, uid, d, cfg) = (m.target.clone(), m.uid, dendrites.clone(), round.clone());
            let clock = chain.clone();
            let slots: Vec<_> = schedule.slots().to_vec();
            let (n, count) = (a.n, a.count);
            // In each of the miner's slots, that validator challenges it.
            tasks.spawn(async move {
                let mut out = Vec::new();
                for slot in slots {
                    let v = usize::from(slot.uid.0);
                    // Wait for the slot on the simulated chain's clock (bounded).
                    let give_up = Instant::now() + BLOCK_TIME * (4 * TEMPO as u32);
                    while clock.block().await.is_ok_and(|b| b < slot.start)
                        && Instant::now() < give_up
                    {
                        tokio::time::sleep(BLOCK_TIME).await;
                    }
                    let outcome = async {
                        let ch = Challenge::new(Seed::random()?, n, count)?;
                        let secret = Seed::random()?.0;
                        Ok::<_, anyhow::Error>(
                            challenge_miner(&d[v], &target, &ch, &secret, &cfg).await?,
                        )
                    }
                    .await;
                    let (passed, ops, verdict) = match outcome {
                        Ok(o) => match o.verdict {
                            Verdict::Valid { ops_per_second, .. } => {
                                (true, ops_per_second, "valid".to_owned())
                            }
                            Verdict::Rejected(f) => (false, 0.0, format!("rejected: {f}")),
                        },
                        Err(e) => (false, 0.0, format!("no verdict: {e:#}")),
                    };
                    out.push(RoundOut {
                        window_start: window.start.0,
                        miner: uid.0,
                        validator: slot.uid.0,
                        slot: [slot.start.0, slot.end.0],
                        passed,
                        ops_per_second: ops,
                        verdict,
                    });
                }
                out
            });
        }
        let mut this: Vec<RoundOut> = tasks.join_all().await.into_iter().flatten().collect();
        this.sort_by_key(|r| (r.miner, r.slot[0]));

        // Each validator scores what it measured and sets weights.
        for (v, kp) in validators.iter().enumerate() {
            let miners_seen = this.iter().filter(|r| usize::from(r.validator) == v);
            let m = Measurements {
                miners: miners_seen
                    .map(|r| MinerReport {
                        uid: Uid(r.miner),
                        pow: Some(PowReport {
                            class: "cpu".into(),
                            passed: r.passed,
                            ops_per_second: r.ops_per_second,
                        }),
                        ..MinerReport::default()
                    })
                    .collect(),
            };
            let smoothed = emas[v].update(&scorer.score(&m)?);
            let (uids, values) = smoothed.to_vectors();
            let scores = uids
                .iter()
                .map(|u| u.0)
                .zip(values.iter().copied())
                .collect();
            let emit = akihabara_core::weights::convert_for_emit(&uids, &values);
            let (weights, at, error) = match emit {
                Ok(w) if !w.is_empty() => {
                    match chain.set_weights(NETUID, kp, &w.uids, &w.weights, 0).await {
                        Ok(r) => (w, Some(r.block.0), None),
                        Err(e) => (w, None, Some(e.to_string())),
                    }
                }
                Ok(w) => (w, None, Some("every score is zero: nothing to set".into())),
                Err(e) => (Default::default(), None, Some(e.to_string())),
            };
            let weights = miners
                .iter()
                .map(|m| WeightOut {
                    uid: m.uid.0,
                    weight: weights
                        .uids
                        .iter()
                        .position(|u| *u == m.uid)
                        .map_or(0, |i| weights.weights[i]),
                })
                .collect();
            last[v] = (scores, weights, at, error);
        }
        windows.push(serde_json::json!({
            "start": window.start.0, "end": window.end().0, "schedules": schedules,
        }));
        rounds.extend(this);
    }

    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    Ok(Report {
        demo: "a local subnet on 127.0.0.1: real keys, axons, signatures, CPU proofs of work \
               and scoring; the chain is a simulation (SnapshotChain)",
        strategy: a.strategy.clone(),
        challenge: serde_json::json!({"n": a.n, "count": a.count, "samples": a.samples}),
        windows,
        miners: miners
            .iter()
            .map(|m| {
                let mine = rounds.iter().filter(|r| r.miner == m.uid.0);
                let passed = mine.clone().filter(|r| r.passed).count() as u32;
                MinerOut {
                    uid: m.uid.0,
                    hotkey: m.target.hotkey.to_ss58(),
                    port: m.target.port,
                    cheating: m.cheating,
                    pow_passed: passed,
                    pow_failed: mine.count() as u32 - passed,
                }
            })
            .collect(),
        validators: validators
            .iter()
            .zip(last)
            .enumerate()
            .map(|(i, (kp, (scores, weights, at, error)))| ValidatorOut {
                uid: i as u16,
                hotkey: kp.account().to_ss58(),
                stake_tao: mg.neurons()[i].stake.to_tao().as_f64(),
                scores,
                weights,
                weights_set_at: at,
                weights_error: error,
            })
            .collect(),
        rounds,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

fn short(ss58: &str) -> String {
    format!("{}…", &ss58[..ss58.len().min(8)])
}

fn render(r: &Report) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "akihabara demo: {} validators and {} miners on 127.0.0.1 ({}).\n\
         Keys, axons, signed calls, proofs of work and scoring are real; the chain is a\n\
         simulation (SnapshotChain). Challenges: n = {}, {} products, {} rows opened.\n",
        r.validators.len(),
        r.miners.len(),
        r.strategy,
        r.challenge["n"],
        r.challenge["count"],
        r.challenge["samples"],
    );
    for w in &r.windows {
        let _ = writeln!(t, "window [{}, {}):", w["start"], w["end"]);
        for row in r
            .rounds
            .iter()
            .filter(|x| Some(x.window_start) == w["start"].as_u64())
        {
            let _ = writeln!(
                t,
                "  slot [{}, {}) validator {} -> miner {}: {}{}",
                row.slot[0],
                row.slot[1],
                row.validator,
                row.miner,
                row.verdict,
                if row.passed {
                    format!(" ({:.2} Gops/s)", row.ops_per_second / 1e9)
                } else {
                    String::new()
                }
            );
        }
    }
    let _ = writeln!(t, "\nMINER  HOTKEY      PORT   PASSED  FAILED");
    for m in &r.miners {
        let _ = writeln!(
            t,
            "{:>5}  {:<10}  {:>5}  {:>6}  {:>6}{}",
            m.uid,
            short(&m.hotkey),
            m.port,
            m.pow_passed,
            m.pow_failed,
            if m.cheating {
                "  (cheating: skips half its rows)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        t,
        "\nWeights each validator set on the simulated chain (u16, as set_weights sends them):"
    );
    for v in &r.validators {
        let ws: Vec<String> = v
            .weights
            .iter()
            .map(|w| format!("uid {} = {}", w.uid, w.weight))
            .collect();
        let when = match (&v.weights_set_at, &v.weights_error) {
            (Some(b), _) => format!("at block {b}"),
            (None, Some(e)) => format!("not set: {e}"),
            (None, None) => "not set".into(),
        };
        let _ = writeln!(
            t,
            "  validator {} ({}, {:.0} TAO): {}  [{when}]",
            v.uid,
            short(&v.hotkey),
            v.stake_tao,
            ws.join(", ")
        );
    }
    let _ = writeln!(
        t,
        "\nFinished in {:.1} s. Next: `akihabara demo --cheat-miner 1`, `akihabara demo --json`,\n\
         `akihabara schedule --help`, `akihabara sim --help`.",
        r.elapsed_s
    );
    t
}
