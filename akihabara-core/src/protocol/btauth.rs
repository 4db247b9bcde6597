//! `btauth/1`: the signed-header scheme of bittensor 11 (`bittensor.http_auth`).
//!
//! Any HTTP request proves "sent by hotkey X, to hotkey Y, with exactly this
//! body, recently" with these headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Bittensor-Version` | `1` |
//! | `X-Bittensor-Hotkey` | sender SS58 |
//! | `X-Bittensor-Nonce` | decimal `time_ns` |
//! | `X-Bittensor-Signature` | `0x` + hex sr25519 signature |
//! | `X-Bittensor-Receiver` | receiver SS58 (required by default) |
//! | `X-Bittensor-Crypto` | only for non-sr25519 schemes (refused here) |
//!
//! The signed bytes are [`payload`]: `btauth/1`, the scheme, the uppercase
//! method, the path with query, the lowercase-hex sha256 of the raw body, the
//! nonce, the sender and the receiver (`-` when unbound), joined by `\n`.
//! Verification order, as in Python: header shape, receiver, freshness (10 s
//! back, 2 s ahead), signature, then replay (pairs kept 60 s, written only after
//! the signature verifies).

use std::collections::{HashSet, VecDeque};
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::AccountId;
use crate::wallet::{Keypair, Signature, verify as verify_sig};

/// The protocol line.
pub const PROTOCOL: &str = "btauth/1";
/// `X-Bittensor-Version`.
pub const HEADER_VERSION: &str = "X-Bittensor-Version";
/// `X-Bittensor-Hotkey`.
pub const HEADER_HOTKEY: &str = "X-Bittensor-Hotkey";
/// `X-Bittensor-Receiver`.
pub const HEADER_RECEIVER: &str = "X-Bittensor-Receiver";
/// `X-Bittensor-Nonce`.
pub const HEADER_NONCE: &str = "X-Bittensor-Nonce";
/// `X-Bittensor-Crypto`.
pub const HEADER_CRYPTO: &str = "X-Bittensor-Crypto";
/// `X-Bittensor-Signature`.
pub const HEADER_SIGNATURE: &str = "X-Bittensor-Signature";

/// Why a `btauth/1` request failed. Messages never echo the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BtAuthError {
    /// A header is missing or unparseable.
    #[error("malformed btauth/1 headers: {0}")]
    Malformed(String),
    /// Signed for another (or no) receiver.
    #[error("{0}")]
    WrongReceiver(String),
    /// Outside the freshness window.
    #[error("{0}")]
    Stale(String),
    /// The signature does not verify.
    #[error("signature does not verify against the claimed hotkey")]
    BadSignature,
    /// Seen before inside the window.
    #[error("this nonce was already accepted from this hotkey")]
    Replayed,
}

/// Parsed `btauth/1` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthHeaders {
    /// The sender's hotkey, parsed from `X-Bittensor-Hotkey`.
    pub hotkey: AccountId,
    /// The sender as written (signed verbatim).
    pub hotkey_ss58: String,
    /// `time_ns` nonce.
    pub nonce: u64,
    /// The sr25519 signature from `X-Bittensor-Signature`.
    pub signature: Signature,
    /// The receiver as written, if any.
    pub receiver: Option<String>,
}

/// Whether the headers claim `btauth/1` (an `X-Bittensor-Version` header).
pub fn is_btauth<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> bool {
    headers
        .into_iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(HEADER_VERSION))
}

/// The exact signed bytes.
pub fn payload(
    method: &str,
    path: &str,
    body: &[u8],
    nonce: u64,
    sender: &str,
    receiver: Option<&str>,
) -> Vec<u8> {
    let lines = [
        PROTOCOL.to_owned(),
        "sr25519".to_owned(),
        method.to_ascii_uppercase(),
        path.to_owned(),
        hex::encode(Sha256::digest(body)),
        nonce.to_string(),
        sender.to_owned(),
        receiver.unwrap_or("-").to_owned(),
    ];
    lines.join("\n").into_bytes()
}

