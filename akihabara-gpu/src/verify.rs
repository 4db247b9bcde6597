//! The validator's side: choose rows after the commitment, check openings,
//! time the work.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::PowError;
use crate::challenge::Challenge;
use crate::kernel;
use crate::merkle::{self, Hash};
use crate::prover::{self, Opening, RowRef};

/// Samples needed so that a prover who skipped a fraction `skipped` of the
/// rows escapes with probability at most `2^-bits`: the least `s` with
/// `(1 - skipped)^s <= 2^-bits`.
///
/// ```
/// assert_eq!(akihabara_gpu::samples_for(0.5, 40), 40);
/// assert_eq!(akihabara_gpu::samples_for(0.1, 40), 264);
/// ```
pub fn samples_for(skipped: f64, bits: u32) -> u32 {
    let skipped = skipped.clamp(1e-9, 1.0);
    if skipped >= 1.0 {
        return 1;
    }
    (f64::from(bits) / -(1.0 - skipped).log2()).ceil() as u32
}

/// The probability that a prover who skipped a fraction `skipped` of the rows
/// passes `samples` distinct random openings: at most `(1 - skipped)^samples`.
pub fn escape_probability(skipped: f64, samples: u32) -> f64 {
    (1.0 - skipped.clamp(0.0, 1.0)).powi(samples as i32)
}

/// The most rows [`choose_rows`] picks: as many as one `PowOpen` may ask
/// for (`MAX_OPEN_ROWS` of the pow synapse); 1,024 samples leave a prover
/// who skipped 3 % of the rows a 2^-45 chance.
pub const MAX_SAMPLES: u32 = 1024;

/// `samples` distinct rows (at most [`MAX_SAMPLES`] and at most the
/// challenge's rows), chosen after the commitment from the root and a
/// secret only the validator knows (`blake3::keyed_hash(secret, root)`'s
/// output stream, rejection-sampled to be unbiased). A validator that talks
/// interactively may equally pass fresh randomness as `secret`.
pub fn choose_rows(
    challenge: &Challenge,
    root: &Hash,
    secret: &[u8; 32],
    samples: u32,
) -> Vec<RowRef> {
    let total = challenge.leaves();
    let want = u64::from(samples.min(MAX_SAMPLES)).min(total) as usize;
    let mut h = blake3::Hasher::new_keyed(secret);
    h.update(b"akihabara pow v1 rows");
    h.update(root);
    let mut xof = h.finalize_xof();
    // Largest multiple of `total` below 2^64: draws at or above it are redrawn.
    let zone = u64::MAX - (u64::MAX % total);
    let mut picked = BTreeSet::new();
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let mut b = [0u8; 8];
        xof.fill(&mut b);
        let x = u64::from_le_bytes(b);
        if x >= zone {
            continue;
        }
        let pos = x % total;
        if picked.insert(pos) {
            out.push(RowRef {
                matrix: (pos / u64::from(challenge.n)) as u32,
                row: (pos % u64::from(challenge.n)) as u32,
            });
        }
    }
    out
}

/// Why a proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Openings do not answer the rows asked for, one for one and in order.
    #[error("asked for {asked} rows, got {got} openings, or not the rows asked for")]
    WrongRows {
        /// Rows requested.
        asked: usize,
        /// Openings received.
        got: usize,
    },
    /// A row has the wrong number of values.
    #[error("row {row} of product {matrix} has {got} values, not {n}")]
    WrongLength {
        /// Index of the product.
        matrix: u32,
        /// Index of the row in it.
        row: u32,
        /// Values received.
        got: usize,
        /// Matrix side.
        n: u32,
    },
    /// A row's Merkle path does not lead to the committed root.
    #[error("row {row} of product {matrix}: its Merkle path does not reach the committed root")]
    BadPath {
        /// Index of the product.
        matrix: u32,
        /// Index of the row in it.
        row: u32,
    },
    /// A row's values are not the product's.
    #[error("row {row} of product {matrix} is wrong (first difference at column {column})")]
    WrongValues {
        /// Index of the product.
        matrix: u32,
        /// Index of the row in it.
        row: u32,
        /// First wrong column.
        column: usize,
    },
    /// A recomputed row does not hash to the leaf committed for it.
    #[error("row {row} of product {matrix} does not hash to its committed leaf")]
    WrongLeaf {
        /// Index of the product.
        matrix: u32,
        /// Index of the row in it.
        row: u32,
    },
    /// A proof's leaves are not as many as the challenge's rows.
    #[error("the proof has {got} leaves; the challenge has {expected} rows")]
    WrongShape {
        /// Rows of the challenge.
        expected: u64,
        /// Leaves in the proof.
        got: u64,
    },
    /// A proof's leaves do not build its root.
    #[error("the leaves do not build the committed root")]
    RootMismatch,
    /// The root came later than allowed.
    #[error("the commitment took {elapsed:?}, more than the {limit:?} allowed")]
    Late {
        /// Measured time (round trip subtracted).
        elapsed: Duration,
        /// Allowed time.
        limit: Duration,
    },
}

/// The validator's own clock readings for one challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// From sending the seed to receiving the root.
    pub elapsed: Duration,
    /// A round trip to the same miner measured just before (subtracted).
    pub round_trip: Duration,
}

