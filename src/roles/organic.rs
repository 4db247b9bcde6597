//! Organic work in the validator's books: jobs end users sent through a
//! gateway ([`crate::gateway`]) are paid like the validator's own benchmark
//! jobs (their worked seconds, per class, go into the job ledger the
//! `hardware-class` scorer reads), and a miner caught by a cross-check is
//! penalised like one that failed a probe.

use crate::{AccountId, Uid};

use super::{RoleError, Validator};

/// An organic job a miner ran to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganicRun {
    /// The job's id (unique per gateway).
    pub job_id: String,
    /// The miner that ran it.
    pub miner: AccountId,
    /// The hardware class it ran on.
    pub class: String,
    /// When it started, seconds since the Unix epoch.
    pub started_s: u64,
    /// When it ended, seconds since the Unix epoch.
    pub ended_s: u64,
}

/// A miner whose organic result differed from a trusted executor's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganicPenalty {
    /// The job.
    pub job_id: String,
    /// The miner.
    pub miner: AccountId,
    /// What differed.
    pub reason: String,
}

/// What [`Validator::record_organic`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganicReport {
    /// Runs added to the ledger.
    pub paid: usize,
    /// Miners penalised.
    pub penalised: usize,
    /// Runs or penalties of hotkeys no longer on the subnet (dropped).
    pub unknown: usize,
}

impl Validator {
    /// Adds organic runs to the job ledger (as worked for this validator)
    /// and applies penalties, then saves the state. A run recorded before
    /// (the same job id) is not counted twice.
    pub async fn record_organic(
        &mut self,
        runs: &[OrganicRun],
        penalties: &[OrganicPenalty],
    ) -> Result<OrganicReport, RoleError> {
        let mut report = OrganicReport::default();
        if runs.is_empty() && penalties.is_empty() {
            return Ok(report);
        }
        let mg = self.chain.metagraph(self.netuid).await?;
        self.follow(&mg);
        let uid_of = |hk: &AccountId| mg.by_hotkey(hk).map(|n| n.uid);
        for r in runs {
            let Some(uid) = uid_of(&r.miner) else {
                report.unknown += 1;
                continue;
            };
            let id = format!("organic:{}", r.job_id);
            if self
                .probes
                .ledger
                .start(&id, uid, self.uid, &r.class, r.started_s)
                .is_ok()
                && self
                    .probes
                    .ledger
                    .finish(&id, r.ended_s.max(r.started_s))
                    .is_ok()
            {
                report.paid += 1;
            }
        }
        for p in penalties {
            let Some(uid) = uid_of(&p.miner) else {
                report.unknown += 1;
                continue;
            };
            tracing::warn!(uid = uid.0, miner = %p.miner, job = %p.job_id, reason = %p.reason, "organic job cross-check failed: penalised");
            self.probes.penalties.penalize(uid);
            report.penalised += 1;
        }
        self.save().await?;
        Ok(report)
    }

    /// The current penalty of `uid`, in `[0, 1]` (probes, cross-checks and
    /// failed proofs set it; it decays each epoch).
    pub fn penalty(&self, uid: Uid) -> f64 {
        self.probes.penalties.get(uid)
    }
}
