//! The validator's side of organic jobs: the [`Router`] hands each queued
//! job to a miner, best score first, moves on when one declines, and
//! follows the job to its end.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::chain::ChainClient;
use crate::dendrite::{AxonTarget, Dendrite};
use crate::market::client::{cancel_job, job_logs, query_job, submit_job};
use crate::market::jobs::{DeclineReason, JobRequest, ReceiptStore};
use crate::market::wire::JobReply;
use crate::wallet::Keypair;
use crate::{AccountId, Netuid};

use super::GatewayError;
use super::cross::CrossChecker;
use super::jobs::{CrossCheck, JobState, MinerAttempt, OrganicJob};
use super::service::Gateway;

/// A miner the router may send jobs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Its axon.
    pub target: AxonTarget,
    /// Higher is tried first (the chain's incentive, say).
    pub score: f64,
}

/// Where the router finds miners.
#[async_trait::async_trait]
pub trait MinerDirectory: Send + Sync {
    /// The miners now, in any order.
    async fn miners(&self) -> Result<Vec<Candidate>, GatewayError>;
}

/// The miners of a subnet, from a [`ChainClient`]'s metagraph: every neuron
/// with a served axon but the validator itself, scored by incentive.
pub struct ChainMiners {
    chain: Arc<dyn ChainClient>,
    netuid: Netuid,
    me: AccountId,
}

impl ChainMiners {
    /// The miners of `netuid`, leaving out `me`.
    pub fn new(chain: Arc<dyn ChainClient>, netuid: Netuid, me: AccountId) -> ChainMiners {
        ChainMiners { chain, netuid, me }
    }
}

#[async_trait::async_trait]
impl MinerDirectory for ChainMiners {
    async fn miners(&self) -> Result<Vec<Candidate>, GatewayError> {
        let mg = self.chain.metagraph(self.netuid).await?;
        Ok(mg
            .neurons()
            .iter()
            .filter(|n| n.hotkey != self.me)
            .filter_map(|n| {
                let a = n.axon?;
                (a.port() != 0 && !a.ip().is_unspecified()).then(|| Candidate {
                    target: AxonTarget::new(a.ip(), a.port(), n.hotkey),
                    score: n.incentive.unwrap_or(0.0),
                })
            })
            .collect())
    }
}

/// How the router paces itself.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterSettings {
    /// How long one call to a miner may take.
    pub call_timeout: Duration,
    /// How often running jobs are asked for their state, and busy ones
    /// offered again.
    pub poll: Duration,
    /// How long a job may wait for a free executor before it fails.
    pub queue_timeout: Duration,
    /// How long past its own timeout a running job may go unreported before
    /// it is failed as lost.
    pub grace: Duration,
}

impl Default for RouterSettings {
    fn default() -> RouterSettings {
        RouterSettings {
            call_timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            queue_timeout: Duration::from_secs(300),
            grace: Duration::from_secs(120),
        }
    }
}

