//! What a validator checks besides the proof of work, once per epoch: the
//! miner's `SpecsQuery`, a small benchmark job per hardware class through
//! `JobSubmit`/`JobQuery` (receipts checked), and, on miners that rent
//! executors, an allocation it logs in to over SSH and gives back.
//!
//! Every check ends in a [`Check`]: passed, not applicable (the miner is
//! busy or does not offer it, which costs nothing), or failed with the
//! reason; a failure that the protocol blames on the miner
//! ([`Check::penalises`]) sets its penalty ([`Penalties::penalize`]).
//!
//! [`Penalties::penalize`]: crate::score::Penalties::penalize

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use crate::dendrite::{AxonTarget, Dendrite};
use crate::executor::access::{self, LoginDetails, SshPublicKey};
use crate::market::client::{
    AllocateOutcome, ClientError, allocate, deallocate, query_job, submit_job,
};
use crate::market::jobs::{DeclineReason, JobRequest, ReceiptKind, ReceiptStore};
use crate::market::server::unix_millis;
use crate::market::wire::{Allocate, DeallocateReply, JobReply};
use crate::protocol::SpecsQuery;
use crate::protocol::clip_text;
use crate::score::{GpuClaim, JobLedger, Measurements, MinerReport, Penalties};
use crate::wallet::Keypair;
use crate::{Block, Uid};

use super::RoleError;

/// A benchmark job the validator sends each miner once per epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchmarkJob {
    /// Hardware class asked for (as miners name their executors' classes).
    pub class: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// The miner's limit on the job; the validator waits this plus a grace.
    pub timeout: Duration,
    /// When set, the job passes only if its standard output is exactly
    /// this. In `command` and here, `{nonce}` stands for a fresh random
    /// value per job, so an output that depends on it cannot be made up
    /// without running the job (`["sh", "-c", "echo {nonce}"]` with
    /// `"{nonce}\n"`).
    pub expect_stdout: Option<String>,
}

/// The placeholder for a probe job's fresh random value.
pub const NONCE: &str = "{nonce}";

/// The SSH login a validator tries on an allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationCheck {
    key: PathBuf,
    public_key: SshPublicKey,
    /// Remote command run once logged in; exit 0 passes.
    pub command: Vec<String>,
    /// When set, the command's first line of output must be this.
    pub expect: Option<String>,
    /// Hardware class asked for (any when `None`).
    pub class: Option<String>,
    /// How long the allocation is asked for (the validator gives it back
    /// right after the check).
    pub duration: Duration,
    /// Bound on the whole login and command.
    pub login_timeout: Duration,
}

impl AllocationCheck {
    /// A check that logs in with the OpenSSH private key at `key` (its
    /// public half at `KEY.pub`) and runs `command`.
    pub fn new(
        key: impl Into<PathBuf>,
        command: Vec<String>,
    ) -> Result<AllocationCheck, RoleError> {
        let key = key.into();
        let setting = |reason: String| RoleError::Setting {
            setting: "probe.allocation.ssh_key",
            reason,
        };
        if command.is_empty() {
            return Err(RoleError::Setting {
                setting: "probe.allocation.command",
                reason: "must name a program".into(),
            });
        }
        let public = public_key_path(&key);
        let text =
            crate::fs::read_limited(&public, 16 * 1024).map_err(|source| RoleError::Read {
                setting: "probe.allocation.ssh_key",
                path: public.clone(),
                source,
            })?;
        let text = String::from_utf8(text)
            .map_err(|_| setting(format!("{} is not text", public.display())))?;
        let public_key = SshPublicKey::parse(&text)
            .map_err(|e| setting(format!("{}: {e}", public.display())))?;
        if !key.is_file() {
            return Err(setting(format!("{} is not a file", key.display())));
        }
        Ok(AllocationCheck {
            key,
            public_key,
            command,
            expect: None,
            class: None,
            duration: Duration::from_secs(600),
            login_timeout: Duration::from_secs(30),
        })
    }

    /// The private key's path.
    pub fn key(&self) -> &Path {
        &self.key
    }
}

