//! Timelocked commits and the commit status on the real runtime.
//!
//! The call is picked from the live runtime's metadata, as the SDK of each
//! generation would send it:
//! - `commit_timelocked_mechanism_weights` when a mechanism is named;
//! - `commit_timelocked_weights` (spec 297 and later, Finney): the payload
//!   carries the hotkey, the version is the chain's
//!   `CommitRevealWeightsVersion`, and the round follows
//!   [`RoundRule::Timelocked`];
//! - `commit_crv3_weights` (older runtimes, the local test runtime): the
//!   payload has no hotkey and the round follows [`RoundRule::Crv3`].

use std::time::Duration;

use subxt::Metadata;
use subxt::dynamic;
use subxt::utils::{AccountId32, H256};

use super::requirements::{self, Need, provides};
use super::{
    SUBNET_AND_UID, Subtensor, hyperparameters_at, is_stored, is_subtensor_error,
    registered_uid_at, stored_in, subnet_size_at,
};
use crate::chain::timelock::{
    self, DrandRound, RevealSchedule, RoundRule, TimelockError, WeightsPayload,
};
use crate::chain::{
    ChainError, CommitStatus, MechId, PendingCommit, SealedWeights, TimelockReceipt,
    TimelockWeights, check_weights,
};
use crate::wallet::Keypair;
use crate::{Block, Hotkey, Netuid};

/// `RevealPeriodEpochs`' default in the runtime, when nothing is stored.
const DEFAULT_REVEAL_PERIOD: u64 = 1;
/// `CommitRevealWeightsVersion`'s default in the runtime (spec 393).
const DEFAULT_CR_VERSION: u16 = 4;
/// Subnets per mechanism in a storage index (`GLOBAL_MAX_SUBNET_COUNT`).
const MECHANISM_STRIDE: u16 = 4096;
/// Epochs `commit_status` reads back at most.
const MAX_SCAN_EPOCHS: u64 = 8;

/// The reveal period as each runtime applies it: spec 293 reveals commits of
/// epoch `now - (period - 1)` with a saturating subtraction, so 0 acts as 1.
fn effective_period(period: u64, rule: RoundRule) -> u64 {
    match rule {
        RoundRule::Crv3 => period.max(1),
        RoundRule::Timelocked => period,
    }
}

/// Which timelocked call a runtime takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pick {
    /// The call.
    pub need: Need,
    /// How the reveal round is aimed.
    pub rule: RoundRule,
    /// Whether the payload carries the hotkey.
    pub with_hotkey: bool,
}

impl Pick {
    fn name(&self) -> &'static str {
        match self.need {
            Need::Call(_, c, _) => c,
            _ => "?",
        }
    }
}

/// The call `metadata` offers for a timelocked commit, or
/// [`ChainError::Unsupported`] naming the one that is missing.
pub(crate) fn pick(metadata: &Metadata, mechid: Option<MechId>) -> Result<Pick, ChainError> {
    let timelocked = |need| Pick {
        need,
        rule: RoundRule::Timelocked,
        with_hotkey: true,
    };
    if mechid.is_some() {
        requirements::require(metadata, &[requirements::COMMIT_TIMELOCKED_MECH])?;
        return Ok(timelocked(requirements::COMMIT_TIMELOCKED_MECH));
    }
    if provides(metadata, requirements::COMMIT_TIMELOCKED) {
        return Ok(timelocked(requirements::COMMIT_TIMELOCKED));
    }
    if provides(metadata, requirements::COMMIT_CRV3) {
        return Ok(Pick {
            need: requirements::COMMIT_CRV3,
            rule: RoundRule::Crv3,
            with_hotkey: false,
        });
    }
    Err(ChainError::Unsupported(format!(
        "{} (nor the older {}): this runtime takes no timelocked weights",
        requirements::COMMIT_TIMELOCKED,
        requirements::COMMIT_CRV3
    )))
}

