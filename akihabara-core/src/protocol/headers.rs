//! Request headers of the legacy scheme: writing them (dendrite) and reading
//! them strictly (axon).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::pystr::py_float_repr;
use super::{Envelope, FieldKind, Synapse, TerminalInfo};

/// Headers longer than this are refused before any parsing.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;

/// A header the axon cannot accept (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The same protocol header appears twice.
    #[error("header `{0}` appears more than once")]
    Duplicate(String),
    /// A protocol header is not UTF-8.
    #[error("header `{0}` is not valid UTF-8")]
    NotUtf8(String),
    /// A header the synapse needs is absent.
    #[error("header `{0}` is missing")]
    Missing(String),
    /// A header that does not parse.
    #[error("header `{name}` is invalid: {reason}")]
    BadValue {
        /// Name of the header that does not parse.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
}

fn bad(name: &str, reason: impl Into<String>) -> HeaderError {
    HeaderError::BadValue {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Writes the legacy request headers for `envelope` (Python `to_headers()`,
/// without its `header_size`/`total_size` heuristics, which nobody checks).
pub fn request_headers<S: Synapse>(
    envelope: &Envelope<S>,
    body_hash: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(20);
    out.push(("name".to_owned(), S::NAME.to_owned()));
    if let Some(t) = envelope.timeout {
        out.push(("timeout".to_owned(), py_float_repr(t)));
    }
    if let Some(axon) = &envelope.axon {
        terminal_headers("bt_header_axon_", axon, &mut out);
    }
    if let Some(dendrite) = &envelope.dendrite {
        terminal_headers("bt_header_dendrite_", dendrite, &mut out);
    }
    for (field, kind) in S::REQUIRED_FIELDS {
        out.push((
            format!("bt_header_input_obj_{field}"),
            B64.encode(kind.empty_json()),
        ));
    }
    out.push(("computed_body_hash".to_owned(), body_hash.to_owned()));
    out
}

/// `bt_header_<prefix>_<field>` for every field that is set, values as
/// Python `str()` writes them.
pub fn terminal_headers(prefix: &str, t: &TerminalInfo, out: &mut Vec<(String, String)>) {
    let mut push = |k: &str, v: String| out.push((format!("{prefix}{k}"), v));
    if let Some(v) = t.status_code {
        push("status_code", v.to_string());
    }
    if let Some(v) = &t.status_message {
        push("status_message", v.clone());
    }
    if let Some(v) = t.process_time {
        push("process_time", py_float_repr(v));
    }
    if let Some(v) = &t.ip {
        push("ip", v.clone());
    }
    if let Some(v) = t.port {
        push("port", v.to_string());
    }
    if let Some(v) = t.version {
        push("version", v.to_string());
    }
    if let Some(v) = t.nonce {
        push("nonce", v.to_string());
    }
    if let Some(v) = &t.uuid {
        push("uuid", v.clone());
    }
    if let Some(v) = &t.hotkey {
        push("hotkey", v.clone());
    }
    if let Some(v) = &t.signature {
        push("signature", v.clone());
    }
}

/// What an axon reads from a legacy request's headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestHeaders {
    /// The synapse name from the `name` header; `None` when absent.
    pub name: Option<String>,
    /// `timeout` in seconds: finite and positive when present.
    pub timeout: Option<f64>,
    /// The caller's details, from the `bt_header_dendrite_*` headers.
    pub dendrite: TerminalInfo,
    /// The callee's details, from the `bt_header_axon_*` headers.
    pub axon: TerminalInfo,
    /// The body hash the caller claims, from `computed_body_hash`; `None` when absent.
    pub computed_body_hash: Option<String>,
    /// Field names that came with a `bt_header_input_obj_` header.
    pub input_objs: Vec<String>,
}

impl RequestHeaders {
    /// Reads headers given as `(lowercase name, raw value)` pairs, checking the
    /// `bt_header_input_obj_` headers a Python axon would need for `required`.
    ///
    /// Protocol headers must be UTF-8, unique and well-formed; other headers
    /// are ignored.
    ///
    /// ```
    /// use akihabara_core::protocol::{FieldKind, RequestHeaders, HeaderError};
    /// let h = [("name", &b"Ping"[..]), ("timeout", b"12.0"),
    ///          ("bt_header_dendrite_nonce", b"1700000000000000000"),
    ///          ("bt_header_input_obj_message", b"IiI=")];
    /// let parsed = RequestHeaders::parse(h, &[("message", FieldKind::Str)])?;
    /// assert_eq!(parsed.timeout, Some(12.0));
    /// assert_eq!(parsed.dendrite.nonce, Some(1_700_000_000_000_000_000));
    /// let bad = RequestHeaders::parse([("timeout", &b"-1"[..])], &[]);
    /// assert!(matches!(bad, Err(HeaderError::BadValue { .. })));
    /// # Ok::<(), HeaderError>(())
    /// ```
    pub fn parse<'a, I>(
        headers: I,
        required: &[(&str, FieldKind)],
    ) -> Result<RequestHeaders, HeaderError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut out = RequestHeaders::default();
        let mut seen: Vec<&'a str> = Vec::with_capacity(24);
        for (name, raw) in headers {
            let protocol = name == "name"
                || name == "timeout"
                || name == "computed_body_hash"
                || name.starts_with("bt_header_");
            if !protocol {
                continue;
            }
            if seen.contains(&name) {
                return Err(HeaderError::Duplicate(name.to_owned()));
            }
            seen.push(name);
            if raw.len() > MAX_HEADER_VALUE {
                return Err(bad(name, format!("longer than {MAX_HEADER_VALUE} bytes")));
            }
            let value =
                std::str::from_utf8(raw).map_err(|_| HeaderError::NotUtf8(name.to_owned()))?;
            if name == "name" {
                out.name = Some(value.to_owned());
            } else if name == "timeout" {
                out.timeout = Some(parse_timeout(name, value)?);
            } else if name == "computed_body_hash" {
                out.computed_body_hash = Some(value.to_owned());
            } else if let Some(field) = name.strip_prefix("bt_header_dendrite_") {
                set_terminal(&mut out.dendrite, name, field, value)?;
            } else if let Some(field) = name.strip_prefix("bt_header_axon_") {
                set_terminal(&mut out.axon, name, field, value)?;
            } else if let Some(field) = name.strip_prefix("bt_header_input_obj_") {
                let json = B64
                    .decode(value.trim())
                    .map_err(|e| bad(name, format!("not base64: {e}")))?;
                serde_json::from_slice::<serde::de::IgnoredAny>(&json)
                    .map_err(|e| bad(name, format!("not JSON: {e}")))?;
                out.input_objs.push(field.to_owned());
            }
        }
        for (field, _) in required {
            if !out.input_objs.iter().any(|f| f == field) {
                return Err(HeaderError::Missing(format!("bt_header_input_obj_{field}")));
            }
        }
        Ok(out)
    }
}

