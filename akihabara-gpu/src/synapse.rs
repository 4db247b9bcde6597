//! The challenge protocol as Bittensor synapses: `PowChallenge` (seed and
//! size → root) then `PowOpen` (rows → values and paths). Python peers can
//! define the same classes:
//!
//! ```python
//! class PowChallenge(bt.Synapse):
//!     seed: str                      # 64 hex digits
//!     n: int
//!     count: int = 1
//!     root: Optional[str] = None     # response
//!     backend: Optional[str] = None  # response
//!     device: Optional[str] = None   # response
//!     required_hash_fields: ClassVar[tuple] = ("seed", "n", "count")
//!
//! class PowOpen(bt.Synapse):
//!     seed: str
//!     rows: list                     # [[matrix, row], ...]
//!     openings: Optional[list] = None  # response: [{matrix, row, values, path}]
//!     required_hash_fields: ClassVar[tuple] = ("seed", "rows")
//! ```

use std::sync::atomic::AtomicBool;

use akihabara_core::AccountId;
use akihabara_core::protocol::{FieldKind, Synapse};
use serde::{Deserialize, Serialize};

use crate::PowError;
use crate::challenge::{Challenge, MAX_COUNT, MAX_N};
use crate::merkle::{Hash, Tree};
use crate::proof::WireOpening;
use crate::prover::RowRef;

/// Most rows one `PowOpen` may ask for (a bound on the answer's size).
pub const MAX_OPEN_ROWS: usize = 1024;

/// Request: prove `count` products of side `n` from `seed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowChallenge {
    /// The seed, 64 hex digits.
    pub seed: String,
    /// Matrix side `n`: each product is of two `n`×`n` matrices.
    pub n: i64,
    /// Number of products to compute (1 when absent).
    #[serde(default = "one")]
    pub count: i64,
    /// Response: the Merkle root, hex.
    #[serde(default)]
    pub root: Option<String>,
    /// Response: `cpu` or `cuda`.
    #[serde(default)]
    pub backend: Option<String>,
    /// Response: the device.
    #[serde(default)]
    pub device: Option<String>,
}

fn one() -> i64 {
    1
}

impl Synapse for PowChallenge {
    const NAME: &'static str = "PowChallenge";
    const MAX_ANSWER_BYTES: usize = 64 << 10;
    const HASH_FIELDS: &'static [&'static str] = &["seed", "n", "count"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] =
        &[("seed", FieldKind::Str), ("n", FieldKind::Int)];
}

impl PowChallenge {
    /// The request for `challenge`.
    pub fn new(challenge: &Challenge) -> PowChallenge {
        PowChallenge {
            seed: challenge.seed.to_string(),
            n: i64::from(challenge.n),
            count: i64::from(challenge.count),
            ..PowChallenge::default()
        }
    }

    /// The challenge it carries, range-checked.
    pub fn challenge(&self) -> Result<Challenge, PowError> {
        let n = u32::try_from(self.n)
            .map_err(|_| PowError::Challenge(format!("n = {} is not in 1..={MAX_N}", self.n)))?;
        let count = u32::try_from(self.count).map_err(|_| {
            PowError::Challenge(format!("count = {} is not in 1..={MAX_COUNT}", self.count))
        })?;
        Challenge::new(self.seed.parse()?, n, count)
    }

    /// The root of a response.
    pub fn root_hash(&self) -> Result<Hash, PowError> {
        let r = self
            .root
            .as_deref()
            .ok_or_else(|| PowError::Malformed("the response has no root".into()))?;
        let mut h = [0u8; 32];
        hex::decode_to_slice(r.trim_start_matches("0x"), &mut h).map_err(|e| {
            let shown = akihabara_core::protocol::clip_text(r.to_owned(), 80);
            PowError::Malformed(format!("root `{shown}`: {e}"))
        })?;
        Ok(h)
    }
}

/// Request: open `rows` (pairs `[matrix, row]`) of the last commitment to
/// `seed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowOpen {
    /// The seed of the commitment being opened.
    pub seed: String,
    /// `[matrix, row]` pairs.
    pub rows: Vec<[u32; 2]>,
    /// Response: one opening per row, in order.
    #[serde(default)]
    pub openings: Option<Vec<WireOpening>>,
}

impl Synapse for PowOpen {
    const NAME: &'static str = "PowOpen";
    const HASH_FIELDS: &'static [&'static str] = &["seed", "rows"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] =
        &[("seed", FieldKind::Str), ("rows", FieldKind::List)];
}

impl PowOpen {
    /// The request for `rows` of the commitment to `challenge`.
    pub fn new(challenge: &Challenge, rows: &[RowRef]) -> PowOpen {
        PowOpen {
            seed: challenge.seed.to_string(),
            rows: rows.iter().map(|r| [r.matrix, r.row]).collect(),
            openings: None,
        }
    }

