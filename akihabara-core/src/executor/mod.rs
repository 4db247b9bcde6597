//! Where jobs run: the [`ExecutorBackend`] trait, its backends and a
//! [`Fleet`] of executors with health checks.
//!
//! Backends:
//! - [`LocalBackend`]: the embedded default. The job is a child process in its
//!   own process group, with a timeout, capped output capture, cancellation
//!   that kills the whole group, and rlimits. cgroup v2 limits are **not**
//!   applied; [`LimitsReport`] says so.
//! - [`SshBackend`]: a remote host through the system OpenSSH client with key
//!   authentication.
//!
//! - [`DockerBackend`] (feature `docker`): each job in its own container on
//!   a Docker Engine, with the spec's limits, no network unless asked, a
//!   read-only root, removed when the job ends.
//!
//! A Kubernetes backend is a design note (README, "Executors on
//! Kubernetes"), not code.
//!
//! Output of any size is safe: each stream is hashed in full (SHA-256), only
//! its first [`JobSpec::output_cap`] bytes are kept, and log lines go to a
//! bounded channel that drops lines (and counts them) rather than grow.

pub mod access;
mod capture;
#[cfg(feature = "docker")]
mod docker;
mod fleet;
mod images;
mod local;
mod process;
mod ssh;
#[allow(unsafe_code)]
pub(crate) mod sys;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use capture::Captured;
#[cfg(feature = "docker")]
pub use docker::{DEFAULT_PIDS_LIMIT, DockerBackend, RENTAL_LABEL, RentalSettings};
pub use fleet::{
    ExecutorConfig, ExecutorState, Fleet, FleetConfig, FleetError, HealthPolicy,
    MAX_FLEET_FILE_BYTES, Offer, RentalConfig, SshDockerConfig,
};
pub use images::{ImagePolicy, JOB_LABEL};
pub use local::{JobUser, LimitsReport, LocalBackend};
pub use ssh::{RemoteDocker, SshBackend, SshTarget};

use crate::protocol::GpuInfo;

/// What an executor offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HardwareSpec {
    /// Host name.
    pub hostname: String,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// CPU model, where known.
    pub cpu_model: Option<String>,
    /// Memory, MiB.
    pub ram_mb: u64,
    /// Free disk space in the job directory's file system, MiB.
    pub disk_mb: Option<u64>,
    /// NVIDIA GPUs (empty where none).
    pub gpus: Vec<GpuInfo>,
    /// The hardware class it is advertised as (from configuration).
    pub hardware_class: Option<String>,
}

/// Resources a job needs (subnet 27's request fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Logical CPUs.
    #[serde(default)]
    pub cpu: u32,
    /// Whole GPUs wanted.
    #[serde(default)]
    pub gpu: u32,
    /// Memory, MiB.
    #[serde(default)]
    pub ram_mb: u64,
    /// Disk, MiB.
    #[serde(default)]
    pub hard_disk_mb: u64,
}

impl Requirements {
    /// Why `spec` cannot meet these requirements, if it cannot.
    pub fn unmet_by(&self, spec: &HardwareSpec) -> Option<String> {
        if self.cpu > spec.cpu_count {
            return Some(format!(
                "{} CPUs wanted, {} offered",
                self.cpu, spec.cpu_count
            ));
        }
        if self.gpu as usize > spec.gpus.len() {
            return Some(format!(
                "{} GPUs wanted, {} offered",
                self.gpu,
                spec.gpus.len()
            ));
        }
        if self.ram_mb > spec.ram_mb {
            return Some(format!(
                "{} MiB RAM wanted, {} offered",
                self.ram_mb, spec.ram_mb
            ));
        }
        if let Some(disk) = spec.disk_mb
            && self.hard_disk_mb > disk
        {
            return Some(format!(
                "{} MiB disk wanted, {disk} offered",
                self.hard_disk_mb
            ));
        }
        None
    }
}

