//! A seeded, replayable **simulation** that compares allocation strategies.
//!
//! Nothing here touches a chain: validators, stakes and miners are synthetic
//! (or validators come from a metagraph snapshot) and the reward model is the
//! one compute subnets use, simplified:
//!
//! * Each window, every miner splits its blocks across the eligible validators
//!   with its strategy. Miner `m` has a compute capacity `c_m`, so giving
//!   validator `v` `x` blocks delivers `c_m * x` units of compute.
//! * Validator `v` (stake `s_v`) pays out its stake in proportion to the share
//!   of all compute it received: miner `m` earns `s_v * c_m x_mv / L_v`, where
//!   `L_v` is the total `v` received.
//! * Miners running [`Emission`](crate::strategy::Emission) see last window's
//!   loads (what others sent each validator, in their own blocks); in the
//!   first window they have no loads and fall back to proportional.
//! * Stakes drift between windows by a seeded log-normal factor.
//!
//! Per strategy the report gives:
//!
//! * `reward_per_compute`: the mean, over its miners and windows, of reward per
//!   unit of compute relative to the stake-proportional ideal (where every
//!   miner earns `S / C` per unit; 1.0 matches the ideal, above 1 beats it);
//! * `jain_fairness`: Jain's index over validators of compute received per
//!   unit of stake from miners of that strategy (1.0 = service exactly
//!   proportional to stake);
//! * `coverage`: the share of eligible validators each miner serves at least
//!   `min_blocks`;
//! * `mean_alloc_us`: wall-clock microseconds per allocation (the only field
//!   that is not replayed exactly by the seed).
//!
//! ```
//! use akihabara_core::sim::{SimConfig, Simulation};
//! let cfg = SimConfig::default().validators(16).miners(8).windows(3).seed(42);
//! let report = Simulation::with_builtins(cfg, &["proportional", "stake"])?.run(|_| {})?;
//! assert_eq!(report.strategies.len(), 2);
//! # Ok::<(), akihabara_core::Error>(())
//! ```

use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Pareto};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::strategy::{
    self, AllocationRequest, Candidate, Eligibility, allocate_checked, stake_order,
};
use crate::{
    AllocationStrategy, Block, Hotkey, Metagraph, Netuid, Neuron, RAO_PER_TAO, Rao, ScheduleError,
    Uid, Window,
};

/// Most miners a simulation takes.
pub const MAX_MINERS: usize = 65_536;
/// Most synthetic validators: a subnet's uids are 16-bit.
pub const MAX_VALIDATORS: usize = 65_536;
/// Most windows a simulation runs.
pub const MAX_WINDOWS: usize = 100_000;
/// Most miner-validator pairs per window: each is a `u64` of the window's
/// allocation matrix, kept for two windows (2^24 pairs: 256 MiB).
pub const MAX_PAIRS: u64 = 1 << 24;
/// Most miner-validator-window cells in one run (2^32: minutes on a few
/// cores; the default run has about 330,000).
pub const MAX_CELLS: u64 = 1 << 32;
/// The largest per-window stake drift (the log-normal's sigma): at 1 a
/// stake changes by a factor beyond e (2.7) one window in three.
pub const MAX_STAKE_DRIFT: f64 = 1.0;

/// Simulation parameters. Every field has a default; the seed makes a run replayable.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimConfig {
    /// Synthetic validators (ignored when `metagraph` is set).
    pub validators: usize,
    /// Miners; miner `i` runs strategy `i mod k`.
    pub miners: usize,
    /// Windows to simulate.
    pub windows: usize,
    /// Blocks per window (mainnet: `2 * 360`).
    pub window_len: u64,
    /// Minimum blocks per served validator.
    pub min_blocks: u64,
    /// RNG seed: the same seed gives the same report (timings aside).
    pub seed: u64,
    /// Standard deviation of the per-window log-normal stake drift (0 = static stakes).
    pub stake_drift: f64,
    /// Take validators (permits and stakes) from this metagraph instead.
    pub metagraph: Option<Metagraph>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            validators: 64,
            miners: 256,
            windows: 20,
            window_len: 720,
            min_blocks: strategy::DEFAULT_MIN_BLOCKS,
            seed: 0,
            stake_drift: 0.02,
            metagraph: None,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl SimConfig {
            $($(#[$doc])* pub fn $name(mut self, $name: $ty) -> SimConfig {
                self.$name = $name;
                self
            })*
        }
    };
}

