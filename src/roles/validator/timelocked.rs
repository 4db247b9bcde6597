//! The validator's timelocked commits: sent where the runtime takes them,
//! followed until the chain has revealed them, and sent again when a reveal
//! window passes without one (a drand pulse that never came), so weights are
//! neither lost nor committed twice.

use serde::{Deserialize, Serialize};

use super::{Validator, WeightsReport};
use crate::chain::{
    ChainError, CommitStatus, Hyperparameters, PendingCommit, TimelockReceipt, TimelockWeights,
};
use crate::roles::RoleError;
use crate::{Block, Uid};

/// A timelocked commit the chain has not revealed yet (kept in the store, so
/// a restart neither loses it nor commits again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PendingTimelock {
    /// The drand round that opens it.
    pub reveal_round: u64,
    /// The block it landed in.
    pub commit_block: u64,
    /// The last block the chain can reveal it in.
    pub reveal_until: u64,
    /// What was committed.
    pub uids: Vec<u16>,
    /// u16 weights, one per uid.
    pub weights: Vec<u16>,
}

impl Validator {
    /// Commits timelocked; `None` where the chain client has no timelocked
    /// commits at all (a simulated chain), so the caller commits a hash
    /// instead. A runtime without the call is an error, not a fallback.
    pub(super) async fn commit_timelocked(
        &mut self,
        uids: &[Uid],
        weights: &[u16],
    ) -> Option<Result<TimelockReceipt, ChainError>> {
        let w = TimelockWeights {
            uids: uids.to_vec(),
            weights: weights.to_vec(),
            version_key: self.version_key,
            mechid: self.mechid,
        };
        let now = self.unix_clock.elapsed();
        match self
            .chain
            .commit_timelocked_weights(self.netuid, &self.keypair, &w, now)
            .await
        {
            Err(ChainError::NotProvided(_)) => None,
            Ok(t) => {
                self.weights.pending_timelock = Some(PendingTimelock {
                    reveal_round: t.reveal_round.0,
                    commit_block: t.receipt.block.0,
                    reveal_until: t.reveal_until.0,
                    uids: uids.iter().map(|u| u.0).collect(),
                    weights: weights.to_vec(),
                });
                Some(Ok(t))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// After a commit's reveal window: did the chain apply it? If the
    /// runtime had the pulse and still did not (no permit, limits, a raised
    /// version key), these weights are dropped and reported; if the pulse
    /// never came (or the subnet's settings changed), fresh scores are sent
    /// when there are rounds since, else the same weights again. The pending
    /// commit is kept until its successor has landed.
    pub(super) async fn settle_timelock(
        &mut self,
        block: Block,
        h: &Hyperparameters,
        p: PendingTimelock,
    ) -> Result<Option<WeightsReport>, RoleError> {
        let status = match self
            .chain
            .commit_status(self.netuid, &self.keypair.account(), self.mechid)
            .await
        {
            Ok(s) => Some(s),
            // A client that cannot tell: trust the window.
            Err(ChainError::NotProvided(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if status.as_ref().is_some_and(|s| still_held(s, &p)) {
            // Past its window by our reading of the chain, yet still held:
            // the chain decides; ask again next step.
            return Ok(None);
        }
        let pulse_came = status
            .as_ref()
            .and_then(|s| s.last_stored_round)
            .map(|r| r >= p.reveal_round);
        let revealed = match &status {
            None => true,
            Some(s) => applied(s, &p) && pulse_came != Some(false),
        };
        if revealed {
            self.weights.pending_timelock = None;
            self.save().await?;
            return Ok(Some(WeightsReport::RevealedByChain {
                block: status.map_or(block, |s| s.block),
                reveal_round: p.reveal_round,
                uids: p.uids.iter().copied().map(Uid).collect(),
                weights: p.weights,
            }));
        }
        if pulse_came == Some(true) {
            self.weights.pending_timelock = None;
            self.save().await?;
            return Ok(Some(WeightsReport::RevealRefused {
                reveal_round: p.reveal_round,
            }));
        }
        let again = if self.measured.is_empty() {
            let uids: Vec<Uid> = p.uids.iter().copied().map(Uid).collect();
            self.send_again(h, &uids, &p.weights).await?
        } else {
            self.weights.pending_timelock = None;
            match self.weights_now(block, h).await {
                Ok(r) => r,
                Err(e) => {
                    self.weights.pending_timelock = Some(p);
                    return Err(e);
                }
            }
        };
        Ok(Some(WeightsReport::TimelockExpired {
            reveal_round: p.reveal_round,
            again: Box::new(again),
        }))
    }

    /// Sends weights that were committed before and lost, with no rounds
    /// measured since: timelocked again, or directly where the subnet no
    /// longer wants commit-reveal. On failure the lost commit stays pending,
    /// so the next step tries again.
    async fn send_again(
        &mut self,
        h: &Hyperparameters,
        uids: &[Uid],
        weights: &[u16],
    ) -> Result<WeightsReport, RoleError> {
        let (how, landed, timelock) = if h.commit_reveal_enabled {
            match self.commit_timelocked(uids, weights).await {
                Some(Ok(t)) => ("timelocked", Ok(t.receipt.clone()), Some(t)),
                Some(Err(e)) => ("timelocked", Err(e), None),
                None => (
                    "timelocked",
                    Err(ChainError::NotProvided("commit_timelocked_weights")),
                    None,
                ),
            }
        } else {
            self.check_mechid("set")?;
            let r = self
                .chain
                .set_weights(self.netuid, &self.keypair, uids, weights, self.version_key)
                .await;
            if r.is_ok() {
                self.weights.pending_timelock = None;
            }
            ("set", r, None)
        };
        match landed {
            Ok(receipt) => {
                self.record_landed(receipt.block, uids, weights).await?;
                let epoch = crate::roles::Epoch::resent(uids, weights);
                Ok(WeightsReport::Landed {
                    how,
                    receipt,
                    epoch,
                    timelock,
                })
            }
            Err(ChainError::RateLimited { next, .. }) => Ok(WeightsReport::RateLimited { next }),
            Err(source) => Err(RoleError::Weights { how, source }),
        }
    }

    /// Refuses a mechanism on a path that cannot send one (`how`: set or a
    /// hash commit, which act on the subnet itself).
    pub(super) fn check_mechid(&self, how: &'static str) -> Result<(), RoleError> {
        match self.mechid {
            None => Ok(()),
            Some(m) => Err(RoleError::Setting {
                setting: "weights.mechid",
                reason: format!(
                    "mechanism {m} is only sent as a timelocked commit; this subnet takes weights by {how}"
                ),
            }),
        }
    }
}

/// Whether the chain holds exactly the committed weights (the runtime
/// stores them as sent: the largest is 65535 already). `LastUpdate` cannot
/// tell: the commit sets it, and a reveal on spec 293 does not; the caller
/// also asks whether the round's pulse was stored, since unchanged weights
/// look the same whether revealed or not.
fn applied(s: &CommitStatus, p: &PendingTimelock) -> bool {
    let mut want: Vec<(u16, u16)> = p
        .uids
        .iter()
        .copied()
        .zip(p.weights.iter().copied())
        .collect();
    want.sort_unstable();
    let mut have = s.weights.clone();
    have.sort_unstable();
    have == want
}

/// Whether the chain still holds the commit for round `p.reveal_round`.
fn still_held(s: &CommitStatus, p: &PendingTimelock) -> bool {
    s.pending.iter().any(|c| {
        matches!(c, PendingCommit::Timelocked { reveal_round, .. } if *reveal_round == p.reveal_round)
    })
}
