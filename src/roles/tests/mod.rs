//! The roles on loopback against a simulated chain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use akihabara_gpu::{CpuProver, Prover, SkippingProver};

use super::*;
use crate::axon::Axon;
use crate::chain::{ChainClient, Hyperparameters, SnapshotChain};
use crate::store::{Embedded, Store};
use crate::wallet::Keypair;
use crate::{Block, Metagraph, Netuid, Neuron, RAO_PER_TAO, Rao, Uid};

const NETUID: Netuid = Netuid(3);

fn key(name: &str) -> Keypair {
    Keypair::from_uri(&format!("//roles-test/{name}")).expect("key")
}

fn hyper() -> Hyperparameters {
    Hyperparameters {
        tempo: 10,
        weights_rate_limit: 2,
        ..Hyperparameters::default()
    }
}

/// A subnet of one validator (uid 0) and the given miners (uids 1, 2, …),
/// each serving on loopback through the miner role.
struct Subnet {
    chain: Arc<dyn ChainClient>,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn subnet(provers: Vec<Box<dyn Prover>>) -> Subnet {
    subnet_of(&["validator"], provers).await
}

/// Validators `names` (uids 0, 1, …), then the miners.
async fn subnet_of(names: &[&str], provers: Vec<Box<dyn Prover>>) -> Subnet {
    subnet_with(names, provers, |_, b| b.builtins(Vec::new)).await
}

/// As [`subnet_of`], with `extra(i, builder)` adding routes to miner `i`'s
/// axon (built with its key; `subnet_of` adds the built-in synapses).
async fn subnet_with(
    names: &[&str],
    provers: Vec<Box<dyn Prover>>,
    extra: impl Fn(usize, crate::axon::AxonBuilder) -> crate::axon::AxonBuilder,
) -> Subnet {
    let mut neurons: Vec<Neuron> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Neuron::new(
                Uid(i as u16),
                key(name).account(),
                Rao(1_000 * RAO_PER_TAO),
                true,
            )
        })
        .collect();
    let first = names.len() as u16;
    for i in 0..provers.len() {
        let kp = key(&format!("miner{i}"));
        neurons.push(Neuron::new(
            Uid(first + i as u16),
            kp.account(),
            Rao(RAO_PER_TAO),
            false,
        ));
    }
    let chain: Arc<dyn ChainClient> = Arc::new(
        SnapshotChain::new(Metagraph::new(NETUID, Block(50), neurons).expect("mg"))
            .hyperparameters(hyper())
            .block_time(Duration::from_millis(5)),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for (i, prover) in provers.into_iter().enumerate() {
        let kp = key(&format!("miner{i}"));
        let miner = Miner::builder(kp.clone(), NETUID)
            .chain(chain.clone())
            .strategy(crate::strategy::by_name("proportional").expect("strategy"))
            .prover(prover)
            .build()
            .expect("miner");
        let axon = miner
            .routes(extra(i, Axon::builder(kp.clone())))
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let port = axon.local_addr().expect("addr").port();
        chain
            .serve_axon(NETUID, &kp, [127, 0, 0, 1].into(), port)
            .await
            .expect("serve_axon");
        let mut stopped = stopped.clone();
        tokio::spawn(axon.serve(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    }
    Subnet { chain, stop }
}

fn validator(chain: &Arc<dyn ChainClient>) -> ValidatorBuilder {
    Validator::builder(key("validator"), NETUID)
        .chain(chain.clone())
        .pow(PowSettings::new(64, 1).samples(8))
        .respect_schedules(false)
        .ema_alpha(1.0)
        .round_blocks(1)
        .seeded(1)
}

#[tokio::test]
async fn a_round_pays_the_honest_miner_and_zeroes_the_cheater() {
    let net = subnet(vec![
        Box::new(CpuProver::new()),
        Box::new(SkippingProver::new()),
    ])
    .await;
    let mut v = validator(&net.chain).build().await.expect("validator");
    assert_eq!(v.uid(), Uid(0), "found by hotkey on the chain");
    let block = net.chain.block().await.expect("block");
    let step = v.step(block, &hyper()).await.expect("step");
    let round = step.round.expect("a round was due");
    let verdicts: Vec<(u16, bool)> = round.challenged.iter().map(|m| (m.uid, m.passed)).collect();
    assert_eq!(verdicts, [(1, true), (2, false)]);
    assert!(round.challenged[0].ops_per_second > 0.0);
    assert!(
        round.challenged[1].verdict.starts_with("rejected: "),
        "{:?}",
        round.challenged[1]
    );
    assert_eq!(round.challenged[1].ops_per_second, 0.0);
    match step.weights {
        Some(WeightsReport::Landed { how, epoch, .. }) => {
            assert_eq!(how, "set");
            assert_eq!(epoch.weights.uids, [Uid(1)]);
            assert_eq!(epoch.weights.weights, [u16::MAX]);
            assert_eq!(
                epoch.smoothed.scores[&Uid(1)].get(),
                round.challenged[0].ops_per_second,
                "the pow score is the verified ops/s"
            );
        }
        other => panic!("weights did not land: {other:?}"),
    }
    assert!(v.measured().is_empty(), "the epoch's rounds are spent");
    // The next block: a round (every block here), but weights only once per tempo.
    let again = v.step(Block(block.0 + 1), &hyper()).await.expect("step");
    assert!(again.round.is_some());
    assert!(again.weights.is_none(), "{:?}", again.weights);
    let _ = net.stop.send(true);
}

/// A uid re-registered by another hotkey inherits neither the moving
/// average nor the penalty of the hotkey before it.
#[tokio::test]
async fn a_new_hotkey_at_a_scored_uid_starts_from_nothing() {
    let net = subnet(vec![
        Box::new(CpuProver::new()),
        Box::new(SkippingProver::new()),
    ])
    .await;
    let mut v = validator(&net.chain)
        .ema_alpha(0.5)
        .build()
        .await
        .expect("validator");
    let block = net.chain.block().await.expect("block");
    let step = v.step(block, &hyper()).await.expect("step");
    assert!(
        matches!(step.weights, Some(WeightsReport::Landed { .. })),
        "{:?}",
        step.weights
    );
    let mg = net.chain.metagraph(NETUID).await.expect("metagraph");
    // The same holders, no new rounds: uid 1 decays, it is not forgotten.
    let kept = v.preview(&mg).expect("preview");
    assert!(
        kept.smoothed
            .scores
            .get(&Uid(1))
            .is_some_and(|s| s.get() > 0.0),
        "{kept:?}"
    );
    assert!(
        v.probes.penalties.get(Uid(2)) > 0.0,
        "the cheater is penalised"
    );
    // Uids 1 and 2 re-registered by newcomers.
    let mut neurons = mg.neurons().to_vec();
    neurons[1].hotkey = key("newcomer1").account();
    neurons[2].hotkey = key("newcomer2").account();
    let moved = Metagraph::new(NETUID, mg.block(), neurons).expect("mg");
    let fresh = v.preview(&moved).expect("preview");
    assert!(
        fresh
            .smoothed
            .scores
            .get(&Uid(1))
            .is_none_or(|s| s.get() == 0.0),
        "{fresh:?}"
    );
    assert!(fresh.weights.uids.is_empty(), "{:?}", fresh.weights);
    // Followed for good (as a round, a probe or weights do): the cheater's
    // penalty goes with its uid; one the newcomer earns after is kept.
    v.follow(&moved);
    assert_eq!(v.probes.penalties.get(Uid(2)), 0.0);
    v.probes.penalties.penalize(Uid(2));
    assert_eq!(v.followed(&moved).1.get(Uid(2)), 1.0);
    v.follow(&moved);
    assert_eq!(v.probes.penalties.get(Uid(2)), 1.0);
    let _ = net.stop.send(true);
}

#[tokio::test]
async fn challenges_are_sized_by_the_last_verified_speed() {
    let net = subnet(vec![
        Box::new(CpuProver::new()),
        Box::new(SkippingProver::new()),
    ])
    .await;
    let pow = PowSettings::new(64, 1).samples(8).scaled(0.05, 32);
    let mut v = validator(&net.chain)
        .pow(pow.clone())
        .build()
        .await
        .expect("validator");
    let block = net.chain.block().await.expect("block");
    let first = v.round(block).await.expect("round");
    assert_eq!(
        first.challenged.iter().map(|m| m.count).collect::<Vec<_>>(),
        [1, 1],
        "no speed known yet: the base count"
    );
    let speed = first.challenged[0].ops_per_second;
    assert_eq!(v.challenger().last_speed(Uid(1)), Some(speed));
    assert_eq!(
        v.challenger().last_speed(Uid(2)),
        None,
        "a failure is forgotten"
    );
    let second = v.round(Block(block.0 + 1)).await.expect("round");
    assert_eq!(second.challenged[0].count, pow.count_for(Some(speed)));
    assert_eq!(
        second.challenged[1].count, 1,
        "the cheater stays at the base size"
    );
    let _ = net.stop.send(true);
}

/// Miners that answer each call just inside the limit cannot hold a round
/// for their number times their turn: past `round_deadline` the rest are
/// skipped, unmeasured, and go first the next round. Before the deadline,
/// five such miners one at a time held this round for about 12 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_miners_cannot_hold_a_round_past_its_deadline() {
    use crate::protocol::Ping;
    let provers: Vec<Box<dyn Prover>> = (0..5)
        .map(|_| Box::new(CpuProver::new()) as Box<dyn Prover>)
        .collect();
    // Every Ping answered after 1.2 s, inside the 2 s limit on each call.
    let net = subnet_with(&["validator"], provers, |i, b| {
        let me = key(&format!("miner{i}")).account().to_ss58();
        b.builtins(Vec::new).route(move |p: Ping, _| {
            let me = me.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1200)).await;
                p.answer(&me)
                    .ok_or_else(|| crate::axon::HandlerError::bad_request("count"))
            }
        })
    })
    .await;
    let pow = PowSettings::new(64, 1)
        .samples(8)
        .timeout(Duration::from_secs(2))
        .concurrency(1)
        .round_deadline(Duration::from_secs(4));
    let mut v = validator(&net.chain)
        .pow(pow)
        .build()
        .await
        .expect("validator");
    let block = net.chain.block().await.expect("block");
    let started = std::time::Instant::now();
    let round = v.round(block).await.expect("round");
    let took = started.elapsed();
    // One turn (two slow Pings, ~2.4 s) ends inside the deadline; the
    // deadline ends the next (~4.8 s); the other three never start.
    assert_eq!(round.challenged.len(), 1, "{round:?}");
    assert!(round.challenged[0].passed, "{:?}", round.challenged[0]);
    assert_eq!(round.skipped.len(), 4, "{round:?}");
    for (_, why) in &round.skipped {
        assert_eq!(
            why,
            "not measured: the round's deadline (4 s, pow.round_deadline) passed before this \
             miner's turn ended"
        );
    }
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The miners left out go first next round: five rounds measure all
    // five. In a random order each round, five rounds measured five
    // different miners once in 26 (5!/5^5).
    let mut measured = vec![round.challenged[0].uid];
    for r in 1..5 {
        let round = v.round(Block(block.0 + r)).await.expect("round");
        assert_eq!(round.challenged.len(), 1, "{round:?}");
        let uid = round.challenged[0].uid;
        assert!(
            !measured.contains(&uid),
            "{uid:?} again, after {measured:?}"
        );
        measured.push(uid);
    }
    // A deadline shorter than one miner's turn is refused.
    let short = PowSettings::new(64, 1)
        .timeout(Duration::from_secs(1))
        .round_deadline(Duration::from_millis(1500));
    assert_eq!(
        validator(&net.chain)
            .pow(short)
            .build()
            .await
            .err()
            .map(|e| e.to_string()),
        Some(
            "pow.round_deadline: 1.5 s: must be at least twice pow.timeout (2 s), one miner's \
             whole turn"
                .into()
        )
    );
    // Nor one so long that the clock cannot hold it.
    let long = PowSettings::new(64, 1).round_deadline(Duration::from_secs(u64::MAX));
    assert_eq!(
        validator(&net.chain)
            .pow(long)
            .build()
            .await
            .err()
            .map(|e| e.to_string()),
        Some("pow.round_deadline: 18446744073709552000 s: must be at most a day".into())
    );
    let _ = net.stop.send(true);
}