/// `KEY.pub` beside an OpenSSH private key.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// What a validator probes each epoch, besides the proof of work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeSettings {
    /// Ask `SpecsQuery` (the GPUs the `gpu-table` scorer prices).
    pub specs: bool,
    /// Benchmark jobs, one per class.
    pub jobs: Vec<BenchmarkJob>,
    /// The allocation login check, if any.
    pub allocation: Option<AllocationCheck>,
    /// Where the miners' job receipts are kept.
    pub receipts: PathBuf,
    /// Bound on each call.
    pub call_timeout: Duration,
    /// Between `JobQuery` polls.
    pub poll: Duration,
}

impl ProbeSettings {
    /// Specs only, receipts kept in `receipts`.
    pub fn new(receipts: impl Into<PathBuf>) -> ProbeSettings {
        ProbeSettings {
            specs: true,
            jobs: Vec::new(),
            allocation: None,
            receipts: receipts.into(),
            call_timeout: Duration::from_secs(20),
            poll: Duration::from_secs(1),
        }
    }

    /// Adds a benchmark job.
    pub fn job(mut self, job: BenchmarkJob) -> ProbeSettings {
        self.jobs.push(job);
        self
    }

    /// Sets the allocation check.
    pub fn allocation(mut self, check: AllocationCheck) -> ProbeSettings {
        self.allocation = Some(check);
        self
    }

    /// Sets the `JobQuery` poll interval.
    pub fn poll(mut self, poll: Duration) -> ProbeSettings {
        self.poll = poll;
        self
    }

    /// Checks the settings (called by the validator's builder).
    pub fn check(&self) -> Result<(), RoleError> {
        let bad = |setting, reason: &str| {
            Err(RoleError::Setting {
                setting,
                reason: reason.into(),
            })
        };
        let mut classes = std::collections::BTreeSet::new();
        for j in &self.jobs {
            if j.class.is_empty() || j.command.is_empty() {
                return bad("probe.jobs", "each job needs a class and a command");
            }
            if j.timeout.is_zero() || j.timeout > Duration::from_secs(3600) {
                return bad("probe.jobs", "a job's timeout must be 1 s to 1 h");
            }
            if !classes.insert(j.class.as_str()) {
                return bad("probe.jobs", "one job per class");
            }
        }
        if self.call_timeout.is_zero() || self.poll.is_zero() {
            return bad("probe", "the call timeout and the poll must be positive");
        }
        if let Some(a) = &self.allocation
            && (a.duration.as_secs() < 60 || a.login_timeout.is_zero())
        {
            return bad(
                "probe.allocation",
                "the duration must be at least 60 s and the login timeout positive",
            );
        }
        Ok(())
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Check {
    /// It worked; validator-timed seconds.
    Passed {
        /// Seconds from submission (or allocation) to the end.
        seconds: f64,
    },
    /// Not this miner's to pass: busy, no such class, not offered.
    NotApplicable {
        /// Why it does not apply, for the log.
        reason: String,
    },
    /// It failed.
    Failed {
        /// Why, for the log.
        reason: String,
        /// Whether the miner is penalised for it.
        penalised: bool,
    },
}

impl Check {
    /// Whether this failure costs the miner a penalty.
    pub fn penalises(&self) -> bool {
        matches!(
            self,
            Check::Failed {
                penalised: true,
                ..
            }
        )
    }

    fn blame(reason: impl Into<String>) -> Check {
        Check::Failed {
            reason: clip_text(reason.into(), MAX_CHECK_REASON),
            penalised: true,
        }
    }

    fn unlucky(reason: impl Into<String>) -> Check {
        Check::Failed {
            reason: clip_text(reason.into(), MAX_CHECK_REASON),
            penalised: false,
        }
    }

    fn not_applicable(reason: impl Into<String>) -> Check {
        Check::NotApplicable {
            reason: clip_text(reason.into(), MAX_CHECK_REASON),
        }
    }
}

/// Longest reason a [`Check`] keeps (longer ones are cut): reasons quote
/// what a miner sent, and reach the logs and the probe records.
pub const MAX_CHECK_REASON: usize = 1024;

/// One miner's probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Uid of the miner probed.
    pub uid: u16,
    /// Its hotkey, SS58.
    pub hotkey: String,
    /// GPUs from `SpecsQuery` (`None`: not asked, or no answer).
    pub gpus: Option<Vec<GpuClaim>>,
    /// Each benchmark job: its class, its check, and (when accepted) the
    /// job id and the validator's wall-clock seconds it ran.
    pub jobs: Vec<JobCheck>,
    /// The allocation check, when configured.
    pub allocation: Option<Check>,
}

impl Probe {
    /// Whether any check penalises the miner, and the first such reason.
    pub fn penalty(&self) -> Option<&str> {
        self.jobs
            .iter()
            .map(|j| &j.check)
            .chain(self.allocation.as_ref())
            .find_map(|c| match c {
                Check::Failed {
                    reason,
                    penalised: true,
                } => Some(reason.as_str()),
                _ => None,
            })
    }
}

/// A benchmark job's check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobCheck {
    /// The class asked for.
    pub class: String,
    /// The job id (unique per validator).
    pub job_id: String,
    /// How the check came out: passed, not applicable or failed.
    pub check: Check,
    /// Unix seconds (validator clock) the job was accepted and ended, for
    /// the job ledger; `None` unless it passed.
    pub ran: Option<(u64, u64)>,
    /// Whether the miner declined while it had a free executor.
    pub declined_with_capacity: bool,
}

