//! Jobs and allocations end to end over a real loopback axon and dendrite,
//! with the local backend (and a recording fake for allocation bookkeeping;
//! the ssh allocation is tested against a real sshd in the CLI tests).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::client::{query_job, submit_job};
use super::jobs::{AcceptAll, DeclineReason, JobRequest, ReceiptKind, ReceiptStore};
use super::server::JobService;
use super::wire::{Allocate, AllocateReply, Deallocate, DeallocateReply, JobReply};
use crate::AccountId;
use crate::axon::Axon;
use crate::dendrite::{AxonTarget, Dendrite};
use crate::executor::access::{self, AccessGrant, LoginDetails};
use crate::executor::*;
use crate::wallet::Keypair;

fn key(uri: &str) -> Keypair {
    Keypair::from_uri(uri).expect("dev key")
}

fn local_fleet(classes: &[&str]) -> Arc<Fleet> {
    Arc::new(Fleet::with_backends(
        HealthPolicy::default(),
        classes.iter().enumerate().map(|(i, c)| {
            let b: Arc<dyn ExecutorBackend> = Arc::new(LocalBackend::new(Some((*c).to_owned())));
            (format!("local-{i}"), b)
        }),
    ))
}

fn open(dir: &std::path::Path, fleet: Arc<Fleet>) -> Arc<JobService> {
    Arc::new(
        JobService::open(
            dir,
            fleet,
            key("//miner1"),
            Arc::new(AcceptAll),
            Arc::new(|v: &AccountId| *v != key("//evil").account()),
        )
        .expect("open"),
    )
}

/// A job service that serves every validator under `policy`.
fn serving_all(
    dir: &std::path::Path,
    fleet: Arc<Fleet>,
    policy: Arc<dyn super::jobs::AcceptPolicy>,
) -> JobService {
    JobService::open(
        dir,
        fleet,
        key("//miner1"),
        policy,
        Arc::new(|_: &AccountId| true),
    )
    .expect("open")
}

/// [`open`] with ended jobs kept within `retention`.
fn open_with(
    dir: &std::path::Path,
    fleet: Arc<Fleet>,
    retention: super::server::Retention,
) -> Arc<JobService> {
    let service = JobService::open_retaining(
        dir,
        fleet,
        key("//miner1"),
        Arc::new(AcceptAll),
        Arc::new(|_: &AccountId| true),
        retention,
    )
    .expect("open");
    Arc::new(service)
}

/// A job service that serves every validator, with job files under `policy`.
fn with_volumes(
    dir: &std::path::Path,
    fleet: &Arc<Fleet>,
    policy: super::volumes::VolumePolicy,
) -> Arc<JobService> {
    Arc::new(
        JobService::open(
            dir,
            fleet.clone(),
            key("//miner1"),
            Arc::new(AcceptAll),
            Arc::new(|_: &AccountId| true),
        )
        .expect("open")
        .with_volumes(policy),
    )
}

async fn serve(service: &Arc<JobService>) -> (AxonTarget, tokio::sync::oneshot::Sender<()>) {
    let axon = service
        .routes(Axon::builder(key("//miner1")))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    (
        AxonTarget::new([127, 0, 0, 1].into(), port, key("//miner1").account()),
        tx,
    )
}

fn request(id: &str, class: &str, timeout_s: u64, command: &[&str]) -> JobRequest {
    JobRequest {
        job_id: id.into(),
        validator: AccountId::from_bytes([0; 32]),
        hardware_class: class.into(),
        timeout_s,
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        requirements: Requirements::default(),
        output_dir: None,
        image: None,
        env: Default::default(),
        inputs: vec![],
        outputs: vec![],
        issued_at_ms: 1,
        signature: String::new(),
    }
    .sign(&key("//validator1"))
}

const T: Duration = Duration::from_secs(10);