/// Five miners of three speeds (full, 40 %, 15 %: `ThrottledProver`
/// stands for slower hardware), measured by two validators one proof at a
/// time: both put every faster miner above every slower one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_validators_rank_miners_of_three_speeds_alike() {
    use akihabara_gpu::ThrottledProver;
    let fractions = [1.0, 1.0, 0.4, 0.4, 0.15];
    let provers: Vec<Box<dyn Prover>> = fractions
        .iter()
        .map(|f| {
            Box::new(ThrottledProver::new(CpuProver::new(), *f).expect("throttle"))
                as Box<dyn Prover>
        })
        .collect();
    let net = subnet_of(&["v0", "v1"], provers).await;
    let mut weights = Vec::new();
    for (i, name) in ["v0", "v1"].iter().enumerate() {
        let mut v = Validator::builder(key(name), NETUID)
            .chain(net.chain.clone())
            .pow(
                PowSettings::new(128, 1)
                    .samples(8)
                    .concurrency(1)
                    .scaled(0.2, 64),
            )
            .respect_schedules(false)
            .ema_alpha(1.0)
            .seeded(i as u64)
            .build()
            .await
            .expect("validator");
        let block = net.chain.block().await.expect("block");
        for r in 0..3 {
            let round = v.round(Block(block.0 + r)).await.expect("round");
            // The other validator is no miner: it serves no axon.
            assert_eq!(round.challenged.len(), 5);
            assert!(round.challenged.iter().all(|m| m.passed), "{round:?}");
        }
        let WeightsReport::Landed { epoch, .. } =
            v.weights_now(block, &hyper()).await.expect("weights")
        else {
            panic!("weights did not land");
        };
        let w: Vec<u16> = (2..7).map(|u| epoch.weight_of(Uid(u))).collect();
        eprintln!("validator {i}: weights of miners at {fractions:?} of full speed: {w:?}");
        weights.push(w);
    }
    for w in &weights {
        // Full speed above 40 % above 15 %, every miner of a class beyond
        // every miner of the next.
        assert!(w[0].min(w[1]) > w[2].max(w[3]), "{weights:?}");
        assert!(w[2].min(w[3]) > w[4], "{weights:?}");
    }
    let _ = net.stop.send(true);
}

