//! Even division.

use super::{Allocation, AllocationRequest, AllocationStrategy, ScheduleError};

/// Splits the window evenly.
///
/// Each of the `n` validators gets `len / n` blocks and the remainder goes one
/// block each to the first validators in descending-stake order. If
/// `len / n < min_blocks`, only the `floor(len / min_blocks)` highest-stake
/// validators are served, evenly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Equal;

impl AllocationStrategy for Equal {
    fn name(&self) -> &str {
        "equal"
    }

    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        let len = req.window().len;
        let n = req.candidates().len();
        let served = req.servable(); // >= 1: min_blocks <= len
        let each = len / served as u64;
        let extra = (len % served as u64) as usize;
        let blocks = (0..n)
            .map(|i| match i {
                i if i < extra => each + 1,
                i if i < served => each,
                _ => 0,
            })
            .collect();
        Ok(Allocation::from_blocks(req, blocks))
    }
}
