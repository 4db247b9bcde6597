//! Identifiers and positions on the chain: [`Block`], [`Uid`], [`Netuid`] and [`Window`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// A block number.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Block(pub u64);

impl Block {
    /// The raw block number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The block `n` blocks later, or `None` past `u64::MAX`.
    pub fn checked_add(self, n: u64) -> Option<Block> {
        self.0.checked_add(n).map(Block)
    }

    /// Blocks from `earlier` to `self` (zero if `earlier` is later).
    pub fn blocks_since(self, earlier: Block) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A neuron's position in a subnet (0..subnet size).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Uid(pub u16);

impl Uid {
    /// The raw uid.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A subnet id.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Netuid(pub u16);

impl Netuid {
    /// The raw netuid.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Netuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A scheduling window: the half-open block range `[start, start + len)`.
///
/// On mainnet a window is `2 * tempo` = 720 blocks. A window is never empty and
/// never runs past `u64::MAX`; [`Window::new`] checks both.
///
/// ```
/// use akihabara_core::{Block, Window};
/// let w = Window::new(Block(7200), 720).unwrap();
/// assert_eq!(w.end(), Block(7920));
/// assert!(w.contains(Block(7919)) && !w.contains(Block(7920)));
/// assert_eq!(Window::containing(Block(7921), 720).unwrap().start, Block(7920));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First block of the window.
    pub start: Block,
    /// Number of blocks in the window (at least 1).
    pub len: u64,
}

/// Why a window is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// `len` was zero.
    #[error("window length must be at least 1 block")]
    Empty,
    /// `start + len` does not fit in a block number.
    #[error("window starting at block {start} with length {len} runs past the last block number")]
    Overflow {
        /// The requested start.
        start: u64,
        /// The requested length.
        len: u64,
    },
}

impl Window {
    /// A window of `len` blocks starting at `start`.
    pub fn new(start: Block, len: u64) -> Result<Window, WindowError> {
        if len == 0 {
            return Err(WindowError::Empty);
        }
        start.checked_add(len).ok_or(WindowError::Overflow {
            start: start.0,
            len,
        })?;
        Ok(Window { start, len })
    }

    /// The window of length `len` (aligned to multiples of `len`) that contains `block`.
    pub fn containing(block: Block, len: u64) -> Result<Window, WindowError> {
        if len == 0 {
            return Err(WindowError::Empty);
        }
        Window::new(Block(block.0 - block.0 % len), len)
    }

    /// One past the last block (exclusive end).
    pub fn end(&self) -> Block {
        // Checked in `new`; saturate for hand-built windows.
        Block(self.start.0.saturating_add(self.len))
    }

    /// Whether `block` lies in `[start, end)`.
    pub fn contains(&self, block: Block) -> bool {
        block >= self.start && block < self.end()
    }

    /// The window right after this one.
    pub fn next(&self) -> Result<Window, WindowError> {
        Window::new(self.end(), self.len)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start.0, self.end().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds() {
        assert_eq!(Window::new(Block(0), 0), Err(WindowError::Empty));
        assert!(Window::new(Block(u64::MAX), 1).is_err());
        assert!(Window::new(Block(u64::MAX - 1), 1).is_ok());
        let w = Window::new(Block(10), 5).unwrap();
        assert_eq!(w.to_string(), "[10, 15)");
        assert_eq!(w.next().unwrap().start, Block(15));
        assert_eq!(Window::containing(Block(14), 5).unwrap().start, Block(10));
        assert_eq!(Window::containing(Block(15), 5).unwrap().start, Block(15));
    }
}
