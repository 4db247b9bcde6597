//! Property tests for every invariant the strategies and layouts promise.

use proptest::prelude::*;

use super::*;
use crate::metagraph::tests::hotkey;
use crate::{Block, Layout, Schedule, Window};

const ALL: [&str; 4] = ["stake", "equal", "proportional", "emission"];
const LAYOUTS: [Layout; 2] = [Layout::Contiguous, Layout::Interleaved];

fn cand(uid: u16, stake: u64) -> Candidate {
    Candidate::new(Uid(uid), hotkey(u32::from(uid)), Rao(stake))
}

fn blocks(s: &Schedule) -> Vec<u64> {
    s.allocations().iter().map(|e| e.blocks).collect()
}

fn build(name: &str, start: u64, len: u64, min: u64, cands: Vec<Candidate>) -> Schedule {
    let req = AllocationRequest::new(Window::new(Block(start), len).unwrap(), min, cands).unwrap();
    Schedule::build(&*by_name(name).unwrap(), &req, Layout::Contiguous).unwrap()
}

/// Stakes that stress the arithmetic: zeros, ties, small, huge, u64::MAX.
fn stake() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        2 => Just(u64::MAX),
        4 => 0u64..10,
        8 => 0u64..1_000_000_000_000_000,
        4 => any::<u64>(),
    ]
}