setters! {
    /// Sets the number of synthetic validators.
    validators: usize,
    /// Sets the number of miners.
    miners: usize,
    /// Sets the number of windows.
    windows: usize,
    /// Sets the window length in blocks.
    window_len: u64,
    /// Sets the minimum blocks per served validator.
    min_blocks: u64,
    /// Sets the RNG seed.
    seed: u64,
    /// Sets the per-window stake drift.
    stake_drift: f64,
}

impl SimConfig {
    /// Checks every bound before anything is allocated: 1 to
    /// [`MAX_MINERS`] miners, 1 to [`MAX_WINDOWS`] windows, 1 to
    /// [`MAX_VALIDATORS`] synthetic validators, a finite stake drift in
    /// `[0, MAX_STAKE_DRIFT]`, and (with `validators`, the eligible count)
    /// at most [`MAX_PAIRS`] miner-validator pairs and [`MAX_CELLS`] cells.
    pub fn check(&self, validators: usize) -> Result<(), SimError> {
        let invalid = |m: String| Err(SimError::Invalid(m));
        if self.miners == 0 || self.windows == 0 {
            return invalid("miners and windows must be at least 1".into());
        }
        if self.miners > MAX_MINERS {
            return invalid(format!("{} miners is more than {MAX_MINERS}", self.miners));
        }
        if self.windows > MAX_WINDOWS {
            return invalid(format!(
                "{} windows is more than {MAX_WINDOWS}",
                self.windows
            ));
        }
        if self.metagraph.is_none() && self.validators > MAX_VALIDATORS {
            return invalid(format!(
                "{} validators is more than {MAX_VALIDATORS} (a subnet's uids are 16-bit)",
                self.validators
            ));
        }
        if !(self.stake_drift.is_finite() && (0.0..=MAX_STAKE_DRIFT).contains(&self.stake_drift)) {
            return invalid(format!(
                "stake drift {:?} is not in [0, {MAX_STAKE_DRIFT:?}]",
                self.stake_drift
            ));
        }
        let pairs = self.miners as u64 * validators as u64;
        if pairs > MAX_PAIRS {
            return invalid(format!(
                "{} miners x {validators} validators is more than {MAX_PAIRS} pairs",
                self.miners
            ));
        }
        if pairs * self.windows as u64 > MAX_CELLS {
            return invalid(format!(
                "{} miners x {validators} validators x {} windows is more than {MAX_CELLS} cells",
                self.miners, self.windows
            ));
        }
        Ok(())
    }

    /// Takes validators from `mg` instead of generating them.
    pub fn metagraph(mut self, mg: Metagraph) -> SimConfig {
        self.metagraph = Some(mg);
        self
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A parameter out of range.
    #[error("invalid simulation parameter: {0}")]
    Invalid(String),
    /// A strategy failed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// Results for one strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StrategyReport {
    /// Name of the strategy, as [`strategy::by_name`] takes it.
    pub strategy: String,
    /// Miners that ran it.
    pub miners: usize,
    /// Mean reward per unit of compute relative to the stake-proportional ideal.
    pub reward_per_compute: f64,
    /// Jain's fairness index of compute per unit of stake across validators.
    pub jain_fairness: f64,
    /// Share of eligible validators served at least `min_blocks`.
    pub coverage: f64,
    /// Mean wall-clock time per allocation, in microseconds (not replayed by the seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_alloc_us: Option<f64>,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SimReport {
    /// The seed used.
    pub seed: u64,
    /// Validators that passed eligibility (permit and stake).
    pub validators: usize,
    /// Miners simulated, across all strategies.
    pub miners: usize,
    /// Windows simulated.
    pub windows: usize,
    /// Blocks per window.
    pub window_len: u64,
    /// Minimum blocks per served validator.
    pub min_blocks: u64,
    /// One entry per strategy, in the order given.
    pub strategies: Vec<StrategyReport>,
}

impl SimReport {
    /// Drops the wall-clock timings, leaving only what the seed replays exactly.
    pub fn without_timings(mut self) -> SimReport {
        for s in &mut self.strategies {
            s.mean_alloc_us = None;
        }
        self
    }
}

/// A configured simulation.
pub struct Simulation {
    config: SimConfig,
    strategies: Vec<Arc<dyn AllocationStrategy>>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.strategies.iter().map(|s| s.name()).collect();
        f.debug_struct("Simulation")
            .field("config", &self.config)
            .field("strategies", &names)
            .finish()
    }
}

