//! `akihabara demo`: a whole local subnet in one process, on loopback.
//!
//! Real parts: sr25519 keys, axons and dendrites speaking the Bittensor wire
//! protocol with signatures, CPU proofs of work verified by the validators,
//! the pow scorer with an EMA, and u16 weights. Simulated: the chain
//! ([`SnapshotChain`], named so in the output).

mod args;
mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akihabara::roles::{Measured, Miner, PowSettings, RoleError, Validator, WeightsReport};
use akihabara_core::axon::Axon;
use akihabara_core::chain::{ChainClient, Hyperparameters, Network, SnapshotChain, Subtensor};
use akihabara_core::dendrite::AxonTarget;
use akihabara_core::score::PowScorer;
use akihabara_core::strategy;
use akihabara_core::wallet::Keypair;
use akihabara_core::{
    Block, Layout, Metagraph, Netuid, Neuron, RAO_PER_TAO, Rao, Tao, Uid, Window,
};
use akihabara_gpu::{CpuProver, Prover, SkippingProver};
use anyhow::Context;

pub use self::args::DemoArgs;
use self::args::check;
use self::report::{
    LastEpoch, MinerOut, Report, RoundOut, ValidatorOut, WeightOut, agreement, render,
};

use crate::exit::bad_input;
use crate::out;