/// What a whole probe did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProbeReport {
    /// The block it started at.
    pub block: Block,
    /// One entry per miner probed, by uid.
    pub miners: Vec<Probe>,
}

/// Most GPU models kept from one miner's `SpecsQuery` answer.
pub const MAX_GPU_MODELS: usize = 16;
/// Longest GPU model name kept (longer ones are cut).
pub const MAX_GPU_MODEL_LEN: usize = 64;

/// GPUs by model from a `SpecsQuery` answer: the first [`MAX_GPU_MODELS`]
/// models listed, names cut to [`MAX_GPU_MODEL_LEN`] bytes, so that what a
/// miner claims stays small in the validator's records.
pub fn gpu_claims(specs: &SpecsQuery) -> Vec<GpuClaim> {
    let mut by_model: BTreeMap<String, u32> = BTreeMap::new();
    for g in specs.gpus.iter().flatten() {
        let model = clip_text(g.name.trim().to_owned(), MAX_GPU_MODEL_LEN);
        if model.is_empty() || (by_model.len() >= MAX_GPU_MODELS && !by_model.contains_key(&model))
        {
            continue;
        }
        let count = by_model.entry(model).or_default();
        *count = count.saturating_add(1);
    }
    by_model
        .into_iter()
        .map(|(model, count)| GpuClaim { model, count })
        .collect()
}

/// Probes one miner; `tag` makes its job ids unique (a fresh random hex).
pub(super) async fn probe_miner(
    settings: &ProbeSettings,
    dendrite: &Dendrite,
    keypair: &Keypair,
    receipts: &ReceiptStore,
    uid: Uid,
    target: &AxonTarget,
    tag: &str,
) -> Probe {
    let gpus = if settings.specs {
        let r = dendrite
            .call(target, SpecsQuery::default(), settings.call_timeout)
            .await;
        r.synapse
            .filter(|_| r.status == 200)
            .map(|s| gpu_claims(&s))
    } else {
        None
    };
    let mut jobs = Vec::new();
    for (i, job) in settings.jobs.iter().enumerate() {
        let job_id = format!("probe-{tag}-{i}");
        jobs.push(run_job(settings, dendrite, keypair, receipts, target, job, job_id).await);
    }
    let allocation = match &settings.allocation {
        Some(a) => Some(allocation_check(settings, dendrite, target, a).await),
        None => None,
    };
    Probe {
        uid: uid.0,
        hotkey: target.hotkey.to_ss58(),
        gpus,
        jobs,
        allocation,
    }
}