/// Per-strategy running sums.
#[derive(Default, Clone)]
struct Acc {
    reward: f64,
    reward_n: u64,
    jain: f64,
    jain_n: u64,
    covered: f64,
    covered_n: u64,
    alloc_ns: u128,
    allocs: u64,
}

impl Simulation {
    /// A simulation with no strategies yet; add them with [`Simulation::strategy`].
    pub fn new(config: SimConfig) -> Simulation {
        Simulation {
            config,
            strategies: Vec::new(),
        }
    }

    /// A simulation of the named built-in strategies.
    pub fn with_builtins(config: SimConfig, names: &[&str]) -> Result<Simulation, ScheduleError> {
        let mut sim = Simulation::new(config);
        for name in names {
            sim.strategies.push(Arc::from(strategy::by_name(name)?));
        }
        Ok(sim)
    }

    /// Adds a strategy (built-in or your own); miners are assigned round-robin.
    pub fn strategy(mut self, s: impl AllocationStrategy + 'static) -> Simulation {
        self.strategies.push(Arc::new(s));
        self
    }

    /// The validators: `(uid, hotkey, stake in TAO as f64)` sorted by uid.
    fn validators(&self, rng: &mut ChaCha8Rng) -> Result<Vec<(Uid, Hotkey, f64)>, SimError> {
        let generated;
        let mg = match &self.config.metagraph {
            Some(mg) => mg,
            None => {
                let n = self.config.validators;
                if n == 0 {
                    return Err(SimError::Invalid("validators must be at least 1".into()));
                }
                generated = synthetic_metagraph(n, 0, rng.random())?;
                &generated
            }
        };
        let mut v: Vec<_> = Eligibility::new()
            .candidates(mg)
            .iter()
            .map(|c| (c.uid, c.hotkey, c.stake.get() as f64 / RAO_PER_TAO as f64))
            .collect();
        if v.is_empty() {
            return Err(ScheduleError::NoEligibleValidators.into());
        }
        v.sort_by_key(|x| x.0);
        Ok(v)
    }

