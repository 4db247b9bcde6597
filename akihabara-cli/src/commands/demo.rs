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
use akihabara_core::chain::{ChainClient, Hyperparameters, Network, SnapshotChain, Subtensor};
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
    demo: String,
    /// `simulated (SnapshotChain)` or the chain's URL.
    chain: String,
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
    let rt = crate::commands::axon::serve_runtime(2)?;
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

/// A validator or miner the demo runs: its uid and keys.
type Member = (Uid, Keypair);

/// The dev keys `setup_subnet.py` registers, found on the chain's subnet.
fn dev_keys(mg: &Metagraph, role: &str) -> anyhow::Result<Vec<Member>> {
    let mut found = Vec::new();
    for i in 1..=32 {
        let kp = Keypair::from_uri(&format!("//{role}{i}"))?;
        match mg.neurons().iter().find(|n| n.hotkey == kp.account()) {
            Some(n) => found.push((n.uid, kp)),
            None => break,
        }
    }
    if found.is_empty() {
        anyhow::bail!(
            "netuid {} has no //{role}1 hotkey: set the subnet up first (../shared/chain/setup_subnet.py)",
            mg.netuid().0
        );
    }
    Ok(found)
}

async fn demo(a: &DemoArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let key = |role: &str, i: u16| Keypair::from_uri(&format!("//akihabara-demo/{role}/{i}"));
    let real = match &a.network {
        Some(net) => {
            let network: Network = net.parse().map_err(bad_input)?;
            let chain = Subtensor::connect(&network)
                .await
                .with_context(|| format!("connecting to {}", network.url()))?;
            let mg = chain
                .metagraph(Netuid(a.netuid))
                .await
                .with_context(|| format!("reading netuid {}", a.netuid))?;
            Some((Arc::new(chain), mg))
        }
        None => None,
    };
    let (validators, miner_keys): (Vec<Member>, Vec<Member>) = match &real {
        Some((_, mg)) => (dev_keys(mg, "validator")?, dev_keys(mg, "miner")?),
        None => (
            (0..a.validators)
                .map(|i| Ok((Uid(i), key("validator", i)?)))
                .collect::<anyhow::Result<_>>()?,
            (0..a.miners)
                .map(|i| Ok((Uid(a.validators + i), key("miner", i)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
    };
    // A real chain refuses 127.0.0.1 as an axon address; all of 127/8 is loopback.
    let host: [u8; 4] = if real.is_some() {
        [127, 0, 0, 2]
    } else {
        [127, 0, 0, 1]
    };
    let loopback = |port| SocketAddr::from((host, port));

    // Miners: one axon each on a free loopback port.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut miners = Vec::new();
    let mut servers = Vec::new();
    for (i, (uid, kp)) in miner_keys.iter().enumerate() {
        let cheating = a.cheat_miner.contains(&(i as u16 + 1));
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
        .with_context(|| format!("binding a miner's axon on {}", loopback(0).ip()))?;
        let port = axon.local_addr()?.port();
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(axon.serve(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
        miners.push(MinerNode {
            uid: *uid,
            target: AxonTarget::new(host.into(), port, kp.account()),
            cheating,
        });
    }

    let (chain, mg, netuid, tempo, version_key): (
        Arc<dyn ChainClient>,
        Metagraph,
        Netuid,
        u64,
        u64,
    ) = match real {
        Some((chain, _)) => {
            let netuid = Netuid(a.netuid);
            for (m, (_, kp)) in miners.iter().zip(&miner_keys) {
                chain
                    .serve_axon(netuid, kp, host.into(), m.target.port)
                    .await
                    .with_context(|| format!("publishing miner uid {}'s axon", m.uid.0))?;
            }
            let h = chain.hyperparameters(netuid).await?;
            let mg = chain.metagraph(netuid).await?;
            (chain, mg, netuid, h.tempo.max(1), h.weights_version)
        }
        None => {
            // The subnet as the simulated chain holds it.
            let mut neurons = Vec::new();
            for (i, (uid, v)) in validators.iter().enumerate() {
                // Stakes 100 000, 50 000, 33 333 … TAO.
                let tao = Tao::from_whole(100_000 / (i as u64 + 1)).context("stake")?;
                neurons.push(Neuron::new(*uid, v.account(), tao.to_rao(), true));
            }
            for m in &miners {
                let mut n = Neuron::new(m.uid, m.target.hotkey, Rao(10 * RAO_PER_TAO), false);
                n.axon = Some(loopback(m.target.port));
                neurons.push(n);
            }
            let mg = Metagraph::new(NETUID, Block(7_200), neurons)?;
            let chain = SnapshotChain::new(mg.clone())
                .hyperparameters(Hyperparameters {
                    tempo: TEMPO,
                    weights_rate_limit: TEMPO / 5,
                    ..Hyperparameters::default()
                })
                .block_time(BLOCK_TIME);
            (Arc::new(chain), mg, NETUID, TEMPO, 0)
        }
    };
    let simulated = a.network.is_none();
    let index: std::collections::HashMap<Uid, usize> = validators
        .iter()
        .enumerate()
        .map(|(i, (u, _))| (*u, i))
        .collect();
    let index = Arc::new(index);

    let strat = strategy::by_name(&a.strategy)?;
    let dendrites: Vec<Dendrite> = validators
        .iter()
        .map(|(_, v)| Dendrite::new(v.clone()))
        .collect::<Result<_, _>>()?;
    let dendrites = Arc::new(dendrites);
    let round = Arc::new(RoundConfig {
        samples: a.samples,
        timeout: Duration::from_secs(60),
        verifier: Verifier::new(),
    });
    let scorer = PowScorer::new();
    let mut emas: Vec<Ema> = (0..validators.len())
        .map(|_| Ema::new(0.5))
        .collect::<Result<_, _>>()?;
    let mut rounds: Vec<RoundOut> = Vec::new();
    let mut windows = Vec::new();
    let mut last: Vec<LastEpoch> = (0..validators.len()).map(|_| Default::default()).collect();

    let mut window = Window::containing(chain.block().await?, 2 * tempo)?;
    for w in 0..a.windows {
        if w > 0 {
            window = Window::containing(window.end(), 2 * tempo)?;
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
            let (clock, index) = (chain.clone(), index.clone());
            let slots: Vec<_> = schedule.slots().to_vec();
            let (n, count) = (a.n, a.count);
            // In each of the miner's slots, that validator challenges it.
            tasks.spawn(async move {
                let mut out = Vec::new();
                for slot in slots {
                    // A slot of a validator this demo does not run stays idle.
                    let Some(&v) = index.get(&slot.uid) else {
                        continue;
                    };
                    // Wait for the slot on the simulated chain's clock
                    // (bounded); a real dev chain's slots run in order.
                    let give_up = Instant::now() + BLOCK_TIME * (4 * TEMPO as u32);
                    while simulated
                        && clock.block().await.is_ok_and(|b| b < slot.start)
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
        for (v, (vuid, kp)) in validators.iter().enumerate() {
            let miners_seen = this.iter().filter(|r| r.validator == vuid.0);
            let m = Measurements {
                miners: miners_seen
                    .map(|r| MinerReport {
                        uid: Uid(r.miner),
                        pow: Some(PowReport::from_rounds(
                            "cpu",
                            [r.passed.then_some(r.ops_per_second)],
                        )),
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
                    match chain
                        .set_weights(netuid, kp, &w.uids, &w.weights, version_key)
                        .await
                    {
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
        demo: match &a.network {
            None => {
                "a local subnet on 127.0.0.1: real keys, axons, signatures, CPU proofs of work \
                     and scoring; the chain is a simulation (SnapshotChain)"
                    .into()
            }
            Some(_) => format!(
                "netuid {} of a real chain, with miner axons on 127.0.0.2: real keys, axons, \
                 signatures, CPU proofs of work, scoring and weights on chain",
                netuid.0
            ),
        },
        chain: match &a.network {
            None => "a simulation (SnapshotChain)".into(),
            Some(n) => n
                .parse::<Network>()
                .map_or_else(|_| n.clone(), |n| n.url().to_owned()),
        },
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
            .map(|((uid, kp), (scores, weights, at, error))| ValidatorOut {
                uid: uid.0,
                hotkey: kp.account().to_ss58(),
                stake_tao: mg
                    .neurons()
                    .iter()
                    .find(|n| n.uid == *uid)
                    .map_or(0.0, |n| n.stake.to_tao().as_f64()),
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
        "akihabara demo: {} validators and {} miners on loopback ({}).\n\
         Keys, axons, signed calls, proofs of work and scoring are real; the chain: {}.\n\
         Challenges: n = {}, {} products, {} rows opened.\n",
        r.validators.len(),
        r.miners.len(),
        r.strategy,
        r.chain,
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
        "\nWeights each validator set on the chain (u16, as set_weights sends them):"
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
