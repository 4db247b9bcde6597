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

/// `sha3_256(data).hexdigest()`, appended to `out`.
fn push_sha3_hex(out: &mut String, data: &[u8]) {
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits, which are ASCII.
    let _ = hex::encode_to_slice(Sha3_256::digest(data), &mut hex);
    out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
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
        match v {
            // `str(v)` of a string is the string itself: no copy.
            Value::String(s) => push_sha3_hex(&mut concat, s.as_bytes()),
            other => push_sha3_hex(&mut concat, py_str(other).as_bytes()),
        }
    }
    let mut out = String::with_capacity(64);
    push_sha3_hex(&mut out, concat.as_bytes());
    Ok(out)
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
    use std::fmt::Write as _;
    // One allocation of the right size (a u64 has at most 20 digits).
    let mut m = String::with_capacity(
        20 + dendrite_hotkey.len() + axon_hotkey.len() + uuid.len() + body_hash.len() + 4,
    );
    let _ = write!(m, "{nonce}");
    for part in [dendrite_hotkey, axon_hotkey, uuid, body_hash] {
        m.push('.');
        m.push_str(part);
    }
    m
}
