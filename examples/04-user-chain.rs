//! A chain client written by a user, run through the library's `Validator`:
//! the same round, verification, EMA and weights code that `akihabara
//! validator run` runs on the real subtensor.
//!
//! `LedgerChain` below is an in-memory subnet (say, a test double for an
//! indexer or a private chain). It implements only the six required
//! methods of `ChainClient`; waiting for blocks and the other writes come
//! from the trait's defaults. Its blocks follow an injected `ManualClock`,
//! so the run replays exactly. One miner proves honestly, one skips half
//! the rows; the cheater's weight is 0.
//!
//! Run: `cargo run --example 04-user-chain`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akihabara::axon::Axon;
use akihabara::chain::{BlockStream, ChainClient, ChainError, Hyperparameters, Receipt};
use akihabara::clock::{Clock, ManualClock};
use akihabara::gpu::{CpuProver, Prover, SkippingProver};
use akihabara::roles::{Miner, PowSettings, Validator, WeightsReport};
use akihabara::strategy;
use akihabara::wallet::Keypair;
use akihabara::{Block, Hotkey, Netuid, RAO_PER_TAO, Rao, Uid};
use akihabara::{Metagraph, Neuron};

/// The weights a hotkey last set: at which block, which row.
type WeightsRow = (Block, Vec<(Uid, u16)>);

/// An in-memory subnet: a metagraph, a block that advances one per
/// `block_time` of its clock, and the weights each hotkey last set.
struct LedgerChain {
    metagraph: Metagraph,
    hyper: Hyperparameters,
    clock: ManualClock,
    block_time: Duration,
    weights: Mutex<BTreeMap<Hotkey, WeightsRow>>,
}

impl LedgerChain {
    fn now(&self) -> Block {
        let ticks = self.clock.elapsed().as_nanos() / self.block_time.as_nanos();
        Block(self.metagraph.block().0 + ticks as u64)
    }
}

#[async_trait::async_trait]
impl ChainClient for LedgerChain {
    async fn block(&self) -> Result<Block, ChainError> {
        Ok(self.now())
    }

    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        let (tx, stream) = BlockStream::channel(1);
        let _ = tx.send(Ok(self.now())).await;
        Ok(stream)
    }

    async fn metagraph(&self, netuid: Netuid) -> Result<Metagraph, ChainError> {
        if netuid != self.metagraph.netuid() {
            return Err(ChainError::NoSubnet(netuid));
        }
        Ok(self.metagraph.clone())
    }

    async fn hyperparameters(&self, _netuid: Netuid) -> Result<Hyperparameters, ChainError> {
        Ok(self.hyper.clone())
    }

    async fn uid_of(&self, _netuid: Netuid, hotkey: &Hotkey) -> Result<Option<Uid>, ChainError> {
        Ok(self.metagraph.by_hotkey(hotkey).map(|n| n.uid))
    }

    async fn set_weights(
        &self,
        _netuid: Netuid,
        hotkey: &Keypair,
        uids: &[Uid],
        weights: &[u16],
        _version_key: u64,
    ) -> Result<Receipt, ChainError> {
        let block = self.now();
        let row = uids.iter().copied().zip(weights.iter().copied()).collect();
        self.weights
            .lock()
            .map_err(|_| ChainError::Io("ledger poisoned".into()))?
            .insert(hotkey.account(), (block, row));
        Ok(Receipt {
            block,
            extrinsic: format!("ledger-{}", block.0),
        })
    }
}

const NETUID: Netuid = Netuid(7);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let validator_key = Keypair::from_uri("//akihabara-example/validator")?;
    let honest = Keypair::from_uri("//akihabara-example/miner/honest")?;
    let cheat = Keypair::from_uri("//akihabara-example/miner/cheat")?;
    let h = Hyperparameters {
        tempo: 10,
        weights_rate_limit: 1,
        ..Hyperparameters::default()
    };

    // The miners' axons first: the user's chain lists their addresses.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut neurons = vec![Neuron::new(
        Uid(0),
        validator_key.account(),
        Rao(10_000 * RAO_PER_TAO),
        true,
    )];
    let mut axons = Vec::new();
    for (i, kp) in [&honest, &cheat].into_iter().enumerate() {
        let axon = Axon::builder(kp.clone())
            .builtins(Vec::new)
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await?;
        let mut n = Neuron::new(Uid(i as u16 + 1), kp.account(), Rao(RAO_PER_TAO), false);
        n.axon = Some(axon.local_addr()?);
        neurons.push(n);
        drop(axon);
        axons.push(n_port(&neurons[i + 1]));
    }
    let clock = ManualClock::new();
    let chain = Arc::new(LedgerChain {
        metagraph: Metagraph::new(NETUID, Block(500), neurons)?,
        hyper: h.clone(),
        clock: clock.clone(),
        block_time: Duration::from_secs(12),
        weights: Mutex::new(BTreeMap::new()),
    });
    let dyn_chain: Arc<dyn ChainClient> = chain.clone();

    // The miners, through the library's Miner role, on the ports listed.
    let mut servers = Vec::new();
    for (kp, port) in [&honest, &cheat].into_iter().zip(axons) {
        let prover: Box<dyn Prover> = if kp.account() == honest.account() {
            Box::new(CpuProver::new())
        } else {
            Box::new(SkippingProver::new())
        };
        let mut miner = Miner::builder(kp.clone(), NETUID)
            .chain(dyn_chain.clone())
            .strategy(strategy::by_name("proportional")?)
            .prover(prover)
            .min_blocks(1)
            .build()?;
        miner.step(dyn_chain.block().await?, &h).await?;
        let axon = miner
            .routes(Axon::builder(kp.clone()).builtins(Vec::new))
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await?;
        let mut stopped = stopped.clone();
        servers.push(tokio::spawn(axon.serve(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }

    let mut validator = Validator::builder(validator_key.clone(), NETUID)
        .chain(dyn_chain.clone())
        .pow(PowSettings::new(128, 2).samples(16))
        .respect_schedules(false)
        .ema_alpha(1.0)
        .seeded(4)
        .build()
        .await?;
    for _ in 0..2 {
        let round = validator.round(chain.now()).await?;
        for m in &round.challenged {
            println!("block {}: miner {} {}", m.block, m.uid, m.verdict);
        }
        clock.advance(Duration::from_secs(12));
    }
    let WeightsReport::Landed { receipt, .. } = validator.weights_now(chain.now(), &h).await?
    else {
        return Err("the weights did not land".into());
    };
    let (block, row) = chain
        .weights
        .lock()
        .map_err(|_| "poisoned")?
        .get(&validator_key.account())
        .cloned()
        .ok_or("no weights row")?;
    println!(
        "weights on the user's chain at block {} ({}):",
        block.0, receipt.extrinsic
    );
    for (uid, w) in &row {
        println!("  uid {}: {w}", uid.0);
    }
    let weight = |u: u16| {
        row.iter()
            .find(|(uid, _)| uid.0 == u)
            .map_or(0, |(_, w)| *w)
    };
    assert_eq!(weight(1), u16::MAX, "the honest miner earns the most");
    assert_eq!(weight(2), 0, "the cheater earns nothing");

    let _ = stop.send(true);
    for s in servers {
        s.await??;
    }
    Ok(())
}

fn n_port(n: &Neuron) -> u16 {
    n.axon.map_or(0, |a| a.port())
}
