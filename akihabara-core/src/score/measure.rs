//! What a validator measured about miners in one epoch: the input of every
//! scorer. The JSON form is documented in the README (`examples/measurements.json`).

use crate::Uid;

use super::ScoreError;

/// One epoch's measurements.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    /// One report per miner.
    pub miners: Vec<MinerReport>,
}

/// What was measured about one miner.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerReport {
    /// Uid of the miner measured.
    pub uid: Uid,
    /// GPUs it claims (and the validator confirmed), by model.
    #[serde(default)]
    pub gpus: Vec<GpuClaim>,
    /// Whether its compute is allocated to a renter now.
    #[serde(default)]
    pub allocated: bool,
    /// Work done on its executors this epoch.
    #[serde(default)]
    pub executors: Vec<ExecutorWork>,
    /// This epoch's proof of work, if one was run.
    #[serde(default)]
    pub pow: Option<PowReport>,
    /// Jobs declined while advertising free executors.
    #[serde(default)]
    pub declined_jobs: u32,
}

/// A number of GPUs of one model.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuClaim {
    /// Model name as the driver reports it (`NVIDIA H100 80GB HBM3`).
    pub model: String,
    /// How many GPUs of this model.
    pub count: u32,
}

/// Seconds worked on one executor of a hardware class.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorWork {
    /// Hardware class (`h100`, `a6000`, … as configured).
    pub class: String,
    /// Seconds of completed work (see job accounting).
    pub worked_seconds: f64,
    /// Efficiency the validator measured (1 until benchmarked).
    #[serde(default)]
    pub efficiency: Option<f64>,
}

/// A proof-of-work verdict for one epoch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowReport {
    /// The prover class the miner names (`cpu`, `cuda`, …). Informational:
    /// no reference scorer reads it, so naming a class cannot change a score.
    #[serde(default)]
    pub class: String,
    /// Whether every round of the epoch verified and came in time.
    pub passed: bool,
    /// Verified integer ops/s by the validator's clock: the median of the
    /// epoch's rounds (0 when failed).
    #[serde(default)]
    pub ops_per_second: f64,
}

impl PowReport {
    /// One epoch's report from its rounds: `Some(ops_per_second)` for a
    /// round that verified, `None` for one that failed or reached no
    /// verdict. It passes only if there was a round and every round passed;
    /// its speed is then the median of the rounds' speeds (robust to one
    /// round slowed by the network), else 0.
    ///
    /// ```
    /// use akihabara_core::score::PowReport;
    /// let r = PowReport::from_rounds("cuda", [Some(3.0), Some(100.0), Some(5.0)]);
    /// assert_eq!((r.passed, r.ops_per_second), (true, 5.0));
    /// let r = PowReport::from_rounds("cuda", [Some(3.0), None]);
    /// assert_eq!((r.passed, r.ops_per_second), (false, 0.0));
    /// ```
    pub fn from_rounds(
        class: impl Into<String>,
        rounds: impl IntoIterator<Item = Option<f64>>,
    ) -> PowReport {
        let rounds: Option<Vec<f64>> = rounds.into_iter().collect();
        let median = rounds.as_deref().and_then(median);
        PowReport {
            class: class.into(),
            passed: median.is_some(),
            ops_per_second: median.unwrap_or(0.0),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty. NaN sorts last (total order), so callers validate first.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[mid]),
        _ => Some((v[mid - 1] + v[mid]) / 2.0),
    }
}

fn finite(uid: Uid, field: &'static str, value: f64) -> Result<(), ScoreError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(ScoreError::BadMeasurement { uid, field, value })
    }
}

impl Measurements {
    /// Checks every number and that no uid appears twice.
    pub fn validate(&self) -> Result<(), ScoreError> {
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.miners {
            if !seen.insert(r.uid) {
                return Err(ScoreError::Duplicate(r.uid));
            }
            for e in &r.executors {
                finite(r.uid, "worked_seconds", e.worked_seconds)?;
                if let Some(x) = e.efficiency {
                    finite(r.uid, "efficiency", x)?;
                }
            }
            if let Some(p) = &r.pow {
                finite(r.uid, "ops_per_second", p.ops_per_second)?;
            }
        }
        Ok(())
    }

    /// Checks against a metagraph: it has neurons and every uid is one of them.
    pub fn validate_against(&self, metagraph: &crate::Metagraph) -> Result<(), ScoreError> {
        self.validate()?;
        if metagraph.neurons().is_empty() {
            return Err(ScoreError::EmptyMetagraph);
        }
        let known: std::collections::BTreeSet<Uid> =
            metagraph.neurons().iter().map(|n| n.uid).collect();
        if let Some(r) = self.miners.iter().find(|r| !known.contains(&r.uid)) {
            return Err(ScoreError::UnknownUid(r.uid));
        }
        Ok(())
    }
}