async fn run_job(
    settings: &ProbeSettings,
    dendrite: &Dendrite,
    keypair: &Keypair,
    receipts: &ReceiptStore,
    target: &AxonTarget,
    job: &BenchmarkJob,
    job_id: String,
) -> JobCheck {
    let mut out = JobCheck {
        class: job.class.clone(),
        job_id: job_id.clone(),
        check: Check::unlucky("not run"),
        ran: None,
        declined_with_capacity: false,
    };
    let nonce = job_id
        .rsplit_once('-')
        .map_or(job_id.as_str(), |(head, _)| head);
    let nonce = nonce.strip_prefix("probe-").unwrap_or(nonce).to_owned();
    let expected = job
        .expect_stdout
        .as_ref()
        .map(|e| crate::executor::Captured::of(e.replace(NONCE, &nonce).as_bytes(), 0).sha256);
    let request = JobRequest {
        job_id: job_id.clone(),
        validator: keypair.account(),
        hardware_class: job.class.clone(),
        timeout_s: job.timeout.as_secs().max(1),
        command: job
            .command
            .iter()
            .map(|a| a.replace(NONCE, &nonce))
            .collect(),
        requirements: Default::default(),
        output_dir: None,
        image: None,
        env: Default::default(),
        inputs: vec![],
        outputs: vec![],
        issued_at_ms: unix_millis(),
        signature: String::new(),
    }
    .sign(keypair);
    let t = Instant::now();
    let started = unix_millis() / 1000;
    let reply = match submit_job(dendrite, target, request, receipts, settings.call_timeout).await {
        Ok(r) => r,
        Err(e) => {
            out.check = client_failure("jobs", &e);
            return out;
        }
    };
    match reply {
        JobReply::Accepted { .. } => {}
        JobReply::Declined { reason, detail } => {
            out.check = declined(reason, &detail);
            out.declined_with_capacity = reason == DeclineReason::Unprofitable;
            return out;
        }
        other => {
            out.check = Check::blame(format!("answered a submission with {}", other.state()));
            return out;
        }
    }
    // Poll until it ends, or its timeout and a grace have passed.
    let deadline = job.timeout + settings.call_timeout + Duration::from_secs(5);
    let mut last_error: Option<ClientError> = None;
    loop {
        tokio::time::sleep(settings.poll).await;
        if t.elapsed() > deadline {
            let why = format!("the job did not end within {} s", deadline.as_secs());
            out.check = match last_error {
                // Our own store failed: not the miner's doing.
                Some(e @ ClientError::Store(_)) => Check::unlucky(format!("{why}: {e}")),
                Some(e) => Check::blame(format!("{why} (last answer: {e})")),
                None => Check::blame(why),
            };
            return out;
        }
        let polled = query_job(dendrite, target, &job_id, receipts, settings.call_timeout).await;
        let reply = match polled {
            Ok(r) => r,
            Err(e @ ClientError::BadAnswer(_)) => {
                out.check = Check::blame(e.to_string());
                return out;
            }
            // Unreachable for a moment: poll again until the deadline, and
            // say what the last failure was if it comes.
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        match reply {
            JobReply::Running | JobReply::Accepted { .. } => continue,
            JobReply::Finished {
                exit_code: 0,
                stdout_sha256,
                ..
            } if expected.as_ref().is_some_and(|e| *e != stdout_sha256) => {
                out.check = Check::blame(
                    "the job's output is not what the command prints (signed digest differs)",
                );
                return out;
            }
            JobReply::Finished {
                exit_code: 0,
                receipt,
                ..
            } => {
                out.check = Check::Passed {
                    seconds: t.elapsed().as_secs_f64(),
                };
                // The client checked the receipt is a `Finished` one.
                let signed_ms = match receipt.kind {
                    ReceiptKind::Finished { duration_ms, .. } => duration_ms,
                    ReceiptKind::Accepted => 0,
                };
                out.ran = Some(credited(
                    started,
                    unix_millis() / 1000,
                    job.timeout,
                    signed_ms,
                ));
                return out;
            }
            JobReply::Finished { exit_code, .. } => {
                out.check = Check::unlucky(format!("the job exited with {exit_code}"));
                return out;
            }
            JobReply::Failed { reason, .. } => {
                out.check = Check::blame(format!("the job failed: {reason}"));
                return out;
            }
            JobReply::Unknown => {
                out.check = Check::blame("the miner lost an accepted job");
                return out;
            }
            JobReply::Declined { .. } => {
                out.check = Check::blame("the miner declined a job it had accepted");
                return out;
            }
        }
    }
}

/// A decline: a penalty only when the miner had a free executor of the
/// class and refused anyway ([`DeclineReason::Unprofitable`]).
fn declined(reason: DeclineReason, detail: &str) -> Check {
    match reason {
        DeclineReason::Unprofitable => Check::blame(format!(
            "declined with a free executor (unprofitable): {detail}"
        )),
        DeclineReason::Busy | DeclineReason::UnsupportedClass => {
            Check::not_applicable(format!("declined ({reason:?}): {detail}"))
        }
        DeclineReason::ValidatorBlacklisted | DeclineReason::Invalid => {
            Check::unlucky(format!("declined ({reason:?}): {detail}"))
        }
    }
}

async fn allocation_check(
    settings: &ProbeSettings,
    dendrite: &Dendrite,
    target: &AxonTarget,
    a: &AllocationCheck,
) -> Check {
    let t = Instant::now();
    let secret = access::new_sealing_key();
    let ask = Allocate {
        ssh_public_key: String::from(a.public_key.clone()),
        duration_s: a.duration.as_secs(),
        hardware_class: a.class.clone(),
        ..Allocate::default()
    };
    let allocation = match allocate(dendrite, target, ask, &secret, settings.call_timeout).await {
        Ok(AllocateOutcome::Allocated(x)) => x,
        Ok(AllocateOutcome::Declined { reason, detail }) => return declined(reason, &detail),
        Err(e) => return client_failure("allocations", &e),
    };
    let login = login(a, &allocation.login).await;
    // Always give it back, whatever the login did.
    let back = deallocate(
        dendrite,
        target,
        &allocation.allocation_id,
        settings.call_timeout,
    )
    .await;
    if !matches!(back, Ok(DeallocateReply::Deallocated)) {
        tracing::warn!(
            miner = %target.hotkey.to_ss58(),
            allocation_id = allocation.allocation_id,
            answer = ?back,
            "could not give an allocation back; it expires on its own"
        );
    }
    match login {
        Ok(()) => Check::Passed {
            seconds: t.elapsed().as_secs_f64(),
        },
        Err(Login::Miner(reason)) => Check::blame(format!("allocation login failed: {reason}")),
        Err(Login::Ours(reason)) => Check::unlucky(format!("allocation login not tried: {reason}")),
    }
}

/// A failed call to a miner, as a check: a wrong answer is the miner's
/// fault; a synapse it does not serve (404), a refusal of this validator
/// (403), a rate limit (429) or no answer at all (503, 408: the network)
/// cost nothing; any other error status it answered with is its fault; a
/// failure of our own receipt store is not.
fn client_failure(what: &str, e: &ClientError) -> Check {
    match e {
        ClientError::BadAnswer(_) => Check::blame(e.to_string()),
        ClientError::Store(_) => Check::unlucky(e.to_string()),
        ClientError::Call { status, .. }
            if e.is_unreachable() || matches!(status, 403 | 404 | 429) =>
        {
            Check::not_applicable(format!("no {what} served: {e}"))
        }
        _ => Check::blame(format!("{what}: {e}")),
    }
}

/// Why a login failed: the miner's side, or ours (no `ssh` here).
enum Login {
    Miner(String),
    Ours(String),
}

/// A host name or address the miner sent, safe to put on `ssh`'s command
/// line (it cannot start an option).
fn check_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
    ok.then_some(())
        .ok_or_else(|| format!("the host {host:?} is not a host name or address"))
}

fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    ok.then_some(())
        .ok_or_else(|| format!("the user {user:?} is not a user name"))
}

/// At most `max` characters of `s`, with `…` when cut.
fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Logs in with the system's `ssh` client and runs the check's command.
/// The miner sends no host key, so it is not checked: the login proves
/// that the key was let in, and public-key authentication reveals nothing
/// secret to whoever answers.
async fn login(a: &AllocationCheck, d: &LoginDetails) -> Result<(), Login> {
    check_host(&d.host).map_err(Login::Miner)?;
    check_user(&d.user).map_err(Login::Miner)?;
    let connect = a.login_timeout.as_secs().clamp(1, 60);
    let mut cmd = tokio::process::Command::new("ssh");
    // No user or system ssh_config: the host is the miner's choice, and an
    // operator's `Host *` block (agent forwarding, a proxy, a control
    // socket) must not apply to it.
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(&a.key)
        .args([
            "-o",
            "ForwardAgent=no",
            "-o",
            "ForwardX11=no",
            "-o",
            "ClearAllForwardings=yes",
            "-o",
            "ProxyCommand=none",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "PermitLocalCommand=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
        ])
        .arg(format!("ConnectTimeout={connect}"))
        .arg("-p")
        .arg(d.port.to_string())
        .arg(format!("{}@{}", d.user, d.host))
        .arg("--")
        .args(&a.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Login::Ours(format!("cannot run ssh: {e}")))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(s) = out.as_mut() {
                let _ = s.take(64 * 1024).read_to_end(&mut o).await;
                // Drain the rest, so a chatty command never blocks on a full pipe.
                let _ = tokio::io::copy(s, &mut tokio::io::sink()).await;
            }
        };
        let read_err = async {
            if let Some(s) = err.as_mut() {
                let _ = s.take(64 * 1024).read_to_end(&mut e).await;
                let _ = tokio::io::copy(s, &mut tokio::io::sink()).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, o, e)
    };
    let (status, o, e) = tokio::time::timeout(a.login_timeout, run)
        .await
        .map_err(|_| Login::Miner(format!("no answer within {} s", a.login_timeout.as_secs())))?;
    let status = status.map_err(|e| Login::Ours(format!("ssh: {e}")))?;
    if !status.success() {
        let why = String::from_utf8_lossy(&e);
        let first = why.lines().next().unwrap_or("").trim();
        return Err(Login::Miner(format!(
            "ssh exited with {}: {}",
            status.code().map_or("a signal".into(), |c| c.to_string()),
            short(first, 200)
        )));
    }
    if let Some(want) = &a.expect {
        let got = String::from_utf8_lossy(&o);
        let first = got.lines().next().unwrap_or("").trim();
        if first != want {
            return Err(Login::Miner(format!(
                "the check printed {:?}, not {want:?}",
                short(first, 200)
            )));
        }
    }
    Ok(())
}

