//! What `akihabara demo` reports: the JSON document and its text rendering.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub(super) struct MinerOut {
    pub(super) uid: u16,
    pub(super) hotkey: String,
    pub(super) port: u16,
    pub(super) cheating: bool,
    pub(super) pow_passed: u32,
    pub(super) pow_failed: u32,
}

impl MinerOut {
    /// The miner's line: its rounds passed and failed.
    pub(super) fn tally(
        uid: u16,
        target: &akihabara_core::dendrite::AxonTarget,
        cheating: bool,
        rounds: &[RoundOut],
    ) -> MinerOut {
        let mine = rounds.iter().filter(|r| r.miner == uid);
        let passed = mine.clone().filter(|r| r.passed).count() as u32;
        MinerOut {
            uid,
            hotkey: target.hotkey.to_ss58(),
            port: target.port,
            cheating,
            pow_passed: passed,
            pow_failed: mine.count() as u32 - passed,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct WeightOut {
    pub(super) uid: u16,
    pub(super) weight: u16,
}

#[derive(Debug, Serialize)]
pub(super) struct ValidatorOut {
    pub(super) uid: u16,
    pub(super) hotkey: String,
    pub(super) stake_tao: f64,
    pub(super) scores: Vec<(u16, f64)>,
    pub(super) weights: Vec<WeightOut>,
    pub(super) weights_set_at: Option<u64>,
    pub(super) weights_error: Option<String>,
}

impl ValidatorOut {
    /// The validator's line: its stake and its last epoch.
    pub(super) fn new(
        uid: akihabara_core::Uid,
        kp: &akihabara_core::wallet::Keypair,
        mg: &akihabara_core::Metagraph,
        (scores, weights, at, error): LastEpoch,
    ) -> ValidatorOut {
        ValidatorOut {
            uid: uid.0,
            hotkey: kp.account().to_ss58(),
            stake_tao: mg
                .neurons()
                .iter()
                .find(|n| n.uid == uid)
                .map_or(0.0, |n| n.stake.to_tao().as_f64()),
            scores,
            weights,
            weights_set_at: at,
            weights_error: error,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct RoundOut {
    pub(super) window_start: u64,
    pub(super) miner: u16,
    pub(super) validator: u16,
    pub(super) slot: [u64; 2],
    pub(super) passed: bool,
    pub(super) ops_per_second: f64,
    /// Products in the challenge (scaled to the miner's last speed).
    pub(super) count: u32,
    pub(super) verdict: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) demo: String,
    /// `simulated (SnapshotChain)` or the chain's URL.
    pub(super) chain: String,
    pub(super) strategy: String,
    pub(super) challenge: serde_json::Value,
    pub(super) windows: Vec<serde_json::Value>,
    pub(super) rounds: Vec<RoundOut>,
    pub(super) miners: Vec<MinerOut>,
    pub(super) validators: Vec<ValidatorOut>,
    pub(super) agreement: Agreement,
    pub(super) elapsed_s: f64,
}

/// How much the weights of miners that run the same prover differ, and how
/// far the validators agree.
#[derive(Debug, Serialize)]
pub(super) struct Agreement {
    /// Per validator: `(max - min) / max` of the honest miners' weights, in
    /// percent (every honest demo miner runs the same CPU prover).
    pub(super) spread_pct: Vec<(u16, f64)>,
    /// The largest difference between two validators' weights for one
    /// miner, in percent of 65535.
    pub(super) max_weight_difference_pct: f64,
    /// Miner pairs both validators of a pair order strictly, and how many
    /// of those they order the same way (summed over validator pairs).
    pub(super) ordered_pairs: u32,
    pub(super) same_order: u32,
}

pub(super) fn agreement(miners: &[MinerOut], validators: &[ValidatorOut]) -> Agreement {
    let weight = |v: &ValidatorOut, uid: u16| {
        v.weights
            .iter()
            .find(|w| w.uid == uid)
            .map_or(0.0, |w| f64::from(w.weight))
    };
    let honest: Vec<u16> = miners
        .iter()
        .filter(|m| !m.cheating)
        .map(|m| m.uid)
        .collect();
    let spread_pct = validators
        .iter()
        .map(|v| {
            let ws: Vec<f64> = honest.iter().map(|u| weight(v, *u)).collect();
            let (lo, hi) = ws
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), w| (lo.min(*w), hi.max(*w)));
            let pct = if hi > 0.0 {
                100.0 * (hi - lo) / hi
            } else {
                0.0
            };
            (v.uid, pct)
        })
        .collect();
    let (mut diff, mut ordered, mut same) = (0.0f64, 0, 0);
    for (i, a) in validators.iter().enumerate() {
        for b in &validators[i + 1..] {
            for m in miners {
                diff = diff.max((weight(a, m.uid) - weight(b, m.uid)).abs());
            }
            for (j, x) in miners.iter().enumerate() {
                for y in &miners[j + 1..] {
                    let da = weight(a, x.uid) - weight(a, y.uid);
                    let db = weight(b, x.uid) - weight(b, y.uid);
                    if da != 0.0 && db != 0.0 {
                        ordered += 1;
                        same += u32::from((da > 0.0) == (db > 0.0));
                    }
                }
            }
        }
    }
    Agreement {
        spread_pct,
        max_weight_difference_pct: 100.0 * diff / f64::from(u16::MAX),
        ordered_pairs: ordered,
        same_order: same,
    }
}

/// A validator's latest epoch: scores, weights, and where they were set (or
/// why not).
pub(super) type LastEpoch = (Vec<(u16, f64)>, Vec<WeightOut>, Option<u64>, Option<String>);

fn short(ss58: &str) -> String {
    format!("{}…", &ss58[..ss58.len().min(8)])
}

pub(super) fn render(r: &Report) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "akihabara demo: {} validators and {} miners on loopback ({}).\n\
         Keys, axons, signed calls, proofs of work and scoring are real; the chain: {}.\n\
         Challenges: n = {}, {} products, {} rows opened; {} rounds per slot, one proof at a time \
         (the miners share this CPU), each sized to take about {} s at the miner's last speed.\n",
        r.validators.len(),
        r.miners.len(),
        r.strategy,
        r.chain,
        r.challenge["n"],
        r.challenge["count"],
        r.challenge["samples"],
        r.challenge["rounds_per_slot"],
        r.challenge["target_seconds"],
    );
    for w in &r.windows {
        let _ = writeln!(t, "window [{}, {}):", w["start"], w["end"]);
        for row in r
            .rounds
            .iter()
            .filter(|x| Some(x.window_start) == w["start"].as_u64())
        {
            let _ = writeln!(
                t,
                "  slot [{}, {}) validator {} -> miner {}: {}{}",
                row.slot[0],
                row.slot[1],
                row.validator,
                row.miner,
                row.verdict,
                if row.passed {
                    format!(" ({:.2} Gops/s)", row.ops_per_second / 1e9)
                } else {
                    String::new()
                }
            );
        }
    }
    let _ = writeln!(t, "\nMINER  HOTKEY      PORT   PASSED  FAILED");
    for m in &r.miners {
        let _ = writeln!(
            t,
            "{:>5}  {:<10}  {:>5}  {:>6}  {:>6}{}",
            m.uid,
            short(&m.hotkey),
            m.port,
            m.pow_passed,
            m.pow_failed,
            if m.cheating {
                "  (cheating: skips half its rows)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        t,
        "\nWeights each validator set on the chain (u16, as set_weights sends them):"
    );
    for v in &r.validators {
        let ws: Vec<String> = v
            .weights
            .iter()
            .map(|w| format!("uid {} = {}", w.uid, w.weight))
            .collect();
        let when = match (&v.weights_set_at, &v.weights_error) {
            (Some(b), _) => format!("at block {b}"),
            (None, Some(e)) => format!("not set: {e}"),
            (None, None) => "not set".into(),
        };
        let _ = writeln!(
            t,
            "  validator {} ({}, {:.0} TAO): {}  [{when}]",
            v.uid,
            short(&v.hotkey),
            v.stake_tao,
            ws.join(", ")
        );
    }
    let g = &r.agreement;
    let spreads: Vec<String> = g
        .spread_pct
        .iter()
        .map(|(uid, pct)| format!("{pct:.1}% (validator {uid})"))
        .collect();
    let _ = writeln!(
        t,
        "\nAgreement: the honest miners run the same prover; their weights differ by {}.\n\
         The validators' weights for one miner differ by at most {:.1}% of 65535; they order {} \
         of {} miner pairs the same way (among identical miners an order is within the spread).",
        spreads.join(", "),
        g.max_weight_difference_pct,
        g.same_order,
        g.ordered_pairs,
    );
    let _ = writeln!(
        t,
        "\nFinished in {:.1} s. Next: `akihabara demo --cheat-miner {}`, `akihabara demo --json`,\n\
         `akihabara schedule --help`, `akihabara sim --help`.",
        r.elapsed_s,
        r.miners.first().map_or(0, |m| m.uid),
    );
    t
}
