//! The reference scorers and their TOML configuration.

use std::collections::BTreeMap;

use crate::Uid;

use super::{Measurements, Penalties, Score, ScoreError, ScoreSet, Scorer};

/// NI Compute's published GPU values (subnet 27).
pub const DEFAULT_GPU_TABLE: [(&str, f64); 15] = [
    ("H200", 4.00),
    ("H100 80GB HBM3", 3.30),
    ("H100", 2.80),
    ("A100-SXM4-80GB", 1.90),
    ("A100 80GB PCIe", 1.65),
    ("L40s", 1.10),
    ("L40", 1.00),
    ("RTX 6000 Ada Generation", 0.90),
    ("RTX A6000", 0.78),
    ("RTX 4090", 0.68),
    ("GeForce RTX 3090", 0.43),
    ("L4", 0.43),
    ("A40", 0.39),
    ("RTX A5000", 0.36),
    ("RTX A4500", 0.34),
];

/// A model name as the table compares it: without a leading `NVIDIA` or
/// `GeForce` (nvidia-smi says `NVIDIA GeForce RTX 4090`, tables say
/// `RTX 4090`), case and repeated spaces ignored.
fn model_key(name: &str) -> String {
    let mut words: Vec<&str> = name.split_whitespace().collect();
    while words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("nvidia") || w.eq_ignore_ascii_case("geforce"))
    {
        words.remove(0);
    }
    words.join(" ").to_ascii_lowercase()
}

fn positive_table(
    section: &str,
    t: BTreeMap<String, f64>,
) -> Result<BTreeMap<String, f64>, ScoreError> {
    if t.is_empty() {
        return Err(ScoreError::Config(format!("[{section}] is empty")));
    }
    let mut out = BTreeMap::new();
    for (k, v) in t {
        if !(v.is_finite() && v >= 0.0) {
            return Err(ScoreError::Config(format!(
                "[{section}] \"{k}\" = {v}: values must be finite and non-negative"
            )));
        }
        if out.insert(model_key(&k), v).is_some() {
            return Err(ScoreError::Config(format!(
                "[{section}] names \"{k}\" twice (names compare without case and a leading NVIDIA)"
            )));
        }
    }
    Ok(out)
}

/// The scorers' configuration file (TOML). Every section is optional.
///
/// ```toml
/// [gpu_table]            # model = base value (default: NI Compute's table)
/// "H100 80GB HBM3" = 3.30
/// [hardware_classes]     # class = relative value, for hardware-class
/// h100 = 1.0
/// [gpu_reference]        # model = [min, max] verified ops/s of one GPU of it;
/// "H100 80GB HBM3" = [6e14, 1.6e15]   # makes gpu-table price measured speed
/// [composite]            # scorer name = weight, for composite
/// gpu-table = 0.5
/// pow = 0.5
/// [ema]
/// alpha = 0.1
/// [penalty]
/// decay = 0.5
/// [declines]            # hardware-class points off per declined job
/// penalty_points = 600.0
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// Base value per GPU model.
    #[serde(default)]
    pub gpu_table: Option<BTreeMap<String, f64>>,
    /// Verified ops/s range `[min, max]` per GPU model: with it, `gpu-table`
    /// pays a model's price only to a miner whose measured speed reaches it
    /// (see [`GpuTable::verified_by`]).
    #[serde(default)]
    pub gpu_reference: Option<BTreeMap<String, [f64; 2]>>,
    /// Relative value per hardware class.
    #[serde(default)]
    pub hardware_classes: Option<BTreeMap<String, f64>>,
    /// Weight per scorer name.
    #[serde(default)]
    pub composite: Option<BTreeMap<String, f64>>,
    /// EMA settings.
    #[serde(default)]
    pub ema: Option<EmaConfig>,
    /// Penalty settings.
    #[serde(default)]
    pub penalty: Option<PenaltyConfig>,
    /// Declined-job settings.
    #[serde(default)]
    pub declines: Option<DeclineConfig>,
}

/// `[declines]`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineConfig {
    /// Points the `hardware-class` scorer takes off per declined job.
    pub penalty_points: f64,
}

/// `[ema]`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// Weight of the newest epoch.
    pub alpha: f64,
}

