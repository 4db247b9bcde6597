//! [`SshBackend`]: a remote host through the system OpenSSH client (`ssh`),
//! key authentication only (`BatchMode`: never a password prompt).
//!
//! The remote side runs the job in its own session under a small POSIX-sh
//! watchdog that kills the job's process group when the connection's stdin
//! closes. Closing it is how a timeout or a cancellation here reaches the
//! remote job, and how a dropped connection stops it. The remote exit status
//! of a job killed by signal N is reported as `Signaled { N }` when the shell
//! reports 128 + N.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::access::{self, AccessGrant, LoginDetails, check_allocation_id};
use super::{
    ExecutorBackend, ExecutorError, HardwareSpec, Health, JobHandle, JobSpec, JobStatus, process,
};
use crate::protocol::GpuInfo;

/// Where and as whom to log in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    /// SSH server address as `host:port`.
    pub address: SocketAddr,
    /// Account to log in as on the remote host.
    pub user: String,
    /// Private key file.
    pub key: PathBuf,
    /// known_hosts file to check the host key against; `None` accepts a new
    /// host's key once and checks it afterwards (OpenSSH `accept-new`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// The remote `authorized_keys` file allocations add keys to; `None`:
    /// `$HOME/.ssh/authorized_keys` of `user`.
    #[serde(default)]
    pub authorized_keys: Option<String>,
}

/// Runs jobs on one host over SSH.
#[derive(Clone, Debug)]
pub struct SshBackend {
    target: SshTarget,
    class: Option<String>,
    connect_timeout: Duration,
    docker: Option<RemoteDocker>,
}

/// Jobs of an ssh executor run in containers by the remote host's docker
/// CLI ([`SshBackend::in_docker`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteDocker {
    /// The remote engine (`-H`), when not the remote CLI's default.
    pub host: Option<String>,
    /// The images jobs may name.
    pub images: super::ImagePolicy,
    /// The image of a job that names none.
    pub image: Option<String>,
}

/// Quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl SshBackend {
    /// A backend for `target`, advertising `class`.
    pub fn new(target: SshTarget, class: Option<String>) -> SshBackend {
        SshBackend {
            target,
            class,
            connect_timeout: Duration::from_secs(5),
            docker: None,
        }
    }

    /// Runs every job in a container on the remote host, through its
    /// `docker` CLI: the same isolation as the `docker` backend (no
    /// network unless asked, read-only root, tmpfs `/work`, limits, no
    /// pull), and the container is removed when the job ends or the
    /// connection drops.
    pub fn in_docker(mut self, docker: Option<RemoteDocker>) -> SshBackend {
        self.docker = docker;
        self
    }

    /// The job as a `docker run` of its image on the remote host, and the
    /// container's name.
    fn containerized(
        &self,
        d: &RemoteDocker,
        mut job: JobSpec,
    ) -> Result<(JobSpec, String), ExecutorError> {
        if job.image.is_none() {
            job.image = d.image.clone();
        }
        job.validate_for_image()?;
        refuse_volume(&job)?;
        let image = job.image.clone().unwrap_or_default();
        if !d.images.allows(&image) {
            return Err(ExecutorError::ImageNotAllowed(image));
        }
        let name = format!("akihabara-job-{}", uuid::Uuid::new_v4().simple());
        let r = &job.requirements;
        let mut argv: Vec<String> = vec!["docker".into()];
        if let Some(h) = &d.host {
            argv.extend(["-H".into(), h.clone()]);
        }
        argv.extend(
            [
                "run",
                "--rm",
                "--pull",
                "never",
                "--name",
                &name,
                "--label",
                &format!("{}={name}", super::JOB_LABEL),
                "--read-only",
                "--tmpfs",
                "/work:rw,exec,size=1024m",
                "--tmpfs",
                "/tmp:rw,exec,size=1024m",
                "--pids-limit",
                "1024",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                // The engine's init as PID 1, as the docker backend runs
                // its jobs (see there: reaping, signals, OOM kills kept).
                "--init",
            ]
            .map(String::from),
        );
        argv.extend([
            "--network".into(),
            if job.network { "bridge" } else { "none" }.into(),
        ]);
        argv.extend([
            "-w".into(),
            job.workdir
                .take()
                .map_or("/work".into(), |w| w.to_string_lossy().into_owned()),
        ]);
        if r.ram_mb > 0 {
            argv.extend([
                "--memory".into(),
                format!("{}m", r.ram_mb),
                "--memory-swap".into(),
                format!("{}m", r.ram_mb),
            ]);
        }
        if r.cpu > 0 {
            argv.extend(["--cpus".into(), r.cpu.to_string()]);
        }
        if r.gpu > 0 {
            argv.extend(["--gpus".into(), r.gpu.to_string()]);
        }
        for (k, v) in std::mem::take(&mut job.env) {
            argv.extend(["-e".into(), format!("{k}={v}")]);
        }
        argv.push("--".into());
        argv.push(image);
        argv.extend(std::mem::take(&mut job.command));
        job.command = argv;
        job.image = None;
        Ok((job, name))
    }

    /// Limit for establishing the connection (default 5 s).
    pub fn connect_timeout(mut self, t: Duration) -> SshBackend {
        self.connect_timeout = t.max(Duration::from_secs(1));
        self
    }

    /// Runs `job` in the remote user's shell on the host.
    fn run_on_host(&self, job: JobSpec) -> Result<JobHandle, ExecutorError> {
        job.validate()?;
        refuse_volume(&job)?;
        process::spawn(
            self.command(&watchdog(&job, ":")),
            "ssh",
            job.timeout,
            job.output_cap,
            true,
            remote_status,
            None,
        )
    }

    fn command(&self, remote: &str) -> tokio::process::Command {
        let t = &self.target;
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args([
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", self.connect_timeout.as_secs()))
        .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"])
        .arg("-i")
        .arg(&t.key)
        .arg("-p")
        .arg(t.address.port().to_string());
        match &t.known_hosts {
            Some(file) => {
                cmd.args(["-o", "StrictHostKeyChecking=yes"])
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", file.display()));
            }
            None => {
                cmd.args(["-o", "StrictHostKeyChecking=accept-new"]);
            }
        }
        cmd.arg(format!("{}@{}", t.user, t.address.ip()))
            .arg("--")
            .arg(remote);
        cmd
    }

    /// Runs a short remote command and returns its stdout.
    async fn query(&self, remote: &str, limit: Duration) -> Result<String, ExecutorError> {
        let outcome = process::spawn(
            self.command(remote),
            "ssh",
            limit,
            1 << 20,
            false,
            |s| s,
            None,
        )?
        .wait()
        .await?;
        match outcome.status {
            JobStatus::Exited { code: 0 } => Ok(outcome.stdout.text),
            JobStatus::TimedOut => Err(ExecutorError::Unreachable(format!(
                "{}: no answer within {limit:?}",
                self.target.address
            ))),
            other => Err(ExecutorError::Unreachable(format!(
                "{}: ssh {other}: {}",
                self.target.address,
                one_line(&outcome.stderr.text)
            ))),
        }
    }
}

/// ssh's standard error on one line: its lines (a warning, then the error)
/// joined with `; `, so an error message stays one line in a log or a table.
fn one_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The remote script: the job in its own session, killed with its group
/// when our stdin closes, and its group killed when it ends. (A shell gives
/// background lists /dev/null as stdin, hence the explicit `<&3`.)
fn watchdog(job: &JobSpec, cleanup: &str) -> String {
    let mut line = String::new();
    if cleanup != ":" {
        // The cleanup must run even when the connection is gone.
        line.push_str("trap '' HUP PIPE\n");
    }
    if let Some(dir) = &job.workdir {
        line.push_str(&format!(
            "cd {} || exit 126\n",
            quote(&dir.to_string_lossy())
        ));
    }
    let mut cmd = String::from("setsid env");
    for (k, v) in &job.env {
        cmd.push(' ');
        cmd.push_str(&quote(&format!("{k}={v}")));
    }
    for a in &job.command {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    line.push_str(&format!(
        "exec 3<&0\n\
         {cmd} </dev/null & p=$!\n\
         ( while read -r _; do :; done <&3; kill -KILL -- -$p 2>/dev/null ) & w=$!\n\
         wait $p; s=$?\n\
         kill -KILL -- -$p 2>/dev/null; kill $w 2>/dev/null\n\
         {cleanup}\n\
         exit $s\n"
    ));
    line
}

fn parse_specs(text: &str, class: Option<String>) -> Result<HardwareSpec, ExecutorError> {
    let mut lines = text.lines();
    let mut next = |what: &str| {
        lines
            .next()
            .map(str::trim)
            .ok_or_else(|| ExecutorError::Unreachable(format!("the host's specs lack {what}")))
    };
    let hostname = next("a hostname")?.to_owned();
    let cpu_count = next("a CPU count")?.parse().unwrap_or(1);
    let ram_kib: u64 = next("memory")?
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu_model = next("a CPU model")
        .ok()
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
        .filter(|s| !s.is_empty());
    let disk_mb = next("disk")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()));
    let gpus = lines
        .filter_map(|l| {
            let mut p = l.split(',').map(str::trim);
            Some(GpuInfo {
                name: p.next()?.to_owned(),
                memory_mb: p.next()?.parse().ok()?,
                uuid: p.next()?.to_owned(),
            })
        })
        .collect();
    Ok(HardwareSpec {
        hostname,
        cpu_count,
        cpu_model,
        ram_mb: ram_kib / 1024,
        disk_mb,
        gpus,
        hardware_class: class,
    })
}

