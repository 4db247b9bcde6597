//! Competition-aware allocation by water-filling.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::apportion::{largest_remainder, stake_weights};
use super::{Allocation, AllocationRequest, AllocationStrategy, Proportional, ScheduleError};

/// Maximises the expected reward when validators pay by share of compute.
///
/// A validator `v` with stake `s_v` that receives `o_v` blocks of compute from
/// other miners (its [`competitor_load`](super::Candidate::competitor_load), in
/// blocks of this miner's compute) pays this miner in proportion to its share,
/// so giving it `x_v` blocks earns `s_v * x_v / (x_v + o_v)`. The strategy
/// maximises the sum over validators subject to `sum x_v = len`:
///
/// 1. Served set: everyone when `n * min_blocks <= len`; otherwise the
///    `floor(len / min_blocks)` validators whose minimum allocation is worth
///    most (`s_v * min / (min + o_v)`, ties by stake order). A validator pays
///    only for a positive share, so the floor is at least one block; with
///    `min_blocks = 0`, validators with no stake are not served.
/// 2. Each served validator gets the floor; the rest are water-filled:
///    `x_v = max(min, sqrt(s_v * o_v / λ) - o_v)`, with `λ` solved exactly
///    from the validators sorted by the level at which they rise above the
///    floor (O(n log n), no iteration).
/// 3. Integer rounding: floors, then one block at a time to the largest
///    marginal gain `s_v * o_v / ((x+o_v)(x+1+o_v))`.
///
/// A validator nobody else serves (`o_v = 0`) pays its full stake for any
/// positive share, so it gets exactly the minimum. When no served validator
/// has competition, the blocks beyond the minimums are shared in proportion
/// to stake. When any candidate lacks `competitor_load`, the whole allocation
/// falls back to [`Proportional`] and says so in
/// [`Allocation::notes`](super::Allocation::notes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Emission;

/// f64 key with a total order, for the heap.
#[derive(PartialEq)]
struct Gain(f64, std::cmp::Reverse<usize>);
impl Eq for Gain {}
impl PartialOrd for Gain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Gain {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

fn marginal(s: f64, o: f64, x: u64) -> f64 {
    let x = x as f64;
    s * o / ((x + o) * (x + 1.0 + o))
}

impl AllocationStrategy for Emission {
    fn name(&self) -> &str {
        "emission"
    }

    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, ScheduleError> {
        let cands = req.candidates();
        let missing = cands.iter().filter(|c| c.competitor_load.is_none()).count();
        if missing > 0 {
            let fallback = Proportional.allocate(req)?;
            return Ok(fallback.with_note(format!(
                "emission: {missing} of {} validators have no competitor_load; fell back to proportional",
                cands.len()
            )));
        }
        let len = req.window().len;
        let min = req.min_blocks();
        let n = cands.len();
        let weights = stake_weights(cands);
        let stakes: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
        let loads: Vec<f64> = cands
            .iter()
            .map(|c| c.competitor_load.unwrap_or(0.0))
            .collect();

        // 1. Which validators to serve. A validator pays only for a positive
        // share, so even with `min_blocks = 0` a served validator gets a block.
        let floor = min.max(1);
        let mut served: Vec<usize> = (0..n).collect();
        if u128::from(floor) * n as u128 > u128::from(len) {
            let m = floor as f64;
            let value = |i: usize| stakes[i] * m / (m + loads[i]);
            served.sort_by(|&a, &b| value(b).total_cmp(&value(a)).then(a.cmp(&b)));
            served.truncate((len / floor) as usize);
            served.sort_unstable();
        }
        if min == 0 {
            // Nothing is promised: validators worth nothing get nothing.
            served.retain(|&i| stakes[i] > 0.0);
        }
        if served.is_empty() {
            return Proportional.allocate(req);
        }

        // 2. The floor for everyone served, then water-fill the contested.
        let mut blocks = vec![0u64; n];
        for &i in &served {
            blocks[i] = floor;
        }
        let rest = len - floor * served.len() as u64;
        let contested: Vec<usize> = served
            .iter()
            .copied()
            .filter(|&i| loads[i] > 0.0 && stakes[i] > 0.0)
            .collect();
        if rest == 0 {
            return Ok(Allocation::from_blocks(req, blocks));
        }
        if contested.is_empty() {
            let served_weights: Vec<u64> = served.iter().map(|&i| weights[i]).collect();
            for (k, extra) in largest_remainder(rest, &served_weights)
                .into_iter()
                .enumerate()
            {
                blocks[served[k]] += extra;
            }
            return Ok(Allocation::from_blocks(req, blocks).with_note(
                "emission: no served validator has competition; extra blocks follow stake",
            ));
        }
        // Continuous optimum: x_i = max(floor, w_i * t - o_i) with
        // w_i = sqrt(s_i o_i) and t = 1/sqrt(λ). Validator i is above its
        // floor once t exceeds (floor + o_i) / w_i; with the validators sorted
        // by that threshold, the active set is a prefix and t solves
        // sum over it of (w_i t - o_i) = the blocks left for it.
        let f = floor as f64;
        let mut order: Vec<(f64, usize)> = contested
            .iter()
            .map(|&i| ((f + loads[i]) / (stakes[i] * loads[i]).sqrt(), i))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let target = (rest + floor * contested.len() as u64) as f64;
        let (mut sum_o, mut sum_w, mut t) = (0.0f64, 0.0f64, f64::INFINITY);
        for (j, &(_, i)) in order.iter().enumerate() {
            sum_o += loads[i];
            sum_w += (stakes[i] * loads[i]).sqrt();
            let inactive = (order.len() - j - 1) as f64 * f;
            t = (target - inactive + sum_o) / sum_w;
            if order.get(j + 1).is_none_or(|next| t <= next.0) {
                break;
            }
        }
        let mut given = 0u64;
        for &i in &contested {
            let x = ((stakes[i] * loads[i]).sqrt() * t - loads[i]).max(f);
            // Floors never exceed the optimum's total; clamp against float slack.
            let x = (x.floor() as u64).clamp(floor, floor + (rest - given));
            given += x - floor;
            blocks[i] = x;
        }

        // 3. Hand out what is left by marginal gain.
        let mut left = rest - given;
        let mut heap: BinaryHeap<Gain> = contested
            .iter()
            .map(|&i| {
                Gain(
                    marginal(stakes[i], loads[i], blocks[i]),
                    std::cmp::Reverse(i),
                )
            })
            .collect();
        while left > 0 {
            let Some(Gain(_, std::cmp::Reverse(i))) = heap.pop() else {
                break;
            };
            blocks[i] += 1;
            left -= 1;
            heap.push(Gain(
                marginal(stakes[i], loads[i], blocks[i]),
                std::cmp::Reverse(i),
            ));
        }
        Ok(Allocation::from_blocks(req, blocks))
    }
}