prop_compose! {
    fn input()(n in 1usize..70, len in 1u64..3000, start in prop_oneof![Just(u64::MAX - 3000), 0u64..1_000_000])
        (stakes in prop::collection::vec(stake(), n),
         loads in prop::collection::vec(prop_oneof![Just(0.0f64), 0.0f64..5000.0], n),
         min in 0..=len.min(200), len in Just(len), start in Just(start))
        -> (Window, u64, Vec<Candidate>)
    {
        let cands = stakes.iter().zip(&loads).enumerate()
            .map(|(i, (&s, &l))| cand(i as u16 * 3 + 1, s).with_competitor_load(l))
            .collect();
        (Window::new(Block(start), len).unwrap(), min, cands)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Every block of the window is assigned exactly once, nothing past the
    /// end, counts sum to the window, and lookups agree with a linear scan.
    #[test]
    fn schedules_cover_the_window_exactly((window, min, cands) in input(), probe in any::<u64>()) {
        let req = AllocationRequest::new(window, min, cands).unwrap();
        for name in ALL {
            for layout in LAYOUTS {
                let s = Schedule::build(&*by_name(name).unwrap(), &req, layout).unwrap();
                prop_assert_eq!(s.allocations().len(), req.candidates().len());
                prop_assert_eq!(blocks(&s).iter().sum::<u64>(), window.len);
                let slots = s.slots();
                prop_assert_eq!(slots[0].start, window.start);
                prop_assert_eq!(slots[slots.len() - 1].end, window.end());
                for pair in slots.windows(2) {
                    prop_assert_eq!(pair[0].end, pair[1].start);
                    if layout == Layout::Interleaved {
                        prop_assert_ne!(pair[0].uid, pair[1].uid, "adjacent runs merge");
                    }
                }
                for e in s.allocations() {
                    let got: u64 = slots.iter().filter(|sl| sl.uid == e.uid).map(|sl| sl.len()).sum();
                    prop_assert_eq!(got, e.blocks);
                }
                prop_assert!(slots.iter().all(|sl| !sl.is_empty()));
                let b = Block(window.start.get() + probe % window.len);
                let linear = slots.iter().find(|sl| sl.start <= b && b < sl.end);
                prop_assert_eq!(s.validator_at(b), linear);
                prop_assert!(s.validator_at(window.end()).is_none());
                if window.start.get() > 0 {
                    prop_assert!(s.validator_at(Block(window.start.get() - 1)).is_none());
                }
                // Deterministic.
                prop_assert_eq!(&Schedule::build(&*by_name(name).unwrap(), &req, layout).unwrap(), &s);
            }
        }
    }

    /// The minimum holds where each strategy promises it.
    #[test]
    fn minimum_is_honoured((window, min, cands) in input()) {
        let req = AllocationRequest::new(window, min, cands).unwrap();
        let served = req.servable();
        for name in ["equal", "proportional", "emission"] {
            let s = Schedule::build(&*by_name(name).unwrap(), &req, Layout::Contiguous).unwrap();
            let served_now = s.allocations().iter().filter(|e| e.blocks > 0).count();
            let at_min = s.allocations().iter().filter(|e| e.blocks >= min).count();
            if min > 0 {
                prop_assert_eq!(at_min, served, "{}: {:?}", name, blocks(&s));
                prop_assert_eq!(served_now, served, "{}", name);
            }
        }
        // `stake` serves a prefix of validators, each with at least the minimum.
        let s = Schedule::build(&Stake, &req, Layout::Contiguous).unwrap();
        for e in s.allocations() {
            prop_assert!(e.blocks == 0 || e.blocks >= min);
        }
    }

    /// `proportional` never gives a higher-stake validator fewer blocks, and
    /// is within one block of the exact quota whenever no clamping happens.
    #[test]
    fn proportional_is_monotone_and_exact((window, min, cands) in input()) {
        let req = AllocationRequest::new(window, min, cands).unwrap();
        let s = Schedule::build(&Proportional, &req, Layout::Contiguous).unwrap();
        let c = req.candidates();
        let b = blocks(&s);
        for i in 0..c.len() {
            for j in i + 1..c.len() {
                if c[i].stake > c[j].stake {
                    prop_assert!(b[i] >= b[j], "uid {} (stake {}) got {} < {}", c[i].uid, c[i].stake, b[i], b[j]);
                }
            }
        }
        let total: u128 = c.iter().map(|x| u128::from(x.stake.get())).sum();
        let len = u128::from(window.len);
        let unclamped = total > 0
            && total <= u128::from(u64::MAX)
            && c.len() as u128 * u128::from(min) <= len
            && c.iter().all(|x| len * u128::from(x.stake.get()) >= u128::from(min) * total);
        if unclamped {
            for (x, &got) in c.iter().zip(&b) {
                let floor = len * u128::from(x.stake.get()) / total;
                prop_assert!(u128::from(got) == floor || u128::from(got) == floor + 1);
            }
        }
    }

    /// `equal` shares differ by at most one block among served validators.
    #[test]
    fn equal_is_even((window, min, cands) in input()) {
        let req = AllocationRequest::new(window, min, cands).unwrap();
        let b = blocks(&Schedule::build(&Equal, &req, Layout::Contiguous).unwrap());
        let served: Vec<u64> = b.iter().copied().filter(|&x| x > 0).collect();
        let (lo, hi) = (served.iter().min().unwrap(), served.iter().max().unwrap());
        prop_assert!(hi - lo <= 1);
    }

    /// `emission` earns at least what `proportional` earns under its own reward model.
    #[test]
    fn emission_beats_proportional((window, min, cands) in input()) {
        let req = AllocationRequest::new(window, min, cands).unwrap();
        let reward = |s: &Schedule| -> f64 {
            s.allocations().iter().zip(req.candidates()).map(|(e, c)| {
                let (x, o) = (e.blocks as f64, c.competitor_load.unwrap_or(0.0));
                if x == 0.0 { 0.0 } else { c.stake.get() as f64 * x / (x + o) }
            }).sum()
        };
        if req.candidates().len() as u64 * min.max(1) <= window.len {
            let e = reward(&Schedule::build(&Emission, &req, Layout::Contiguous).unwrap());
            let p = reward(&Schedule::build(&Proportional, &req, Layout::Contiguous).unwrap());
            prop_assert!(e >= p * (1.0 - 1e-9), "emission {} < proportional {}", e, p);
        }
    }

    /// Input order does not matter: candidates are sorted before allocating.
    #[test]
    fn order_independent((window, min, cands) in input(), seed in any::<u64>()) {
        let mut shuffled = cands.clone();
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
            shuffled.swap(i, j);
        }
        for name in ALL {
            let a = AllocationRequest::new(window, min, cands.clone()).unwrap();
            let b = AllocationRequest::new(window, min, shuffled.clone()).unwrap();
            prop_assert_eq!(
                Schedule::build(&*by_name(name).unwrap(), &a, Layout::Interleaved).unwrap(),
                Schedule::build(&*by_name(name).unwrap(), &b, Layout::Interleaved).unwrap()
            );
        }
    }
}

#[test]
fn documented_stake_algorithm() {
    // 720 blocks, min 40; stakes 50/30/15/4/1 %.
    let cands = vec![
        cand(0, 50),
        cand(1, 30),
        cand(2, 15),
        cand(3, 4),
        cand(4, 1),
    ];
    let s = build("stake", 0, 720, 40, cands.clone());
    // 360, 216, 108 -> 684 used, 36 left (< 40): uids 3 and 4 get nothing,
    // the 36 go to uid 2, the last served.
    assert_eq!(blocks(&s), vec![360, 216, 144, 0, 0]);
    let p = build("proportional", 0, 720, 40, cands.clone());
    // Quotas 360/216/108/28.8/7.2: uids 4 and 3 are raised to 40, the other
    // 640 blocks split 50:30:15 exactly -> 336.84, 202.1, 101.05.
    assert_eq!(blocks(&p), vec![337, 202, 101, 40, 40]);
    let e = build("equal", 0, 720, 40, cands);
    assert_eq!(blocks(&e), vec![144; 5]);
}

