//! `akihabara executor …`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use akihabara_core::executor::{
    DockerBackend, ExecutorBackend, Fleet, FleetConfig, JobSpec, JobStatus, LocalBackend,
    SshBackend, SshTarget, Stream,
};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::exit::{self, JobExit, bad_input};
use crate::{out, render};

#[derive(Debug, Subcommand)]
pub enum ExecutorCommand {
    /// Show the hardware an executor offers (this machine, or a Docker Engine)
    #[command(after_help = "\
Examples:
  akihabara executor specs
  akihabara executor specs --backend docker --docker-host unix:///var/run/docker.sock --json")]
    Specs {
        /// Which executor: this machine (local) or a Docker Engine (docker)
        #[arg(long, value_enum, default_value = "local")]
        backend: BackendKind,
        /// The Docker Engine (docker) [default: $DOCKER_HOST, else unix:///var/run/docker.sock]
        #[arg(long, value_name = "ADDRESS")]
        docker_host: Option<String>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Run a command on an executor, streaming its output; exits with the job's code
    #[command(after_help = "\
Backends:
  local  this machine: own process group, timeout and Ctrl-C kill the job and
         its children, rlimits applied (cgroup limits: not enforced yet)
  ssh    a host over the system OpenSSH client, key authentication only
  docker a container of --image on a Docker Engine (--docker-host): no
         network unless --network, a read-only root with a writable /work,
         --cpus and --ram-mb as limits, removed when the job ends; images
         are never pulled (a missing one is an error)

Exit code: the job's; 128+N when killed by signal N; 124 on timeout; 130
when cancelled with Ctrl-C; 137 when a container ran out of memory.

Examples:
  akihabara executor run --timeout 60 -- nvidia-smi
  akihabara executor run --backend ssh --host ubuntu@10.0.0.5:22 --key ~/.ssh/id_ed25519 -- python3 train.py
  akihabara executor run --backend docker --image busybox:1.36 --ram-mb 512 -- sh -c 'echo hi'")]
    Run(ExecutorRunArgs),
    /// Check the health of every executor in a fleet file
    #[command(after_help = "\
A fleet file (TOML):
  [health]
  interval = \"10s\"
  timeout = \"5s\"
  retries = 2

  [[executors]]
  id = \"local\"
  backend = \"local\"
  class = \"cpu\"

  [[executors]]
  id = \"gpu-1\"
  backend = \"ssh\"
  address = \"10.0.0.5:22\"
  user = \"ubuntu\"
  key = \"~/.ssh/id_ed25519\"
  class = \"A100\"
  # Allocations add validators' keys here (default ~/.ssh/authorized_keys
  # of `user`; dedicate that user to allocations)
  authorized_keys = \"/home/ubuntu/.ssh/authorized_keys\"

Exit code 1 when any executor is unhealthy.")]
    Check {
        /// The fleet file
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// This machine
    Local,
    /// A host over SSH
    Ssh,
    /// A container on a Docker Engine
    Docker,
}

#[derive(Debug, Args)]
pub struct ExecutorRunArgs {
    /// Where to run
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// USER@HOST:PORT (ssh)
    #[arg(long, value_name = "USER@HOST:PORT")]
    pub host: Option<String>,
    /// Private key (ssh)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// known_hosts file to check the host key against (ssh) [default: accept a new host once]
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// The image the job runs in (docker; required)
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// The Docker Engine (docker) [default: $DOCKER_HOST, else unix:///var/run/docker.sock]
    #[arg(long, value_name = "ADDRESS")]
    pub docker_host: Option<String>,
    /// CPU limit, whole CPUs (docker)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub cpus: u32,
    /// Memory limit in MiB, no swap (docker)
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub ram_mb: u64,
    /// Give the container a network (docker; none by default)
    #[arg(long)]
    pub network: bool,
    /// Seconds before the job is killed
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 3600.0,
        allow_negative_numbers = true
    )]
    pub timeout: f64,
    /// Bytes of each output stream kept in the summary
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub output_cap: usize,
    /// Print the outcome as one JSON object at the end (output still streams to stderr)
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments, after --
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

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
    let mut handle = backend.run(job).await.map_err(exit::executor)?;
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
