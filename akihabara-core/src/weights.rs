//! Weights in on-chain form, computed exactly as the Bittensor SDK does.
//!
//! [`convert_for_emit`] is `bittensor.utils.weight_utils.
//! convert_weights_and_uids_for_emit`: divide by the largest weight, scale to
//! `u16::MAX` with Python's `round` (ties to even), drop the zeros with their
//! uids. [`normalize_max_weight`] is the SDK's `normalize_max_weight` on a
//! float64 array, numpy's pairwise summation included, so the clipped
//! weights match bit for bit. Both are checked against the real SDK in the
//! CLI's tests.
//!
//! Where the SDK would raise (negative, NaN or infinite weights, an empty
//! list, mismatched lengths) these return a [`WeightError`]; duplicate uids,
//! which the SDK would send and the chain refuse, are refused here.

use crate::Uid;

/// Weights as `set_weights` sends them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChainWeights {
    /// Destination uids, in input order, zeros dropped.
    pub uids: Vec<Uid>,
    /// Their weights, the largest at `u16::MAX`.
    pub weights: Vec<u16>,
}

impl ChainWeights {
    /// Whether there is nothing to send (every weight was zero).
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }
}

/// Weights that cannot be sent.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    /// No weights at all.
    #[error("no weights given")]
    Empty,
    /// `uids` and `weights` differ in length.
    #[error("{uids} uids but {weights} weights")]
    LengthMismatch {
        /// Number of uids.
        uids: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A weight below zero.
    #[error("weight {index} is negative ({value}); negative weights cannot exist on chain")]
    Negative {
        /// Its index in the weights given.
        index: usize,
        /// The negative value.
        value: f64,
    },
    /// A NaN or infinite weight.
    #[error("weight {index} is not a finite number ({value})")]
    NotFinite {
        /// Its index in the weights given.
        index: usize,
        /// The value found: NaN or infinite.
        value: f64,
    },
    /// A uid given twice.
    #[error("uid {0} appears more than once; the chain refuses duplicate uids")]
    DuplicateUid(Uid),
    /// A max-weight limit outside `(0, 1]`.
    #[error("max weight limit {0} is not in (0, 1]")]
    BadLimit(f64),
}

fn check(weights: &[f64]) -> Result<(), WeightError> {
    if weights.is_empty() {
        return Err(WeightError::Empty);
    }
    for (index, &value) in weights.iter().enumerate() {
        if !value.is_finite() {
            return Err(WeightError::NotFinite { index, value });
        }
        if value < 0.0 {
            return Err(WeightError::Negative { index, value });
        }
    }
    Ok(())
}