#[test]
fn equal_serves_top_validators_when_crowded() {
    let cands: Vec<Candidate> = (0..30).map(|i| cand(i, 1000 - u64::from(i))).collect();
    let s = build("equal", 0, 720, 40, cands);
    let b = blocks(&s);
    assert_eq!(b[..18], [40; 18]);
    assert!(b[18..].iter().all(|&x| x == 0));
    let s = build("equal", 0, 103, 10, (0..3).map(|i| cand(i, 5)).collect());
    assert_eq!(blocks(&s), vec![35, 34, 34]);
}

#[test]
fn edge_cases_return_schedules_or_typed_errors() {
    let w = Window::new(Block(0), 720).unwrap();
    assert!(matches!(
        AllocationRequest::new(w, 40, Vec::new()),
        Err(ScheduleError::NoEligibleValidators)
    ));
    assert!(matches!(
        AllocationRequest::new(Window::new(Block(0), 10).unwrap(), 11, vec![cand(0, 1)]),
        Err(ScheduleError::MinBlocksExceedWindow {
            min_blocks: 11,
            len: 10
        })
    ));
    assert!(matches!(
        AllocationRequest::new(w, 40, vec![cand(1, 1), cand(2, 5), cand(1, 3)]),
        Err(ScheduleError::DuplicateCandidate(Uid(1)))
    ));
    for name in ALL {
        // One validator takes the whole window.
        assert_eq!(
            blocks(&build(name, 0, 720, 40, vec![cand(9, 0)])),
            vec![720]
        );
        // Zero total stake: validators are treated equally.
        let zero = blocks(&build(
            name,
            0,
            720,
            40,
            (0..4).map(|i| cand(i, 0)).collect(),
        ));
        assert_eq!(zero.iter().sum::<u64>(), 720, "{name}");
        assert!(zero.iter().all(|&b| b >= 40 || b == 0), "{name}: {zero:?}");
        // u64::MAX stakes do not overflow.
        let max = blocks(&build(
            name,
            0,
            720,
            40,
            (0..5).map(|i| cand(i, u64::MAX)).collect(),
        ));
        assert_eq!(max.iter().sum::<u64>(), 720, "{name}");
        // min_blocks == len and min_blocks == 0.
        assert_eq!(
            blocks(&build(name, 5, 40, 40, vec![cand(0, 1), cand(1, 2)]))
                .iter()
                .sum::<u64>(),
            40
        );
        assert_eq!(
            blocks(&build(name, 5, 3, 0, (0..9).map(|i| cand(i, 7)).collect()))
                .iter()
                .sum::<u64>(),
            3
        );
    }
    assert_eq!(
        blocks(&build(
            "proportional",
            0,
            720,
            40,
            (0..4).map(|i| cand(i, 0)).collect()
        )),
        vec![180; 4]
    );
}

#[test]
fn emission_prefers_uncontested_validators() {
    let cands = vec![
        cand(0, 100).with_competitor_load(10_000.0),
        cand(1, 100).with_competitor_load(0.0),
        cand(2, 100).with_competitor_load(10.0),
    ];
    let s = build("emission", 0, 720, 40, cands);
    let b = blocks(&s);
    // Uncontested uid 1 pays its full stake for any share: exactly the minimum.
    assert_eq!(b[1], 40);
    assert!(
        b[0] > b[2],
        "the heavily contested validator needs more blocks: {b:?}"
    );
    assert!(s.notes().is_empty());

    let fallback = build("emission", 0, 720, 40, vec![cand(0, 3), cand(1, 1)]);
    assert_eq!(blocks(&fallback), vec![540, 180]);
    assert!(fallback.notes()[0].contains("fell back to proportional"));
}

#[test]
fn a_buggy_plugin_is_caught() {
    struct Greedy;
    impl AllocationStrategy for Greedy {
        fn name(&self) -> &str {
            "greedy"
        }
        fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
            Ok(Allocation::from_blocks(req, vec![req.window().len + 1]))
        }
    }
    let req =
        AllocationRequest::new(Window::new(Block(0), 10).unwrap(), 1, vec![cand(0, 1)]).unwrap();
    let err = Schedule::build(&Greedy, &req, Layout::Contiguous).unwrap_err();
    assert!(err.to_string().contains("sum to 11"), "{err}");
    assert!(matches!(
        by_name("nope"),
        Err(ScheduleError::UnknownStrategy { .. })
    ));
}
