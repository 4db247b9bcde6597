//! The legacy body hash and the signed message.

use serde_json::Value;
use sha3::{Digest, Sha3_256};

use super::pystr::py_str;
use super::{Envelope, Synapse};

/// `sha3_256(b"").hexdigest()`: the hash of a synapse with no hash fields.
pub const EMPTY_BODY_HASH: &str =
    "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

/// A body hash that cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// A field named in `HASH_FIELDS` is not in the serialized synapse.
    #[error("hash field `{0}` is missing from the synapse")]
    MissingField(String),
    /// The synapse does not serialize to a JSON object.
    #[error("the synapse does not serialize to a JSON object: {0}")]
    NotAnObject(String),
}

fn sha3_hex(data: &[u8]) -> String {
    let mut out = [0u8; 64];
    // 32 bytes always fit 64 hex digits, which are ASCII.
    let _ = hex::encode_to_slice(Sha3_256::digest(data), &mut out);
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// `sha3(concat(sha3(str(v)).hex for v in fields)).hex` over the synapse's
/// JSON object `value` (what Python's `model_dump()` returns).
///
/// ```
/// use akihabara_core::protocol::{body_hash, EMPTY_BODY_HASH};
/// let v = serde_json::json!({"message": "hi", "count": 7});
/// assert_eq!(body_hash(&[], &v)?, EMPTY_BODY_HASH);
/// assert!(body_hash(&["message", "count"], &v)?.starts_with("9244ea91"));
/// # Ok::<(), akihabara_core::protocol::HashError>(())
/// ```
pub fn body_hash(fields: &[&str], value: &Value) -> Result<String, HashError> {
    let Value::Object(map) = value else {
        return Err(HashError::NotAnObject(value.to_string()));
    };
    let mut concat = String::with_capacity(64 * fields.len());
    for field in fields {
        let v = map
            .get(*field)
            .ok_or_else(|| HashError::MissingField((*field).to_owned()))?;
        concat.push_str(&sha3_hex(py_str(v).as_bytes()));
    }
    Ok(sha3_hex(concat.as_bytes()))
}

/// The body hash of a synapse in its envelope.
pub fn synapse_body_hash<S: Synapse>(envelope: &Envelope<S>) -> Result<String, HashError> {
    if S::HASH_FIELDS.is_empty() {
        return Ok(EMPTY_BODY_HASH.to_owned());
    }
    // The synapse's own fields hold the hash fields; serializing only them
    // (not the dendrite and axon records) keeps this cheap on the hot path.
    let own =
        serde_json::to_value(&envelope.body).map_err(|e| HashError::NotAnObject(e.to_string()))?;
    match body_hash(S::HASH_FIELDS, &own) {
        Err(HashError::MissingField(_)) => {
            // A hash field among the base fields (`name`, `timeout`, …).
            let all = serde_json::to_value(envelope)
                .map_err(|e| HashError::NotAnObject(e.to_string()))?;
            body_hash(S::HASH_FIELDS, &all)
        }
        r => r,
    }
}

/// The message a dendrite signs: `{nonce}.{dendrite}.{axon}.{uuid}.{body_hash}`.
pub fn signing_message(
    nonce: u64,
    dendrite_hotkey: &str,
    axon_hotkey: &str,
    uuid: &str,
    body_hash: &str,
) -> String {
    format!("{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}")
}