/// A job to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Program and arguments (the program first).
    pub command: Vec<String>,
    /// The container image the command runs in (the `docker` backend; the
    /// others refuse a job that names one).
    #[serde(default)]
    pub image: Option<String>,
    /// Whether the job may use the network (containers have none otherwise;
    /// the `local` and `ssh` backends cannot take it away and ignore this).
    #[serde(default)]
    pub network: bool,
    /// Environment added to the job's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Directory the job starts in; `None` uses the backend's default.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// A directory on the miner's machine that is the job's work directory:
    /// bound at `/work` in a container, the current directory of a `local`
    /// job. The job's input files are put there first and its outputs
    /// taken from there after. The `ssh` backend refuses it.
    #[serde(default)]
    pub volume: Option<PathBuf>,
    /// Paths the job reads.
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// Paths the job writes.
    #[serde(default)]
    pub outputs: Vec<PathBuf>,
    /// Wall-clock limit; at the end the job's process group is killed.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Resources the job needs.
    #[serde(default)]
    pub requirements: Requirements,
    /// Bytes of each output stream kept (the rest is hashed, not stored).
    #[serde(default = "default_cap")]
    pub output_cap: usize,
}

fn default_cap() -> usize {
    1 << 20
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(|_| {
            serde::de::Error::custom(format!(
                "timeout {v} is not a non-negative number of seconds"
            ))
        })
    }
}

impl JobSpec {
    /// A command with a timeout and the default output cap (1 MiB per stream).
    pub fn command(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
        timeout: Duration,
    ) -> JobSpec {
        let mut command = vec![program.into()];
        command.extend(args.into_iter().map(Into::into));
        JobSpec {
            command,
            image: None,
            network: false,
            env: BTreeMap::new(),
            workdir: None,
            volume: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            timeout,
            requirements: Requirements::default(),
            output_cap: default_cap(),
        }
    }

    /// Checks what a process backend needs: a program, a positive timeout,
    /// no image.
    pub fn validate(&self) -> Result<(), ExecutorError> {
        if self.image.is_some() {
            return Err(ExecutorError::Unsupported(
                "container images need a docker executor".into(),
            ));
        }
        self.validate_command()
    }

    /// Checks what a container backend needs: an image, a program, a
    /// positive timeout.
    pub fn validate_for_image(&self) -> Result<(), ExecutorError> {
        match &self.image {
            None => Err(ExecutorError::BadJob(
                "the docker backend runs images: name one".into(),
            )),
            Some(i) if i.trim().is_empty() || i.len() > 512 || i.contains(char::is_whitespace) => {
                Err(ExecutorError::BadJob(format!("{i:?} is not an image name")))
            }
            Some(_) => self.validate_command(),
        }
    }

    fn validate_command(&self) -> Result<(), ExecutorError> {
        match self.command.first() {
            None => return Err(ExecutorError::BadJob("the command is empty".into())),
            Some(p) if p.trim().is_empty() => {
                return Err(ExecutorError::BadJob("the program name is empty".into()));
            }
            Some(_) => {}
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(ExecutorError::BadJob(
                "an argument contains a NUL byte".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ExecutorError::BadJob("the timeout must be positive".into()));
        }
        Ok(())
    }
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobStatus {
    /// The process exited with this code.
    Exited {
        /// The code the process passed to `exit` (0 is success).
        code: i32,
    },
    /// The process was killed by this signal (not by us).
    Signaled {
        /// The signal's number, as in `kill -l`.
        signal: i32,
    },
    /// The timeout ran out; the job's process group was killed.
    TimedOut,
    /// The job was cancelled; its process group was killed.
    Cancelled,
    /// The job's container used more memory than its limit and was killed.
    OutOfMemory,
}

/// How a job ended, in words: `exited with code 255`, `killed by signal 9`,
/// `timed out`, `cancelled`, `out of memory`.
impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobStatus::Exited { code } => write!(f, "exited with code {code}"),
            JobStatus::Signaled { signal } => write!(f, "killed by signal {signal}"),
            JobStatus::TimedOut => f.write_str("timed out"),
            JobStatus::Cancelled => f.write_str("cancelled"),
            JobStatus::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl JobStatus {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, JobStatus::Exited { code: 0 })
    }
}