#[async_trait::async_trait]
impl ExecutorBackend for SshBackend {
    fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    fn kind(&self) -> &'static str {
        "ssh"
    }

    async fn capabilities(&self) -> Result<HardwareSpec, ExecutorError> {
        let text = self
            .query(
                "hostname; nproc; grep MemTotal /proc/meminfo; grep -m1 'model name' /proc/cpuinfo || echo; \
                 df -Pm . | tail -n 1; \
                 nvidia-smi --query-gpu=name,memory.total,uuid --format=csv,noheader,nounits 2>/dev/null || true",
                self.connect_timeout + Duration::from_secs(10),
            )
            .await?;
        parse_specs(&text, self.class.clone())
    }

    async fn run(&self, job: JobSpec) -> Result<JobHandle, ExecutorError> {
        match &self.docker {
            None => self.run_on_host(job),
            Some(d) => {
                let (inner, name) = self.containerized(d, job)?;
                // Killing the docker CLI leaves its container: remove it by
                // name whenever the job ends, however it ends.
                let mut rm = String::from("docker");
                if let Some(h) = &d.host {
                    rm.push_str(&format!(" -H {}", quote(h)));
                }
                rm.push_str(&format!(" rm -f -v {} >/dev/null 2>&1", quote(&name)));
                let script = watchdog(&inner, &rm);
                process::spawn(
                    self.command(&script),
                    "ssh",
                    inner.timeout,
                    inner.output_cap,
                    true,
                    remote_status,
                    None,
                )
            }
        }
    }

    async fn health(&self) -> Result<Health, ExecutorError> {
        let t = Instant::now();
        self.query("true", self.connect_timeout + Duration::from_secs(2))
            .await?;
        Ok(Health {
            latency: t.elapsed(),
        })
    }

    async fn grant_access(&self, grant: &AccessGrant) -> Result<LoginDetails, ExecutorError> {
        check_allocation_id(&grant.allocation_id)?;
        self.script(
            access::INSTALL_SCRIPT,
            &grant.key.authorized_line(&grant.allocation_id),
        )
        .await?;
        Ok(LoginDetails {
            host: self.target.address.ip().to_string(),
            port: self.target.address.port(),
            user: self.target.user.clone(),
        })
    }

    async fn revoke_access(&self, allocation_id: &str) -> Result<(), ExecutorError> {
        check_allocation_id(allocation_id)?;
        self.script_args(
            access::REVOKE_SCRIPT,
            &[
                &format!(" {}{allocation_id}", access::MARKER_PREFIX),
                allocation_id,
            ],
        )
        .await
    }
}