async fn until_ended(d: &Dendrite, miner: &AxonTarget, id: &str, store: &ReceiptStore) -> JobReply {
    let start = Instant::now();
    loop {
        let r = query_job(d, miner, id, store, T).await.expect("query");
        if r != JobReply::Running {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {id} never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jobs_run_report_and_leave_receipts_on_both_sides() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let service = open(&dir.path().join("miner"), fleet.clone());
    let (miner, _stop) = serve(&service).await;
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let mine = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));

    // Finished, with stdout and output-directory digests.
    let out = dir.path().join("out");
    let script = format!("echo hi; mkdir -p {0}; echo data > {0}/f", out.display());
    let mut req = request("j1", "cpu", 30, &["sh", "-c", &script]);
    req.output_dir = Some(out.display().to_string());
    let req = req.sign(&key("//validator1"));
    let r = submit_job(&d, &miner, req, &mine, T).await.expect("submit");
    assert!(matches!(&r, JobReply::Accepted { receipt } if receipt.kind == ReceiptKind::Accepted));
    let JobReply::Finished {
        exit_code,
        stdout_sha256,
        output_sha256,
        ..
    } = until_ended(&d, &miner, "j1", &mine).await
    else {
        panic!("not finished")
    };
    assert_eq!(exit_code, 0);
    assert_eq!(stdout_sha256, hex::encode(Sha256::digest(b"hi\n")));
    let listing = format!("{}  ./f\n", hex::encode(Sha256::digest(b"data\n")));
    assert_eq!(
        output_sha256,
        Some(hex::encode(Sha256::digest(listing.as_bytes())))
    );
    // The same id again is not run twice.
    let again = submit_job(&d, &miner, request("j1", "cpu", 30, &["false"]), &mine, T)
        .await
        .expect("again");
    assert!(matches!(again, JobReply::Finished { exit_code: 0, .. }));

    // Killed mid-run by someone else: JobFailed with the signal.
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let r = submit_job(
        &d,
        &miner,
        request("j2", "cpu", 60, &["sh", "-c", &script]),
        &mine,
        T,
    )
    .await
    .expect("submit");
    assert!(matches!(r, JobReply::Accepted { .. }));
    // The one executor is busy now.
    let busy = submit_job(&d, &miner, request("j3", "cpu", 5, &["true"]), &mine, T)
        .await
        .expect("busy");
    assert!(
        matches!(
            busy,
            JobReply::Declined {
                reason: DeclineReason::Busy,
                ..
            }
        ),
        "{busy:?}"
    );
    let start = Instant::now();
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pidfile)
            && let Ok(p) = p.trim().parse::<u32>()
        {
            break p;
        }
        assert!(start.elapsed() < T, "no pid file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let r = until_ended(&d, &miner, "j2", &mine).await;
    assert!(
        matches!(&r, JobReply::Failed { reason, receipt: Some(_) } if reason == "killed by signal 9"),
        "{r:?}"
    );

    // Over its timeout: failed as timed out.
    let r = submit_job(
        &d,
        &miner,
        request("j4", "cpu", 1, &["sleep", "30"]),
        &mine,
        T,
    )
    .await
    .expect("submit");
    assert!(matches!(r, JobReply::Accepted { .. }));
    let r = until_ended(&d, &miner, "j4", &mine).await;
    assert!(
        matches!(&r, JobReply::Failed { reason, .. } if reason == "timed out after 1 s"),
        "{r:?}"
    );

    // Declines, each with its reason.
    let declined = |r: JobReply| match r {
        JobReply::Declined { reason, .. } => reason,
        other => panic!("not declined: {other:?}"),
    };
    let go = |r| submit_job(&d, &miner, r, &mine, T);
    assert_eq!(
        declined(go(request("j5", "H100", 5, &["true"])).await.expect("call")),
        DeclineReason::UnsupportedClass
    );
    assert_eq!(
        declined(go(request("j6", "cpu", 5, &[])).await.expect("call")),
        DeclineReason::Invalid
    );
    assert_eq!(
        declined(go(request("j7", "cpu", 0, &["true"])).await.expect("call")),
        DeclineReason::Invalid
    );
    let mut forged = request("j8", "cpu", 5, &["true"]);
    forged.timeout_s = 6;
    assert_eq!(
        declined(go(forged).await.expect("call")),
        DeclineReason::ValidatorBlacklisted
    );
    let mut big = request("j9", "cpu", 5, &["true"]);
    big.requirements.cpu = 100_000;
    let big = big.sign(&key("//validator1"));
    assert_eq!(
        declined(go(big).await.expect("call")),
        DeclineReason::UnsupportedClass
    );
    // Signed by validator1 but sent by validator2: refused.
    let d2 = Dendrite::new(key("//validator2")).expect("dendrite");
    let r = submit_job(&d2, &miner, request("j10", "cpu", 5, &["true"]), &mine, T)
        .await
        .expect("call");
    assert_eq!(declined(r), DeclineReason::Invalid);
    // Nobody else sees validator1's jobs.
    assert_eq!(
        query_job(&d2, &miner, "j1", &mine, T).await.expect("q"),
        JobReply::Unknown
    );

    // Both sides hold the same receipts: accepted + finished for j1, j2, j4.
    let theirs = service.receipts().load().expect("load").receipts;
    let ours = mine.load().expect("load").receipts;
    assert_eq!(theirs.len(), 6);
    for r in &theirs {
        assert!(ours.contains(r), "validator lacks {r:?}");
    }
}

/// Issue 23, finding 7: job ids are each validator's own. A second validator
/// reusing an id gets its own run, never the first one's result or receipt.
#[tokio::test]
async fn job_ids_are_namespaced_per_validator() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let service = open(&dir.path().join("miner"), fleet.clone());
    let (miner, _stop) = serve(&service).await;
    let v1 = Dendrite::new(key("//validator1")).expect("dendrite");
    let v2 = Dendrite::new(key("//validator2")).expect("dendrite");
    let s1 = ReceiptStore::new(dir.path().join("v1.jsonl"));
    let s2 = ReceiptStore::new(dir.path().join("v2.jsonl"));

    let r = submit_job(
        &v1,
        &miner,
        request("same", "cpu", 30, &["echo", "one"]),
        &s1,
        T,
    )
    .await
    .expect("submit 1");
    assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
    let JobReply::Finished { stdout_sha256, .. } = until_ended(&v1, &miner, "same", &s1).await
    else {
        panic!("v1's job did not finish")
    };
    assert_eq!(stdout_sha256, hex::encode(Sha256::digest(b"one\n")));

    // validator 2 cannot see validator 1's job under that id ...
    let r = query_job(&v2, &miner, "same", &s2, T).await.expect("query");
    assert_eq!(r, JobReply::Unknown);
    // ... and submitting the same id runs validator 2's own command.
    let req2 = request("same", "cpu", 30, &["echo", "two"]).sign(&key("//validator2"));
    let r = submit_job(&v2, &miner, req2, &s2, T)
        .await
        .expect("submit 2");
    let JobReply::Accepted { receipt } = r else {
        panic!("v2's job was not accepted: {r:?}")
    };
    assert_eq!(receipt.validator, key("//validator2").account());
    let JobReply::Finished {
        stdout_sha256,
        receipt,
        ..
    } = until_ended(&v2, &miner, "same", &s2).await
    else {
        panic!("v2's job did not finish")
    };
    assert_eq!(stdout_sha256, hex::encode(Sha256::digest(b"two\n")));
    assert_eq!(receipt.validator, key("//validator2").account());
    // validator 1's answer is unchanged.
    let JobReply::Finished { stdout_sha256, .. } = until_ended(&v1, &miner, "same", &s1).await
    else {
        panic!("v1's job changed")
    };
    assert_eq!(stdout_sha256, hex::encode(Sha256::digest(b"one\n")));
}

