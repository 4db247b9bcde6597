//! The miner role's caller policy and slot enforcement, on loopback against
//! a simulated chain whose block stands still (12 s blocks).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use akihabara_gpu::synapse::PowChallenge;
use akihabara_gpu::{Challenge, CpuProver, Seed};

use super::*;
use crate::axon::{Axon, AxonStats, StakePolicy};
use crate::chain::{ChainClient, Hyperparameters, SnapshotChain};
use crate::dendrite::{AxonTarget, Dendrite};
use crate::protocol::Ping;
use crate::schedule::SlotRefusal;
use crate::wallet::Keypair;
use crate::{Block, Metagraph, Netuid, Neuron, RAO_PER_TAO, Rao, Uid};

const NETUID: Netuid = Netuid(4);
const T: Duration = Duration::from_secs(20);

fn key(name: &str) -> Keypair {
    Keypair::from_uri(&format!("//miner-policy-test/{name}")).expect("key")
}

fn hyper() -> Hyperparameters {
    Hyperparameters {
        tempo: 50,
        ..Hyperparameters::default()
    }
}

/// v0 (uid 0, 3000 TAO) and v1 (uid 1, 1000 TAO), both with permits, and
/// the miner (uid 2); the chain stands at block 50.
fn neurons() -> Vec<Neuron> {
    vec![
        Neuron::new(Uid(0), key("v0").account(), Rao(3_000 * RAO_PER_TAO), true),
        Neuron::new(Uid(1), key("v1").account(), Rao(1_000 * RAO_PER_TAO), true),
        Neuron::new(Uid(2), key("miner").account(), Rao(RAO_PER_TAO), false),
    ]
}

fn chain() -> Arc<dyn ChainClient> {
    Arc::new(
        SnapshotChain::new(Metagraph::new(NETUID, Block(50), neurons()).expect("mg"))
            .hyperparameters(hyper()),
    )
}

/// A miner with 100-block windows (so [0, 100) at block 50), 10-block
/// minimum slots, as `tune` sets it up.
fn miner(chain: &Arc<dyn ChainClient>, tune: impl FnOnce(MinerBuilder) -> MinerBuilder) -> Miner {
    tune(
        Miner::builder(key("miner"), NETUID)
            .chain(chain.clone())
            .strategy(crate::strategy::by_name("proportional").expect("strategy"))
            .prover(Box::new(CpuProver::new()))
            .window_blocks(100)
            .min_blocks(10),
    )
    .build()
    .expect("miner")
}

