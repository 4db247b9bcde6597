//! Encodings: proof files and openings on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::PowError;
use crate::challenge::Challenge;
use crate::merkle::Hash;
use crate::prover::{Opening, Prover, RowRef};

/// The `format` of proof files.
pub const PROOF_FORMAT: &str = "akihabara-pow-proof/1";

/// The largest proof file read: 256 MiB, about 6 million leaves (an H200's
/// worth of side-8192 products is 2.3 million). Larger files are refused
/// before they are read or parsed.
pub const MAX_PROOF_BYTES: u64 = 256 << 20;

/// A commitment with all its leaves, as `akihabara pow prove --out` writes
/// it: enough to check offline that the leaves build the root and that
/// sampled rows hash to their leaves.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofFile {
    /// Always [`PROOF_FORMAT`].
    pub format: String,
    /// What was proved.
    pub challenge: Challenge,
    /// Merkle root, hex.
    pub root: String,
    /// Every leaf, 32 bytes each, concatenated, base64.
    pub leaves: String,
    /// `cpu` or `cuda`.
    pub backend: String,
    /// The device.
    pub device: String,
    /// The prover's own time, milliseconds.
    pub elapsed_ms: f64,
}

impl ProofFile {
    /// The proof of `prover`'s last commitment to `challenge`.
    pub fn new(
        challenge: &Challenge,
        root: &Hash,
        prover: &dyn Prover,
        elapsed_ms: f64,
    ) -> ProofFile {
        ProofFile {
            format: PROOF_FORMAT.into(),
            challenge: *challenge,
            root: hex::encode(root),
            leaves: B64.encode(prover.leaves().concat()),
            backend: prover.backend().into(),
            device: prover.device(),
            elapsed_ms,
        }
    }

    /// Reads a proof file's JSON (at most [`MAX_PROOF_BYTES`]), checking
    /// every field.
    pub fn parse(json: &[u8]) -> Result<ProofFile, PowError> {
        if json.len() as u64 > MAX_PROOF_BYTES {
            return Err(PowError::TooLarge {
                what: "the proof file",
                size: json.len() as u64,
                max: MAX_PROOF_BYTES,
            });
        }
        let p: ProofFile = serde_json::from_slice(json)
            .map_err(|e| PowError::Malformed(format!("not a proof file: {e}")))?;
        if p.format != PROOF_FORMAT {
            return Err(PowError::Malformed(format!(
                "format `{}` is not `{PROOF_FORMAT}`",
                p.format
            )));
        }
        p.challenge.check()?;
        p.root_hash()?;
        let raw_len = p.leaves.len() / 4 * 3;
        if raw_len as u64 > p.challenge.leaves() * 32 + 3 {
            return Err(PowError::Malformed(
                "the leaves are longer than the challenge has rows".into(),
            ));
        }
        Ok(p)
    }

    /// The root.
    pub fn root_hash(&self) -> Result<Hash, PowError> {
        decode_hash(&self.root).map_err(|e| PowError::Malformed(format!("root: {e}")))
    }

    /// The leaves.
    pub fn leaf_hashes(&self) -> Result<Vec<Hash>, PowError> {
        let raw = B64
            .decode(self.leaves.as_bytes())
            .map_err(|e| PowError::Malformed(format!("leaves are not base64: {e}")))?;
        if raw.len() % 32 != 0 {
            return Err(PowError::Malformed(format!(
                "leaves are {} bytes, not a multiple of 32",
                raw.len()
            )));
        }
        Ok(raw
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect())
    }
}

fn decode_hash(s: &str) -> Result<Hash, String> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s.trim_start_matches("0x"), &mut h).map_err(|e| {
        let shown = akihabara_core::protocol::clip_text(s.to_owned(), 80);
        format!("`{shown}` is not 32 bytes of hex: {e}")
    })?;
    Ok(h)
}

/// An opening as it travels in the `PowOpen` synapse: values as base64 of
/// little-endian int32, path as hex strings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WireOpening {
    /// Product index.
    pub matrix: u32,
    /// Row index.
    pub row: u32,
    /// `n` int32 values, little-endian, base64.
    pub values: String,
    /// Sibling hashes, hex.
    pub path: Vec<String>,
}

impl From<&Opening> for WireOpening {
    fn from(o: &Opening) -> WireOpening {
        let mut bytes = Vec::with_capacity(o.values.len() * 4);
        for v in &o.values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        WireOpening {
            matrix: o.at.matrix,
            row: o.at.row,
            values: B64.encode(bytes),
            path: o.path.iter().map(hex::encode).collect(),
        }
    }
}

impl WireOpening {
    /// Decodes, refusing more than `max_values` values or 64 path entries
    /// (a tree of 2^64 leaves) before allocating for them.
    pub fn decode(&self, max_values: usize) -> Result<Opening, PowError> {
        if self.values.len() / 4 * 3 > max_values * 4 + 3 {
            return Err(PowError::Malformed(format!(
                "row {} of product {} has more than {max_values} values",
                self.row, self.matrix
            )));
        }
        if self.path.len() > 64 {
            return Err(PowError::Malformed(format!(
                "a path of {} hashes is longer than any tree's",
                self.path.len()
            )));
        }
        let raw = B64
            .decode(self.values.as_bytes())
            .map_err(|e| PowError::Malformed(format!("values are not base64: {e}")))?;
        if raw.len() % 4 != 0 {
            return Err(PowError::Malformed(format!(
                "values are {} bytes, not whole int32s",
                raw.len()
            )));
        }
        let values = raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let path = self
            .path
            .iter()
            .map(|h| decode_hash(h).map_err(PowError::Malformed))
            .collect::<Result<_, _>>()?;
        Ok(Opening {
            at: RowRef {
                matrix: self.matrix,
                row: self.row,
            },
            values,
            path,
        })
    }
}