/// The call itself, its arguments in the order the runtime declares them,
/// and those arguments as this release encodes them (SCALE: netuid `u16`,
/// mechanism `u8`, the commit as bytes with their length, the round `u64`,
/// the version `u16`).
pub(crate) fn call(
    pick: &Pick,
    netuid: Netuid,
    mechid: Option<MechId>,
    sealed: Vec<u8>,
    round: DrandRound,
    version: u16,
) -> (
    subxt::transactions::DynamicPayload<subxt::ext::scale_value::Composite<()>>,
    Vec<u8>,
) {
    use subxt::ext::codec::Encode as _;
    use subxt::ext::scale_value::Value;
    let mut args = vec![Value::u128(u128::from(netuid.0))];
    let mut encoded = netuid.0.encode();
    if pick.need == requirements::COMMIT_TIMELOCKED_MECH {
        let mech = mechid.unwrap_or(MechId(0)).0;
        args.push(Value::u128(u128::from(mech)));
        encoded.extend(mech.encode());
    }
    encoded.extend(sealed.encode());
    args.push(Value::from_bytes(sealed));
    args.push(Value::u128(u128::from(round.0)));
    encoded.extend(round.0.encode());
    if pick.with_hotkey {
        args.push(Value::u128(u128::from(version)));
        encoded.extend(version.encode());
    }
    let payload = dynamic::transaction(
        "SubtensorModule",
        pick.name(),
        subxt::ext::scale_value::Composite::unnamed(args),
    );
    (payload, encoded)
}

/// The storage index of a subnet's mechanism (`NetUidStorageIndex`).
fn storage_index(netuid: Netuid, mechid: Option<MechId>) -> u16 {
    let mech = u16::from(mechid.map_or(0, |m| m.0));
    mech.saturating_mul(MECHANISM_STRIDE)
        .saturating_add(netuid.0)
}

/// Everything a commit is computed from, read at one block.
struct Ahead {
    block: Block,
    schedule: RevealSchedule,
    version: u16,
    pick: Pick,
}

impl Subtensor {
    /// Seals `w` for the subnet as the runtime takes it now; checks
    /// registration, the weights' shape, the version key and that the
    /// subnet wants commit/reveal, and refuses a past round or an oversized
    /// ciphertext before any fee.
    async fn seal_now(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        w: &TimelockWeights,
        now: Duration,
    ) -> Result<(Ahead, SealedWeights), ChainError> {
        check_weights(&w.uids, &w.weights, usize::from(u16::MAX) + 1)?;
        let account = hotkey.account();
        let key = *account.as_bytes();
        let mechid = w.mechid;
        let block_time = self.opts.block_time;
        let needs = [
            SUBNET_AND_UID.as_slice(),
            &[
                requirements::GET_HYPERPARAMS,
                requirements::REVEAL_PERIOD,
                requirements::LAST_UPDATE,
            ],
        ]
        .concat();
        let index = storage_index(netuid, mechid);
        let (n, hp, ahead, last) = self
            .read(&needs, |at| async move {
                let n = subnet_size_at(&at, netuid).await?;
                let uid = registered_uid_at(&at, netuid, key).await?;
                let hp = hyperparameters_at(&at, netuid).await?;
                let pick = pick(at.metadata_ref(), mechid)?;
                let updates =
                    stored_in::<_, Vec<u64>>(&at, "SubtensorModule", "LastUpdate", (index,))
                        .await?
                        .unwrap_or_default();
                let last = Block(updates.get(usize::from(uid.0)).copied().unwrap_or(0));
                let period =
                    stored_in::<_, u64>(&at, "SubtensorModule", "RevealPeriodEpochs", (netuid.0,))
                        .await?
                        .unwrap_or(DEFAULT_REVEAL_PERIOD);
                let version = if provides(at.metadata_ref(), requirements::CR_VERSION) {
                    stored_in::<_, u16>(&at, "SubtensorModule", "CommitRevealWeightsVersion", ())
                        .await?
                        .unwrap_or(DEFAULT_CR_VERSION)
                } else {
                    DEFAULT_CR_VERSION
                };
                let schedule = RevealSchedule {
                    netuid,
                    tempo: hp.tempo,
                    reveal_period_epochs: effective_period(period, pick.rule),
                    block_time,
                };
                let ahead = Ahead {
                    block: Block(at.block_number()),
                    schedule,
                    version,
                    pick,
                };
                Ok((n, hp, ahead, last))
            })
            .await?;
        check_weights(&w.uids, &w.weights, n)?;
        if w.version_key < hp.weights_version {
            return Err(ChainError::VersionTooLow {
                given: w.version_key,
                required: hp.weights_version,
            });
        }
        if !hp.commit_reveal_enabled {
            return Err(ChainError::CommitRevealDisabled(netuid));
        }
        // Commits count against the weights rate limit, as sets do.
        let next = Block(last.0.saturating_add(hp.weights_rate_limit));
        if last.0 > 0 && ahead.block < next {
            return Err(ChainError::RateLimited { last, next });
        }
        // The round as the SDK computes it, from the head block.
        let t = timelock::target(&ahead.schedule, ahead.block, now, ahead.pick.rule);
        let latest = DrandRound::latest_at(now);
        if t.reveal_round <= latest {
            return Err(TimelockError::PastRound {
                round: t.reveal_round,
                latest,
            }
            .into());
        }
        let payload = WeightsPayload {
            hotkey: ahead.pick.with_hotkey.then_some(account),
            uids: w.uids.iter().map(|u| u.0).collect(),
            values: w.weights.clone(),
            version_key: w.version_key,
        };
        let sealed = timelock::seal(&payload.encode(), t.reveal_round, w.uids.len())?;
        // Where the chain files it if it lands in the next block.
        let s = &ahead.schedule;
        let filed = timelock::filed_epoch(netuid, s.tempo, Block(ahead.block.0.saturating_add(1)));
        let (from, until) = window(
            s,
            filed.saturating_add(s.reveal_period_epochs),
            ahead.pick.rule,
        );
        let out = SealedWeights {
            call: ahead.pick.name(),
            block: ahead.block,
            reveal_round: t.reveal_round,
            commit_epoch: filed,
            reveal_from: from,
            reveal_until: until,
            sealed_len: sealed.len(),
            sealed,
        };
        Ok((ahead, out))
    }

