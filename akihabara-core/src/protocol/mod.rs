//! The Bittensor axon/dendrite wire protocol, without any networking.
//!
//! This module holds everything a peer must agree on byte for byte: the
//! [`Synapse`] trait and its JSON [`Envelope`], the legacy body hash (with
//! Python `str()` rendering, see [`pystr`]), the request headers, the signed
//! message, a bounded [`NonceStore`], and the `btauth/1` signed-header scheme of
//! bittensor 11 ([`btauth`]). The axon server and dendrite client (feature
//! `net`) are built on it; fuzz targets reach it without tokio.
//!
//! # The legacy scheme (bittensor 6.0 – 10.5)
//!
//! A call is `POST /<Name>` with the synapse's JSON (the [`Envelope`]) as the
//! body and these headers:
//!
//! | header | value |
//! |---|---|
//! | `name`, `timeout` | route name; seconds as Python `str(float)` |
//! | `bt_header_axon_{ip,port,hotkey}` | the target as the caller knows it |
//! | `bt_header_dendrite_{ip,version,nonce,uuid,hotkey,signature}` | the caller |
//! | `bt_header_input_obj_<field>` | base64 JSON of an empty value, per field without default |
//! | `computed_body_hash` | [`body_hash`] |
//!
//! The caller signs [`signing_message`] —
//! `{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}` — with its
//! sr25519 hotkey. The axon verifies with *its own* hotkey in the axon slot.
//!
//! # Where akihabara's axon is stricter than the Python one
//!
//! | case | Python axon | akihabara |
//! |---|---|---|
//! | malformed, missing or duplicate header | 500 | 400 with the header named |
//! | body is not JSON of the synapse | 500 | 400 |
//! | body hash mismatch | 500 | 400 |
//! | nonce far in the future | accepted | 401 beyond the configured skew |
//! | calls from one dendrite overtaking each other | 401 for the late ones | accepted once within a 2 s reorder window |
//! | dendrite version < 7.2.0 | no freshness check | freshness always checked |
//! | nonce memory | grows forever | pruned by time, bounded in size |
//! | timeout header | any float | must be finite and > 0; capped by the server |
//! | body size, rate, concurrency | unbounded | 413, 429, 503 / 408 |
//! | `PowChallenge` outside the caller's slot (a miner's schedule) | no such check | 409 `Not your slot: next_slot=START..END …` ([`SlotRefusal`](crate::schedule::SlotRefusal)) |
//!
//! Every other status and message (404, 403 `Forbidden. Key is blacklisted:
//! …`, 401 `Not Verified with error: …`, 408, 200 bodies) matches bittensor
//! 10.5, which the interop tests check against the real package.

pub mod btauth;
mod builtin;
mod hash;
pub mod headers;
mod nonce;
pub mod pystr;

pub use builtin::{GpuInfo, Ping, SpecsQuery, host_specs, nvidia_smi_gpus};
pub use hash::{EMPTY_BODY_HASH, HashError, body_hash, signing_message, synapse_body_hash};
pub use headers::{HeaderError, RequestHeaders};
pub use nonce::{MAX_UUID_LEN, MAX_UUIDS_PER_HOTKEY, NonceError, NoncePolicy, NonceStore};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version akihabara announces in `bt_header_dendrite_version`:
/// the wire format of bittensor 10.5.0 (major·10⁶ + minor·10³ + patch).
pub const PROTOCOL_VERSION: u64 = 10_005_000;

/// Nanoseconds since the Unix epoch (`time.time_ns()`): the nonce clock.
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The first version whose nonces are wall-clock `time_ns` (7.2.0).
pub const V_7_2_0: u64 = 7_002_000;

/// A request/response type carried over the axon/dendrite protocol.
///
/// Implement it on a plain serde struct holding the synapse's own fields (the
/// common fields live in [`Envelope`]). No derive macro is needed:
///
/// ```
/// use akihabara_core::protocol::{FieldKind, Synapse};
/// use serde::{Deserialize, Serialize};
///
/// /// Python: `class Square(bt.Synapse): x: int; y: Optional[int] = None`
/// /// with `required_hash_fields = ("x",)`.
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Square {
///     x: i64,
///     #[serde(default)]
///     y: Option<i64>,
/// }
///
/// impl Synapse for Square {
///     const NAME: &'static str = "Square";
///     const HASH_FIELDS: &'static [&'static str] = &["x"];
///     const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[("x", FieldKind::Int)];
/// }
/// ```
///
/// Field order matters when a hash field is a nested object: serialize fields
/// in the order the Python class declares them. Do not use
/// `#[serde(deny_unknown_fields)]`: the envelope's fields sit beside yours.
/// For the same reason, do not name a field as an envelope field (`name`,
/// `timeout`, `total_size`, `header_size`, `dendrite`, `axon`,
/// `computed_body_hash`; Python's `Synapse` reserves them too), and do not
/// catch the remaining fields with a `#[serde(flatten)]` map: a body is read
/// once for the envelope and once for the synapse ([`parse_body`]), and
/// such a field would see the envelope's values.
pub trait Synapse: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The Python class name: the HTTP route and the `name` field.
    const NAME: &'static str;
    /// The class variable `required_hash_fields`, in order.
    const HASH_FIELDS: &'static [&'static str] = &[];
    /// Fields declared without a default in Python, with their types; each
    /// becomes a `bt_header_input_obj_<field>` header, without which a Python
    /// axon cannot rebuild the synapse from headers.
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[];
    /// Largest answer a dendrite reads for this synapse (422 beyond). Keep
    /// it near what an honest axon sends: a peer's answer is parsed, and
    /// parsing can take several times its size.
    const MAX_ANSWER_BYTES: usize = DEFAULT_MAX_ANSWER_BYTES;
}

