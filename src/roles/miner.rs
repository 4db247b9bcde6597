//! The miner role: a schedule per window from any allocation strategy, and
//! the axon routes a validator calls (`ScheduleQuery`, `PowChallenge`,
//! `PowOpen`) around any prover.

use std::sync::{Arc, RwLock};

use akihabara_gpu::Prover;
use akihabara_gpu::round::serve_pow_admitting;
use akihabara_gpu::synapse::PowService;

use crate::axon::{AxonBuilder, Caller, HandlerError, StakePolicy};
use crate::chain::{ChainClient, Hyperparameters};
use crate::schedule::{ScheduleQuery, SlotRefusal};
use crate::store::{self, StateKeys, Store};
use crate::strategy::{AllocationRequest, Eligibility};
use crate::wallet::Keypair;
use crate::{AllocationStrategy, Block, Layout, Metagraph, Netuid, Schedule, Window};

use super::{RoleError, blocking};

/// The schedule the axon answers `ScheduleQuery` with, and the block the
/// miner last saw.
type Current = Arc<RwLock<Option<(Schedule, Block)>>>;

/// A new window's schedule, from [`Miner::step`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ScheduleChange {
    /// The window the schedule covers.
    pub window: Window,
    /// Which validator each block of the window serves.
    pub schedule: Schedule,
    /// Whether it was read back from the store (a restart inside the window).
    pub resumed: bool,
    /// The metagraph it was built from (`None` when resumed), for callers
    /// that keep a stake policy current.
    pub metagraph: Option<Metagraph>,
}

/// Builds a [`Miner`].
pub struct MinerBuilder {
    keypair: Keypair,
    netuid: Netuid,
    chain: Option<Arc<dyn ChainClient>>,
    strategy: Option<Box<dyn AllocationStrategy>>,
    prover: Option<Box<dyn Prover>>,
    store: Option<Arc<dyn Store>>,
    layout: Layout,
    min_blocks: u64,
    window_blocks: u64,
    policy: Option<Arc<StakePolicy>>,
    slot_grace: Option<u64>,
    jobs: Option<super::MinerJobs>,
}

impl MinerBuilder {
    /// Also serves jobs and allocations from a fleet ([`super::MinerJobs`]).
    pub fn jobs(mut self, jobs: super::MinerJobs) -> MinerBuilder {
        self.jobs = Some(jobs);
        self
    }

    /// The chain it follows (required).
    pub fn chain(mut self, chain: Arc<dyn ChainClient>) -> MinerBuilder {
        self.chain = Some(chain);
        self
    }

    /// How validators share each window (required).
    pub fn strategy(mut self, strategy: Box<dyn AllocationStrategy>) -> MinerBuilder {
        self.strategy = Some(strategy);
        self
    }

    /// The prover that answers challenges (required).
    pub fn prover(mut self, prover: Box<dyn Prover>) -> MinerBuilder {
        self.prover = Some(prover);
        self
    }

    /// Keeps each window's schedule here, so a restart inside a window
    /// serves the same one (default: in memory only).
    pub fn store(mut self, store: Arc<dyn Store>) -> MinerBuilder {
        self.store = Some(store);
        self
    }

    /// How slots are laid out in the window (default contiguous).
    pub fn layout(mut self, layout: Layout) -> MinerBuilder {
        self.layout = layout;
        self
    }

    /// The fewest blocks a served validator gets (default 40).
    pub fn min_blocks(mut self, blocks: u64) -> MinerBuilder {
        self.min_blocks = blocks;
        self
    }

    /// Blocks per window; 0 (the default) means two tempos.
    pub fn window_blocks(mut self, blocks: u64) -> MinerBuilder {
        self.window_blocks = blocks;
        self
    }