/// `[penalty]`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PenaltyConfig {
    /// Factor applied to a penalty each epoch.
    pub decay: f64,
}

/// Names of the reference scorers, for [`ScoringConfig::build`].
pub const SCORER_NAMES: [&str; 4] = ["gpu-table", "hardware-class", "pow", "composite"];

impl ScoringConfig {
    /// The scorer called `name` (one of [`SCORER_NAMES`]) as this
    /// configuration sets it up; `penalties` feed the `pow` scorer.
    pub fn build(
        &self,
        name: &str,
        penalties: Option<&Penalties>,
    ) -> Result<Box<dyn Scorer>, ScoreError> {
        let need = |section: &str, t: &Option<BTreeMap<String, f64>>| {
            t.clone().ok_or_else(|| {
                ScoreError::Config(format!(
                    "the {name} scorer needs a [{section}] section in the configuration"
                ))
            })
        };
        match name {
            "gpu-table" => {
                let table = match &self.gpu_table {
                    Some(t) => GpuTable::new(t.clone())?,
                    None => GpuTable::default(),
                };
                Ok(Box::new(match &self.gpu_reference {
                    Some(r) => {
                        let ranges = r
                            .iter()
                            .map(|(k, [lo, hi])| Ok((k.clone(), ThroughputRange::new(*lo, *hi)?)))
                            .collect::<Result<_, ScoreError>>()?;
                        table.verified_by(ranges)?
                    }
                    None => table,
                }))
            }
            "hardware-class" => {
                let h = HardwareClass::new(need("hardware_classes", &self.hardware_classes)?)?;
                let points = self.declines.as_ref().map_or(0.0, |d| d.penalty_points);
                Ok(Box::new(h.decline_penalty(points)?))
            }
            "pow" => {
                let s = PowScorer::new();
                Ok(Box::new(match penalties {
                    Some(p) => s.with_penalties(p),
                    None => s,
                }))
            }
            "composite" => {
                let mut parts = Vec::new();
                for (part, w) in need("composite", &self.composite)? {
                    if part == "composite" {
                        return Err(ScoreError::Config(
                            "a composite cannot contain itself".into(),
                        ));
                    }
                    if !(w.is_finite() && w >= 0.0) {
                        return Err(ScoreError::BadWeight {
                            scorer: part,
                            weight: w,
                        });
                    }
                    parts.push((w, self.build(&part, penalties)?));
                }
                Ok(Box::new(Composite::new(parts)?))
            }
            other => Err(ScoreError::UnknownScorer(other.to_owned())),
        }
    }

    /// Parses the TOML text, naming the line of any error.
    pub fn from_toml(text: &str) -> Result<ScoringConfig, ScoreError> {
        toml::from_str(text).map_err(|e| {
            // A file written for an older akihabara: say what replaced it.
            let retired =
                toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("pow_reference"));
            if retired {
                ScoreError::Config(
                    "[pow_reference] is no longer read: the pow scorer pays verified ops/s, \
                     whatever class a miner names; to check GPU models against measured \
                     speed, give [gpu_reference] ranges"
                        .into(),
                )
            } else {
                ScoreError::Config(e.to_string().trim().replace('\n', " "))
            }
        })
    }
}

/// The verified ops/s one GPU of a model reaches in a proof of work,
/// `[min_ops, max_ops]` (`[gpu_reference]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThroughputRange {
    min_ops: f64,
    max_ops: f64,
}

impl ThroughputRange {
    /// A range with `0 <= min_ops <= max_ops`, both finite.
    pub fn new(min_ops: f64, max_ops: f64) -> Result<ThroughputRange, ScoreError> {
        if min_ops.is_finite() && max_ops.is_finite() && 0.0 <= min_ops && min_ops <= max_ops {
            Ok(ThroughputRange { min_ops, max_ops })
        } else {
            Err(ScoreError::Config(format!(
                "[gpu_reference] range [{min_ops}, {max_ops}] must be finite with 0 <= min <= max"
            )))
        }
    }

    /// The lowest verified ops/s of the model.
    pub fn min_ops(&self) -> f64 {
        self.min_ops
    }

