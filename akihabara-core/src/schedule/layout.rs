//! Slot layouts.

use std::fmt;
use std::str::FromStr;

use super::Slot;
use crate::strategy::AllocationEntry;
use crate::{Block, ScheduleError, Window};

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
    ///
    /// The interleaved layout may need a slot per block, so it refuses
    /// windows longer than [`MAX_INTERLEAVED_BLOCKS`] rather than exhaust memory.
    pub fn slots(
        self,
        window: Window,
        entries: &[AllocationEntry],
    ) -> Result<Vec<Slot>, ScheduleError> {
        match self {
            Layout::Contiguous => Ok(contiguous(window, entries)),
            Layout::Interleaved if window.len > MAX_INTERLEAVED_BLOCKS => {
                Err(ScheduleError::WindowTooLongForLayout {
                    layout: self.to_string(),
                    len: window.len,
                    max: MAX_INTERLEAVED_BLOCKS,
                })
            }
            Layout::Interleaved => Ok(interleaved(window, entries)),
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

/// Windows longer than this cannot be interleaved (one slot may be needed per
/// block); use the contiguous layout for them. 2^22 blocks (4,194,304: 64
/// blocks for each of 65,536 validators, or 1.6 years of 12 s blocks) keep the
/// worst case near 200 MiB of slots and 600 MB of `schedule --json`; 2^24
/// took 4.9 GB.
pub const MAX_INTERLEAVED_BLOCKS: u64 = 1 << 22;

/// Calls `f(floor((2k+1) * len / (2 * blocks)))` for `k` in `0..blocks`, by
/// exact integer stepping (no division per block).
fn for_each_bucket(len: u64, blocks: u64, mut f: impl FnMut(usize)) {
    let den = 2 * blocks;
    let (mut q, mut r) = (len / den, len % den);
    let (dq, dr) = ((2 * len) / den, (2 * len) % den);
    for _ in 0..blocks {
        f(q as usize);
        q += dq;
        r += dr;
        if r >= den {
            r -= den;
            q += 1;
        }
    }
}

/// Orders every validator's `k`-th of `n` blocks by its ideal position
/// `(2k+1)/(2n)` of the window, ties by allocation order, exactly.
///
/// A counting sort on `floor((2k+1) * len / (2n))` (monotone in the key and
/// below `len`) does the bulk in O(len + validators); the rare buckets holding
/// more than one block are then sorted by the exact rational key.
fn interleaved(window: Window, entries: &[AllocationEntry]) -> Vec<Slot> {
    let len = window.len;
    debug_assert!(len <= MAX_INTERLEAVED_BLOCKS);
    let mut start = vec![0u32; len as usize + 1];
    for e in entries.iter().filter(|e| e.blocks > 0) {
        for_each_bucket(len, e.blocks, |b| start[b + 1] += 1);
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    // (entry index, k) in bucket order.
    let mut order = vec![(0u32, 0u32); len as usize];
    let mut next = start.clone();
    for (idx, e) in entries.iter().enumerate().filter(|(_, e)| e.blocks > 0) {
        let mut k = 0u32;
        for_each_bucket(len, e.blocks, |b| {
            order[next[b] as usize] = (idx as u32, k);
            next[b] += 1;
            k += 1;
        });
    }
    let key = |&(idx, k): &(u32, u32)| (u64::from(2 * k + 1), entries[idx as usize].blocks, idx);
    for w in start.windows(2) {
        let bucket = &mut order[w[0] as usize..w[1] as usize];
        if bucket.len() > 1 {
            bucket.sort_unstable_by(|a, b| {
                let ((ka, na, ia), (kb, nb, ib)) = (key(a), key(b));
                (ka * nb).cmp(&(kb * na)).then(ia.cmp(&ib))
            });
        }
    }
    let mut slots: Vec<Slot> = Vec::new();
    for (at, &(idx, _)) in (window.start.get()..).zip(&order) {
        let e = &entries[idx as usize];
        match slots.last_mut() {
            Some(last) if last.uid == e.uid => last.end = Block(at + 1),
            _ => slots.push(Slot {
                start: Block(at),
                end: Block(at + 1),
                uid: e.uid,
                hotkey: e.hotkey,
            }),
        }
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Uid;
    use crate::metagraph::tests::hotkey;
    use proptest::prelude::*;

    fn entries(blocks: &[u64]) -> Vec<AllocationEntry> {
        blocks
            .iter()
            .enumerate()
            .map(|(i, &b)| AllocationEntry {
                uid: Uid(i as u16),
                hotkey: hotkey(i as u32),
                blocks: b,
            })
            .collect()
    }

    /// The definition, run slowly: sort every block by `(2k+1)/(2n)`, ties by index.
    fn reference(window: Window, es: &[AllocationEntry]) -> Vec<u16> {
        let mut all: Vec<(u64, u64, usize)> = es
            .iter()
            .enumerate()
            .flat_map(|(i, e)| (0..e.blocks).map(move |k| (2 * k + 1, e.blocks, i)))
            .collect();
        all.sort_by(|a, b| {
            (u128::from(a.0) * u128::from(b.1))
                .cmp(&(u128::from(b.0) * u128::from(a.1)))
                .then(a.2.cmp(&b.2))
        });
        assert_eq!(all.len() as u64, window.len);
        all.iter().map(|x| es[x.2].uid.get()).collect()
    }

    fn expand(slots: &[Slot]) -> Vec<u16> {
        slots
            .iter()
            .flat_map(|s| (0..s.len()).map(move |_| s.uid.get()))
            .collect()
    }

    proptest! {
        #[test]
        fn interleaved_matches_its_definition(blocks in prop::collection::vec(0u64..300, 1..40), start in 0u64..1000) {
            let len: u64 = blocks.iter().sum();
            prop_assume!(len > 0);
            let window = Window::new(Block(start), len).unwrap();
            let es = entries(&blocks);
            let slots = Layout::Interleaved.slots(window, &es).unwrap();
            prop_assert_eq!(expand(&slots), reference(window, &es));
        }
    }

    #[test]
    fn interleaving_spreads_blocks() {
        // 3:1 over 8 blocks: ideal positions 1,3,5,7,9,11 (/12) and 3,9 (/12);
        // ties go to allocation order, so the small validator sits at 2 and 6.
        let window = Window::new(Block(0), 8).unwrap();
        let slots = Layout::Interleaved
            .slots(window, &entries(&[6, 2]))
            .unwrap();
        assert_eq!(expand(&slots), vec![0, 0, 1, 0, 0, 0, 1, 0]);
        // Equal counts alternate.
        let slots = Layout::Interleaved
            .slots(window, &entries(&[4, 4]))
            .unwrap();
        assert_eq!(expand(&slots), vec![0, 1, 0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn huge_windows_are_refused_not_allocated() {
        let window = Window::new(Block(0), MAX_INTERLEAVED_BLOCKS + 1).unwrap();
        let es = entries(&[MAX_INTERLEAVED_BLOCKS + 1]);
        assert!(matches!(
            Layout::Interleaved.slots(window, &es),
            Err(ScheduleError::WindowTooLongForLayout { .. })
        ));
        let contiguous = Layout::Contiguous.slots(window, &es).unwrap();
        assert_eq!(contiguous.len(), 1);
    }
}
