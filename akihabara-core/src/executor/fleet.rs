//! A [`Fleet`]: executors from configuration, health-checked on an interval,
//! re-admitted after recovery, and never given a job while unhealthy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ExecutorBackend, ExecutorError, JobHandle, JobSpec, LocalBackend, Requirements, SshBackend,
    SshTarget,
};

/// How executors are checked.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPolicy {
    /// Time between checks (`"10s"`, `"1m"`).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Limit for one check.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Failed checks in a row before an executor is marked unhealthy.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_retries() -> u32 {
    2
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy {
            interval: default_interval(),
            timeout: default_timeout(),
            retries: default_retries(),
        }
    }
}

/// One `[[executors]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, tag = "backend", rename_all = "snake_case")]
pub enum ExecutorConfig {
    /// This machine.
    Local {
        /// Executor id, unique within the fleet file; allocations and logs name it.
        id: String,
        /// Hardware class it is advertised as.
        #[serde(default)]
        class: Option<String>,
        /// The dedicated unprivileged account jobs run as (a name or uid;
        /// see [`LocalBackend::user`]). Required to serve validators' jobs.
        #[serde(default)]
        user: Option<String>,
        /// Serve validators' jobs as the miner's own user, who can read the
        /// miner's wallet. Off by default; a warning is logged at every start.
        #[serde(default)]
        unsafe_share_miner_user: bool,
    },
    /// A host over SSH.
    Ssh {
        /// Executor id, unique within the fleet file; allocations and logs name it.
        id: String,
        /// Hardware class it is advertised as.
        #[serde(default)]
        class: Option<String>,
        /// SSH server address as `host:port`.
        address: std::net::SocketAddr,
        /// Account to log in as on the remote host.
        user: String,
        /// Private key file (`~` is expanded).
        key: PathBuf,
        /// known_hosts file to check the host key against.
        #[serde(default)]
        known_hosts: Option<PathBuf>,
        /// Remote `authorized_keys` file allocations add keys to (default
        /// `$HOME/.ssh/authorized_keys` of `user`).
        #[serde(default)]
        authorized_keys: Option<String>,
        /// Run the jobs in containers with the remote host's docker CLI.
        #[serde(default)]
        docker: Option<SshDockerConfig>,
    },
    /// Containers on a Docker Engine (feature `docker`).
    Docker {
        /// Executor id, unique within the fleet file; allocations and logs name it.
        id: String,
        /// Hardware class it is advertised as.
        #[serde(default)]
        class: Option<String>,
        /// The engine: `unix:///path/docker.sock` or `tcp://host:port`
        /// (default: `DOCKER_HOST`, else `unix:///var/run/docker.sock`).
        #[serde(default)]
        address: Option<String>,
        /// The images it runs: names, or prefixes ending in `*` (default:
        /// any image already on the engine; nothing is ever pulled).
        #[serde(default)]
        images: Vec<String>,
        /// The image of a job that names none (validators' jobs name none).
        #[serde(default)]
        image: Option<String>,
        /// Container rentals (`Allocate`), when set.
        #[serde(default)]
        rental: Option<RentalConfig>,
    },
}

/// `[executors.docker]` of an ssh executor: its jobs run in containers on
/// the remote host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshDockerConfig {
    /// The remote engine (`docker -H`), when not the remote CLI's default.
    #[serde(default)]
    pub host: Option<String>,
    /// The images jobs may name (default: any on the remote engine).
    #[serde(default)]
    pub images: Vec<String>,
    /// The image of a job that names none.
    #[serde(default)]
    pub image: Option<String>,
}

/// `[executors.rental]` of a docker executor: what an allocation starts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RentalConfig {
    /// The image (with `/bin/sh`, `ssh-keygen` and `/usr/sbin/sshd`).
    pub image: String,
    /// The address validators log in at (this machine's public address).
    pub host: String,
    /// The host address the SSH port is published on (default `0.0.0.0`).
    #[serde(default = "any_address")]
    pub bind: String,
    /// Memory limit of a rental, MiB (default: none).
    #[serde(default)]
    pub memory_mb: u64,
    /// CPU limit of a rental, whole CPUs (default: none).
    #[serde(default)]
    pub cpus: u32,
}

fn any_address() -> String {
    "0.0.0.0".into()
}

