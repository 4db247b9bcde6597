//! Scoring: measurements of miners in, a score per uid out.
//!
//! A [`Scorer`] is pure and synchronous: the same [`Measurements`] always
//! give the same [`ScoreSet`]. State that lives across epochs (the EMA
//! smoother, proof-of-work penalties) is kept in explicit values the caller
//! owns and saves ([`Ema`], [`Penalties`]). Reference scorers:
//!
//! | name | scorer | what it pays for |
//! |---|---|---|
//! | `gpu-table` | [`GpuTable`] | claimed GPUs by model (NI Compute, subnet 27) |
//! | `hardware-class` | [`HardwareClass`] | worked seconds per hardware class (ComputeHorde style) |
//! | `pow` | [`PowScorer`] | proof-of-work throughput against a per-class reference |
//! | `composite` | [`Composite`] | a weighted sum of the others |
//!
//! Scores become chain weights with [`crate::weights::convert_for_emit`].

mod ledger;
mod measure;
mod scorers;

use std::collections::BTreeMap;

pub use ledger::{INTERVAL_SECONDS, Job, JobLedger, WorkKey};
pub use measure::{ExecutorWork, GpuClaim, Measurements, MinerReport, PowReport, median};
pub use scorers::{
    Composite, DEFAULT_GPU_TABLE, DeclineConfig, EmaConfig, GpuTable, HardwareClass, PenaltyConfig,
    PowScorer, SCORER_NAMES, ScoringConfig, ThroughputRange,
};

use crate::Uid;

/// A finite, non-negative score. Ordered (total order on the value).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Score(f64);

impl Score {
    /// Zero.
    pub const ZERO: Score = Score(0.0);

    /// `value` as a score; NaN, infinite and negative values are refused.
    pub fn new(value: f64) -> Result<Score, ScoreError> {
        if value.is_finite() && value >= 0.0 {
            Ok(Score(value + 0.0)) // -0.0 becomes 0.0
        } else {
            Err(ScoreError::BadScore(value))
        }
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Scores per uid, and what was skipped on the way (each with its reason).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ScoreSet {
    /// One score per scored uid.
    pub scores: BTreeMap<Uid, Score>,
    /// Things left out (an unknown GPU model, …), for the operator.
    pub warnings: Vec<String>,
}

impl ScoreSet {
    /// The scores as `(uids, values)` in uid order, for weights.
    pub fn to_vectors(&self) -> (Vec<Uid>, Vec<f64>) {
        self.scores.iter().map(|(u, s)| (*u, s.get())).unzip()
    }
}

/// Why scoring failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// A score that is NaN, infinite or negative.
    #[error("score {0} is not a finite, non-negative number")]
    BadScore(f64),
    /// A measurement that is NaN, infinite or negative.
    #[error("uid {uid}: {field} = {value} is not a finite, non-negative number")]
    BadMeasurement {
        /// Uid of the miner whose report holds it.
        uid: Uid,
        /// Name of the report field.
        field: &'static str,
        /// The value found there.
        value: f64,
    },
    /// Two reports for one uid.
    #[error("uid {0} is measured twice")]
    Duplicate(Uid),
    /// A uid the metagraph does not have.
    #[error("uid {0} is not in the metagraph")]
    UnknownUid(Uid),
    /// No neurons to score against.
    #[error("the metagraph is empty")]
    EmptyMetagraph,
    /// A configuration (table, classes, weights) that cannot be used.
    #[error("bad scorer configuration: {0}")]
    Config(String),
    /// A scorer name that is not one of [`SCORER_NAMES`].
    #[error("no scorer named \"{0}\" (known: {known})", known = SCORER_NAMES.join(", "))]
    UnknownScorer(String),
    /// A composite weight that is negative, NaN or infinite.
    #[error(
        "bad scorer configuration: composite weight {weight} of {scorer} must be finite and non-negative"
    )]
    BadWeight {
        /// The scorer it weighs.
        scorer: String,
        /// The weight as configured.
        weight: f64,
    },
}