    /// The highest verified ops/s of the model.
    pub fn max_ops(&self) -> f64 {
        self.max_ops
    }
}

/// `gpu-table`: `price · min(gpus, 8) · scale`, where `scale` makes eight
/// of the best model worth 50 points; doubled (up to 100) when the miner is
/// allocated. With several models, the 8 counted are the most valuable. A
/// model not in the table counts 0 and is reported.
///
/// Without reference ranges the price is the table's base value of the
/// model the miner reports (NI Compute's formula: the claim is trusted).
/// [`GpuTable::verified_by`] makes it pay for measured compute instead.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuTable {
    table: BTreeMap<String, f64>,
    scale: f64,
    references: Option<BTreeMap<String, ThroughputRange>>,
}

impl Default for GpuTable {
    fn default() -> GpuTable {
        let t = DEFAULT_GPU_TABLE
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        GpuTable::new(t).unwrap_or_else(|_| GpuTable {
            table: BTreeMap::new(),
            scale: 0.0,
            references: None,
        })
    }
}

impl GpuTable {
    /// Most GPUs counted per miner on claims alone (no `[gpu_reference]`).
    pub const MAX_GPUS: u32 = 8;
    /// GPUs counted per miner when claims are checked against measured
    /// speed ([`GpuTable::verified_by`]): a proof of work times one device,
    /// so a claimed count is not paid beyond it.
    pub const VERIFIED_GPUS: u32 = 1;

    /// A table of base values per model.
    pub fn new(table: BTreeMap<String, f64>) -> Result<GpuTable, ScoreError> {
        let table = positive_table("gpu_table", table)?;
        let best = table.values().copied().fold(0.0, f64::max);
        if best <= 0.0 {
            return Err(ScoreError::Config(
                "[gpu_table] has no positive value".into(),
            ));
        }
        Ok(GpuTable {
            table,
            scale: 50.0 / (f64::from(Self::MAX_GPUS) * best),
            references: None,
        })
    }

    /// The base value of `model`, if the table has it.
    pub fn base(&self, model: &str) -> Option<f64> {
        self.table.get(&model_key(model)).copied()
    }

    /// Prices measured speed, not claims. A miner's reported model is
    /// *consistent* when the model has a range here and the miner's
    /// verified pow speed this epoch (the median of its rounds) reaches the
    /// range's minimum. A consistent model is priced at the base value of
    /// the most valuable model in the table whose minimum that speed
    /// reaches, the same whichever consistent model the miner names, so
    /// naming a dearer model gains nothing, and a faster miner never gets
    /// less. A model that is not consistent (no range, no verified proof,
    /// or too slow for it) gets no table price: the miner is paid on its
    /// throughput alone (by `pow` in a composite) and a warning names it. A
    /// speed above the range's maximum is priced as usual and reported.
    pub fn verified_by(
        mut self,
        references: BTreeMap<String, ThroughputRange>,
    ) -> Result<GpuTable, ScoreError> {
        if references.is_empty() {
            return Err(ScoreError::Config("[gpu_reference] is empty".into()));
        }
        let mut out = BTreeMap::new();
        for (k, r) in references {
            if out.insert(model_key(&k), r).is_some() {
                return Err(ScoreError::Config(format!(
                    "[gpu_reference] names \"{k}\" twice (names compare without case and a leading NVIDIA)"
                )));
            }
        }
        self.references = Some(out);
        Ok(self)
    }

    /// The price a verified speed of `ops_per_second` reaches: the base
    /// value of the most valuable model whose range minimum it reaches (0
    /// if none). Non-decreasing in the speed.
    pub fn price_for_speed(&self, ops_per_second: f64) -> f64 {
        let Some(refs) = &self.references else {
            return 0.0;
        };
        refs.iter()
            .filter(|(_, r)| r.min_ops <= ops_per_second)
            .filter_map(|(k, _)| self.table.get(k).copied())
            .fold(0.0, f64::max)
    }

