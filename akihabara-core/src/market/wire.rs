//! The jobs and allocation messages as synapses, so they travel over the
//! same axon/dendrite protocol as everything else (and a Python peer can
//! declare them).
//!
//! | request | answer (`reply`) |
//! |---|---|
//! | [`JobSubmit`] (a signed [`JobRequest`]) | `accepted` (with the signed receipt) or `declined` with a reason |
//! | [`JobQuery`] | `running`, `finished` (exit code, digests, receipt), `failed` (reason, e.g. the signal) or `unknown` |
//! | [`JobCancel`] | `cancelled`, `not_running` or `unknown` |
//! | [`JobLogs`] | the job's output lines from `offset`, the next offset, whether it ended |
//! | [`Allocate`] | `allocated` (id, expiry, login details sealed to the validator) or `declined` |
//! | [`Deallocate`] | `deallocated` or `unknown` |
//!
//! Python twins:
//!
//! ```python
//! class JobSubmit(bt.Synapse):
//!     request: dict
//!     reply: Optional[dict] = None
//!
//! class JobQuery(bt.Synapse):
//!     job_id: str
//!     reply: Optional[dict] = None
//!     required_hash_fields: ClassVar[tuple[str, ...]] = ("job_id",)
//!
//! class JobLogs(bt.Synapse):
//!     job_id: str
//!     offset: int = 0
//!     reply: Optional[dict] = None
//!     required_hash_fields: ClassVar[tuple[str, ...]] = ("job_id",)
//!
//! class JobCancel(bt.Synapse):
//!     job_id: str
//!     reply: Optional[str] = None
//!     required_hash_fields: ClassVar[tuple[str, ...]] = ("job_id",)
//!
//! class Allocate(bt.Synapse):
//!     ssh_public_key: str
//!     duration_s: int
//!     sealing_key: str
//!     requirements: dict = {}
//!     hardware_class: Optional[str] = None
//!     reply: Optional[dict] = None
//!     required_hash_fields: ClassVar[tuple[str, ...]] = ("ssh_public_key", "duration_s", "sealing_key")
//!
//! class Deallocate(bt.Synapse):
//!     allocation_id: str
//!     reply: Optional[dict] = None
//!     required_hash_fields: ClassVar[tuple[str, ...]] = ("allocation_id",)
//! ```

use serde::{Deserialize, Serialize};

use super::jobs::{DeclineReason, JobRequest, Receipt};
use crate::executor::Requirements;
use crate::protocol::{FieldKind, Synapse};

/// A job's state as the miner reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobReply {
    /// JobAccepted: it runs; the miner's signed receipt.
    Accepted {
        /// The miner's signed receipt that it accepted the job.
        receipt: Receipt,
    },
    /// JobDeclined: the miner will not run it.
    Declined {
        /// Why the miner declined, as a code validators can act on.
        reason: DeclineReason,
        /// Details for people.
        detail: String,
    },
    /// Still running.
    Running,
    /// JobFinished: the process exited (any code).
    Finished {
        /// The job's exit code (0 is success).
        exit_code: i32,
        /// SHA-256 of stdout, hex.
        stdout_sha256: String,
        /// SHA-256 of stderr, hex.
        stderr_sha256: String,
        /// Digest of the output directory, when the request named one.
        output_sha256: Option<String>,
        /// The miner's signed receipt that the job finished, with these digests.
        receipt: Receipt,
    },
    /// JobFailed: killed by a signal, over its timeout, or lost.
    Failed {
        /// Why (`killed by signal 9`, `timed out after 30 s` …).
        reason: String,
        /// `finished` receipt, when the job ran.
        receipt: Option<Receipt>,
    },
    /// No such job here.
    Unknown,
}

impl JobReply {
    /// The state's name as the wire spells it (`accepted`, `running`, …).
    pub fn state(&self) -> &'static str {
        match self {
            JobReply::Accepted { .. } => "accepted",
            JobReply::Declined { .. } => "declined",
            JobReply::Running => "running",
            JobReply::Finished { .. } => "finished",
            JobReply::Failed { .. } => "failed",
            JobReply::Unknown => "unknown",
        }
    }
}

/// Submits a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSubmit {
    /// The validator's signed request.
    pub request: JobRequest,
    /// The miner's answer; `None` in the request.
    #[serde(default)]
    pub reply: Option<JobReply>,
}

impl Synapse for JobSubmit {
    const NAME: &'static str = "JobSubmit";
    const MAX_ANSWER_BYTES: usize = 1 << 20;
    // The request carries its own signature over every field.
    const HASH_FIELDS: &'static [&'static str] = &[];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[("request", FieldKind::Dict)];
}