    /// Who may call the axon ([`Miner::routes`] sets it): hotkey and
    /// coldkey lists, minimum stake, validator permit. Build it over the
    /// metagraph the miner starts from; [`Miner::step`] replaces that
    /// metagraph with each new window's. Default: the axon's own policy.
    pub fn policy(mut self, policy: StakePolicy) -> MinerBuilder {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Refuses a `PowChallenge` from a validator outside its slot, with a
    /// [`SlotRefusal`] (409) naming its next slot; `grace` blocks on each
    /// side of a slot absorb the skew between the miner's and the
    /// validator's view of the chain. Default on, with a grace of 2 blocks.
    /// Before the first schedule every validator is admitted.
    pub fn enforce_slots(mut self, grace: Option<u64>) -> MinerBuilder {
        self.slot_grace = grace;
        self
    }

    /// Checks that the required parts are there.
    pub fn build(self) -> Result<Miner, RoleError> {
        let missing = |setting: &'static str| RoleError::Setting {
            setting,
            reason: format!("a miner needs a {setting}: call .{setting}(…)"),
        };
        let keys = StateKeys::new(self.netuid, &self.keypair.account());
        Ok(Miner {
            chain: self.chain.ok_or_else(|| missing("chain"))?,
            strategy: self.strategy.ok_or_else(|| missing("strategy"))?,
            pow: Arc::new(PowService::new(
                self.prover.ok_or_else(|| missing("prover"))?,
            )),
            store: self.store.map(|s| (s, keys)),
            netuid: self.netuid,
            layout: self.layout,
            min_blocks: self.min_blocks,
            window_blocks: self.window_blocks,
            current: Arc::new(RwLock::new(None)),
            window: None,
            policy: self.policy,
            slot_grace: self.slot_grace,
            jobs: self.jobs,
        })
    }
}

/// A miner: serves proofs of work with any [`Prover`] and follows the chain
/// window by window, scheduling validators with any
/// [`AllocationStrategy`].
///
/// [`Miner::routes`] adds its routes to an axon; [`Miner::step`] is the
/// loop body that keeps the schedule current.
pub struct Miner {
    chain: Arc<dyn ChainClient>,
    strategy: Box<dyn AllocationStrategy>,
    pow: Arc<PowService>,
    store: Option<(Arc<dyn Store>, StateKeys)>,
    netuid: Netuid,
    layout: Layout,
    min_blocks: u64,
    window_blocks: u64,
    current: Current,
    window: Option<Window>,
    policy: Option<Arc<StakePolicy>>,
    slot_grace: Option<u64>,
    jobs: Option<super::MinerJobs>,
}

impl std::fmt::Debug for Miner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Miner")
            .field("netuid", &self.netuid)
            .field("strategy", &self.strategy.name())
            .field("window", &self.window)
            .finish()
    }
}

impl Miner {
    /// A miner with hotkey `keypair` on subnet `netuid`.
    pub fn builder(keypair: Keypair, netuid: Netuid) -> MinerBuilder {
        MinerBuilder {
            keypair,
            netuid,
            chain: None,
            strategy: None,
            prover: None,
            store: None,
            layout: Layout::Contiguous,
            min_blocks: 40,
            window_blocks: 0,
            policy: None,
            slot_grace: Some(2),
            jobs: None,
        }
    }

    /// The jobs and allocations served, if [`MinerBuilder::jobs`] gave any.
    pub fn jobs(&self) -> Option<&super::MinerJobs> {
        self.jobs.as_ref()
    }

    /// The caller policy set with [`MinerBuilder::policy`], shared with the
    /// axon.
    pub fn policy(&self) -> Option<Arc<StakePolicy>> {
        self.policy.clone()
    }

    /// Whether `caller` may start a challenge now: always before the first
    /// schedule or without slot enforcement; else only in one of its slots
    /// (widened by the grace), at the block the miner last saw.
    pub fn admit(&self, caller: &crate::AccountId) -> Result<(), SlotRefusal> {
        admit(&self.current, self.slot_grace, caller)
    }

