//! The embedded store: one redb file, no server.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Put, Store, StoreError};

/// Values are `expiry (u64 big-endian, ms since the Unix epoch; 0 = never) ++ bytes`.
const TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("akihabara");
/// The keys that expire, in the order they expire: `expiry (u64
/// big-endian) ++ key`, so a write finds what has expired without reading
/// the keys that have not.
const EXPIRING: TableDefinition<'_, &[u8], ()> = TableDefinition::new("akihabara-expiring");
/// Most expired keys one write removes; the rest go with the next writes.
const SWEEP: usize = 1024;

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A [`Store`] in one [redb](https://docs.rs/redb) file. Each
/// [`put`](Store::put) is one ACID transaction, durable when it returns; a
/// crash leaves the previous state. Expired keys read as absent and are
/// removed by the next writes (at most 1,024 each, in the order they
/// expired), without reading the keys that have not expired; the list of
/// expiring keys is rebuilt when the file is opened. One process opens a
/// file at a time (redb locks it); a second gets [`StoreError::Open`].
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
        index_expiring(&db).map_err(fail)?;
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
            let mut expiring = txn.open_table(EXPIRING).map_err(|e| Self::io(op(), e))?;
            // Drop what has expired, so the file does not grow without bound.
            sweep(&mut table, &mut expiring, millis(now)).map_err(|e| Self::io(op(), e))?;
            for p in entries {
                let expiry = p
                    .ttl
                    .map_or(0, |ttl| millis(now + ttl.max(Duration::from_millis(1))));
                let mut buf = Vec::with_capacity(8 + p.value.len());
                buf.extend_from_slice(&expiry.to_be_bytes());
                buf.extend_from_slice(p.value);
                let old = table
                    .insert(p.key, buf.as_slice())
                    .map_err(|e| Self::io(op(), e))?
                    .map(|v| expiry_of(v.value()));
                reindex(&mut expiring, p.key, old, expiry).map_err(|e| Self::io(op(), e))?;
            }
        }
        txn.commit().map_err(|e| Self::io(op(), e))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let op = || format!("delete {key}");
        let txn = self.db.begin_write().map_err(|e| Self::io(op(), e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| Self::io(op(), e))?;
            let mut expiring = txn.open_table(EXPIRING).map_err(|e| Self::io(op(), e))?;
            let old = table
                .remove(key)
                .map_err(|e| Self::io(op(), e))?
                .map(|v| expiry_of(v.value()));
            reindex(&mut expiring, key, old, 0).map_err(|e| Self::io(op(), e))?;
        }
        txn.commit().map_err(|e| Self::io(op(), e))
    }

    fn describe(&self) -> String {
        format!("embedded:{}", self.path.display())
    }
}

