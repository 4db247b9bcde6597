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
    /// The miner.
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
    /// How many.
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

/// A proof-of-work verdict.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowReport {
    /// The GPU class the proof was sized for.
    pub class: String,
    /// Whether it verified and came in time.
    pub passed: bool,
    /// Achieved integer ops/s, by the validator's clock (0 when failed).
    #[serde(default)]
    pub ops_per_second: f64,
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
