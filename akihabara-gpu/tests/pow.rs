//! The proof of work end to end on the CPU: spec vectors, a reference
//! product in ndarray, and every way a proof can be wrong.

use akihabara_gpu::{
    Challenge, CpuProver, Failure, MatrixGen, Prover, RowRef, Seed, Side, Timing, Verdict,
    Verifier, WireOpening, choose_rows, compute_rows, merkle,
};
use ndarray::Array2;
use proptest::prelude::*;
use std::time::Duration;

fn seed(b: u8) -> Seed {
    Seed([b; 32])
}

/// The whole product the slow, obvious way (ndarray, int32 elements).
fn reference(ch: &Challenge, j: u32) -> Array2<i32> {
    let n = ch.n as usize;
    let a = MatrixGen::new(&ch.seed, j, Side::A);
    let b = MatrixGen::new(&ch.seed, j, Side::B);
    let am = Array2::from_shape_fn((n, n), |(r, c)| i32::from(a.element(r as u32, c as u32)));
    let bm = Array2::from_shape_fn((n, n), |(r, c)| i32::from(b.element(r as u32, c as u32)));
    am.dot(&bm)
}

#[test]
fn spec_vectors() {
    let s: Seed = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        .parse()
        .expect("seed");
    let g = MatrixGen::new(&s, 0, Side::A);
    assert_eq!(g.key(), 0xd6561f839718ae20);
    let mut row = [0i8; 10];
    g.fill_row(3, &mut row);
    assert_eq!(row, [64, -34, 9, -1, 81, -122, 59, 121, 75, 52]);
    assert_eq!(MatrixGen::new(&s, 0, Side::B).key(), 0xff96f12618b7513c);
    let ch = Challenge::new(s, 5, 2).expect("challenge");
    let r = compute_rows(&ch, &[RowRef { matrix: 1, row: 4 }], 1).expect("rows");
    assert_eq!(r[0], [4419, 20037, 32177, 12935, 16027]);
    assert_eq!(
        hex::encode(merkle::leaf(&r[0])),
        "81b9bd42c241dc878a9d8971af5458f37cfe8286d12f9397a0624bcb4dfd3618"
    );
    let c = CpuProver::new().commit(&ch).expect("commit");
    assert_eq!(
        hex::encode(c.root),
        "65c8862d4e44a4e8b95506a9c70138e907bd1d142c9a460cb9641ed3aad44964"
    );
    let picked = choose_rows(&ch, &c.root, &[0x11; 32], 3);
    let want = [(1, 4), (0, 3), (0, 4)].map(|(matrix, row)| RowRef { matrix, row });
    assert_eq!(picked, want);
}

#[test]
fn commitment_is_the_tree_of_the_reference_products() {
    for (n, count) in [(1, 1), (17, 2), (40, 1), (65, 1)] {
        let ch = Challenge::new(seed(n as u8), n, count).expect("challenge");
        let mut leaves = Vec::new();
        for j in 0..count {
            let c = reference(&ch, j);
            for row in c.rows() {
                leaves.push(merkle::leaf(&row.to_vec()));
            }
        }
        let mut p = CpuProver::new().threads(2);
        let got = p.commit(&ch).expect("commit");
        assert_eq!(
            got.root,
            merkle::Tree::new(leaves).root(),
            "n {n} count {count}"
        );
    }
}

#[test]
fn largest_exact_size_does_not_overflow() {
    // A row of all -128 times a column of all -128 at n = MAX_N: n · 2^14 < 2^31.
    let worst = i64::from(akihabara_gpu::MAX_N) * 128 * 128;
    assert!(worst < i64::from(i32::MAX));
    assert!((i64::from(akihabara_gpu::MAX_N) + 1) * 128 * 128 > i64::from(i32::MAX));
}

type Honest = (
    Challenge,
    [u8; 32],
    Vec<RowRef>,
    Vec<akihabara_gpu::Opening>,
);