    pub(super) async fn sealed_weights_impl(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        w: &TimelockWeights,
        now: Duration,
    ) -> Result<SealedWeights, ChainError> {
        Ok(self.seal_now(netuid, hotkey, w, now).await?.1)
    }

    pub(super) async fn commit_timelocked_impl(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        w: &TimelockWeights,
        now: Duration,
    ) -> Result<TimelockReceipt, ChainError> {
        let (ahead, sealed) = self.seal_now(netuid, hotkey, w, now).await?;
        let pick = ahead.pick;
        let (tx, args) = call(
            &pick,
            netuid,
            w.mechid,
            sealed.sealed.clone(),
            sealed.reveal_round,
            ahead.version,
        );
        let receipt = self
            .submit(pick.need, &tx, &args, hotkey)
            .await
            .map_err(|e| match e {
                e if is_subtensor_error(&e, &["CommitRevealDisabled"]) => {
                    ChainError::CommitRevealDisabled(netuid)
                }
                e if is_subtensor_error(
                    &e,
                    &["CommittingWeightsTooFast", "SettingWeightsTooFast"],
                ) =>
                {
                    ChainError::Rejected(format!(
                        "the chain's weights rate limit refused the commit (another submission raced this one): {e}"
                    ))
                }
                e if is_subtensor_error(&e, &["TooManyUnrevealedCommits"]) => {
                    ChainError::Rejected(format!(
                        "the hotkey already has 10 unrevealed commits on netuid {netuid}: {e}"
                    ))
                }
                other => other,
            })?;
        // The chain files the commit by the block it landed in; recompute
        // the window from it (the estimate above assumed the next block).
        let s = &ahead.schedule;
        let filed = timelock::filed_epoch(netuid, s.tempo, receipt.block);
        let (from, until) = window(s, filed.saturating_add(s.reveal_period_epochs), pick.rule);
        Ok(TimelockReceipt {
            receipt,
            call: pick.name(),
            reveal_round: sealed.reveal_round,
            commit_epoch: filed,
            reveal_from: from,
            reveal_until: until,
            sealed_len: sealed.sealed_len,
        })
    }

