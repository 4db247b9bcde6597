//! `akihabara axon serve`, and the serving pieces the daemons and the demo share.

mod args;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use akihabara_core::axon::{Axon, AxonBuilder, AxonConfig, RateLimit, RateLimitError, StakePolicy};
use akihabara_core::executor::{Fleet, FleetConfig};
use akihabara_core::market::jobs::{AcceptAll, AcceptPolicy};
use akihabara_core::market::server::Sweep;
use akihabara_core::protocol::{GpuInfo, nvidia_smi_gpus};
use akihabara_core::wallet::Keypair;
use anyhow::Context;
use serde_json::json;

pub use self::args::{AxonCommand, AxonServeArgs};

use crate::commands::read_metagraph;
use crate::exit::bad_input;
use crate::out;

pub(crate) fn positive_seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(bad_input(anyhow::anyhow!(
            "{flag} must be a positive number of seconds, not {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Most threads `--threads` may ask for: more than the cores only cost a
/// stack each, and thousands abort the process when the system refuses them.
pub(crate) const MAX_THREADS: usize = 256;

/// The axon's runtime: one thread (the cheapest per call, see `benches/axon.rs`)
/// or a pool of `threads` (at most [`MAX_THREADS`]).
pub(crate) fn serve_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    match threads {
        0 => Err(bad_input(anyhow::anyhow!("--threads must be at least 1"))),
        n if n > MAX_THREADS => Err(bad_input(anyhow::anyhow!(
            "--threads {n} is more than {MAX_THREADS}"
        ))),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime"),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()
            .context("starting the async runtime"),
    }
}

fn config(a: &AxonServeArgs) -> anyhow::Result<AxonConfig> {
    if a.max_concurrent == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--max-concurrent must be at least 1"
        )));
    }
    if a.max_body_bytes == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--max-body-bytes must be at least 1"
        )));
    }
    let rate_limit = match a.rate_limit {
        None => None,
        Some(rps) => Some(RateLimit::new(rps, a.burst).map_err(|e| match e {
            RateLimitError::ZeroBurst => bad_input(anyhow::anyhow!("--burst must be at least 1")),
            e => bad_input(anyhow::anyhow!("--rate-limit {e}")),
        })?),
    };
    Ok(AxonConfig {
        max_body_bytes: a.max_body_bytes,
        max_concurrent: a.max_concurrent,
        max_timeout: positive_seconds("--max-timeout", a.max_timeout)?,
        rate_limit,
        accept_btauth: !a.no_btauth,
        ..AxonConfig::default()
    })
}

fn policy(a: &AxonServeArgs) -> anyhow::Result<StakePolicy> {
    let mg = match &a.metagraph {
        Some(path) => Some(read_metagraph(path).map_err(bad_input)?),
        None => None,
    };
    let mut p = StakePolicy::new(mg).deny_hotkeys(a.blacklist.iter().copied());
    if !a.allow.is_empty() {
        p = p.allow_hotkeys(a.allow.iter().copied());
    }
    if !a.deny_coldkey.is_empty() {
        p = p.deny_coldkeys(a.deny_coldkey.iter().copied());
    }
    if !a.allow_coldkey.is_empty() {
        p = p.allow_coldkeys(a.allow_coldkey.iter().copied());
    }
    if let Some(min) = a.min_stake {
        p = p.min_stake(min.to_rao());
    }
    Ok(p.require_permit(!a.no_permit_required))
}

/// Resolves when SIGINT or SIGTERM arrives, or after `duration`.
pub(crate) async fn shutdown_signal(duration: Option<Duration>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
        _ = timer => {},
    }
}

/// The machine's GPUs for `SpecsQuery`: from the CUDA driver when it loads,
/// else from `nvidia-smi` (none when neither exists).
pub(crate) fn gpus() -> Vec<GpuInfo> {
    #[cfg(feature = "cuda")]
    if let Ok(devices) = akihabara_gpu::cuda::devices() {
        return devices
            .into_iter()
            .map(|d| GpuInfo {
                name: d.name,
                memory_mb: d.memory_bytes / (1024 * 1024),
                uuid: d.uuid,
            })
            .collect();
    }
    nvidia_smi_gpus()
}