#[tokio::test]
async fn the_validator_resumes_from_its_store() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(Embedded::open(dir.path().join("state.redb")).expect("store"));
    let mut v = validator(&net.chain)
        .store(store.clone())
        .build()
        .await
        .expect("validator");
    assert!(!v.resumed());
    let block = net.chain.block().await.expect("block");
    let round = v.round(block).await.expect("round");
    assert_eq!(round.challenged.len(), 1);
    drop(v);
    let mut v = validator(&net.chain)
        .store(store.clone())
        .build()
        .await
        .expect("validator");
    assert!(v.resumed());
    assert_eq!(v.measured(), &round.challenged[..]);
    let landed = v.weights_now(block, &hyper()).await.expect("weights");
    let WeightsReport::Landed { receipt, .. } = landed else {
        panic!("{landed:?}");
    };
    let v = validator(&net.chain)
        .store(store)
        .build()
        .await
        .expect("validator");
    assert_eq!(v.last_weights_block(), Some(receipt.block));
    assert!(v.measured().is_empty());
    let _ = net.stop.send(true);
}

#[tokio::test]
async fn bad_settings_are_typed_errors() {
    let net = subnet(Vec::new()).await;
    let err = |b: ValidatorBuilder| async move { b.build().await.err().map(|e| e.to_string()) };
    assert_eq!(
        err(validator(&net.chain).pow(PowSettings::new(64, 1).samples(0))).await,
        Some("pow.samples: 0: must be 1 to 1024 (the rows one PowOpen may ask for)".into())
    );
    assert_eq!(
        err(validator(&net.chain).pow(PowSettings::new(64, 1).samples(1025))).await,
        Some("pow.samples: 1025: must be 1 to 1024 (the rows one PowOpen may ask for)".into())
    );
    // A challenge no miner with the default limits takes (issue 23's bound).
    assert_eq!(
        err(validator(&net.chain).pow(PowSettings::new(2048, 65_536))).await,
        Some(
            "pow.count: a challenge of n = 2048 and count = 65536 is 562949953421312 \
             multiply-adds and 134217728 rows; miners take at most 2199023255552 and 1048576 \
             (akihabara_gpu::synapse::PowLimits)"
                .into()
        )
    );
    assert_eq!(
        err(validator(&net.chain).pow(PowSettings::new(64, 1).scaled(20.0, 8))).await,
        Some(
            "pow.target_seconds: 20: must be positive and at most a quarter of pow.timeout".into()
        )
    );
    assert_eq!(
        err(validator(&net.chain).pow(PowSettings::new(64, 1).scaled(1.0, 70_000))).await,
        Some("pow.max_count: invalid challenge: count = 70000 is more than 65536 products".into())
    );
    assert_eq!(
        err(validator(&net.chain).ema_alpha(0.0)).await,
        Some("scoring.ema_alpha: bad scorer configuration: EMA alpha 0 is not in (0, 1]".into())
    );
    let stranger = Validator::builder(key("stranger"), NETUID).chain(net.chain.clone());
    assert!(matches!(
        stranger.build().await,
        Err(RoleError::NotRegistered { netuid: 3, .. })
    ));
    assert!(matches!(
        Validator::builder(key("validator"), NETUID).build().await,
        Err(RoleError::Setting {
            setting: "chain",
            ..
        })
    ));
    let e = Miner::builder(key("m"), NETUID)
        .chain(net.chain.clone())
        .build()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("strategy: a miner needs a strategy: call .strategy(…)")
    );
    let _ = net.stop.send(true);
}