impl ExecutorConfig {
    /// The executor's id, unique within its fleet file.
    pub fn id(&self) -> &str {
        match self {
            ExecutorConfig::Local { id, .. }
            | ExecutorConfig::Ssh { id, .. }
            | ExecutorConfig::Docker { id, .. } => id,
        }
    }
}

/// A fleet file: `[health]` and `[[executors]]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// How often executors are checked and when they count as unhealthy (`[health]`).
    #[serde(default)]
    pub health: HealthPolicy,
    /// The `[[executors]]` entries, in file order.
    pub executors: Vec<ExecutorConfig>,
}

/// The largest fleet file read, bytes: an entry is a few lines, so a fleet
/// of thousands of executors fits many times over.
pub const MAX_FLEET_FILE_BYTES: u64 = 1 << 20;

/// Why a fleet could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The file could not be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The fleet file.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The file is not a valid fleet (the message names the key).
    #[error("{path}: {reason}")]
    Invalid {
        /// The fleet file.
        path: PathBuf,
        /// What is wrong, naming the offending key.
        reason: String,
    },
}

impl FleetConfig {
    /// Parses and checks a fleet file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &std::path::Path) -> Result<FleetConfig, FleetError> {
        let invalid = |reason: String| FleetError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let cfg: FleetConfig =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim().replace('\n', " ")))?;
        if cfg.executors.is_empty() {
            return Err(invalid("no [[executors]]".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &cfg.executors {
            if e.id().is_empty() {
                return Err(invalid("an executor has an empty id".into()));
            }
            if !seen.insert(e.id()) {
                return Err(invalid(format!("executor id {:?} appears twice", e.id())));
            }
        }
        let mut users = std::collections::BTreeMap::new();
        for e in &cfg.executors {
            if let ExecutorConfig::Local {
                id,
                user: Some(user),
                ..
            } = e
                && let Some(other) = users.insert(user.as_str(), id.as_str())
            {
                return Err(invalid(format!(
                    "executors {other:?} and {id:?} both run jobs as user {user:?}; give each \
                     local executor its own user (every process of it is killed when a job ends)"
                )));
            }
        }
        for e in &cfg.executors {
            if let ExecutorConfig::Docker {
                id,
                address: Some(a),
                ..
            } = e
                && !(a.starts_with("unix:///") || a.starts_with("tcp://"))
            {
                return Err(invalid(format!(
                    "executor {id:?}: address {a:?} is not unix:///PATH or tcp://HOST:PORT"
                )));
            }
            if let ExecutorConfig::Docker {
                id,
                images,
                image: Some(image),
                ..
            } = e
                && !images.is_empty()
                && !super::ImagePolicy::only(images.iter().cloned()).allows(image)
            {
                return Err(invalid(format!(
                    "executor {id:?}: the default image {image:?} is not in its images"
                )));
            }
        }
        if cfg.health.interval.is_zero() || cfg.health.timeout.is_zero() {
            return Err(invalid(
                "health.interval and health.timeout must be positive".into(),
            ));
        }
        Ok(cfg)
    }

    /// Checks that this fleet may serve jobs sent by validators: every local
    /// executor runs them as a dedicated user that exists, or opted in with
    /// `unsafe_share_miner_user = true`. Returns one warning per opted-in
    /// executor, for the caller to log at every start.
    pub fn check_remote_jobs(&self, path: &std::path::Path) -> Result<Vec<String>, FleetError> {
        let invalid = |reason: String| FleetError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut warnings = Vec::new();
        for e in &self.executors {
            let ExecutorConfig::Local {
                id,
                user,
                unsafe_share_miner_user,
                ..
            } = e
            else {
                continue;
            };
            match (user, unsafe_share_miner_user) {
                (Some(user), _) => {
                    super::JobUser::resolve(user)
                        .map_err(|err| invalid(format!("executor {id:?}: {err}")))?;
                }
                (None, true) => warnings.push(format!(
                    "executor {id:?} runs validators' jobs as the miner's own user \
                     (unsafe_share_miner_user = true): a job can read this miner's wallet"
                )),
                (None, false) => {
                    return Err(invalid(format!(
                        "executor {id:?} would run validators' jobs as the miner's own user, \
                         who can read its wallet; set `user = \"NAME\"` to a dedicated \
                         unprivileged account (or, knowingly, `unsafe_share_miner_user = true`)"
                    )));
                }
            }
        }
        Ok(warnings)
    }

    /// Reads a fleet file (at most [`MAX_FLEET_FILE_BYTES`] of UTF-8 text).
    pub fn read(path: &std::path::Path) -> Result<FleetConfig, FleetError> {
        let text = crate::fs::read_text_limited(path, MAX_FLEET_FILE_BYTES).map_err(|e| {
            FleetError::Read {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        FleetConfig::parse(&text, path)
    }
}

/// What the fleet knows of one executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecutorState {
    /// The executor's id from the fleet file.
    pub id: String,
    /// Its backend: `local`, `ssh` or `docker`.
    pub backend: &'static str,
    /// Hardware class it is advertised as; `None` when the fleet file gives none.
    pub class: Option<String>,
    /// Eligible for jobs: passed its last check (never true before a first check).
    pub healthy: bool,
    /// Failed checks in a row.
    pub failures: u32,
    /// The last check's error.
    pub last_error: Option<String>,
    /// Latency of the last passed check, ms.
    pub latency_ms: Option<u64>,
    /// The allocation holding it, if any (it then takes no jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation: Option<String>,
}

struct Member {
    backend: Arc<dyn ExecutorBackend>,
    state: ExecutorState,
    busy: bool,
}

impl Member {
    /// Healthy, running nothing, held by no allocation.
    fn available(&self) -> bool {
        self.state.healthy && !self.busy && self.state.allocation.is_none()
    }
}

/// What the fleet can offer a request for a hardware class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Some executor (healthy or not) has the class.
    pub class_supported: bool,
    /// One of them is available now.
    pub free: bool,
}

/// Executors, their health, and who is free.
pub struct Fleet {
    policy: HealthPolicy,
    members: Mutex<BTreeMap<String, Member>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn expand(path: &std::path::Path) -> PathBuf {
    crate::fs::expand_tilde(path)
}

#[cfg(feature = "docker")]
fn docker_backend(
    class: Option<String>,
    address: Option<String>,
    images: Vec<String>,
    image: Option<String>,
    rental: Option<RentalConfig>,
) -> Arc<dyn ExecutorBackend> {
    match super::DockerBackend::connect(address.as_deref()) {
        Ok(d) => Arc::new(
            d.with_class(class)
                .with_images(super::ImagePolicy::only(images))
                .with_default_image(image)
                .with_rentals(rental.map(|r| super::RentalSettings {
                    image: r.image,
                    host: r.host,
                    bind: r.bind,
                    memory_mb: r.memory_mb,
                    cpus: r.cpus,
                })),
        ),
        Err(e) => Arc::new(Unavailable { class, error: e }),
    }
}

#[cfg(not(feature = "docker"))]
fn docker_backend(
    class: Option<String>,
    _address: Option<String>,
    _images: Vec<String>,
    _image: Option<String>,
    _rental: Option<RentalConfig>,
) -> Arc<dyn ExecutorBackend> {
    Arc::new(Unavailable {
        class,
        error: ExecutorError::Unsupported(
            "docker executors need akihabara-core's `docker` feature".into(),
        ),
    })
}

/// An executor whose backend could not be made: it fails every check, so
/// the fleet never gives it work, and says why.
struct Unavailable {
    class: Option<String>,
    error: ExecutorError,
}

#[async_trait::async_trait]
impl ExecutorBackend for Unavailable {
    fn kind(&self) -> &'static str {
        "unavailable"
    }

    fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    async fn capabilities(&self) -> Result<super::HardwareSpec, ExecutorError> {
        Err(self.error.clone())
    }

    async fn run(&self, _job: JobSpec) -> Result<JobHandle, ExecutorError> {
        Err(self.error.clone())
    }

    async fn health(&self) -> Result<super::Health, ExecutorError> {
        Err(self.error.clone())
    }
}

impl Fleet {
    /// Builds the backends of `cfg`; every executor starts unchecked (not
    /// eligible) until its first check passes.
    pub fn new(cfg: FleetConfig) -> Fleet {
        let timeout = cfg.health.timeout;
        let backends = cfg.executors.into_iter().map(|e| {
            let id = e.id().to_owned();
            let backend: Arc<dyn ExecutorBackend> = match e {
                ExecutorConfig::Local { class, user, .. } => {
                    let local = LocalBackend::new(class);
                    Arc::new(match user {
                        Some(u) => local.user(u),
                        None => local,
                    })
                }
                ExecutorConfig::Ssh {
                    class,
                    address,
                    user,
                    key,
                    known_hosts,
                    authorized_keys,
                    docker,
                    ..
                } => Arc::new(
                    SshBackend::new(
                        SshTarget {
                            address,
                            user,
                            key: expand(&key),
                            known_hosts: known_hosts.as_deref().map(expand),
                            authorized_keys,
                        },
                        class,
                    )
                    .connect_timeout(timeout)
                    .in_docker(docker.map(|d| super::RemoteDocker {
                        host: d.host,
                        images: super::ImagePolicy::only(d.images),
                        image: d.image,
                    })),
                ),
                ExecutorConfig::Docker {
                    class,
                    address,
                    images,
                    image,
                    rental,
                    ..
                } => docker_backend(class, address, images, image, rental),
            };
            (id, backend)
        });
        Fleet::with_backends(cfg.health, backends)
    }

    /// A fleet of ready-made backends, by id; each advertises the class its
    /// `capabilities` report (read at the first check). Every executor starts
    /// unchecked.
    pub fn with_backends(
        policy: HealthPolicy,
        backends: impl IntoIterator<Item = (String, Arc<dyn ExecutorBackend>)>,
    ) -> Fleet {
        let members = backends
            .into_iter()
            .map(|(id, backend)| {
                let state = ExecutorState {
                    id: id.clone(),
                    backend: backend.kind(),
                    class: backend.class().map(str::to_owned),
                    healthy: false,
                    failures: 0,
                    last_error: Some("not checked yet".into()),
                    latency_ms: None,
                    allocation: None,
                };
                (
                    id,
                    Member {
                        backend,
                        state,
                        busy: false,
                    },
                )
            })
            .collect();
        Fleet {
            policy,
            members: Mutex::new(members),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Member>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The executors' states, by id.
    pub fn states(&self) -> Vec<ExecutorState> {
        self.lock().values().map(|m| m.state.clone()).collect()
    }

    /// Checks every executor once, concurrently, each within the policy's
    /// timeout; returns the states after.
    pub async fn check_all(&self) -> Vec<ExecutorState> {
        let targets: Vec<(String, Arc<dyn ExecutorBackend>)> = self
            .lock()
            .iter()
            .map(|(id, m)| (id.clone(), m.backend.clone()))
            .collect();
        let timeout = self.policy.timeout;
        let mut checks = tokio::task::JoinSet::new();
        for (id, b) in targets {
            checks.spawn(async move {
                let r = match tokio::time::timeout(timeout, b.health()).await {
                    Ok(r) => r,
                    Err(_) => Err(ExecutorError::Unreachable(format!(
                        "no answer within {timeout:?}"
                    ))),
                };
                (id, r)
            });
        }
        let results = checks.join_all().await;
        let mut members = self.lock();
        for (id, r) in results {
            let Some(m) = members.get_mut(&id) else {
                continue;
            };
            match r {
                Ok(h) => {
                    m.state.healthy = true;
                    m.state.failures = 0;
                    m.state.last_error = None;
                    m.state.latency_ms = Some(h.latency.as_millis() as u64);
                }
                Err(e) => {
                    m.state.failures = m.state.failures.saturating_add(1);
                    m.state.last_error = Some(e.to_string());
                    // Never checked, or failed `retries` times in a row: out.
                    if m.state.latency_ms.is_none()
                        || m.state.failures >= self.policy.retries.max(1)
                    {
                        m.state.healthy = false;
                    }
                }
            }
        }
        members.values().map(|m| m.state.clone()).collect()
    }

    /// Checks every `interval` until the returned task is aborted.
    pub fn monitor(self: &Arc<Fleet>) -> tokio::task::JoinHandle<()> {
        let fleet = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(fleet.policy.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                fleet.check_all().await;
            }
        })
    }

    /// Claims an available executor of `class` (any when `None`) whose
    /// hardware meets `requirements`; `mark` records the claim under the
    /// lock (false: someone was faster, try the next).
    async fn claim(
        &self,
        requirements: &Requirements,
        class: Option<&str>,
        mark: impl Fn(&mut Member) -> bool,
    ) -> Result<(String, Arc<dyn ExecutorBackend>), ExecutorError> {
        let candidates: Vec<(String, Arc<dyn ExecutorBackend>)> = self
            .lock()
            .iter()
            .filter(|(_, m)| m.available())
            .filter(|(_, m)| class.is_none() || m.state.class.as_deref() == class)
            .map(|(id, m)| (id.clone(), m.backend.clone()))
            .collect();
        if candidates.is_empty() {
            return Err(ExecutorError::NoCapacity(format!(
                "no healthy free executor of class {}",
                class.unwrap_or("any")
            )));
        }
        let (mut reasons, mut unmet) = (Vec::new(), 0);
        for (id, backend) in candidates {
            match backend.capabilities().await {
                Ok(spec) => match requirements.unmet_by(&spec) {
                    Some(why) => {
                        unmet += 1;
                        reasons.push(format!("{id}: {why}"));
                    }
                    None => {
                        let claimed = match self.lock().get_mut(&id) {
                            Some(m) if m.available() => mark(m),
                            _ => false,
                        };
                        if claimed {
                            return Ok((id, backend));
                        }
                        reasons.push(format!("{id}: taken meanwhile"));
                    }
                },
                Err(e) => reasons.push(format!("{id}: {e}")),
            }
        }
        if unmet == reasons.len() {
            Err(ExecutorError::Unmet(reasons.join("; ")))
        } else {
            Err(ExecutorError::NoCapacity(reasons.join("; ")))
        }
    }

    /// Runs `job` on a healthy, free executor of `class` (any class when
    /// `None`) whose hardware meets the job's requirements. The executor is
    /// busy until the returned handle's job ends and [`Fleet::release`] is
    /// called with its id.
    pub async fn run(
        &self,
        job: JobSpec,
        class: Option<&str>,
    ) -> Result<(String, JobHandle), ExecutorError> {
        let (id, backend) = self.claim_job(&job, class).await?;
        match backend.run(job).await {
            Ok(h) => Ok((id, h)),
            Err(e) => {
                self.release(&id);
                Err(e)
            }
        }
    }

    /// Checks `job` and marks a healthy, free executor of `class` that meets
    /// its requirements busy, without starting anything (the caller runs
    /// the job on the returned backend once it is ready, and calls
    /// [`Fleet::release`] after).
    pub async fn claim_job(
        &self,
        job: &JobSpec,
        class: Option<&str>,
    ) -> Result<(String, Arc<dyn ExecutorBackend>), ExecutorError> {
        // A job naming an image is checked as container backends check it;
        // the claimed backend refuses it if it runs no containers.
        match job.image {
            Some(_) => job.validate_for_image()?,
            None => job.validate()?,
        }
        self.claim(&job.requirements, class, |m| {
            m.busy = true;
            true
        })
        .await
    }

    /// Whether the fleet has executors of `class` (any class when `None`),
    /// and whether one is available.
    pub fn offer(&self, class: Option<&str>) -> Offer {
        let members = self.lock();
        let mut of_class = members
            .values()
            .filter(|m| class.is_none() || m.state.class.as_deref() == class)
            .peekable();
        Offer {
            class_supported: of_class.peek().is_some(),
            free: of_class.any(Member::available),
        }
    }

    /// The backend of executor `id`.
    pub fn backend(&self, id: &str) -> Option<Arc<dyn ExecutorBackend>> {
        self.lock().get(id).map(|m| m.backend.clone())
    }

    /// Reserves an available executor of `class` whose hardware meets
    /// `requirements` for `allocation`; it takes no jobs until
    /// [`Fleet::unallocate`].
    pub async fn reserve(
        &self,
        requirements: &Requirements,
        class: Option<&str>,
        allocation: &str,
    ) -> Result<(String, Arc<dyn ExecutorBackend>), ExecutorError> {
        self.claim(requirements, class, |m| {
            m.state.allocation = Some(allocation.to_owned());
            true
        })
        .await
    }

    /// Marks executor `id` held by `allocation` (when restoring persisted
    /// allocations); false when it is unknown, busy or held already.
    pub fn mark_allocated(&self, id: &str, allocation: &str) -> bool {
        match self.lock().get_mut(id) {
            Some(m) if !m.busy && m.state.allocation.is_none() => {
                m.state.allocation = Some(allocation.to_owned());
                true
            }
            _ => false,
        }
    }

    /// Frees executor `id` from its allocation.
    pub fn unallocate(&self, id: &str) {
        if let Some(m) = self.lock().get_mut(id) {
            m.state.allocation = None;
        }
    }

    /// Marks executor `id` free again.
    pub fn release(&self, id: &str) {
        if let Some(m) = self.lock().get_mut(id) {
            m.busy = false;
        }
    }
}
