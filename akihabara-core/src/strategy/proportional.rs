//! Exact proportional apportionment with a guaranteed minimum.

use super::apportion::{largest_remainder, stake_weights};
use super::{Allocation, AllocationRequest, AllocationStrategy, ScheduleError};

/// Stake-proportional shares with the minimum guaranteed. The recommended default.
///
/// If every validator can get `min_blocks` (`n * min_blocks <= len`), all are
/// served; otherwise the `floor(len / min_blocks)` highest-stake ones are.
/// Among the served, validators whose exact quota `stake / total * len` is
/// below the minimum are raised to it, lowest stake first, and the blocks left
/// are re-apportioned among the others, repeating until every quota clears
/// the minimum. The remaining validators then share their blocks by the
/// largest-remainder method in exact integers.
///
/// Guarantees (each a property test): every served validator gets at least
/// `min_blocks`; a higher-stake validator never gets fewer blocks than a
/// lower-stake one; each unclamped share is within one block of its exact
/// quota of the blocks left for them; the output is deterministic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proportional;

impl AllocationStrategy for Proportional {
    fn name(&self) -> &str {
        "proportional"
    }

    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        let min = req.min_blocks();
        let served = req.servable();
        let weights = stake_weights(&req.candidates()[..served]);
        let mut left = req.window().len;
        let mut total: u64 = weights.iter().sum();
        // Clamp from the lowest stake upwards. Raising a validator to the
        // minimum lowers everyone else's quota, so a validator that fails the
        // test stays failed and one pass from the bottom finds the fixpoint.
        let mut unclamped = served;
        while unclamped > 1 {
            let w = weights[unclamped - 1];
            let below = u128::from(left) * u128::from(w) < u128::from(min) * u128::from(total);
            if !below {
                break;
            }
            left -= min;
            total -= w;
            unclamped -= 1;
        }
        let mut blocks = largest_remainder(left, &weights[..unclamped]);
        blocks.resize(served, min);
        Ok(Allocation::from_blocks(req, blocks))
    }
}