    /// Runs the simulation; `progress` is called with the number of windows done.
    pub fn run(&self, progress: impl Fn(usize)) -> Result<SimReport, SimError> {
        let cfg = &self.config;
        if self.strategies.is_empty() {
            return Err(SimError::Invalid("no strategies to compare".into()));
        }
        // Everything but the eligible count first, so nothing is generated
        // for a run that is refused; the pairs once the count is known.
        cfg.check(1)?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let validators = self.validators(&mut rng)?;
        let nv = validators.len();
        cfg.check(nv)?;
        let mut stakes: Vec<f64> = validators.iter().map(|v| v.2).collect();
        let initial_stake: f64 = stakes.iter().sum();
        let mut index_of = vec![usize::MAX; usize::from(u16::MAX) + 1];
        for (i, v) in validators.iter().enumerate() {
            index_of[usize::from(v.0.get())] = i;
        }
        let capacity = LogNormal::new(0.0, 0.5).map_err(|e| SimError::Invalid(e.to_string()))?;
        let caps: Vec<f64> = (0..cfg.miners).map(|_| capacity.sample(&mut rng)).collect();
        let total_cap: f64 = caps.iter().sum();
        let k = self.strategies.len();
        let drift = (cfg.stake_drift > 0.0)
            .then(|| LogNormal::new(0.0, cfg.stake_drift))
            .transpose()
            .map_err(|e| SimError::Invalid(e.to_string()))?;

        let mut acc = vec![Acc::default(); k];
        // Blocks each miner gave each validator last window (for emission miners).
        let mut prev: Option<(Vec<Vec<u64>>, Vec<f64>)> = None;
        let mut window =
            Window::new(Block(0), cfg.window_len).map_err(|e| SimError::Invalid(e.to_string()))?;

        for w in 0..cfg.windows {
            if let Some(d) = &drift {
                for s in &mut stakes {
                    *s *= d.sample(&mut rng);
                }
                // Drift moves stake between validators; the total stays, so
                // no run drifts a float to infinity or zero.
                let total: f64 = stakes.iter().sum();
                if total > 0.0 && total.is_finite() {
                    let scale = initial_stake / total;
                    stakes.iter_mut().for_each(|s| *s *= scale);
                }
            }
            let mut base: Vec<Candidate> = validators
                .iter()
                .zip(&stakes)
                .map(|(v, &s)| Candidate::new(v.0, v.1, Rao((s * RAO_PER_TAO as f64) as u64)))
                .collect();
            base.sort_by(stake_order);

            let rows: Vec<Result<(Vec<u64>, u128), ScheduleError>> = (0..cfg.miners)
                .into_par_iter()
                .map(|m| {
                    let strat = &self.strategies[m % k];
                    let mut cands = base.clone();
                    if let Some((xs, loads)) = &prev {
                        for c in &mut cands {
                            let v = index_of[usize::from(c.uid.get())];
                            let others = loads[v] - caps[m] * xs[m][v] as f64;
                            *c = c.clone().with_competitor_load(others.max(0.0) / caps[m]);
                        }
                    }
                    let req = AllocationRequest::new(window, cfg.min_blocks, cands)?;
                    let t = Instant::now();
                    let alloc = allocate_checked(&**strat, &req)?;
                    let ns = t.elapsed().as_nanos();
                    let mut row = vec![0u64; nv];
                    for e in &alloc.entries {
                        row[index_of[usize::from(e.uid.get())]] = e.blocks;
                    }
                    Ok((row, ns))
                })
                .collect();
            let mut xs = Vec::with_capacity(cfg.miners);
            for (m, r) in rows.into_iter().enumerate() {
                let (row, ns) = r?;
                acc[m % k].alloc_ns += ns;
                acc[m % k].allocs += 1;
                xs.push(row);
            }

            // Loads and rewards.
            let mut loads = vec![0.0f64; nv];
            for (m, row) in xs.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    loads[v] += caps[m] * x as f64;
                }
            }
            let total_stake: f64 = stakes.iter().sum();
            let mut per_strategy_load = vec![vec![0.0f64; nv]; k];
            for (m, row) in xs.iter().enumerate() {
                let a = &mut acc[m % k];
                let mut reward = 0.0;
                let mut covered = 0usize;
                for (v, &x) in row.iter().enumerate() {
                    if x > 0 {
                        reward += stakes[v] * caps[m] * x as f64 / loads[v];
                        per_strategy_load[m % k][v] += caps[m] * x as f64;
                        if x >= cfg.min_blocks {
                            covered += 1;
                        }
                    }
                }
                if total_stake > 0.0 {
                    a.reward += reward * total_cap / (total_stake * caps[m]);
                    a.reward_n += 1;
                }
                a.covered += covered as f64 / nv as f64;
                a.covered_n += 1;
            }
            for (s, load) in per_strategy_load.iter().enumerate() {
                let y: Vec<f64> = load
                    .iter()
                    .zip(&stakes)
                    .filter(|(_, st)| **st > 0.0)
                    .map(|(l, st)| l / st)
                    .collect();
                let sum: f64 = y.iter().sum();
                let sq: f64 = y.iter().map(|v| v * v).sum();
                if !y.is_empty() && s < cfg.miners {
                    acc[s].jain += if sq > 0.0 {
                        sum * sum / (y.len() as f64 * sq)
                    } else {
                        0.0
                    };
                    acc[s].jain_n += 1;
                }
            }
            prev = Some((xs, loads));
            progress(w + 1);
            if w + 1 < cfg.windows {
                window = window
                    .next()
                    .map_err(|e| SimError::Invalid(e.to_string()))?;
            }
        }

        let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        let strategies = self
            .strategies
            .iter()
            .zip(&acc)
            .enumerate()
            .map(|(i, (s, a))| StrategyReport {
                strategy: s.name().to_owned(),
                miners: (0..cfg.miners).filter(|m| m % k == i).count(),
                reward_per_compute: mean(a.reward, a.reward_n),
                jain_fairness: mean(a.jain, a.jain_n),
                coverage: mean(a.covered, a.covered_n),
                mean_alloc_us: Some(if a.allocs == 0 {
                    0.0
                } else {
                    a.alloc_ns as f64 / a.allocs as f64 / 1000.0
                }),
            })
            .collect();
        Ok(SimReport {
            seed: cfg.seed,
            validators: nv,
            miners: cfg.miners,
            windows: cfg.windows,
            window_len: cfg.window_len,
            min_blocks: cfg.min_blocks,
            strategies,
        })
    }
}

