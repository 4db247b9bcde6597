//! How a miner splits a window's blocks across validators.
//!
//! A strategy is pure and synchronous: given the eligible validators (a
//! [`AllocationRequest`]) it returns how many blocks each gets (an
//! [`Allocation`]). Turning counts into block ranges is a separate step, the
//! [`Layout`](crate::schedule::Layout), so every strategy works with every layout.
//!
//! Reference strategies:
//!
//! | name | rule |
//! |---|---|
//! | [`stake`](Stake) | the documented Akihabara algorithm: descending stake, `max(floor(stake/total·len), min)` capped by what remains |
//! | [`equal`](Equal) | even split; too many validators → the `floor(len/min)` highest-stake ones |
//! | [`proportional`](Proportional) | exact largest-remainder apportionment with the minimum guaranteed (recommended default) |
//! | [`emission`](Emission) | competition-aware water-filling on `stake·x/(x+others)` |
//!
//! # Writing your own
//!
//! ```
//! use akihabara_core::strategy::{Allocation, AllocationRequest, AllocationStrategy};
//! use akihabara_core::ScheduleError;
//!
//! /// Serves only the highest-stake validator.
//! struct TopOne;
//!
//! impl AllocationStrategy for TopOne {
//!     fn name(&self) -> &str { "top-one" }
//!     fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
//!         // Candidates arrive sorted by descending stake, ties by uid.
//!         let blocks = (0..req.candidates().len())
//!             .map(|i| if i == 0 { req.window().len } else { 0 })
//!             .collect();
//!         Ok(Allocation::from_blocks(req, blocks))
//!     }
//! }
//! ```
//!
//! [`Schedule::build`](crate::schedule::Schedule::build) checks every
//! allocation (each candidate once, counts summing to the window), so a buggy
//! plug-in yields a typed error, never a schedule with gaps.

pub mod apportion;
mod eligibility;
mod emission;
mod equal;
mod proportional;
mod stake;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use eligibility::Eligibility;
pub use emission::Emission;
pub use equal::Equal;
pub use proportional::Proportional;
pub use stake::Stake;

use crate::{Hotkey, Rao, Uid, Window};

/// Default minimum blocks per served validator (Akihabara's `min_blocks_per_validator`).
pub const DEFAULT_MIN_BLOCKS: u64 = 40;

/// Why a schedule could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// No validator passed the eligibility filter.
    #[error(
        "no eligible validators (check validator permits, --min-stake and the allow/deny lists)"
    )]
    NoEligibleValidators,
    /// The minimum per validator does not fit in the window at all.
    #[error("min blocks per validator ({min_blocks}) is larger than the window ({len} blocks)")]
    MinBlocksExceedWindow {
        /// The requested minimum.
        min_blocks: u64,
        /// The window length.
        len: u64,
    },
    /// The layout cannot cover a window this long.
    #[error(
        "the {layout} layout supports windows of at most {max} blocks, not {len}; use the contiguous layout"
    )]
    WindowTooLongForLayout {
        /// The layout's name.
        layout: String,
        /// The window length asked for.
        len: u64,
        /// The longest window it supports.
        max: u64,
    },
    /// The same uid was offered twice.
    #[error("validator uid {0} is listed twice")]
    DuplicateCandidate(Uid),
    /// No strategy has this name.
    #[error("unknown strategy {name:?} (known: {})", BUILTIN_STRATEGIES.join(", "))]
    UnknownStrategy {
        /// The name asked for.
        name: String,
    },
    /// A strategy returned an allocation that breaks the schedule invariants.
    #[error("strategy {strategy:?} returned an invalid allocation: {reason}")]
    InvalidAllocation {
        /// The strategy's name.
        strategy: String,
        /// What was wrong.
        reason: String,
    },
    /// An error from a user-defined strategy.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl ScheduleError {
    /// Wraps an error from a plug-in strategy.
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ScheduleError {
        ScheduleError::Other(e.into())
    }
}

/// A validator a miner may serve, as strategies see it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Candidate {
    /// The validator's uid.
    pub uid: Uid,
    /// The validator's hotkey.
    pub hotkey: Hotkey,
    /// Its stake on the subnet.
    pub stake: Rao,
    /// Compute other miners deliver to it per window, in blocks of this
    /// miner's compute (input to [`Emission`]; `None` when unknown).
    pub competitor_load: Option<f64>,
}

