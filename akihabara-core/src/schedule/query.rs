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

/// A miner's refusal of a validator outside its slot: HTTP status
/// [`SlotRefusal::STATUS`] (409) and a message of a fixed form, which a
/// Python dendrite reads as `synapse.axon.status_code` and
/// `synapse.axon.status_message`:
///
/// ```text
/// Not your slot: next_slot=1200..1240 window_end=1440 block=1100
/// Not your slot: next_slot=none window_end=1440 block=1100
/// ```
///
/// `next_slot` is the validator's next slot `[start, end)` in the miner's
/// current window (`none`: no slot left in it; come back when the window
/// ends), `block` the block the miner is at. In Python:
/// `re.search(r"next_slot=(\d+)\.\.(\d+)", synapse.axon.status_message)`.
///
/// ```
/// use akihabara_core::schedule::SlotRefusal;
/// use akihabara_core::Block;
/// let r = SlotRefusal {
///     next_slot: Some((Block(1200), Block(1240))),
///     window_end: Block(1440),
///     block: Block(1100),
/// };
/// let m = r.to_string();
/// assert_eq!(m, "Not your slot: next_slot=1200..1240 window_end=1440 block=1100");
/// assert_eq!(SlotRefusal::parse(409, &m), Some(r));
/// assert_eq!(r.not_before(), Block(1200));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRefusal {
    /// The validator's next slot in the window, `[start, end)`.
    pub next_slot: Option<(Block, Block)>,
    /// The block after the miner's current window.
    pub window_end: Block,
    /// The block the miner is at.
    pub block: Block,
}

impl SlotRefusal {
    /// The HTTP status of the refusal (409 Conflict: the request conflicts
    /// with the miner's schedule, not with who the caller is).
    pub const STATUS: u16 = 409;
    const PREFIX: &'static str = "Not your slot: ";

    /// The first block the validator may call again: its next slot's start,
    /// else the window's end.
    pub fn not_before(&self) -> Block {
        self.next_slot.map_or(self.window_end, |(start, _)| start)
    }

    /// The refusal in an answer of `status` with `message`, if it is one.
    pub fn parse(status: u16, message: &str) -> Option<SlotRefusal> {
        if status != Self::STATUS {
            return None;
        }
        let rest = message.trim().strip_prefix(Self::PREFIX)?;
        let (mut next, mut end, mut block) = (None, None, None);
        for part in rest.split_ascii_whitespace() {
            let (key, value) = part.split_once('=')?;
            match key {
                "next_slot" if value == "none" => next = Some(None),
                "next_slot" => {
                    let (a, b) = value.split_once("..")?;
                    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
                    if b <= a {
                        return None;
                    }
                    next = Some(Some((Block(a), Block(b))));
                }
                "window_end" => end = Some(Block(value.parse().ok()?)),
                "block" => block = Some(Block(value.parse().ok()?)),
                // Later versions may add keys.
                _ => {}
            }
        }
        Some(SlotRefusal {
            next_slot: next?,
            window_end: end?,
            block: block?,
        })
    }
}

impl std::fmt::Display for SlotRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::PREFIX)?;
        match self.next_slot {
            Some((a, b)) => write!(f, "next_slot={}..{}", a.0, b.0)?,
            None => f.write_str("next_slot=none")?,
        }
        write!(
            f,
            " window_end={} block={}",
            self.window_end.0, self.block.0
        )
    }
}

impl Schedule {
    /// Whether `hotkey` may call at `block`: `Ok` when one of its slots,
    /// widened by `grace` blocks on each side, holds `block`; else the
    /// refusal naming its next slot. A grace absorbs the skew between the
    /// miner's and the validator's view of the chain.
    pub fn admit(
        &self,
        hotkey: &crate::AccountId,
        block: Block,
        grace: u64,
    ) -> Result<(), SlotRefusal> {
        let mine = || self.slots().iter().filter(|s| &s.hotkey == hotkey);
        let inside = |s: &&Slot| {
            s.start.0.saturating_sub(grace) <= block.0 && block.0 < s.end.0.saturating_add(grace)
        };
        if mine().any(|s| inside(&s)) {
            return Ok(());
        }
        Err(SlotRefusal {
            next_slot: mine().find(|s| s.start > block).map(|s| (s.start, s.end)),
            window_end: self.window().end(),
            block,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_a_409_of_the_fixed_form_is_a_slot_refusal() {
        let ok = "Not your slot: next_slot=none window_end=100 block=77";
        assert_eq!(
            SlotRefusal::parse(409, ok),
            Some(SlotRefusal {
                next_slot: None,
                window_end: Block(100),
                block: Block(77),
            })
        );
        for (status, message) in [
            (403, ok),
            (409, "Conflict"),
            (409, "Not your slot: next_slot=9..9 window_end=100 block=1"),
            (409, "Not your slot: next_slot=9..x window_end=100 block=1"),
            (409, "Not your slot: window_end=100 block=1"),
            (409, "Not your slot: next_slot=none block=1"),
            (409, "Not your slot: next_slot=none window_end=-1 block=1"),
            (409, "Not your slot: next_slot=none window_end=100 block"),
        ] {
            assert_eq!(SlotRefusal::parse(status, message), None, "{message}");
        }
        // Keys a later version adds are ignored.
        assert_eq!(
            SlotRefusal::parse(409, &format!("{ok} uid=3")).map(|r| r.not_before()),
            Some(Block(100))
        );
    }

    proptest! {
        #[test]
        fn refusals_round_trip(start in 0u64..u64::MAX, len in 1u64..1000, end in any::<u64>(),
                               block in any::<u64>(), none in any::<bool>()) {
            let r = SlotRefusal {
                next_slot: (!none).then(|| (Block(start), Block(start.saturating_add(len)))),
                window_end: Block(end),
                block: Block(block),
            };
            let r = SlotRefusal { next_slot: r.next_slot.filter(|(a, b)| a < b), ..r };
            prop_assert_eq!(SlotRefusal::parse(409, &r.to_string()), Some(r));
        }

        #[test]
        fn parsing_any_text_never_panics(s in ".*") {
            let _ = SlotRefusal::parse(409, &s);
            let _ = SlotRefusal::parse(409, &format!("Not your slot: {s}"));
        }
    }
}