    pub(super) async fn commit_status_impl(
        &self,
        netuid: Netuid,
        hotkey: &Hotkey,
        mechid: Option<MechId>,
    ) -> Result<CommitStatus, ChainError> {
        let key = *hotkey.as_bytes();
        let needs = [
            SUBNET_AND_UID.as_slice(),
            &[
                requirements::GET_HYPERPARAMS,
                requirements::REVEAL_PERIOD,
                requirements::WEIGHTS,
                requirements::WEIGHT_COMMITS,
                requirements::LAST_UPDATE,
            ],
        ]
        .concat();
        self.read(&needs, |at| async move {
            subnet_size_at(&at, netuid).await?;
            let uid = registered_uid_at(&at, netuid, key).await?;
            let hp = hyperparameters_at(&at, netuid).await?;
            let md = at.metadata_ref();
            let index = storage_index(netuid, mechid);
            let period =
                stored_in::<_, u64>(&at, "SubtensorModule", "RevealPeriodEpochs", (netuid.0,))
                    .await?
                    .unwrap_or(DEFAULT_REVEAL_PERIOD);
            let block = Block(at.block_number());
            let schedule = RevealSchedule {
                netuid,
                tempo: hp.tempo,
                reveal_period_epochs: period,
                block_time: Duration::ZERO,
            };
            let has_drand = provides(md, requirements::LAST_STORED_ROUND);
            let last_stored_round = if has_drand {
                Some(
                    stored_in::<_, u64>(&at, "Drand", "LastStoredRound", ())
                        .await?
                        .unwrap_or(0),
                )
            } else {
                None
            };
            let mut pending = Vec::new();
            // Commits live under the epoch they were made in, and are gone
            // once their reveal epoch has passed: only these can be held.
            let now_epoch = timelock::filed_epoch(netuid, hp.tempo, block);
            // Bounded: a huge reveal period is read a few epochs back, not millions.
            let first = now_epoch.saturating_sub(period.min(MAX_SCAN_EPOCHS).saturating_add(1));
            let me = AccountId32(key);
            let timelocked = provides(md, requirements::TIMELOCKED_COMMITS);
            let crv3 = provides(md, requirements::CRV3_COMMITS);
            for epoch in first..=now_epoch.saturating_add(1) {
                let mut found: Vec<(Option<Block>, u64, usize)> = Vec::new();
                if timelocked {
                    let rows = stored_in::<_, Vec<(AccountId32, u64, Vec<u8>, u64)>>(
                        &at,
                        "SubtensorModule",
                        "TimelockedWeightCommits",
                        (index, epoch),
                    )
                    .await?
                    .unwrap_or_default();
                    found.extend(
                        rows.into_iter()
                            .filter(|r| r.0 == me)
                            .map(|(_, b, ct, round)| (Some(Block(b)), round, ct.len())),
                    );
                } else if crv3 {
                    let rows = stored_in::<_, Vec<(AccountId32, Vec<u8>, u64)>>(
                        &at,
                        "SubtensorModule",
                        "CRV3WeightCommits",
                        (netuid.0, epoch),
                    )
                    .await?
                    .unwrap_or_default();
                    found.extend(
                        rows.into_iter()
                            .filter(|r| r.0 == me)
                            .map(|(_, ct, round)| (None, round, ct.len())),
                    );
                }
                let rule = if timelocked {
                    RoundRule::Timelocked
                } else {
                    RoundRule::Crv3
                };
                let (from, until) = window(
                    &schedule,
                    epoch.saturating_add(effective_period(period, rule)),
                    rule,
                );
                for (commit_block, round, bytes) in found {
                    let pulse_stored =
                        has_drand && is_stored(&at, "Drand", "Pulses", (round,)).await?;
                    pending.push(PendingCommit::Timelocked {
                        epoch,
                        commit_block,
                        reveal_round: round,
                        pulse_stored,
                        reveal_from: from,
                        reveal_until: until,
                        bytes,
                    });
                }
            }
            let hashes = stored_in::<_, Vec<(H256, u64, u64, u64)>>(
                &at,
                "SubtensorModule",
                "WeightCommits",
                (index, AccountId32(key)),
            )
            .await?
            .unwrap_or_default();
            for (hash, commit_block, from, until) in hashes {
                pending.push(PendingCommit::Hash {
                    hash: format!("0x{}", hex::encode(hash.0)),
                    commit_block: Block(commit_block),
                    reveal_from: Block(from),
                    reveal_until: Block(until),
                });
            }
            let weights =
                stored_in::<_, Vec<(u16, u16)>>(&at, "SubtensorModule", "Weights", (index, uid.0))
                    .await?
                    .unwrap_or_default();
            let updates = stored_in::<_, Vec<u64>>(&at, "SubtensorModule", "LastUpdate", (index,))
                .await?
                .unwrap_or_default();
            let last_update = Block(updates.get(usize::from(uid.0)).copied().unwrap_or(0));
            Ok(CommitStatus {
                block,
                uid,
                commit_reveal_enabled: hp.commit_reveal_enabled,
                pending,
                last_stored_round,
                last_update,
                weights,
            })
        })
        .await
    }
}

/// The blocks a commit revealed in `reveal_epoch` can be revealed in: the
/// whole epoch for timelocked commits (the runtime retries each block), the
/// one block before it for crv3 commits.
fn window(schedule: &RevealSchedule, reveal_epoch: u64, rule: RoundRule) -> (Block, Block) {
    let tempo1 = schedule.tempo.saturating_add(1);
    let netuid1 = u64::from(schedule.netuid.0) + 1;
    let first = |e: u64| e.saturating_mul(tempo1).saturating_sub(netuid1);
    match rule {
        RoundRule::Timelocked => (
            Block(first(reveal_epoch)),
            Block(first(reveal_epoch.saturating_add(1)).saturating_sub(1)),
        ),
        RoundRule::Crv3 => {
            let b = Block(first(reveal_epoch).saturating_sub(1));
            (b, b)
        }
    }
}

#[cfg(test)]
mod tests;
