//! Slot layouts.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;

use super::Slot;
use crate::strategy::AllocationEntry;
use crate::types::{Block, Window};

/// How block counts become block ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Layout {
    /// One slot per served validator, in allocation order (the default).
    #[default]
    Contiguous,
    /// Each validator's blocks spread evenly through the window, so a
    /// validator polling every 25 blocks sees steady service. Validator `v`'s
    /// `k`-th block is placed by its ideal time `(k + 1/2) / blocks_v`; ties go
    /// to allocation order. Adjacent blocks for the same validator merge.
    Interleaved,
}

impl Layout {
    /// The names accepted by [`FromStr`].
    pub const NAMES: &'static [&'static str] = &["contiguous", "interleaved"];

    /// Lays `entries` (whose counts sum to `window.len`) over `window`.
    pub fn slots(self, window: Window, entries: &[AllocationEntry]) -> Vec<Slot> {
        match self {
            Layout::Contiguous => contiguous(window, entries),
            Layout::Interleaved => interleaved(window, entries),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Contiguous => "contiguous",
            Layout::Interleaved => "interleaved",
        })
    }
}

/// An unknown layout name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown layout {0:?} (known: contiguous, interleaved)")]
pub struct UnknownLayout(pub String);

impl FromStr for Layout {
    type Err = UnknownLayout;
    fn from_str(s: &str) -> Result<Layout, UnknownLayout> {
        match s {
            "contiguous" => Ok(Layout::Contiguous),
            "interleaved" => Ok(Layout::Interleaved),
            _ => Err(UnknownLayout(s.to_owned())),
        }
    }
}

fn contiguous(window: Window, entries: &[AllocationEntry]) -> Vec<Slot> {
    let mut at = window.start.get();
    entries
        .iter()
        .filter(|e| e.blocks > 0)
        .map(|e| {
            let start = at;
            at += e.blocks;
            Slot {
                start: Block(start),
                end: Block(at),
                uid: e.uid,
                hotkey: e.hotkey,
            }
        })
        .collect()
}

/// The `k`-th block of a validator with `n` blocks, ordered by `(2k+1)/(2n)`.
#[derive(PartialEq, Eq)]
struct Next {
    k: u64,
    n: u64,
    idx: usize,
}

impl Ord for Next {
    fn cmp(&self, o: &Self) -> Ordering {
        // (2k+1)/n  vs  (2k'+1)/n'  without division, exactly.
        let a = u128::from(2 * self.k + 1) * u128::from(o.n);
        let b = u128::from(2 * o.k + 1) * u128::from(self.n);
        a.cmp(&b).then(self.idx.cmp(&o.idx))
    }
}

impl PartialOrd for Next {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

fn interleaved(window: Window, entries: &[AllocationEntry]) -> Vec<Slot> {
    let mut heap: BinaryHeap<Reverse<Next>> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.blocks > 0)
        .map(|(idx, e)| {
            Reverse(Next {
                k: 0,
                n: e.blocks,
                idx,
            })
        })
        .collect();
    let mut slots: Vec<Slot> = Vec::new();
    let mut at = window.start.get();
    while let Some(Reverse(next)) = heap.pop() {
        let e = &entries[next.idx];
        match slots.last_mut() {
            Some(last) if last.uid == e.uid => last.end = Block(at + 1),
            _ => slots.push(Slot {
                start: Block(at),
                end: Block(at + 1),
                uid: e.uid,
                hotkey: e.hotkey,
            }),
        }
        at += 1;
        if next.k + 1 < next.n {
            heap.push(Reverse(Next {
                k: next.k + 1,
                ..next
            }));
        }
    }
    slots
}