/// What a finished job left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Wall time from start to end.
    #[serde(with = "secs")]
    pub duration: Duration,
    /// What the job wrote to standard output, as kept.
    pub stdout: Captured,
    /// What the job wrote to standard error, as kept.
    pub stderr: Captured,
    /// Log lines dropped because the reader fell behind.
    pub dropped_log_lines: u64,
}

/// Which stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a job's output (at most 64 KiB; longer lines are split).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The stream it was written to.
    pub stream: Stream,
    /// The bytes, without the newline.
    pub line: Vec<u8>,
}

/// A running job: its log lines, its outcome, and a way to cancel it.
#[derive(Debug)]
pub struct JobHandle {
    logs: tokio::sync::mpsc::Receiver<LogLine>,
    done: tokio::sync::oneshot::Receiver<Result<Outcome, ExecutorError>>,
    cancel: Option<tokio::sync::oneshot::Sender<()>>,
}

impl JobHandle {
    /// The next log line; `None` once both streams have closed.
    pub async fn next_log(&mut self) -> Option<LogLine> {
        self.logs.recv().await
    }

    /// Kills the job (and its children). Its outcome is then
    /// [`JobStatus::Cancelled`].
    pub fn cancel(&mut self) {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.send(());
        }
    }

    /// Hands over the means to cancel the job, for a caller that waits for
    /// it elsewhere: sending on it (or calling [`JobHandle::cancel`] before)
    /// kills the job. `None` once taken or used.
    pub fn take_canceller(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.cancel.take()
    }

    /// Waits for the job to end.
    pub async fn wait(self) -> Result<Outcome, ExecutorError> {
        drop(self.logs);
        self.done.await.map_err(|_| {
            ExecutorError::Failed("the job's supervisor ended without an outcome".into())
        })?
    }
}

impl JobHandle {
    /// A handle and the [`JobReporter`] that feeds it, for backends written
    /// outside this crate; `log_buffer` lines wait for a slow reader before
    /// lines are dropped.
    pub fn channel(log_buffer: usize) -> (JobReporter, JobHandle) {
        let (logs_tx, logs) = tokio::sync::mpsc::channel(log_buffer.max(1));
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        (
            JobReporter {
                logs: logs_tx,
                done: done_tx,
                cancel: cancel_rx,
            },
            JobHandle {
                logs,
                done,
                cancel: Some(cancel_tx),
            },
        )
    }
}

/// The backend's end of a [`JobHandle`] ([`JobHandle::channel`]): log
/// lines out, cancellation in, and the outcome once.
#[derive(Debug)]
pub struct JobReporter {
    logs: tokio::sync::mpsc::Sender<LogLine>,
    done: tokio::sync::oneshot::Sender<Result<Outcome, ExecutorError>>,
    cancel: tokio::sync::oneshot::Receiver<()>,
}

impl JobReporter {
    /// Sends a log line without waiting; `false` when it was dropped (the
    /// reader is behind or gone).
    pub fn log(&self, stream: Stream, line: impl Into<Vec<u8>>) -> bool {
        self.logs
            .try_send(LogLine {
                stream,
                line: line.into(),
            })
            .is_ok()
    }

    /// Resolves when the job's owner cancels it; never, when the handle is
    /// dropped without cancelling (the job then runs its course).
    pub async fn cancelled(&mut self) {
        if (&mut self.cancel).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Another sender of log lines, for a backend that captures streams
    /// itself.
    #[cfg(feature = "docker")]
    pub(crate) fn logs_sender(&self) -> tokio::sync::mpsc::Sender<LogLine> {
        self.logs.clone()
    }

    /// Reports how the job ended.
    pub fn finish(self, outcome: Result<Outcome, ExecutorError>) {
        let _ = self.done.send(outcome);
    }
}

/// The executor's answer to a health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Round trip of the check.
    #[serde(with = "secs")]
    pub latency: Duration,
}

