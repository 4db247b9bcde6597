//! An executor backend written by a user, serving validators' jobs through
//! the library's job market: the same `Fleet`, `JobService`, signed
//! receipts and validator client that `akihabara axon serve --fleet` and
//! `akihabara miner run` use.
//!
//! `DigestBackend` runs jobs in-process (a stand-in for a remote API or an
//! accelerator driver): `sha256 TEXT` prints the digest of TEXT, `sleep MS`
//! waits. It honours cancellation and the job's timeout, and reports its
//! output through a `JobReporter`.
//!
//! Run: `cargo run --example 05-executor-backend`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akihabara::AccountId;
use akihabara::axon::Axon;
use akihabara::dendrite::{AxonTarget, Dendrite};
use akihabara::executor::{
    Captured, ExecutorBackend, ExecutorError, Fleet, HardwareSpec, Health, HealthPolicy, JobHandle,
    JobSpec, JobStatus, Outcome, Requirements, Stream,
};
use akihabara::market::client::{query_job, submit_job};
use akihabara::market::jobs::{AcceptAll, JobRequest, ReceiptStore};
use akihabara::market::server::JobService;
use akihabara::market::wire::JobReply;
use akihabara::wallet::Keypair;

/// Jobs computed in this process.
struct DigestBackend;

#[async_trait::async_trait]
impl ExecutorBackend for DigestBackend {
    fn kind(&self) -> &'static str {
        "digest"
    }

    fn class(&self) -> Option<&str> {
        Some("digest")
    }

    async fn capabilities(&self) -> Result<HardwareSpec, ExecutorError> {
        Ok(HardwareSpec {
            hostname: "in-process".into(),
            cpu_count: 1,
            cpu_model: None,
            ram_mb: 64,
            disk_mb: None,
            gpus: Vec::new(),
            hardware_class: Some("digest".into()),
        })
    }

    async fn run(&self, job: JobSpec) -> Result<JobHandle, ExecutorError> {
        let (mut reporter, handle) = JobHandle::channel(64);
        let (program, arg) = match job.command.as_slice() {
            [p, a] => (p.clone(), a.clone()),
            _ => {
                return Err(ExecutorError::BadJob(
                    "expected: sha256 TEXT | sleep MS".into(),
                ));
            }
        };
        tokio::spawn(async move {
            let started = Instant::now();
            let work = async {
                match program.as_str() {
                    "sha256" => {
                        use sha2::Digest as _;
                        let line = hex::encode(sha2::Sha256::digest(arg.as_bytes()));
                        Ok(format!("{line}\n"))
                    }
                    "sleep" => {
                        let ms = arg.parse::<u64>().map_err(|_| "sleep takes milliseconds")?;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(String::new())
                    }
                    _ => Err("unknown program"),
                }
            };
            let (status, stdout, stderr) = tokio::select! {
                r = work => match r {
                    Ok(out) => (JobStatus::Exited { code: 0 }, out, String::new()),
                    Err(e) => (JobStatus::Exited { code: 2 }, String::new(), format!("{e}\n")),
                },
                () = tokio::time::sleep(job.timeout) => (JobStatus::TimedOut, String::new(), String::new()),
                () = reporter.cancelled() => (JobStatus::Cancelled, String::new(), String::new()),
            };
            for line in stdout.lines() {
                reporter.log(Stream::Stdout, line);
            }
            reporter.finish(Ok(Outcome {
                status,
                duration: started.elapsed(),
                stdout: Captured::of(stdout.as_bytes(), job.output_cap),
                stderr: Captured::of(stderr.as_bytes(), job.output_cap),
                dropped_log_lines: 0,
            }));
        });
        Ok(handle)
    }

    async fn health(&self) -> Result<Health, ExecutorError> {
        Ok(Health {
            latency: Duration::ZERO,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let miner = Keypair::from_uri("//akihabara-example/miner")?;
    let validator = Keypair::from_uri("//akihabara-example/validator")?;
    let state = std::env::temp_dir().join(format!("akihabara-example-05-{}", std::process::id()));

    // The miner: a fleet of one user-written executor, behind the job market.
    let fleet = Arc::new(Fleet::with_backends(
        HealthPolicy::default(),
        [(
            "digest-0".to_owned(),
            Arc::new(DigestBackend) as Arc<dyn ExecutorBackend>,
        )],
    ));
    fleet.check_all().await;
    let allowed = validator.account();
    let service = Arc::new(JobService::open(
        &state.join("miner"),
        fleet,
        miner.clone(),
        Arc::new(AcceptAll),
        Arc::new(move |v: &AccountId| *v == allowed),
    )?);
    let axon = service
        .routes(Axon::builder(miner.clone()))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await?;
    let target = AxonTarget::new(
        [127, 0, 0, 1].into(),
        axon.local_addr()?.port(),
        miner.account(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(axon.serve(async {
        let _ = stopped.await;
    }));

    // The validator: a signed request, then its state, receipts checked.
    let d = Dendrite::new(validator.clone())?;
    let receipts = ReceiptStore::new(state.join("validator-receipts.jsonl"));
    let request = JobRequest {
        job_id: "digest-hello".into(),
        validator: validator.account(),
        hardware_class: "digest".into(),
        timeout_s: 10,
        command: vec!["sha256".into(), "hello".into()],
        requirements: Requirements::default(),
        output_dir: None,
        image: None,
        env: Default::default(),
        inputs: vec![],
        outputs: vec![],
        issued_at_ms: 1,
        signature: String::new(),
    }
    .sign(&validator);
    let t = Duration::from_secs(10);
    let accepted = submit_job(&d, &target, request, &receipts, t).await?;
    println!("submitted: {}", serde_json::to_string(&accepted)?);
    let finished = loop {
        match query_job(&d, &target, "digest-hello", &receipts, t).await? {
            JobReply::Running => tokio::time::sleep(Duration::from_millis(20)).await,
            other => break other,
        }
    };
    let JobReply::Finished {
        exit_code,
        stdout_sha256,
        ..
    } = &finished
    else {
        return Err(format!("the job did not finish: {finished:?}").into());
    };
    println!("finished: exit {exit_code}, stdout sha256 {stdout_sha256}");
    use sha2::Digest as _;
    let line = format!("{}\n", hex::encode(sha2::Sha256::digest(b"hello")));
    assert_eq!(*exit_code, 0);
    assert_eq!(
        *stdout_sha256,
        hex::encode(sha2::Sha256::digest(line.as_bytes()))
    );
    let kept = receipts.load()?.receipts.len();
    println!("receipts kept by the validator: {kept}");
    assert_eq!(kept, 2, "accepted and finished");

    let _ = stop.send(());
    server.await??;
    std::fs::remove_dir_all(&state)?;
    Ok(())
}