    /// The price of one GPU of `model` for miner `r`, or `None` with the
    /// reason pushed onto `warnings`.
    fn price(
        &self,
        r: &super::MinerReport,
        model: &str,
        warnings: &mut Vec<String>,
    ) -> Option<f64> {
        let key = model_key(model);
        let Some(base) = self.table.get(&key).copied() else {
            warnings.push(format!(
                "uid {}: GPU model \"{model}\" is not in the table; it scores 0",
                r.uid
            ));
            return None;
        };
        let Some(refs) = &self.references else {
            return Some(base);
        };
        let unpaid = "its table price does not apply; paid on throughput alone";
        let speed = r
            .pow
            .as_ref()
            .filter(|p| p.passed)
            .map(|p| p.ops_per_second);
        match (refs.get(&key), speed) {
            (None, _) => {
                warnings.push(format!(
                    "uid {}: GPU model \"{model}\" has no [gpu_reference] range to check it against: {unpaid}",
                    r.uid
                ));
                None
            }
            (Some(_), None) => {
                warnings.push(format!(
                    "uid {}: reports GPU model \"{model}\" without a verified proof of work this epoch: {unpaid}",
                    r.uid
                ));
                None
            }
            (Some(range), Some(s)) if s < range.min_ops => {
                warnings.push(format!(
                    "uid {}: reports GPU model \"{model}\" but its verified {s:.4e} ops/s is below that model's range [{:.4e}, {:.4e}]: {unpaid}",
                    r.uid, range.min_ops, range.max_ops
                ));
                None
            }
            (Some(range), Some(s)) => {
                if s > range.max_ops {
                    warnings.push(format!(
                        "uid {}: reports GPU model \"{model}\" but its verified {s:.4e} ops/s is above that model's range [{:.4e}, {:.4e}]: priced by its speed",
                        r.uid, range.min_ops, range.max_ops
                    ));
                }
                Some(self.price_for_speed(s))
            }
        }
    }
}

impl Scorer for GpuTable {
    fn name(&self) -> &str {
        "gpu-table"
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        m.validate()?;
        let mut out = ScoreSet::default();
        for r in &m.miners {
            let mut values: Vec<(f64, u32)> = Vec::new();
            for g in &r.gpus {
                if let Some(p) = self.price(r, &g.model, &mut out.warnings) {
                    values.push((p, g.count));
                }
            }
            values.sort_by(|a, b| b.0.total_cmp(&a.0));
            // A proof of work times one device: with ranges to check
            // against, the count a miner claims is not measured, so one GPU
            // (its most valuable priced one) is paid.
            let most = if self.references.is_some() {
                let claimed: u64 = values.iter().map(|(_, c)| u64::from(*c)).sum();
                if claimed > 1 {
                    out.warnings.push(format!(
                        "uid {}: claims {claimed} GPUs, but its proof of work measures one device: paid for one",
                        r.uid
                    ));
                }
                Self::VERIFIED_GPUS
            } else {
                Self::MAX_GPUS
            };
            let (mut left, mut points) = (most, 0.0);
            for (b, c) in values {
                let take = c.min(left);
                points += b * f64::from(take) * self.scale;
                left -= take;
            }
            if r.allocated {
                points *= 2.0;
            }
            out.scores.insert(r.uid, Score::new(points.min(100.0))?);
        }
        Ok(out)
    }
}

/// `hardware-class`: `Σ relative_value(class) · efficiency · worked_seconds`
/// over a miner's executors, less `decline_penalty` points per declined job
/// (never below 0). An unknown class counts 0 and is reported.
#[derive(Clone, Debug, PartialEq)]
pub struct HardwareClass {
    values: BTreeMap<String, f64>,
    decline_penalty: f64,
}

impl HardwareClass {
    /// Relative values per class.
    pub fn new(values: BTreeMap<String, f64>) -> Result<HardwareClass, ScoreError> {
        Ok(HardwareClass {
            values: positive_table("hardware_classes", values)?,
            decline_penalty: 0.0,
        })
    }

    /// Points taken off per declined job.
    pub fn decline_penalty(mut self, points: f64) -> Result<HardwareClass, ScoreError> {
        if !(points.is_finite() && points >= 0.0) {
            return Err(ScoreError::Config(format!(
                "decline penalty {points} must be finite and non-negative"
            )));
        }
        self.decline_penalty = points;
        Ok(self)
    }
}