/// Why an executor could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The job itself is malformed.
    #[error("bad job: {0}")]
    BadJob(String),
    /// The backend cannot do this.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The program could not be started.
    #[error("could not start {program:?}: {reason}")]
    Spawn {
        /// The program as given in the job.
        program: String,
        /// The OS or engine error, as text.
        reason: String,
    },
    /// The executor cannot be reached or failed its check.
    #[error("executor unreachable: {0}")]
    Unreachable(String),
    /// No executor is free to run it now.
    #[error("no executor can run it: {0}")]
    NoCapacity(String),
    /// The free executors' hardware does not meet the requirements.
    #[error("no executor meets the requirements: {0}")]
    Unmet(String),
    /// Local I/O failed.
    #[error("{what}")]
    Io {
        /// What was being done ("reading /etc/passwd").
        what: String,
        /// The operating system's error.
        #[source]
        source: IoCause,
    },
    /// The executor itself failed (a task that ended without a result, a
    /// pipe that was not created); nothing to do with the job.
    #[error("{0}")]
    Failed(String),
    /// The image is not on the engine (images are never pulled).
    #[error("image not found: {0}")]
    ImageNotFound(String),
    /// The image is not on the executor's allow list.
    #[error("image not allowed on this executor: {0}")]
    ImageNotAllowed(String),
}

/// An I/O error that can be cloned and compared (by kind and text), so the
/// errors that hold it stay `Clone + Eq`. Displays as the error it holds.
#[derive(Clone, Debug)]
pub struct IoCause(std::sync::Arc<std::io::Error>);

impl IoCause {
    /// The operating system's error.
    pub fn get(&self) -> &std::io::Error {
        &self.0
    }
}

impl From<std::io::Error> for IoCause {
    fn from(e: std::io::Error) -> IoCause {
        IoCause(std::sync::Arc::new(e))
    }
}

impl PartialEq for IoCause {
    fn eq(&self, other: &IoCause) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoCause {}

impl std::fmt::Display for IoCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl ExecutorError {
    /// [`ExecutorError::Io`]: `what` failed with `source`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ExecutorError {
        ExecutorError::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Where jobs run. Object-safe: use `Box<dyn ExecutorBackend>`.
#[async_trait::async_trait]
pub trait ExecutorBackend: Send + Sync {
    /// The backend's name (`local`, `ssh`).
    fn kind(&self) -> &'static str;
    /// The hardware class it is advertised as, when configured.
    fn class(&self) -> Option<&str> {
        None
    }
    /// The hardware the executor offers.
    async fn capabilities(&self) -> Result<HardwareSpec, ExecutorError>;
    /// Starts a job.
    async fn run(&self, job: JobSpec) -> Result<JobHandle, ExecutorError>;
    /// Checks that the executor can run jobs now.
    async fn health(&self) -> Result<Health, ExecutorError>;
    /// Lets `grant`'s key log in (an allocation) and says how. Backends
    /// without a login of their own refuse with
    /// [`ExecutorError::Unsupported`].
    async fn grant_access(
        &self,
        grant: &access::AccessGrant,
    ) -> Result<access::LoginDetails, ExecutorError> {
        let _ = grant;
        Err(ExecutorError::Unsupported(format!(
            "the {} backend cannot grant logins (allocations need an ssh executor)",
            self.kind()
        )))
    }
    /// Removes the access granted for `allocation_id` (no error when none).
    async fn revoke_access(&self, allocation_id: &str) -> Result<(), ExecutorError> {
        let _ = allocation_id;
        Err(ExecutorError::Unsupported(format!(
            "the {} backend cannot grant logins",
            self.kind()
        )))
    }
}

#[cfg(test)]
mod tests;