    /// The rows asked for (at most [`MAX_OPEN_ROWS`]).
    pub fn row_refs(&self) -> Result<Vec<RowRef>, PowError> {
        if self.rows.len() > MAX_OPEN_ROWS {
            return Err(PowError::Malformed(format!(
                "{} rows asked for; at most {MAX_OPEN_ROWS} per call",
                self.rows.len()
            )));
        }
        Ok(self
            .rows
            .iter()
            .map(|[matrix, row]| RowRef {
                matrix: *matrix,
                row: *row,
            })
            .collect())
    }

    /// The openings of a response, decoded for a challenge of side `n`.
    pub fn decoded(&self, n: u32) -> Result<Vec<crate::Opening>, PowError> {
        self.openings
            .as_ref()
            .ok_or_else(|| PowError::Malformed("the response has no openings".into()))?
            .iter()
            .map(|o| o.decode(n as usize))
            .collect()
    }
}

/// What one challenge may cost a miner, per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowLimits {
    /// Most multiply-adds (`n³ · count`) in one challenge. Default `2^41`
    /// (about 2.2 · 10¹²: tens of seconds on a CPU, milliseconds on a large
    /// GPU). A validator that wants more work from a fast miner sends more
    /// challenges, each bounded.
    pub max_work: u128,
    /// Most rows (`n · count`) in one challenge; each costs 64 bytes of tree
    /// for as long as the commitment is kept. Default `2^20`.
    pub max_leaves: u64,
    /// Most rows kept over all callers' commitments; the oldest are dropped
    /// beyond it. Default `2^22` (256 MiB of trees).
    pub max_kept_leaves: u64,
}

impl Default for PowLimits {
    fn default() -> PowLimits {
        PowLimits {
            max_work: 1 << 41,
            max_leaves: 1 << 20,
            max_kept_leaves: 1 << 22,
        }
    }
}

/// A miner's answers to both synapses, around any [`Prover`](crate::Prover).
///
/// Each validator has its own commitment: `PowOpen` opens the caller's
/// latest, so one validator's challenges never clobber another's. A
/// challenge is bounded by [`PowLimits`], a caller has at most one being
/// worked, and the work stops when the caller goes away (the `cancel` flag).
/// Challenges are worked one at a time (a device proves one at a time
/// anyway). Both calls block for the length of the work: run them off the
/// async runtime (`spawn_blocking`), as [`crate::round::serve_pow`] does.
pub struct PowService {
    prover: std::sync::Mutex<Served>,
    kept: std::sync::Mutex<Kept>,
    in_flight: std::sync::Mutex<std::collections::HashSet<AccountId>>,
    limits: PowLimits,
}

/// The prover and the challenge it last committed to.
type Served = (Box<dyn crate::Prover>, Option<Challenge>);

/// Each caller's latest commitment, oldest first.
#[derive(Default)]
struct Kept {
    by_caller: std::collections::HashMap<AccountId, (Challenge, std::sync::Arc<Tree>, u64)>,
    order: std::collections::VecDeque<(AccountId, u64)>,
    leaves: u64,
    next: u64,
}

impl Kept {
    fn insert(&mut self, who: AccountId, ch: Challenge, tree: Tree, max_leaves: u64) {
        let id = self.next;
        self.next += 1;
        if let Some((_, t, _)) = self.by_caller.remove(&who) {
            self.leaves -= t.len() as u64;
        }
        let len = tree.len() as u64;
        while self.leaves + len > max_leaves {
            let Some((old, old_id)) = self.order.pop_front() else {
                break;
            };
            if self
                .by_caller
                .get(&old)
                .is_some_and(|(_, _, i)| *i == old_id)
                && let Some((_, t, _)) = self.by_caller.remove(&old)
            {
                self.leaves -= t.len() as u64;
            }
        }
        self.leaves += len;
        self.by_caller
            .insert(who, (ch, std::sync::Arc::new(tree), id));
        self.order.push_back((who, id));
    }
}

impl std::fmt::Debug for PowService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowService")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Removes the caller from the in-flight set when its challenge ends.
struct InFlight<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<AccountId>>,
    who: AccountId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.who);
    }
}