const NETUID: Netuid = Netuid(1);
const TEMPO: u64 = 100;
const BLOCK_TIME: Duration = Duration::from_millis(5);
/// Rounds a validator runs against a miner in each of its slots; the epoch
/// pays the median, so one round disturbed by the machine's other work
/// does not decide a weight.
const ROUNDS_PER_SLOT: usize = 3;
/// Seconds of compute each challenge aims at, at the miner's last verified
/// speed (`akihabara-gpu/SPEC.md`, section 7), and the most products.
const TARGET_SECONDS: f64 = 0.5;
const MAX_COUNT: u32 = 256;
/// Weight of the newest window in each validator's moving average: low
/// enough that a window measured while the machine was busy does not
/// decide the weights.
const EMA_ALPHA: f64 = 0.3;

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
    role: Miner,
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
    let miner_uids: Vec<u16> = miner_keys.iter().map(|(u, _)| u.0).collect();
    args::check_cheat_uids(a, &miner_uids)?;
    // A real chain refuses 127.0.0.1 as an axon address; all of 127/8 is loopback.
    let host: [u8; 4] = if real.is_some() {
        [127, 0, 0, 2]
    } else {
        [127, 0, 0, 1]
    };
    let loopback = |port| SocketAddr::from((host, port));

    let (chain, netuid, h): (Arc<dyn ChainClient>, Netuid, Hyperparameters) = match real {
        Some((chain, _)) => {
            let netuid = Netuid(a.netuid);
            let h = chain.hyperparameters(netuid).await?;
            (chain, netuid, h)
        }
        None => {
            // The subnet as the simulated chain holds it; each miner
            // publishes its axon below, as on a real chain.
            let mut neurons = Vec::new();
            for (i, (uid, v)) in validators.iter().enumerate() {
                // Stakes 100 000, 50 000, 33 333 … TAO.
                let tao = Tao::from_whole(100_000 / (i as u64 + 1)).context("stake")?;
                neurons.push(Neuron::new(*uid, v.account(), tao.to_rao(), true));
            }
            for (uid, kp) in &miner_keys {
                neurons.push(Neuron::new(
                    *uid,
                    kp.account(),
                    Rao(10 * RAO_PER_TAO),
                    false,
                ));
            }
            let h = Hyperparameters {
                tempo: TEMPO,
                weights_rate_limit: TEMPO / 5,
                ..Hyperparameters::default()
            };
            let chain = SnapshotChain::new(Metagraph::new(NETUID, Block(7_200), neurons)?)
                .hyperparameters(h.clone())
                .block_time(BLOCK_TIME);
            (Arc::new(chain), NETUID, h)
        }
    };
    let (tempo, version_key) = (h.tempo.max(1), h.weights_version);
    let simulated = a.network.is_none();

    // Miners: the library's miner role, one axon each on a free loopback
    // port, published on the chain.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut miners = Vec::new();
    let mut servers = Vec::new();
    for (uid, kp) in &miner_keys {
        let cheating = a.cheat_miner.contains(&uid.0);
        let prover: Box<dyn Prover> = if cheating {
            Box::new(SkippingProver::new())
        } else {
            Box::new(CpuProver::new())
        };
        let miner = Miner::builder(kp.clone(), netuid)
            .chain(chain.clone())
            .strategy(strategy::by_name(&a.strategy)?)
            .prover(prover)
            .min_blocks(10)
            .layout(Layout::Contiguous)
            .build()?;
        let axon = miner
            .routes(Axon::builder(kp.clone()).builtins(Vec::new))
            .bind(loopback(0))
            .await
            .with_context(|| format!("binding a miner's axon on {}", loopback(0).ip()))?;
        let port = axon.local_addr()?.port();
        chain
            .serve_axon(netuid, kp, host.into(), port)
            .await
            .with_context(|| format!("publishing miner uid {}'s axon", uid.0))?;
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(axon.serve(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
        miners.push(MinerNode {
            uid: *uid,
            target: AxonTarget::new(host.into(), port, kp.account()),
            cheating,
            role: miner,
        });
    }
    let mg = chain.metagraph(netuid).await?;

    // Validators: the library's validator role; the demo drives its rounds
    // in each miner's slots.
    let mut roles = Vec::new();
    for (uid, kp) in &validators {
        roles.push(
            Validator::builder(kp.clone(), netuid)
                .chain(chain.clone())
                .uid(*uid)
                .scorer(Box::new(PowScorer::new()))
                .pow(
                    PowSettings::new(a.n, a.count)
                        .samples(a.samples)
                        .timeout(Duration::from_secs(60))
                        .scaled(TARGET_SECONDS, MAX_COUNT.max(a.count)),
                )
                .ema_alpha(EMA_ALPHA)
                .version_key(version_key)
                .build()
                .await?,
        );
    }
    let index: std::collections::HashMap<Uid, usize> = validators
        .iter()
        .enumerate()
        .map(|(i, (u, _))| (*u, i))
        .collect();
    let index = Arc::new(index);
    let challengers: Arc<Vec<_>> = Arc::new(roles.iter().map(Validator::challenger).collect());
    // The demo's miners share this machine's CPU: one proof at a time, so
    // no miner is timed while another takes its cores (on a subnet every
    // miner has its own hardware). The lock is fair, so rounds interleave.
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let mut rounds: Vec<RoundOut> = Vec::new();
    let mut windows = Vec::new();
    let mut last: Vec<LastEpoch> = (0..validators.len()).map(|_| Default::default()).collect();

    let mut window = Window::containing(chain.block().await?, 2 * tempo)?;
    // Proofs done of those scheduled so far (each window adds its own).
    let bar = crate::progress::bar(0, "proofs", "demo");
    for w in 0..a.windows {
        if w > 0 {
            window = Window::containing(window.end(), 2 * tempo)?;
        }
        bar.set_message(format!("window {} of {}", w + 1, a.windows));
        // Each miner computes its own schedule from the metagraph.
        let mut tasks = tokio::task::JoinSet::new();
        let mut schedules = Vec::new();
        for m in &miners {
            let schedule = m.role.schedule_for(window, &mg)?;
            schedules.push(serde_json::json!({
                "miner": m.uid.0,
                "slots": schedule.slots().iter().map(|s| serde_json::json!({
                    "validator": s.uid.0, "start": s.start.0, "end": s.end.0,
                })).collect::<Vec<_>>(),
            }));
            let (target, uid, challengers) = (m.target.clone(), m.uid, challengers.clone());
            let (clock, index, cpu) = (chain.clone(), index.clone(), one_at_a_time.clone());
            let slots: Vec<_> = schedule.slots().to_vec();
            let ours = slots.iter().filter(|s| index.contains_key(&s.uid)).count();
            bar.inc_length((ours * ROUNDS_PER_SLOT) as u64);
            let bar = bar.clone();
            // In each of the miner's slots, that validator challenges it.
            tasks.spawn(async move {
                let mut out: Vec<(usize, [u64; 2], Measured)> = Vec::new();
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
                    for _ in 0..ROUNDS_PER_SLOT {
                        let _cpu = cpu.lock().await;
                        let m = challengers[v].challenge(slot.start, uid, &target).await;
                        bar.inc(1);
                        out.push((v, [slot.start.0, slot.end.0], m));
                    }
                }
                out
            });
        }
        let mut this: Vec<(usize, [u64; 2], Measured)> =
            tasks.join_all().await.into_iter().flatten().collect();
        this.sort_by_key(|(_, slot, m)| (m.uid, slot[0]));

        // Each validator scores what it measured and sets weights.
        for (v, role) in roles.iter_mut().enumerate() {
            role.record(
                this.iter()
                    .filter(|(i, _, _)| *i == v)
                    .map(|(_, _, m)| m.clone()),
            );
            let epoch = role.preview(&mg)?;
            let block = chain.block().await?;
            let (at, error) = match role.weights_now(block, &h).await {
                Ok(WeightsReport::Landed { receipt, .. }) => (Some(receipt.block.0), None),
                Ok(WeightsReport::AllZero { .. }) => {
                    (None, Some("every score is zero: nothing to set".into()))
                }
                Ok(WeightsReport::RateLimited { next }) => {
                    (None, Some(format!("rate limited until block {}", next.0)))
                }
                Ok(other) => (None, Some(format!("{other:?}"))),
                Err(RoleError::Weights { source, .. }) => (None, Some(source.to_string())),
                Err(e) => (None, Some(e.to_string())),
            };
            let scores = epoch
                .smoothed
                .scores
                .iter()
                .map(|(u, s)| (u.0, s.get()))
                .collect();
            let weights = miners
                .iter()
                .map(|m| WeightOut {
                    uid: m.uid.0,
                    weight: epoch.weight_of(m.uid),
                })
                .collect();
            last[v] = (scores, weights, at, error);
        }
        windows.push(serde_json::json!({
            "start": window.start.0, "end": window.end().0, "schedules": schedules,
        }));
        rounds.extend(this.into_iter().map(|(v, slot, m)| RoundOut {
            window_start: window.start.0,
            miner: m.uid,
            validator: validators[v].0.0,
            slot,
            passed: m.passed,
            ops_per_second: m.ops_per_second,
            count: m.count,
            verdict: m.verdict,
        }));
    }
    bar.finish_and_clear();

    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    let miners_out: Vec<MinerOut> = miners
        .iter()
        .map(|m| MinerOut::tally(m.uid.0, &m.target, m.cheating, &rounds))
        .collect();
    let validators_out: Vec<ValidatorOut> = validators
        .iter()
        .zip(last)
        .map(|((uid, kp), last)| ValidatorOut::new(*uid, kp, &mg, last))
        .collect();
    let agreement = agreement(&miners_out, &validators_out);
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
        challenge: serde_json::json!({
            "n": a.n, "count": a.count, "samples": a.samples, "rounds_per_slot": ROUNDS_PER_SLOT,
            "target_seconds": TARGET_SECONDS, "max_count": MAX_COUNT.max(a.count),
        }),
        windows,
        miners: miners_out,
        validators: validators_out,
        rounds,
        agreement,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}
