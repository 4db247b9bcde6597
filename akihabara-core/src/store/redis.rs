//! The Redis store.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::{Put, Store, StoreError, redact};

/// Every call is bounded by this (connect, read, write).
const TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] on a Redis server. A multi-key [`put`](Store::put) is one
/// `MULTI`/`EXEC` block, so readers see all of it or none; expiry uses
/// Redis's `PX`. The connection is opened lazily and reopened after a
/// failure, and every call is bounded by a 5 s timeout.
pub struct RedisStore {
    client: ::redis::Client,
    /// The URL without a password, for messages.
    shown: String,
    conn: Mutex<Option<::redis::Connection>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`), checking the server
    /// answers `PING`.
    pub fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let shown = redact(url);
        let fail = |reason: super::Cause| StoreError::Open {
            backend: "redis",
            at: shown.clone(),
            reason,
        };
        let client = ::redis::Client::open(url).map_err(|e| fail(e.into()))?;
        let store = RedisStore {
            client,
            shown: shown.clone(),
            conn: Mutex::new(None),
        };
        store
            .with_conn("PING", |c| ::redis::cmd("PING").query::<String>(c))
            .map_err(|e| fail(e.into()))?;
        Ok(store)
    }

    fn with_conn<T>(
        &self,
        op: &str,
        f: impl Fn(&mut ::redis::Connection) -> ::redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let io = |e: super::Cause| StoreError::Io {
            backend: "redis",
            op: op.to_owned(),
            reason: e,
        };
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // One retry on a fresh connection: the server may have restarted.
        for attempt in 0..2 {
            if guard.is_none() {
                let c = self
                    .client
                    .get_connection_with_timeout(TIMEOUT)
                    .map_err(|e| io(e.into()))?;
                c.set_read_timeout(Some(TIMEOUT))
                    .map_err(|e| io(e.into()))?;
                c.set_write_timeout(Some(TIMEOUT))
                    .map_err(|e| io(e.into()))?;
                *guard = Some(c);
            }
            let Some(conn) = guard.as_mut() else { continue };
            match f(conn) {
                Ok(v) => return Ok(v),
                Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => {
                    *guard = None;
                }
                Err(e) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                        *guard = None;
                    }
                    return Err(io(e.into()));
                }
            }
        }
        Err(io("the connection failed twice".into()))
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_conn(&format!("get {key}"), |c| {
            ::redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(c)
        })
    }

    fn put(&self, entries: &[Put<'_>]) -> Result<(), StoreError> {
        self.with_conn(&format!("write {} keys", entries.len()), |c| {
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            for p in entries {
                let cmd = pipe.cmd("SET").arg(p.key).arg(p.value);
                if let Some(ttl) = p.ttl {
                    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                    cmd.arg("PX").arg(ms);
                }
                cmd.ignore();
            }
            pipe.query::<()>(c)
        })
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with_conn(&format!("delete {key}"), |c| {
            ::redis::cmd("DEL").arg(key).query::<()>(c)
        })
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
