//! The embedded store: one redb file, no server.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{Put, Store, StoreError};

/// Values are `expiry (u64 big-endian, ms since the Unix epoch; 0 = never) ++ bytes`.
const TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("akihabara");

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A [`Store`] in one [redb](https://docs.rs/redb) file. Each
/// [`put`](Store::put) is one ACID transaction, durable when it returns; a
/// crash leaves the previous state. Expired keys read as absent and are
/// removed by the next write. One process opens a file at a time (redb
/// locks it); a second gets [`StoreError::Open`].
pub struct Embedded {
    db: Database,
    path: PathBuf,
    clock: Clock,
}

impl fmt::Debug for Embedded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.path)
            .finish()
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Embedded {
    /// Opens (creating it and its directory if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Embedded, StoreError> {
        let path = path.as_ref().to_path_buf();
        let fail = |reason: super::Cause| StoreError::Open {
            backend: "embedded",
            at: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
        }
        let db = Database::create(&path).map_err(|e| fail(e.into()))?;
        Ok(Embedded {
            db,
            path,
            clock: Arc::new(SystemTime::now),
        })
    }

    /// Uses `clock` for expiry instead of the system clock (tests, simulations).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> SystemTime + Send + Sync + 'static,
    ) -> Embedded {
        self.clock = Arc::new(clock);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(op: impl Into<String>, e: impl Into<super::Cause>) -> StoreError {
        StoreError::Io {
            backend: "embedded",
            op: op.into(),
            reason: e.into(),
        }
    }
}

impl Store for Embedded {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let op = || format!("get {key}");
        let txn = self.db.begin_read().map_err(|e| Self::io(op(), e))?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(Self::io(op(), e)),
        };
        let Some(v) = table.get(key).map_err(|e| Self::io(op(), e))? else {
            return Ok(None);
        };
        let raw = v.value();
        let (expiry, value) = raw.split_at_checked(8).ok_or_else(|| StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("{} bytes, shorter than its header", raw.len()).into(),
        })?;
        let expiry = u64::from_be_bytes(expiry.try_into().unwrap_or([0; 8]));
        if expiry != 0 && expiry <= millis((self.clock)()) {
            return Ok(None);
        }
        Ok(Some(value.to_vec()))
    }

    fn put(&self, entries: &[Put<'_>]) -> Result<(), StoreError> {
        let op = || format!("write {} keys", entries.len());
        let now = (self.clock)();
        let txn = self.db.begin_write().map_err(|e| Self::io(op(), e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| Self::io(op(), e))?;
            // Drop what has expired, so the file does not grow without bound.
            let now_ms = millis(now);
            table
                .retain(|_, v| {
                    let e = v
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_be_bytes);
                    e == 0 || e > now_ms
                })
                .map_err(|e| Self::io(op(), e))?;
            for p in entries {
                let expiry = p
                    .ttl
                    .map_or(0, |ttl| millis(now + ttl.max(Duration::from_millis(1))));
                let mut buf = Vec::with_capacity(8 + p.value.len());
                buf.extend_from_slice(&expiry.to_be_bytes());
                buf.extend_from_slice(p.value);
                table
                    .insert(p.key, buf.as_slice())
                    .map_err(|e| Self::io(op(), e))?;
            }
        }
        txn.commit().map_err(|e| Self::io(op(), e))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let op = || format!("delete {key}");
        let txn = self.db.begin_write().map_err(|e| Self::io(op(), e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| Self::io(op(), e))?;
            table.remove(key).map_err(|e| Self::io(op(), e))?;
        }
        txn.commit().map_err(|e| Self::io(op(), e))
    }

    fn describe(&self) -> String {
        format!("embedded:{}", self.path.display())
    }
}
