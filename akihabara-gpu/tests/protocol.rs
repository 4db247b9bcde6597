//! The challenge protocol over a real axon and dendrite on loopback: an
//! honest miner passes with the validator's own timing; a miner that skipped
//! half the rows is caught.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use akihabara_core::axon::Axon;
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::wallet::Keypair;
use akihabara_gpu::round::{RoundConfig, challenge_miner, serve_pow};
use akihabara_gpu::synapse::{PowChallenge, PowOpen, PowService};
use akihabara_gpu::{
    Challenge, CpuProver, Failure, Prover, RowRef, Seed, SkippingProver, Verdict, Verifier,
};

async fn serve(prover: Box<dyn Prover>) -> (AxonTarget, tokio::sync::oneshot::Sender<()>) {
    let miner = Keypair::from_uri("//Bob").expect("key");
    let axon = serve_pow(
        Axon::builder(miner.clone()).builtins(Vec::new),
        Arc::new(PowService::new(prover)),
    )
    .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
    .await
    .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    let target = AxonTarget::new([127, 0, 0, 1].into(), port, miner.account());
    (target, tx)
}

/// The validator's side: time the commitment, choose rows, open, verify.
async fn validate(target: &AxonTarget, ch: &Challenge) -> Verdict {
    let d = Dendrite::new(Keypair::from_uri("//Alice").expect("key")).expect("dendrite");
    let config = RoundConfig {
        samples: 40,
        timeout: Duration::from_secs(60),
        verifier: Verifier::new(),
    };
    let outcome = challenge_miner(&d, target, ch, &[0x5a; 32], &config)
        .await
        .expect("round");
    assert_eq!(outcome.backend, "cpu");
    outcome.verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_miner_passes_and_lazy_miner_is_caught() {
    let ch = Challenge::new(Seed::random().expect("seed"), 64, 4).expect("challenge");
    let (target, stop) = serve(Box::new(CpuProver::new())).await;
    let v = validate(&target, &ch).await;
    assert!(v.is_valid(), "{v:?}");
    // Opening another seed's rows is refused with a reason.
    let d = Dendrite::new(Keypair::from_uri("//Alice").expect("key")).expect("dendrite");
    let other = Challenge::new(Seed([9; 32]), 64, 4).expect("challenge");
    let r = d
        .call(
            &target,
            PowOpen::new(&other, &[RowRef { matrix: 0, row: 0 }]),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message.contains("another seed"), "{}", r.message);
    // A bad challenge is a 400 with the reason, not a crash.
    let mut bad = PowChallenge::new(&ch);
    bad.n = 0;
    let r = d.call(&target, bad, Duration::from_secs(5)).await;
    assert_eq!(r.status, 400);
    assert!(r.message.contains("n must be"), "{}", r.message);
    let _ = stop.send(());

    let (target, stop) = serve(Box::new(SkippingProver::new())).await;
    let v = validate(&target, &ch).await;
    assert!(
        matches!(v, Verdict::Rejected(Failure::WrongValues { row, .. }) if row % 2 == 1),
        "{v:?}"
    );
    let _ = stop.send(());
}

/// A miner that answers Ping slowly, to make the round trip it is credited
/// look long, does not get its work time zeroed (and its speed unbounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ping_cannot_erase_the_work_time() {
    use akihabara_core::protocol::Ping;
    let miner = Keypair::from_uri("//Bob").expect("key");
    let me = miner.account().to_ss58();
    let axon = serve_pow(
        Axon::builder(miner.clone()).route(move |p: Ping, _| {
            let me = me.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                p.answer(&me)
                    .ok_or_else(|| akihabara_core::axon::HandlerError::bad_request("count"))
            }
        }),
        Arc::new(PowService::new(Box::new(CpuProver::new()))),
    )
    .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
    .await
    .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    let target = AxonTarget::new([127, 0, 0, 1].into(), port, miner.account());
    let ch = Challenge::new(Seed::random().expect("seed"), 64, 1).expect("challenge");
    match validate(&target, &ch).await {
        // Before the cap, elapsed - 400 ms saturated to zero here.
        Verdict::Valid { elapsed, .. } => assert!(elapsed > Duration::ZERO, "{elapsed:?}"),
        v => panic!("{v:?}"),
    }
    let _ = tx.send(());
}
