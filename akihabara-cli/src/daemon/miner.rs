//! `akihabara miner run`.

use std::net::SocketAddr;
use std::sync::Arc;

use akihabara::roles::{Miner, MinerJobs};
use akihabara_core::axon::{Axon, AxonConfig, RateLimit, RateLimitError, StakePolicy};
use akihabara_core::chain::ChainClient;
use akihabara_core::executor::{Fleet, FleetConfig};
use akihabara_core::market::jobs::AcceptPolicy;
use akihabara_core::market::server::Sweep;
use akihabara_core::schedule::MAX_INTERLEAVED_BLOCKS;
use akihabara_core::strategy;
use akihabara_core::wallet::Keypair;
use akihabara_core::{AllocationStrategy, Layout, Metagraph, Netuid, ScheduleError};
use akihabara_gpu::{CpuProver, Prover, ThrottledProver};
use anyhow::Context;
use serde_json::json;

use super::accept::accept_policy;
use super::args::DaemonArgs;
use super::{Backoff, Health, HyperCache, Metrics, event, key_error, role_error};
use crate::config::{self, MinerConfig};

/// What the configuration asks for, checked before anything starts.
struct Plan {
    strategy: Box<dyn AllocationStrategy>,
    layout: Layout,
    axon: AxonConfig,
    accept: Arc<dyn AcceptPolicy>,
}

fn plan(c: &MinerConfig) -> anyhow::Result<Plan> {
    super::check_chain(&c.chain)?;
    super::check_state(&c.state)?;
    let strategy =
        strategy::by_name(&c.schedule.strategy).map_err(|e| key_error("schedule.strategy", e))?;
    let layout: Layout = c
        .schedule
        .layout
        .parse()
        .map_err(|e| key_error("schedule.layout", e))?;
    if c.schedule.poll.is_zero() {
        return Err(key_error("schedule.poll", "must be positive"));
    }
    // 0 means two tempos, learnt from the chain at start (see `miner`).
    if c.schedule.window_blocks > 0 {
        check_window(c, layout, c.schedule.window_blocks)?;
    }
    if !["auto", "cpu", "cuda"].contains(&c.pow.prover.as_str()) {
        return Err(key_error(
            "pow.prover",
            format!("{:?}: use auto, cpu or cuda", c.pow.prover),
        ));
    }
    if let Some(f) = c.pow.throttle
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(key_error("pow.throttle", format!("{f}: must be in (0, 1]")));
    }
    if c.axon.max_concurrent == 0 {
        return Err(key_error("axon.max_concurrent", "must be at least 1"));
    }
    for (key, n) in [
        ("jobs.keep_ended", c.jobs.keep_ended),
        (
            "jobs.keep_ended_per_validator",
            c.jobs.keep_ended_per_validator,
        ),
    ] {
        if n == 0 {
            return Err(key_error(
                key,
                "must be at least 1 (a validator must be able to query the job it ran)",
            ));
        }
    }
    let rate_limit = match c.axon.rate_limit {
        None => None,
        Some(rps) => Some(RateLimit::new(rps, c.axon.burst).map_err(|e| match e {
            RateLimitError::ZeroBurst => key_error("axon.burst", "must be at least 1"),
            e => key_error("axon.rate_limit", e),
        })?),
    };
    let accept = accept_policy(c)?;
    Ok(Plan {
        strategy,
        layout,
        accept,
        axon: AxonConfig {
            max_concurrent: c.axon.max_concurrent,
            rate_limit,
            ..AxonConfig::default()
        },
    })
}

/// `[policy]` over the metagraph the miner starts from.
pub(crate) fn stake_policy(c: &MinerConfig, metagraph: Metagraph) -> StakePolicy {
    let p = &c.policy;
    let mut policy = StakePolicy::new(Some(metagraph))
        .deny_hotkeys(p.deny_hotkeys.iter().copied())
        .deny_coldkeys(p.deny_coldkeys.iter().copied())
        .min_stake(p.min_stake.to_rao())
        .require_permit(p.require_permit);
    if !p.allow_hotkeys.is_empty() {
        policy = policy.allow_hotkeys(p.allow_hotkeys.iter().copied());
    }
    if !p.allow_coldkeys.is_empty() {
        policy = policy.allow_coldkeys(p.allow_coldkeys.iter().copied());
    }
    policy
}

