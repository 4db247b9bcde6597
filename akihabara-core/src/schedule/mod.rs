//! Turning an [`Allocation`](crate::strategy::Allocation) into block ranges: [`Layout`], [`Slot`], [`Schedule`].

mod layout;
#[cfg(feature = "net")]
mod query;

use serde::{Deserialize, Serialize};

pub use layout::{Layout, MAX_INTERLEAVED_BLOCKS, UnknownLayout};
#[cfg(feature = "net")]
pub use query::{ScheduleQuery, SlotRefusal};

use crate::strategy::{AllocationEntry, AllocationRequest, allocate_checked};
use crate::{AllocationStrategy, Block, Hotkey, ScheduleError, Uid, Window};

/// A run of consecutive blocks `[start, end)` served to one validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// First block of the run (inclusive).
    pub start: Block,
    /// One past the last block.
    pub end: Block,
    /// The validator served.
    pub uid: Uid,
    /// The served validator's hotkey.
    pub hotkey: Hotkey,
}

impl Slot {
    /// Number of blocks in the slot.
    pub fn len(&self) -> u64 {
        self.end.blocks_since(self.start)
    }

    /// Whether the slot has no blocks (never true in a built schedule).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A miner's plan for one window: every block assigned to exactly one validator.
///
/// Serialises to the `akihabara schedule --json` format:
/// `{"strategy", "window": {"start", "len"}, "allocations": [{"uid", "hotkey", "blocks"}],
/// "slots": [{"start", "end", "uid", "hotkey"}]}`.
///
/// ```
/// use akihabara_core::schedule::{Layout, Schedule};
/// use akihabara_core::strategy::{AllocationRequest, Candidate, Proportional};
/// use akihabara_core::{AccountId, Block, Rao, Uid, Window};
/// let hk = |i: u8| AccountId::from_bytes([i; 32]);
/// let cands = vec![
///     Candidate::new(Uid(3), hk(3), Rao(3_000)),
///     Candidate::new(Uid(8), hk(8), Rao(1_000)),
/// ];
/// let req = AllocationRequest::new(Window::new(Block(720), 720).unwrap(), 40, cands).unwrap();
/// let s = Schedule::build(&Proportional, &req, Layout::Contiguous).unwrap();
/// assert_eq!(s.allocations()[0].blocks, 540);
/// assert_eq!(s.validator_at(Block(720)).unwrap().uid, Uid(3));
/// assert_eq!(s.validator_at(Block(1439)).unwrap().uid, Uid(8));
/// assert!(s.validator_at(Block(1440)).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    strategy: String,
    window: Window,
    allocations: Vec<AllocationEntry>,
    slots: Vec<Slot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

impl Schedule {
    /// Runs `strategy` on `req`, checks its answer and lays it out.
    pub fn build(
        strategy: &dyn AllocationStrategy,
        req: &AllocationRequest<'_>,
        layout: Layout,
    ) -> Result<Schedule, ScheduleError> {
        let alloc = allocate_checked(strategy, req)?;
        let slots = layout.slots(req.window(), &alloc.entries)?;
        Ok(Schedule {
            strategy: strategy.name().to_owned(),
            window: req.window(),
            allocations: alloc.entries,
            slots,
            notes: alloc.notes,
        })
    }

    /// The strategy's name.
    pub fn strategy(&self) -> &str {
        &self.strategy
    }

    /// The window covered.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Every eligible validator with its block count (0 included), in allocation order.
    pub fn allocations(&self) -> &[AllocationEntry] {
        &self.allocations
    }

    /// The slots, in block order, covering the window without gaps.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Remarks from the strategy (e.g. a fallback it took).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The slot serving `block`, in O(log n); `None` outside the window.
    pub fn validator_at(&self, block: Block) -> Option<&Slot> {
        // Index of the first slot starting after `block`, minus one.
        let i = self.slots.partition_point(|s| s.start <= block);
        let slot = self.slots.get(i.checked_sub(1)?)?;
        (block < slot.end).then_some(slot)
    }
}
