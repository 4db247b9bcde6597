//! The validator's probes (issue 18, deliverable 4): specs, benchmark jobs
//! and allocation logins, against miners on loopback.

use std::sync::Arc;
use std::time::Duration;

use akihabara_gpu::{CpuProver, Prover};

use super::*;
use crate::axon::AxonBuilder;
use crate::executor::access::{self, LoginDetails, SealingKey};
use crate::executor::{ExecutorBackend, Fleet, HealthPolicy, LocalBackend};
use crate::market::jobs::{AcceptAll, AcceptPolicy, JobRequest, Refusal};
use crate::market::server::JobService;
use crate::market::wire::{Allocate, AllocateReply};
use crate::protocol::GpuInfo;
use crate::score::{ExecutorWork, GpuClaim};
use crate::store::Embedded;

/// Declines every job it may: a miner with free capacity that refuses.
struct Greedy;

impl AcceptPolicy for Greedy {
    fn refuse(&self, _request: &JobRequest) -> Option<Refusal> {
        Some(Refusal::Other("refused by the operator's policy".into()))
    }
}

/// A job service over one healthy local executor of class `cpu`.
async fn jobs(dir: &std::path::Path, i: usize, policy: Arc<dyn AcceptPolicy>) -> Arc<JobService> {
    let local: Arc<dyn ExecutorBackend> = Arc::new(LocalBackend::new(Some("cpu".to_owned())));
    let fleet = Arc::new(Fleet::with_backends(
        HealthPolicy::default(),
        [("here".to_owned(), local)],
    ));
    fleet.check_all().await;
    Arc::new(
        JobService::open(
            &dir.join(format!("miner{i}")),
            fleet,
            key(&format!("miner{i}")),
            policy,
            Arc::new(|_: &crate::AccountId| true),
        )
        .expect("job service"),
    )
}

/// An `Allocate` that grants a login on a port where nothing listens.
fn broken_rentals(b: AxonBuilder) -> AxonBuilder {
    b.route(|mut a: Allocate, _| async move {
        let key = SealingKey::parse(&a.sealing_key)
            .map_err(|e| crate::axon::HandlerError::internal(e.to_string()))?;
        let details = LoginDetails {
            host: "127.0.0.1".into(),
            port: 9,
            user: "nobody".into(),
        };
        a.reply = Some(AllocateReply::Allocated {
            allocation_id: "a-1".into(),
            executor: "box".into(),
            expires_at_ms: u64::MAX,
            sealed_details: access::seal_details(&details, &key)
                .map_err(|e| crate::axon::HandlerError::internal(e.to_string()))?,
        });
        Ok(a)
    })
}

