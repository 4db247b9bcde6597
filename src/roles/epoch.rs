//! One epoch's scoring: measurements → scorer → EMA → u16 weights.

use crate::score::{Ema, Measurements, ScoreSet, Scorer};
use crate::weights::{ChainWeights, convert_for_emit};

use super::RoleError;

/// What an epoch's measurements scored.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Epoch {
    /// The scorer's output for this epoch alone.
    pub scores: ScoreSet,
    /// After the moving average (the same as `scores` without one).
    pub smoothed: ScoreSet,
    /// `smoothed` as `set_weights` sends it (empty when every score is 0).
    pub weights: ChainWeights,
}

impl Epoch {
    /// Weights sent again as they were (a lost timelocked commit): nothing
    /// was scored, so the score sets are empty.
    pub(crate) fn resent(uids: &[crate::Uid], weights: &[u16]) -> Epoch {
        Epoch {
            weights: ChainWeights {
                uids: uids.to_vec(),
                weights: weights.to_vec(),
            },
            ..Epoch::default()
        }
    }

    /// The u16 weight of `uid` (0 when it has none).
    pub fn weight_of(&self, uid: crate::Uid) -> u16 {
        self.weights
            .uids
            .iter()
            .position(|u| *u == uid)
            .map_or(0, |i| self.weights.weights[i])
    }
}

/// Scores `m` with `scorer`, folds the scores into `ema` when given, and
/// converts them to chain weights. Pure apart from `ema`.
///
/// ```
/// use akihabara::roles::score_epoch;
/// use akihabara::score::{Ema, Measurements, MinerReport, PowReport, PowScorer};
/// use akihabara::Uid;
/// let report = |uid, ops| MinerReport {
///     uid: Uid(uid),
///     pow: Some(PowReport::from_rounds("cpu", [Some(ops)])),
///     ..MinerReport::default()
/// };
/// let m = Measurements { miners: vec![report(1, 2e11), report(2, 1e11)] };
/// let mut ema = Ema::new(1.0)?;
/// let e = score_epoch(&PowScorer::new(), &m, Some(&mut ema))?;
/// assert_eq!((e.weight_of(Uid(1)), e.weight_of(Uid(2))), (65535, 32768));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn score_epoch(
    scorer: &dyn Scorer,
    m: &Measurements,
    ema: Option<&mut Ema>,
) -> Result<Epoch, RoleError> {
    let scores = scorer.score(m)?;
    let smoothed = match ema {
        Some(e) => e.update(&scores),
        None => scores.clone(),
    };
    let (uids, values) = smoothed.to_vectors();
    // Nobody measured: nothing to send (the SDK would raise on an empty list).
    let weights = if uids.is_empty() {
        ChainWeights::default()
    } else {
        convert_for_emit(&uids, &values)?
    };
    Ok(Epoch {
        scores,
        smoothed,
        weights,
    })
}
