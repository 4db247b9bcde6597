//! `ScheduleQuery`: the synapse a miner answers with the schedule it follows,
//! so a validator can tell whether the miner serves it now and until when.
//!
//! Its Python twin:
//!
//! ```python
//! class ScheduleQuery(bt.Synapse):
//!     block: Optional[int] = None
//!     window_start: Optional[int] = None
//!     window_end: Optional[int] = None
//!     strategy: Optional[str] = None
//!     serving_uid: Optional[int] = None
//!     serving_hotkey: Optional[str] = None
//!     serving_until: Optional[int] = None
//!     slots: Optional[list[dict]] = None
//! ```

use serde::{Deserialize, Serialize};

use super::{Schedule, Slot};
use crate::protocol::Synapse;
use crate::{Block, Uid};

/// A miner's schedule as it answers it. Every field is the answer; the
/// request is empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleQuery {
    /// The chain block the miner last saw.
    #[serde(default)]
    pub block: Option<u64>,
    /// The window's first block.
    #[serde(default)]
    pub window_start: Option<u64>,
    /// The block after the window.
    #[serde(default)]
    pub window_end: Option<u64>,
    /// The strategy that made the schedule.
    #[serde(default)]
    pub strategy: Option<String>,
    /// The validator served at `block`, if any.
    #[serde(default)]
    pub serving_uid: Option<u16>,
    /// Its hotkey (SS58).
    #[serde(default)]
    pub serving_hotkey: Option<String>,
    /// The block its slot ends.
    #[serde(default)]
    pub serving_until: Option<u64>,
    /// Every slot of the window.
    #[serde(default)]
    pub slots: Option<Vec<Slot>>,
}

impl Synapse for ScheduleQuery {
    const NAME: &'static str = "ScheduleQuery";
}

impl ScheduleQuery {
    /// The answer for `schedule` at `block`.
    pub fn answer(schedule: &Schedule, block: Block) -> ScheduleQuery {
        let now = schedule.validator_at(block);
        ScheduleQuery {
            block: Some(block.0),
            window_start: Some(schedule.window().start.0),
            window_end: Some(schedule.window().end().0),
            strategy: Some(schedule.strategy().to_owned()),
            serving_uid: now.map(|s| s.uid.0),
            serving_hotkey: now.map(|s| s.hotkey.to_ss58()),
            serving_until: now.map(|s| s.end.0),
            slots: Some(schedule.slots().to_vec()),
        }
    }

    /// Whether the answer says `uid` is served at `block` (by its slots, so
    /// a slightly stale answer still counts).
    pub fn serves(&self, uid: Uid, block: Block) -> bool {
        self.slots.as_ref().is_some_and(|slots| {
            slots
                .iter()
                .any(|s| s.uid == uid && s.start <= block && block < s.end)
        })
    }
}