struct Served {
    target: AxonTarget,
    stats: Arc<AxonStats>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(chain: &Arc<dyn ChainClient>, miner: &Miner) -> Served {
    let axon = miner
        .routes(Axon::builder(key("miner")).builtins(Vec::new))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    chain
        .serve_axon(NETUID, &key("miner"), [127, 0, 0, 1].into(), port)
        .await
        .expect("serve_axon");
    let stats = axon.stats();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    Served {
        target: AxonTarget::new([127, 0, 0, 1].into(), port, key("miner").account()),
        stats,
        _stop: tx,
    }
}

/// `(status, message)` of a `Ping` from `who`.
async fn ping(who: &str, target: &AxonTarget) -> (u16, String) {
    let d = Dendrite::new(key(who)).expect("dendrite");
    let r = d.call(target, Ping::new("hi", 0), T).await;
    (r.status, r.message)
}

fn blacklisted(reason: String) -> (u16, String) {
    (403, format!("Forbidden. Key is blacklisted: {reason}."))
}

#[tokio::test]
async fn the_caller_policy_applies_to_every_synapse() {
    let chain = chain();
    let mg = chain.metagraph(NETUID).await.expect("mg");
    let (v0, v1) = (key("v0").account(), key("v1").account());

    // A blacklisted hotkey.
    let m = miner(&chain, |b| {
        b.policy(StakePolicy::new(Some(mg.clone())).deny_hotkeys([v1]))
    });
    let s = serve(&chain, &m).await;
    assert_eq!(ping("v0", &s.target).await, (200, "Success".into()));
    assert_eq!(
        ping("v1", &s.target).await,
        blacklisted(format!("hotkey {v1} is on the deny list"))
    );
    // A challenge too, before any work.
    let d1 = Dendrite::new(key("v1")).expect("dendrite");
    let ch = Challenge::new(Seed([7; 32]), 64, 1).expect("challenge");
    let r = d1.call(&s.target, PowChallenge::new(&ch), T).await;
    assert_eq!(
        (r.status, r.message),
        blacklisted(format!("hotkey {v1} is on the deny list"))
    );
    assert_eq!(s.stats.by_status(), [(200, 1), (403, 2)]);

    // A whitelist admits only whom it lists.
    let m = miner(&chain, |b| {
        b.policy(StakePolicy::new(Some(mg.clone())).allow_hotkeys([v0]))
    });
    let s = serve(&chain, &m).await;
    assert_eq!(ping("v0", &s.target).await, (200, "Success".into()));
    assert_eq!(
        ping("v1", &s.target).await,
        blacklisted(format!("hotkey {v1} is not on the allow list"))
    );

    // A minimum stake, in rao from TAO.
    let min: crate::Tao = "2000".parse().expect("tao");
    let m = miner(&chain, |b| {
        b.policy(StakePolicy::new(Some(mg.clone())).min_stake(min.to_rao()))
    });
    let s = serve(&chain, &m).await;
    assert_eq!(ping("v0", &s.target).await, (200, "Success".into()));
    assert_eq!(
        ping("v1", &s.target).await,
        blacklisted(format!(
            "hotkey {v1} has stake 1000, below the minimum 2000"
        ))
    );
    // No permit, unknown: refused.
    assert_eq!(
        ping("miner", &s.target).await,
        blacklisted(format!(
            "hotkey {} has no validator permit",
            key("miner").account()
        ))
    );
    let stranger = key("stranger").account();
    assert_eq!(
        ping("stranger", &s.target).await,
        blacklisted(format!("hotkey {stranger} is not registered on netuid 4"))
    );
}

#[tokio::test]
async fn each_window_refreshes_the_policy_metagraph() {
    let chain = chain();
    // The policy starts from an old metagraph that lacks v1.
    let old = Metagraph::new(NETUID, Block(1), neurons()[..1].to_vec()).expect("mg");
    let mut m = miner(&chain, |b| b.policy(StakePolicy::new(Some(old))));
    let s = serve(&chain, &m).await;
    let v1 = key("v1").account();
    assert_eq!(
        ping("v1", &s.target).await,
        blacklisted(format!("hotkey {v1} is not registered on netuid 4"))
    );
    let change = m.step(Block(50), &hyper()).await.expect("step");
    assert!(change.is_some_and(|c| !c.resumed));
    assert_eq!(ping("v1", &s.target).await, (200, "Success".into()));
}

#[tokio::test]
async fn a_validator_outside_its_slot_is_refused_and_skips_until_it() {
    let chain = chain();
    let mut m = miner(&chain, |b| b);
    let s = serve(&chain, &m).await;
    m.step(Block(50), &hyper()).await.expect("step");
    let slots: Vec<(u16, u64, u64)> = m
        .current()
        .expect("a schedule")
        .slots()
        .iter()
        .map(|s| (s.uid.0, s.start.0, s.end.0))
        .collect();
    // Proportional to stake, 3:1, in one window [0, 100).
    assert_eq!(slots, [(0, 0, 75), (1, 75, 100)]);

    // On the wire: 409 and the next slot, readable by any dendrite.
    let d1 = Dendrite::new(key("v1")).expect("dendrite");
    let ch = Challenge::new(Seed([7; 32]), 64, 1).expect("challenge");
    let r = d1.call(&s.target, PowChallenge::new(&ch), T).await;
    assert_eq!(
        (r.status, r.message.as_str()),
        (
            409,
            "Not your slot: next_slot=75..100 window_end=100 block=50"
        )
    );
    assert_eq!(
        SlotRefusal::parse(r.status, &r.message),
        Some(SlotRefusal {
            next_slot: Some((Block(75), Block(100))),
            window_end: Block(100),
            block: Block(50),
        })
    );

    // The validator records a skip, not a failed round, and does not call
    // again before its slot.
    let mut v = Validator::builder(key("v1"), NETUID)
        .chain(chain.clone())
        .pow(PowSettings::new(64, 1).samples(8))
        .respect_schedules(false)
        .seeded(1)
        .build()
        .await
        .expect("validator");
    let skip = vec![(
        Uid(2),
        "refused outside our slot; not before block 75".to_owned(),
    )];
    let round = v.round(Block(50)).await.expect("round");
    assert_eq!((round.challenged.len(), &round.skipped), (0, &skip));
    assert!(v.measured().is_empty(), "a refusal is no measurement");
    assert_eq!(v.challenger().refused_until(Uid(2)), Some(Block(75)));
    let asked = s.stats.total();
    let round = v.round(Block(60)).await.expect("round");
    assert_eq!((round.challenged.len(), &round.skipped), (0, &skip));
    assert_eq!(s.stats.total(), asked, "no call before the slot");

    // The grace: two blocks on each side of a slot.
    let (v0, v1) = (key("v0").account(), key("v1").account());
    m.step(Block(72), &hyper()).await.expect("step");
    assert_eq!(
        m.admit(&v1),
        Err(SlotRefusal {
            next_slot: Some((Block(75), Block(100))),
            window_end: Block(100),
            block: Block(72),
        })
    );
    m.step(Block(73), &hyper()).await.expect("step");
    assert_eq!(m.admit(&v1), Ok(()));
    m.step(Block(76), &hyper()).await.expect("step");
    assert_eq!(m.admit(&v0), Ok(()));
    m.step(Block(77), &hyper()).await.expect("step");
    assert_eq!(
        m.admit(&v0),
        Err(SlotRefusal {
            next_slot: None,
            window_end: Block(100),
            block: Block(77),
        })
    );
    assert_eq!(
        m.admit(&v0).map_err(|r| r.to_string()),
        Err("Not your slot: next_slot=none window_end=100 block=77".into())
    );

    // In its slot, the validator measures the miner again.
    let round = v.round(Block(77)).await.expect("round");
    assert_eq!(round.skipped, []);
    let passed: Vec<(u16, bool)> = round.challenged.iter().map(|m| (m.uid, m.passed)).collect();
    assert_eq!(passed, [(2, true)]);
    assert_eq!(v.challenger().refused_until(Uid(2)), None);
}

#[tokio::test]
async fn without_enforcement_or_a_schedule_every_validator_is_admitted() {
    let chain = chain();
    let v1 = key("v1").account();
    let m = miner(&chain, |b| b);
    assert_eq!(m.admit(&v1), Ok(()), "no schedule yet");
    let mut m = miner(&chain, |b| b.enforce_slots(None));
    m.step(Block(50), &hyper()).await.expect("step");
    assert_eq!(m.admit(&v1), Ok(()));
}