impl Scorer for HardwareClass {
    fn name(&self) -> &str {
        "hardware-class"
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        m.validate()?;
        let mut out = ScoreSet::default();
        for r in &m.miners {
            let mut points = 0.0;
            for e in &r.executors {
                match self.values.get(&model_key(&e.class)) {
                    Some(v) => points += v * e.efficiency.unwrap_or(1.0) * e.worked_seconds,
                    None => out.warnings.push(format!(
                        "uid {}: hardware class \"{}\" is not configured; its work scores 0",
                        r.uid, e.class
                    )),
                }
            }
            let points = (points - self.decline_penalty * f64::from(r.declined_jobs)).max(0.0);
            out.scores.insert(r.uid, Score::new(points)?);
        }
        Ok(out)
    }
}

/// `pow`: the validator-timed, verified throughput in absolute integer
/// ops/s (for an epoch, the median of its rounds, see
/// [`PowReport::from_rounds`](super::PowReport::from_rounds)), times
/// `1 − penalty`. There is no per-class reference: the class a miner names
/// (`pow.class`) is not read, so naming one cannot raise a score, and a
/// faster verified miner never scores less. A failed or late proof scores
/// 0 (and, through [`Penalties::advance`], lowers the next epochs); no
/// proof this epoch scores 0.
///
/// Scores are in ops/s (1e11 for a CPU, 1e14 and up for a GPU): weights
/// divide by the largest score, so only ratios matter; in a [`Composite`]
/// pick weights in that unit (1e-12 makes a Tops/s worth one point).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PowScorer {
    penalties: Option<Penalties>,
}

impl PowScorer {
    /// The scorer, without penalties.
    pub fn new() -> PowScorer {
        PowScorer::default()
    }

    /// Applies these penalties (a snapshot; advance them once per epoch).
    pub fn with_penalties(mut self, p: &Penalties) -> PowScorer {
        self.penalties = Some(p.clone());
        self
    }
}

impl Scorer for PowScorer {
    fn name(&self) -> &str {
        "pow"
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        m.validate()?;
        let mut out = ScoreSet::default();
        for r in &m.miners {
            let penalty = self.penalties.as_ref().map_or(0.0, |p| p.get(r.uid));
            let s = match &r.pow {
                Some(p) if p.passed => p.ops_per_second * (1.0 - penalty),
                _ => 0.0,
            };
            out.scores.insert(r.uid, Score::new(s)?);
        }
        Ok(out)
    }
}

/// `composite`: `Σ weight_i · score_i` per uid over other scorers.
pub struct Composite {
    parts: Vec<(f64, Box<dyn Scorer>)>,
}

impl std::fmt::Debug for Composite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(f64, &str)> = self.parts.iter().map(|(w, s)| (*w, s.name())).collect();
        f.debug_struct("Composite").field("parts", &names).finish()
    }
}

impl Composite {
    /// Scorers with their weights (finite, non-negative, at least one positive).
    pub fn new(parts: Vec<(f64, Box<dyn Scorer>)>) -> Result<Composite, ScoreError> {
        if parts.is_empty() || parts.iter().all(|(w, _)| *w == 0.0) {
            return Err(ScoreError::Config(
                "a composite needs a scorer with a positive weight".into(),
            ));
        }
        if let Some((w, s)) = parts.iter().find(|(w, _)| !(w.is_finite() && *w >= 0.0)) {
            return Err(ScoreError::BadWeight {
                scorer: s.name().to_owned(),
                weight: *w,
            });
        }
        Ok(Composite { parts })
    }
}

impl Scorer for Composite {
    fn name(&self) -> &str {
        "composite"
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        let mut total: BTreeMap<Uid, f64> = BTreeMap::new();
        let mut warnings = Vec::new();
        for (w, s) in &self.parts {
            let part = s.score(m)?;
            for (uid, v) in part.scores {
                *total.entry(uid).or_default() += w * v.get();
            }
            warnings.extend(part.warnings);
        }
        let scores = total
            .into_iter()
            .map(|(u, v)| Score::new(v).map(|s| (u, s)))
            .collect::<Result<_, _>>()?;
        Ok(ScoreSet { scores, warnings })
    }
}