/// Asks for a job's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQuery {
    /// Id of the job asked about.
    pub job_id: String,
    /// The miner's answer; `None` in the request.
    #[serde(default)]
    pub reply: Option<JobReply>,
}

impl Synapse for JobQuery {
    const NAME: &'static str = "JobQuery";
    const MAX_ANSWER_BYTES: usize = 1 << 20;
    const HASH_FIELDS: &'static [&'static str] = &["job_id"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[("job_id", FieldKind::Str)];
}

/// The answer to [`JobCancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReply {
    /// The job was running and is being killed; its `failed` state (with
    /// a `finished` receipt, status `cancelled`) follows.
    Cancelled,
    /// The job is not running now (it ended, or is still fetching its
    /// input files).
    NotRunning,
    /// No such job of this validator.
    Unknown,
}

/// Cancels a running job of the caller's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancel {
    /// Id of the job.
    pub job_id: String,
    /// The miner's answer; `None` in the request.
    #[serde(default)]
    pub reply: Option<CancelReply>,
}

impl Synapse for JobCancel {
    const NAME: &'static str = "JobCancel";
    const MAX_ANSWER_BYTES: usize = 64 << 10;
    const HASH_FIELDS: &'static [&'static str] = &["job_id"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[("job_id", FieldKind::Str)];
}

/// Reads a job's output lines from number `offset` (the answer's `next` is
/// where to ask from next).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogs {
    /// Id of the job.
    pub job_id: String,
    /// The first line number wanted.
    #[serde(default)]
    pub offset: u64,
    /// The miner's answer; `None` in the request.
    #[serde(default)]
    pub reply: Option<super::logs::LogsReply>,
}

impl Synapse for JobLogs {
    const NAME: &'static str = "JobLogs";
    const MAX_ANSWER_BYTES: usize = 4 << 20;
    const HASH_FIELDS: &'static [&'static str] = &["job_id"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[("job_id", FieldKind::Str)];
}

/// The answer to [`Allocate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AllocateReply {
    /// An executor is reserved and its login details sealed to the validator.
    Allocated {
        /// Id to deallocate with.
        allocation_id: String,
        /// Id of the executor reserved.
        executor: String,
        /// When it expires, ms since the Unix epoch.
        expires_at_ms: u64,
        /// [`LoginDetails`](crate::executor::access::LoginDetails) as JSON, sealed to the request's
        /// `sealing_key`, base64.
        sealed_details: String,
    },
    /// Nothing was reserved.
    Declined {
        /// Why the miner declined, as a code validators can act on.
        reason: DeclineReason,
        /// Details for people.
        detail: String,
    },
}

/// Reserves an executor with SSH access for a while (subnet 27 style).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocate {
    /// The validator's OpenSSH public key.
    pub ssh_public_key: String,
    /// How long, seconds.
    pub duration_s: u64,
    /// X25519 public key (hex) the login details are sealed to.
    pub sealing_key: String,
    /// Resources wanted.
    #[serde(default)]
    pub requirements: Requirements,
    /// Hardware class wanted (any when absent).
    #[serde(default)]
    pub hardware_class: Option<String>,
    /// The miner's answer; `None` in the request.
    #[serde(default)]
    pub reply: Option<AllocateReply>,
}

impl Synapse for Allocate {
    const NAME: &'static str = "Allocate";
    const MAX_ANSWER_BYTES: usize = 1 << 20;
    const HASH_FIELDS: &'static [&'static str] = &["ssh_public_key", "duration_s", "sealing_key"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[
        ("ssh_public_key", FieldKind::Str),
        ("duration_s", FieldKind::Int),
        ("sealing_key", FieldKind::Str),
    ];
}

/// The answer to [`Deallocate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeallocateReply {
    /// Access revoked, executor free.
    Deallocated,
    /// No such allocation of this validator.
    Unknown,
}

/// Ends an allocation early.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deallocate {
    /// Id the allocation was granted under.
    pub allocation_id: String,
    /// The miner's answer; `None` in the request.
    #[serde(default)]
    pub reply: Option<DeallocateReply>,
}

impl Synapse for Deallocate {
    const NAME: &'static str = "Deallocate";
    const MAX_ANSWER_BYTES: usize = 64 << 10;
    const HASH_FIELDS: &'static [&'static str] = &["allocation_id"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] =
        &[("allocation_id", FieldKind::Str)];
}