#[tokio::test]
async fn a_custom_scorer_decides_the_weights() {
    /// Pays everyone measured the same, passed or not.
    struct Flat;
    impl crate::score::Scorer for Flat {
        fn name(&self) -> &str {
            "flat"
        }
        fn score(
            &self,
            m: &crate::score::Measurements,
        ) -> Result<crate::score::ScoreSet, crate::score::ScoreError> {
            let mut out = crate::score::ScoreSet::default();
            for r in &m.miners {
                out.scores.insert(r.uid, crate::score::Score::new(1.0)?);
            }
            Ok(out)
        }
    }
    let net = subnet(vec![
        Box::new(CpuProver::new()),
        Box::new(SkippingProver::new()),
    ])
    .await;
    let mut v = validator(&net.chain)
        .scorer(Box::new(Flat))
        .build()
        .await
        .expect("validator");
    let block = net.chain.block().await.expect("block");
    v.round(block).await.expect("round");
    let WeightsReport::Landed { epoch, .. } =
        v.weights_now(block, &hyper()).await.expect("weights")
    else {
        panic!("weights did not land");
    };
    assert_eq!(epoch.weights.uids, [Uid(1), Uid(2)]);
    assert_eq!(epoch.weights.weights, [u16::MAX, u16::MAX]);
    let _ = net.stop.send(true);
}