fn parse_timeout(name: &str, value: &str) -> Result<f64, HeaderError> {
    let t: f64 = value
        .trim()
        .parse()
        .map_err(|_| bad(name, format!("`{value}` is not a number of seconds")))?;
    if !t.is_finite() || t <= 0.0 {
        return Err(bad(
            name,
            format!("{value} is not a positive, finite number of seconds"),
        ));
    }
    Ok(t)
}

fn parse_int<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, HeaderError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(name, format!("`{value}` is not an integer in range")))
}

fn set_terminal(
    t: &mut TerminalInfo,
    name: &str,
    field: &str,
    value: &str,
) -> Result<(), HeaderError> {
    match field {
        "status_code" => t.status_code = Some(parse_int(name, value)?),
        "status_message" => t.status_message = Some(value.to_owned()),
        "process_time" => {
            t.process_time = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad(name, format!("`{value}` is not a number")))?,
            )
        }
        "ip" => t.ip = Some(value.to_owned()),
        "port" => t.port = Some(parse_int(name, value)?),
        "version" => t.version = Some(parse_int(name, value)?),
        "nonce" => t.nonce = Some(parse_int(name, value)?),
        "uuid" => t.uuid = Some(value.to_owned()),
        "hotkey" => t.hotkey = Some(value.to_owned()),
        "signature" => t.signature = Some(value.to_owned()),
        // Python passes unknown keys to pydantic, which drops them.
        _ => {}
    }
    Ok(())
}
