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

/// The exact gain of giving a validator one more block: `f(x+1) - f(x)` for
/// `f(x) = s·x/(x+o)`. With no competition the first block earns the whole
/// stake and later blocks nothing.
fn gain(s: f64, o: f64, x: u64) -> f64 {
    if o == 0.0 {
        return if x == 0 { s } else { 0.0 };
    }
    let x = x as f64;
    s * o / ((x + o) * (x + 1.0 + o))
}

/// Continuous water level for the contested validators `idx`: the `t` at
/// which `sum max(floor, sqrt(s·o)·t - o) = budget`. A validator rises above
/// the floor once `t > (floor + o)/sqrt(s·o)`; sorted by that threshold the
/// active set is a prefix, so `t` has a closed form (O(n log n)).
fn water_level(idx: &[usize], stakes: &[f64], loads: &[f64], floor: f64, budget: f64) -> f64 {
    let mut order: Vec<(f64, usize)> = idx
        .iter()
        .map(|&i| ((floor + loads[i]) / (stakes[i] * loads[i]).sqrt(), i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut sum_o, mut sum_w, mut t) = (0.0f64, 0.0f64, 0.0f64);
    for (j, &(_, i)) in order.iter().enumerate() {
        sum_o += loads[i];
        sum_w += (stakes[i] * loads[i]).sqrt();
        let inactive = (order.len() - j - 1) as f64 * floor;
        t = (budget - inactive + sum_o) / sum_w;
        if order.get(j + 1).is_none_or(|next| t <= next.0) {
            break;
        }
    }
    t
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

        // 1. Which validators to serve. With a minimum, everyone when it fits,
        // else those whose minimum is worth most. Without one, every validator
        // with stake is a candidate and the greedy below decides.
        let mut served: Vec<usize> = (0..n).collect();
        if min == 0 {
            served.retain(|&i| stakes[i] > 0.0);
        } else if req.servable() < n {
            let m = min as f64;
            let value = |i: usize| stakes[i] * m / (m + loads[i]);
            served.sort_by(|&a, &b| value(b).total_cmp(&value(a)).then(a.cmp(&b)));
            served.truncate(req.servable());
            served.sort_unstable();
        }
        if served.is_empty() {
            return Proportional.allocate(req);
        }

        // 2. A lower bound on the optimum: the minimum for everyone served,
        // and the floors of the continuous water-filling for the contested,
        // computed with one block held back per uncontested validator.
        let mut blocks = vec![0u64; n];
        for &i in &served {
            blocks[i] = min;
        }
        let contested: Vec<usize> = served
            .iter()
            .copied()
            .filter(|&i| loads[i] > 0.0 && stakes[i] > 0.0)
            .collect();
        let uncontested = served.len() - contested.len();
        let reserve = if min == 0 { uncontested as u64 } else { 0 };
        let mut left = len - min * served.len() as u64;
        let budget = (left.saturating_sub(reserve) + min * contested.len() as u64) as f64;
        if !contested.is_empty() && budget > 0.0 {
            let f = min as f64;
            let t = water_level(&contested, &stakes, &loads, f, budget);
            for &i in &contested {
                let x = ((stakes[i] * loads[i]).sqrt() * t - loads[i]).max(f);
                // Clamp against float slack: never hand out more than is left.
                let extra = (x.floor() as u64).saturating_sub(min).min(left);
                blocks[i] += extra;
                left -= extra;
            }
        }

        // 3. The rest, one block at a time, to the largest exact gain. Each
        // validator's gains only fall, so this greedy is optimal.
        let mut heap: BinaryHeap<Gain> = served
            .iter()
            .map(|&i| Gain(gain(stakes[i], loads[i], blocks[i]), std::cmp::Reverse(i)))
            .collect();
        while left > 0 {
            let Some(Gain(g, std::cmp::Reverse(i))) = heap.pop() else {
                break;
            };
            if g <= 0.0 {
                break;
            }
            blocks[i] += 1;
            left -= 1;
            heap.push(Gain(
                gain(stakes[i], loads[i], blocks[i]),
                std::cmp::Reverse(i),
            ));
        }

        // 4. Blocks no validator pays more for: share them by stake among those
        // served, so nothing is lost or idle.
        if left > 0 {
            let paid: Vec<usize> = served.iter().copied().filter(|&i| blocks[i] > 0).collect();
            let pool = if paid.is_empty() { &served } else { &paid };
            let pool_weights: Vec<u64> = pool.iter().map(|&i| weights[i]).collect();
            for (k, extra) in largest_remainder(left, &pool_weights)
                .into_iter()
                .enumerate()
            {
                blocks[pool[k]] += extra;
            }
            let note = "emission: no validator pays more for the last blocks; they follow stake";
            return Ok(Allocation::from_blocks(req, blocks).with_note(note));
        }
        Ok(Allocation::from_blocks(req, blocks))
    }
}