/// [`Synapse::MAX_ANSWER_BYTES`] unless a synapse names less: 16 MiB.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 << 20;

/// The Python type of a required field, for its `bt_header_input_obj_` header
/// (base64 of the JSON of the type's empty value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `str` → `""`
    Str,
    /// `int` → `0`
    Int,
    /// `float` → `0.0`
    Float,
    /// `bool` → `false`
    Bool,
    /// `list` → `[]`
    List,
    /// `dict` → `{}`
    Dict,
}

impl FieldKind {
    /// The JSON Python's `json.dumps(type())` produces.
    pub fn empty_json(self) -> &'static str {
        match self {
            FieldKind::Str => "\"\"",
            FieldKind::Int => "0",
            FieldKind::Float => "0.0",
            FieldKind::Bool => "false",
            FieldKind::List => "[]",
            FieldKind::Dict => "{}",
        }
    }
}

/// One side of a call as the `dendrite` and `axon` fields describe it
/// (Python `TerminalInfo`; every field optional, serialized as `null`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TerminalInfo {
    /// HTTP status of the call.
    pub status_code: Option<i64>,
    /// Reason or `Success`.
    pub status_message: Option<String>,
    /// Seconds spent on this side.
    pub process_time: Option<f64>,
    /// IP address of this side, as text.
    pub ip: Option<String>,
    /// TCP port of this side.
    pub port: Option<i64>,
    /// Protocol version as an integer ([`PROTOCOL_VERSION`]).
    pub version: Option<i64>,
    /// `time_ns` nonce.
    pub nonce: Option<u64>,
    /// Per-client identifier; nonces are tracked per hotkey and uuid.
    pub uuid: Option<String>,
    /// SS58 hotkey.
    pub hotkey: Option<String>,
    /// `0x`-hex sr25519 signature.
    pub signature: Option<String>,
}

/// The JSON body of a call: the Python `Synapse` base fields, then the
/// synapse's own fields (`body`), flattened into one object in that order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<S> {
    /// The synapse name; the axon routes on it.
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds the caller waits.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Python size heuristic; carried, never trusted.
    #[serde(default)]
    pub total_size: Option<i64>,
    /// Python size heuristic; carried, never trusted.
    #[serde(default)]
    pub header_size: Option<i64>,
    /// The caller's details (the dendrite's side).
    #[serde(default)]
    pub dendrite: Option<TerminalInfo>,
    /// The callee's details (the axon's side).
    #[serde(default)]
    pub axon: Option<TerminalInfo>,
    /// The body hash the caller computed.
    #[serde(default)]
    pub computed_body_hash: Option<String>,
    /// The synapse's own fields.
    #[serde(flatten)]
    pub body: S,
}

impl<S: Synapse> Envelope<S> {
    /// A fresh envelope around `body`, as a Python `S(...)` would start.
    pub fn new(body: S) -> Envelope<S> {
        Envelope {
            name: Some(S::NAME.to_owned()),
            timeout: Some(12.0),
            total_size: Some(0),
            header_size: Some(0),
            dendrite: Some(TerminalInfo::default()),
            axon: Some(TerminalInfo::default()),
            computed_body_hash: Some(String::new()),
            body,
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…`
/// marking a cut: how free text from a peer (a status message, a reason)
/// is kept, so that a peer cannot make us store or log megabytes.
///
/// ```
/// use akihabara_core::protocol::clip_text;
/// assert_eq!(clip_text("short".into(), 8), "short");
/// assert_eq!(clip_text("ééééé".into(), 8), "éé…");
/// assert!(clip_text("x".repeat(1 << 20), 512).len() <= 512);
/// assert_eq!(clip_text("abcd".into(), 2), "ab");
/// assert_eq!(clip_text("abcd".into(), 0), "");
/// ```
pub fn clip_text(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    // No room for the mark: a plain cut.
    let mark = if max >= '…'.len_utf8() { "…" } else { "" };
    let mut end = max - mark.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(mark);
    text
}

/// A body that could not be read as a synapse.
#[derive(Debug, thiserror::Error)]
#[error("the body is not a valid {name} synapse: {reason}")]
pub struct BodyError {
    /// The synapse name.
    pub name: &'static str,
    /// What serde said.
    pub reason: String,
}

/// The envelope's own fields, read with the synapse's fields skipped.
#[derive(Deserialize)]
struct Base {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    total_size: Option<i64>,
    #[serde(default)]
    header_size: Option<i64>,
    #[serde(default)]
    dendrite: Option<TerminalInfo>,
    #[serde(default)]
    axon: Option<TerminalInfo>,
    #[serde(default)]
    computed_body_hash: Option<String>,
}

/// Parses a request or response body (a JSON object) as `Envelope<S>`.
///
/// In two passes over the bytes, the envelope's fields and then the
/// synapse's, each skipping the other's unread. `Envelope`'s derived
/// `Deserialize` (serde's `flatten`) first copies every field it does not
/// know into a generic tree, 32 bytes or more per value: a peer's 16 MiB
/// array of zeros took hundreds of MiB before any typed check.
pub fn parse_body<S: Synapse>(body: &[u8]) -> Result<Envelope<S>, BodyError> {
    let bad = |reason: String| BodyError {
        name: S::NAME,
        reason,
    };
    // serde's derived structs also read arrays, by position.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad("not a JSON object".into()));
    }
    let base: Base = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let synapse: S = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    Ok(Envelope {
        name: base.name,
        timeout: base.timeout,
        total_size: base.total_size,
        header_size: base.header_size,
        dendrite: base.dendrite,
        axon: base.axon,
        computed_body_hash: base.computed_body_hash,
        body: synapse,
    })
}

#[cfg(test)]
mod tests;
