//! The documented Akihabara algorithm.

use super::apportion::{quota, stake_weights};
use super::{Allocation, AllocationRequest, AllocationStrategy, ScheduleError};

/// The reference Akihabara miner's algorithm, made exact.
///
/// Validators in descending stake (ties by uid) each get
/// `max(floor(stake / total * len), min_blocks)`, capped by the blocks that
/// remain; once fewer than `min_blocks` remain, the rest get nothing; any
/// blocks still unassigned go to the last validator that received blocks.
///
/// Unlike the Python original, the share is computed in exact integers, the
/// leftover is never lost or scheduled past the window, and zero total stake
/// treats validators equally instead of dividing by zero. Every served
/// validator gets at least `min_blocks`, but a few large validators can use up
/// the window before smaller ones are reached: use
/// [`Proportional`](super::Proportional) when every validator must be served.
///
/// ```
/// use akihabara_core::strategy::{AllocationRequest, AllocationStrategy, Candidate, Stake};
/// use akihabara_core::{Block, Rao, Uid, Window, AccountId};
/// let hk = |i: u8| AccountId::from_bytes([i; 32]);
/// let cands = vec![
///     Candidate::new(Uid(0), hk(0), Rao(700)),
///     Candidate::new(Uid(1), hk(1), Rao(290)),
///     Candidate::new(Uid(2), hk(2), Rao(10)),
/// ];
/// let req = AllocationRequest::new(Window::new(Block(0), 100).unwrap(), 20, cands).unwrap();
/// let blocks: Vec<u64> = Stake.allocate(&req).unwrap().entries.iter().map(|e| e.blocks).collect();
/// // 70 + 29 = 99; 1 block remains (< 20): it goes to uid 1, the last served.
/// assert_eq!(blocks, vec![70, 30, 0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Stake;

impl AllocationStrategy for Stake {
    fn name(&self) -> &str {
        "stake"
    }

    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        let len = req.window().len;
        let min = req.min_blocks();
        let weights = stake_weights(req.candidates());
        let total: u64 = weights.iter().sum();
        let mut blocks = vec![0u64; weights.len()];
        let mut remaining = len;
        let mut last_served = None;
        for (i, &w) in weights.iter().enumerate() {
            if remaining < min {
                break;
            }
            let (share, _) = quota(len, w, total);
            let b = share.max(min).min(remaining);
            blocks[i] = b;
            remaining -= b;
            if b > 0 {
                last_served = Some(i);
            }
        }
        if remaining > 0 {
            // Only with min_blocks = 0 can nobody have been served; then the
            // highest-stake validator takes the window.
            blocks[last_served.unwrap_or(0)] += remaining;
        }
        Ok(Allocation::from_blocks(req, blocks))
    }
}