/// The expiry in a stored value's header (0, never, for a value too short
/// to have one: `get` reports it as corrupt).
fn expiry_of(raw: &[u8]) -> u64 {
    raw.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The [`EXPIRING`] key of `key` expiring at `expiry`.
fn expiring_key(expiry: u64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&expiry.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// Moves `key` in [`EXPIRING`] from its `old` expiry (if it had a value) to
/// `new` (0: not listed).
fn reindex(
    expiring: &mut redb::Table<'_, &[u8], ()>,
    key: &str,
    old: Option<u64>,
    new: u64,
) -> Result<(), redb::StorageError> {
    match old {
        Some(old) if old == new => return Ok(()),
        Some(old) if old != 0 => {
            expiring.remove(expiring_key(old, key).as_slice())?;
        }
        _ => {}
    }
    if new != 0 {
        expiring.insert(expiring_key(new, key).as_slice(), ())?;
    }
    Ok(())
}

/// Removes up to [`SWEEP`] keys that expired at or before `now_ms`, oldest
/// first.
fn sweep(
    table: &mut redb::Table<'_, &str, &[u8]>,
    expiring: &mut redb::Table<'_, &[u8], ()>,
    now_ms: u64,
) -> Result<(), redb::StorageError> {
    for _ in 0..SWEEP {
        let Some(first) = expiring.first()?.map(|(k, _)| k.value().to_vec()) else {
            break;
        };
        let expiry = expiry_of(&first);
        if expiry > now_ms {
            break;
        }
        expiring.remove(first.as_slice())?;
        // A key the list names is removed only if it still expires then (a
        // listing too short to name a key, from a damaged file, is dropped).
        if let Some(Ok(key)) = first.get(8..).map(std::str::from_utf8) {
            let current = table.get(key)?.map(|v| expiry_of(v.value()));
            if current == Some(expiry) {
                table.remove(key)?;
            }
        }
    }
    Ok(())
}

/// Lists the expiring keys afresh, in one transaction, each time the file
/// is opened: a file from a version before [`EXPIRING`] has no list, and
/// one written by such a version after a newer one had opened it has an
/// incomplete or stale one. The cost is one read of every key per open.
fn index_expiring(db: &Database) -> Result<(), super::Cause> {
    let txn = db.begin_write()?;
    txn.delete_table(EXPIRING)?;
    {
        let mut expiring = txn.open_table(EXPIRING)?;
        let table = txn.open_table(TABLE)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let expiry = expiry_of(v.value());
            if expiry != 0 {
                expiring.insert(expiring_key(expiry, k.value()).as_slice(), ())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A store on a clock the test moves (seconds since the epoch).
    fn store_at(path: &Path, now: &Arc<AtomicU64>) -> Embedded {
        let clock = now.clone();
        Embedded::open(path)
            .expect("open")
            .with_clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst)))
    }

    /// The test's start: 1,000,000 s after the epoch.
    const T0: u64 = 1_000_000;

    /// A new store at `s.redb` in a temporary directory (kept alive by the
    /// caller), on a clock at [`T0`] that the test moves.
    fn fresh() -> (tempfile::TempDir, Arc<AtomicU64>, Embedded) {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Arc::new(AtomicU64::new(T0));
        let store = store_at(&dir.path().join("s.redb"), &now);
        (dir, now, store)
    }

    /// Rows in the data table and in the expiry list.
    fn rows(store: &Embedded) -> (u64, u64) {
        let txn = store.db.begin_read().expect("read");
        let data = txn.open_table(TABLE).map_or(0, |t| t.len().expect("len"));
        let listed = txn
            .open_table(EXPIRING)
            .map_or(0, |t| t.len().expect("len"));
        (data, listed)
    }

    fn put(store: &Embedded, key: &str, ttl_s: Option<u64>) {
        let p = Put::new(key, b"v");
        let p = match ttl_s {
            Some(s) => p.expiring(Duration::from_secs(s)),
            None => p,
        };
        store.put(&[p]).expect("put");
    }

    #[test]
    fn a_write_removes_what_expired_and_keeps_the_rest() {
        let (_dir, now, store) = fresh();
        put(&store, "short", Some(10));
        put(&store, "long", Some(100));
        put(&store, "forever", None);
        // Rewritten with a later expiry: its listing moves with it.
        put(&store, "renewed", Some(10));
        put(&store, "renewed", Some(1000));
        // Rewritten without one: never removed.
        put(&store, "kept", Some(10));
        put(&store, "kept", None);
        // Deleted: no longer listed.
        put(&store, "deleted", Some(10));
        store.delete("deleted").expect("delete");
        assert_eq!(rows(&store), (5, 3), "short, long and renewed are listed");

        now.fetch_add(50, Ordering::SeqCst);
        put(&store, "trigger", None);
        assert_eq!(store.get("short").expect("get"), None);
        assert_eq!(rows(&store), (5, 2), "short removed from both tables");
        for key in ["long", "forever", "renewed", "kept", "trigger"] {
            assert!(store.get(key).expect("get").is_some(), "{key} kept");
        }

        now.fetch_add(10_000, Ordering::SeqCst);
        put(&store, "trigger", None);
        assert_eq!(rows(&store), (3, 0), "forever, kept and trigger remain");
    }

    #[test]
    fn one_write_removes_at_most_a_sweep_of_expired_keys() {
        let (_dir, now, store) = fresh();
        let n = SWEEP + 6;
        let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
        let puts: Vec<Put<'_>> = keys
            .iter()
            .map(|k| Put::new(k, b"v").expiring(Duration::from_secs(5)))
            .collect();
        store.put(&puts).expect("put");
        assert_eq!(rows(&store), (n as u64, n as u64));
        now.fetch_add(5, Ordering::SeqCst);
        put(&store, "a", None);
        assert_eq!(rows(&store), (7, 6), "the oldest SWEEP keys went");
        put(&store, "a", None);
        assert_eq!(rows(&store), (1, 0));
    }

    /// A file written before the expiry list existed: its expiring keys are
    /// listed when it is opened, and expire as any other.
    #[test]
    fn a_file_without_the_expiry_list_gets_one_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.redb");
        for (key, expiry_ms) in [
            ("gone", T0 * 1000 - 1),
            ("later", T0 * 1000 + 60_000),
            ("never", 0),
        ] {
            write_as_old_version(&path, key, expiry_ms);
        }
        let now = Arc::new(AtomicU64::new(T0));
        let store = store_at(&path, &now);
        assert_eq!(rows(&store), (3, 2));
        assert_eq!(store.get("gone").expect("get"), None);
        assert_eq!(
            store.get("later").expect("get").as_deref(),
            Some(&b"old"[..])
        );
        put(&store, "new", None);
        assert_eq!(rows(&store), (3, 1), "gone removed at the first write");
        now.fetch_add(60, Ordering::SeqCst);
        put(&store, "new", None);
        assert_eq!(rows(&store), (2, 0), "later removed once it expired");
        drop(store);
        let store = store_at(&path, &now);
        assert_eq!(rows(&store), (2, 0), "opened again: the same list");
        assert_eq!(
            store.get("never").expect("get").as_deref(),
            Some(&b"old"[..])
        );
    }

    /// Writes `key` expiring at `expiry_ms` straight into the data table, as
    /// a version without the list would.
    fn write_as_old_version(path: &Path, key: &str, expiry_ms: u64) {
        let db = Database::create(path).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(TABLE).expect("table");
            let mut v = expiry_ms.to_be_bytes().to_vec();
            v.extend_from_slice(b"old");
            t.insert(key, v.as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }

    /// A file an older version wrote to after this one had listed its keys:
    /// a key it added and a key it gave another expiry are listed right
    /// when the file is opened again.
    #[test]
    fn the_list_is_rebuilt_at_open_after_an_older_version_wrote() {
        let (dir, now, store) = fresh();
        let path = dir.path().join("s.redb");
        put(&store, "a", Some(10));
        put(&store, "b", Some(10));
        drop(store);
        let ms = T0 * 1000;
        write_as_old_version(&path, "c", ms + 5_000);
        write_as_old_version(&path, "a", ms + 1_000_000);
        let store = store_at(&path, &now);
        assert_eq!(rows(&store), (3, 3));
        now.fetch_add(20, Ordering::SeqCst);
        put(&store, "t", None);
        assert_eq!(store.get("a").expect("get").as_deref(), Some(&b"old"[..]));
        assert_eq!(
            rows(&store),
            (2, 1),
            "b and c removed, a listed at its new expiry"
        );
    }

    /// A listing whose key now expires later (or never) removes only the
    /// listing, not the key.
    #[test]
    fn a_stale_listing_does_not_remove_its_key() {
        let (_dir, now, store) = fresh();
        put(&store, "k", Some(1000));
        put(&store, "n", None);
        {
            let txn = store.db.begin_write().expect("write");
            {
                let mut e = txn.open_table(EXPIRING).expect("table");
                for key in ["k", "n"] {
                    e.insert(expiring_key(T0 * 1000 + 5_000, key).as_slice(), ())
                        .expect("insert");
                }
                // Too short to name a key: dropped, not a panic.
                e.insert(&[0u8; 3][..], ()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        assert_eq!(rows(&store), (2, 4));
        now.fetch_add(10, Ordering::SeqCst);
        put(&store, "t", None);
        for key in ["k", "n"] {
            assert!(store.get(key).expect("get").is_some(), "{key} kept");
        }
        assert_eq!(rows(&store), (3, 1), "only k's true listing is left");
    }
}