/// Signs a request; returns the headers to send with exactly `body`.
pub fn sign(
    keypair: &Keypair,
    method: &str,
    path: &str,
    body: &[u8],
    receiver: Option<&AccountId>,
    nonce: u64,
) -> Vec<(&'static str, String)> {
    let sender = keypair.account().to_ss58();
    let receiver = receiver.map(AccountId::to_ss58);
    let sig = keypair.sign(&payload(
        method,
        path,
        body,
        nonce,
        &sender,
        receiver.as_deref(),
    ));
    let mut out = vec![
        (HEADER_VERSION, "1".to_owned()),
        (HEADER_HOTKEY, sender),
        (HEADER_NONCE, nonce.to_string()),
        (HEADER_SIGNATURE, sig.to_string()),
    ];
    if let Some(r) = receiver {
        out.push((HEADER_RECEIVER, r));
    }
    out
}

fn malformed(s: impl Into<String>) -> BtAuthError {
    BtAuthError::Malformed(s.into())
}

/// Reads the `btauth/1` headers (names case-insensitive; each at most once).
pub fn parse<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<AuthHeaders, BtAuthError> {
    let names = [
        HEADER_VERSION,
        HEADER_HOTKEY,
        HEADER_NONCE,
        HEADER_SIGNATURE,
        HEADER_RECEIVER,
        HEADER_CRYPTO,
    ];
    let mut values: [Option<&str>; 6] = [None; 6];
    for (k, v) in headers {
        let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(k)) else {
            continue;
        };
        if values[i].is_some() {
            return Err(malformed(format!("{} appears more than once", names[i])));
        }
        let v =
            std::str::from_utf8(v).map_err(|_| malformed(format!("{} is not UTF-8", names[i])))?;
        values[i] = Some(v);
    }
    let [version, hotkey, nonce, signature, receiver, crypto] = values;
    if version != Some("1") {
        return Err(malformed(format!(
            "missing or unsupported {HEADER_VERSION} (expected '1')"
        )));
    }
    let hotkey_ss58 = hotkey
        .filter(|h| !h.is_empty())
        .ok_or_else(|| malformed(format!("missing {HEADER_HOTKEY}")))?;
    let nonce = nonce.ok_or_else(|| malformed(format!("missing {HEADER_NONCE}")))?;
    let nonce: u64 = nonce
        .parse()
        .map_err(|_| malformed(format!("{HEADER_NONCE} is not a decimal integer")))?;
    if let Some(c) = crypto
        && c != "sr25519"
    {
        return Err(malformed(format!(
            "unsupported {HEADER_CRYPTO} (only sr25519)"
        )));
    }
    let signature = signature.ok_or_else(|| malformed(format!("missing {HEADER_SIGNATURE}")))?;
    let signature = Signature::from_str(signature)
        .map_err(|_| malformed(format!("{HEADER_SIGNATURE} is not a 64-byte hex signature")))?;
    let hotkey = AccountId::from_ss58_any(hotkey_ss58)
        .map_err(|_| malformed("invalid hotkey address"))?
        .1;
    Ok(AuthHeaders {
        hotkey,
        hotkey_ss58: hotkey_ss58.to_owned(),
        nonce,
        signature,
        receiver: receiver.map(str::to_owned),
    })
}

/// Verification settings (Python's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// How old a nonce may be (10 s).
    pub max_age: Duration,
    /// How far ahead a nonce may be (2 s).
    pub allowed_skew: Duration,
    /// Refuse requests without a receiver (true).
    pub require_receiver: bool,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions {
            max_age: Duration::from_secs(10),
            allowed_skew: Duration::from_secs(2),
            require_receiver: true,
        }
    }
}

/// Checks receiver, freshness and signature (everything but replay, which
/// needs the shared [`ReplayCache`]).
pub fn verify(
    h: &AuthHeaders,
    method: &str,
    path: &str,
    body: &[u8],
    self_hotkey: &AccountId,
    opts: &VerifyOptions,
    now_ns: u64,
) -> Result<(), BtAuthError> {
    check_fresh(h, self_hotkey, opts, now_ns)?;
    verify_signature(h, method, path, body)
}

