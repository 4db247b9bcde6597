//! Exact integer apportionment, shared by the built-in strategies and
//! available to your own.
//!
//! All quotas are computed as `len * w / W` in `u128`, with weights scaled so
//! that `W <= u64::MAX`: every product then fits in 128 bits and nothing is
//! rounded through floats.

use super::Candidate;

/// Stake weights with a total that fits in `u64`.
///
/// Stakes are shifted right just enough when their sum exceeds `u64::MAX`
/// rao (about 18.4 billion TAO, far beyond the TAO supply), which keeps their
/// order. When every stake is zero, every weight is 1: validators are treated
/// equally instead of dividing by zero.
pub fn stake_weights(cands: &[Candidate]) -> Vec<u64> {
    let total: u128 = cands.iter().map(|c| u128::from(c.stake.get())).sum();
    if total == 0 {
        return vec![1; cands.len()];
    }
    let mut shift = 0u32;
    while (total >> shift) > u128::from(u64::MAX) {
        shift += 1;
    }
    cands.iter().map(|c| c.stake.get() >> shift).collect()
}

/// `floor(len * w / total)` and the remainder, in exact integer arithmetic.
pub(crate) fn quota(len: u64, w: u64, total: u64) -> (u64, u64) {
    debug_assert!(total > 0);
    let num = u128::from(len) * u128::from(w);
    let t = u128::from(total);
    // q <= len because w <= total; r < total.
    ((num / t) as u64, (num % t) as u64)
}

/// Hamilton (largest remainder) apportionment of `len` units by `weights`.
///
/// Every share is `floor` or `ceil` of its exact quota, shares sum to `len`,
/// and leftover units go to the largest remainders, ties to the lower index.
/// With weights in descending order, a larger weight never gets fewer units.
/// Zero total weight divides equally.
///
/// ```
/// use akihabara_core::strategy::apportion::largest_remainder;
/// assert_eq!(largest_remainder(10, &[1, 1, 1]), vec![4, 3, 3]);
/// assert_eq!(largest_remainder(720, &[3, 1]), vec![540, 180]);
/// ```
pub fn largest_remainder(len: u64, weights: &[u64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let total: u64 = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    let ones;
    let (weights, total) = if total == 0 {
        ones = vec![1u64; weights.len()];
        (&ones[..], weights.len() as u64)
    } else {
        (weights, total)
    };
    let mut shares = Vec::with_capacity(weights.len());
    let mut rems = Vec::with_capacity(weights.len());
    let mut given = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let (q, r) = quota(len, w, total);
        shares.push(q);
        rems.push((r, i));
        given += q;
    }
    let leftover = (len - given) as usize; // < weights.len()
    if leftover > 0 {
        // Largest remainder first; ties by lower index (higher stake).
        let by_rem = |a: &(u64, usize), b: &(u64, usize)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        rems.select_nth_unstable_by(leftover - 1, by_rem);
        for &(_, i) in &rems[..leftover] {
            shares[i] += 1;
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hamilton_examples() {
        assert_eq!(largest_remainder(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(largest_remainder(10, &[6, 3, 1]), vec![6, 3, 1]);
        assert_eq!(largest_remainder(7, &[0, 0]), vec![4, 3]);
        assert_eq!(largest_remainder(0, &[5, 5]), vec![0, 0]);
        assert_eq!(largest_remainder(3, &[u64::MAX, 1]), vec![3, 0]);
    }

    proptest! {
        #[test]
        fn hamilton_is_exact(len in 0u64..1_000_000, mut ws in prop::collection::vec(any::<u32>(), 1..50)) {
            ws.sort_unstable_by(|a, b| b.cmp(a));
            let ws: Vec<u64> = ws.into_iter().map(u64::from).collect();
            let shares = largest_remainder(len, &ws);
            prop_assert_eq!(shares.iter().sum::<u64>(), len);
            let total: u128 = ws.iter().map(|&w| u128::from(w)).sum();
            for (s, w) in shares.iter().zip(&ws) {
                if let Some(exact_floor) = (u128::from(len) * u128::from(*w)).checked_div(total) {
                    let exact_floor = exact_floor as u64;
                    prop_assert!(*s == exact_floor || *s == exact_floor + 1);
                }
            }
            for p in shares.windows(2) {
                prop_assert!(p[0] >= p[1], "monotone: {:?}", shares);
            }
        }
    }
}
