//! The miner's side of jobs and allocations: [`JobService`] answers the
//! [`wire`](super::wire) synapses from a [`Fleet`], signs receipts, and keeps
//! receipts and allocations on disk so a restart loses neither.
//!
//! State directory layout:
//! - `receipts.jsonl`: the signed receipts ([`ReceiptStore`]); past its size
//!   bound the older half moves to `receipts.jsonl.1`.
//! - `allocations.json`: live allocations, rewritten atomically on change.
//!
//! The validator's side is in [`client`](super::client).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::flight::{Full, InFlight, MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_VALIDATOR};
use super::jobs::{
    AcceptPolicy, DeclineReason, JobRequest, Receipt, ReceiptKind, ReceiptStore, Refusal,
    Situation, rule,
};
use super::logs::{Logs, LogsReply};
use super::receipts::MAX_RECEIPTS_FILE;
use super::table::{JobKey, JobState, JobTable};
pub use super::table::{MAX_ENDED_JOBS, MAX_ENDED_PER_VALIDATOR, Retention};
use super::volumes::{VolumePolicy, download, outputs_digest, upload};
use super::wire::{
    Allocate, AllocateReply, CancelReply, Deallocate, DeallocateReply, JobCancel, JobLogs,
    JobQuery, JobReply, JobSubmit,
};
use crate::AccountId;
use crate::axon::{AxonBuilder, Caller, HandlerError};
use crate::executor::access::{AccessGrant, SealingKey, SshPublicKey, seal_details};
use crate::executor::{ExecutorError, Fleet, JobSpec, JobStatus, Outcome};
use crate::fs::{Access, write_atomic};
use crate::wallet::Keypair;

/// The longest a validator's job may run (7 days).
pub const MAX_JOB_SECONDS: u64 = 7 * 24 * 3600;

/// The longest allocation a miner grants (30 days).
pub const MAX_ALLOCATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which validators a miner serves.
pub type ValidatorFilter = Arc<dyn Fn(&AccountId) -> bool + Send + Sync>;

/// A live allocation, as persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationRecord {
    /// Id the validator deallocates with.
    pub allocation_id: String,
    /// The validator holding it.
    pub validator: AccountId,
    /// The executor reserved.
    pub executor: String,
    /// The key let in.
    pub ssh_public_key: SshPublicKey,
    /// Granted at, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Expires at, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationFile {
    version: u32,
    allocations: Vec<AllocationRecord>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The state directory or a file in it.
    #[error("{path}: {reason}")]
    State {
        /// The state directory or file that failed.
        path: PathBuf,
        /// The I/O or parse error, as text.
        reason: String,
    },
}

/// What [`JobService::sweep`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Allocations that expired and were revoked.
    pub expired: Vec<String>,
    /// Allocations whose revocation failed (kept; retried next sweep).
    pub failed: Vec<(String, String)>,
}

/// Answers jobs and allocations from a fleet.
pub struct JobService {
    fleet: Arc<Fleet>,
    miner: Keypair,
    policy: Arc<dyn AcceptPolicy>,
    allowed: ValidatorFilter,
    receipts: ReceiptStore,
    allocations_path: PathBuf,
    /// Jobs by `(validator, job_id)`: ids are each validator's own, so one
    /// validator can never read, or block, another's job by reusing its id.
    /// Ended ones are kept within a [`Retention`] budget.
    jobs: Mutex<JobTable>,
    allocations: tokio::sync::Mutex<Vec<AllocationRecord>>,
    clock: fn() -> u64,
    /// Jobs' work directories (`STATE/work`), for jobs with files.
    work_root: PathBuf,
    /// How to kill each running job, for [`JobService::cancel`].
    cancels: Mutex<HashMap<JobKey, tokio::sync::oneshot::Sender<()>>>,
    /// Jobs' output lines, for [`JobService::logs`].
    logs: Logs<JobKey>,
    volumes: VolumePolicy,
    /// Submissions and (de)allocations being worked on.
    in_flight: Arc<InFlight<AccountId>>,
}

/// How an accepted job starts: already running, or once its inputs are in.
enum Start {
    Running(crate::executor::JobHandle),
    AfterInputs(Arc<dyn crate::executor::ExecutorBackend>, Box<JobSpec>),
}