/// The checks that need no body: receiver binding and freshness. A server
/// runs them before it reads a byte of the body.
pub fn check_fresh(
    h: &AuthHeaders,
    self_hotkey: &AccountId,
    opts: &VerifyOptions,
    now_ns: u64,
) -> Result<(), BtAuthError> {
    match &h.receiver {
        None if opts.require_receiver => {
            return Err(BtAuthError::WrongReceiver(format!(
                "missing {HEADER_RECEIVER}: this server requires receiver-bound requests"
            )));
        }
        None => {}
        Some(r) => {
            let same = AccountId::from_ss58_any(r).is_ok_and(|(_, a)| a == *self_hotkey)
                && *r == self_hotkey.to_ss58();
            if !same {
                return Err(BtAuthError::WrongReceiver(
                    "request was signed for a different receiving hotkey".into(),
                ));
            }
        }
    }
    let max_age = opts.max_age.as_nanos() as u64;
    let skew = opts.allowed_skew.as_nanos() as u64;
    if now_ns > h.nonce && now_ns - h.nonce > max_age {
        return Err(BtAuthError::Stale(format!(
            "nonce is older than the {}s freshness window",
            opts.max_age.as_secs_f64()
        )));
    }
    if h.nonce > now_ns && h.nonce - now_ns > skew {
        return Err(BtAuthError::Stale(format!(
            "nonce is more than {}s in the future",
            opts.allowed_skew.as_secs_f64()
        )));
    }
    Ok(())
}

