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

use akihabara_core::protocol::{FieldKind, Synapse};
use serde::{Deserialize, Serialize};

use crate::PowError;
use crate::challenge::{Challenge, MAX_COUNT, MAX_N};
use crate::merkle::Hash;
use crate::proof::WireOpening;
use crate::prover::RowRef;

/// Most rows one `PowOpen` may ask for (a bound on the answer's size).
pub const MAX_OPEN_ROWS: usize = 1024;

/// Request: prove `count` products of side `n` from `seed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowChallenge {
    /// The seed, 64 hex digits.
    pub seed: String,
    /// Matrix side.
    pub n: i64,
    /// Products.
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
        hex::decode_to_slice(r.trim_start_matches("0x"), &mut h)
            .map_err(|e| PowError::Malformed(format!("root `{r}`: {e}")))?;
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

/// A miner's answers to both synapses, around any [`Prover`](crate::Prover).
///
/// One challenge is worked at a time (a device proves one at a time
/// anyway); `PowOpen` opens the latest commitment and refuses another seed.
/// Both calls block for the length of the work: run them off the async
/// runtime (`spawn_blocking`).
pub struct PowService {
    inner: std::sync::Mutex<Served>,
}

/// The prover and what it last committed to.
type Served = (Box<dyn crate::Prover>, Option<Challenge>);

impl std::fmt::Debug for PowService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowService").finish_non_exhaustive()
    }
}

impl PowService {
    /// Serves with `prover`.
    pub fn new(prover: Box<dyn crate::Prover>) -> PowService {
        PowService {
            inner: std::sync::Mutex::new((prover, None)),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Served>, PowError> {
        self.inner
            .lock()
            .map_err(|_| PowError::Malformed("the prover panicked earlier".into()))
    }

    /// Proves the challenge; the answer carries the root.
    pub fn challenge(&self, mut req: PowChallenge) -> Result<PowChallenge, PowError> {
        let ch = req.challenge()?;
        let mut g = self.lock()?;
        g.1 = None;
        let c = g.0.commit(&ch)?;
        g.1 = Some(ch);
        req.root = Some(hex::encode(c.root));
        req.backend = Some(g.0.backend().into());
        req.device = Some(g.0.device());
        Ok(req)
    }

    /// Opens rows of the latest commitment.
    pub fn open(&self, mut req: PowOpen) -> Result<PowOpen, PowError> {
        let rows = req.row_refs()?;
        let g = self.lock()?;
        let Some(ch) = g.1 else {
            return Err(PowError::Malformed("nothing committed yet".into()));
        };
        if req.seed.parse::<crate::Seed>()? != ch.seed {
            return Err(PowError::Malformed(
                "this miner's latest commitment is to another seed".into(),
            ));
        }
        let openings = g.0.open(&rows)?;
        req.openings = Some(openings.iter().map(WireOpening::from).collect());
        Ok(req)
    }
}