impl Candidate {
    /// A candidate with no competitor-load information.
    pub fn new(uid: Uid, hotkey: Hotkey, stake: Rao) -> Candidate {
        Candidate {
            uid,
            hotkey,
            stake,
            competitor_load: None,
        }
    }

    /// Sets the competitor load (negative or non-finite values are treated as unknown).
    pub fn with_competitor_load(mut self, load: f64) -> Candidate {
        self.competitor_load = (load.is_finite() && load >= 0.0).then_some(load);
        self
    }
}

/// The input of a strategy: a window, the minimum, and the eligible validators
/// sorted by descending stake (ties by ascending uid).
///
/// Construction checks what every strategy may rely on: at least one
/// candidate, unique uids, and `min_blocks <= window.len`.
#[derive(Debug, Clone)]
pub struct AllocationRequest<'a> {
    window: Window,
    min_blocks: u64,
    candidates: std::borrow::Cow<'a, [Candidate]>,
}

impl<'a> AllocationRequest<'a> {
    /// Checks and sorts the input. Candidates may come in any order.
    pub fn new(
        window: Window,
        min_blocks: u64,
        candidates: impl Into<std::borrow::Cow<'a, [Candidate]>>,
    ) -> Result<AllocationRequest<'a>, ScheduleError> {
        let mut candidates = candidates.into();
        if candidates.is_empty() {
            return Err(ScheduleError::NoEligibleValidators);
        }
        if min_blocks > window.len {
            return Err(ScheduleError::MinBlocksExceedWindow {
                min_blocks,
                len: window.len,
            });
        }
        let sorted = candidates
            .windows(2)
            .all(|p| stake_order(&p[0], &p[1]).is_lt());
        if !sorted {
            candidates.to_mut().sort_by(stake_order);
        }
        if let Some(uid) = first_repeat(candidates.iter().map(|c| c.uid)) {
            return Err(ScheduleError::DuplicateCandidate(uid));
        }
        Ok(AllocationRequest {
            window,
            min_blocks,
            candidates,
        })
    }

    /// The window to fill.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Minimum blocks for any validator that is served at all.
    pub fn min_blocks(&self) -> u64 {
        self.min_blocks
    }

    /// Eligible validators, descending stake, ties by uid.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// How many of the highest-stake candidates can each get the minimum:
    /// all of them if `n * min <= len`, else `floor(len / min)`.
    pub fn servable(&self) -> usize {
        let n = self.candidates.len();
        if self.min_blocks == 0 {
            return n;
        }
        let fit = self.window.len / self.min_blocks;
        usize::try_from(fit).map_or(n, |fit| fit.min(n))
    }
}

/// A set of uids as a 65,536-bit bitmap: O(1) insert and lookup.
struct UidSet(Vec<u64>);

impl UidSet {
    fn new() -> UidSet {
        UidSet(vec![0; 1024])
    }

    /// Inserts `uid`; false if it was already present.
    fn insert(&mut self, uid: Uid) -> bool {
        let (word, bit) = (usize::from(uid.get()) / 64, uid.get() % 64);
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }

    fn contains(&self, uid: Uid) -> bool {
        self.0[usize::from(uid.get()) / 64] & (1 << (uid.get() % 64)) != 0
    }
}

/// The first uid that appears twice.
fn first_repeat(uids: impl Iterator<Item = Uid>) -> Option<Uid> {
    let mut seen = UidSet::new();
    uids.into_iter().find(|&u| !seen.insert(u))
}

/// Descending stake, then ascending uid: the order every strategy uses.
pub fn stake_order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.stake.cmp(&a.stake).then(a.uid.cmp(&b.uid))
}

/// Blocks given to one validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationEntry {
    /// Uid of the validator.
    pub uid: Uid,
    /// The validator's hotkey.
    pub hotkey: Hotkey,
    /// Blocks of the window it gets (0 when not served).
    pub blocks: u64,
}

/// A strategy's answer: every candidate once, in allocation order (the order
/// a contiguous layout serves them), with notes for the operator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allocation {
    /// Entries in allocation order.
    pub entries: Vec<AllocationEntry>,
    /// Human-readable remarks, e.g. a fallback the strategy took.
    pub notes: Vec<String>,
}

