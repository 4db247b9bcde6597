//! A user-defined allocation strategy, compared with the built-ins in the
//! strategy simulator.
//!
//! Run: `cargo run --release --example 01-custom-strategy [SEED]`

use akihabara::AllocationStrategy;
use akihabara::ScheduleError;
use akihabara::sim::{SimConfig, Simulation};
use akihabara::strategy::apportion::largest_remainder;
use akihabara::strategy::{Allocation, AllocationRequest};

/// Shares follow the square root of stake, with the minimum kept: flatter
/// than proportional, so smaller validators see more of this miner.
struct SqrtStake;

impl AllocationStrategy for SqrtStake {
    fn name(&self) -> &str {
        "sqrt-stake"
    }

    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        let served = req.servable();
        let min = req.min_blocks();
        let weights: Vec<u64> = req.candidates()[..served]
            .iter()
            .map(|c| (c.stake.get() as f64).sqrt() as u64)
            .collect();
        let rest = req.window().len - min * served as u64;
        let mut blocks: Vec<u64> = largest_remainder(rest, &weights)
            .into_iter()
            .map(|b| b + min)
            .collect();
        blocks.resize(req.candidates().len(), 0);
        Ok(Allocation::from_blocks(req, blocks))
    }
}

fn main() -> Result<(), akihabara::Error> {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let config = SimConfig::default()
        .validators(12)
        .miners(200)
        .windows(30)
        .seed(seed);
    let report = Simulation::with_builtins(config, &["proportional", "stake", "equal"])?
        .strategy(SqrtStake)
        .run(|_| {})?;
    println!(
        "simulation, seed {}: {} validators, {} miners, {} windows\n",
        report.seed, report.validators, report.miners, report.windows
    );
    println!(
        "{:<14} {:>15} {:>8} {:>9}",
        "strategy", "reward/compute", "jain", "coverage"
    );
    for s in &report.strategies {
        println!(
            "{:<14} {:>15.4} {:>8.4} {:>8.1}%",
            s.strategy,
            s.reward_per_compute,
            s.jain_fairness,
            100.0 * s.coverage
        );
    }
    Ok(())
}