fn honest(n: u32, count: u32, samples: u32) -> Honest {
    let ch = Challenge::new(seed(3), n, count).expect("challenge");
    let mut p = CpuProver::new().threads(2);
    let c = p.commit(&ch).expect("commit");
    let rows = choose_rows(&ch, &c.root, &[5; 32], samples);
    let openings = p.open(&rows).expect("open");
    (ch, c.root, rows, openings)
}

fn timing() -> Timing {
    Timing {
        elapsed: Duration::from_millis(30),
        round_trip: Duration::from_millis(10),
    }
}

#[test]
fn an_honest_proof_passes_and_reports_the_validators_time() {
    let (ch, root, rows, openings) = honest(33, 3, 20);
    let v = Verifier::new()
        .verify(&ch, &root, &rows, &openings, timing())
        .expect("verify");
    match v {
        Verdict::Valid {
            elapsed,
            ops_per_second,
        } => {
            assert_eq!(elapsed, Duration::from_millis(20));
            assert!((ops_per_second - ch.ops() / 0.02).abs() < 1.0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_kind_of_bad_proof_is_rejected_with_its_reason() {
    let (ch, root, rows, openings) = honest(24, 2, 6);
    let v = Verifier::new();
    let check = |o: &[akihabara_gpu::Opening], r: &[RowRef], root: &[u8; 32]| {
        v.verify(&ch, root, r, o, timing()).expect("verify")
    };

    // A changed value no longer hashes to the committed leaf.
    let mut liar = CpuProver::new();
    liar.commit(&ch).expect("commit");
    let mut o = openings.clone();
    o[0].values[5] += 1;
    assert!(matches!(
        check(&o, &rows, &root),
        Verdict::Rejected(Failure::BadPath { .. })
    ));

    // A tree built over a wrong row: path fine, values wrong.
    let mut leaves: Vec<_> = liar.leaves().to_vec();
    let pos = rows[0].position(ch.n) as usize;
    let mut bad_row = openings[0].values.clone();
    bad_row[0] ^= 1;
    leaves[pos] = merkle::leaf(&bad_row);
    let tree = merkle::Tree::new(leaves);
    let mut o = openings.clone();
    for (oi, r) in o.iter_mut().zip(&rows) {
        oi.path = tree.path(r.position(ch.n) as usize).expect("path");
    }
    o[0].values = bad_row;
    assert_eq!(
        check(&o, &rows, &tree.root()),
        Verdict::Rejected(Failure::WrongValues {
            matrix: rows[0].matrix,
            row: rows[0].row,
            column: 0
        })
    );

    // Wrong shape.
    let mut o = openings.clone();
    o[1].values.pop();
    assert!(matches!(
        check(&o, &rows, &root),
        Verdict::Rejected(Failure::WrongLength { .. })
    ));
    // Missing, reordered and unrequested openings.
    assert!(matches!(
        check(&openings[1..], &rows, &root),
        Verdict::Rejected(Failure::WrongRows { .. })
    ));
    let mut o = openings.clone();
    o.swap(0, 1);
    assert!(matches!(
        check(&o, &rows, &root),
        Verdict::Rejected(Failure::WrongRows { .. })
    ));
    // Wrong path: truncated, and another row's.
    let mut o = openings.clone();
    o[2].path.pop();
    assert!(matches!(
        check(&o, &rows, &root),
        Verdict::Rejected(Failure::BadPath { .. })
    ));
    let mut o = openings.clone();
    o[2].path = openings[3].path.clone();
    assert!(matches!(
        check(&o, &rows, &root),
        Verdict::Rejected(Failure::BadPath { .. })
    ));
    // Another seed's proof.
    let other = Challenge::new(seed(4), ch.n, ch.count).expect("challenge");
    let v2 = v
        .verify(&other, &root, &rows, &openings, timing())
        .expect("verify");
    assert!(!v2.is_valid());
    // Late.
    let late = Verifier::new()
        .time_limit(Duration::from_millis(5))
        .verify(&ch, &root, &rows, &openings, timing())
        .expect("verify");
    assert!(matches!(late, Verdict::Rejected(Failure::Late { .. })));
    // Rows outside the challenge are an error, not a panic.
    let outside = [RowRef { matrix: 9, row: 0 }];
    assert!(compute_rows(&ch, &outside, 1).is_err());
}

#[test]
fn bad_challenges_are_typed_errors() {
    for (n, count) in [(0, 1), (131_072, 1), (8, 0), (8, 1 << 20)] {
        assert!(Challenge::new(seed(0), n, count).is_err(), "{n} {count}");
    }
    assert!("zz".parse::<Seed>().is_err());
    assert!("00".repeat(31).parse::<Seed>().is_err());
    let huge = Challenge::new(seed(0), 100_000, 4).expect("challenge");
    let e = CpuProver::new()
        .memory_limit(1 << 30)
        .commit(&huge)
        .expect_err("too big");
    assert!(e.to_string().contains("bytes"), "{e}");
}

/// Sizes from a proof file or a flag are bounded before anything is
/// allocated: `--samples 4294967295` on a challenge of 2^33 rows once asked
/// for 34 GB of row indices, and 40 rows of side 131,071 for a 34 GB `B`.
#[test]
fn sizes_from_outside_are_bounded_before_allocation() {
    let enlarged = Challenge::new(seed(4), 131_071, 65_536).expect("challenge");
    let rows = choose_rows(&enlarged, &[1; 32], &[2; 32], u32::MAX);
    assert_eq!(rows.len(), akihabara_gpu::MAX_SAMPLES as usize);
    let mut distinct = rows.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), rows.len());
    // Fewer rows than samples: every row once.
    let small = Challenge::new(seed(4), 8, 2).expect("challenge");
    assert_eq!(choose_rows(&small, &[1; 32], &[2; 32], u32::MAX).len(), 16);

    // 513 rows of side 131,071 are more than MAX_ROWS_BYTES of answer.
    let wide = Challenge::new(seed(4), 131_071, 1).expect("challenge");
    let many: Vec<RowRef> = (0..513).map(|row| RowRef { matrix: 0, row }).collect();
    match compute_rows(&wide, &many, 1) {
        Err(akihabara_gpu::PowError::Memory { needed, available }) => {
            assert_eq!(needed, 513 * 131_071 * 4);
            assert_eq!(available, akihabara_gpu::MAX_ROWS_BYTES);
        }
        other => panic!("{other:?}"),
    }

    // A proof file over MAX_PROOF_BYTES is refused before parsing.
    let big = vec![b' '; akihabara_gpu::MAX_PROOF_BYTES as usize + 1];
    assert_eq!(
        akihabara_gpu::ProofFile::parse(&big)
            .expect_err("too large")
            .to_string(),
        format!(
            "the proof file is {} bytes, more than the {} allowed",
            akihabara_gpu::MAX_PROOF_BYTES + 1,
            akihabara_gpu::MAX_PROOF_BYTES
        )
    );
}

#[test]
fn wire_openings_round_trip_and_refuse_oversize() {
    let (_, _, _, openings) = honest(9, 1, 3);
    for o in &openings {
        let w = WireOpening::from(o);
        assert_eq!(&w.decode(9).expect("decode"), o);
        assert!(w.decode(4).is_err());
    }
    let mut w = WireOpening::from(&openings[0]);
    w.values.push('!');
    assert!(w.decode(9).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any single flipped bit in any opened row or path is caught.
    #[test]
    fn any_flipped_bit_is_caught(which in 0usize..4, pick in any::<prop::sample::Index>(), bit in 0u32..32) {
        let (ch, root, rows, openings) = fixture();
        let mut o = openings.clone();
        let k = pick.index(o.len());
        if which < 2 || o[k].path.is_empty() {
            let i = pick.index(o[k].values.len());
            o[k].values[i] ^= 1 << bit;
        } else {
            let p = pick.index(o[k].path.len());
            o[k].path[p][(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        let v = Verifier::new().threads(1).verify(&ch, &root, &rows, &o, timing()).expect("verify");
        prop_assert!(!v.is_valid());
    }
}

fn fixture() -> Honest {
    use std::sync::OnceLock;
    static F: OnceLock<Honest> = OnceLock::new();
    F.get_or_init(|| honest(20, 2, 5)).clone()
}