mod probes;
mod timelock;

#[tokio::test]
async fn organic_runs_are_paid_and_cross_check_failures_penalised() {
    let net = subnet(vec![Box::new(CpuProver::new()), Box::new(CpuProver::new())]).await;
    let mut v = validator(&net.chain).build().await.expect("validator");
    let run = |id: &str, who: &str| OrganicRun {
        job_id: id.into(),
        miner: key(who).account(),
        class: "cpu".into(),
        started_s: 1_000,
        ended_s: 1_600,
    };
    let runs = [
        run("job-1", "miner0"),
        run("job-1", "miner0"),
        run("job-9", "stranger"),
    ];
    let penalties = [OrganicPenalty {
        job_id: "job-2".into(),
        miner: key("miner1").account(),
        reason: "stdout SHA-256 differs".into(),
    }];
    let report = v.record_organic(&runs, &penalties).await.expect("record");
    assert_eq!(
        report,
        OrganicReport {
            paid: 1,
            penalised: 1,
            unknown: 1
        }
    );
    let mg = net.chain.metagraph(NETUID).await.expect("mg");
    let m = v.measurements(&mg);
    let paid = m.miners.iter().find(|r| r.uid == Uid(1)).expect("uid 1");
    assert_eq!(paid.executors.len(), 1);
    assert_eq!(
        (
            paid.executors[0].class.as_str(),
            paid.executors[0].worked_seconds
        ),
        ("cpu", 600.0),
        "the job's whole length, once"
    );
    assert_eq!((v.penalty(Uid(1)), v.penalty(Uid(2))), (0.0, 1.0));
    let _ = net.stop.send(true);
}

/// The node's hyperparameters are not trusted: a rate limit of `u64::MAX`
/// (a hostile or broken node) means weights are not due, where the sum
/// used to overflow (a panic in debug builds, "due at every step" in release).
#[test]
fn weights_due_survives_a_hostile_rate_limit() {
    use super::validator::weights_due;
    let hostile = Hyperparameters {
        tempo: 10,
        weights_rate_limit: u64::MAX,
        ..Hyperparameters::default()
    };
    assert!(
        weights_due(None, Block(5), &hostile),
        "first weights are due at once"
    );
    assert!(!weights_due(Some(100), Block(u64::MAX - 1), &hostile));
    assert!(weights_due(Some(100), Block(u64::MAX), &hostile));
    // An honest node: once a tempo, or the rate limit if that is longer.
    assert!(!weights_due(Some(100), Block(109), &hyper()));
    assert!(weights_due(Some(100), Block(110), &hyper()));
}
