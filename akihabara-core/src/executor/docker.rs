//! The `docker` backend: each job in its own container on a Docker Engine,
//! through the Engine API (bollard).
//!
//! A job's container runs the image its [`JobSpec`] names, with:
//! - the spec's CPU and memory limits (memory without swap; an OOM kill is
//!   [`JobStatus::OutOfMemory`]) and a pids limit;
//! - no network unless the spec asks ([`JobSpec::network`]);
//! - a read-only root file system with a writable `/work` (the working
//!   directory) and `/tmp`, both tmpfs;
//! - GPUs requested from the engine's `nvidia` driver when the spec wants any;
//! - the label `akihabara.job`, so an operator (or a restarted miner) can
//!   find what is left: `docker ps -a --filter label=akihabara.job`;
//! - the engine's init (`docker-init`, tini) as PID 1, with the job's command
//!   as its child: it reaps what the job leaves behind and forwards signals.
//!   It also makes lost OOM kills rarer: when the job itself is PID 1, its
//!   death can remove the container's cgroup before containerd has read the
//!   kernel's OOM event, and containerd then drops the event, so the engine
//!   reports a plain exit 137. Measured with Docker 20.10 on a loaded 2-core
//!   machine: 5 of 175 OOM kills lost without the init, 0 of 150 with it; CI
//!   has still seen one lost with it, so a plain 137 may be an OOM kill.
//!
//! The container is removed (with its anonymous volumes) when the job ends,
//! is cancelled or times out. Images are never pulled: one that is not on
//! the engine is [`ExecutorError::ImageNotFound`], one outside the
//! executor's allow list [`ExecutorError::ImageNotAllowed`].

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt as _;

use super::access::{AccessGrant, LoginDetails, check_allocation_id};
use super::capture::Capture;
use super::{
    ExecutorBackend, ExecutorError, HardwareSpec, Health, JobHandle, JobSpec, JobStatus, Outcome,
    Stream,
};
use super::{ImagePolicy, JOB_LABEL};

/// Size of `/work` (and of `/tmp`) when the job names no disk, MiB.
pub const DEFAULT_WORK_MB: u64 = 1024;

/// Processes a job's container may hold at once, unless configured.
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;

/// The label every rental container carries (its value: the allocation id).
pub const RENTAL_LABEL: &str = "akihabara.allocation";

/// How a docker executor rents containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RentalSettings {
    /// The image a rental runs: it must hold `/bin/sh`, `ssh-keygen` and
    /// `/usr/sbin/sshd` (a Debian image with `openssh-server`, say).
    pub image: String,
    /// The address validators log in at (this machine's public address).
    pub host: String,
    /// The host address the container's SSH port is published on
    /// (`0.0.0.0`: every interface).
    pub bind: String,
    /// Memory limit of a rental, MiB (0: none).
    pub memory_mb: u64,
    /// CPU limit of a rental, whole CPUs (0: none).
    pub cpus: u32,
}

/// The rental container's command: installs the one validator key it was
/// given, makes host keys, and runs sshd in the foreground.
const RENTAL_SCRIPT: &str = "set -e; umask 077; mkdir -p /root/.ssh /run/sshd; \
printf '%s\\n' \"$AKIHABARA_AUTHORIZED_KEY\" > /root/.ssh/authorized_keys; \
ssh-keygen -A >/dev/null; \
exec /usr/sbin/sshd -D -e -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no \
-o KbdInteractiveAuthentication=no -o UsePAM=no";

fn rental_name(allocation_id: &str) -> String {
    format!("akihabara-rental-{allocation_id}")
}

impl DockerBackend {
    /// Rents containers of `settings.image` ([`ExecutorBackend::grant_access`]).
    pub fn with_rentals(mut self, settings: Option<RentalSettings>) -> DockerBackend {
        self.rental = settings;
        self
    }