impl Timing {
    /// The time the work took: `elapsed - round_trip` (never negative).
    pub fn work(&self) -> Duration {
        self.elapsed.saturating_sub(self.round_trip)
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every opening checks out.
    Valid {
        /// Work time, measured by the validator.
        elapsed: Duration,
        /// Integer operations per second that time implies.
        ops_per_second: f64,
    },
    /// The proof is rejected.
    Rejected(Failure),
}

impl Verdict {
    /// Whether the proof passed.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid { .. })
    }
}

/// Checks openings against the commitment and the true products.
#[derive(Clone, Debug)]
pub struct Verifier {
    threads: usize,
    time_limit: Option<Duration>,
}

impl Default for Verifier {
    fn default() -> Verifier {
        Verifier::new()
    }
}

impl Verifier {
    /// A verifier on all cores with no time limit.
    pub fn new() -> Verifier {
        Verifier {
            threads: kernel::default_threads(),
            time_limit: None,
        }
    }

    /// Uses `threads` threads.
    pub fn threads(mut self, threads: usize) -> Verifier {
        self.threads = threads.max(1);
        self
    }

    /// Rejects commitments whose work took longer than `limit`.
    pub fn time_limit(mut self, limit: Duration) -> Verifier {
        self.time_limit = Some(limit);
        self
    }

    /// Verifies `openings` of the rows `asked` against `root`, then the time.
    ///
    /// ```
    /// use akihabara_gpu::{Challenge, CpuProver, Prover, Seed, Timing, Verifier, choose_rows};
    /// let ch = Challenge::new(Seed([1; 32]), 48, 2)?;
    /// let mut prover = CpuProver::new();
    /// let c = prover.commit(&ch)?;
    /// let rows = choose_rows(&ch, &c.root, &[9; 32], 8);
    /// let openings = prover.open(&rows)?;
    /// let timing = Timing { elapsed: c.elapsed, round_trip: std::time::Duration::ZERO };
    /// let verdict = Verifier::new().verify(&ch, &c.root, &rows, &openings, timing)?;
    /// assert!(verdict.is_valid());
    /// # Ok::<(), akihabara_gpu::PowError>(())
    /// ```
    pub fn verify(
        &self,
        challenge: &Challenge,
        root: &Hash,
        asked: &[RowRef],
        openings: &[Opening],
        timing: Timing,
    ) -> Result<Verdict, PowError> {
        challenge.check()?;
        if let Some(f) = self.check_openings(challenge, root, asked, openings)? {
            return Ok(Verdict::Rejected(f));
        }
        let work = timing.work();
        if let Some(limit) = self.time_limit
            && work > limit
        {
            return Ok(Verdict::Rejected(Failure::Late {
                elapsed: work,
                limit,
            }));
        }
        Ok(Verdict::Valid {
            elapsed: work,
            ops_per_second: challenge.ops() / work.as_secs_f64().max(1e-9),
        })
    }

    /// The first failure of the openings, if any (time not considered).
    pub fn check_openings(
        &self,
        challenge: &Challenge,
        root: &Hash,
        asked: &[RowRef],
        openings: &[Opening],
    ) -> Result<Option<Failure>, PowError> {
        if asked.len() != openings.len() || asked.iter().zip(openings).any(|(a, o)| *a != o.at) {
            return Ok(Some(Failure::WrongRows {
                asked: asked.len(),
                got: openings.len(),
            }));
        }
        let n = challenge.n;
        // Cheap checks first: lengths and paths, before any arithmetic.
        for o in openings {
            let RowRef { matrix, row } = o.at;
            if o.values.len() != n as usize {
                return Ok(Some(Failure::WrongLength {
                    matrix,
                    row,
                    got: o.values.len(),
                    n,
                }));
            }
            let leaf = merkle::leaf(&o.values);
            if !merkle::verify_path(&leaf, o.at.position(n), challenge.leaves(), &o.path, root) {
                return Ok(Some(Failure::BadPath { matrix, row }));
            }
        }
        let truth = prover::compute_rows(challenge, asked, self.threads)?;
        for (o, t) in openings.iter().zip(truth) {
            if let Some(column) = o.values.iter().zip(&t).position(|(a, b)| a != b) {
                return Ok(Some(Failure::WrongValues {
                    matrix: o.at.matrix,
                    row: o.at.row,
                    column,
                }));
            }
        }
        Ok(None)
    }

    /// Checks a proof that carries all its leaves (a proof file): the leaves
    /// must build `root`, and the rows `sampled` must hash to their leaves.
    pub fn check_leaves(
        &self,
        challenge: &Challenge,
        root: &Hash,
        leaves: &[Hash],
        sampled: &[RowRef],
    ) -> Result<Option<Failure>, PowError> {
        if leaves.len() as u64 != challenge.leaves() {
            return Ok(Some(Failure::WrongShape {
                expected: challenge.leaves(),
                got: leaves.len() as u64,
            }));
        }
        if merkle::Tree::new(leaves.to_vec()).root() != *root {
            return Ok(Some(Failure::RootMismatch));
        }
        let truth = prover::compute_rows(challenge, sampled, self.threads)?;
        for (at, t) in sampled.iter().zip(truth) {
            if merkle::leaf(&t) != leaves[at.position(challenge.n) as usize] {
                return Ok(Some(Failure::WrongLeaf {
                    matrix: at.matrix,
                    row: at.row,
                }));
            }
        }
        Ok(None)
    }
}