/// Turns measurements into scores. Pure and object-safe.
///
/// ```
/// use akihabara_core::score::{Measurements, ScoreSet, ScoreError, Scorer, Score};
/// /// Everyone measured gets one point.
/// struct Flat;
/// impl Scorer for Flat {
///     fn name(&self) -> &str { "flat" }
///     fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
///         let mut out = ScoreSet::default();
///         for r in &m.miners {
///             out.scores.insert(r.uid, Score::new(1.0)?);
///         }
///         Ok(out)
///     }
/// }
/// let boxed: Box<dyn Scorer> = Box::new(Flat);
/// assert_eq!(boxed.score(&Measurements::default())?.scores.len(), 0);
/// # Ok::<(), ScoreError>(())
/// ```
pub trait Scorer: Send + Sync {
    /// A short name (`gpu-table`, …).
    fn name(&self) -> &str;
    /// Scores every miner in `m`.
    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError>;
}

/// A reference to a scorer is a scorer.
impl<T: Scorer + ?Sized> Scorer for &T {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        (**self).score(m)
    }
}

/// A boxed scorer is a scorer, so `Box<dyn Scorer>` goes where `impl Scorer` is asked.
impl<T: Scorer + ?Sized> Scorer for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        (**self).score(m)
    }
}

/// A shared scorer is a scorer.
impl<T: Scorer + ?Sized> Scorer for std::sync::Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        (**self).score(m)
    }
}

/// Exponential moving average of scores across epochs:
/// `s ← alpha · new + (1 − alpha) · s`; a uid not scored this epoch decays
/// toward 0. Serializable, so a validator keeps it across restarts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ema {
    alpha: f64,
    state: BTreeMap<Uid, f64>,
    /// Who held each uid when [`Ema::follow`] last looked (absent in a
    /// smoother kept before it recorded them).
    #[serde(default)]
    holders: BTreeMap<Uid, crate::AccountId>,
}

impl Ema {
    /// A smoother with weight `alpha` in `(0, 1]` on the newest epoch.
    pub fn new(alpha: f64) -> Result<Ema, ScoreError> {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(ScoreError::Config(format!(
                "EMA alpha {alpha} is not in (0, 1]"
            )));
        }
        Ok(Ema {
            alpha,
            state: BTreeMap::new(),
            holders: BTreeMap::new(),
        })
    }

    /// Folds in one epoch's scores and returns the smoothed ones. Each is a
    /// convex combination of scores seen, so it stays within their range.
    pub fn update(&mut self, epoch: &ScoreSet) -> ScoreSet {
        let uids: std::collections::BTreeSet<Uid> = self
            .state
            .keys()
            .chain(epoch.scores.keys())
            .copied()
            .collect();
        let mut out = ScoreSet {
            scores: BTreeMap::new(),
            warnings: epoch.warnings.clone(),
        };
        for uid in uids {
            let new = epoch.scores.get(&uid).map_or(0.0, |s| s.get());
            let old = self.state.get(&uid).copied().unwrap_or(new);
            let s = self.alpha * new + (1.0 - self.alpha) * old;
            self.state.insert(uid, s);
            out.scores.insert(uid, Score(s.max(0.0)));
        }
        out
    }

    /// Forgets uids that left the subnet (a new hotkey at an old uid starts fresh).
    pub fn forget(&mut self, uid: Uid) {
        self.state.remove(&uid);
    }

    /// Follows who holds each uid (`hotkeys`, from the metagraph): a uid now
    /// held by another hotkey than when last seen, or gone from the subnet,
    /// is forgotten, and returned (sorted), so that a new registrant starts
    /// from nothing rather than from its predecessor's score. Then records
    /// `hotkeys`. A smoother kept before holders were recorded forgets only
    /// uids that are gone, the first time.
    pub fn follow(&mut self, hotkeys: &BTreeMap<Uid, crate::AccountId>) -> Vec<Uid> {
        let uids: std::collections::BTreeSet<Uid> = self
            .state
            .keys()
            .chain(self.holders.keys())
            .copied()
            .collect();
        let forgotten: Vec<Uid> = uids
            .into_iter()
            .filter(|uid| match (self.holders.get(uid), hotkeys.get(uid)) {
                (_, None) => true,
                (Some(was), Some(now)) => was != now,
                (None, Some(_)) => false,
            })
            .collect();
        for uid in &forgotten {
            self.state.remove(uid);
        }
        self.holders = hotkeys.clone();
        forgotten
    }
}