/// What the probes left for scoring, kept in the validator's store: the
/// GPUs each miner reported, the job ledger, and the penalties.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct ProbeState {
    /// uid → (hotkey, GPUs) from the last `SpecsQuery` answer.
    pub specs: BTreeMap<u16, (String, Vec<GpuClaim>)>,
    pub ledger: JobLedger,
    pub penalties: Penalties,
}

impl ProbeState {
    pub fn new(penalty_decay: f64) -> Result<ProbeState, RoleError> {
        Ok(ProbeState {
            specs: BTreeMap::new(),
            ledger: JobLedger::default(),
            penalties: Penalties::new(penalty_decay).map_err(|e| RoleError::Setting {
                setting: "scoring.penalty_decay",
                reason: e.to_string(),
            })?,
        })
    }

    /// Folds one miner's probe in: its GPUs, its jobs into the ledger (as
    /// worked by validator `me`), a decline with capacity, a penalty.
    pub fn apply(&mut self, me: Uid, p: &Probe) {
        let uid = Uid(p.uid);
        if let Some(gpus) = &p.gpus {
            self.specs.insert(p.uid, (p.hotkey.clone(), gpus.clone()));
        }
        for j in &p.jobs {
            if let Some((start, end)) = j.ran {
                // Ids carry a fresh random tag: a clash means a replayed
                // probe, which must not count twice.
                if self
                    .ledger
                    .start(&j.job_id, uid, me, &j.class, start)
                    .is_ok()
                {
                    let _ = self.ledger.finish(&j.job_id, end);
                }
            }
            if j.declined_with_capacity {
                self.ledger.decline(uid, 1);
            }
        }
        if let Some(reason) = p.penalty() {
            tracing::warn!(uid = p.uid, miner = %p.hotkey, reason, "probe failed: penalised");
            self.penalties.penalize(uid);
        }
    }