impl SshBackend {
    /// Runs `script` remotely with `$1` the authorized_keys file and `$2`
    /// `arg`; fails unless it exits 0.
    async fn script(&self, script: &str, arg: &str) -> Result<(), ExecutorError> {
        self.script_args(script, &[arg]).await
    }

    /// [`SshBackend::script`] with `$2`, `$3`, … from `args`.
    async fn script_args(&self, script: &str, args: &[&str]) -> Result<(), ExecutorError> {
        let file = self.target.authorized_keys.clone().unwrap_or_default();
        let mut argv = vec!["-c", script, "sh", file.as_str()];
        argv.extend_from_slice(args);
        let job = JobSpec::command("sh", argv, self.connect_timeout + Duration::from_secs(10));
        // On the host itself, never in a container (a docker-mode executor
        // still keeps its authorized_keys on the host).
        let outcome = self.run_on_host(job)?.wait().await?;
        if outcome.status.success() {
            Ok(())
        } else {
            Err(ExecutorError::Unreachable(format!(
                "changing the executor's authorized_keys failed ({:?}): {}",
                outcome.status,
                outcome.stderr.text.trim()
            )))
        }
    }
}

/// Maps a remote shell's `128 + N` to the signal `N` (the ssh backend's
/// convention, see the module docs).
pub(crate) fn remote_status(status: JobStatus) -> JobStatus {
    match status {
        JobStatus::Exited { code } if (129..160).contains(&code) => {
            JobStatus::Signaled { signal: code - 128 }
        }
        other => other,
    }
}

/// A volume is a directory on the miner's machine: a remote host cannot
/// mount it.
fn refuse_volume(job: &JobSpec) -> Result<(), ExecutorError> {
    match &job.volume {
        Some(_) => Err(ExecutorError::Unsupported(
            "jobs with input or output files need a local or docker executor".into(),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let mut job = JobSpec::command("echo", ["$HOME", "a'b"], Duration::from_secs(1));
        job.env.insert("X".into(), "1 2".into());
        let script = watchdog(&job, ":");
        assert!(
            script.contains(r"setsid env 'X=1 2' 'echo' '$HOME' 'a'\''b'"),
            "{script}"
        );
    }

    #[test]
    fn an_ssh_failure_is_one_line_in_words() {
        let stderr = "Warning: Identity file /k not accessible: No such file or directory.\n\
                      ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n\n";
        assert_eq!(
            one_line(stderr),
            "Warning: Identity file /k not accessible: No such file or directory.; \
             ssh: connect to host 127.0.0.1 port 1: Connection refused"
        );
        assert_eq!(
            JobStatus::Exited { code: 255 }.to_string(),
            "exited with code 255"
        );
        assert_eq!(
            JobStatus::Signaled { signal: 9 }.to_string(),
            "killed by signal 9"
        );
    }

    #[test]
    fn remote_specs_parse() {
        let s = parse_specs(
            "box\n8\nMemTotal:       16384000 kB\nmodel name\t: AMD EPYC\n/dev/sda1 100 50 4096 2% /\nNVIDIA A100, 40960, GPU-1\n",
            Some("A100".into()),
        )
        .expect("specs");
        assert_eq!((s.cpu_count, s.ram_mb, s.disk_mb), (8, 16000, Some(4096)));
        assert_eq!(s.cpu_model.as_deref(), Some("AMD EPYC"));
        assert_eq!(s.gpus.len(), 1);
        assert_eq!(
            remote_status(JobStatus::Exited { code: 137 }),
            JobStatus::Signaled { signal: 9 }
        );
        assert_eq!(
            remote_status(JobStatus::Exited { code: 3 }),
            JobStatus::Exited { code: 3 }
        );
    }
}
