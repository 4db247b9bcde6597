//! [`LocalBackend`]: jobs as child processes of this machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sys::{Rlimits, apply_rlimits, euid, free_disk_mb};
use super::{ExecutorBackend, ExecutorError, HardwareSpec, Health, JobHandle, JobSpec, process};
use crate::protocol::{SpecsQuery, host_specs, nvidia_smi_gpus};

/// Which limits a job runs under on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitsReport {
    /// rlimits applied (always `RLIMIT_CORE` = 0; `RLIMIT_CPU` from the
    /// timeout; `RLIMIT_AS` from `ram_mb` and `RLIMIT_FSIZE` from
    /// `hard_disk_mb` when those are set).
    pub rlimits: Vec<&'static str>,
    /// cgroup v2 limits: not enforced by this release, with the reason.
    pub cgroup: String,
}

/// The embedded default: runs jobs here, each in a session of its own,
/// optionally as a dedicated unprivileged user ([`LocalBackend::user`]).
#[derive(Clone, Debug, Default)]
pub struct LocalBackend {
    class: Option<String>,
    workdir: Option<PathBuf>,
    user: Option<String>,
}

/// A local account jobs run as, from `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobUser {
    /// Login name.
    pub name: String,
    /// User id (never 0).
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (the job's `HOME`).
    pub home: PathBuf,
}

impl JobUser {
    /// Looks `user` (a name or a numeric uid) up in `/etc/passwd`. Root and
    /// unknown users are refused.
    pub fn resolve(user: &str) -> Result<JobUser, ExecutorError> {
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| ExecutorError::io("reading /etc/passwd", e))?;
        JobUser::from_passwd(&passwd, user)
    }

    fn from_passwd(passwd: &str, user: &str) -> Result<JobUser, ExecutorError> {
        let found = passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, _, home, ..] = f[..] else {
                return None;
            };
            (name == user || uid == user).then(|| {
                Some(JobUser {
                    name: name.to_owned(),
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                    home: PathBuf::from(home),
                })
            })?
        });
        match found {
            None => Err(ExecutorError::BadJob(format!(
                "job user {user:?} is not in /etc/passwd; create it (e.g. `useradd --system \
                 --no-create-home {user}`)"
            ))),
            Some(u) if u.uid == 0 => Err(ExecutorError::BadJob(format!(
                "job user {user:?} is root; jobs must run as an unprivileged user"
            ))),
            Some(u) => Ok(u),
        }
    }
}

#[cfg(test)]
impl JobUser {
    pub(crate) fn from_passwd_for_tests(
        passwd: &str,
        user: &str,
    ) -> Result<JobUser, ExecutorError> {
        JobUser::from_passwd(passwd, user)
    }
}

