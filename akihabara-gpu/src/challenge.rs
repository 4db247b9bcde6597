//! Challenges: the seed and the size of the work.

use std::fmt;
use std::str::FromStr;

use crate::PowError;

/// The largest matrix side for which products are exact: with elements in
/// `[-128, 127]`, a dot product is at most `n * 128 * 128 = n * 2^14` in
/// magnitude, below `2^31` (int32 accumulation) exactly when `n <= 131071`.
pub const MAX_N: u32 = 131_071;

/// Products in one challenge, at most.
pub const MAX_COUNT: u32 = 1 << 16;

/// 32 bytes of fresh validator randomness.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// A fresh seed from the operating system's generator.
    pub fn random() -> Result<Seed, PowError> {
        let mut s = [0u8; 32];
        getrandom_fill(&mut s)?;
        Ok(Seed(s))
    }
}

fn getrandom_fill(out: &mut [u8]) -> Result<(), PowError> {
    getrandom::fill(out).map_err(PowError::NoRandomness)
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({self})")
    }
}

impl FromStr for Seed {
    type Err = PowError;
    /// 64 hex digits, with or without `0x`.
    fn from_str(s: &str) -> Result<Seed, PowError> {
        let h = s.trim();
        let h = h.strip_prefix("0x").unwrap_or(h);
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out).map_err(|e| {
            PowError::Seed(format!(
                "`{s}` is not 64 hex digits ({e}); a seed is 32 bytes of hex"
            ))
        })?;
        Ok(Seed(out))
    }
}

impl serde::Serialize for Seed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Seed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seed, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A challenge: `count` products `C_j = A_j · B_j` of `n × n` matrices
/// generated from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    /// The validator's randomness.
    pub seed: Seed,
    /// Matrix side.
    pub n: u32,
    /// Number of products.
    pub count: u32,
}

impl Challenge {
    /// A checked challenge.
    ///
    /// ```
    /// use akihabara_gpu::{Challenge, Seed};
    /// assert!(Challenge::new(Seed([0; 32]), 0, 1).is_err());
    /// assert!(Challenge::new(Seed([0; 32]), 131_072, 1).is_err()); // beyond exactness
    /// let c = Challenge::new(Seed([0; 32]), 64, 2)?;
    /// assert_eq!(c.leaves(), 128);
    /// # Ok::<(), akihabara_gpu::PowError>(())
    /// ```
    pub fn new(seed: Seed, n: u32, count: u32) -> Result<Challenge, PowError> {
        let c = Challenge { seed, n, count };
        c.check()?;
        Ok(c)
    }

    /// Checks the ranges (for challenges that arrive over the wire).
    pub fn check(&self) -> Result<(), PowError> {
        if self.n == 0 {
            return Err(PowError::Challenge("n must be at least 1".into()));
        }
        if self.n > MAX_N {
            return Err(PowError::Challenge(format!(
                "n = {} is beyond {MAX_N}, the largest size whose int8 products are exact in int32",
                self.n
            )));
        }
        if self.count == 0 {
            return Err(PowError::Challenge("count must be at least 1".into()));
        }
        if self.count > MAX_COUNT {
            return Err(PowError::Challenge(format!(
                "count = {} is more than {MAX_COUNT} products",
                self.count
            )));
        }
        Ok(())
    }

    /// Rows committed to: `count * n`.
    pub fn leaves(&self) -> u64 {
        u64::from(self.count) * u64::from(self.n)
    }

    /// Integer operations of the work: `2 n^3` per product.
    pub fn ops(&self) -> f64 {
        2.0 * f64::from(self.count) * f64::from(self.n).powi(3)
    }

    /// Device bytes one product holds (A and B as int8, C as int32, sides
    /// padded to a multiple of [`PAD`]).
    pub fn bytes_per_product(n: u32) -> u64 {
        let p = u64::from(padded(n));
        p * p * (1 + 1 + 4)
    }

    /// The number of products that keeps all of them resident within
    /// `share` of `memory_bytes` (at least 1).
    ///
    /// ```
    /// use akihabara_gpu::Challenge;
    /// // 80% of an 80 GB card at n = 8192: 402,653,184 bytes a product.
    /// assert_eq!(Challenge::count_for_memory(8192, 80_000_000_000, 0.8), 158);
    /// ```
    pub fn count_for_memory(n: u32, memory_bytes: u64, share: f64) -> u32 {
        let budget = (memory_bytes as f64 * share.clamp(0.0, 1.0)) as u64;
        let per = Challenge::bytes_per_product(n).max(1);
        (budget / per).clamp(1, u64::from(MAX_COUNT)) as u32
    }
}

/// Sides are padded to a multiple of this on the device (tensor-core GEMMs
/// want aligned leading dimensions); padding is zero and never hashed.
pub const PAD: u32 = 16;

/// `n` rounded up to a multiple of [`PAD`].
pub fn padded(n: u32) -> u32 {
    n.div_ceil(PAD) * PAD
}
