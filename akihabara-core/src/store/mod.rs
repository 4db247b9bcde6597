//! Persistent state for the miner and validator daemons: a small key-value
//! [`Store`] with atomic multi-key writes and per-key expiry, and the typed
//! records kept in it ([`StateKeys`], [`save_schedule`], [`load_schedule`]).
//!
//! Two backends implement it:
//! - [`Embedded`] (feature `store`): a single-file [redb] database that needs
//!   no server. Every write is one ACID transaction, so a crash at any point
//!   leaves the previous state readable.
//! - [`RedisStore`] (feature `redis`): a Redis server. A multi-key write is
//!   one `MULTI`/`EXEC` block; expiry is Redis's own (`PX`).
//!
//! Values are JSON. Keys are prefixed per subnet and hotkey
//! (`akihabara:{netuid}:{hotkey}:…`), so one Redis can hold many daemons.
//! A window's schedule is kept for [`SCHEDULE_TTL`] (7200 s) beside a
//! pointer to the latest window, as the Python compute subnets keep theirs
//! (there as pickles; here as JSON).
//!
//! ```
//! # #[cfg(feature = "store")] {
//! use akihabara_core::store::{Embedded, StateKeys, Store, Put};
//! use akihabara_core::{Netuid, AccountId};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Embedded::open(dir.path().join("state.redb"))?;
//! let hotkey: AccountId = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".parse()?;
//! let keys = StateKeys::new(Netuid(2), &hotkey);
//! store.put(&[Put::new(&keys.scores(), b"{}")])?;
//! assert_eq!(store.get(&keys.scores())?.as_deref(), Some(&b"{}"[..]));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [redb]: https://docs.rs/redb

#[cfg(feature = "store")]
mod embedded;
#[cfg(feature = "redis")]
mod redis;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AccountId, Netuid, Schedule, Window};

#[cfg(feature = "store")]
pub use embedded::Embedded;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

/// How long a window's schedule is kept: 7200 s, as the Python miners keep theirs.
pub const SCHEDULE_TTL: Duration = Duration::from_secs(7200);

/// The cause inside a [`StoreError`]: the backend's own error (redb,
/// redis, serde_json), kept as [`std::error::Error::source`] so callers can
/// inspect it, or a sentence where there is no error value.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A store failure. The message names the backend and, where there is one,
/// the key, and ends with the cause, which [`source`](std::error::Error::source)
/// also returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened or reached (file, permissions, server).
    #[error("cannot open the {backend} store at {at}: {reason}")]
    Open {
        /// `embedded` or `redis`.
        backend: &'static str,
        /// The path or URL (without a password).
        at: String,
        /// The backend's error.
        #[source]
        reason: Cause,
    },
    /// A read or write failed.
    #[error("{backend} store: {op} failed: {reason}")]
    Io {
        /// `embedded` or `redis`.
        backend: &'static str,
        /// What was tried (`get KEY`, `write 2 keys`).
        op: String,
        /// The backend's error.
        #[source]
        reason: Cause,
    },
    /// A stored value is not what it should be.
    #[error("the value stored under {key} is corrupt: {reason}")]
    Corrupt {
        /// The key the value is stored under.
        key: String,
        /// Why it does not decode: the decoder's error, or a sentence.
        #[source]
        reason: Cause,
    },
    /// The backend was not compiled in, or the address is not understood.
    #[error("unsupported store: {0}")]
    Unsupported(String),
}

/// One key written by [`Store::put`].
#[derive(Clone, Copy, Debug)]
pub struct Put<'a> {
    /// The key to write the value under.
    pub key: &'a str,
    /// The value (JSON for every record this crate writes).
    pub value: &'a [u8],
    /// Expiry; `None` keeps the key until it is overwritten or deleted.
    pub ttl: Option<Duration>,
}

impl<'a> Put<'a> {
    /// A write that never expires.
    pub fn new(key: &'a str, value: &'a [u8]) -> Put<'a> {
        Put {
            key,
            value,
            ttl: None,
        }
    }

    /// The same write, expiring after `ttl`.
    pub fn expiring(self, ttl: Duration) -> Put<'a> {
        Put {
            ttl: Some(ttl),
            ..self
        }
    }
}

