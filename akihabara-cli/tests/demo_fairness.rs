//! The demo's fairness: identical miners are paid alike. Alone in its test
//! binary (see the test's docs).
// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_akihabara"))
        .args(args)
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .output()
        .expect("run akihabara");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

/// Three miners running the same prover on loopback, measured by one
/// validator over six windows (three rounds per slot, one proof at a time,
/// each sized to about 0.5 s): their weights are within 10 % of each other.
///
/// The measurement is time on a shared machine. This test has a binary of
/// its own, because cargo runs test binaries one after another: no other
/// test of the suite runs beside it (in `tests/cli.rs`, with the CLI's
/// other tests beside it, three runs in a row once saw spreads of 15-20 %).
/// A neighbour outside the suite may still burst, so up to three runs are
/// made, every one is checked in full, and the spread must be within 10 %
/// in at least one; each run's spread is printed.
#[test]
fn demo_pays_identical_miners_within_ten_percent() {
    let mut spreads = Vec::new();
    for _ in 0..3 {
        let (spread, weights) = identical_miners_run();
        eprintln!("identical miners' weights {weights:?}: spread {spread:.1} %");
        spreads.push(spread);
        if spread <= 10.0 {
            return;
        }
    }
    panic!("no run within 10 %: spreads {spreads:?} %");
}

/// One demo run of three identical miners: the spread of their weights (in
/// %, checked against what the demo reports) and the weights.
fn identical_miners_run() -> (f64, Vec<f64>) {
    let v = json(&["demo", "--json", "--validators", "1", "--windows", "6"]);
    let weights: Vec<f64> = v["validators"][0]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["weight"].as_f64().unwrap())
        .collect();
    assert_eq!(weights.len(), 3, "{v}");
    let hi = weights.iter().copied().fold(0.0, f64::max);
    let lo = weights.iter().copied().fold(f64::MAX, f64::min);
    let spread = 100.0 * (hi - lo) / hi;
    // The demo reports the same spread it set.
    assert_eq!(v["agreement"]["spread_pct"][0][0], 0, "{v}");
    assert_eq!(
        v["agreement"]["spread_pct"][0][1].as_f64(),
        Some(spread),
        "{v}"
    );
    assert_eq!(hi, 65535.0, "{weights:?}");
    // Every challenge after a miner's first is sized to its last speed.
    let counts: Vec<u64> = v["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .collect();
    assert!(counts.iter().all(|c| (2..=256).contains(c)), "{counts:?}");
    (spread, weights)
}