/// `akihabara axon serve`.
pub fn serve(cmd: AxonCommand) -> anyhow::Result<()> {
    let AxonCommand::Serve(a) = cmd;
    let duration = a
        .duration
        .map(|d| positive_seconds("--duration", d))
        .transpose()?;
    let config = config(&a)?;
    let policy = policy(&a)?;
    let rt = serve_runtime(a.threads)?;
    let keypair = a.signer.hotkey()?;
    let hotkey = keypair.account().to_ss58();
    let addr = SocketAddr::new(a.ip, a.port);
    let fleet = match &a.fleet {
        Some(path) => {
            let fleet = FleetConfig::read(path).map_err(bad_input)?;
            for warning in fleet.check_remote_jobs(path).map_err(bad_input)? {
                eprintln!("warning: {warning}");
            }
            Some(Arc::new(Fleet::new(fleet)))
        }
        None => None,
    };
    rt.block_on(async move {
        let mut builder = Axon::builder(keypair.clone())
            .config(config)
            .policy(policy)
            .builtins(gpus);
        let mut background = Vec::new();
        if let Some(fleet) = fleet {
            let dir = match &a.state_dir {
                Some(d) => d.clone(),
                None => {
                    akihabara_core::fs::expand_tilde(std::path::Path::new("~/.akihabara/miner"))
                        .join(&hotkey)
                }
            };
            let (b, tasks) = serve_jobs(
                builder,
                fleet,
                &dir,
                keypair,
                Arc::new(AcceptAll),
                akihabara_core::market::volumes::VolumePolicy {
                    allow_private: a.allow_private_file_urls,
                    ..Default::default()
                },
                report_sweep,
            )
            .await?;
            builder = b;
            background.extend(tasks);
        }
        let axon = builder
            .bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let port = axon.local_addr()?.port();
        let stats = axon.stats();
        let ready =
            json!({"event": "ready", "hotkey": hotkey, "ip": a.ip.to_string(), "port": port});
        out::println(ready.to_string())?;
        axon.serve(shutdown_signal(duration))
            .await
            .context("serving the axon")?;
        background.iter().for_each(tokio::task::JoinHandle::abort);
        let by_status: serde_json::Map<String, serde_json::Value> = stats
            .by_status()
            .into_iter()
            .map(|(s, n)| (s.to_string(), n.into()))
            .collect();
        let stopped =
            json!({"event": "stopped", "requests": stats.total(), "by_status": by_status});
        out::println(stopped.to_string())?;
        Ok(())
    })
}

/// Serves jobs and allocations from `fleet` with state in `dir` (the
/// library's [`MinerJobs`](akihabara::roles::MinerJobs)): opens the
/// service, checks the fleet once, and starts its health monitor and the
/// sweep of expired allocations (each sweep given to `report`).
/// Returns the builder with the routes and the background tasks.
pub(crate) async fn serve_jobs(
    builder: AxonBuilder,
    fleet: Arc<Fleet>,
    dir: &Path,
    keypair: Keypair,
    accept: Arc<dyn AcceptPolicy>,
    volumes: akihabara_core::market::volumes::VolumePolicy,
    report: fn(Sweep),
) -> anyhow::Result<(AxonBuilder, Vec<tokio::task::JoinHandle<()>>)> {
    let jobs = akihabara::roles::MinerJobs::open_with(
        fleet,
        dir,
        keypair,
        accept,
        volumes,
        akihabara::market::server::Retention::default(),
    )
    .await?;
    Ok((jobs.routes(builder), jobs.upkeep(report)))
}

/// Reports a sweep as JSON event lines.
fn report_sweep(sweep: Sweep) {
    for id in sweep.expired {
        let _ =
            out::println(json!({"event": "allocation_expired", "allocation_id": id}).to_string());
    }
    for (id, error) in sweep.failed {
        let _ = out::println(
            json!({"event": "allocation_revoke_failed", "allocation_id": id, "error": error})
                .to_string(),
        );
    }
}