#[tokio::test]
async fn a_restart_keeps_finished_jobs_and_marks_lost_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = local_fleet(&["cpu", "cpu"]);
    fleet.check_all().await;
    let service = open(dir.path(), fleet);
    let v = key("//validator1").account();
    let r = service
        .submit(request("done", "cpu", 10, &["true"]), &v)
        .await;
    assert!(matches!(r, JobReply::Accepted { .. }));
    let start = Instant::now();
    while service.query("done", &v) == JobReply::Running {
        assert!(start.elapsed() < T);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = service.query("done", &v);
    let r = service
        .submit(request("cut", "cpu", 60, &["sleep", "30"]), &v)
        .await;
    assert!(matches!(r, JobReply::Accepted { .. }));
    drop(service);

    // A new process: the finished job answers the same, the cut one is lost.
    let again = open(dir.path(), local_fleet(&["cpu", "cpu"]));
    assert_eq!(again.query("done", &v), finished);
    assert!(
        matches!(again.query("cut", &v), JobReply::Failed { reason, receipt: None } if reason.contains("restarted"))
    );
    assert_eq!(again.query("other", &v), JobReply::Unknown);
}

/// Runs `id` for `validator` to its end on `service` and returns the answer.
async fn run_to_end(service: &Arc<JobService>, id: &str, validator: &str) -> JobReply {
    let v = key(validator).account();
    let req = request(id, "cpu", 10, &["true"]).sign(&key(validator));
    let r = service.submit(req, &v).await;
    assert!(matches!(r, JobReply::Accepted { .. }), "{id}: {r:?}");
    let start = Instant::now();
    while service.query(id, &v) == JobReply::Running {
        assert!(start.elapsed() < T, "{id} never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.query(id, &v)
}

#[tokio::test]
async fn ended_jobs_are_kept_within_a_budget_across_restarts() {
    use super::server::Retention;
    let dir = tempfile::tempdir().expect("dir");
    let budget = Retention {
        max_ended: 100,
        max_ended_per_validator: 2,
    };
    let open_kept = || async {
        let fleet = local_fleet(&["cpu"]);
        fleet.check_all().await;
        open_with(dir.path(), fleet, budget)
    };
    let service = open_kept().await;
    let theirs = run_to_end(&service, "theirs", "//validator2").await;
    let mut answers = Vec::new();
    for id in ["a", "b", "c"] {
        answers.push(run_to_end(&service, id, "//validator1").await);
    }
    assert!(
        matches!(answers[2], JobReply::Finished { .. }),
        "{answers:?}"
    );
    let v1 = key("//validator1").account();
    let v2 = key("//validator2").account();
    // Validator 1's oldest answer went; nobody else's did.
    let kept = |s: &JobService| {
        (
            s.query("a", &v1),
            s.query("b", &v1),
            s.query("c", &v1),
            s.query("theirs", &v2),
        )
    };
    let expected = (
        JobReply::Unknown,
        answers[1].clone(),
        answers[2].clone(),
        theirs,
    );
    assert_eq!(kept(&service), expected);
    drop(service);
    // A restart reads every receipt back within the same budget.
    let again = open_kept().await;
    assert_eq!(kept(&again), expected);
    // A forgotten id is a new job, and a restart answers for the new run.
    let rerun = run_to_end(&again, "a", "//validator1").await;
    assert!(matches!(rerun, JobReply::Finished { .. }), "{rerun:?}");
    assert_ne!(rerun, answers[0]);
    assert_eq!(again.query("b", &v1), JobReply::Unknown);
    drop(again);
    let third = open_kept().await;
    assert_eq!(third.query("a", &v1), rerun);
    assert_eq!(third.query("c", &v1), answers[2]);
    assert_eq!(third.query("b", &v1), JobReply::Unknown);
}

/// A caller that hangs up at once still holds its submissions' work: the
/// service takes at most its share of them from one validator, then
/// answers 429 at once, and another validator is still served.
#[tokio::test]
async fn submissions_past_their_caller_are_budgeted_per_validator() {
    use super::client::ClientError;
    use super::flight::MAX_IN_FLIGHT_PER_VALIDATOR;
    use super::jobs::{AcceptPolicy, Refusal};
    struct Slow;
    impl AcceptPolicy for Slow {
        fn refuse(&self, _: &JobRequest) -> Option<Refusal> {
            std::thread::sleep(Duration::from_secs(2));
            Some(Refusal::Other("slow".into()))
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let service = Arc::new(serving_all(dir.path(), fleet, Arc::new(Slow)));
    let (miner, _stop) = serve(&service).await;
    let store = ReceiptStore::new(dir.path().join("v.jsonl"));
    let v1 = Dendrite::new(key("//validator1")).expect("dendrite");
    let quick = Duration::from_millis(300);
    let mut hung_up = tokio::task::JoinSet::new();
    for i in 0..MAX_IN_FLIGHT_PER_VALIDATOR {
        let (d, miner) = (v1.clone(), miner.clone());
        let store = ReceiptStore::new(dir.path().join("v.jsonl"));
        let req = request(&format!("h{i}"), "cpu", 5, &["true"]);
        hung_up.spawn(async move { submit_job(&d, &miner, req, &store, quick).await });
    }
    for r in hung_up.join_all().await {
        assert!(
            matches!(r, Err(ClientError::Call { status: 408, .. })),
            "{r:?}"
        );
    }
    let start = Instant::now();
    let r = submit_job(
        &v1,
        &miner,
        request("one-more", "cpu", 5, &["true"]),
        &store,
        T,
    )
    .await;
    let Err(ClientError::Call {
        status: 429,
        message,
        ..
    }) = r
    else {
        panic!("not refused: {r:?}")
    };
    assert!(
        message.starts_with("Too many requests: 8 of your job calls are still"),
        "{message}"
    );
    assert!(start.elapsed() < Duration::from_secs(1), "answered at once");
    let v2 = Dendrite::new(key("//validator2")).expect("dendrite");
    let theirs = request("theirs", "cpu", 5, &["true"]).sign(&key("//validator2"));
    let r = submit_job(&v2, &miner, theirs, &store, T).await;
    assert!(
        matches!(&r, Ok(JobReply::Declined { detail, .. }) if detail.contains("slow")),
        "{r:?}"
    );
}

/// Records grants and revocations instead of touching a host.
struct Recorder {
    inner: LocalBackend,
    granted: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ExecutorBackend for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn class(&self) -> Option<&str> {
        Some("cpu")
    }
    async fn capabilities(&self) -> Result<HardwareSpec, ExecutorError> {
        self.inner.capabilities().await
    }
    async fn run(&self, job: JobSpec) -> Result<JobHandle, ExecutorError> {
        self.inner.run(job).await
    }
    async fn health(&self) -> Result<Health, ExecutorError> {
        self.inner.health().await
    }
    async fn grant_access(&self, g: &AccessGrant) -> Result<LoginDetails, ExecutorError> {
        self.granted
            .lock()
            .expect("lock")
            .push(g.key.authorized_line(&g.allocation_id));
        Ok(LoginDetails {
            host: "127.0.0.9".into(),
            port: 2222,
            user: "rent".into(),
        })
    }
    async fn revoke_access(&self, id: &str) -> Result<(), ExecutorError> {
        self.granted
            .lock()
            .expect("lock")
            .retain(|l| !l.ends_with(&format!(":{id}")));
        Ok(())
    }
}

static NOW: AtomicU64 = AtomicU64::new(1_000_000);
fn fake_now() -> u64 {
    NOW.load(Ordering::SeqCst)
}

const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0 v@x";

#[tokio::test]
async fn allocations_hold_executors_persist_and_expire() {
    let dir = tempfile::tempdir().expect("dir");
    let recorder = Arc::new(Recorder {
        inner: LocalBackend::new(Some("cpu".into())),
        granted: Mutex::new(Vec::new()),
    });
    let fleet = || {
        let b: Arc<dyn ExecutorBackend> = recorder.clone();
        Arc::new(Fleet::with_backends(
            HealthPolicy::default(),
            [("box".to_owned(), b)],
        ))
    };
    let first = fleet();
    first.check_all().await;
    let service = Arc::new(
        JobService::open(
            dir.path(),
            first.clone(),
            key("//miner1"),
            Arc::new(AcceptAll),
            Arc::new(|_: &AccountId| true),
        )
        .expect("open")
        .with_clock(fake_now),
    );
    let (miner, stop) = serve(&service).await;
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let secret = access::new_sealing_key();
    let ask = |duration_s| Allocate {
        ssh_public_key: SSH_KEY.into(),
        duration_s,
        sealing_key: access::sealing_public_hex(&secret),
        ..Allocate::default()
    };
    let reply = d.call(&miner, ask(3600), T).await;
    let Some(AllocateReply::Allocated {
        allocation_id,
        executor,
        expires_at_ms,
        sealed_details,
    }) = reply.synapse.and_then(|s| s.reply)
    else {
        panic!("not allocated: {} {}", reply.status, reply.message)
    };
    assert_eq!(executor, "box");
    assert_eq!(expires_at_ms, 1_000_000 + 3_600_000);
    let login = access::open_details(&sealed_details, &secret).expect("open");
    assert_eq!((login.host.as_str(), login.port), ("127.0.0.9", 2222));
    assert_eq!(recorder.granted.lock().expect("lock").len(), 1);

    // An allocated executor takes no jobs and no second allocation.
    let v = key("//validator1").account();
    assert!(matches!(
        service.submit(request("x", "cpu", 5, &["true"]), &v).await,
        JobReply::Declined {
            reason: DeclineReason::Busy,
            ..
        }
    ));
    let again = d.call(&miner, ask(60), T).await;
    assert!(matches!(
        again.synapse.and_then(|s| s.reply),
        Some(AllocateReply::Declined {
            reason: DeclineReason::Busy,
            ..
        })
    ));
    // Bad requests are declined with reasons.
    for bad in [
        Allocate {
            ssh_public_key: "not a key".into(),
            ..ask(60)
        },
        ask(0),
        Allocate {
            sealing_key: "12".into(),
            ..ask(60)
        },
    ] {
        let r = d.call(&miner, bad, T).await;
        assert!(
            matches!(
                r.synapse.and_then(|s| s.reply),
                Some(AllocateReply::Declined {
                    reason: DeclineReason::Invalid,
                    ..
                })
            ),
            "{}",
            r.message
        );
    }
    let _ = stop.send(());
    drop(service);

    // Restart: the allocation still holds the executor.
    let second = fleet();
    second.check_all().await;
    let service = Arc::new(
        JobService::open(
            dir.path(),
            second.clone(),
            key("//miner1"),
            Arc::new(AcceptAll),
            Arc::new(|_: &AccountId| true),
        )
        .expect("reopen")
        .with_clock(fake_now),
    );
    let live = service.allocations().await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].allocation_id, allocation_id);
    assert_eq!(
        second.states()[0].allocation.as_deref(),
        Some(allocation_id.as_str())
    );
    // Only its holder may end it.
    let other = key("//validator2").account();
    assert_eq!(
        service.deallocate(&allocation_id, &other).await,
        Ok(DeallocateReply::Unknown)
    );
    // Not expired yet; then the clock passes the expiry.
    assert!(service.sweep().await.expired.is_empty());
    NOW.store(expires_at_ms, Ordering::SeqCst);
    assert_eq!(service.sweep().await.expired, vec![allocation_id.clone()]);
    assert!(recorder.granted.lock().expect("lock").is_empty());
    assert!(second.states()[0].allocation.is_none());
    assert!(service.allocations().await.is_empty());

    // Allocate again and deallocate over the wire.
    let (miner, _stop) = serve(&service).await;
    let reply = d.call(&miner, ask(60), T).await;
    let Some(AllocateReply::Allocated { allocation_id, .. }) = reply.synapse.and_then(|s| s.reply)
    else {
        panic!("not allocated")
    };
    let r = d
        .call(
            &miner,
            Deallocate {
                allocation_id: allocation_id.clone(),
                reply: None,
            },
            T,
        )
        .await;
    assert_eq!(
        r.synapse.and_then(|s| s.reply),
        Some(DeallocateReply::Deallocated)
    );
    assert!(recorder.granted.lock().expect("lock").is_empty());
    let reopened = JobService::open(
        dir.path(),
        fleet(),
        key("//miner1"),
        Arc::new(AcceptAll),
        Arc::new(|_: &AccountId| true),
    )
    .expect("reopen");
    assert!(reopened.allocations().await.is_empty());
}

#[tokio::test]
async fn a_local_executor_cannot_be_allocated_and_bad_state_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let service = open(dir.path(), fleet.clone());
    let secret = access::new_sealing_key();
    let r = service
        .allocate(
            &Allocate {
                ssh_public_key: SSH_KEY.into(),
                duration_s: 60,
                sealing_key: access::sealing_public_hex(&secret),
                ..Allocate::default()
            },
            &key("//validator1").account(),
        )
        .await;
    assert!(
        matches!(&r, AllocateReply::Declined { detail, .. } if detail.contains("need an ssh executor")),
        "{r:?}"
    );
    // The refused allocation released the executor.
    assert!(fleet.states()[0].allocation.is_none());
    drop(service);

    std::fs::write(
        dir.path().join("allocations.json"),
        b"{\"version\":1,\"allocations\":[{}]}",
    )
    .expect("write");
    let err = JobService::open(
        dir.path(),
        local_fleet(&["cpu"]),
        key("//miner1"),
        Arc::new(AcceptAll),
        Arc::new(|_: &AccountId| true),
    )
    .expect_err("corrupt");
    assert!(err.to_string().contains("allocations.json"), "{err}");
}

#[tokio::test]
async fn accept_policies_decline_over_the_wire_with_their_reason() {
    use super::accept::{AllOf, ClassLimits, ScriptPolicy};
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("accept.sh");
    // Declines any job whose command mentions `mine`; hangs on `hang`.
    std::fs::write(
        &script,
        "#!/bin/sh\nin=$(cat)\ncase \"$in\" in\n*hang*) sleep 30;;\n\
         *mine*) echo \"no mining jobs\" >&2; exit 1;;\nesac\nexit 0\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let policy = AllOf(vec![
        Arc::new(ClassLimits::new().max_duration("cpu", Duration::from_secs(60))),
        Arc::new(ScriptPolicy::new(&script).timeout(Duration::from_millis(500))),
    ]);
    let service = Arc::new(
        JobService::open(
            &dir.path().join("miner"),
            fleet,
            key("//miner1"),
            Arc::new(policy),
            Arc::new(|_: &AccountId| true),
        )
        .expect("open"),
    );
    let (miner, _stop) = serve(&service).await;
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let mine = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));
    let go = |r| submit_job(&d, &miner, r, &mine, T);
    let declined = |r: JobReply| match r {
        JobReply::Declined { reason, detail } => (reason, detail),
        other => panic!("not declined: {other:?}"),
    };
    assert_eq!(
        declined(
            go(request("long", "cpu", 61, &["true"]))
                .await
                .expect("call")
        ),
        (
            DeclineReason::Unprofitable,
            "a cpu job may run at most 60 s; this one asks for 61 s".to_owned()
        )
    );
    assert_eq!(
        declined(go(request("m", "cpu", 5, &["mine"])).await.expect("call")),
        (DeclineReason::Unprofitable, "no mining jobs".to_owned())
    );
    assert_eq!(
        declined(go(request("h", "cpu", 5, &["hang"])).await.expect("call")),
        (
            DeclineReason::Unprofitable,
            format!(
                "the accept script failed: {} did not answer within 0.5 s and was killed",
                script.display()
            )
        )
    );
    // What both accept runs.
    let r = go(request("ok", "cpu", 60, &["true"])).await.expect("call");
    assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
    // The service still serves after a hung script.
    let r = until_ended(&d, &miner, "ok", &mine).await;
    assert!(
        matches!(r, JobReply::Finished { exit_code: 0, .. }),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_validator_client_allocates_opens_the_details_and_deallocates() {
    use super::client::{AllocateOutcome, Allocation, allocate, deallocate};
    let dir = tempfile::tempdir().expect("dir");
    let recorder = Arc::new(Recorder {
        inner: LocalBackend::new(Some("cpu".into())),
        granted: Mutex::new(Vec::new()),
    });
    let b: Arc<dyn ExecutorBackend> = recorder.clone();
    let fleet = Arc::new(Fleet::with_backends(
        HealthPolicy::default(),
        [("box".to_owned(), b)],
    ));
    fleet.check_all().await;
    let service =
        Arc::new(serving_all(dir.path(), fleet, Arc::new(AcceptAll)).with_clock(|| 5_000));
    let (miner, _stop) = serve(&service).await;
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let secret = access::new_sealing_key();
    let ask = Allocate {
        ssh_public_key: SSH_KEY.into(),
        duration_s: 60,
        // Replaced by the client with the public half of `secret`.
        sealing_key: "ignored".into(),
        ..Allocate::default()
    };
    let got = allocate(&d, &miner, ask.clone(), &secret, T)
        .await
        .expect("allocate");
    let AllocateOutcome::Allocated(Allocation {
        allocation_id,
        executor,
        expires_at_ms,
        login,
    }) = got
    else {
        panic!("not allocated: {got:?}")
    };
    assert_eq!(executor, "box");
    assert_eq!(expires_at_ms, 65_000);
    assert_eq!(
        login,
        LoginDetails {
            host: "127.0.0.9".into(),
            port: 2222,
            user: "rent".into()
        }
    );
    assert_eq!(recorder.granted.lock().expect("lock").len(), 1);
    // The only executor is taken: a decline is an outcome, not an error.
    let again = allocate(&d, &miner, ask, &secret, T).await;
    assert!(
        matches!(
            again,
            Ok(AllocateOutcome::Declined {
                reason: DeclineReason::Busy,
                ..
            })
        ),
        "{again:?}"
    );
    assert_eq!(
        deallocate(&d, &miner, &allocation_id, T).await,
        Ok(DeallocateReply::Deallocated)
    );
    assert!(recorder.granted.lock().expect("lock").is_empty());
    assert_eq!(
        deallocate(&d, &miner, &allocation_id, T).await,
        Ok(DeallocateReply::Unknown)
    );
}

/// A miner that lies: its receipts are signed by another key, its
/// allocations seal the details to another key, and it answers queries
/// without a reply.
async fn serve_liar() -> (AxonTarget, tokio::sync::oneshot::Sender<()>) {
    use super::jobs::Receipt;
    use super::wire::{JobQuery, JobSubmit};
    use crate::axon::Caller;
    let axon = Axon::builder(key("//miner1"))
        .route(|mut s: JobSubmit, _: Caller| async move {
            let receipt = Receipt::sign(&s.request, ReceiptKind::Accepted, 1, &key("//evil"));
            s.reply = Some(JobReply::Accepted { receipt });
            Ok(s)
        })
        .route(|mut q: JobQuery, _: Caller| async move {
            // Answers sized and shaped to hurt whoever keeps them.
            let finished = |status: &str, digest: &str| {
                let mut r = request(&q.job_id, "cpu", 5, &["true"]);
                r.job_id = q.job_id.clone();
                let kind = ReceiptKind::Finished {
                    exit_code: Some(0),
                    status: status.into(),
                    stdout_sha256: digest.into(),
                    stderr_sha256: digest.into(),
                    output_sha256: None,
                    duration_ms: 1,
                };
                Receipt::sign(&r, kind, 1, &key("//miner1"))
            };
            let good = "0".repeat(64);
            q.reply = match q.job_id.as_str() {
                "long" => Some(JobReply::Declined {
                    reason: DeclineReason::Busy,
                    // Within a JobQuery answer's bound (1 MiB).
                    detail: "x".repeat(200 << 10),
                }),
                "digest" => Some(JobReply::Finished {
                    exit_code: 0,
                    stdout_sha256: "zz".repeat(50 << 10),
                    stderr_sha256: good.clone(),
                    output_sha256: None,
                    receipt: finished("exited", &good),
                }),
                // Signed receipts that do not back the reply's words.
                "unsigned-digest" => Some(JobReply::Finished {
                    exit_code: 0,
                    stdout_sha256: "1".repeat(64),
                    stderr_sha256: good.clone(),
                    output_sha256: None,
                    receipt: finished("exited", &good),
                }),
                "wrong-kind" => Some(JobReply::Accepted {
                    receipt: finished("exited", &good),
                }),
                "status" => Some(JobReply::Failed {
                    reason: "killed".into(),
                    receipt: Some(finished(&"s".repeat(100 << 10), &good)),
                }),
                _ => None,
            };
            Ok(q)
        })
        .route(|mut r: Allocate, _: Caller| async move {
            let elsewhere =
                access::SealingKey::parse(&access::sealing_public_hex(&access::new_sealing_key()))
                    .expect("key");
            let details = LoginDetails {
                host: "h".into(),
                port: 22,
                user: "u".into(),
            };
            r.reply = Some(AllocateReply::Allocated {
                allocation_id: "a-1".into(),
                executor: "box".into(),
                expires_at_ms: 1,
                sealed_details: access::seal_details(&details, &elsewhere).expect("seal"),
            });
            Ok(r)
        })
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    (
        AxonTarget::new([127, 0, 0, 1].into(), port, key("//miner1").account()),
        tx,
    )
}

#[tokio::test]
async fn the_validator_client_refuses_wrong_answers_and_names_an_unreachable_miner() {
    use super::client::{ClientError, allocate};
    let dir = tempfile::tempdir().expect("dir");
    let mine = ReceiptStore::new(dir.path().join("r.jsonl"));
    let (liar, _stop) = serve_liar().await;
    let v = key("//validator1");
    let d = Dendrite::new(v.clone()).expect("dendrite");
    let bad_receipt =
        ClientError::BadAnswer("a receipt that is not the miner's signature over this job".into());
    assert_eq!(
        submit_job(&d, &liar, request("j", "cpu", 5, &["true"]), &mine, T).await,
        Err(bad_receipt)
    );
    assert!(
        mine.load().expect("load").receipts.is_empty(),
        "kept a forged receipt"
    );
    assert_eq!(
        query_job(&d, &liar, "j", &mine, T).await,
        Err(ClientError::BadAnswer(
            "the miner answered without a reply".into()
        ))
    );
    // Text is cut, bad digests and statuses refused, nothing of it stored.
    let Ok(JobReply::Declined { detail, .. }) = query_job(&d, &liar, "long", &mine, T).await else {
        panic!("not a decline")
    };
    assert_eq!(detail.len(), super::client::MAX_MINER_TEXT);
    assert!(detail.ends_with('…'));
    assert_eq!(
        query_job(&d, &liar, "digest", &mine, T).await,
        Err(ClientError::BadAnswer(
            "a digest that is not 64 lowercase hex digits".into()
        ))
    );
    // A reply's fields must be what its signed receipt attests: before,
    // a probe judged the unsigned stdout digest of the reply.
    for (id, state) in [("unsigned-digest", "finished"), ("wrong-kind", "accepted")] {
        assert_eq!(
            query_job(&d, &liar, id, &mine, T).await,
            Err(ClientError::BadAnswer(format!(
                "a {state} reply whose signed receipt says otherwise (its kind, exit code or \
                 digests differ)"
            ))),
            "{id}"
        );
    }
    let e = query_job(&d, &liar, "status", &mine, T)
        .await
        .expect_err("an unknown status");
    assert!(
        e.to_string()
            .starts_with("bad answer from the miner: a receipt with an unknown status \"sss"),
        "{e}"
    );
    assert!(e.to_string().len() < 200, "{e}");
    assert!(mine.load().expect("load").receipts.is_empty());
    let ask = Allocate {
        ssh_public_key: SSH_KEY.into(),
        duration_s: 60,
        ..Allocate::default()
    };
    assert_eq!(
        allocate(&d, &liar, ask.clone(), &access::new_sealing_key(), T).await,
        Err(ClientError::BadAnswer(
            "bad job: sealed details do not open with this key".into()
        ))
    );
    // A closed port: no answer at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let gone = AxonTarget { port, ..liar };
    let e = allocate(&d, &gone, ask, &access::new_sealing_key(), T)
        .await
        .expect_err("unreachable");
    assert!(e.is_unreachable(), "{e:?}");
    assert!(
        !ClientError::Call {
            status: 403,
            message: "Forbidden".into(),
            answered: true,
        }
        .is_unreachable()
    );
}

/// A request's environment reaches the job; an image is declined by a fleet
/// that has no container executor, with the executor's reason.
#[tokio::test]
async fn env_reaches_the_job_and_an_image_needs_a_container_executor() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let service = open(&dir.path().join("miner"), fleet);
    let (miner, _stop) = serve(&service).await;
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let mine = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));

    let mut req = request("env", "cpu", 30, &["sh", "-c", "printf %s \"$GREETING\""]);
    req.env.insert("GREETING".into(), "hello organic".into());
    let req = req.sign(&key("//validator1"));
    let r = submit_job(&d, &miner, req, &mine, T).await.expect("submit");
    assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
    let JobReply::Finished { stdout_sha256, .. } = until_ended(&d, &miner, "env", &mine).await
    else {
        panic!("not finished")
    };
    assert_eq!(stdout_sha256, hex::encode(Sha256::digest(b"hello organic")));

    let mut req = request("img", "cpu", 30, &["true"]);
    req.image = Some("busybox:latest".into());
    let req = req.sign(&key("//validator1"));
    match submit_job(&d, &miner, req, &mine, T).await.expect("submit") {
        JobReply::Declined { reason, detail } => {
            assert_eq!(reason, DeclineReason::Invalid);
            assert!(detail.contains("need a docker executor"), "{detail}");
        }
        other => panic!("not declined: {other:?}"),
    }
}