/// A key-value store with atomic multi-key writes. Object-safe; share it as
/// `Arc<dyn Store>`. Calls block (briefly: a local file or one round trip),
/// so async callers use `spawn_blocking` or accept the short wait.
pub trait Store: Send + Sync + fmt::Debug {
    /// The value under `key`, or `None` when it is absent or expired.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes every entry, all or none.
    fn put(&self, entries: &[Put<'_>]) -> Result<(), StoreError>;
    /// Removes `key` (absent keys are fine).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Where the store lives, for logs and `/health` (no secrets).
    fn describe(&self) -> String;
}

/// `address` with its password hidden, for messages, logs and `/health`:
/// `redis://user:secret@host` → `redis://user:***@host`. In anything else
/// holding an `@` (a mistyped URL such as `redis//user:secret@host`), all
/// of what stands between the last `/` and the `@` is hidden.
///
/// ```
/// use akihabara_core::store::redact;
/// assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
/// assert_eq!(redact("redis//u:pw@h:1/0"), "redis//***@h:1/0");
/// assert_eq!(redact("embedded:/var/lib/state.redb"), "embedded:/var/lib/state.redb");
/// ```
pub fn redact(address: &str) -> String {
    let Some(at) = address.rfind('@') else {
        return address.to_owned();
    };
    if let Some(s) = address.find("://").filter(|&s| s < at) {
        let auth = &address[s + 3..at];
        return match auth.find(':') {
            Some(c) => format!("{}{}:***{}", &address[..s + 3], &auth[..c], &address[at..]),
            None => address.to_owned(),
        };
    }
    let start = address[..at].rfind('/').map_or(0, |i| i + 1);
    format!("{}***{}", &address[..start], &address[at..])
}

/// Checks an address's form without opening it: `redis://…`,
/// `rediss://…`, `embedded:PATH` (any path), or a bare path. A bare path
/// holding `:`, `@` or `//` is refused as a mistyped URL (`redis//u:pw@h`
/// would otherwise become a directory named after the credentials); write
/// `embedded:PATH` to mean such a path. Messages never show a password.
pub fn check_address(address: &str) -> Result<(), StoreError> {
    if address.starts_with("redis://") || address.starts_with("rediss://") {
        return Ok(());
    }
    let usage = "use embedded:PATH or redis://HOST:PORT/DB";
    match address.strip_prefix("embedded:") {
        Some("") => Err(StoreError::Unsupported(format!(
            "\"embedded:\" names no file; {usage}"
        ))),
        Some(path) if path.contains("://") => Err(StoreError::Unsupported(format!(
            "{:?}: a URL is not a path; {usage}",
            redact(address)
        ))),
        Some(_) => Ok(()),
        None if address.is_empty() => Err(StoreError::Unsupported(format!(
            "an empty address; {usage}"
        ))),
        None if address.contains(':') || address.contains('@') || address.contains("//") => {
            Err(StoreError::Unsupported(format!(
                "{:?} looks like a mistyped URL (a bare path with ':', '@' or '//'); \
                 {usage} (embedded:PATH for a file whose path has them)",
                redact(address)
            )))
        }
        None => Ok(()),
    }
}

/// Opens a store from an address: `embedded:PATH` (or a bare path) or
/// `redis://HOST:PORT[/DB]`; see [`check_address`] for what is refused.
pub fn open(address: &str) -> Result<Box<dyn Store>, StoreError> {
    check_address(address)?;
    if address.starts_with("redis://") || address.starts_with("rediss://") {
        #[cfg(feature = "redis")]
        return Ok(Box::new(RedisStore::connect(address)?));
        #[cfg(not(feature = "redis"))]
        return Err(StoreError::Unsupported(
            "this build has no Redis backend (feature `redis`)".into(),
        ));
    }
    #[cfg(feature = "store")]
    return Ok(Box::new(Embedded::open(
        address.strip_prefix("embedded:").unwrap_or(address),
    )?));
    #[cfg(not(feature = "store"))]
    Err(StoreError::Unsupported(
        "this build has no embedded backend (feature `store`)".into(),
    ))
}

/// The keys one daemon writes: `akihabara:{netuid}:{hotkey}:…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateKeys {
    prefix: String,
}

impl StateKeys {
    /// Keys for the daemon with `hotkey` on `netuid`.
    pub fn new(netuid: Netuid, hotkey: &AccountId) -> StateKeys {
        StateKeys {
            prefix: format!("akihabara:{}:{}", netuid.0, hotkey.to_ss58()),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The schedule of the window starting at `start`.
    pub fn schedule(&self, start: u64) -> String {
        format!("{}:schedule:{start}", self.prefix)
    }

    /// The pointer to the latest schedule's window start.
    pub fn schedule_latest(&self) -> String {
        format!("{}:schedule:latest", self.prefix)
    }

    /// A validator's smoothed scores (its EMA).
    pub fn scores(&self) -> String {
        format!("{}:scores", self.prefix)
    }

    /// A validator's last weight submission.
    pub fn weights(&self) -> String {
        format!("{}:weights", self.prefix)
    }

    /// A validator's measurements since its last weights.
    pub fn measurements(&self) -> String {
        format!("{}:measurements", self.prefix)
    }

    /// A validator's probes of miners (specs, jobs ledger, penalties).
    pub fn probes(&self) -> String {
        format!("{}:probes", self.prefix)
    }
}

/// Reads the JSON record under `key`.
pub fn get_json<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                reason: e.into(),
            }),
    }
}

/// Writes `value` as JSON under `key` (no expiry).
pub fn put_json<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<(), StoreError> {
    let bytes = to_json(key, value)?;
    store.put(&[Put::new(key, &bytes)])
}

fn to_json<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("cannot encode: {e}").into(),
    })
}

/// Saves `schedule` for its window (expiring after [`SCHEDULE_TTL`]) and
/// points `latest` at it, in one atomic write.
pub fn save_schedule(
    store: &dyn Store,
    keys: &StateKeys,
    schedule: &Schedule,
) -> Result<(), StoreError> {
    let key = keys.schedule(schedule.window().start.0);
    let bytes = to_json(&key, schedule)?;
    let latest = keys.schedule_latest();
    let pointer = schedule.window().start.0.to_string();
    store.put(&[
        Put::new(&key, &bytes).expiring(SCHEDULE_TTL),
        Put::new(&latest, pointer.as_bytes()).expiring(SCHEDULE_TTL),
    ])
}

/// The saved schedule of `window`, if there is one for exactly that window.
pub fn load_schedule(
    store: &dyn Store,
    keys: &StateKeys,
    window: Window,
) -> Result<Option<Schedule>, StoreError> {
    let key = keys.schedule(window.start.0);
    Ok(get_json::<Schedule>(store, &key)?.filter(|s| s.window() == window))
}

/// The latest saved schedule, following the `latest` pointer.
pub fn latest_schedule(
    store: &dyn Store,
    keys: &StateKeys,
) -> Result<Option<Schedule>, StoreError> {
    let latest = keys.schedule_latest();
    let Some(pointer) = store.get(&latest)? else {
        return Ok(None);
    };
    let start: u64 = std::str::from_utf8(&pointer)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt {
            key: latest.clone(),
            reason: "not a block number".into(),
        })?;
    get_json(store, &keys.schedule(start))
}