    /// Adds what the probes measured to `reports` (one per uid): GPUs of
    /// miners whose hotkey is unchanged, worked seconds and declines.
    pub fn fill(
        &self,
        reports: &mut BTreeMap<u16, MinerReport>,
        hotkeys: &BTreeMap<u16, String>,
        now: u64,
    ) {
        for (uid, (hotkey, gpus)) in &self.specs {
            if hotkeys.get(uid) == Some(hotkey) && !gpus.is_empty() {
                entry(reports, *uid).gpus = gpus.clone();
            }
        }
        for r in self.ledger.measurements(now).miners {
            if !hotkeys.contains_key(&r.uid.0) {
                continue;
            }
            let e = entry(reports, r.uid.0);
            e.executors = r.executors;
            e.declined_jobs = r.declined_jobs;
        }
    }

    /// Closes the epoch: penalties decay (failed proofs in `m` set theirs),
    /// finished jobs and declines are dropped.
    pub fn settle(&mut self, m: &Measurements, now: u64) {
        self.penalties.advance(m);
        self.ledger.settle(now);
    }
}

fn entry(reports: &mut BTreeMap<u16, MinerReport>, uid: u16) -> &mut MinerReport {
    reports.entry(uid).or_insert_with(|| MinerReport {
        uid: Uid(uid),
        ..MinerReport::default()
    })
}