impl Allocation {
    /// Pairs `blocks[i]` with `req.candidates()[i]` (missing counts are 0).
    pub fn from_blocks(req: &AllocationRequest<'_>, blocks: Vec<u64>) -> Allocation {
        let entries = req
            .candidates()
            .iter()
            .enumerate()
            .map(|(i, c)| AllocationEntry {
                uid: c.uid,
                hotkey: c.hotkey,
                blocks: blocks.get(i).copied().unwrap_or(0),
            })
            .collect();
        Allocation {
            entries,
            notes: Vec::new(),
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Allocation {
        self.notes.push(note.into());
        self
    }

    /// Blocks given to `uid` (0 if absent).
    pub fn blocks_of(&self, uid: Uid) -> u64 {
        self.entries
            .iter()
            .find(|e| e.uid == uid)
            .map_or(0, |e| e.blocks)
    }
}

/// How a miner splits a window across validators. Pure and synchronous.
///
/// Implementations receive a checked [`AllocationRequest`] and must return
/// every candidate exactly once with block counts summing to the window
/// length; [`Schedule::build`](crate::schedule::Schedule::build) verifies this.
pub trait AllocationStrategy: Send + Sync {
    /// Short name used on the command line and in reports.
    fn name(&self) -> &str;

    /// Splits `req.window()` among `req.candidates()`.
    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError>;
}

impl<T: AllocationStrategy + ?Sized> AllocationStrategy for &T {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        (**self).allocate(req)
    }
}

impl<T: AllocationStrategy + ?Sized> AllocationStrategy for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        (**self).allocate(req)
    }
}

impl<T: AllocationStrategy + ?Sized> AllocationStrategy for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        (**self).allocate(req)
    }
}

/// Names of the built-in strategies, recommended default first.
pub const BUILTIN_STRATEGIES: &[&str] = &["proportional", "stake", "equal", "emission"];

/// A built-in strategy by name.
///
/// ```
/// let s = akihabara_core::strategy::by_name("proportional").unwrap();
/// assert_eq!(s.name(), "proportional");
/// assert!(akihabara_core::strategy::by_name("magic").is_err());
/// ```
pub fn by_name(name: &str) -> Result<Box<dyn AllocationStrategy>, ScheduleError> {
    Ok(match name {
        "stake" => Box::new(Stake),
        "equal" => Box::new(Equal),
        "proportional" => Box::new(Proportional),
        "emission" => Box::new(Emission),
        _ => {
            return Err(ScheduleError::UnknownStrategy {
                name: name.to_owned(),
            });
        }
    })
}

/// Runs `strategy` and verifies its answer: every candidate exactly once and
/// block counts summing to the window length.
pub fn allocate_checked(
    strategy: &dyn AllocationStrategy,
    req: &AllocationRequest<'_>,
) -> Result<Allocation, ScheduleError> {
    let alloc = strategy.allocate(req)?;
    let name = strategy.name();
    let bad = |reason: String| ScheduleError::InvalidAllocation {
        strategy: name.to_owned(),
        reason,
    };
    let cands = req.candidates();
    if alloc.entries.len() != cands.len() {
        return Err(bad(format!(
            "{} entries for {} candidates",
            alloc.entries.len(),
            cands.len()
        )));
    }
    // Same uids as the candidates: in order (the usual case), or as a set.
    let same_order = alloc.entries.iter().zip(cands).all(|(e, c)| e.uid == c.uid);
    if !same_order {
        let mut wanted = UidSet::new();
        for c in cands {
            wanted.insert(c.uid);
        }
        let mut seen = UidSet::new();
        if alloc
            .entries
            .iter()
            .any(|e| !wanted.contains(e.uid) || !seen.insert(e.uid))
        {
            return Err(bad(
                "entries do not match the candidates one for one".to_owned()
            ));
        }
    }
    let total = alloc
        .entries
        .iter()
        .try_fold(0u64, |a, e| a.checked_add(e.blocks))
        .ok_or_else(|| bad("block counts overflow".to_owned()))?;
    if total != req.window().len {
        return Err(bad(format!(
            "block counts sum to {total}, the window has {}",
            req.window().len
        )));
    }
    Ok(alloc)
}

#[cfg(test)]
pub(crate) mod tests;
