//! The validator on a commit-reveal subnet whose chain takes timelocked
//! commits: a test chain that files each commit and, at the end of its
//! window, applies it when its drand pulse "arrived" (a switch) or drops it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;
use crate::chain::{
    BlockStream, ChainError, CommitStatus, DrandRound, PendingCommit, Receipt, TimelockReceipt,
    TimelockWeights,
};
use crate::{Hotkey, Metagraph};

/// Blocks from a commit to the end of its reveal window.
const WINDOW: u64 = 3;

#[derive(Default)]
struct Filed {
    commits: Vec<(u64, TimelockWeights)>,
    applied: Option<(u64, Vec<(u16, u16)>)>,
    sets: usize,
}

/// The subnet's chain for reads; timelocked commits and status simulated.
struct Timelocking {
    inner: Arc<dyn ChainClient>,
    block: AtomicU64,
    /// The round's pulse is stored and the runtime applies the weights.
    pulse_arrives: AtomicBool,
    /// The pulse is stored, but the runtime refuses the weights.
    refuses: AtomicBool,
    /// Commits fail (a connection lost) while set.
    commits_fail: AtomicBool,
    /// Commits land but are not seen included (a timeout) while set.
    commits_time_out: AtomicBool,
    filed: Mutex<Filed>,
}

impl Timelocking {
    fn new(inner: Arc<dyn ChainClient>, pulse: bool) -> Arc<Timelocking> {
        Arc::new(Timelocking {
            inner,
            block: AtomicU64::new(100),
            pulse_arrives: AtomicBool::new(pulse),
            refuses: AtomicBool::new(false),
            commits_fail: AtomicBool::new(false),
            commits_time_out: AtomicBool::new(false),
            filed: Mutex::new(Filed::default()),
        })
    }

    fn at(&self, b: u64) -> Block {
        self.block.store(b, Ordering::SeqCst);
        // The chain's own work at this block: windows that ended are settled.
        let mut f = self.filed.lock().expect("lock");
        if let Some((at, w)) = f.commits.last().cloned()
            && b > at + WINDOW
            && f.applied
                .as_ref()
                .is_none_or(|(applied_at, _)| *applied_at < at)
            && self.pulse_arrives.load(Ordering::SeqCst)
        {
            let pairs = w
                .uids
                .iter()
                .map(|u| u.0)
                .zip(w.weights.iter().copied())
                .collect();
            f.applied = Some((at + WINDOW, pairs));
        }
        Block(b)
    }

    fn commits(&self) -> usize {
        self.filed.lock().expect("lock").commits.len()
    }
}

#[async_trait::async_trait]
impl ChainClient for Timelocking {
    async fn block(&self) -> Result<Block, ChainError> {
        Ok(Block(self.block.load(Ordering::SeqCst)))
    }
    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        self.inner.subscribe_blocks().await
    }
    async fn metagraph(&self, netuid: Netuid) -> Result<Metagraph, ChainError> {
        self.inner.metagraph(netuid).await
    }
    async fn hyperparameters(&self, netuid: Netuid) -> Result<Hyperparameters, ChainError> {
        self.inner.hyperparameters(netuid).await
    }
    async fn uid_of(&self, netuid: Netuid, hotkey: &Hotkey) -> Result<Option<Uid>, ChainError> {
        self.inner.uid_of(netuid, hotkey).await
    }
    async fn set_weights(
        &self,
        _: Netuid,
        _: &Keypair,
        uids: &[Uid],
        weights: &[u16],
        _: u64,
    ) -> Result<Receipt, ChainError> {
        let b = self.block.load(Ordering::SeqCst);
        let mut f = self.filed.lock().expect("lock");
        f.sets += 1;
        f.applied = Some((
            b,
            uids.iter()
                .map(|u| u.0)
                .zip(weights.iter().copied())
                .collect(),
        ));
        Ok(Receipt {
            block: Block(b),
            extrinsic: format!("set-{b}"),
        })
    }
    async fn commit_timelocked_weights(
        &self,
        _: Netuid,
        _: &Keypair,
        w: &TimelockWeights,
        now: Duration,
    ) -> Result<TimelockReceipt, ChainError> {
        let b = self.block.load(Ordering::SeqCst);
        if self.commits_fail.load(Ordering::SeqCst) {
            return Err(ChainError::connection("the node went away"));
        }
        self.filed
            .lock()
            .expect("lock")
            .commits
            .push((b, w.clone()));
        if self.commits_time_out.load(Ordering::SeqCst) {
            return Err(ChainError::Timeout(Duration::from_secs(120)));
        }
        Ok(TimelockReceipt {
            receipt: Receipt {
                block: Block(b),
                extrinsic: format!("tl-{b}"),
            },
            call: "commit_timelocked_weights",
            reveal_round: DrandRound::latest_at(now + Duration::from_secs(30)),
            commit_epoch: b / 10,
            reveal_from: Block(b + 1),
            reveal_until: Block(b + WINDOW),
            sealed_len: 300,
        })
    }
    async fn commit_status(
        &self,
        _: Netuid,
        _: &Hotkey,
        _: Option<crate::chain::MechId>,
    ) -> Result<CommitStatus, ChainError> {
        let b = self.block.load(Ordering::SeqCst);
        let f = self.filed.lock().expect("lock");
        let pending = f
            .commits
            .iter()
            .filter(|(at, _)| b <= at + WINDOW)
            .map(|(at, _)| PendingCommit::Timelocked {
                epoch: at / 10,
                commit_block: Some(Block(*at)),
                reveal_round: 1,
                pulse_stored: false,
                reveal_from: Block(at + 1),
                reveal_until: Block(at + WINDOW),
                bytes: 300,
            })
            .collect();
        let (last_update, weights) = f.applied.clone().unwrap_or_default();
        let pulse =
            self.pulse_arrives.load(Ordering::SeqCst) || self.refuses.load(Ordering::SeqCst);
        Ok(CommitStatus {
            block: Block(b),
            uid: Uid(0),
            commit_reveal_enabled: true,
            pending,
            last_stored_round: Some(if pulse { u64::MAX } else { 0 }),
            last_update: Block(last_update),
            weights,
        })
    }
}