/// The seconds a passed benchmark job is credited, `(start, end)`: from its
/// acceptance to when the validator saw it finished, but never more than its
/// timeout, nor than the run time the miner signed in its `Finished` receipt
/// (`signed_ms`, rounded up to the second). The miner decides when it
/// answers `Finished`, and its executor stops the job at the timeout: a
/// miner that holds back its answer gains nothing unless it also signs a
/// longer run than the job's, which its receipt then shows.
fn credited(started_s: u64, seen_s: u64, timeout: Duration, signed_ms: u64) -> (u64, u64) {
    let most = started_s
        .saturating_add(timeout.as_secs().max(1))
        .min(started_s.saturating_add(signed_ms.div_ceil(1000)));
    (started_s, seen_s.clamp(started_s, most))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job seen finished late (the miner answered `Running` past its
    /// timeout) is credited its timeout, no more; one seen early, what
    /// was seen; a clock that stepped back, nothing. A miner that held back
    /// `Finished` is credited the run time it signed (rounded up), not the
    /// wait: before, a 3 s job answered at 19 s was credited 19 s.
    #[test]
    fn a_benchmark_job_is_credited_at_most_its_timeout_and_signed_run() {
        let t = Duration::from_secs(20);
        let long = 60_000;
        assert_eq!(credited(1_000, 1_085, t, long), (1_000, 1_020));
        assert_eq!(credited(1_000, 1_007, t, long), (1_000, 1_007));
        assert_eq!(credited(1_000, 990, t, long), (1_000, 1_000));
        assert_eq!(
            credited(u64::MAX - 1, u64::MAX, t, long),
            (u64::MAX - 1, u64::MAX)
        );
        assert_eq!(credited(1_000, 1_019, t, 3_000), (1_000, 1_003));
        assert_eq!(credited(1_000, 1_019, t, 2_001), (1_000, 1_003));
        assert_eq!(credited(1_000, 1_002, t, 3_000), (1_000, 1_002));
    }

    #[test]
    fn miner_sent_hosts_and_users_cannot_become_ssh_options() {
        assert_eq!(check_host("127.0.0.1"), Ok(()));
        assert_eq!(check_host("gpu-1.example.org"), Ok(()));
        assert_eq!(check_host("::1"), Ok(()));
        assert!(check_host("-oProxyCommand=sh").is_err());
        assert!(check_host("a b").is_err());
        assert!(check_host("").is_err());
        assert_eq!(check_user("renter_1"), Ok(()));
        assert!(check_user("-l").is_err());
        assert!(check_user("a@b").is_err());
    }

    #[test]
    fn specs_become_claims_by_model() {
        let g = |name: &str| crate::protocol::GpuInfo {
            name: name.into(),
            memory_mb: 1,
            uuid: "GPU-x".into(),
        };
        let s = SpecsQuery {
            gpus: Some(vec![
                g("NVIDIA H100"),
                g("RTX 4090"),
                g("NVIDIA H100"),
                g(" "),
            ]),
            ..SpecsQuery::default()
        };
        assert_eq!(
            gpu_claims(&s),
            vec![
                GpuClaim {
                    model: "NVIDIA H100".into(),
                    count: 2
                },
                GpuClaim {
                    model: "RTX 4090".into(),
                    count: 1
                }
            ]
        );
        // A miner that claims thousands of long model names is kept small.
        let flood = SpecsQuery {
            gpus: Some(
                (0..1000)
                    .map(|i| g(&format!("{i:04}{}", "x".repeat(4096))))
                    .collect(),
            ),
            ..SpecsQuery::default()
        };
        let claims = gpu_claims(&flood);
        assert_eq!(claims.len(), MAX_GPU_MODELS);
        assert!(
            claims
                .iter()
                .all(|c| c.model.len() <= MAX_GPU_MODEL_LEN && c.count == 1)
        );
        assert!(claims[0].model.starts_with("0000x"));
    }

    #[test]
    fn call_failures_are_blamed_only_on_what_the_miner_did() {
        let call = |status| ClientError::Call {
            status,
            message: "x".into(),
            answered: true,
        };
        for free in [403, 404, 429, 503, 408] {
            assert!(
                matches!(
                    client_failure("jobs", &call(free)),
                    Check::NotApplicable { .. }
                ),
                "{free}"
            );
        }
        assert!(client_failure("jobs", &call(500)).penalises());
        assert!(client_failure("jobs", &ClientError::BadAnswer("forged".into())).penalises());
        let disk_full = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
        let ours = client_failure("jobs", &ClientError::Store(disk_full.into()));
        assert!(
            matches!(
                ours,
                Check::Failed {
                    penalised: false,
                    ..
                }
            ),
            "{ours:?}"
        );
    }

    #[test]
    fn only_a_decline_with_capacity_is_penalised() {
        assert!(declined(DeclineReason::Unprofitable, "x").penalises());
        assert!(!declined(DeclineReason::Busy, "x").penalises());
        assert!(!declined(DeclineReason::UnsupportedClass, "x").penalises());
        assert!(!declined(DeclineReason::ValidatorBlacklisted, "x").penalises());
    }

    /// Reasons quote what a miner sent: each way of building a check cuts
    /// them to MAX_CHECK_REASON, so a miner cannot put megabytes in the
    /// validator's logs and records.
    #[test]
    fn a_miners_words_in_a_check_are_cut() {
        let huge = format!("the user {:?} is not a user name", "x".repeat(1 << 20));
        let checks = [
            Check::blame(huge.clone()),
            Check::unlucky(huge.clone()),
            Check::not_applicable(huge.clone()),
            declined(DeclineReason::Busy, &huge),
            client_failure("jobs", &ClientError::BadAnswer(huge.clone())),
        ];
        for check in checks {
            let reason = match &check {
                Check::Failed { reason, .. } | Check::NotApplicable { reason } => reason,
                Check::Passed { .. } => panic!("{check:?}"),
            };
            assert!(reason.len() <= MAX_CHECK_REASON, "{}", reason.len());
            assert!(reason.ends_with('…'), "cut, and marked");
        }
    }
}