/// Routes a [`Gateway`]'s jobs to miners.
pub struct Router {
    gateway: Arc<Gateway>,
    directory: Arc<dyn MinerDirectory>,
    dendrite: Dendrite,
    keypair: Keypair,
    receipts: ReceiptStore,
    settings: RouterSettings,
    checker: Option<Arc<CrossChecker>>,
    resumed_checks: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("validator", &self.keypair.account())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What one offer round of a queued job came to.
enum Offered {
    /// Every miner that could run the class was busy or unreachable.
    Wait,
    /// No miner can run it.
    Nobody(String),
}

impl Router {
    /// A router signing jobs with `keypair` (the validator's hotkey) and
    /// keeping the miners' receipts in `receipts`.
    pub fn new(
        gateway: Arc<Gateway>,
        directory: Arc<dyn MinerDirectory>,
        keypair: Keypair,
        receipts: ReceiptStore,
        settings: RouterSettings,
    ) -> Result<Router, GatewayError> {
        let dendrite = Dendrite::new(keypair.clone())?;
        Ok(Router {
            gateway,
            directory,
            dendrite,
            keypair,
            receipts,
            settings,
            checker: None,
            resumed_checks: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Calls miners through `dendrite`, a clone of one this process already
    /// uses with the same hotkey (the validator's rounds'), so that both
    /// share one budget of calls in flight to each miner instead of
    /// doubling it. An error if it signs with another hotkey.
    pub fn sharing(mut self, dendrite: Dendrite) -> Result<Router, GatewayError> {
        let mine = self.keypair.account().to_ss58();
        if dendrite.hotkey() != mine {
            return Err(GatewayError::Setting(format!(
                "the dendrite to share signs as {}, this router's jobs as {mine}",
                dendrite.hotkey()
            )));
        }
        self.dendrite = dendrite;
        Ok(self)
    }

    /// The dendrite it calls miners with.
    pub fn dendrite(&self) -> &Dendrite {
        &self.dendrite
    }

    /// Cross-checks a share of the finished jobs with `checker`.
    pub fn cross_check(mut self, checker: CrossChecker) -> Router {
        self.checker = Some(Arc::new(checker));
        self
    }

    /// Whether a cross-check is running now.
    pub fn checking(&self) -> bool {
        self.checker.as_ref().is_some_and(|c| c.busy())
    }

    /// Runs until `stop` resolves: resumes the jobs a previous run left
    /// unfinished, then routes new ones as they come.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "routing organic jobs");
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.gateway.woken() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// One pass: each unfinished job is offered or asked for its state.
    pub async fn step(&self) -> Result<(), GatewayError> {
        if let Some(checker) = &self.checker
            && !self
                .resumed_checks
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // Checks a previous run drew but did not finish.
            for job in self.gateway.book().pending_checks()? {
                checker.start(self.gateway.clone(), job);
            }
        }
        let active = self.gateway.active_jobs();
        let cancels = self.gateway.take_cancels();
        if active.is_empty() && cancels.is_empty() {
            return Ok(());
        }
        let mut miners = self.directory.miners().await?;
        miners.sort_by(|a, b| b.score.total_cmp(&a.score));
        for (id, miner) in cancels {
            let Some(m) = miners.iter().find(|c| c.target.hotkey == miner) else {
                continue;
            };
            match cancel_job(&self.dendrite, &m.target, &id, self.settings.call_timeout).await {
                Ok(reply) => tracing::info!(job = %id, %miner, ?reply, "cancel sent to the miner"),
                Err(e) => {
                    tracing::warn!(job = %id, %miner, error = %e, "the miner was not told of a cancel; it runs the job until its timeout")
                }
            }
        }
        for id in active {
            let Some(job) = self.gateway.book().get(&id)? else {
                self.gateway.forget(&id);
                continue;
            };
            match job.state {
                JobState::Queued => self.offer(job, &miners).await?,
                JobState::Running => self.follow(job, &miners).await?,
                _ => self.gateway.forget(&id),
            }
        }
        Ok(())
    }

    fn request(&self, job: &OrganicJob) -> JobRequest {
        JobRequest {
            job_id: job.id.clone(),
            validator: self.keypair.account(),
            hardware_class: job.order.class.clone(),
            timeout_s: job.order.timeout_s,
            command: job.order.command.clone(),
            requirements: Default::default(),
            output_dir: None,
            image: job.order.image.clone(),
            env: job.order.env.clone(),
            inputs: job.order.inputs.clone(),
            outputs: job.order.outputs.clone(),
            issued_at_ms: self.gateway.now_ms(),
            signature: String::new(),
        }
        .sign(&self.keypair)
    }

    async fn offer(&self, job: OrganicJob, miners: &[Candidate]) -> Result<(), GatewayError> {
        let request = self.request(&job);
        let mut attempts = Vec::new();
        let mut outcome = Offered::Nobody("no miner is registered with a served axon".into());
        let mut refusals = BTreeSet::new();
        for m in miners {
            let answer = submit_job(
                &self.dendrite,
                &m.target,
                request.clone(),
                &self.receipts,
                self.settings.call_timeout,
            )
            .await;
            match answer {
                Ok(JobReply::Accepted { receipt }) => {
                    let id = job.id.clone();
                    let miner = m.target.hotkey;
                    let taken = self
                        .gateway
                        .transition(&id, |j| {
                            keep_last(&mut j.attempts, attempts.drain(..));
                            if j.state != JobState::Queued {
                                return false;
                            }
                            j.miner = Some(miner);
                            j.receipts.push(receipt.clone());
                            j.note(
                                JobState::Running,
                                format!("accepted by miner {miner}"),
                                self.gateway.now_ms(),
                            );
                            true
                        })
                        .await?;
                    if !taken {
                        tracing::warn!(job = %id, %miner, "a job cancelled while it was offered runs on the miner until its timeout");
                    }
                    return Ok(());
                }
                // A job id the miner already knows: it runs, or ran, there.
                Ok(
                    reply @ (JobReply::Running
                    | JobReply::Finished { .. }
                    | JobReply::Failed { .. }),
                ) => {
                    let miner = m.target.hotkey;
                    self.gateway
                        .transition(&job.id, |j| {
                            if j.state != JobState::Queued {
                                return false;
                            }
                            j.miner = Some(miner);
                            j.note(
                                JobState::Running,
                                format!("miner {miner} already had it ({})", reply.state()),
                                self.gateway.now_ms(),
                            );
                            true
                        })
                        .await?;
                    return Ok(());
                }
                Ok(JobReply::Declined { reason, detail }) => {
                    attempts.push(MinerAttempt {
                        miner: m.target.hotkey,
                        outcome: "declined".into(),
                        detail: format!("{}: {detail}", reason_name(reason)),
                    });
                    match reason {
                        DeclineReason::Busy => outcome = Offered::Wait,
                        other => {
                            refusals.insert(reason_name(other));
                        }
                    }
                }
                Ok(JobReply::Unknown) => {}
                Err(e) => {
                    attempts.push(MinerAttempt {
                        miner: m.target.hotkey,
                        outcome: "unreachable".into(),
                        detail: e.to_string(),
                    });
                    if e.is_unreachable() || e.is_busy() {
                        outcome = Offered::Wait;
                    } else {
                        refusals.insert("call refused");
                    }
                }
            }
        }
        if let Offered::Nobody(why) = &mut outcome
            && !refusals.is_empty()
        {
            *why = format!(
                "every miner declined it ({})",
                refusals.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        let waited = self.gateway.now_ms().saturating_sub(job.created_ms);
        let expired = waited > self.settings.queue_timeout.as_millis() as u64;
        let now = self.gateway.now_ms();
        self.gateway
            .transition(&job.id, |j| {
                if j.state != JobState::Queued {
                    return false;
                }
                keep_last(&mut j.attempts, attempts.drain(..));
                match &outcome {
                    Offered::Nobody(why) => {
                        j.error = Some(why.clone());
                        j.note(JobState::Failed, why.clone(), now);
                        true
                    }
                    Offered::Wait if expired => {
                        let why = format!(
                            "no miner had a free {} executor within {} s",
                            j.order.class,
                            waited / 1000
                        );
                        j.error = Some(why.clone());
                        j.note(JobState::Failed, why, now);
                        true
                    }
                    Offered::Wait => {
                        if j.history.last().map(|e| e.detail.as_str()) != Some(WAITING) {
                            j.note(JobState::Queued, WAITING, now);
                        }
                        true
                    }
                }
            })
            .await?;
        Ok(())
    }

    async fn follow(&self, job: OrganicJob, miners: &[Candidate]) -> Result<(), GatewayError> {
        let Some(miner) = job.miner else {
            return self
                .fail(&job.id, "running without a miner (a corrupt record)")
                .await;
        };
        let now = self.gateway.now_ms();
        let started = job
            .history
            .iter()
            .rev()
            .find(|e| e.state == JobState::Running)
            .map_or(job.created_ms, |e| e.at_ms);
        let deadline = started
            + job.order.timeout_s.saturating_mul(1000)
            + self.settings.grace.as_millis() as u64;
        let Some(target) = miners.iter().find(|c| c.target.hotkey == miner) else {
            if now > deadline {
                return self
                    .fail(&job.id, &format!("miner {miner} left the subnet"))
                    .await;
            }
            return Ok(());
        };
        self.fetch_logs(&job.id, &target.target).await;
        let answer = query_job(
            &self.dendrite,
            &target.target,
            &job.id,
            &self.receipts,
            self.settings.call_timeout,
        )
        .await;
        if matches!(
            answer,
            Ok(JobReply::Finished { .. } | JobReply::Failed { .. })
        ) {
            // The lines written between the fetch and the end.
            self.fetch_logs(&job.id, &target.target).await;
        }
        match answer {
            Ok(JobReply::Finished {
                exit_code,
                stdout_sha256,
                stderr_sha256,
                output_sha256,
                receipt,
            }) => {
                // Drawn only now that the miner has reported, so it could not
                // know whether this job would be checked.
                let check =
                    job.order.deterministic && self.checker.as_ref().is_some_and(|c| c.draw());
                let finished = self
                    .gateway
                    .transition(&job.id, |j| {
                        if j.state != JobState::Running {
                            return false;
                        }
                        if check {
                            j.cross_check = Some(CrossCheck::Pending);
                        }
                        j.exit_code = Some(exit_code);
                        j.stdout_sha256 = Some(stdout_sha256.clone());
                        j.stderr_sha256 = Some(stderr_sha256.clone());
                        j.output_sha256 = output_sha256.clone();
                        j.receipts.push(receipt.clone());
                        j.note(
                            JobState::Finished,
                            format!("exited with code {exit_code}"),
                            now,
                        );
                        true
                    })
                    .await?;
                if finished
                    && check
                    && let (Some(checker), Some(job)) =
                        (&self.checker, self.gateway.book().get(&job.id)?)
                {
                    checker.start(self.gateway.clone(), job);
                }
            }
            Ok(JobReply::Failed { reason, receipt }) => {
                self.gateway
                    .transition(&job.id, |j| {
                        if j.state != JobState::Running {
                            return false;
                        }
                        j.receipts.extend(receipt.clone());
                        j.attempts.push(MinerAttempt {
                            miner,
                            outcome: "failed".into(),
                            detail: reason.clone(),
                        });
                        j.error = Some(reason.clone());
                        j.note(JobState::Failed, format!("miner {miner}: {reason}"), now);
                        true
                    })
                    .await?;
            }
            Ok(JobReply::Unknown) => {
                self.fail(
                    &job.id,
                    &format!("miner {miner} does not know the job it accepted"),
                )
                .await?;
            }
            Ok(_) | Err(_) if now > deadline => {
                self.fail(
                    &job.id,
                    &format!("miner {miner} did not report the end of the job in time"),
                )
                .await?;
            }
            Ok(_) | Err(_) => {}
        }
        Ok(())
    }

    /// Reads the job's new output lines from its miner (a few pages at
    /// most per pass; a failure is retried next pass).
    async fn fetch_logs(&self, id: &str, miner: &AxonTarget) {
        for _ in 0..8 {
            let offset = self.gateway.log_offset(id);
            match job_logs(
                &self.dendrite,
                miner,
                id,
                offset,
                self.settings.call_timeout,
            )
            .await
            {
                Ok(reply) => {
                    let more = !reply.lines.is_empty() && !reply.done;
                    self.gateway.add_logs(id, &reply);
                    if !more || reply.lines.len() < crate::market::logs::MAX_PER_REPLY {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(job = %id, error = %e, "reading a job's output lines");
                    return;
                }
            }
        }
    }

    async fn fail(&self, id: &str, why: &str) -> Result<(), GatewayError> {
        let now = self.gateway.now_ms();
        self.gateway
            .transition(id, |j| {
                if j.state.is_final() {
                    return false;
                }
                j.error = Some(why.to_owned());
                j.note(JobState::Failed, why, now);
                true
            })
            .await?;
        Ok(())
    }
}

const WAITING: &str = "waiting for a free executor";

/// The most miner attempts a job keeps (the latest).
const MAX_ATTEMPTS: usize = 64;

fn keep_last(all: &mut Vec<MinerAttempt>, new: impl Iterator<Item = MinerAttempt>) {
    all.extend(new);
    if all.len() > MAX_ATTEMPTS {
        all.drain(..all.len() - MAX_ATTEMPTS);
    }
}

fn reason_name(r: DeclineReason) -> &'static str {
    match r {
        DeclineReason::Busy => "busy",
        DeclineReason::UnsupportedClass => "unsupported_class",
        DeclineReason::ValidatorBlacklisted => "validator_blacklisted",
        DeclineReason::Unprofitable => "unprofitable",
        DeclineReason::Invalid => "invalid",
    }
}