/// What `akihabara schedule` refuses for the same values, in the same
/// words, named by their config keys: a minimum larger than the window,
/// and an interleaved window longer than the layout supports.
fn check_window(c: &MinerConfig, layout: Layout, len: u64) -> anyhow::Result<()> {
    if c.schedule.min_blocks > len {
        let from = if c.schedule.window_blocks > 0 {
            "schedule.window_blocks"
        } else {
            "two tempos of the subnet"
        };
        return Err(key_error(
            "schedule.min_blocks",
            format!(
                "{} is larger than the window ({len} blocks: {from})",
                c.schedule.min_blocks
            ),
        ));
    }
    if layout == Layout::Interleaved && len > MAX_INTERLEAVED_BLOCKS {
        return Err(key_error(
            "schedule.window_blocks",
            ScheduleError::WindowTooLongForLayout {
                layout: layout.to_string(),
                len,
                max: MAX_INTERLEAVED_BLOCKS,
            },
        ));
    }
    Ok(())
}

fn prover(c: &MinerConfig) -> anyhow::Result<Box<dyn Prover>> {
    let base: Box<dyn Prover> = match c.pow.prover.as_str() {
        #[cfg(feature = "cuda")]
        "cuda" => Box::new(
            akihabara_gpu::cuda::CudaProver::new(0).context("config key `pow.prover` = cuda")?,
        ),
        #[cfg(not(feature = "cuda"))]
        "cuda" => return Err(key_error("pow.prover", "this build has no CUDA prover")),
        #[cfg(feature = "cuda")]
        "auto" => match akihabara_gpu::cuda::CudaProver::new(0) {
            Ok(p) => Box::new(p),
            Err(e) => {
                tracing::info!(reason = %e, "no CUDA device: proving on the CPU");
                Box::new(CpuProver::new())
            }
        },
        _ => Box::new(CpuProver::new()),
    };
    Ok(match c.pow.throttle {
        None => base,
        Some(f) => {
            tracing::warn!(
                fraction = f,
                "pow.throttle is set: the prover is slowed down on purpose (a simulation of slower hardware)"
            );
            Box::new(ThrottledProver::new(base, f)?)
        }
    })
}

/// `akihabara miner run`.
pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    super::check_duration(a.run.duration)?;
    let cfg: MinerConfig = config::load(&a.config, config::process_env(), &a.set)?;
    let plan = plan(&cfg)?;
    super::init_logging(a.run.log_format)?;
    let keypair =
        crate::commands::wallet::load_hotkey(&super::wallet_args(&cfg.wallet), &a.password)?;
    let fleet = match &cfg.executors.fleet {
        Some(path) => {
            let fleet = FleetConfig::read(path).map_err(|e| key_error("executors.fleet", e))?;
            for warning in fleet
                .check_remote_jobs(path)
                .map_err(|e| key_error("executors.fleet", e))?
            {
                tracing::warn!("{warning}");
            }
            Some(Arc::new(Fleet::new(fleet)))
        }
        None => None,
    };
    let prover = prover(&cfg)?;
    // One thread, as `axon serve` runs by default: at the few hundred calls
    // a second a miner sees, a second worker costs more in wake-ups than it
    // gives (CPU per call 0.17-0.19 ms with two, 0.15-0.16 ms with one, under
    // 16 Python dendrites; `scripts/soak.py cpu`). Signatures are checked in
    // batches on the axon's runtime and proofs on the blocking pool either way.
    let rt = crate::commands::axon::serve_runtime(1)?;
    rt.block_on(miner(cfg, plan, keypair, fleet, prover, a.run.duration))
}

