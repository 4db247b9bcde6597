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

/// `&T`, `Box<T>` and `Arc<T>` score exactly as `T` does, so a function
/// asking for `impl Scorer` takes any of them.
#[test]
fn references_boxes_and_arcs_of_scorers_are_scorers() {
    fn run(s: impl Scorer) -> (String, ScoreSet) {
        let m = Measurements {
            miners: vec![
                gpus(0, "NVIDIA H200", 8, false),
                gpus(1, "NVIDIA L4", 1, false),
            ],
        };
        (s.name().to_owned(), s.score(&m).expect("score"))
    }
    let plain = run(GpuTable::default());
    let table = GpuTable::default();
    assert_eq!(run(&table), plain);
    let boxed: Box<dyn Scorer> = Box::new(GpuTable::default());
    assert_eq!(run(boxed), plain);
    let shared: std::sync::Arc<dyn Scorer> = std::sync::Arc::new(GpuTable::default());
    assert_eq!(run(shared.clone()), plain);
    assert_eq!(run(&shared), plain);
    assert_eq!(plain.0, "gpu-table");
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
    let pow = PowScorer::new();
    // Absolute verified ops/s: no reference, no cap.
    assert_eq!(pow.score(&m).expect("pow").scores[&Uid(7)].get(), 5e14);
    let comp =
        Composite::new(vec![(0.001, Box::new(hc)), (1e-14, Box::new(pow.clone()))]).expect("c");
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
        2.5e14
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
    Composite::new(vec![
        (1.0, Box::new(GpuTable::default())),
        (1e-4, Box::new(hc)),
        (1e-14, Box::new(PowScorer::new())),
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

fn pow(uid: u16, class: &str, passed: bool, ops: f64) -> MinerReport {
    MinerReport {
        uid: Uid(uid),
        pow: Some(PowReport {
            class: class.into(),
            passed,
            ops_per_second: ops,
        }),
        ..MinerReport::default()
    }
}

#[test]
fn pow_pays_verified_ops_per_second_whatever_class_is_named() {
    // Before: ops over the named class's reference, capped at 1, so a CPU at
    // the "cpu" reference scored what an H200 at the "cuda" one did.
    let named = |cpu_class: &str, gpu_class: &str| Measurements {
        miners: vec![
            pow(1, cpu_class, true, 1e11),
            pow(2, gpu_class, true, 1e14),
            pow(3, gpu_class, false, 0.0),
        ],
    };
    let s = PowScorer::new()
        .score(&named("cpu", "cuda"))
        .expect("score");
    let want = BTreeMap::from([
        (Uid(1), Score::new(1e11).expect("s")),
        (Uid(2), Score::new(1e14).expect("s")),
        (Uid(3), Score::ZERO),
    ]);
    assert_eq!(s.scores, want);
    assert_eq!(s.warnings, Vec::<String>::new());
    // Naming the other class, or no class, changes nothing.
    for (a, b) in [("cuda", "cpu"), ("", ""), ("h200", "cpu")] {
        assert_eq!(
            PowScorer::new().score(&named(a, b)).expect("score").scores,
            want
        );
    }
}

#[test]
fn an_epoch_is_the_median_of_its_rounds() {
    let r = PowReport::from_rounds("cpu", [Some(4.0), Some(1.0), Some(90.0), Some(2.0)]);
    assert_eq!(
        r,
        PowReport {
            class: "cpu".into(),
            passed: true,
            ops_per_second: 3.0
        }
    );
    let r = PowReport::from_rounds("cpu", [Some(4.0), None, Some(2.0)]);
    assert_eq!((r.passed, r.ops_per_second), (false, 0.0));
    let r = PowReport::from_rounds("cpu", []);
    assert_eq!((r.passed, r.ops_per_second), (false, 0.0));
    assert_eq!(median(&[5.0]), Some(5.0));
    assert_eq!(median(&[]), None);
}

/// H200, H100, RTX 4090 with ranges; A40 priced but without a range.
fn verified_table() -> GpuTable {
    let table = BTreeMap::from([
        ("H200".to_owned(), 4.0),
        ("H100".to_owned(), 2.8),
        ("RTX 4090".to_owned(), 0.68),
        ("A40".to_owned(), 0.39),
    ]);
    let refs = BTreeMap::from([
        (
            "H200".to_owned(),
            ThroughputRange::new(8e14, 2e15).expect("r"),
        ),
        (
            "H100".to_owned(),
            ThroughputRange::new(6e14, 1.6e15).expect("r"),
        ),
        (
            "RTX 4090".to_owned(),
            ThroughputRange::new(1e14, 4e14).expect("r"),
        ),
    ]);
    GpuTable::new(table)
        .expect("table")
        .verified_by(refs)
        .expect("refs")
}

fn claim(uid: u16, model: &str, passed: bool, ops: f64) -> MinerReport {
    MinerReport {
        gpus: vec![GpuClaim {
            model: model.into(),
            count: 1,
        }],
        ..pow(uid, "cuda", passed, ops)
    }
}

#[test]
fn a_verified_gpu_table_prices_the_measured_speed_not_the_claim() {
    let t = verified_table();
    let m = Measurements {
        miners: vec![
            claim(0, "NVIDIA H100", true, 7e14),
            claim(1, "NVIDIA H200", true, 7e14),
            claim(2, "RTX 4090", true, 7e14),
            claim(3, "H200", true, 9e14),
            claim(4, "H100", false, 0.0),
            claim(5, "A40", true, 7e14),
        ],
    };
    let s = t.score(&m).expect("score");
    // scale = 50 / (8 x 4.0); H100 speed (7e14) reaches the H100 and 4090 minimums.
    let h100 = 2.8 * 1.0 * (50.0 / 32.0);
    let h200 = 4.0 * 1.0 * (50.0 / 32.0);
    let got: Vec<f64> = s.scores.values().map(|v| v.get()).collect();
    assert_eq!(got, [h100, 0.0, h100, h200, 0.0, 0.0]);
    assert_eq!(
        s.warnings,
        [
            "uid 1: reports GPU model \"NVIDIA H200\" but its verified 7.0000e14 ops/s is below that \
             model's range [8.0000e14, 2.0000e15]: its table price does not apply; paid on throughput alone",
            "uid 2: reports GPU model \"RTX 4090\" but its verified 7.0000e14 ops/s is above that \
             model's range [1.0000e14, 4.0000e14]: priced by its speed",
            "uid 4: reports GPU model \"H100\" without a verified proof of work this epoch: its table \
             price does not apply; paid on throughput alone",
            "uid 5: GPU model \"A40\" has no [gpu_reference] range to check it against: its table \
             price does not apply; paid on throughput alone",
        ]
    );
    assert_eq!(t.price_for_speed(5e13), 0.0);
    assert_eq!(t.price_for_speed(2e14), 0.68);
    assert_eq!(t.price_for_speed(8e14), 4.0);
}

/// A proof of work measures one device: a verified table pays one GPU,
/// however many are claimed, and says so; a table on claims alone still
/// counts up to eight.
#[test]
fn a_verified_gpu_table_pays_one_gpu_whatever_the_count_claimed() {
    let mut eight = claim(0, "H200", true, 9e14);
    eight.gpus[0].count = 8;
    let m = Measurements {
        miners: vec![eight, claim(1, "H200", true, 9e14)],
    };
    let s = verified_table().score(&m).expect("score");
    let h200 = 4.0 * (50.0 / 32.0);
    assert_eq!(s.scores[&Uid(0)].get(), h200);
    assert_eq!(s.scores[&Uid(1)].get(), h200);
    assert_eq!(
        s.warnings,
        ["uid 0: claims 8 GPUs, but its proof of work measures one device: paid for one"]
    );
    let unverified = GpuTable::default().score(&m).expect("score");
    assert_eq!(
        unverified.scores[&Uid(0)].get(),
        8.0 * unverified.scores[&Uid(1)].get()
    );
}

#[test]
fn scorer_configs_are_checked_with_typed_errors() {
    let c = ScoringConfig::from_toml(
        "[gpu_table]\nH200 = 4.0\nH100 = 2.8\n[gpu_reference]\nH200 = [8e14, 2e15]\n\
         H100 = [6e14, 1.6e15]\n[composite]\ngpu-table = 1.0\npow = 1e-14\n",
    )
    .expect("config");
    let m = Measurements {
        miners: vec![claim(0, "H200", true, 7e14), claim(1, "H100", true, 7e14)],
    };
    let s = c
        .build("composite", None)
        .expect("build")
        .score(&m)
        .expect("s");
    // Too slow for the H200 it reports: paid on throughput alone (7 points
    // of pow). The same speed reporting an H100: the H100 price as well.
    assert_eq!(s.scores[&Uid(0)].get(), 7e14 * 1e-14);
    assert_eq!(s.scores[&Uid(1)].get(), 2.8 * (50.0 / 32.0) + 7e14 * 1e-14);

    assert_eq!(
        c.build("magic", None).err(),
        Some(ScoreError::UnknownScorer("magic".into()))
    );
    let neg = ScoringConfig::from_toml("[composite]\npow = -1.0\n").expect("config");
    assert_eq!(
        neg.build("composite", None).err(),
        Some(ScoreError::BadWeight {
            scorer: "pow".into(),
            weight: -1.0
        })
    );
    assert_eq!(
        Composite::new(vec![
            (1.0, Box::new(PowScorer::new())),
            (f64::NAN, Box::new(PowScorer::new()))
        ])
        .err()
        .map(|e| e.to_string()),
        Some(
            "bad scorer configuration: composite weight NaN of pow must be finite and non-negative"
                .into()
        )
    );
    assert_eq!(
        ScoreError::UnknownScorer("magic".into()).to_string(),
        "no scorer named \"magic\" (known: gpu-table, hardware-class, pow, composite)"
    );
    for (text, want) in [
        (
            "[pow_reference]\ncpu = 1e11\n",
            "bad scorer configuration: [pow_reference] is no longer read: the pow scorer pays \
             verified ops/s, whatever class a miner names; to check GPU models against measured \
             speed, give [gpu_reference] ranges",
        ),
        (
            "[gpu_reference]\nH100 = [2e15, 1e15]\n",
            "bad scorer configuration: [gpu_reference] range [2000000000000000, 1000000000000000] \
             must be finite with 0 <= min <= max",
        ),
    ] {
        let err = ScoringConfig::from_toml(text)
            .and_then(|c| c.build("gpu-table", None).map(|_| ()))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some(want), "{text}");
    }
}

const MODELS: [&str; 5] = ["H200", "H100", "RTX 4090", "A40", "Unknown GPU"];

/// A verified gpu-table (random prices and ranges for the first three of
/// [`MODELS`]; A40 priced without a range) in a composite with pow and
/// hardware-class.
fn priced() -> impl Strategy<Value = (Composite, Vec<ThroughputRange>)> {
    (
        prop::collection::vec(0.1f64..5.0, 4),
        prop::collection::vec((0.0f64..2e15, 0.0f64..1e15), 3),
    )
        .prop_map(|(prices, ranges)| {
            let ranges: Vec<ThroughputRange> = ranges
                .into_iter()
                .map(|(lo, w)| ThroughputRange::new(lo, lo + w).expect("range"))
                .collect();
            let table = MODELS[..4]
                .iter()
                .zip(&prices)
                .map(|(m, p)| ((*m).to_owned(), *p))
                .collect();
            let refs = MODELS[..3]
                .iter()
                .zip(&ranges)
                .map(|(m, r)| ((*m).to_owned(), *r))
                .collect();
            let t = GpuTable::new(table)
                .expect("table")
                .verified_by(refs)
                .expect("refs");
            let hc = HardwareClass::new(BTreeMap::from([("h100".to_owned(), 1.0)])).expect("hc");
            let c = Composite::new(vec![
                (1.0, Box::new(t)),
                (1e-4, Box::new(hc)),
                (1e-14, Box::new(PowScorer::new())),
            ])
            .expect("composite");
            (c, ranges)
        })
}

/// The score and u16 weight of uid 1000 when `me` joins `others`.
fn standing(c: &Composite, others: &Measurements, me: MinerReport) -> (f64, u16) {
    let mut m = others.clone();
    m.miners.push(me);
    let s = c.score(&m).expect("score");
    let (uids, values) = s.to_vectors();
    let w = convert_for_emit(&uids, &values).unwrap_or_default();
    let weight = w
        .uids
        .iter()
        .position(|u| *u == Uid(1000))
        .map_or(0, |i| w.weights[i]);
    (s.scores[&Uid(1000)].get(), weight)
}

fn me(model: &str, count: u32, class: &str, ops: f64) -> MinerReport {
    MinerReport {
        uid: Uid(1000),
        gpus: vec![GpuClaim {
            model: model.into(),
            count,
        }],
        executors: vec![ExecutorWork {
            class: "h100".into(),
            worked_seconds: 60.0,
            efficiency: None,
        }],
        pow: Some(PowReport {
            class: class.into(),
            passed: true,
            ops_per_second: ops,
        }),
        ..MinerReport::default()
    }
}

proptest! {
    /// A miner whose reported model is consistent with its measured speed
    /// cannot raise its score or weight by reporting another model, or by
    /// naming another prover class.
    #[test]
    fn claiming_another_class_or_model_never_raises_a_weight(
        (c, ranges) in priced(),
        others in measurements(),
        truth in 0usize..3,
        at in 0.0f64..=1.0,
        count in 1u32..12,
        lie in prop::sample::select(MODELS.to_vec()),
        class in prop::sample::select(vec!["cpu", "cuda", "h200", ""]),
    ) {
        let r = ranges[truth];
        let ops = r.min_ops() + at * (r.max_ops() - r.min_ops());
        let honest = standing(&c, &others, me(MODELS[truth], count, "cpu", ops));
        let claimed = standing(&c, &others, me(lie, count, class, ops));
        prop_assert!(claimed.0 <= honest.0, "score {} > {}", claimed.0, honest.0);
        prop_assert!(claimed.1 <= honest.1, "weight {} > {}", claimed.1, honest.1);
    }

    /// With its speed checked, a miner cannot raise its score or weight by
    /// claiming more GPUs than the one its proof of work measures.
    #[test]
    fn claiming_more_gpus_never_raises_a_verified_weight(
        (c, ranges) in priced(),
        others in measurements(),
        truth in 0usize..3,
        at in 0.0f64..=1.0,
        extra in 1u32..100,
    ) {
        let r = ranges[truth];
        let ops = r.min_ops() + at * (r.max_ops() - r.min_ops());
        let honest = standing(&c, &others, me(MODELS[truth], 1, "cuda", ops));
        let claimed = standing(&c, &others, me(MODELS[truth], 1 + extra, "cuda", ops));
        prop_assert!(claimed.0 <= honest.0, "score {} > {}", claimed.0, honest.0);
        prop_assert!(claimed.1 <= honest.1, "weight {} > {}", claimed.1, honest.1);
    }

    /// With the same reports, a faster verified miner never scores or
    /// weighs less.
    #[test]
    fn a_faster_verified_miner_never_gets_less(
        (c, _) in priced(),
        others in measurements(),
        model in prop::sample::select(MODELS.to_vec()),
        count in 1u32..12,
        slow in 0.0f64..3e15,
        more in 0.0f64..3e15,
    ) {
        let a = standing(&c, &others, me(model, count, "cuda", slow));
        let b = standing(&c, &others, me(model, count, "cuda", slow + more));
        prop_assert!(b.0 >= a.0, "score {} < {}", b.0, a.0);
        prop_assert!(b.1 >= a.1, "weight {} < {}", b.1, a.1);
        let p = PowScorer::new();
        let one = |ops| Measurements { miners: vec![pow(1, "cpu", true, ops)] };
        prop_assert!(p.score(&one(slow + more)).expect("s").scores[&Uid(1)] >= p.score(&one(slow)).expect("s").scores[&Uid(1)]);
    }
}

/// A uid re-registered by another hotkey starts from nothing: `follow`
/// forgets its smoothed score (and says so, for its penalties), keeps the
/// uids still held by the same hotkey, and forgets a uid gone from the
/// subnet. A smoother saved before holders were recorded forgets nothing
/// the first time.
#[test]
fn a_new_hotkey_at_a_uid_does_not_inherit_its_score() {
    let key = |uri: &str| {
        crate::wallet::Keypair::from_uri(uri)
            .expect("key")
            .account()
    };
    let (a, b, c) = (key("//A"), key("//B"), key("//C"));
    let scores = |pairs: &[(u16, f64)]| ScoreSet {
        scores: pairs
            .iter()
            .map(|(u, s)| (Uid(*u), Score::new(*s).expect("score")))
            .collect(),
        warnings: Vec::new(),
    };
    let mut ema = Ema::new(0.1).expect("ema");
    let held = BTreeMap::from([(Uid(1), a), (Uid(2), b), (Uid(3), c)]);
    assert!(ema.follow(&held).is_empty());
    ema.update(&scores(&[(1, 1.0), (2, 1.0), (3, 1.0)]));
    // uid 1 is re-registered by c; uid 3 leaves the subnet.
    let now = BTreeMap::from([(Uid(1), c), (Uid(2), b)]);
    assert_eq!(ema.follow(&now), vec![Uid(1), Uid(3)]);
    let out = ema.update(&scores(&[(1, 0.5), (2, 0.5)]));
    assert_eq!(out.scores[&Uid(1)].get(), 0.5, "the new holder's own score");
    assert!(
        (out.scores[&Uid(2)].get() - 0.95).abs() < 1e-12,
        "smoothed on"
    );
    assert!(!out.scores.contains_key(&Uid(3)));

    // Saved by a version without holders: nothing held is forgotten at first.
    let mut json = serde_json::to_value(&ema).expect("json");
    json.as_object_mut().expect("object").remove("holders");
    let mut old: Ema = serde_json::from_value(json).expect("an old smoother reads");
    assert!(
        old.follow(&BTreeMap::from([(Uid(1), a), (Uid(2), b)]))
            .is_empty()
    );
    assert_eq!(
        old.follow(&BTreeMap::from([(Uid(1), c), (Uid(2), b)])),
        vec![Uid(1)]
    );

    let mut p = Penalties::new(0.5).expect("penalties");
    p.penalize(Uid(1));
    p.forget(Uid(1));
    assert_eq!(p.get(Uid(1)), 0.0);
}