/// A seeded synthetic subnet: `validators` neurons with permits and
/// heavy-tailed stakes (Pareto, shape 1.16, from 1,000 TAO), then `miners`
/// neurons without permits and small stakes, each with an axon on loopback.
/// The block is 7,300 (inside the window `[7200, 7920)`). This is test and demo
/// data, not a real subnet.
pub fn synthetic_metagraph(
    validators: usize,
    miners: usize,
    seed: u64,
) -> Result<Metagraph, SimError> {
    let total = validators + miners;
    if total == 0 || total > usize::from(u16::MAX) + 1 {
        return Err(SimError::Invalid(format!(
            "a subnet holds 1 to 65536 neurons, got {total}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pareto = Pareto::new(1000.0, 1.16).map_err(|e| SimError::Invalid(e.to_string()))?;
    let neurons = (0..total)
        .map(|i| {
            let mut key = [0u8; 32];
            rng.fill(&mut key[..]);
            let is_validator = i < validators;
            let tao: f64 = if is_validator {
                f64::min(pareto.sample(&mut rng), 1e9)
            } else {
                rng.random_range(0.0..50.0)
            };
            let mut n = Neuron::new(
                Uid(i as u16),
                Hotkey::from_bytes(key),
                Rao((tao * RAO_PER_TAO as f64) as u64),
                is_validator,
            );
            n.axon = Some(std::net::SocketAddr::from((
                [127, 0, 0, 2],
                8091 + (i % 1000) as u16,
            )));
            n
        })
        .collect();
    Metagraph::new(Netuid(0), Block(7_300), neurons).map_err(|e| SimError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SimConfig {
        SimConfig {
            validators: 32,
            miners: 40,
            windows: 6,
            seed: 7,
            ..SimConfig::default()
        }
    }

    #[test]
    fn same_seed_same_report() {
        let names = ["stake", "equal", "proportional", "emission"];
        let a = Simulation::with_builtins(cfg(), &names)
            .unwrap()
            .run(|_| {})
            .unwrap();
        let b = Simulation::with_builtins(cfg(), &names)
            .unwrap()
            .run(|_| {})
            .unwrap();
        assert_eq!(a.clone().without_timings(), b.without_timings());
        let other = SimConfig { seed: 8, ..cfg() };
        let c = Simulation::with_builtins(other, &names)
            .unwrap()
            .run(|_| {})
            .unwrap();
        assert_ne!(a.without_timings(), c.without_timings());
    }

    #[test]
    fn metrics_are_sane() {
        let names = ["stake", "equal", "proportional", "emission"];
        let r = Simulation::with_builtins(cfg(), &names)
            .unwrap()
            .run(|_| {})
            .unwrap();
        assert_eq!(r.strategies.iter().map(|s| s.miners).sum::<usize>(), 40);
        for s in &r.strategies {
            assert!(
                s.reward_per_compute > 0.0 && s.reward_per_compute.is_finite(),
                "{s:?}"
            );
            assert!((0.0..=1.0 + 1e-12).contains(&s.jain_fairness), "{s:?}");
            assert!((0.0..=1.0).contains(&s.coverage), "{s:?}");
        }
        let by = |r: &SimReport, n: &str| {
            r.strategies
                .iter()
                .find(|s| s.strategy == n)
                .unwrap()
                .clone()
        };
        // 32 validators * 40 blocks > 720: only 18 can get the minimum.
        assert!((by(&r, "proportional").coverage - 18.0 / 32.0).abs() < 1e-9);
        assert!((by(&r, "equal").coverage - 18.0 / 32.0).abs() < 1e-9);
        // With room for all (12 * 40 <= 720) every validator is covered, and
        // proportional follows stake far more closely than an equal split.
        let roomy = SimConfig {
            validators: 12,
            ..cfg()
        };
        let r = Simulation::with_builtins(roomy, &names)
            .unwrap()
            .run(|_| {})
            .unwrap();
        for name in ["equal", "proportional", "emission"] {
            assert_eq!(by(&r, name).coverage, 1.0, "{name}");
        }
        assert!(by(&r, "proportional").jain_fairness > by(&r, "equal").jain_fairness + 0.1);
        assert!(by(&r, "proportional").jain_fairness > 0.85);
    }

    /// The largest drift over many windows keeps every figure finite.
    #[test]
    fn the_largest_drift_stays_finite() {
        let c = SimConfig {
            validators: 8,
            miners: 8,
            windows: 2_000,
            stake_drift: MAX_STAKE_DRIFT,
            ..cfg()
        };
        let r = Simulation::with_builtins(c, &["proportional", "emission"])
            .unwrap()
            .run(|_| {})
            .unwrap();
        for s in &r.strategies {
            assert!(s.reward_per_compute.is_finite(), "{s:?}");
            assert!(s.jain_fairness.is_finite(), "{s:?}");
            assert!(s.coverage.is_finite(), "{s:?}");
        }
    }

    #[test]
    fn progress_and_errors() {
        let seen = std::sync::Mutex::new(Vec::new());
        Simulation::with_builtins(cfg(), &["equal"])
            .unwrap()
            .run(|w| seen.lock().unwrap().push(w))
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let none = Simulation::new(cfg()).run(|_| {});
        assert!(matches!(none, Err(SimError::Invalid(_))));
        let zero = SimConfig {
            validators: 0,
            ..cfg()
        };
        assert!(
            Simulation::with_builtins(zero, &["equal"])
                .unwrap()
                .run(|_| {})
                .is_err()
        );
        let refused = |c: SimConfig| match Simulation::with_builtins(c, &["equal"])
            .unwrap()
            .run(|_| {})
        {
            Err(SimError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(SimConfig {
                miners: 4_294_967_295,
                ..cfg()
            }),
            "4294967295 miners is more than 65536"
        );
        assert_eq!(
            refused(SimConfig {
                windows: 100_001,
                ..cfg()
            }),
            "100001 windows is more than 100000"
        );
        assert_eq!(
            refused(SimConfig {
                validators: 65_537,
                ..cfg()
            }),
            "65537 validators is more than 65536 (a subnet's uids are 16-bit)"
        );
        for drift in [1e308, 1000.0, 1.01, -0.1, f64::NAN, f64::INFINITY] {
            assert_eq!(
                refused(SimConfig {
                    stake_drift: drift,
                    ..cfg()
                }),
                format!("stake drift {drift:?} is not in [0, 1.0]")
            );
        }
        assert_eq!(
            refused(SimConfig {
                miners: 65_536,
                validators: 257,
                ..cfg()
            }),
            "65536 miners x 257 validators is more than 16777216 pairs"
        );
        assert_eq!(
            refused(SimConfig {
                miners: 65_536,
                validators: 256,
                windows: 257,
                ..cfg()
            }),
            "65536 miners x 256 validators x 257 windows is more than 4294967296 cells"
        );
        let tight = SimConfig {
            min_blocks: 721,
            ..cfg()
        };
        assert!(matches!(
            Simulation::with_builtins(tight, &["equal"])
                .unwrap()
                .run(|_| {}),
            Err(SimError::Schedule(
                ScheduleError::MinBlocksExceedWindow { .. }
            ))
        ));
    }
}
