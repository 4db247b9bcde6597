//! Counter-based matrix generation: every element is a pure function of
//! `(seed, matrix, side, row, col)`, so any row can be made without the rest.

use crate::challenge::Seed;

/// Which factor of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The left factor, `A_j`.
    A,
    /// The right factor, `B_j`.
    B,
}

impl Side {
    fn tag(self) -> u8 {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// The blake3 key-derivation context of matrix keys.
pub const MATRIX_KEY_CONTEXT: &str = "akihabara pow v1 matrix key";

/// SplitMix64's output function (Steele, Lea and Flood), a bijection on `u64`.
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The elements of one matrix: `A_j` or `B_j` of a challenge.
///
/// ```
/// use akihabara_gpu::{MatrixGen, Seed, Side};
/// let g = MatrixGen::new(&Seed([7; 32]), 0, Side::A);
/// let mut row = vec![0i8; 20];
/// g.fill_row(3, &mut row);
/// assert_eq!(row[17], g.element(3, 17));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixGen {
    key: u64,
}

impl MatrixGen {
    /// The generator of `side` of product `matrix` under `seed`: its key is
    /// the first 8 bytes (little-endian) of
    /// `blake3::derive_key(MATRIX_KEY_CONTEXT, seed ‖ matrix as u32 LE ‖ side)`
    /// with side 0 for A and 1 for B.
    pub fn new(seed: &Seed, matrix: u32, side: Side) -> MatrixGen {
        let mut material = [0u8; 37];
        material[..32].copy_from_slice(&seed.0);
        material[32..36].copy_from_slice(&matrix.to_le_bytes());
        material[36] = side.tag();
        let k = blake3::derive_key(MATRIX_KEY_CONTEXT, &material);
        let mut key = [0u8; 8];
        key.copy_from_slice(&k[..8]);
        MatrixGen {
            key: u64::from_le_bytes(key),
        }
    }

    /// The 64-bit key (the CUDA kernels take it as a parameter).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Word `w` of row `row`: eight consecutive elements, byte `c % 8` of
    /// `splitmix64(key ^ (row << 32 | c / 8))`.
    #[inline]
    pub fn word(&self, row: u32, w: u32) -> u64 {
        splitmix64(self.key ^ ((u64::from(row) << 32) | u64::from(w)))
    }

    /// Element `(row, col)` as a signed byte.
    #[inline]
    pub fn element(&self, row: u32, col: u32) -> i8 {
        (self.word(row, col / 8) >> (8 * (col % 8))) as u8 as i8
    }

    /// Writes row `row`, columns `0..out.len()`.
    pub fn fill_row(&self, row: u32, out: &mut [i8]) {
        self.fill_range(row, 0, out);
    }

    /// Writes row `row`, columns `col0..col0 + out.len()`; `col0` must be a
    /// multiple of 8 (panics otherwise: callers pass whole words).
    pub fn fill_range(&self, row: u32, col0: u32, out: &mut [i8]) {
        assert!(
            col0.is_multiple_of(8),
            "fill_range starts on a word boundary"
        );
        for (w, chunk) in out.chunks_mut(8).enumerate() {
            let bytes = self.word(row, col0 / 8 + w as u32).to_le_bytes();
            for (o, b) in chunk.iter_mut().zip(bytes) {
                *o = b as i8;
            }
        }
    }
}
