use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::weights::convert_for_emit;

fn gpus(uid: u16, model: &str, count: u32, allocated: bool) -> MinerReport {
    MinerReport {
        uid: Uid(uid),
        gpus: vec![GpuClaim {
            model: model.into(),
            count,
        }],
        allocated,
        ..MinerReport::default()
    }
}

#[test]
fn gpu_table_matches_the_published_formula() {
    let t = GpuTable::default();
    let m = Measurements {
        miners: vec![
            gpus(0, "NVIDIA H200", 8, false),
            gpus(1, "NVIDIA H200", 8, true),
            gpus(2, "NVIDIA H200", 12, false),
            gpus(3, "NVIDIA H100 80GB HBM3", 1, false),
            gpus(4, "NVIDIA Quadro K600", 2, false),
            gpus(5, "NVIDIA GeForce RTX 3090", 1, false),
            gpus(6, "nvidia  geforce rtx 4090", 1, false),
        ],
    };
    let s = t.score(&m).expect("score");
    assert_eq!(s.scores[&Uid(0)].get(), 50.0);
    assert_eq!(s.scores[&Uid(1)].get(), 100.0);
    assert_eq!(s.scores[&Uid(2)].get(), 50.0, "at most 8 GPUs count");
    assert!((s.scores[&Uid(3)].get() - 3.30 * 50.0 / 32.0).abs() < 1e-12);
    assert_eq!(s.scores[&Uid(4)].get(), 0.0);
    assert_eq!(t.base("NVIDIA GeForce RTX 3090"), Some(0.43));
    assert_eq!(t.base("nvidia  geforce rtx 4090"), Some(0.68));
    assert!(s.scores[&Uid(6)].get() > 0.0);
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("Quadro K600"));
}

#[test]
fn hardware_class_and_pow_and_composite() {
    let classes = BTreeMap::from([("h100".to_owned(), 2.0), ("a6000".to_owned(), 0.5)]);
    let hc = HardwareClass::new(classes).expect("classes");
    let mut r = MinerReport {
        uid: Uid(7),
        executors: vec![
            ExecutorWork {
                class: "H100".into(),
                worked_seconds: 600.0,
                efficiency: Some(0.5),
            },
            ExecutorWork {
                class: "a6000".into(),
                worked_seconds: 100.0,
                efficiency: None,
            },
        ],
        pow: Some(PowReport {
            class: "h100".into(),
            passed: true,
            ops_per_second: 5e14,
        }),
        ..MinerReport::default()
    };
    let m = Measurements {
        miners: vec![r.clone()],
    };
    assert_eq!(
        hc.score(&m).expect("hc").scores[&Uid(7)].get(),
        2.0 * 0.5 * 600.0 + 0.5 * 100.0
    );
    let pow = PowScorer::new(BTreeMap::from([("h100".to_owned(), 1e15)])).expect("pow");
    assert_eq!(pow.score(&m).expect("pow").scores[&Uid(7)].get(), 0.5);
    let comp =
        Composite::new(vec![(0.001, Box::new(hc)), (10.0, Box::new(pow.clone()))]).expect("c");
    assert!((comp.score(&m).expect("c").scores[&Uid(7)].get() - (0.65 + 5.0)).abs() < 1e-9);

    // A failed proof scores 0 now and is penalised, decaying, afterwards.
    r.pow = Some(PowReport {
        class: "h100".into(),
        passed: false,
        ops_per_second: 0.0,
    });
    let failed = Measurements {
        miners: vec![r.clone()],
    };
    let mut pen = Penalties::new(0.5).expect("penalties");
    pen.advance(&failed);
    assert_eq!(
        pow.clone()
            .with_penalties(&pen)
            .score(&failed)
            .expect("s")
            .scores[&Uid(7)]
            .get(),
        0.0
    );
    pen.advance(&m);
    assert_eq!(pen.get(Uid(7)), 0.5);
    assert_eq!(
        pow.clone()
            .with_penalties(&pen)
            .score(&m)
            .expect("s")
            .scores[&Uid(7)]
            .get(),
        0.25
    );
    pen.advance(&m);
    assert_eq!(pen.get(Uid(7)), 0.25);
}

