//! A validator with a scorer written here, against a simulated chain
//! (`SnapshotChain`) and two miners on loopback: one proving at full speed,
//! one throttled to a quarter (a stand-in for slower hardware). The rounds,
//! verification, EMA and weights are the library's `Validator`, the same
//! code `akihabara validator run` and `akihabara demo` run.
//!
//! Run: `cargo run --example 03-validator-custom-scorer`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use akihabara::axon::Axon;
use akihabara::chain::{ChainClient, Hyperparameters, SnapshotChain};
use akihabara::gpu::{CpuProver, Prover, ThrottledProver};
use akihabara::roles::{Miner, PowSettings, Validator, WeightsReport};
use akihabara::score::{Measurements, Score, ScoreError, ScoreSet, Scorer};
use akihabara::strategy;
use akihabara::wallet::Keypair;
use akihabara::{Block, Netuid, RAO_PER_TAO, Rao, Uid};
use akihabara::{Metagraph, Neuron};

/// Diminishing returns: pays the square root of the verified ops/s, so a
/// miner twice as fast earns about 1.41 times as much. Failed proofs and
/// miners without one score 0.
struct SqrtSpeed;

impl Scorer for SqrtSpeed {
    fn name(&self) -> &str {
        "sqrt-speed"
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        m.validate()?;
        let mut out = ScoreSet::default();
        for r in &m.miners {
            let ops = r
                .pow
                .as_ref()
                .filter(|p| p.passed)
                .map_or(0.0, |p| p.ops_per_second);
            out.scores.insert(r.uid, Score::new(ops.sqrt())?);
        }
        Ok(out)
    }
}

const NETUID: Netuid = Netuid(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let validator_key = Keypair::from_uri("//akihabara-example/validator")?;
    let miner_keys = [
        Keypair::from_uri("//akihabara-example/miner/0")?,
        Keypair::from_uri("//akihabara-example/miner/1")?,
    ];

    // The subnet: the validator (uid 0, with a permit) and two miners.
    let mut neurons = vec![Neuron::new(
        Uid(0),
        validator_key.account(),
        Rao(10_000 * RAO_PER_TAO),
        true,
    )];
    for (i, kp) in miner_keys.iter().enumerate() {
        neurons.push(Neuron::new(
            Uid(i as u16 + 1),
            kp.account(),
            Rao(RAO_PER_TAO),
            false,
        ));
    }
    let h = Hyperparameters {
        tempo: 10,
        weights_rate_limit: 1,
        ..Hyperparameters::default()
    };
    let chain: Arc<dyn ChainClient> = Arc::new(
        SnapshotChain::new(Metagraph::new(NETUID, Block(100), neurons)?)
            .hyperparameters(h.clone())
            .block_time(Duration::from_millis(5)),
    );

    // Two miners on loopback ports, published on the chain as a real miner
    // does; the second is throttled to 25 %.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for (i, kp) in miner_keys.iter().enumerate() {
        let prover: Box<dyn Prover> = match i {
            0 => Box::new(CpuProver::new()),
            _ => Box::new(ThrottledProver::new(CpuProver::new(), 0.25)?),
        };
        let mut miner = Miner::builder(kp.clone(), NETUID)
            .chain(chain.clone())
            .strategy(strategy::by_name("proportional")?)
            .prover(prover)
            .min_blocks(1)
            .build()?;
        miner.step(chain.block().await?, &h).await?;
        let axon = miner
            .routes(Axon::builder(kp.clone()).builtins(Vec::new))
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await?;
        let port = axon.local_addr()?.port();
        chain
            .serve_axon(NETUID, kp, [127, 0, 0, 1].into(), port)
            .await?;
        let mut stopped = stopped.clone();
        servers.push(tokio::spawn(axon.serve(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }

    let mut validator = Validator::builder(validator_key, NETUID)
        .chain(chain.clone())
        .scorer(Box::new(SqrtSpeed))
        .pow(PowSettings::new(256, 2).samples(8))
        .respect_schedules(false)
        .ema_alpha(1.0)
        .seeded(7)
        .build()
        .await?;

    // Three rounds, then one epoch of weights.
    for _ in 0..3 {
        let block = chain.block().await?;
        let round = validator.round(block).await?;
        for m in &round.challenged {
            println!(
                "block {}: miner {} {} at {:.3} Gops/s",
                m.block,
                m.uid,
                m.verdict,
                m.ops_per_second / 1e9
            );
            assert!(m.passed, "an honest miner failed: {m:?}");
        }
    }
    let block = chain.block().await?;
    let WeightsReport::Landed {
        how,
        receipt,
        epoch,
        ..
    } = validator.weights_now(block, &h).await?
    else {
        return Err("the weights did not land".into());
    };
    println!("weights {how} at block {}:", receipt.block.0);
    for (uid, s) in &epoch.smoothed.scores {
        println!(
            "  uid {}: sqrt-speed score {:>10.1}, weight {:>5}",
            uid.0,
            s.get(),
            epoch.weight_of(*uid)
        );
    }
    let (fast, slow) = (epoch.weight_of(Uid(1)), epoch.weight_of(Uid(2)));
    // The full-speed miner earns the most; the throttled one (a quarter of
    // the speed, so about half the square root) earns less, but something.
    assert_eq!(fast, u16::MAX);
    assert!(0 < slow && slow < fast, "weights {fast} and {slow}");

    let _ = stop.send(true);
    for s in servers {
        s.await??;
    }
    Ok(())
}
