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
    /// commits (a simulated chain), so the caller commits a hash instead.
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
            Err(ChainError::Unsupported(_)) => None,
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

    /// After a commit's reveal window: did the chain apply it? If not, send
    /// the same weights again, as the subnet now wants them.
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
            Err(ChainError::Unsupported(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let revealed = match &status {
            None => true,
            Some(s) => applied(s, &p),
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
        if status.as_ref().is_some_and(|s| still_held(s, &p)) {
            // Past its window by our reading of the chain, yet still held:
            // the chain decides; ask again next step.
            return Ok(None);
        }
        self.weights.pending_timelock = None;
        self.save().await?;
        let uids: Vec<Uid> = p.uids.iter().copied().map(Uid).collect();
        let again = self.send_again(block, h, &uids, &p.weights).await?;
        Ok(Some(WeightsReport::TimelockExpired {
            reveal_round: p.reveal_round,
            again: Box::new(again),
        }))
    }

    /// Sends weights that were committed before and lost: timelocked again,
    /// or directly where the subnet no longer wants commit-reveal.
    async fn send_again(
        &mut self,
        block: Block,
        h: &Hyperparameters,
        uids: &[Uid],
        weights: &[u16],
    ) -> Result<WeightsReport, RoleError> {
        let (how, landed, timelock) = if h.commit_reveal_enabled {
            match self.commit_timelocked(uids, weights).await {
                Some(Ok(t)) => ("timelocked", Ok(t.receipt.clone()), Some(t)),
                Some(Err(e)) => ("timelocked", Err(e), None),
                None => {
                    return Err(RoleError::Weights {
                        how: "timelocked",
                        source: ChainError::Unsupported(
                            "commit_timelocked_weights on this chain client".into(),
                        ),
                    });
                }
            }
        } else {
            let r = self
                .chain
                .set_weights(self.netuid, &self.keypair, uids, weights, self.version_key)
                .await;
            ("set", r, None)
        };
        match landed {
            Ok(receipt) => {
                self.weights.block = Some(receipt.block.0);
                self.weights.uids = uids.iter().map(|u| u.0).collect();
                self.weights.weights = weights.to_vec();
                self.save().await?;
                let epoch = crate::roles::Epoch::resent(uids, weights);
                Ok(WeightsReport::Landed {
                    how,
                    receipt,
                    epoch,
                    timelock,
                })
            }
            Err(ChainError::RateLimited { next, .. }) => {
                // Kept, to be sent again at the next step: a window that
                // has already passed.
                self.weights.pending_timelock = Some(PendingTimelock {
                    reveal_round: 0,
                    commit_block: block.0,
                    reveal_until: block.0,
                    uids: uids.iter().map(|u| u.0).collect(),
                    weights: weights.to_vec(),
                });
                self.save().await?;
                Ok(WeightsReport::RateLimited { next })
            }
            Err(source) => Err(RoleError::Weights { how, source }),
        }
    }
}

/// Whether the chain holds exactly the committed weights (the runtime
/// stores them as sent: the largest is 65535 already). `LastUpdate` cannot
/// tell: the commit sets it, and a reveal on spec 293 does not.
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
