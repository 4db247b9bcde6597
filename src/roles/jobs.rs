//! The miner's job market as part of the role: `JobSubmit`, `JobQuery`,
//! `Allocate` and `Deallocate` answered from a [`Fleet`] of executors.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::axon::AxonBuilder;
use crate::executor::Fleet;
use crate::market::jobs::AcceptPolicy;
use crate::market::server::{JobService, Retention, Sweep};
use crate::market::volumes::VolumePolicy;
use crate::wallet::Keypair;

use super::RoleError;

/// Jobs and allocations served from a fleet, with receipts and allocations
/// kept in a state directory so a restart loses neither. Give it to
/// [`MinerBuilder::jobs`](super::MinerBuilder::jobs) to serve it beside the
/// proof of work, and run [`MinerJobs::upkeep`] while the axon serves.
#[derive(Clone, Debug)]
pub struct MinerJobs {
    service: Arc<JobService>,
    fleet: Arc<Fleet>,
}

impl MinerJobs {
    /// Opens the state in `dir` (created if missing) and checks every
    /// executor once, so the healthy ones take jobs from the first call.
    /// `accept` decides what the protocol's rule leaves open. Callers are
    /// vetted by the axon's policy before a handler runs; the service
    /// checks that a job is signed by its caller.
    pub async fn open(
        fleet: Arc<Fleet>,
        dir: &Path,
        keypair: Keypair,
        accept: Arc<dyn AcceptPolicy>,
    ) -> Result<MinerJobs, RoleError> {
        MinerJobs::open_with(
            fleet,
            dir,
            keypair,
            accept,
            VolumePolicy::default(),
            Retention::default(),
        )
        .await
    }

    /// [`MinerJobs::open`] with a policy for jobs' input and output files
    /// (their sizes, and whether their URLs may reach private addresses) and
    /// a budget of ended jobs whose answers are kept for `JobQuery`.
    pub async fn open_with(
        fleet: Arc<Fleet>,
        dir: &Path,
        keypair: Keypair,
        accept: Arc<dyn AcceptPolicy>,
        volumes: VolumePolicy,
        retention: Retention,
    ) -> Result<MinerJobs, RoleError> {
        let service = JobService::open_retaining(
            dir,
            fleet.clone(),
            keypair,
            accept,
            Arc::new(|_: &crate::AccountId| true),
            retention,
        )
        .map_err(|e| RoleError::Setting {
            setting: "state.dir",
            reason: format!("opening the miner's job state in {}: {e}", dir.display()),
        })?
        .with_volumes(volumes);
        fleet.check_all().await;
        Ok(MinerJobs {
            service: Arc::new(service),
            fleet,
        })
    }

    /// The service (receipts, live allocations).
    pub fn service(&self) -> &Arc<JobService> {
        &self.service
    }

    /// Adds the four synapses to `builder`.
    pub fn routes(&self, builder: AxonBuilder) -> AxonBuilder {
        self.service.routes(builder)
    }

    /// Starts the fleet's health monitor and a sweep of expired
    /// allocations every 5 s (each sweep handed to `report`). Abort the
    /// handles to stop them.
    pub fn upkeep(
        &self,
        report: impl Fn(Sweep) + Send + Sync + 'static,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let sweeper = self.service.clone();
        let sweep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                report(sweeper.sweep().await);
            }
        });
        vec![self.fleet.monitor(), sweep]
    }
}