/// `convert_weights_and_uids_for_emit(uids, weights)`.
///
/// ```
/// use akihabara_core::{Uid, weights::convert_for_emit};
/// let w = convert_for_emit(&[Uid(0), Uid(1), Uid(2)], &[0.5, 0.25, 0.0])?;
/// assert_eq!(w.uids, [Uid(0), Uid(1)]);
/// assert_eq!(w.weights, [65535, 32768]); // 32767.5 rounds to even
/// # Ok::<(), akihabara_core::weights::WeightError>(())
/// ```
pub fn convert_for_emit(uids: &[Uid], weights: &[f64]) -> Result<ChainWeights, WeightError> {
    check(weights)?;
    if uids.len() != weights.len() {
        return Err(WeightError::LengthMismatch {
            uids: uids.len(),
            weights: weights.len(),
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(uids.len());
    if let Some(dup) = uids.iter().find(|u| !seen.insert(**u)) {
        return Err(WeightError::DuplicateUid(*dup));
    }
    // Python's `sum` adds left to right; it is 0 only when every weight is.
    let sum: f64 = weights.iter().sum();
    if sum == 0.0 {
        return Ok(ChainWeights::default());
    }
    let max = weights.iter().copied().fold(f64::MIN, f64::max);
    let mut out = ChainWeights::default();
    for (&uid, &w) in uids.iter().zip(weights) {
        let v = (w / max * f64::from(u16::MAX)).round_ties_even();
        if v != 0.0 {
            out.uids.push(uid);
            out.weights.push(v as u16);
        }
    }
    Ok(out)
}

/// numpy's `sum` of a contiguous float64 array: pairwise summation, with
/// eight accumulators in blocks of at most 128.
fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r: [f64; 8] = std::array::from_fn(|j| a[j]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// The SDK's `normalize_max_weight(x, limit)` on float64: weights summing
/// to 1 with none above `limit` (uniform when that is impossible or all are
/// zero).
///
/// ```
/// use akihabara_core::weights::normalize_max_weight;
/// let y = normalize_max_weight(&[1.0, 1.0, 8.0], 0.5)?;
/// assert!(y[2] <= 0.5 + 1e-6 && (y.iter().sum::<f64>() - 1.0).abs() < 1e-9);
/// # Ok::<(), akihabara_core::weights::WeightError>(())
/// ```
pub fn normalize_max_weight(x: &[f64], limit: f64) -> Result<Vec<f64>, WeightError> {
    check(x)?;
    if !(limit > 0.0 && limit <= 1.0) {
        return Err(WeightError::BadLimit(limit));
    }
    const EPSILON: f64 = 1e-7;
    let n = x.len();
    let mut values = x.to_vec();
    values.sort_by(f64::total_cmp);
    if np_sum(x) == 0.0 || n as f64 * limit <= 1.0 {
        return Ok(vec![1.0 / n as f64; n]);
    }
    let vsum = np_sum(&values);
    let estimation: Vec<f64> = values.iter().map(|v| v / vsum).collect();
    if estimation.iter().copied().fold(f64::MIN, f64::max) <= limit {
        let s = np_sum(x);
        return Ok(x.iter().map(|w| w / s).collect());
    }
    // np.cumsum is sequential.
    let mut cumsum = Vec::with_capacity(n);
    let mut acc = 0.0;
    for e in &estimation {
        acc += e;
        cumsum.push(acc);
    }
    let n_values = (0..n)
        .filter(|&i| {
            let estimation_sum = (n - i - 1) as f64 * estimation[i];
            estimation[i] / (estimation_sum + cumsum[i] + EPSILON) < limit
        })
        .count();
    // n_values >= 1: the smallest estimate is below the limit here.
    let last = cumsum[n_values.max(1) - 1];
    let cutoff_scale = (limit * last - EPSILON) / (1.0 - (limit * (n - n_values) as f64));
    let cutoff = cutoff_scale * vsum;
    let clipped: Vec<f64> = x
        .iter()
        .map(|&w| if w > cutoff { cutoff } else { w })
        .collect();
    let s = np_sum(&clipped);
    Ok(clipped.iter().map(|w| w / s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_a_plain_sum_on_exact_values() {
        for n in [0usize, 1, 7, 8, 9, 127, 128, 129, 1000] {
            let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(np_sum(&a), (n * n.saturating_sub(1) / 2) as f64);
        }
    }

    #[test]
    fn bad_weights_are_typed_errors() {
        let u = [Uid(0), Uid(1)];
        assert_eq!(convert_for_emit(&[], &[]), Err(WeightError::Empty));
        assert!(matches!(
            convert_for_emit(&u, &[1.0, -1.0]),
            Err(WeightError::Negative { index: 1, .. })
        ));
        assert!(matches!(
            convert_for_emit(&u, &[f64::NAN, 1.0]),
            Err(WeightError::NotFinite { index: 0, .. })
        ));
        assert!(matches!(
            convert_for_emit(&u, &[f64::INFINITY, 1.0]),
            Err(WeightError::NotFinite { .. })
        ));
        assert!(matches!(
            convert_for_emit(&u, &[1.0]),
            Err(WeightError::LengthMismatch { .. })
        ));
        assert_eq!(
            convert_for_emit(&[Uid(3), Uid(3)], &[1.0, 1.0]),
            Err(WeightError::DuplicateUid(Uid(3)))
        );
        assert_eq!(
            convert_for_emit(&u, &[0.0, 0.0]),
            Ok(ChainWeights::default())
        );
        assert_eq!(
            normalize_max_weight(&[1.0], 0.0),
            Err(WeightError::BadLimit(0.0))
        );
    }
}