impl std::fmt::Debug for JobService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobService")
            .field("miner", &self.miner.account())
            .field("allocations", &self.allocations_path)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (the default clock).
pub fn unix_millis() -> u64 {
    crate::protocol::unix_nanos() / 1_000_000
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn reason_of(status: &JobStatus, timeout_s: u64) -> Option<String> {
    match status {
        JobStatus::Exited { .. } => None,
        JobStatus::Signaled { signal } => Some(format!("killed by signal {signal}")),
        JobStatus::TimedOut => Some(format!("timed out after {timeout_s} s")),
        JobStatus::Cancelled => Some("cancelled".into()),
        JobStatus::OutOfMemory => Some("killed: out of memory".into()),
    }
}

/// The reply a `finished` receipt stands for.
fn reply_of(receipt: &Receipt) -> Option<JobReply> {
    let ReceiptKind::Finished {
        exit_code,
        status,
        stdout_sha256,
        stderr_sha256,
        output_sha256,
        ..
    } = &receipt.kind
    else {
        return None;
    };
    Some(match exit_code {
        Some(code) if status == "exited" => JobReply::Finished {
            exit_code: *code,
            stdout_sha256: stdout_sha256.clone(),
            stderr_sha256: stderr_sha256.clone(),
            output_sha256: output_sha256.clone(),
            receipt: receipt.clone(),
        },
        _ => JobReply::Failed {
            reason: status.replace('_', " "),
            receipt: Some(receipt.clone()),
        },
    })
}

/// The answer to a job call the budget has no room for: 429 for the
/// caller's own share, 503 when the miner is full.
fn busy(full: Full) -> HandlerError {
    match full {
        Full::Caller(n) => HandlerError {
            status: 429,
            message: format!("Too many requests: {n} of your job calls are still being worked on"),
        },
        Full::All(n) => HandlerError {
            status: 503,
            message: format!("Service busy: {n} job calls are being worked on"),
        },
    }
}

impl JobService {
    /// Opens the state in `dir` (created if missing): receipts are indexed,
    /// persisted allocations hold their executors again. Ended jobs'
    /// answers are kept within [`Retention::default`].
    pub fn open(
        dir: &Path,
        fleet: Arc<Fleet>,
        miner: Keypair,
        policy: Arc<dyn AcceptPolicy>,
        allowed: ValidatorFilter,
    ) -> Result<JobService, ServiceError> {
        JobService::open_retaining(dir, fleet, miner, policy, allowed, Retention::default())
    }

    /// [`JobService::open`] keeping ended jobs' answers for `JobQuery`
    /// within `retention`: the oldest beyond it are forgotten (a forgotten
    /// job's id may be submitted again), and the receipts are read back
    /// within the same budget at a restart.
    pub fn open_retaining(
        dir: &Path,
        fleet: Arc<Fleet>,
        miner: Keypair,
        policy: Arc<dyn AcceptPolicy>,
        allowed: ValidatorFilter,
        retention: Retention,
    ) -> Result<JobService, ServiceError> {
        std::fs::create_dir_all(dir).map_err(|e| state_err(dir, e))?;
        let receipts =
            ReceiptStore::new(dir.join("receipts.jsonl")).with_max_bytes(MAX_RECEIPTS_FILE);
        let me = miner.account();
        let mut jobs = JobTable::new(retention);
        // In file order, the previous generation first (a rotation keeps
        // the newer half of it in the file too: those end again, harmlessly).
        receipts
            .scan_all(|r| {
                if r.miner != me {
                    return;
                }
                let key = (r.validator, r.job_id.clone());
                let reply = match reply_of(&r) {
                    Some(reply) => reply,
                    // Accepted but never finished: the miner stopped while it ran.
                    None => JobReply::Failed {
                        reason: "lost: the miner restarted while the job ran".into(),
                        receipt: None,
                    },
                };
                // Each run appends `accepted`, then `finished`: a later
                // receipt is always the newer state (an `accepted` after a
                // `finished` is the same id run again, once forgotten).
                jobs.end(key, reply);
            })
            .map_err(|e| state_err(receipts.path(), e))?;
        // Work directories of jobs a previous run left: those jobs are lost.
        let work_root = dir.join("work");
        if work_root.exists() {
            std::fs::remove_dir_all(&work_root).map_err(|e| state_err(&work_root, e))?;
        }
        let allocations_path = dir.join("allocations.json");
        let file: AllocationFile = match std::fs::read(&allocations_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                state_err(
                    &allocations_path,
                    format!("not an allocations file ({e}); move it aside to start empty"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AllocationFile::default(),
            Err(e) => return Err(state_err(&allocations_path, e)),
        };
        for a in &file.allocations {
            if !fleet.mark_allocated(&a.executor, &a.allocation_id) {
                return Err(state_err(
                    &allocations_path,
                    format!(
                        "allocation {} holds executor {:?}, which the fleet does not have \
                         (or holds twice); restore the executor to the fleet file",
                        a.allocation_id, a.executor
                    ),
                ));
            }
        }
        Ok(JobService {
            fleet,
            miner,
            policy,
            allowed,
            receipts,
            allocations_path,
            jobs: Mutex::new(jobs),
            allocations: tokio::sync::Mutex::new(file.allocations),
            clock: unix_millis,
            work_root,
            cancels: Mutex::new(HashMap::new()),
            logs: Logs::default(),
            volumes: VolumePolicy::default(),
            in_flight: InFlight::new(MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_VALIDATOR),
        })
    }

    /// What jobs' input and output files may be (sizes, time, and whether
    /// their URLs may point at private addresses).
    pub fn with_volumes(mut self, policy: VolumePolicy) -> JobService {
        self.volumes = policy;
        self
    }

    /// Replaces the clock (ms since the Unix epoch), for simulations and tests.
    pub fn with_clock(mut self, clock: fn() -> u64) -> JobService {
        self.clock = clock;
        self
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, JobTable> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The receipts this miner has signed, as stored.
    pub fn receipts(&self) -> &ReceiptStore {
        &self.receipts
    }

    /// The live allocations.
    pub async fn allocations(&self) -> Vec<AllocationRecord> {
        self.allocations.lock().await.clone()
    }

    /// JobRequest → JobAccepted | JobDeclined. `caller` is the verified
    /// hotkey that sent it; it must be the request's signer. A job id seen
    /// before (even before a restart) gets its existing state, never a
    /// second run, while the miner keeps it (see [`Retention`]).
    pub async fn submit(self: &Arc<Self>, request: JobRequest, caller: &AccountId) -> JobReply {
        let declined = |reason, detail: String| JobReply::Declined { reason, detail };
        if &request.validator != caller {
            return declined(
                DeclineReason::Invalid,
                "the request is signed for another hotkey than the caller's".into(),
            );
        }
        if request.job_id.is_empty() || request.job_id.len() > 128 {
            return declined(
                DeclineReason::Invalid,
                "job_id must be 1 to 128 bytes".into(),
            );
        }
        let key: JobKey = (request.validator, request.job_id.clone());
        if let Some(state) = self.jobs().get(&key) {
            return match state {
                JobState::Running => JobReply::Running,
                JobState::Ended(reply) => (**reply).clone(),
            };
        }
        let offer = self.fleet.offer(Some(&request.hardware_class));
        let situation = Situation {
            class_supported: offer.class_supported,
            free_executor: offer.free,
            validator_allowed: (self.allowed)(&request.validator),
        };
        if let Some(reason) = rule(&request, situation) {
            let detail = match reason {
                DeclineReason::Busy => format!(
                    "every {} executor is busy, allocated or unhealthy",
                    request.hardware_class
                ),
                DeclineReason::UnsupportedClass => {
                    format!("no executor of class {}", request.hardware_class)
                }
                DeclineReason::ValidatorBlacklisted => {
                    "the validator is not served (or its signature does not verify)".into()
                }
                DeclineReason::Unprofitable => "refused by the operator's policy".into(),
                DeclineReason::Invalid => "invalid request".into(),
            };
            return declined(reason, detail);
        }
        // The operator's policy may block (a script): off the runtime.
        let (policy, asked) = (self.policy.clone(), request.clone());
        let refused = tokio::task::spawn_blocking(move || policy.refuse(&asked))
            .await
            .unwrap_or_else(|e| Some(Refusal::Other(format!("the accept policy panicked: {e}"))));
        if let Some(why) = refused {
            return declined(DeclineReason::Unprofitable, why.to_string());
        }
        if request.timeout_s > MAX_JOB_SECONDS {
            return declined(
                DeclineReason::Invalid,
                format!(
                    "timeout_s {} is over the {MAX_JOB_SECONDS} s a job may run",
                    request.timeout_s
                ),
            );
        }
        let mut parts = request.command.iter().cloned();
        let mut spec = JobSpec::command(
            parts.next().unwrap_or_default(),
            parts,
            Duration::from_secs(request.timeout_s),
        );
        spec.requirements = request.requirements.clone();
        spec.image = request.image.clone();
        spec.env = request.env.clone();
        let checked = match spec.image {
            // The executor checks the image against its own allow list.
            Some(_) => spec.validate_for_image(),
            None => spec.validate(),
        };
        if let Err(e) = checked {
            return declined(DeclineReason::Invalid, e.to_string());
        }
        if let Some(dir) = &request.output_dir
            && (dir.is_empty() || dir.contains('\0'))
        {
            return declined(DeclineReason::Invalid, "output_dir is empty".into());
        }
        // Claim the id first: a concurrent duplicate sees it running.
        {
            let mut jobs = self.jobs();
            if !jobs.claim(&key) {
                return JobReply::Running;
            }
        }
        let volumes = !request.inputs.is_empty() || !request.outputs.is_empty();
        if volumes {
            match self.work_dir(&key) {
                Ok(dir) => spec.volume = Some(dir),
                Err(e) => {
                    self.jobs().remove(&key);
                    return declined(DeclineReason::Busy, format!("no work directory: {e}"));
                }
            }
        }
        let refused = |e: ExecutorError| match e {
            ExecutorError::NoCapacity(why) => declined(DeclineReason::Busy, why),
            ExecutorError::Unmet(why) => declined(DeclineReason::UnsupportedClass, why),
            e => declined(DeclineReason::Invalid, e.to_string()),
        };
        // Inputs are downloaded before the job starts, after it is accepted
        // (a download may take longer than the call): the executor is held
        // meanwhile.
        let (executor, started) = if request.inputs.is_empty() {
            match self.fleet.run(spec, Some(&request.hardware_class)).await {
                Ok((executor, handle)) => (executor, Start::Running(handle)),
                Err(e) => {
                    self.forget_job(&key);
                    return refused(e);
                }
            }
        } else {
            match self
                .fleet
                .claim_job(&spec, Some(&request.hardware_class))
                .await
            {
                Ok((executor, backend)) => (executor, Start::AfterInputs(backend, Box::new(spec))),
                Err(e) => {
                    self.forget_job(&key);
                    return refused(e);
                }
            }
        };
        let accepted = Receipt::sign(&request, ReceiptKind::Accepted, (self.clock)(), &self.miner);
        if let Err(e) = self.receipts.append_async(&accepted).await {
            if let Start::Running(mut handle) = started {
                handle.cancel();
                let _ = handle.wait().await;
            }
            self.fleet.release(&executor);
            self.remove_work_dir(&key);
            let reply = JobReply::Failed {
                reason: format!("the miner could not store its receipt: {e}"),
                receipt: None,
            };
            self.jobs().end(key, reply.clone());
            return reply;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let handle = match started {
                Start::Running(handle) => Ok(handle),
                Start::AfterInputs(backend, spec) => {
                    me.fetch_and_start(&request, backend, *spec).await
                }
            };
            let reply = match handle {
                Ok(mut handle) => {
                    if let Some(c) = handle.take_canceller() {
                        me.lock_cancels().insert(key.clone(), c);
                    }
                    // Its lines, for the validator to read as they come
                    // (JobLogs); they end when the job's output closes.
                    me.logs.open(&key);
                    while let Some(line) = handle.next_log().await {
                        me.logs.push(&key, line);
                    }
                    let result = handle.wait().await;
                    me.logs.close(&key);
                    me.lock_cancels().remove(&key);
                    me.finish(&request, &executor, result, &key).await
                }
                Err(reason) => JobReply::Failed {
                    reason,
                    receipt: None,
                },
            };
            me.fleet.release(&executor);
            me.remove_work_dir(&key);
            me.jobs().end(key, reply);
        });
        JobReply::Accepted { receipt: accepted }
    }

    /// Forgets a job whose id was claimed but that did not start, and its
    /// work directory.
    fn forget_job(&self, key: &JobKey) {
        self.jobs().remove(key);
        self.remove_work_dir(key);
    }

    /// The job's own work directory (created empty, mode 0700), under
    /// `STATE/work/`, named by a digest of the validator and job id.
    fn work_dir(&self, key: &JobKey) -> std::io::Result<PathBuf> {
        let dir = self.work_path(key);
        let _ = std::fs::remove_dir_all(&dir);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
        builder.create(&dir)?;
        Ok(dir)
    }

    fn work_path(&self, key: &JobKey) -> PathBuf {
        use sha2::Digest as _;
        let name = hex::encode(sha2::Sha256::digest(format!("{}\n{}", key.0, key.1)));
        self.work_root.join(&name[..32])
    }

    fn remove_work_dir(&self, key: &JobKey) {
        let dir = self.work_path(key);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a job's work directory");
        }
    }

    /// Downloads the request's inputs into the job's volume, then starts it.
    async fn fetch_and_start(
        &self,
        request: &JobRequest,
        backend: Arc<dyn crate::executor::ExecutorBackend>,
        spec: JobSpec,
    ) -> Result<crate::executor::JobHandle, String> {
        let Some(dir) = spec.volume.clone() else {
            return Err("the job has no work directory".into());
        };
        for (i, input) in request.inputs.iter().enumerate() {
            download(input, i, &dir, &self.volumes)
                .await
                .map_err(|e| e.to_string())?;
        }
        backend.run(spec).await.map_err(|e| e.to_string())
    }

    async fn finish(
        &self,
        request: &JobRequest,
        executor: &str,
        result: Result<Outcome, ExecutorError>,
        key: &JobKey,
    ) -> JobReply {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                return JobReply::Failed {
                    reason: e.to_string(),
                    receipt: None,
                };
            }
        };
        let mut upload_failed = None;
        let output_sha256 = if !request.outputs.is_empty() {
            let dir = self.work_path(key);
            let mut files = Vec::new();
            for (i, output) in request.outputs.iter().enumerate() {
                match upload(output, i, &dir, &self.volumes).await {
                    Ok(sha) => files.push((output.path.clone(), sha)),
                    Err(e) => {
                        upload_failed = Some(e.to_string());
                        break;
                    }
                }
            }
            upload_failed.is_none().then(|| outputs_digest(&files))
        } else {
            match &request.output_dir {
                Some(dir) => self.digest_outputs(executor, dir).await,
                None => None,
            }
        };
        let receipt = Receipt::sign(
            request,
            ReceiptKind::finished(&outcome, output_sha256.clone()),
            (self.clock)(),
            &self.miner,
        );
        let stored = self.receipts.append_async(&receipt).await;
        let reason = reason_of(&outcome.status, request.timeout_s).or(upload_failed);
        let reply = match reason {
            None => JobReply::Finished {
                exit_code: match outcome.status {
                    JobStatus::Exited { code } => code,
                    _ => -1,
                },
                stdout_sha256: outcome.stdout.sha256.clone(),
                stderr_sha256: outcome.stderr.sha256.clone(),
                output_sha256,
                receipt: receipt.clone(),
            },
            Some(reason) => JobReply::Failed {
                reason,
                receipt: Some(receipt.clone()),
            },
        };
        match stored {
            Ok(()) => reply,
            Err(e) => JobReply::Failed {
                reason: format!("the miner could not store its receipt: {e}"),
                receipt: Some(receipt),
            },
        }
    }

    /// The output digest, computed on the executor that ran the job.
    async fn digest_outputs(&self, executor: &str, dir: &str) -> Option<String> {
        let backend = self.fleet.backend(executor)?;
        let job = JobSpec::command(
            "sh",
            [
                "-c",
                r#"cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum"#,
                "sh",
                dir,
            ],
            Duration::from_secs(300),
        );
        let outcome = backend.run(job).await.ok()?.wait().await.ok()?;
        outcome
            .status
            .success()
            .then(|| outcome.stdout.sha256.clone())
    }

    fn lock_cancels(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<JobKey, tokio::sync::oneshot::Sender<()>>> {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// JobCancel: kills the caller's running job `job_id`. Ids are looked up
    /// in the caller's own namespace only.
    pub fn cancel(&self, job_id: &str, caller: &AccountId) -> CancelReply {
        let key = (*caller, job_id.to_owned());
        if let Some(tx) = self.lock_cancels().remove(&key) {
            let _ = tx.send(());
            return CancelReply::Cancelled;
        }
        if self.jobs().contains(&key) {
            CancelReply::NotRunning
        } else {
            CancelReply::Unknown
        }
    }

    /// JobLogs: the caller's job `job_id`'s output lines from `offset`.
    pub fn logs(&self, job_id: &str, offset: u64, caller: &AccountId) -> LogsReply {
        self.logs.read(&(*caller, job_id.to_owned()), offset)
    }

    /// JobQuery: the job's state, for the validator that submitted it.
    /// Ids are looked up in the caller's own namespace only.
    pub fn query(&self, job_id: &str, caller: &AccountId) -> JobReply {
        match self.jobs().get(&(*caller, job_id.to_owned())) {
            None => JobReply::Unknown,
            Some(JobState::Running) => JobReply::Running,
            Some(JobState::Ended(reply)) => (**reply).clone(),
        }
    }

    async fn persist(&self, allocations: &[AllocationRecord]) -> Result<(), String> {
        let file = AllocationFile {
            version: 1,
            allocations: allocations.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        let path = self.allocations_path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, Access::Private))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Allocate: reserve an executor for `caller`, let its key in, persist,
    /// and seal the login details to it.
    pub async fn allocate(&self, request: &Allocate, caller: &AccountId) -> AllocateReply {
        let declined = |reason, detail: String| AllocateReply::Declined { reason, detail };
        if !(self.allowed)(caller) {
            return declined(
                DeclineReason::ValidatorBlacklisted,
                "the validator is not served".into(),
            );
        }
        let key = match SshPublicKey::parse(&request.ssh_public_key) {
            Ok(k) => k,
            Err(e) => return declined(DeclineReason::Invalid, e.to_string()),
        };
        let duration = Duration::from_secs(request.duration_s);
        if duration.is_zero() || duration > MAX_ALLOCATION {
            return declined(
                DeclineReason::Invalid,
                format!(
                    "duration_s must be 1 to {} seconds",
                    MAX_ALLOCATION.as_secs()
                ),
            );
        }
        // Check the sealing key before reserving anything.
        let sealing_key = match SealingKey::parse(&request.sealing_key) {
            Ok(k) => k,
            Err(e) => return declined(DeclineReason::Invalid, e.to_string()),
        };
        let class = request.hardware_class.as_deref();
        let offer = self.fleet.offer(class);
        if !offer.class_supported {
            return declined(
                DeclineReason::UnsupportedClass,
                format!("no executor of class {}", class.unwrap_or("any")),
            );
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut live = self.allocations.lock().await;
        let (executor, backend) = match self.fleet.reserve(&request.requirements, class, &id).await
        {
            Ok(x) => x,
            Err(ExecutorError::Unmet(why)) => {
                return declined(DeclineReason::UnsupportedClass, why);
            }
            Err(e) => return declined(DeclineReason::Busy, e.to_string()),
        };
        let undo = |why: String| {
            self.fleet.unallocate(&executor);
            declined(DeclineReason::UnsupportedClass, why)
        };
        let grant = AccessGrant {
            allocation_id: id.clone(),
            key: key.clone(),
        };
        let details = match backend.grant_access(&grant).await {
            Ok(d) => d,
            Err(e) => return undo(format!("{executor}: {e}")),
        };
        let sealed = match seal_details(&details, &sealing_key) {
            Ok(s) => s,
            Err(e) => {
                let _ = backend.revoke_access(&id).await;
                return undo(e.to_string());
            }
        };
        let now = (self.clock)();
        let record = AllocationRecord {
            allocation_id: id.clone(),
            validator: *caller,
            executor: executor.clone(),
            ssh_public_key: key,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(duration.as_millis() as u64),
        };
        live.push(record.clone());
        if let Err(e) = self.persist(&live).await {
            live.pop();
            let _ = backend.revoke_access(&id).await;
            return undo(format!("the miner could not persist the allocation: {e}"));
        }
        AllocateReply::Allocated {
            allocation_id: id,
            executor,
            expires_at_ms: record.expires_at_ms,
            sealed_details: sealed,
        }
    }

    /// Revokes and forgets allocation `index` of `live`, persisting the rest.
    async fn release_allocation(
        &self,
        live: &mut Vec<AllocationRecord>,
        index: usize,
    ) -> Result<(), String> {
        let a = live[index].clone();
        if let Some(backend) = self.fleet.backend(&a.executor) {
            backend
                .revoke_access(&a.allocation_id)
                .await
                .map_err(|e| e.to_string())?;
        }
        live.remove(index);
        if let Err(e) = self.persist(live).await {
            live.insert(index, a);
            return Err(format!("could not persist: {e}"));
        }
        self.fleet.unallocate(&a.executor);
        Ok(())
    }

    /// Deallocate: only the validator that holds it may end it.
    pub async fn deallocate(
        &self,
        allocation_id: &str,
        caller: &AccountId,
    ) -> Result<DeallocateReply, String> {
        let mut live = self.allocations.lock().await;
        let Some(i) = live
            .iter()
            .position(|a| a.allocation_id == allocation_id && &a.validator == caller)
        else {
            return Ok(DeallocateReply::Unknown);
        };
        self.release_allocation(&mut live, i).await?;
        Ok(DeallocateReply::Deallocated)
    }

    /// Revokes every allocation that has expired by now.
    pub async fn sweep(&self) -> Sweep {
        let now = (self.clock)();
        let mut live = self.allocations.lock().await;
        let mut out = Sweep::default();
        let mut i = 0;
        while i < live.len() {
            if live[i].expires_at_ms > now {
                i += 1;
                continue;
            }
            let id = live[i].allocation_id.clone();
            match self.release_allocation(&mut live, i).await {
                Ok(()) => out.expired.push(id),
                Err(e) => {
                    out.failed.push((id, e));
                    i += 1;
                }
            }
        }
        out
    }

    /// Serves [`JobSubmit`], [`JobQuery`], [`Allocate`] and [`Deallocate`].
    ///
    /// A submission, an allocation and a deallocation each run to their end
    /// in their own task: the axon drops a handler at the caller's timeout,
    /// and one dropped half-way would leave an executor reserved, a key
    /// installed or a container running with no record of it.
    pub fn routes(self: &Arc<Self>, builder: AxonBuilder) -> AxonBuilder {
        let (a, b, c, d, e, f) = (
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
        );
        let detached = |e: tokio::task::JoinError| HandlerError::internal(e.to_string());
        builder
            .route(move |mut s: JobSubmit, who: Caller| {
                let me = a.clone();
                async move {
                    let ticket = me.in_flight.enter(&who.hotkey).map_err(busy)?;
                    let request = s.request.clone();
                    let reply = tokio::spawn(async move {
                        let _ticket = ticket;
                        me.submit(request, &who.hotkey).await
                    })
                    .await
                    .map_err(detached)?;
                    s.reply = Some(reply);
                    Ok(s)
                }
            })
            .route(move |mut q: JobQuery, who: Caller| {
                let me = b.clone();
                async move {
                    q.reply = Some(me.query(&q.job_id, &who.hotkey));
                    Ok(q)
                }
            })
            .route(move |mut q: JobCancel, who: Caller| {
                let me = e.clone();
                async move {
                    q.reply = Some(me.cancel(&q.job_id, &who.hotkey));
                    Ok(q)
                }
            })
            .route(move |mut q: JobLogs, who: Caller| {
                let me = f.clone();
                async move {
                    q.reply = Some(me.logs(&q.job_id, q.offset, &who.hotkey));
                    Ok(q)
                }
            })
            .route(move |mut r: Allocate, who: Caller| {
                let me = c.clone();
                async move {
                    let ticket = me.in_flight.enter(&who.hotkey).map_err(busy)?;
                    let request = r.clone();
                    let reply = tokio::spawn(async move {
                        let _ticket = ticket;
                        me.allocate(&request, &who.hotkey).await
                    })
                    .await
                    .map_err(detached)?;
                    r.reply = Some(reply);
                    Ok(r)
                }
            })
            .route(move |mut r: Deallocate, who: Caller| {
                let me = d.clone();
                async move {
                    let ticket = me.in_flight.enter(&who.hotkey).map_err(busy)?;
                    let id = r.allocation_id.clone();
                    let reply = tokio::spawn(async move {
                        let _ticket = ticket;
                        me.deallocate(&id, &who.hotkey).await
                    })
                    .await
                    .map_err(detached)?
                    .map_err(HandlerError::internal)?;
                    r.reply = Some(reply);
                    Ok(r)
                }
            })
    }
}