/// `PATH` of a job that runs as a job user (its environment is not the miner's).
const JOB_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl LocalBackend {
    /// A local backend advertising `class`.
    pub fn new(class: Option<String>) -> LocalBackend {
        LocalBackend {
            class,
            workdir: None,
            user: None,
        }
    }

    /// Runs every job as `user` (a name or uid from `/etc/passwd`, not root):
    /// the job gets a clean environment (`PATH`, `HOME`, `USER` and its own
    /// variables, nothing of the miner's), cannot read files only the miner
    /// may read (its wallet), and every process of that user is killed when a
    /// job ends. Switching users needs root (or `CAP_SETUID`). Give each
    /// executor its own user.
    pub fn user(mut self, user: impl Into<String>) -> LocalBackend {
        self.user = Some(user.into());
        self
    }

    /// The dedicated job user, if any.
    pub fn job_user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Runs jobs that name no working directory in `dir`.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> LocalBackend {
        self.workdir = Some(dir.into());
        self
    }

    /// The limits `job` would run under.
    pub fn limits_for(job: &JobSpec) -> LimitsReport {
        let mut rlimits = vec!["RLIMIT_CORE=0", "RLIMIT_CPU (timeout + 1 s)"];
        if job.requirements.ram_mb > 0 {
            rlimits.push("RLIMIT_AS (ram_mb)");
        }
        if job.requirements.hard_disk_mb > 0 {
            rlimits.push("RLIMIT_FSIZE (hard_disk_mb)");
        }
        let cgroup = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "not enforced: cgroup v2 is present, but this release does not create job cgroups"
        } else {
            "not enforced: no cgroup v2 hierarchy at /sys/fs/cgroup"
        };
        LimitsReport {
            rlimits,
            cgroup: cgroup.to_owned(),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

#[async_trait::async_trait]
impl ExecutorBackend for LocalBackend {
    fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    async fn capabilities(&self) -> Result<HardwareSpec, ExecutorError> {
        let specs =
            tokio::task::spawn_blocking(|| host_specs(SpecsQuery::default(), nvidia_smi_gpus))
                .await
                .map_err(|e| {
                    ExecutorError::Failed(format!("the hardware survey task failed: {e}"))
                })?;
        let dir = self
            .workdir
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(HardwareSpec {
            hostname: specs.hostname.unwrap_or_default(),
            cpu_count: specs
                .cpu_count
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(1),
            cpu_model: cpu_model(),
            ram_mb: specs.memory_gb.map(|g| (g * 1024.0) as u64).unwrap_or(0),
            disk_mb: free_disk_mb(&dir),
            gpus: specs.gpus.unwrap_or_default(),
            hardware_class: self.class.clone(),
        })
    }

    async fn run(&self, job: JobSpec) -> Result<JobHandle, ExecutorError> {
        job.validate()?;
        let user = self.user.as_deref().map(JobUser::resolve).transpose()?;
        let mut cmd = tokio::process::Command::new(&job.command[0]);
        cmd.args(&job.command[1..]);
        if let Some(u) = &user {
            let me = euid();
            if me != 0 && me != u.uid {
                return Err(ExecutorError::Spawn {
                    program: job.command[0].clone(),
                    reason: format!(
                        "running jobs as {:?} needs root (or CAP_SETUID); this process is uid {me}",
                        u.name
                    ),
                });
            }
            cmd.env_clear()
                .env("PATH", JOB_PATH)
                .env("HOME", &u.home)
                .env("USER", &u.name)
                .env("LOGNAME", &u.name)
                .uid(u.uid)
                .gid(u.gid);
        }
        cmd.envs(&job.env);
        if let Some(dir) = &job.volume {
            // The job's own user must be able to write its work directory.
            if let Some(u) = &user {
                chown_tree(dir, u.uid, u.gid).map_err(|e| ExecutorError::Spawn {
                    program: job.command[0].clone(),
                    reason: format!("cannot hand {} to {}: {e}", dir.display(), u.name),
                })?;
            }
            cmd.current_dir(dir);
        } else if let Some(dir) = job.workdir.as_ref().or(self.workdir.as_ref()) {
            cmd.current_dir(dir);
        }
        let mib = |m: u64| (m > 0).then(|| m.saturating_mul(1024 * 1024));
        apply_rlimits(
            &mut cmd,
            Rlimits {
                cpu_seconds: Some(job.timeout.as_secs().saturating_add(1)),
                address_space: mib(job.requirements.ram_mb),
                file_size: mib(job.requirements.hard_disk_mb),
            },
        );
        process::spawn(
            cmd,
            &job.command[0],
            job.timeout,
            job.output_cap,
            false,
            |s| s,
            user.map(|u| u.uid),
        )
    }

    async fn health(&self) -> Result<Health, ExecutorError> {
        let t = Instant::now();
        let job = JobSpec::command("true", Vec::<String>::new(), Duration::from_secs(5));
        let outcome = self.run(job).await?.wait().await?;
        if outcome.status.success() {
            Ok(Health {
                latency: t.elapsed(),
            })
        } else {
            Err(ExecutorError::Unreachable(format!(
                "a trivial local job ended with {:?}",
                outcome.status
            )))
        }
    }
}

/// Gives `dir` and everything under it (no link followed) to `uid:gid`.
fn chown_tree(dir: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
