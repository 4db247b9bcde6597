//! A user-defined scorer mixed with the built-in ones, smoothed across
//! epochs and turned into the weights a validator would set.
//!
//! Run: `cargo run --example 02-custom-scorer`

use akihabara::score::{
    Composite, Ema, GpuTable, Measurements, PowScorer, Score, ScoreError, ScoreSet, Scorer,
};
use akihabara::weights::convert_for_emit;

/// Pays for uptime: one point per GPU a miner has kept online, but only for
/// miners that also passed this epoch's proof of work.
struct ProvenGpus;

impl Scorer for ProvenGpus {
    fn name(&self) -> &str {
        "proven-gpus"
    }

    fn score(&self, m: &Measurements) -> Result<ScoreSet, ScoreError> {
        m.validate()?;
        let mut out = ScoreSet::default();
        for r in &m.miners {
            let passed = r.pow.as_ref().is_some_and(|p| p.passed);
            let gpus: u32 = r.gpus.iter().map(|g| g.count).sum();
            out.scores.insert(
                r.uid,
                Score::new(if passed { f64::from(gpus) } else { 0.0 })?,
            );
        }
        Ok(out)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/measurements.json");
    let m: Measurements = serde_json::from_slice(&std::fs::read(path)?)?;

    // Verified ops/s, whatever class a miner names: 4 points per 1e15 ops/s.
    let pow = PowScorer::new();
    let scorer = Composite::new(vec![
        (1.0, Box::new(ProvenGpus)),
        (0.05, Box::new(GpuTable::default())),
        (4e-15, Box::new(pow)),
    ])?;

    let mut ema = Ema::new(0.3)?;
    for epoch in 1..=3 {
        let smoothed = ema.update(&scorer.score(&m)?);
        let (uids, values) = smoothed.to_vectors();
        let w = convert_for_emit(&uids, &values)?;
        println!("epoch {epoch}:");
        for (uid, s) in &smoothed.scores {
            let weight = w
                .uids
                .iter()
                .position(|u| u == uid)
                .map_or(0, |i| w.weights[i]);
            println!(
                "  uid {:<3} score {:>8.4}  weight {weight:>5}",
                uid.0,
                s.get()
            );
        }
    }
    Ok(())
}