type Stored = Arc<Mutex<std::collections::HashMap<String, Vec<u8>>>>;

/// A file server on loopback: GET serves `files`, PUT stores the body
/// (under its path) unless the path starts with `/deny`.
async fn file_server(files: Vec<(&'static str, Vec<u8>)>) -> (String, Stored) {
    file_server_with(files, None).await
}

/// The test certificate for 127.0.0.1, signed by `tests/fixtures/ca.pem`.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let certs = CertificateDer::pem_file_iter(dir.join("tls.pem"))
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// [`file_server`], over TLS when `tls` is given (then the URL is https).
async fn file_server_with(
    files: Vec<(&'static str, Vec<u8>)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, Stored) {
    use http_body_util::BodyExt as _;
    let files: Arc<std::collections::HashMap<String, Vec<u8>>> =
        Arc::new(files.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let puts = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stored = puts.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (files, stored, tls) = (files.clone(), stored.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (files, stored) = (files.clone(), stored.clone());
                        async move {
                            let path = req.uri().path().to_owned();
                            let status_body = match *req.method() {
                                hyper::Method::GET => match files.get(&path) {
                                    Some(b) => (200, b.clone()),
                                    None => (404, Vec::new()),
                                },
                                hyper::Method::PUT if path.starts_with("/deny") => {
                                    (403, b"AccessDenied".to_vec())
                                }
                                hyper::Method::PUT => {
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|c| c.to_bytes().to_vec())
                                        .unwrap_or_default();
                                    stored.lock().expect("lock").insert(path, body);
                                    (200, Vec::new())
                                }
                                _ => (405, Vec::new()),
                            };
                            let mut r = hyper::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::from(status_body.1),
                            ));
                            *r.status_mut() =
                                hyper::StatusCode::from_u16(status_body.0).expect("status");
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    (format!("{scheme}://{addr}"), puts)
}

/// Inputs are downloaded (size-capped, digest-checked) into the job's own
/// work directory, outputs uploaded with PUT, and their digest is signed in
/// the receipt; every failure names the order's field.
#[tokio::test]
async fn job_files_are_fetched_checked_uploaded_and_signed() {
    use super::volumes::{InputFile, OutputFile, VolumePolicy, outputs_digest};
    let dir = tempfile::tempdir().expect("dir");
    let data = b"3 4\n".to_vec();
    let (base, puts) = file_server(vec![
        ("/in/numbers.txt", data.clone()),
        ("/big", vec![7; 4096]),
    ])
    .await;
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let open_with =
        |policy: VolumePolicy, sub: &str| with_volumes(&dir.path().join(sub), &fleet, policy);
    let loopback = VolumePolicy {
        allow_private: true,
        max_input_bytes: 1024,
        ..VolumePolicy::default()
    };
    let service = open_with(loopback, "miner");
    let (miner, _stop) = serve(&service).await;
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let mine = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let job = |id: &str, inputs: Vec<InputFile>, outputs: Vec<OutputFile>| {
        let mut r = request(
            id,
            "cpu",
            30,
            &[
                "sh",
                "-c",
                "mkdir -p out && read a b < in/numbers.txt && echo $((a*b)) > out/product",
            ],
        );
        r.inputs = inputs;
        r.outputs = outputs;
        r.sign(&key("//validator1"))
    };
    let input = |path: &str, digest: Option<String>| InputFile {
        url: format!("{base}{path}"),
        path: "in/numbers.txt".into(),
        sha256: digest,
    };
    let output = |put: &str| OutputFile {
        path: "out/product".into(),
        put_url: format!("{base}{put}"),
    };
    let run = |r: JobRequest| {
        let (d, miner, mine) = (&d, &miner, &mine);
        async move {
            let id = r.job_id.clone();
            let accepted = submit_job(d, miner, r, mine, T).await.expect("submit");
            assert!(
                matches!(accepted, JobReply::Accepted { .. }),
                "{accepted:?}"
            );
            until_ended(d, miner, &id, mine).await
        }
    };

    let reply = run(job(
        "ok",
        vec![input("/in/numbers.txt", Some(sha(&data)))],
        vec![output("/bucket/product")],
    ))
    .await;
    let JobReply::Finished {
        exit_code: 0,
        output_sha256,
        receipt,
        ..
    } = reply
    else {
        panic!("not finished: {reply:?}")
    };
    let uploaded = puts.lock().expect("lock").get("/bucket/product").cloned();
    assert_eq!(uploaded.as_deref(), Some(&b"12\n"[..]));
    let want = outputs_digest(&[("out/product".into(), sha(b"12\n"))]);
    assert_eq!(output_sha256.as_deref(), Some(want.as_str()));
    assert!(receipt.verify());
    assert!(
        matches!(&receipt.kind, ReceiptKind::Finished { output_sha256: Some(d), .. } if *d == want)
    );
    // The work directory is gone.
    let left = std::fs::read_dir(dir.path().join("miner/work"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);

    let failed = |reply: JobReply| match reply {
        JobReply::Failed { reason, .. } => reason,
        other => panic!("not failed: {other:?}"),
    };
    let wrong = "0".repeat(64);
    let reason = failed(
        run(job(
            "digest",
            vec![input("/in/numbers.txt", Some(wrong))],
            vec![],
        ))
        .await,
    );
    assert!(reason.starts_with("inputs[0].sha256: "), "{reason}");
    let reason = failed(
        run(job(
            "big",
            vec![InputFile {
                url: format!("{base}/big"),
                path: "in/numbers.txt".into(),
                sha256: None,
            }],
            vec![],
        ))
        .await,
    );
    assert!(
        reason.starts_with("inputs[0].url: ") && reason.contains("1024 bytes"),
        "{reason}"
    );
    let reason = failed(run(job("missing", vec![input("/nothing", None)], vec![])).await);
    assert!(reason.contains("404"), "{reason}");
    let reason = failed(
        run(job(
            "denied",
            vec![input("/in/numbers.txt", None)],
            vec![output("/deny/x")],
        ))
        .await,
    );
    assert!(
        reason.starts_with("outputs[0].put_url: the upload was refused: 403"),
        "{reason}"
    );

    // A FIFO left at an output path is refused, never waited on.
    let mut r = request(
        "fifo",
        "cpu",
        30,
        &["sh", "-c", "mkdir -p out && mkfifo out/product"],
    );
    r.outputs = vec![output("/bucket/fifo")];
    let reason = failed(run(r.sign(&key("//validator1"))).await);
    assert_eq!(reason, "outputs[0].path: not a regular file");

    // A miner that does not allow private addresses will not fetch from
    // loopback for a validator.
    let strict = open_with(VolumePolicy::default(), "strict");
    let (strict_miner, _stop2) = serve(&strict).await;
    let r = job("ssrf", vec![input("/in/numbers.txt", None)], vec![]);
    let accepted = submit_job(&d, &strict_miner, r, &mine, T)
        .await
        .expect("submit");
    assert!(matches!(accepted, JobReply::Accepted { .. }));
    let reason = failed(until_ended(&d, &strict_miner, "ssrf", &mine).await);
    assert!(
        reason.contains("loopback, private or link-local"),
        "{reason}"
    );
}

/// Files over https: certificates are checked (a CA the miner does not
/// trust is a failure naming the field), and with the CA trusted the job's
/// input comes in and its output goes out.
#[tokio::test]
async fn job_files_travel_over_https_with_checked_certificates() {
    use super::volumes::{InputFile, OutputFile, VolumePolicy};
    let dir = tempfile::tempdir().expect("dir");
    let (base, puts) =
        file_server_with(vec![("/in/n.txt", b"5 8\n".to_vec())], Some(tls_acceptor())).await;
    assert!(base.starts_with("https://127.0.0.1:"));
    let fleet = local_fleet(&["cpu"]);
    fleet.check_all().await;
    let ca = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ca.pem"),
    )
    .expect("ca");
    let open_with =
        |policy: VolumePolicy, sub: &str| with_volumes(&dir.path().join(sub), &fleet, policy);
    let d = Dendrite::new(key("//validator1")).expect("dendrite");
    let mine = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));
    let job = |id: &str| {
        let mut r = request(
            id,
            "cpu",
            30,
            &[
                "sh",
                "-c",
                "mkdir -p out && read a b < in/n.txt && echo $((a*b)) > out/p",
            ],
        );
        r.inputs = vec![InputFile {
            url: format!("{base}/in/n.txt"),
            path: "in/n.txt".into(),
            sha256: None,
        }];
        r.outputs = vec![OutputFile {
            path: "out/p".into(),
            put_url: format!("{base}/bucket/p"),
        }];
        r.sign(&key("//validator1"))
    };

    // The system's roots do not include the test CA: refused, by field.
    let untrusting = open_with(
        VolumePolicy {
            allow_private: true,
            ..VolumePolicy::default()
        },
        "untrusting",
    );
    let (miner, _s1) = serve(&untrusting).await;
    let r = submit_job(&d, &miner, job("untrusted"), &mine, T)
        .await
        .expect("submit");
    assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
    match until_ended(&d, &miner, "untrusted", &mine).await {
        JobReply::Failed { reason, .. } => {
            assert!(
                reason.starts_with("inputs[0].url: download failed"),
                "{reason}"
            )
        }
        other => panic!("not failed: {other:?}"),
    }

    // Trusted: the job runs with its files.
    let trusting = open_with(
        VolumePolicy {
            allow_private: true,
            extra_roots_pem: vec![ca],
            ..VolumePolicy::default()
        },
        "trusting",
    );
    let (miner, _s2) = serve(&trusting).await;
    let r = submit_job(&d, &miner, job("trusted"), &mine, T)
        .await
        .expect("submit");
    assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
    let done = until_ended(&d, &miner, "trusted", &mine).await;
    assert!(
        matches!(done, JobReply::Finished { exit_code: 0, .. }),
        "{done:?}"
    );
    assert_eq!(
        puts.lock()
            .expect("lock")
            .get("/bucket/p")
            .map(Vec::as_slice),
        Some(&b"40\n"[..])
    );
}