fn commit_reveal() -> Hyperparameters {
    Hyperparameters {
        commit_reveal_enabled: true,
        ..hyper()
    }
}

/// A validator on `chain` whose drand clock is pinned (so runs replay).
fn timelock_validator(chain: &Arc<Timelocking>) -> ValidatorBuilder {
    let clock = crate::clock::ManualClock::new();
    clock.advance(Duration::from_secs(1_800_000_000));
    let chain: Arc<dyn ChainClient> = chain.clone();
    validator(&chain).unix_clock(Arc::new(clock))
}

#[tokio::test]
async fn the_chain_reveals_timelocked_weights_and_nothing_is_committed_twice() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), true);
    let mut v = timelock_validator(&chain).build().await.expect("validator");
    let h = commit_reveal();
    let step = v.step(chain.at(100), &h).await.expect("step");
    let Some(WeightsReport::Landed {
        how,
        timelock,
        epoch,
        ..
    }) = step.weights
    else {
        panic!("{:?}", step.weights);
    };
    assert_eq!(how, "timelocked");
    let t = timelock.expect("the commit's window");
    assert_eq!((t.receipt.block, t.reveal_until), (Block(100), Block(103)));
    // Rounds go on; the window is open: no weights business, no new commit.
    for b in 101..=103 {
        let step = v.step(chain.at(b), &h).await.expect("step");
        assert!(step.weights.is_none(), "block {b}: {:?}", step.weights);
    }
    assert_eq!(chain.commits(), 1);
    let step = v.step(chain.at(104), &h).await.expect("step");
    match step.weights {
        Some(WeightsReport::RevealedByChain {
            block,
            uids,
            weights,
            ..
        }) => {
            assert_eq!(block, Block(104));
            assert_eq!((uids, weights), (epoch.weights.uids, epoch.weights.weights));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(chain.commits(), 1);
    net.stop.send(true).ok();
}

#[tokio::test]
async fn weights_whose_pulse_never_comes_are_sent_again_and_survive_a_restart() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), false);
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn Store> =
        Arc::new(Embedded::open(dir.path().join("state.redb")).expect("store"));
    let h = commit_reveal();
    let committed = {
        let mut v = timelock_validator(&chain)
            .store(store.clone())
            .build()
            .await
            .expect("validator");
        let step = v.step(chain.at(100), &h).await.expect("step");
        let Some(WeightsReport::Landed { epoch, .. }) = step.weights else {
            panic!("{:?}", step.weights);
        };
        epoch.weights
    };
    let restarted = || timelock_validator(&chain).store(store.clone()).build();
    // A restart inside the window: the pending commit is remembered, and
    // nothing more is sent, even when asked.
    let mut v = restarted().await.expect("restarted");
    assert!(
        v.weights(chain.at(102), &h)
            .await
            .expect("weights")
            .is_none()
    );
    assert!(matches!(
        v.weights_now(chain.at(102), &h).await,
        Ok(WeightsReport::Pending {
            reveal_until: Block(103),
            ..
        })
    ));
    assert_eq!(chain.commits(), 1, "no second commit after the restart");
    // The window passes with no pulse and no rounds since: the same
    // weights, committed again. A failed commit keeps the lost one pending.
    chain.commits_fail.store(true, Ordering::SeqCst);
    let failed = v.weights(chain.at(104), &h).await;
    assert!(failed.is_err(), "{failed:?}");
    chain.commits_fail.store(false, Ordering::SeqCst);
    let again = v.weights(chain.at(104), &h).await.expect("weights");
    match again {
        Some(WeightsReport::TimelockExpired { again, .. }) => match *again {
            WeightsReport::Landed { how, epoch, .. } => {
                assert_eq!(how, "timelocked");
                assert_eq!(epoch.weights, committed);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(chain.commits(), 2);
    let resent = chain.filed.lock().expect("lock").commits[1].1.clone();
    assert_eq!(
        (resent.uids, resent.weights),
        (committed.uids, committed.weights)
    );
    net.stop.send(true).ok();
}

#[tokio::test]
async fn a_subnet_that_leaves_commit_reveal_gets_the_lost_weights_set_directly() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), false);
    let mut v = timelock_validator(&chain).build().await.expect("validator");
    let step = v.step(chain.at(100), &commit_reveal()).await.expect("step");
    assert!(matches!(
        step.weights,
        Some(WeightsReport::Landed {
            how: "timelocked",
            ..
        })
    ));
    // The owner turns commit-reveal off before the reveal.
    let step = v.step(chain.at(104), &hyper()).await.expect("step");
    match step.weights {
        Some(WeightsReport::TimelockExpired { again, .. }) => {
            assert!(
                matches!(*again, WeightsReport::Landed { how: "set", .. }),
                "{again:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let f = chain.filed.lock().expect("lock");
    assert_eq!((f.commits.len(), f.sets), (1, 1));
    drop(f);
    net.stop.send(true).ok();
}

#[tokio::test]
async fn a_pulse_the_runtime_had_but_did_not_apply_drops_those_weights() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), false);
    chain.refuses.store(true, Ordering::SeqCst);
    let mut v = timelock_validator(&chain).build().await.expect("validator");
    let h = commit_reveal();
    v.step(chain.at(100), &h).await.expect("step");
    let r = v.weights(chain.at(104), &h).await.expect("weights");
    assert!(
        matches!(r, Some(WeightsReport::RevealRefused { .. })),
        "{r:?}"
    );
    assert_eq!(chain.commits(), 1, "refused weights are not sent again");
    net.stop.send(true).ok();
}

