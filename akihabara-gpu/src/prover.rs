//! Provers: compute every product, commit to its rows, open rows on demand.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::PowError;
use crate::challenge::Challenge;
use crate::generate::{MatrixGen, Side};
use crate::kernel::{self, PackedB};
use crate::merkle::{self, Hash, Tree};

/// One row of one product: `C_matrix[row]`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RowRef {
    /// Product index `j`.
    pub matrix: u32,
    /// Row index `i`.
    pub row: u32,
}

impl RowRef {
    /// The leaf position: `matrix · n + row`.
    pub fn position(&self, n: u32) -> u64 {
        u64::from(self.matrix) * u64::from(n) + u64::from(self.row)
    }
}

/// An opened row and its Merkle path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    /// Which row.
    pub at: RowRef,
    /// The row's `n` values.
    pub values: Vec<i32>,
    /// Siblings from the leaf to the root.
    pub path: Vec<Hash>,
}

/// What a prover reports after committing.
#[derive(Clone, Debug)]
pub struct Commitment {
    /// The Merkle root over all rows.
    pub root: Hash,
    /// Time the prover spent (its own word: validators time it themselves).
    pub elapsed: Duration,
}

/// A proof-of-work backend.
pub trait Prover: Send {
    /// `cpu` or `cuda`.
    fn backend(&self) -> &'static str;
    /// The device it runs on, in words.
    fn device(&self) -> String;
    /// Computes every product of `challenge` and commits to the rows.
    fn commit(&mut self, challenge: &Challenge) -> Result<Commitment, PowError>;
    /// [`Prover::commit`], giving up with [`PowError::Cancelled`] soon after
    /// `cancel` is set (between products, at least). The default checks it
    /// only before it starts.
    fn commit_cancellable(
        &mut self,
        challenge: &Challenge,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Commitment, PowError> {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PowError::Cancelled);
        }
        self.commit(challenge)
    }
    /// Opens rows of the last commitment.
    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError>;
    /// The leaves of the last commitment (for proof files).
    fn leaves(&self) -> &[Hash];
}

/// A boxed prover is a prover, so wrappers such as
/// [`ThrottledProver`](crate::ThrottledProver) take one chosen at run time.
impl<P: Prover + ?Sized> Prover for Box<P> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn device(&self) -> String {
        (**self).device()
    }
    fn commit(&mut self, challenge: &Challenge) -> Result<Commitment, PowError> {
        (**self).commit(challenge)
    }
    fn commit_cancellable(
        &mut self,
        challenge: &Challenge,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Commitment, PowError> {
        (**self).commit_cancellable(challenge, cancel)
    }
    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError> {
        (**self).open(rows)
    }
    fn leaves(&self) -> &[Hash] {
        (**self).leaves()
    }
}

/// The CPU prover: packed int8 products on every core, blake3 leaves.
#[derive(Debug)]
pub struct CpuProver {
    threads: usize,
    memory_limit: Option<u64>,
    state: Option<(Challenge, Tree)>,
}

impl Default for CpuProver {
    fn default() -> CpuProver {
        CpuProver::new()
    }
}

impl CpuProver {
    /// A prover on all cores, limited to 80% of the memory the system
    /// reports available.
    pub fn new() -> CpuProver {
        CpuProver {
            threads: kernel::default_threads(),
            memory_limit: available_memory().map(|m| m / 5 * 4),
            state: None,
        }
    }

    /// Uses `threads` threads.
    pub fn threads(mut self, threads: usize) -> CpuProver {
        self.threads = threads.max(1);
        self
    }

    /// Refuses challenges that need more than `bytes`.
    pub fn memory_limit(mut self, bytes: u64) -> CpuProver {
        self.memory_limit = Some(bytes);
        self
    }

    /// Bytes a commitment needs: one packed `B`, the leaves and the tree.
    pub fn bytes_needed(challenge: &Challenge) -> u64 {
        PackedB::bytes(challenge.n)
            + challenge.leaves() * 32 * 2
            + 64 * 4 * u64::from(challenge.n) * 4
    }
}

/// Bytes of memory available (Linux `MemAvailable`), if known.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Prover for CpuProver {
    fn backend(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        format!("{} CPU threads", self.threads)
    }

    fn commit(&mut self, challenge: &Challenge) -> Result<Commitment, PowError> {
        self.commit_cancellable(challenge, &std::sync::atomic::AtomicBool::new(false))
    }

    fn commit_cancellable(
        &mut self,
        challenge: &Challenge,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Commitment, PowError> {
        challenge.check()?;
        let needed = CpuProver::bytes_needed(challenge);
        if let Some(limit) = self.memory_limit
            && needed > limit
        {
            return Err(PowError::Memory {
                needed,
                available: limit,
            });
        }
        let start = Instant::now();
        let n = challenge.n;
        let all_rows: Vec<u32> = (0..n).collect();
        let mut leaves = Vec::with_capacity(challenge.leaves() as usize);
        for j in 0..challenge.count {
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(PowError::Cancelled);
            }
            let a = MatrixGen::new(&challenge.seed, j, Side::A);
            let b = PackedB::generate(
                &MatrixGen::new(&challenge.seed, j, Side::B),
                n,
                self.threads,
            );
            let out = Mutex::new(vec![[0u8; 32]; n as usize]);
            kernel::multiply_rows(&a, &all_rows, &b, self.threads, |i, row| {
                let h = merkle::leaf(row);
                if let Ok(mut out) = out.lock() {
                    out[i] = h;
                }
            });
            leaves.extend(
                out.into_inner()
                    .map_err(|_| PowError::Malformed("a worker panicked".into()))?,
            );
        }
        let tree = Tree::new(leaves);
        let root = tree.root();
        self.state = Some((*challenge, tree));
        Ok(Commitment {
            root,
            elapsed: start.elapsed(),
        })
    }

    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError> {
        let Some((challenge, tree)) = &self.state else {
            return Err(PowError::Malformed("nothing committed yet".into()));
        };
        let values = compute_rows(challenge, rows, self.threads)?;
        rows.iter()
            .zip(values)
            .map(|(at, values)| opening(tree, challenge.n, *at, values))
            .collect()
    }

    fn leaves(&self) -> &[Hash] {
        self.state
            .as_ref()
            .map(|(_, t)| t.leaves())
            .unwrap_or_default()
    }
}