fn ssh_key(dir: &std::path::Path) -> std::path::PathBuf {
    let key = dir.join("probe_key");
    // A key in OpenSSH's format without ssh-keygen: the public half is all
    // the miner reads; the login to the dead port fails before using it.
    std::fs::write(&key, "not used").expect("key");
    std::fs::write(
        public_key_path(&key),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f probe\n",
    )
    .expect("pub");
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_feed_the_ledger_and_penalise_what_the_protocol_blames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let services = [
        jobs(dir.path(), 0, Arc::new(AcceptAll)).await,
        jobs(dir.path(), 1, Arc::new(Greedy)).await,
    ];
    let provers: Vec<Box<dyn Prover>> = (0..3)
        .map(|_| Box::new(CpuProver::new()) as Box<dyn Prover>)
        .collect();
    let net = subnet_with(&["validator"], provers, |i, b| match i {
        // uid 1: honest, reports one GPU; uid 2: declines with a free
        // executor; uid 3: serves no jobs and a rental that cannot log in.
        0 => services[0].routes(b).builtins(|| {
            vec![GpuInfo {
                name: "NVIDIA GeForce RTX 4090".into(),
                memory_mb: 24_564,
                uuid: "GPU-1".into(),
            }]
        }),
        1 => services[1].routes(b).builtins(Vec::new),
        _ => broken_rentals(b).builtins(Vec::new),
    })
    .await;
    let mut check = AllocationCheck::new(ssh_key(dir.path()), vec!["true".into()]).expect("check");
    check.login_timeout = Duration::from_secs(20);
    let settings = ProbeSettings::new(dir.path().join("receipts.jsonl"))
        .job(BenchmarkJob {
            class: "cpu".into(),
            command: vec!["sh".into(), "-c".into(), "sleep 1; echo {nonce}".into()],
            timeout: Duration::from_secs(20),
            expect_stdout: Some("{nonce}\n".into()),
        })
        .allocation(check)
        .poll(Duration::from_millis(100));
    let store: Arc<dyn crate::store::Store> =
        Arc::new(Embedded::open(dir.path().join("state.redb")).expect("store"));
    let mut v = validator(&net.chain)
        .probe(settings.clone())
        .store(store.clone())
        .build()
        .await
        .expect("validator");
    let block = net.chain.block().await.expect("block");
    let report = v.probe(block).await.expect("probe");
    let by_uid = |u: u16| {
        report
            .miners
            .iter()
            .find(|p| p.uid == u)
            .unwrap_or_else(|| panic!("uid {u} not probed: {report:?}"))
    };

    let honest = by_uid(1);
    assert_eq!(
        honest.gpus,
        Some(vec![GpuClaim {
            model: "NVIDIA GeForce RTX 4090".into(),
            count: 1
        }])
    );
    assert!(
        matches!(honest.jobs[0].check, Check::Passed { seconds } if seconds >= 1.0),
        "{honest:?}"
    );
    let (start, end) = honest.jobs[0].ran.expect("ran");
    assert!(end >= start, "{start} {end}");
    assert_eq!(
        honest.allocation,
        Some(Check::NotApplicable {
            reason: "declined (UnsupportedClass): here: not supported: the local backend cannot grant logins (allocations need an ssh executor)".into()
        }),
        "a fleet without rentable executors costs nothing"
    );
    assert_eq!(honest.penalty(), None);

    let greedy = by_uid(2);
    assert!(greedy.jobs[0].declined_with_capacity, "{greedy:?}");
    assert_eq!(
        greedy.penalty(),
        Some("declined with a free executor (unprofitable): refused by the operator's policy")
    );

    let broken = by_uid(3);
    assert!(
        matches!(&broken.jobs[0].check, Check::NotApplicable { reason } if reason.starts_with("no jobs served: ")),
        "{broken:?}"
    );
    let reason = broken.penalty().expect("penalised");
    assert!(reason.starts_with("allocation login failed: "), "{reason}");

    // What the next weights read.
    let mg = net.chain.metagraph(NETUID).await.expect("mg");
    let m = v.measurements(&mg);
    let report_of = |u: u16| m.miners.iter().find(|r| r.uid == Uid(u)).cloned();
    let honest = report_of(1).expect("uid 1 measured");
    assert_eq!(honest.gpus.len(), 1);
    assert_eq!(
        honest.executors,
        vec![ExecutorWork {
            class: "cpu".into(),
            worked_seconds: (end - start) as f64,
            efficiency: None,
        }]
    );
    assert_eq!(report_of(2).expect("uid 2").declined_jobs, 1);

    // A restart reads the same probes back.
    let again = validator(&net.chain)
        .probe(settings)
        .store(store)
        .build()
        .await
        .expect("validator");
    assert_eq!(again.measurements(&mg), m);

    // The weights: both penalised miners get nothing, whatever their proofs.
    let step = v.step(block, &hyper()).await.expect("step");
    let round = step.round.expect("round");
    assert!(round.challenged.iter().all(|r| r.passed), "{round:?}");
    match step.weights {
        Some(WeightsReport::Landed { epoch, .. }) => {
            assert_eq!(epoch.weights.uids, [Uid(1)]);
            assert_eq!(epoch.weight_of(Uid(2)), 0);
            assert_eq!(epoch.weight_of(Uid(3)), 0);
        }
        other => panic!("weights did not land: {other:?}"),
    }

    // An output that is not what the command prints (here: the validator
    // expects another one) is the miner's fault: the signed digest differs.
    let strict = ProbeSettings::new(dir.path().join("receipts2.jsonl"))
        .job(BenchmarkJob {
            class: "cpu".into(),
            command: vec!["sh".into(), "-c".into(), "echo {nonce}".into()],
            timeout: Duration::from_secs(20),
            expect_stdout: Some("not-{nonce}\n".into()),
        })
        .poll(Duration::from_millis(100));
    // Another seed: the same one would draw the same job ids, and the
    // miner answers a known id with that job's state.
    let mut v2 = validator(&net.chain)
        .seeded(2)
        .probe(strict)
        .build()
        .await
        .expect("validator");
    // The step above started a probe of its own (a 1 s job): let the
    // executor come free.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = v2.probe(block).await.expect("probe");
    let honest = again.miners.iter().find(|p| p.uid == 1).expect("uid 1");
    assert_eq!(
        honest.penalty(),
        Some("the job's output is not what the command prints (signed digest differs)")
    );
    let _ = net.stop.send(true);
}
