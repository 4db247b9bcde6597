//! [`SkippingProver`]: a dishonest prover, for tests and the demo's cheating
//! miner. It skips every odd row (commits to zeros there, half the work
//! saved) and opens consistently with that commitment, so only the
//! verifier's recomputation of the opened rows can catch it.

use std::time::Instant;

use crate::merkle::{self, Hash, Tree};
use crate::prover::opening;
use crate::{Challenge, Commitment, Opening, PowError, Prover, RowRef, compute_rows};

/// Skips half its rows (see the module docs). Never use it to mine.
#[derive(Debug, Default)]
pub struct SkippingProver {
    state: Option<(Challenge, Tree)>,
}

impl SkippingProver {
    /// A prover with nothing committed.
    pub fn new() -> SkippingProver {
        SkippingProver::default()
    }

    fn row(ch: &Challenge, j: u32, i: u32) -> Result<Vec<i32>, PowError> {
        if i % 2 == 1 {
            return Ok(vec![0; ch.n as usize]);
        }
        Ok(compute_rows(ch, &[RowRef { matrix: j, row: i }], 1)?.remove(0))
    }
}

impl Prover for SkippingProver {
    fn backend(&self) -> &'static str {
        "cpu"
    }
    fn device(&self) -> String {
        "skipping prover (dishonest, for tests)".into()
    }
    fn commit(&mut self, ch: &Challenge) -> Result<Commitment, PowError> {
        ch.check()?;
        let start = Instant::now();
        let mut leaves = Vec::with_capacity((ch.n * ch.count) as usize);
        for j in 0..ch.count {
            for i in 0..ch.n {
                leaves.push(merkle::leaf(&Self::row(ch, j, i)?));
            }
        }
        let tree = Tree::new(leaves);
        let root = tree.root();
        self.state = Some((*ch, tree));
        Ok(Commitment {
            root,
            elapsed: start.elapsed(),
        })
    }
    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError> {
        let Some((ch, tree)) = &self.state else {
            return Err(PowError::Malformed("nothing committed yet".into()));
        };
        rows.iter()
            .map(|r| opening(tree, ch.n, *r, Self::row(ch, r.matrix, r.row)?))
            .collect()
    }
    fn leaves(&self) -> &[Hash] {
        self.state
            .as_ref()
            .map(|(_, t)| t.leaves())
            .unwrap_or_default()
    }
}