#[tokio::test]
async fn unchanged_weights_without_their_pulse_are_not_taken_for_a_reveal() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), false);
    let mut v = timelock_validator(&chain).build().await.expect("validator");
    let h = commit_reveal();
    let step = v.step(chain.at(100), &h).await.expect("step");
    let Some(WeightsReport::Landed { epoch, .. }) = step.weights else {
        panic!("{:?}", step.weights);
    };
    // The chain already holds exactly these weights (an earlier epoch's).
    let pairs = epoch
        .weights
        .uids
        .iter()
        .map(|u| u.0)
        .zip(epoch.weights.weights.iter().copied());
    chain.filed.lock().expect("lock").applied = Some((90, pairs.collect()));
    let r = v.weights(chain.at(104), &h).await.expect("weights");
    assert!(
        matches!(r, Some(WeightsReport::TimelockExpired { .. })),
        "{r:?}"
    );
    assert_eq!(chain.commits(), 2);
    net.stop.send(true).ok();
}

#[tokio::test]
async fn a_mechanism_is_refused_where_weights_go_in_the_clear() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), true);
    let mut v = timelock_validator(&chain)
        .mechid(crate::chain::MechId(1))
        .build()
        .await
        .expect("validator");
    let err = v
        .step(chain.at(100), &hyper())
        .await
        .expect_err("no mechanism on set_weights");
    assert!(err.to_string().contains("weights.mechid"), "{err}");
    assert_eq!(chain.filed.lock().expect("lock").sets, 0);
    net.stop.send(true).ok();
}

#[tokio::test]
async fn a_commit_not_seen_included_waits_a_tempo_instead_of_committing_again() {
    let net = subnet(vec![Box::new(CpuProver::new())]).await;
    let chain = Timelocking::new(net.chain.clone(), true);
    chain.commits_time_out.store(true, Ordering::SeqCst);
    let mut v = timelock_validator(&chain).build().await.expect("validator");
    let h = commit_reveal();
    assert!(
        v.step(chain.at(100), &h).await.is_err(),
        "the timeout is reported"
    );
    chain.commits_time_out.store(false, Ordering::SeqCst);
    for b in 101..110 {
        let step = v.step(chain.at(b), &h).await.expect("step");
        assert!(step.weights.is_none(), "block {b}: {:?}", step.weights);
    }
    assert_eq!(chain.commits(), 1, "no second commit within the tempo");
    // A tempo later the rounds since go out (the first commit's included).
    let step = v.step(chain.at(110), &h).await.expect("step");
    assert!(matches!(
        step.weights,
        Some(WeightsReport::Landed {
            how: "timelocked",
            ..
        })
    ));
    assert_eq!(chain.commits(), 2);
    net.stop.send(true).ok();
}