/// `values` as the opening of row `at`, with its path in `tree`.
pub(crate) fn opening(
    tree: &Tree,
    n: u32,
    at: RowRef,
    values: Vec<i32>,
) -> Result<Opening, PowError> {
    let path = tree
        .path(at.position(n) as usize)
        .ok_or_else(|| PowError::Malformed(format!("row {at:?} is outside the challenge")))?;
    Ok(Opening { at, values, path })
}

/// The most bytes of rows [`compute_rows`] returns (`rows · n · 4`): 256
/// MiB, 512 rows of the largest side. Larger requests are
/// [`PowError::Memory`] before anything is allocated.
pub const MAX_ROWS_BYTES: u64 = 256 << 20;

/// The largest packed `B` [`compute_rows`] builds: 512 MiB, side 16,384.
/// Beyond it rows stream `B` a row at a time instead (memory `rows · n`,
/// the same arithmetic): packing side 131,071 took 34 GB.
pub const MAX_PACKED_B_BYTES: u64 = 512 << 20;

/// Whether `rows` rows of a product of side `n` are computed by packing its
/// `B` (fast for many rows) rather than streaming it (bounded memory).
pub(crate) fn packs_b(n: u32, rows: usize) -> bool {
    rows > FEW_ROWS && PackedB::bytes(n) <= MAX_PACKED_B_BYTES
}

/// The true rows `rows` of the challenge's products, computed on the CPU
/// (what the validator compares openings with). Rows of one product share
/// its `B`: a few rows stream it, many rows pack it (up to
/// [`MAX_PACKED_B_BYTES`]). At most [`MAX_ROWS_BYTES`] of rows.
pub fn compute_rows(
    challenge: &Challenge,
    rows: &[RowRef],
    threads: usize,
) -> Result<Vec<Vec<i32>>, PowError> {
    challenge.check()?;
    let needed = rows.len() as u64 * u64::from(challenge.n) * 4;
    if needed > MAX_ROWS_BYTES {
        return Err(PowError::Memory {
            needed,
            available: MAX_ROWS_BYTES,
        });
    }
    for r in rows {
        if r.matrix >= challenge.count || r.row >= challenge.n {
            return Err(PowError::Malformed(format!(
                "row {} of product {} is outside a challenge of {} products of side {}",
                r.row, r.matrix, challenge.count, challenge.n
            )));
        }
    }
    let mut out = vec![Vec::new(); rows.len()];
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i]);
    for group in order.chunk_by(|&x, &y| rows[x].matrix == rows[y].matrix) {
        let j = rows[group[0]].matrix;
        let a = MatrixGen::new(&challenge.seed, j, Side::A);
        let bgen = MatrixGen::new(&challenge.seed, j, Side::B);
        let wanted: Vec<u32> = group.iter().map(|&i| rows[i].row).collect();
        if !packs_b(challenge.n, wanted.len()) {
            for (&i, v) in
                group
                    .iter()
                    .zip(kernel::few_rows(&a, &bgen, challenge.n, &wanted, threads))
            {
                out[i] = v;
            }
        } else {
            let b = PackedB::generate(&bgen, challenge.n, threads);
            let got = Mutex::new(vec![Vec::new(); wanted.len()]);
            kernel::multiply_rows(&a, &wanted, &b, threads, |k, row| {
                if let Ok(mut g) = got.lock() {
                    g[k] = row.to_vec();
                }
            });
            let got = got
                .into_inner()
                .map_err(|_| PowError::Malformed("a worker panicked".into()))?;
            for (&i, v) in group.iter().zip(got) {
                out[i] = v;
            }
        }
    }
    Ok(out)
}

/// Up to this many rows of one product are computed without packing `B`.
const FEW_ROWS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::{MAX_N, Seed};

    /// Many rows of a large side stream `B` (40 rows of side 131,071 once
    /// packed a 34 GB `B`); of a small side they pack it.
    #[test]
    fn b_is_packed_only_within_its_budget() {
        assert!(PackedB::bytes(MAX_N) > 30_000_000_000);
        assert!(!packs_b(MAX_N, 40));
        assert!(!packs_b(MAX_N, 512));
        assert!(packs_b(16_384, 40));
        assert_eq!(PackedB::bytes(16_384), MAX_PACKED_B_BYTES);
        assert!(!packs_b(16_385, 40));
        assert!(!packs_b(1024, FEW_ROWS));
        assert!(packs_b(1024, FEW_ROWS + 1));
    }

    /// Streaming and packing give the same rows.
    #[test]
    fn streamed_and_packed_rows_agree() {
        let ch = Challenge::new(Seed([6; 32]), 40, 1).expect("challenge");
        let rows: Vec<RowRef> = (0..40).map(|row| RowRef { matrix: 0, row }).collect();
        let packed = compute_rows(&ch, &rows, 2).expect("packed");
        let streamed: Vec<Vec<i32>> = rows
            .chunks(FEW_ROWS)
            .flat_map(|c| compute_rows(&ch, c, 2).expect("streamed"))
            .collect();
        assert_eq!(packed, streamed);
    }
}