    async fn start_rental(
        &self,
        docker: &Docker,
        r: &RentalSettings,
        grant: &AccessGrant,
    ) -> Result<LoginDetails, ExecutorError> {
        let name = rental_name(&grant.allocation_id);
        let memory =
            (r.memory_mb > 0).then(|| i64::try_from(r.memory_mb << 20).unwrap_or(i64::MAX));
        let body = ContainerCreateBody {
            image: Some(r.image.clone()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), RENTAL_SCRIPT.into()]),
            env: Some(vec![
                format!(
                    "AKIHABARA_AUTHORIZED_KEY={}",
                    String::from(grant.key.clone())
                ),
                format!("{}={}", super::access::SESSION_ENV, grant.allocation_id),
            ]),
            labels: Some(HashMap::from([(
                RENTAL_LABEL.to_owned(),
                grant.allocation_id.clone(),
            )])),
            exposed_ports: Some(vec!["22/tcp".to_owned()]),
            host_config: Some(HostConfig {
                memory,
                memory_swap: memory,
                nano_cpus: (r.cpus > 0).then(|| i64::from(r.cpus) * 1_000_000_000),
                pids_limit: Some(self.pids_limit),
                // sshd keeps what it needs to switch users; raw sockets on
                // the shared bridge are not among it.
                cap_drop: Some(vec!["NET_RAW".to_owned(), "MKNOD".to_owned()]),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                port_bindings: Some(HashMap::from([(
                    "22/tcp".to_owned(),
                    Some(vec![PortBinding {
                        host_ip: Some(r.bind.clone()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let spawn = |reason: String| ExecutorError::Spawn {
            program: r.image.clone(),
            reason,
        };
        timed(docker.create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        ))
        .await?
        .map_err(|e| spawn(e.to_string()))?;
        timed(docker.start_container(&name, None))
            .await?
            .map_err(|e| spawn(e.to_string()))?;
        let info = timed(docker.inspect_container(&name, None))
            .await?
            .map_err(|e| spawn(e.to_string()))?;
        let port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get("22/tcp").cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| spawn("the engine published no port for the container's sshd".into()))?;
        // Wait until sshd answers, or the container gives up.
        let probe_ip = if r.bind == "0.0.0.0" {
            "127.0.0.1"
        } else {
            r.bind.as_str()
        };
        let t = Instant::now();
        loop {
            if tokio::net::TcpStream::connect((probe_ip, port))
                .await
                .is_ok()
            {
                // The proxy accepts before sshd does: a banner proves sshd.
                if sshd_answers(probe_ip, port).await {
                    break;
                }
            }
            let running = matches!(
                timed(docker.inspect_container(&name, None)).await,
                Ok(Ok(c)) if c.state.as_ref().and_then(|s| s.running) == Some(true)
            );
            if !running || t.elapsed() > Duration::from_secs(30) {
                let why = if running {
                    "its sshd did not answer within 30 s".to_owned()
                } else {
                    format!("it stopped: {}", last_log_line(docker, &name).await)
                };
                return Err(spawn(format!(
                    "the rental container failed to start: {why}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(LoginDetails {
            host: r.host.clone(),
            port,
            user: "root".into(),
        })
    }
}

/// Whether an SSH server's banner comes back on `ip:port` within 2 s.
async fn sshd_answers(ip: &str, port: u16) -> bool {
    use tokio::io::AsyncReadExt as _;
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    else {
        return false;
    };
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"SSH-"
    )
}

/// The last line a container wrote, for an error message.
async fn last_log_line(docker: &Docker, name: &str) -> String {
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail("5")
        .build();
    let mut s = docker.logs(name, Some(opts));
    let mut last = String::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(CALL_TIMEOUT, s.next()).await {
        let text = String::from_utf8_lossy(chunk.as_ref()).trim().to_owned();
        if !text.is_empty() {
            last = text;
        }
    }
    last
}

/// Bound on one Engine API call that is not a job's wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs jobs in containers on one Docker Engine.
#[derive(Clone, Debug)]
pub struct DockerBackend {
    address: String,
    class: Option<String>,
    images: ImagePolicy,
    default_image: Option<String>,
    pids_limit: i64,
    rental: Option<RentalSettings>,
}

fn unreachable(address: &str, e: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Unreachable(format!("docker engine at {address}: {e}"))
}

impl DockerBackend {
    /// The engine at `address` (`unix:///path/docker.sock`, `tcp://host:port`),
    /// or, without one, where the docker CLI finds it: `DOCKER_HOST`, else
    /// `unix:///var/run/docker.sock`. Only the address is checked here: each
    /// call connects (an engine started later is found) and agrees on the
    /// API version.
    pub fn connect(address: Option<&str>) -> Result<DockerBackend, ExecutorError> {
        let address = match address {
            Some(a) => a.to_owned(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned()),
        };
        if address.starts_with("https://") || std::env::var_os("DOCKER_TLS_VERIFY").is_some() {
            return Err(ExecutorError::Unsupported(format!(
                "TLS to a docker engine ({address}): reach a remote engine through an ssh \
                 executor or a local socket"
            )));
        }
        if !(address.starts_with("unix:///")
            || address.starts_with("tcp://")
            || address.starts_with("http://"))
        {
            return Err(ExecutorError::BadJob(format!(
                "docker engine address {address:?} is not unix:///PATH or tcp://HOST:PORT"
            )));
        }
        Ok(DockerBackend {
            address,
            class: None,
            images: ImagePolicy::any(),
            default_image: None,
            pids_limit: DEFAULT_PIDS_LIMIT,
            rental: None,
        })
    }

    /// Advertises this hardware class.
    pub fn with_class(mut self, class: Option<String>) -> DockerBackend {
        self.class = class;
        self
    }

    /// Runs only the images `policy` allows.
    pub fn with_images(mut self, policy: ImagePolicy) -> DockerBackend {
        self.images = policy;
        self
    }

    /// Runs a job that names no image (a validator's job) in `image`.
    pub fn with_default_image(mut self, image: Option<String>) -> DockerBackend {
        self.default_image = image;
        self
    }

    /// The engine's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A connection that speaks the engine's API version.
    async fn engine(&self) -> Result<Docker, ExecutorError> {
        let docker = Docker::connect_with_host(&self.address)
            .map_err(|e| unreachable(&self.address, e))?
            // Jobs wait on the engine for as long as they run; every other
            // call is bounded by `timed`.
            .with_timeout(Duration::from_secs(7 * 24 * 3600));
        tokio::time::timeout(CALL_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(&self.address, "no answer within 30 s"))?
            .map_err(|e| unreachable(&self.address, e))
    }

    /// Checks the image is allowed and present.
    async fn check_image(&self, docker: &Docker, image: &str) -> Result<(), ExecutorError> {
        if !self.images.allows(image) {
            return Err(ExecutorError::ImageNotAllowed(image.to_owned()));
        }
        match timed(docker.inspect_image(image)).await? {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(ExecutorError::ImageNotFound(image.to_owned())),
            Err(e) => Err(unreachable(&self.address, e)),
        }
    }

    fn container_body(&self, job: &JobSpec, image: &str, name: &str) -> ContainerCreateBody {
        let r = &job.requirements;
        let memory = (r.ram_mb > 0).then(|| i64::try_from(r.ram_mb << 20).unwrap_or(i64::MAX));
        // tmpfs is memory: bounded even when the job names no disk.
        let work_size = format!(
            "rw,exec,size={}m",
            if r.hard_disk_mb > 0 {
                r.hard_disk_mb
            } else {
                DEFAULT_WORK_MB
            }
        );
        let host = HostConfig {
            memory,
            memory_swap: memory,
            nano_cpus: (r.cpu > 0).then(|| i64::from(r.cpu) * 1_000_000_000),
            pids_limit: Some(self.pids_limit),
            network_mode: Some(if job.network { "bridge" } else { "none" }.to_owned()),
            readonly_rootfs: Some(true),
            // The job's volume is its /work; without one, /work is a tmpfs.
            binds: job
                .volume
                .as_ref()
                .map(|v| vec![format!("{}:/work:rw", v.display())]),
            tmpfs: Some(
                [
                    (job.volume.is_none()).then(|| ("/work".to_owned(), work_size)),
                    Some((
                        "/tmp".to_owned(),
                        format!("rw,exec,size={DEFAULT_WORK_MB}m"),
                    )),
                ]
                .into_iter()
                .flatten()
                .collect(),
            ),
            device_requests: (r.gpu > 0).then(|| {
                vec![DeviceRequest {
                    driver: Some("nvidia".to_owned()),
                    count: Some(i64::from(r.gpu)),
                    capabilities: Some(vec![vec!["gpu".to_owned()]]),
                    ..DeviceRequest::default()
                }]
            }),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            // See the module docs: reaping, signals, and OOM kills that are
            // not lost.
            init: Some(true),
            ..HostConfig::default()
        };
        ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(job.command.clone()),
            env: Some(job.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(
                job.workdir
                    .as_ref()
                    .map_or("/work".to_owned(), |w| w.to_string_lossy().into_owned()),
            ),
            labels: Some(HashMap::from([(JOB_LABEL.to_owned(), name.to_owned())])),
            network_disabled: Some(!job.network),
            host_config: Some(host),
            ..ContainerCreateBody::default()
        }
    }
}

/// Bounds one Engine API call.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> Result<T, ExecutorError> {
    tokio::time::timeout(CALL_TIMEOUT, f).await.map_err(|_| {
        ExecutorError::Unreachable("the docker engine did not answer within 30 s".into())
    })
}

/// Removes a job's container, with its anonymous volumes, whatever state
/// it is in.
async fn remove(docker: &Docker, name: &str) {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match timed(docker.remove_container(name, Some(opts))).await {
        Ok(Ok(()))
        | Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        })) => {}
        Ok(Err(e)) => {
            tracing::warn!(container = name, error = %e, "could not remove a job's container")
        }
        Err(e) => {
            tracing::warn!(container = name, error = %e, "could not remove a job's container")
        }
    }
}

async fn kill(docker: &Docker, name: &str) {
    let opts = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    let _ = timed(docker.kill_container(name, Some(opts))).await;
}

#[async_trait::async_trait]
impl ExecutorBackend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    async fn capabilities(&self) -> Result<HardwareSpec, ExecutorError> {
        let docker = self.engine().await?;
        let info = timed(docker.info())
            .await?
            .map_err(|e| unreachable(&self.address, e))?;
        let mem = info.mem_total.unwrap_or(0).max(0) as u64;
        // GPUs: the engine does not list them; on a local engine with the
        // nvidia runtime, the host's are the ones `--gpus` hands out.
        let nvidia = info
            .runtimes
            .as_ref()
            .is_some_and(|r| r.contains_key("nvidia"));
        let gpus = if nvidia && self.address.starts_with("unix://") {
            tokio::task::spawn_blocking(crate::protocol::nvidia_smi_gpus)
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(HardwareSpec {
            hostname: info.name.unwrap_or_default(),
            cpu_count: u32::try_from(info.ncpu.unwrap_or(0).max(0)).unwrap_or(u32::MAX),
            cpu_model: None,
            ram_mb: mem >> 20,
            disk_mb: None,
            gpus,
            hardware_class: self.class.clone(),
        })
    }

    async fn health(&self) -> Result<Health, ExecutorError> {
        let t = Instant::now();
        let docker = self.engine().await?;
        timed(docker.ping())
            .await?
            .map_err(|e| unreachable(&self.address, e))?;
        Ok(Health {
            latency: t.elapsed(),
        })
    }

    async fn grant_access(&self, grant: &AccessGrant) -> Result<LoginDetails, ExecutorError> {
        let Some(r) = &self.rental else {
            return Err(ExecutorError::Unsupported(
                "this docker executor rents no containers (give it a [executors.rental] image)"
                    .into(),
            ));
        };
        check_allocation_id(&grant.allocation_id)?;
        let docker = self.engine().await?;
        self.check_image(&docker, &r.image).await?;
        let name = rental_name(&grant.allocation_id);
        // A container of the same allocation left by a crash goes first.
        remove(&docker, &name).await;
        match self.start_rental(&docker, r, grant).await {
            Ok(login) => Ok(login),
            Err(e) => {
                remove(&docker, &name).await;
                Err(e)
            }
        }
    }

    async fn revoke_access(&self, allocation_id: &str) -> Result<(), ExecutorError> {
        check_allocation_id(allocation_id)?;
        let docker = self.engine().await?;
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match timed(docker.remove_container(&rental_name(allocation_id), Some(opts))).await? {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(unreachable(&self.address, e)),
        }
    }

    async fn run(&self, mut job: JobSpec) -> Result<JobHandle, ExecutorError> {
        if job.image.is_none() {
            job.image = self.default_image.clone();
        }
        job.validate_for_image()?;
        let Some(image) = job.image.clone() else {
            return Err(ExecutorError::BadJob(
                "the docker backend runs images: name one (--image)".into(),
            ));
        };
        let docker = self.engine().await?;
        self.check_image(&docker, &image).await?;
        let name = format!("akihabara-job-{}", uuid::Uuid::new_v4().simple());
        let body = self.container_body(&job, &image, &name);
        let created = timed(docker.create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        ))
        .await?;
        if let Err(e) = created {
            return Err(ExecutorError::Spawn {
                program: image,
                reason: e.to_string(),
            });
        }
        let started = Instant::now();
        if let Err(e) = timed(docker.start_container(&name, None))
            .await
            .and_then(|r| {
                r.map_err(|e| ExecutorError::Spawn {
                    program: image.clone(),
                    reason: e.to_string(),
                })
            })
        {
            remove(&docker, &name).await;
            return Err(e);
        }
        let (mut reporter, handle) = JobHandle::channel(1024);
        let logs_tx = reporter.logs_sender();
        tokio::spawn(async move {
            let dropped = AtomicU64::new(0);
            let cap = job.output_cap;
            let logs = async {
                let mut out = Capture::new(Stream::Stdout, cap, logs_tx.clone(), &dropped);
                let mut err = Capture::new(Stream::Stderr, cap, logs_tx.clone(), &dropped);
                let opts = LogsOptionsBuilder::default()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build();
                let mut s = docker.logs(&name, Some(opts));
                while let Some(Ok(chunk)) = s.next().await {
                    match chunk {
                        bollard::container::LogOutput::StdErr { message } => err.push(&message),
                        other => out.push(other.as_ref()),
                    }
                }
                (out.finish(), err.finish())
            };
            let wait = async {
                let mut w = docker.wait_container(&name, None);
                match w.next().await {
                    Some(Ok(r)) => Ok(r.status_code),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError {
                        code, ..
                    })) => Ok(code),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("the engine ended the wait without a status".to_owned()),
                }
            };
            enum End {
                Exited(Result<i64, String>),
                TimedOut,
                Cancelled,
            }
            let outcome = async {
                let end = tokio::select! {
                    r = wait => End::Exited(r),
                    () = tokio::time::sleep(job.timeout) => End::TimedOut,
                    () = reporter.cancelled() => End::Cancelled,
                };
                match end {
                    End::TimedOut => {
                        kill(&docker, &name).await;
                        Ok(JobStatus::TimedOut)
                    }
                    End::Cancelled => {
                        kill(&docker, &name).await;
                        Ok(JobStatus::Cancelled)
                    }
                    End::Exited(Ok(code)) => Ok(exit_status(&docker, &name, code).await),
                    End::Exited(Err(e)) => Err(ExecutorError::Unreachable(format!(
                        "waiting for the job's container: {e}"
                    ))),
                }
            };
            // The logs stream while the job runs and end once its container
            // has stopped; the bound only guards against an engine that
            // never closes them.
            let bounded_logs =
                tokio::time::timeout(job.timeout.saturating_add(2 * CALL_TIMEOUT), logs);
            let (captured, status) = tokio::join!(bounded_logs, outcome);
            let (stdout, stderr) = captured.unwrap_or_else(|_| {
                let none = super::Captured::of(&[], 0);
                (none.clone(), none)
            });
            remove(&docker, &name).await;
            drop(logs_tx);
            reporter.finish(status.map(|status| Outcome {
                status,
                duration: started.elapsed(),
                stdout,
                stderr,
                dropped_log_lines: dropped.load(std::sync::atomic::Ordering::Relaxed),
            }));
        });
        Ok(handle)
    }
}

/// How a container that stopped by itself ended: OOM-killed, killed by a
/// signal (exit code 128 + n), or its exit code.
async fn exit_status(docker: &Docker, name: &str, code: i64) -> JobStatus {
    // The engine records an OOM kill from the kernel's event, which can
    // land after the wait returns (over a second later on a loaded 2-core
    // machine, seen in CI): a SIGKILL exit (137) is looked at again for up
    // to 3 s before it counts as a plain exit.
    let tries = if code == 137 { 30 } else { 1 };
    for _ in 0..tries {
        let oom = match timed(docker.inspect_container(name, None)).await {
            Ok(Ok(c)) => c.state.and_then(|s| s.oom_killed).unwrap_or(false),
            _ => false,
        };
        if oom {
            return JobStatus::OutOfMemory;
        }
        if tries > 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let code = i32::try_from(code).unwrap_or(i32::MAX);
    JobStatus::Exited { code }
}
