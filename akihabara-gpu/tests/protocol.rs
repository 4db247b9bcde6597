//! The challenge protocol over a real axon and dendrite on loopback: an
//! honest miner passes with the validator's own timing; a miner that skipped
//! half the rows is caught.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akihabara_core::axon::{Axon, HandlerError};
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::protocol::Ping;
use akihabara_core::wallet::Keypair;
use akihabara_gpu::merkle::{self, Hash, Tree};
use akihabara_gpu::synapse::{PowChallenge, PowOpen, PowService};
use akihabara_gpu::{
    Challenge, Commitment, CpuProver, Failure, Opening, PowError, Prover, RowRef, Seed, Timing,
    Verdict, Verifier, choose_rows, compute_rows,
};

/// Commits to zeros instead of every odd row (half the work skipped), and
/// opens consistently with that commitment.
struct Lazy {
    ch: Option<Challenge>,
    tree: Option<Tree>,
}

impl Prover for Lazy {
    fn backend(&self) -> &'static str {
        "cpu"
    }
    fn device(&self) -> String {
        "lazy".into()
    }
    fn commit(&mut self, ch: &Challenge) -> Result<Commitment, PowError> {
        let mut leaves = Vec::new();
        for j in 0..ch.count {
            for i in 0..ch.n {
                leaves.push(merkle::leaf(&self.row(ch, j, i)?));
            }
        }
        let tree = Tree::new(leaves);
        let root = tree.root();
        self.ch = Some(*ch);
        self.tree = Some(tree);
        Ok(Commitment {
            root,
            elapsed: Duration::ZERO,
        })
    }
    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError> {
        let (Some(ch), Some(tree)) = (&self.ch, &self.tree) else {
            return Err(PowError::Malformed("nothing".into()));
        };
        rows.iter()
            .map(|r| {
                Ok(Opening {
                    at: *r,
                    values: self.row(ch, r.matrix, r.row)?,
                    path: tree.path(r.position(ch.n) as usize).unwrap_or_default(),
                })
            })
            .collect()
    }
    fn leaves(&self) -> &[Hash] {
        self.tree.as_ref().map(Tree::leaves).unwrap_or_default()
    }
}

impl Lazy {
    fn row(&self, ch: &Challenge, j: u32, i: u32) -> Result<Vec<i32>, PowError> {
        if i % 2 == 1 {
            return Ok(vec![0; ch.n as usize]);
        }
        Ok(compute_rows(ch, &[RowRef { matrix: j, row: i }], 1)?.remove(0))
    }
}

async fn serve(prover: Box<dyn Prover>) -> (AxonTarget, tokio::sync::oneshot::Sender<()>) {
    let miner = Keypair::from_uri("//Bob").expect("key");
    let service = Arc::new(PowService::new(prover));
    let (s1, s2) = (service.clone(), service);
    let bad = |e: PowError| HandlerError::bad_request(e.to_string());
    let axon = Axon::builder(miner.clone())
        .builtins(Vec::new)
        .route(move |req: PowChallenge, _| {
            let s = s1.clone();
            async move {
                tokio::task::spawn_blocking(move || s.challenge(req))
                    .await
                    .map_err(|e| HandlerError::internal(e.to_string()))?
                    .map_err(bad)
            }
        })
        .route(move |req: PowOpen, _| {
            let s = s2.clone();
            async move {
                tokio::task::spawn_blocking(move || s.open(req))
                    .await
                    .map_err(|e| HandlerError::internal(e.to_string()))?
                    .map_err(bad)
            }
        })
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
    let t = Instant::now();
    let ping = d
        .call(target, Ping::new("rtt", 0), Duration::from_secs(5))
        .await;
    assert_eq!(ping.status, 200, "{}", ping.message);
    let round_trip = t.elapsed();
    let t = Instant::now();
    let answer = d
        .call(target, PowChallenge::new(ch), Duration::from_secs(60))
        .await;
    let elapsed = t.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.message);
    let answer = answer.synapse.expect("answer");
    assert_eq!(answer.backend.as_deref(), Some("cpu"));
    let root = answer.root_hash().expect("root");
    let rows = choose_rows(ch, &root, &[0x5a; 32], 40);
    let opened = d
        .call(target, PowOpen::new(ch, &rows), Duration::from_secs(60))
        .await;
    assert_eq!(opened.status, 200, "{}", opened.message);
    let openings = opened
        .synapse
        .expect("openings")
        .decoded(ch.n)
        .expect("decode");
    Verifier::new()
        .verify(
            ch,
            &root,
            &rows,
            &openings,
            Timing {
                elapsed,
                round_trip,
            },
        )
        .expect("verify")
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

    let (target, stop) = serve(Box::new(Lazy {
        ch: None,
        tree: None,
    }))
    .await;
    let v = validate(&target, &ch).await;
    assert!(
        matches!(v, Verdict::Rejected(Failure::WrongValues { row, .. }) if row % 2 == 1),
        "{v:?}"
    );
    let _ = stop.send(());
}