    /// Adds `ScheduleQuery` (the current schedule; an error until
    /// [`Miner::step`] made one), `PowChallenge` (refused outside the
    /// caller's slot, see [`MinerBuilder::enforce_slots`]) and `PowOpen`,
    /// and sets the axon's policy when [`MinerBuilder::policy`] gave one;
    /// with [`MinerBuilder::jobs`], the job and allocation synapses too.
    pub fn routes(&self, builder: AxonBuilder) -> AxonBuilder {
        let builder = match &self.policy {
            Some(p) => builder.policy(p.clone()),
            None => builder,
        };
        let builder = match &self.jobs {
            Some(j) => j.routes(builder),
            None => builder,
        };
        let answer = self.current.clone();
        let builder = builder.route(move |_: ScheduleQuery, _| {
            let now = answer
                .read()
                .ok()
                .and_then(|c| c.as_ref().map(|(s, b)| ScheduleQuery::answer(s, *b)));
            async move {
                now.ok_or_else(|| HandlerError::internal("no schedule yet: the miner is starting"))
            }
        });
        let (current, grace) = (self.current.clone(), self.slot_grace);
        serve_pow_admitting(builder, self.pow.clone(), move |caller: &Caller| {
            admit(&current, grace, &caller.hotkey).map_err(|r| HandlerError {
                status: SlotRefusal::STATUS,
                message: r.to_string(),
            })
        })
    }

    /// The schedule of `window` for the validators of `mg`, by this miner's
    /// strategy. Pure.
    pub fn schedule_for(&self, window: Window, mg: &Metagraph) -> Result<Schedule, RoleError> {
        let req =
            AllocationRequest::new(window, self.min_blocks, Eligibility::new().candidates(mg))?;
        Ok(Schedule::build(&*self.strategy, &req, self.layout)?)
    }

    /// The schedule served now, if any.
    pub fn current(&self) -> Option<Schedule> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(s, _)| s.clone()))
    }

    /// The loop body: at `block`, makes the window's schedule when a new
    /// window starts (read back from the store after a restart, else built
    /// from the metagraph and saved) and returns it; otherwise only records
    /// the block for `ScheduleQuery` answers.
    pub async fn step(
        &mut self,
        block: Block,
        h: &Hyperparameters,
    ) -> Result<Option<ScheduleChange>, RoleError> {
        let len = match self.window_blocks {
            0 => h.tempo.saturating_mul(2).max(1),
            n => n,
        };
        let now = Window::containing(block, len)?;
        if self.window == Some(now) {
            if let Ok(mut c) = self.current.write()
                && let Some((_, b)) = c.as_mut()
            {
                *b = block;
            }
            return Ok(None);
        }
        let saved = match &self.store {
            None => None,
            Some((s, k)) => {
                let (s, k) = (s.clone(), k.clone());
                blocking(move || Ok(store::load_schedule(&*s, &k, now)?)).await?
            }
        };
        let change = match saved {
            Some(schedule) => ScheduleChange {
                window: now,
                schedule,
                resumed: true,
                metagraph: None,
            },
            None => {
                let mg = self.chain.metagraph(self.netuid).await?;
                if let Some(p) = &self.policy {
                    p.set_metagraph(mg.clone());
                }
                let schedule = self.schedule_for(now, &mg)?;
                if let Some((s, k)) = &self.store {
                    let (s, k, sch) = (s.clone(), k.clone(), schedule.clone());
                    blocking(move || Ok(store::save_schedule(&*s, &k, &sch)?)).await?;
                }
                ScheduleChange {
                    window: now,
                    schedule,
                    resumed: false,
                    metagraph: Some(mg),
                }
            }
        };
        if let Ok(mut c) = self.current.write() {
            *c = Some((change.schedule.clone(), block));
        }
        self.window = Some(now);
        Ok(Some(change))
    }
}

/// The slot check of [`Miner::admit`], shared with the challenge route.
fn admit(
    current: &Current,
    grace: Option<u64>,
    caller: &crate::AccountId,
) -> Result<(), SlotRefusal> {
    let Some(grace) = grace else {
        return Ok(());
    };
    match current.read() {
        Ok(c) => match c.as_ref() {
            Some((schedule, block)) => schedule.admit(caller, *block, grace),
            None => Ok(()),
        },
        // A writer panicked: serve rather than refuse everyone.
        Err(_) => Ok(()),
    }
}
