//! `akihabara executor …`.

use std::io::Write as _;
use std::time::Duration;

use akihabara_core::executor::{
    DockerBackend, ExecutorBackend, ExecutorError, Fleet, FleetConfig, JobSpec, JobStatus,
    LocalBackend, SshBackend, SshTarget, Stream,
};
use serde_json::json;

use crate::args::{BackendKind, ExecutorCommand, ExecutorRunArgs};
use crate::exit::bad_input;
use crate::{out, render};

/// The job's own exit code, passed through as the command's.
#[derive(Debug)]
pub struct JobExit(pub u8);

impl std::fmt::Display for JobExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the job exited with {}", self.0)
    }
}

impl std::error::Error for JobExit {}

/// `akihabara executor …`.
pub fn run(cmd: ExecutorCommand) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    match cmd {
        ExecutorCommand::Specs {
            backend,
            docker_host,
            json,
        } => rt.block_on(specs(backend, docker_host.as_deref(), json)),
        ExecutorCommand::Run(a) => rt.block_on(run_job(a)),
        ExecutorCommand::Check { config, json } => rt.block_on(check(&config, json)),
    }
}

async fn specs(backend: BackendKind, docker_host: Option<&str>, json: bool) -> anyhow::Result<()> {
    let s = match backend {
        BackendKind::Local => LocalBackend::default().capabilities().await?,
        BackendKind::Docker => docker(docker_host)?.capabilities().await?,
        BackendKind::Ssh => {
            return Err(bad_input(anyhow::anyhow!(
                "specs reads this machine or a Docker Engine; for an ssh executor, run                  `akihabara executor run --backend ssh … -- akihabara executor specs`"
            )));
        }
    };
    if json {
        out::println(serde_json::to_string(&s)?)?;
        return Ok(());
    }
    out::println(format!("hostname  {}", s.hostname))?;
    out::println(format!(
        "cpu       {} × {}",
        s.cpu_count,
        s.cpu_model.as_deref().unwrap_or("unknown model")
    ))?;
    out::println(format!("ram       {} MiB", s.ram_mb))?;
    if let Some(d) = s.disk_mb {
        out::println(format!("disk      {d} MiB free here"))?;
    }
    if s.gpus.is_empty() {
        out::println("gpus      none (no NVIDIA GPU found by nvidia-smi)")?;
    }
    for g in &s.gpus {
        out::println(format!(
            "gpu       {} ({} MiB, {})",
            g.name, g.memory_mb, g.uuid
        ))?;
    }
    Ok(())
}

fn docker(address: Option<&str>) -> anyhow::Result<DockerBackend> {
    DockerBackend::connect(address).map_err(|e| bad_input(anyhow::anyhow!("--docker-host: {e}")))
}

fn ssh_target(a: &ExecutorRunArgs) -> anyhow::Result<SshTarget> {
    let host = a
        .host
        .as_deref()
        .ok_or_else(|| bad_input(anyhow::anyhow!("--backend ssh needs --host USER@HOST:PORT")))?;
    let (user, addr) = host
        .split_once('@')
        .ok_or_else(|| bad_input(anyhow::anyhow!("--host {host:?} is not USER@HOST:PORT")))?;
    let address = addr.parse().map_err(|e| {
        bad_input(anyhow::anyhow!(
            "--host {host:?}: {addr:?} is not HOST:PORT ({e})"
        ))
    })?;
    let key = a
        .key
        .clone()
        .ok_or_else(|| bad_input(anyhow::anyhow!("--backend ssh needs --key FILE")))?;
    if user.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "--host {host:?} has an empty user"
        )));
    }
    Ok(SshTarget {
        address,
        user: user.to_owned(),
        key,
        known_hosts: a.known_hosts.clone(),
        authorized_keys: None,
    })
}