async fn miner(
    cfg: MinerConfig,
    plan: Plan,
    keypair: Keypair,
    fleet: Option<Arc<Fleet>>,
    prover: Box<dyn Prover>,
    duration: Option<f64>,
) -> anyhow::Result<()> {
    let hotkey = keypair.account();
    let super::Started {
        dir,
        chain,
        store,
        netuid,
        uid,
        health,
    } = super::start("miner", &cfg.chain, &cfg.state, &hotkey).await?;
    if cfg.schedule.window_blocks == 0 {
        // The window is two tempos: check it now rather than fail every window.
        let h = chain
            .hyperparameters(netuid)
            .await
            .context("reading the subnet's hyperparameters")?;
        check_window(&cfg, plan.layout, h.tempo.saturating_mul(2).max(1))?;
    }
    let metagraph = chain
        .metagraph(netuid)
        .await
        .context("reading the metagraph")?;
    let metrics = Metrics::new();

    // The library's miner: the schedule per window, the pow routes and,
    // with a fleet, jobs and allocations.
    let jobs = match fleet {
        Some(fleet) => Some(
            MinerJobs::open_with(
                fleet,
                &dir.join("jobs"),
                keypair.clone(),
                plan.accept.clone(),
                cfg.jobs.volumes(),
                cfg.jobs.retention(),
            )
            .await?,
        ),
        None => None,
    };
    let mut role = Miner::builder(keypair.clone(), netuid)
        .chain(chain.clone())
        .strategy(plan.strategy)
        .prover(prover)
        .store(store.clone())
        .layout(plan.layout)
        .min_blocks(cfg.schedule.min_blocks)
        .window_blocks(cfg.schedule.window_blocks)
        // `[policy]`, on every synapse; each window's metagraph refreshes it.
        .policy(stake_policy(&cfg, metagraph))
        .enforce_slots(
            cfg.schedule
                .enforce_slots
                .then_some(cfg.schedule.slot_grace),
        );
    if let Some(j) = &jobs {
        role = role.jobs(j.clone());
    }
    let role = role.build()?;
    let builder = role.routes(
        Axon::builder(keypair.clone())
            .config(plan.axon.clone())
            .builtins(crate::commands::axon::gpus),
    );
    let mut background = jobs.map(|j| j.upkeep(log_sweep)).unwrap_or_default();
    let addr = SocketAddr::new(cfg.axon.ip, cfg.axon.port);
    let axon = builder
        .bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the axon: {e}"))?;
    let port = axon.local_addr()?.port();
    let metrics_port = match cfg.metrics.listen {
        Some(listen) => {
            let (local, task) =
                super::ops::serve(listen, metrics.clone(), health.clone(), Some(axon.stats()))
                    .await?;
            background.push(task);
            Some(local.port())
        }
        None => None,
    };
    if let Some(ip) = cfg.axon.external_ip {
        let ext_port = cfg.axon.external_port.unwrap_or(port);
        match chain.serve_axon(netuid, &keypair, ip, ext_port).await {
            Ok(Some(r)) => {
                tracing::info!(%ip, port = ext_port, block = r.block.0, "published the axon address on chain")
            }
            Ok(None) => {
                tracing::info!(%ip, port = ext_port, "the chain already holds this axon address")
            }
            Err(e) => {
                metrics.chain_errors.inc();
                tracing::warn!(error = %e, "could not publish the axon address; serving anyway");
            }
        }
    }
    event(json!({
        "event": "ready", "role": "miner", "hotkey": hotkey.to_ss58(), "uid": uid.0,
        "ip": cfg.axon.ip.to_string(), "port": port, "metrics_port": metrics_port,
        "store": store.describe(),
    }));
    tracing::info!(uid = uid.0, port, store = %store.describe(), "miner serving");

    let follower = Follower {
        chain,
        role,
        netuid,
        cfg: cfg.clone(),
        metrics,
        health,
    };
    background.push(tokio::spawn(follower.run()));
    axon.serve(super::shutdown(duration))
        .await
        .context("serving the axon")?;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    event(json!({"event": "stopped", "role": "miner"}));
    Ok(())
}

/// Follows the chain window by window and keeps the schedule current.
struct Follower {
    chain: Arc<dyn ChainClient>,
    role: Miner,
    netuid: Netuid,
    cfg: MinerConfig,
    metrics: Metrics,
    health: Arc<Health>,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = Backoff::new();
        let hyper = HyperCache::default();
        loop {
            let result = self.step(&hyper).await;
            let pause = super::settle(
                result,
                &mut backoff,
                self.cfg.schedule.poll,
                &self.metrics,
                &self.health,
                "following the chain failed; the axon keeps serving",
            );
            tokio::time::sleep(pause).await;
        }
    }

    async fn step(&mut self, hyper: &HyperCache) -> anyhow::Result<()> {
        let block = self.chain.block().await?;
        self.metrics
            .block
            .set(i64::try_from(block.0).unwrap_or(i64::MAX));
        let h = hyper.get(&*self.chain, self.netuid, block.0).await?;
        // A new window's metagraph also refreshes the role's `[policy]`.
        if let Some(change) = self.role.step(block, &h).await.map_err(role_error)? {
            let (now, schedule, resumed) = (change.window, change.schedule, change.resumed);
            self.metrics.schedule_changes.inc();
            let slots: Vec<_> = schedule
                .slots()
                .iter()
                .map(|s| json!({"validator": s.uid.0, "start": s.start.0, "end": s.end.0}))
                .collect();
            event(json!({
                "event": "schedule", "window_start": now.start.0, "window_end": now.end().0,
                "resumed": resumed, "strategy": schedule.strategy(), "slots": slots,
            }));
            tracing::info!(
                window_start = now.start.0,
                resumed,
                slots = slots.len(),
                "schedule for the window"
            );
            self.health.set(
                "window",
                json!({"start": now.start.0, "end": now.end().0, "resumed": resumed}),
            );
        }
        self.health.set("block", block.0.into());
        Ok(())
    }
}

/// Logs a sweep of expired allocations.
fn log_sweep(s: Sweep) {
    for id in s.expired {
        tracing::info!(allocation = %id, "allocation expired and revoked");
    }
    for (id, error) in s.failed {
        tracing::warn!(allocation = %id, %error, "revoking an expired allocation failed; will retry");
    }
}