#[test]
fn bad_measurements_and_configs_are_typed_errors() {
    let t = GpuTable::default();
    let dup = Measurements {
        miners: vec![gpus(1, "H100", 1, false), gpus(1, "H100", 1, false)],
    };
    assert_eq!(t.score(&dup), Err(ScoreError::Duplicate(Uid(1))));
    for bad in [f64::NAN, f64::INFINITY, -1.0] {
        let m = Measurements {
            miners: vec![MinerReport {
                uid: Uid(2),
                executors: vec![ExecutorWork {
                    class: "h100".into(),
                    worked_seconds: bad,
                    efficiency: None,
                }],
                ..MinerReport::default()
            }],
        };
        assert!(matches!(
            t.score(&m),
            Err(ScoreError::BadMeasurement {
                field: "worked_seconds",
                ..
            })
        ));
    }
    assert!(Score::new(f64::NAN).is_err());
    assert!(Ema::new(0.0).is_err() && Ema::new(1.5).is_err());
    assert!(Penalties::new(1.0).is_err());
    assert!(GpuTable::new(BTreeMap::from([("x".to_owned(), f64::NAN)])).is_err());
    assert!(
        GpuTable::new(BTreeMap::from([
            ("H100".to_owned(), 1.0),
            ("nvidia h100".to_owned(), 2.0)
        ]))
        .is_err()
    );
    assert!(ScoringConfig::from_toml("[gpu_table]\nH100 = \"fast\"").is_err());
    assert!(ScoringConfig::from_toml("[bogus]\nx = 1").is_err());
    let c = ScoringConfig::from_toml("[ema]\nalpha = 0.2\n[gpu_table]\n\"H100\" = 2.8")
        .expect("config");
    assert_eq!(c.ema, Some(EmaConfig { alpha: 0.2 }));
}

fn report() -> impl Strategy<Value = MinerReport> {
    let models = prop::sample::select(vec!["H200", "NVIDIA H100", "RTX 4090", "Unknown GPU"]);
    (
        0u16..64,
        models,
        0u32..20,
        any::<bool>(),
        0.0f64..1e6,
        prop::option::of(0.0f64..2.0),
        any::<bool>(),
        0.0f64..3e15,
    )
        .prop_map(
            |(uid, model, count, allocated, secs, eff, passed, ops)| MinerReport {
                uid: Uid(uid),
                gpus: vec![GpuClaim {
                    model: model.into(),
                    count,
                }],
                allocated,
                executors: vec![ExecutorWork {
                    class: "h100".into(),
                    worked_seconds: secs,
                    efficiency: eff,
                }],
                pow: Some(PowReport {
                    class: "h100".into(),
                    passed,
                    ops_per_second: ops,
                }),
                declined_jobs: 0,
            },
        )
}

fn measurements() -> impl Strategy<Value = Measurements> {
    prop::collection::vec(report(), 0..40).prop_map(|mut v| {
        let mut seen = std::collections::BTreeSet::new();
        v.retain(|r| seen.insert(r.uid));
        Measurements { miners: v }
    })
}

fn composite() -> Composite {
    let hc = HardwareClass::new(BTreeMap::from([("h100".to_owned(), 1.0)])).expect("hc");
    let pow = PowScorer::new(BTreeMap::from([("h100".to_owned(), 1e15)])).expect("pow");
    Composite::new(vec![
        (1.0, Box::new(GpuTable::default())),
        (1e-4, Box::new(hc)),
        (10.0, Box::new(pow)),
    ])
    .expect("composite")
}

proptest! {
    #[test]
    fn scores_are_finite_non_negative_and_order_free(m in measurements(), seed in any::<u64>()) {
        let c = composite();
        let s = c.score(&m).expect("score");
        prop_assert_eq!(s.scores.len(), m.miners.len());
        prop_assert!(s.scores.values().all(|v| v.get().is_finite() && v.get() >= 0.0));
        // Any order of the reports gives the same scores.
        let mut shuffled = m.clone();
        let n = shuffled.miners.len();
        if n > 1 {
            shuffled.miners.rotate_left((seed as usize) % n);
            shuffled.miners.swap(0, n - 1);
        }
        prop_assert_eq!(&c.score(&shuffled).expect("score").scores, &s.scores);
        // Some positive score means something to send.
        let (uids, values) = s.to_vectors();
        if values.iter().any(|v| *v > 0.0) {
            let w = convert_for_emit(&uids, &values).expect("weights");
            prop_assert!(w.weights.iter().map(|x| u64::from(*x)).sum::<u64>() > 0);
        }
    }

    #[test]
    fn ema_stays_within_the_scores_seen(epochs in prop::collection::vec(measurements(), 1..6), alpha in 0.01f64..1.0) {
        let c = composite();
        let mut ema = Ema::new(alpha).expect("ema");
        let mut hi = 0.0f64;
        for m in &epochs {
            let s = c.score(m).expect("score");
            hi = s.scores.values().map(|v| v.get()).fold(hi, f64::max);
            let out = ema.update(&s);
            prop_assert!(out.scores.values().all(|v| v.get() >= 0.0 && v.get() <= hi * (1.0 + 1e-12)));
        }
    }
}