/// Proof-of-work penalties: a failed or late proof sets a uid's penalty to
/// 1; each epoch multiplies it by `decay`; the `pow` scorer multiplies a
/// uid's score by `1 − penalty`. Serializable, kept across restarts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Penalties {
    decay: f64,
    penalty: BTreeMap<Uid, f64>,
}

impl Penalties {
    /// Penalties that fall by `decay` (in `[0, 1)`) each epoch.
    pub fn new(decay: f64) -> Result<Penalties, ScoreError> {
        if !(0.0..1.0).contains(&decay) {
            return Err(ScoreError::Config(format!(
                "penalty decay {decay} is not in [0, 1)"
            )));
        }
        Ok(Penalties {
            decay,
            penalty: BTreeMap::new(),
        })
    }

    /// Starts a new epoch: every penalty decays; failures in `m` set theirs to 1.
    pub fn advance(&mut self, m: &Measurements) {
        for p in self.penalty.values_mut() {
            *p *= self.decay;
        }
        self.penalty.retain(|_, p| *p > 1e-6);
        for r in &m.miners {
            if r.pow.as_ref().is_some_and(|p| !p.passed) {
                self.penalty.insert(r.uid, 1.0);
            }
        }
    }

    /// The current penalty of `uid`, in `[0, 1]`.
    pub fn get(&self, uid: Uid) -> f64 {
        self.penalty.get(&uid).copied().unwrap_or(0.0)
    }

    /// Changes the decay (in `[0, 1)`) of penalties kept from before, e.g.
    /// read back from a store after the configuration changed.
    pub fn set_decay(&mut self, decay: f64) -> Result<(), ScoreError> {
        self.decay = Penalties::new(decay)?.decay;
        Ok(())
    }

    /// Sets `uid`'s penalty to 1 for a failure found outside the proof of
    /// work (a job it declined with free capacity, an allocation whose
    /// login failed, a receipt that is not its signature); it decays as any.
    pub fn penalize(&mut self, uid: Uid) {
        self.penalty.insert(uid, 1.0);
    }

    /// Drops `uid`'s penalty (its hotkey changed: the new holder owes none).
    pub fn forget(&mut self, uid: Uid) {
        self.penalty.remove(&uid);
    }

    /// Uids with a penalty above 0, and the penalty.
    pub fn iter(&self) -> impl Iterator<Item = (Uid, f64)> + '_ {
        self.penalty.iter().map(|(u, p)| (*u, *p))
    }
}

/// Any scorer with penalties applied to its output: each uid's score times
/// `1 − penalty`. A validator wraps its scorer in this, so a penalty lowers
/// a miner's weight whatever the scorer (a user-written one too).
///
/// ```
/// use akihabara_core::score::{Measurements, MinerReport, Penalized, Penalties, PowReport, PowScorer, Scorer};
/// use akihabara_core::Uid;
/// let mut p = Penalties::new(0.5)?;
/// p.penalize(Uid(2));
/// p.advance(&Measurements::default()); // one epoch later: 0.5 left
/// let m = Measurements { miners: [1, 2].map(|u| MinerReport {
///     uid: Uid(u),
///     pow: Some(PowReport::from_rounds("cpu", [Some(100.0)])),
///     ..MinerReport::default()
/// }).to_vec() };
/// let s = Penalized::new(&PowScorer::new(), &p).score(&m)?;
/// assert_eq!((s.scores[&Uid(1)].get(), s.scores[&Uid(2)].get()), (100.0, 50.0));
/// # Ok::<(), akihabara_core::score::ScoreError>(())
/// ```
pub struct Penalized<'a> {
    inner: &'a dyn Scorer,
    penalties: &'a Penalties,
}

impl<'a> Penalized<'a> {
    /// `inner`, with `penalties` applied.
    pub fn new(inner: &'a dyn Scorer, penalties: &'a Penalties) -> Penalized<'a> {
        Penalized { inner, penalties }
    }
}

impl std::fmt::Debug for Penalized<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Penalized")
            .field("inner", &self.inner.name())
            .field("penalties", &self.penalties)
            .finish()
    }
}

impl Scorer for Penalized<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        let mut out = self.inner.score(m)?;
        for (uid, s) in out.scores.iter_mut() {
            let p = self.penalties.get(*uid);
            if p > 0.0 {
                *s = Score::new(s.get() * (1.0 - p))?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