async fn run_job(a: ExecutorRunArgs) -> anyhow::Result<()> {
    if a.command.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "no command: put it after --, e.g. akihabara executor run -- echo hello"
        )));
    }
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            bad_input(anyhow::anyhow!(
                "--timeout {} must be a positive number of seconds",
                a.timeout
            ))
        })?;
    let container =
        a.image.is_some() || a.docker_host.is_some() || a.cpus > 0 || a.ram_mb > 0 || a.network;
    if container && a.backend != BackendKind::Docker {
        return Err(bad_input(anyhow::anyhow!(
            "--image, --docker-host, --cpus, --ram-mb and --network are for --backend docker"
        )));
    }
    let backend: Box<dyn ExecutorBackend> = match a.backend {
        BackendKind::Local => Box::new(LocalBackend::default()),
        BackendKind::Ssh => Box::new(SshBackend::new(ssh_target(&a)?, None)),
        BackendKind::Docker => {
            if a.image.is_none() {
                return Err(bad_input(anyhow::anyhow!(
                    "--backend docker needs --image NAME (an image already on the engine)"
                )));
            }
            Box::new(docker(a.docker_host.as_deref())?)
        }
    };
    let mut job = JobSpec::command(&a.command[0], a.command[1..].iter().cloned(), timeout);
    job.output_cap = a.output_cap;
    job.image = a.image.clone();
    job.network = a.network;
    job.requirements.cpu = a.cpus;
    job.requirements.ram_mb = a.ram_mb;
    let mut handle = backend.run(job).await.map_err(|e| match e {
        ExecutorError::BadJob(_)
        | ExecutorError::Spawn { .. }
        | ExecutorError::ImageNotFound(_)
        | ExecutorError::ImageNotAllowed(_) => bad_input(e),
        other => other.into(),
    })?;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            line = handle.next_log() => {
                let Some(l) = line else { break };
                let r = match (l.stream, a.json) {
                    (Stream::Stdout, false) => std::io::stdout().lock().write_all(&[&l.line[..], b"\n"].concat()),
                    _ => std::io::stderr().lock().write_all(&[&l.line[..], b"\n"].concat()),
                };
                if r.is_err() {
                    // A closed terminal or pipe: stop streaming, let the job finish.
                    break;
                }
            }
            _ = &mut ctrl_c => {
                handle.cancel();
                break;
            }
        }
    }
    let outcome = handle.wait().await?;
    let code: u8 = match outcome.status {
        JobStatus::Exited { code } => u8::try_from(code.rem_euclid(256)).unwrap_or(1),
        JobStatus::Signaled { signal } => u8::try_from(128 + signal).unwrap_or(255),
        JobStatus::TimedOut => 124,
        JobStatus::Cancelled => 130,
        // As a shell reports a SIGKILL (the OOM killer's signal).
        JobStatus::OutOfMemory => 137,
    };
    if a.json {
        out::println(serde_json::to_string(&outcome)?)?;
    } else if !matches!(outcome.status, JobStatus::Exited { .. }) {
        let why = match outcome.status {
            JobStatus::TimedOut => {
                format!("timed out after {timeout:?}; the job and its children were killed")
            }
            JobStatus::Cancelled => "cancelled; the job and its children were killed".to_owned(),
            JobStatus::Signaled { signal } => format!("killed by signal {signal}"),
            JobStatus::OutOfMemory => {
                "killed: the job used more memory than its limit (--ram-mb)".to_owned()
            }
            JobStatus::Exited { .. } => String::new(),
        };
        let _ = writeln!(std::io::stderr(), "akihabara: job {why}");
    }
    if code == 0 {
        Ok(())
    } else {
        Err(JobExit(code).into())
    }
}

async fn check(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let cfg = FleetConfig::read(path).map_err(bad_input)?;
    let fleet = Fleet::new(cfg);
    let states = fleet.check_all().await;
    let unhealthy = states.iter().filter(|s| !s.healthy).count();
    if json {
        out::println(json!({ "executors": states, "unhealthy": unhealthy }).to_string())?;
    } else {
        use render::Align::{Left, Right};
        let rows: Vec<Vec<String>> = states
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.backend.to_owned(),
                    s.class.clone().unwrap_or_default(),
                    if s.healthy { "healthy" } else { "UNHEALTHY" }.to_owned(),
                    s.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default(),
                    s.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out::print(render::table(
            &[
                ("ID", Left),
                ("BACKEND", Left),
                ("CLASS", Left),
                ("STATE", Left),
                ("LATENCY", Right),
                ("ERROR", Left),
            ],
            &rows,
        ))?;
    }
    if unhealthy > 0 {
        anyhow::bail!("{unhealthy} of {} executors are unhealthy", states.len());
    }
    Ok(())
}