impl PowService {
    /// `caller`'s one place for a challenge or an opening, given back when
    /// dropped; [`PowError::Busy`] while it holds it already.
    fn enter(&self, caller: &AccountId) -> Result<InFlight<'_>, PowError> {
        if !self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*caller)
        {
            return Err(PowError::Busy);
        }
        Ok(InFlight {
            set: &self.in_flight,
            who: *caller,
        })
    }

    /// Serves with `prover` and the default [`PowLimits`].
    pub fn new(prover: Box<dyn crate::Prover>) -> PowService {
        PowService::with_limits(prover, PowLimits::default())
    }

    /// Serves with `prover` within `limits`.
    pub fn with_limits(prover: Box<dyn crate::Prover>, limits: PowLimits) -> PowService {
        PowService {
            prover: std::sync::Mutex::new((prover, None)),
            kept: std::sync::Mutex::new(Kept::default()),
            in_flight: std::sync::Mutex::new(std::collections::HashSet::new()),
            limits,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Served>, PowError> {
        self.prover
            .lock()
            .map_err(|_| PowError::Malformed("the prover panicked earlier".into()))
    }

    /// Checks `ch` against the limits, before any work.
    pub fn check(&self, ch: &Challenge) -> Result<(), PowError> {
        let n = u128::from(ch.n);
        let work = n * n * n * u128::from(ch.count);
        if work > self.limits.max_work {
            return Err(PowError::TooMuchWork {
                work,
                max: self.limits.max_work,
            });
        }
        if ch.leaves() > self.limits.max_leaves {
            return Err(PowError::Challenge(format!(
                "{} rows (n x count); this miner commits to at most {} per challenge",
                ch.leaves(),
                self.limits.max_leaves
            )));
        }
        Ok(())
    }

    /// Proves the challenge for `caller`; the answer carries the root. Gives
    /// up with [`PowError::Cancelled`] once `cancel` is set.
    pub fn challenge(
        &self,
        caller: &AccountId,
        mut req: PowChallenge,
        cancel: &AtomicBool,
    ) -> Result<PowChallenge, PowError> {
        let ch = req.challenge()?;
        self.check(&ch)?;
        let _in_flight = self.enter(caller)?;
        let mut g = self.lock()?;
        g.1 = None;
        let c = g.0.commit_cancellable(&ch, cancel)?;
        g.1 = Some(ch);
        let tree = Tree::new(g.0.leaves().to_vec());
        if tree.root() != c.root {
            return Err(PowError::Malformed(
                "the prover's leaves do not match its root".into(),
            ));
        }
        req.root = Some(hex::encode(c.root));
        req.backend = Some(g.0.backend().into());
        req.device = Some(g.0.device());
        drop(g);
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).insert(
            *caller,
            ch,
            tree,
            self.limits.max_kept_leaves,
        );
        Ok(req)
    }

    /// Opens rows of `caller`'s latest commitment. Like a challenge, one
    /// at a time per caller ([`PowError::Busy`] otherwise): an opening may
    /// recompute rows on every core, and it runs to its end even when the
    /// caller has hung up.
    pub fn open(&self, caller: &AccountId, mut req: PowOpen) -> Result<PowOpen, PowError> {
        let rows = req.row_refs()?;
        let _in_flight = self.enter(caller)?;
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_caller
            .get(caller)
            .map(|(ch, tree, _)| (*ch, tree.clone()));
        let Some((ch, tree)) = kept else {
            return Err(PowError::Malformed(
                "nothing committed yet for this validator".into(),
            ));
        };
        if req.seed.parse::<crate::Seed>()? != ch.seed {
            return Err(PowError::Malformed(
                "this validator's latest commitment is to another seed".into(),
            ));
        }
        // The prover still holds this commitment: it opens fastest.
        let openings = {
            let g = self.lock()?;
            if g.1 == Some(ch) {
                Some(g.0.open(&rows)?)
            } else {
                None
            }
        };
        let openings = match openings {
            Some(o) => o,
            None => {
                // Another validator's challenge came since: recompute the
                // rows on the CPU and prove them against the kept tree.
                let threads = crate::kernel::default_threads();
                let values = crate::compute_rows(&ch, &rows, threads)?;
                rows.iter()
                    .zip(values)
                    .map(|(at, v)| crate::prover::opening(&tree, ch.n, *at, v))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        req.openings = Some(openings.iter().map(WireOpening::from).collect());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Challenge, CpuProver, RowRef, Seed};

    /// An opening waits for nothing and piles up nowhere: while one of a
    /// caller's calls is being worked on, another is refused at once.
    #[test]
    fn one_call_per_caller_at_a_time_openings_included() {
        let service = PowService::new(Box::new(CpuProver::new()));
        let (a, b) = (
            AccountId::from_bytes([1; 32]),
            AccountId::from_bytes([2; 32]),
        );
        let ch = Challenge::new(Seed([3; 32]), 64, 1).expect("challenge");
        let never = AtomicBool::new(false);
        service
            .challenge(&a, PowChallenge::new(&ch), &never)
            .expect("commit");
        let open = || PowOpen::new(&ch, &[RowRef { matrix: 0, row: 5 }]);
        service.in_flight.lock().expect("lock").insert(a);
        assert!(matches!(service.open(&a, open()), Err(PowError::Busy)));
        // Another caller is not held up (it has nothing committed).
        assert!(matches!(
            service.open(&b, open()),
            Err(PowError::Malformed(_))
        ));
        service.in_flight.lock().expect("lock").remove(&a);
        let opened = service.open(&a, open()).expect("open");
        assert_eq!(opened.openings.map(|o| o.len()), Some(1));
        assert!(service.in_flight.lock().expect("lock").is_empty());
    }
}