/// The signature over the request and exactly `body`.
pub fn verify_signature(
    h: &AuthHeaders,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(), BtAuthError> {
    let msg = payload(
        method,
        path,
        body,
        h.nonce,
        &h.hotkey_ss58,
        h.receiver.as_deref(),
    );
    if !verify_sig(&h.hotkey, &msg, &h.signature) {
        return Err(BtAuthError::BadSignature);
    }
    Ok(())
}

/// Accepted `(hotkey, nonce)` pairs, each kept for `retention`, at most
/// `capacity` at once.
///
/// When full, the oldest pair is forgotten rather than every new request
/// refused, and the forgotten nonce raises a floor: a nonce at or below the
/// floor is refused, so nothing forgotten can be replayed. A cache made with
/// [`ReplayCache::started_at`] starts with its floor at that time, so a
/// request captured before a restart is refused after it.
#[derive(Debug)]
pub struct ReplayCache {
    retention_ns: u64,
    capacity: usize,
    floor: u64,
    seen: HashSet<(AccountId, u64)>,
    expiry: VecDeque<(u64, (AccountId, u64))>,
}

impl ReplayCache {
    /// A cache; `retention` must cover `max_age + allowed_skew`.
    pub fn new(retention: Duration, capacity: usize) -> ReplayCache {
        ReplayCache::started_at(retention, capacity, 0)
    }

    /// A cache that refuses nonces at or below `now_ns`, its start.
    pub fn started_at(retention: Duration, capacity: usize, now_ns: u64) -> ReplayCache {
        ReplayCache {
            retention_ns: retention.as_nanos() as u64,
            capacity: capacity.max(1),
            floor: now_ns,
            seen: HashSet::new(),
            expiry: VecDeque::new(),
        }
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some((t, _)) = self.expiry.front()
            && *t <= now_ns
        {
            if let Some((_, key)) = self.expiry.pop_front() {
                self.seen.remove(&key);
            }
        }
    }

    /// Whether the pair would be refused, without recording it (run it before
    /// reading the body).
    pub fn check(&self, hotkey: &AccountId, nonce: u64) -> Result<(), BtAuthError> {
        if nonce <= self.floor {
            return Err(BtAuthError::Stale(
                "nonce predates this server's replay memory (it restarted or forgot older \
                 nonces); sign a new request"
                    .into(),
            ));
        }
        if self.seen.contains(&(*hotkey, nonce)) {
            return Err(BtAuthError::Replayed);
        }
        Ok(())
    }

    /// Records the pair; `Replayed` if it was already there.
    pub fn check_and_store(
        &mut self,
        hotkey: AccountId,
        nonce: u64,
        now_ns: u64,
    ) -> Result<(), BtAuthError> {
        self.expire(now_ns);
        self.check(&hotkey, nonce)?;
        while self.seen.len() >= self.capacity {
            let Some((_, key)) = self.expiry.pop_front() else {
                break;
            };
            self.seen.remove(&key);
            self.floor = self.floor.max(key.1);
        }
        self.seen.insert((hotkey, nonce));
        self.expiry
            .push_back((now_ns + self.retention_ns, (hotkey, nonce)));
        Ok(())
    }

    /// Pairs held now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn pair(uri: &str) -> Keypair {
        Keypair::from_uri(uri).unwrap()
    }

    fn hdrs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a [u8])> {
        v.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    #[test]
    fn sign_then_verify_and_every_check_fires() {
        let alice = pair("//Alice");
        let bob = pair("//Bob");
        let body = br#"{"x":1}"#;
        let signed = sign(&alice, "post", "/Ping?a=1", body, Some(&bob.account()), NOW);
        let h = parse(hdrs(&signed)).unwrap();
        let o = VerifyOptions::default();
        verify(&h, "POST", "/Ping?a=1", body, &bob.account(), &o, NOW + 1).unwrap();
        // Changed body, path or method: bad signature.
        assert_eq!(
            verify(&h, "POST", "/Ping?a=1", b"{}", &bob.account(), &o, NOW),
            Err(BtAuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, "POST", "/Ping", body, &bob.account(), &o, NOW),
            Err(BtAuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, "GET", "/Ping?a=1", body, &bob.account(), &o, NOW),
            Err(BtAuthError::BadSignature)
        );
        // Someone else is not the receiver.
        assert!(matches!(
            verify(&h, "POST", "/Ping?a=1", body, &alice.account(), &o, NOW),
            Err(BtAuthError::WrongReceiver(_))
        ));
        // Freshness both ways.
        assert!(matches!(
            verify(
                &h,
                "POST",
                "/Ping?a=1",
                body,
                &bob.account(),
                &o,
                NOW + 11_000_000_000
            ),
            Err(BtAuthError::Stale(_))
        ));
        assert!(matches!(
            verify(
                &h,
                "POST",
                "/Ping?a=1",
                body,
                &bob.account(),
                &o,
                NOW - 3_000_000_000
            ),
            Err(BtAuthError::Stale(_))
        ));
        // Unbound requests need require_receiver = false.
        let unbound = sign(&alice, "POST", "/Ping", body, None, NOW);
        let h2 = parse(hdrs(&unbound)).unwrap();
        assert!(matches!(
            verify(&h2, "POST", "/Ping", body, &bob.account(), &o, NOW),
            Err(BtAuthError::WrongReceiver(_))
        ));
        let loose = VerifyOptions {
            require_receiver: false,
            ..o
        };
        verify(&h2, "POST", "/Ping", body, &bob.account(), &loose, NOW).unwrap();
    }

    #[test]
    fn shape_errors_are_malformed() {
        let alice = pair("//Alice");
        let good = sign(&alice, "POST", "/", b"", None, NOW);
        for drop in 0..4 {
            let mut v = good.clone();
            v.remove(drop);
            assert!(
                matches!(parse(hdrs(&v)), Err(BtAuthError::Malformed(_))),
                "without {}",
                good[drop].0
            );
        }
        let mut dup = good.clone();
        dup.push((HEADER_NONCE, "1".into()));
        assert!(matches!(parse(hdrs(&dup)), Err(BtAuthError::Malformed(_))));
        let mut ed = good.clone();
        ed.push((HEADER_CRYPTO, "ed25519".into()));
        assert!(matches!(parse(hdrs(&ed)), Err(BtAuthError::Malformed(_))));
        let mut bad_nonce = good;
        bad_nonce[2].1 = "-5".into();
        assert!(matches!(
            parse(hdrs(&bad_nonce)),
            Err(BtAuthError::Malformed(_))
        ));
    }

    #[test]
    fn replay_cache_expires_and_is_bounded() {
        let a = pair("//Alice").account();
        let b = pair("//Bob").account();
        let mut c = ReplayCache::new(Duration::from_secs(60), 2);
        c.check_and_store(a, NOW + 1, NOW).unwrap();
        assert_eq!(
            c.check_and_store(a, NOW + 1, NOW),
            Err(BtAuthError::Replayed)
        );
        c.check_and_store(a, NOW + 2, NOW).unwrap();
        // Issue 23, finding 4: full is not "refuse everyone": the oldest pair
        // is forgotten, and its nonce can no longer be used.
        c.check_and_store(b, NOW + 3, NOW).unwrap();
        assert_eq!(c.len(), 2);
        assert!(matches!(
            c.check_and_store(a, NOW + 1, NOW),
            Err(BtAuthError::Stale(_))
        ));
        c.check_and_store(a, NOW + 4, NOW + 61_000_000_000).unwrap();
        assert_eq!(c.len(), 1);
    }

    /// Issue 23, finding 10: a restarted server refuses what was signed
    /// before it started.
    #[test]
    fn a_restarted_replay_cache_refuses_older_nonces() {
        let a = pair("//Alice").account();
        let c = ReplayCache::started_at(Duration::from_secs(60), 10, NOW);
        assert!(matches!(c.check(&a, NOW - 1), Err(BtAuthError::Stale(_))));
        c.check(&a, NOW + 1).unwrap();
    }
}
