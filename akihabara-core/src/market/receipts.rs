//! Signed receipts in a crash-safe JSON-lines file, bounded on disk and read
//! back in bounded memory.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::jobs::Receipt;
use crate::fs::{Access, write_atomic};

/// Size at which the miner's [`ReceiptStore`] rotates (about 50,000
/// receipts; see [`ReceiptStore::with_max_bytes`]).
pub const MAX_RECEIPTS_FILE: u64 = 32 << 20;
/// Jobs whose receipts [`ReceiptStore::append_first`] remembers.
pub const MAX_REMEMBERED_RECEIPTS: usize = 8192;
/// Different receipts [`ReceiptStore::append_first`] keeps per miner and job
/// (an `Accepted`, a `Finished`, and room for a miner's conflicting ones).
pub const MAX_RECEIPTS_PER_JOB: usize = 4;
/// Longest line read back as a receipt; a longer one is unreadable (a
/// receipt line is under 2 KiB).
pub const MAX_RECEIPT_LINE: usize = 64 * 1024;

/// Receipts appended to a JSON-lines file, each line synced before
/// `append` returns. A crash can tear only the last line; [`ReceiptStore::scan`]
/// skips it and says so, and keeps every complete line before it.
///
/// A store made with [`ReceiptStore::new`] keeps every receipt (a
/// validator's record of its own jobs, appended with
/// [`append_first`](ReceiptStore::append_first): one per miner, job and
/// kind). One with a size bound
/// ([`with_max_bytes`](ReceiptStore::with_max_bytes): the miner's, whose
/// growth validators drive) rotates before an append would take the file
/// past it: the whole file becomes `<name>.1` (replacing the one before)
/// and the file keeps only its newer half. The newest receipts are always in
/// the file, [`scan_all`](ReceiptStore::scan_all) reads both generations,
/// and the disk holds at most about two and a half bounds. Both steps are
/// crash-safe: a crash between them leaves every receipt in place. Appends
/// of one store are serialized; one process should write a bounded store.
#[derive(Debug)]
pub struct ReceiptStore {
    path: PathBuf,
    max_bytes: Option<u64>,
    /// Appends and rotations of this store, one at a time.
    lock: Arc<Mutex<()>>,
    /// What [`ReceiptStore::append_first`] appended lately.
    kept: Arc<Mutex<Kept>>,
}

/// A receipt's job: its miner and job id.
type KeptJob = (crate::AccountId, String);

/// For the newest [`MAX_REMEMBERED_RECEIPTS`] jobs (oldest first in
/// `order`), the SHA-256 of each different attestation kept (the kind, without
/// the time and the signature).
#[derive(Debug, Default)]
struct Kept {
    jobs: HashMap<KeptJob, Vec<[u8; 32]>>,
    order: VecDeque<KeptJob>,
}

/// What [`ReceiptStore::load`] found.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    /// Receipts whose signatures verify.
    pub receipts: Vec<Receipt>,
    /// Lines that were not receipts (a torn last line after a crash).
    pub unreadable: usize,
    /// Receipts whose signatures do not verify (dropped).
    pub forged: usize,
    /// Receipts stored more than once (kept once; a validator that asks
    /// again stores the same receipt again).
    pub duplicates: usize,
}

/// What [`ReceiptStore::scan`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Receipts whose signatures verify (each handed on).
    pub receipts: usize,
    /// Lines that were not receipts: a torn last line after a crash, or a
    /// line longer than [`MAX_RECEIPT_LINE`].
    pub unreadable: usize,
    /// Receipts whose signatures do not verify (dropped).
    pub forged: usize,
}

/// A receipt as one line of the store, newline included.
fn receipt_line(r: &Receipt) -> std::io::Result<String> {
    let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    line.push('\n');
    Ok(line)
}

/// Appends `line` to `path` and syncs it, first rotating the file when the
/// line would take it past `max_bytes`. One write of the whole line: a crash
/// leaves it whole or torn at the end, never interleaved, and the next
/// append starts on a line of its own. A failed rotation fails the append
/// before anything is written.
fn append_line(
    path: &Path,
    line: &str,
    max_bytes: Option<u64>,
    lock: &Mutex<()>,
) -> std::io::Result<()> {
    let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(max) = max_bytes {
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if len > 0 && len + line.len() as u64 > max {
            rotate(path, max / 2).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "rotating {} to {}: {e}",
                        path.display(),
                        previous(path).display()
                    ),
                )
            })?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // A line torn by a crash is closed first: the new one must not join it.
    let len = f.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
    }
    if last[0] != b'\n' {
        f.write_all(format!("\n{line}").as_bytes())?;
    } else {
        f.write_all(line.as_bytes())?;
    }
    f.sync_data()
}

/// The store's previous generation: `<path>.1`.
fn previous(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".1");
    path.with_file_name(name)
}

/// Moves the whole file to `<path>.1` and keeps the whole lines of its last
/// `keep` bytes. The old file is linked there first and the new one
/// renamed over it, so a crash at any step leaves every receipt in `path`
/// or in both.
fn rotate(path: &Path, keep: u64) -> std::io::Result<()> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // The first byte kept, and the one before it: the tail starts after a
    // newline, at a whole line.
    let start = len.saturating_sub(keep);
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::with_capacity(usize::try_from(len - from).unwrap_or(0));
    f.take(len - from).read_to_end(&mut tail)?;
    if start > 0 {
        let whole = tail
            .iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |i| i + 1);
        tail.drain(..whole);
    }
    let old = previous(path);
    match std::fs::remove_file(&old) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::hard_link(path, &old)?;
    write_atomic(path, &tail, Access::Shared)
}

/// Reads past the end of the current line.
fn skip_line(r: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

impl ReceiptStore {
    /// A store at `path` (created on first append) that keeps every
    /// receipt.
    pub fn new(path: impl Into<PathBuf>) -> ReceiptStore {
        ReceiptStore {
            path: path.into(),
            max_bytes: None,
            lock: Arc::default(),
            kept: Arc::default(),
        }
    }

    /// The same store, rotating before an append would take the file past
    /// `max_bytes` (the miner's: [`MAX_RECEIPTS_FILE`]).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> ReceiptStore {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The previous generation, where a rotation moved the older receipts.
    pub fn previous_path(&self) -> PathBuf {
        previous(&self.path)
    }

    /// Appends one receipt and syncs it to disk.
    pub fn append(&self, r: &Receipt) -> std::io::Result<()> {
        append_line(&self.path, &receipt_line(r)?, self.max_bytes, &self.lock)
    }

    /// Appends `r` unless this store has already appended the same
    /// attestation (its kind and contents, whatever its time and signature)
    /// from the same miner for the same job, or [`MAX_RECEIPTS_PER_JOB`]
    /// different ones; remembers the last [`MAX_REMEMBERED_RECEIPTS`] jobs.
    /// Returns whether it appended. A validator keeps a miner's receipts
    /// this way: a miner that answers every poll with a newly signed receipt
    /// for the same step adds one line, not one (and a sync) per poll, and
    /// a miner that signs two different outcomes for one job has both kept.
    pub fn append_first(&self, r: &Receipt) -> std::io::Result<bool> {
        use sha2::{Digest as _, Sha256};
        let attests: [u8; 32] = Sha256::digest(serde_json::to_vec(&r.kind)?).into();
        let job = (r.miner, r.job_id.clone());
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(seen) = kept.jobs.get(&job)
            && (seen.contains(&attests) || seen.len() >= MAX_RECEIPTS_PER_JOB)
        {
            return Ok(false);
        }
        self.append(r)?;
        if !kept.jobs.contains_key(&job) {
            if kept.order.len() >= MAX_REMEMBERED_RECEIPTS
                && let Some(old) = kept.order.pop_front()
            {
                kept.jobs.remove(&old);
            }
            kept.order.push_back(job.clone());
        }
        kept.jobs.entry(job).or_default().push(attests);
        Ok(true)
    }

    /// [`append`](ReceiptStore::append) with the write and sync on tokio's
    /// blocking pool, so that they never hold up the async thread (an
    /// axon's, on a one-thread runtime).
    pub async fn append_async(&self, r: &Receipt) -> std::io::Result<()> {
        let (path, line) = (self.path.clone(), receipt_line(r)?);
        let (max, lock) = (self.max_bytes, self.lock.clone());
        tokio::task::spawn_blocking(move || append_line(&path, &line, max, &lock))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Hands every stored receipt whose signature verifies to `each`, in
    /// file order, one line in memory at a time (nothing when the file does
    /// not exist yet).
    pub fn scan(&self, mut each: impl FnMut(Receipt)) -> std::io::Result<Scanned> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Scanned::default()),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut out = Scanned::default();
        loop {
            line.clear();
            let limit = MAX_RECEIPT_LINE as u64 + 1;
            if (&mut reader).take(limit).read_until(b'\n', &mut line)? == 0 {
                return Ok(out);
            }
            if line.len() > MAX_RECEIPT_LINE && line.last() != Some(&b'\n') {
                out.unreadable += 1;
                skip_line(&mut reader)?;
                continue;
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<Receipt>(&line) {
                Ok(r) if r.verify() => {
                    out.receipts += 1;
                    each(r);
                }
                Ok(_) => out.forged += 1,
                Err(_) => out.unreadable += 1,
            }
        }
    }

    /// [`scan`](ReceiptStore::scan) of the previous generation (when a
    /// rotation left one), then of the file: every receipt in file order,
    /// those the rotation kept in both seen twice. Counts are summed.
    pub fn scan_all(&self, mut each: impl FnMut(Receipt)) -> std::io::Result<Scanned> {
        let older = ReceiptStore::new(self.previous_path()).scan(&mut each)?;
        let newer = self.scan(each)?;
        Ok(Scanned {
            receipts: older.receipts + newer.receipts,
            unreadable: older.unreadable + newer.unreadable,
            forged: older.forged + newer.forged,
        })
    }

    /// Every stored receipt, once each, in memory (none when the file does
    /// not exist yet). [`scan`](ReceiptStore::scan) keeps one at a time.
    pub fn load(&self) -> std::io::Result<Loaded> {
        let mut out = Loaded::default();
        let mut seen = std::collections::HashSet::new();
        let scanned = self.scan(|r| {
            if seen.insert(r.signature.clone()) {
                out.receipts.push(r);
            } else {
                out.duplicates += 1;
            }
        })?;
        out.unreadable = scanned.unreadable;
        out.forged = scanned.forged;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use super::*;
    use crate::executor::{Captured, JobStatus, Outcome};
    use crate::market::jobs::tests::{key, request};
    use crate::market::jobs::{JobRequest, ReceiptKind};

    #[test]
    fn receipts_survive_a_restart_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("receipts.jsonl");
        let miner = key("//miner1");
        let req = request();
        let outcome = Outcome {
            status: JobStatus::Exited { code: 0 },
            duration: Duration::from_millis(1500),
            stdout: Captured {
                bytes: 0,
                sha256: "ab".into(),
                text: String::new(),
                truncated: false,
            },
            stderr: Captured {
                bytes: 0,
                sha256: "cd".into(),
                text: String::new(),
                truncated: false,
            },
            dropped_log_lines: 0,
        };
        {
            let store = ReceiptStore::new(&path);
            store
                .append(&Receipt::sign(&req, ReceiptKind::Accepted, 1, &miner))
                .expect("append");
            store
                .append(&Receipt::sign(
                    &req,
                    ReceiptKind::finished(&outcome, None),
                    2,
                    &miner,
                ))
                .expect("append");
        }
        // A crash mid-write tears the last line; a forged receipt is dropped.
        let mut forged = Receipt::sign(&req, ReceiptKind::Accepted, 3, &miner);
        forged.job_id = "job-2".into();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        writeln!(f, "{}", serde_json::to_string(&forged).expect("json")).expect("write");
        let again = std::fs::read_to_string(&path).expect("read");
        writeln!(f, "{}", again.lines().next().expect("line")).expect("duplicate");
        write!(f, "{{\"job_id\":\"job-3\",\"valid").expect("torn");
        drop(f);
        let store = ReceiptStore::new(&path);
        let loaded = store.load().expect("load");
        assert_eq!(loaded.receipts.len(), 2);
        assert_eq!(
            (loaded.unreadable, loaded.forged, loaded.duplicates),
            (1, 1, 1)
        );
        assert!(matches!(
            &loaded.receipts[1].kind,
            ReceiptKind::Finished {
                exit_code: Some(0),
                duration_ms: 1500,
                ..
            }
        ));
        assert_eq!(loaded.receipts[0].validator, key("//validator1").account());
        // The restarted process appends on a line of its own, after the torn one.
        let next = Receipt::sign(
            &JobRequest {
                job_id: "job-4".into(),
                ..req.clone()
            },
            ReceiptKind::Accepted,
            4,
            &miner,
        );
        store.append(&next).expect("append");
        let reloaded = store.load().expect("load");
        assert_eq!(reloaded.receipts.last(), Some(&next));
        assert_eq!(reloaded.unreadable, 1);
        assert_eq!(
            ReceiptStore::new(dir.path().join("none"))
                .load()
                .expect("empty"),
            Loaded::default()
        );
    }

    /// Receipts of one length for ids of one length.
    fn accepted(id: &str) -> Receipt {
        let mut req = request();
        req.job_id = id.into();
        Receipt::sign(&req, ReceiptKind::Accepted, 1, &key("//miner1"))
    }

    fn ids(store: &ReceiptStore) -> Vec<String> {
        let mut out = Vec::new();
        store.scan(|r| out.push(r.job_id)).expect("scan");
        out
    }

    /// A miner that signs a new receipt for the same step at every poll
    /// adds one line per attestation, not one per poll; different
    /// attestations for one job are kept, up to MAX_RECEIPTS_PER_JOB.
    #[test]
    fn append_first_keeps_each_attestation_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = ReceiptStore::new(dir.path().join("r.jsonl"));
        let miner = key("//miner1");
        let mut req = request();
        req.job_id = "job-a".into();
        let finished = |at| ReceiptKind::Finished {
            exit_code: Some(at as i32),
            status: "exited".into(),
            stdout_sha256: "ab".into(),
            stderr_sha256: "cd".into(),
            output_sha256: None,
            duration_ms: at,
        };
        let mut appended = Vec::new();
        for at in 1..=50 {
            let r = Receipt::sign(&req, ReceiptKind::Accepted, at, &miner);
            appended.push(store.append_first(&r).expect("append"));
        }
        for at in 1..=50 {
            let r = Receipt::sign(&req, finished(7), 100 + at, &miner);
            appended.push(store.append_first(&r).expect("append"));
        }
        // Conflicting outcomes: kept (evidence), but at most 4 per job.
        for at in 1..=50 {
            let r = Receipt::sign(&req, finished(1000 + at), 200 + at, &miner);
            appended.push(store.append_first(&r).expect("append"));
        }
        let other_miner = Receipt::sign(&req, ReceiptKind::Accepted, 1, &key("//miner2"));
        appended.push(store.append_first(&other_miner).expect("append"));
        req.job_id = "job-b".into();
        appended.push(
            store
                .append_first(&Receipt::sign(&req, ReceiptKind::Accepted, 1, &miner))
                .expect("append"),
        );
        assert_eq!(
            appended.iter().filter(|a| **a).count(),
            MAX_RECEIPTS_PER_JOB + 2
        );
        let mut kept = Vec::new();
        store
            .scan(|r| kept.push((r.job_id, r.at_ms)))
            .expect("scan");
        let job = |id: &str, at| (id.to_owned(), at);
        assert_eq!(
            kept,
            [
                job("job-a", 1),
                job("job-a", 101),
                job("job-a", 201),
                job("job-a", 202),
                job("job-a", 1),
                job("job-b", 1)
            ]
        );
    }

    #[test]
    fn the_file_rotates_past_its_bound_and_keeps_the_newest_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let line = receipt_line(&accepted("j000")).expect("line").len() as u64;
        // Room for ten lines; the newer half (five) stays at a rotation. A
        // store without the bound never rotates.
        let store = ReceiptStore::new(dir.path().join("r.jsonl")).with_max_bytes(10 * line);
        for i in 0..10 {
            store
                .append(&accepted(&format!("j{i:03}")))
                .expect("append");
        }
        assert!(!store.previous_path().exists());
        assert_eq!(ids(&store).len(), 10);
        // The eleventh would pass the bound: the file rotates first, keeping
        // the newest half of its lines, then takes the line.
        store.append(&accepted("j010")).expect("append");
        let kept = ids(&store);
        assert_eq!(kept, ["j005", "j006", "j007", "j008", "j009", "j010"]);
        let old = ReceiptStore::new(store.previous_path());
        assert_eq!(ids(&old).len(), 10);
        // Many more: the file stays bounded and ends with the newest; the
        // previous generation holds the file as it was at the last rotation.
        for i in 11..40 {
            store
                .append(&accepted(&format!("j{i:03}")))
                .expect("append");
        }
        let size = std::fs::metadata(store.path()).expect("meta").len();
        assert!(size <= 10 * line, "{size} > {}", 10 * line);
        let kept = ids(&store);
        assert_eq!(kept.last().map(String::as_str), Some("j039"));
        // The file begins with the newer half of the previous generation,
        // so the two together hold every receipt since the one before.
        let old = ids(&old);
        let first = old.iter().position(|id| *id == kept[0]).expect("overlap");
        assert!(first > 0, "the previous generation holds older receipts");
        assert_eq!(old[first..], kept[..old.len() - first]);
        let numbers: Vec<usize> = old[..first]
            .iter()
            .chain(&kept)
            .map(|id| id[1..].parse().expect("number"))
            .collect();
        let from = numbers[0];
        assert_eq!(numbers, (from..40).collect::<Vec<_>>());
        // scan_all reads both generations in order, the kept half twice.
        let mut all = Vec::new();
        let scanned = store.scan_all(|r| all.push(r.job_id)).expect("scan");
        assert_eq!(all, [old.clone(), kept.clone()].concat());
        assert_eq!((scanned.unreadable, scanned.forged), (0, 0));
        assert_eq!(scanned.receipts, all.len());

        let unbounded = ReceiptStore::new(dir.path().join("all.jsonl"));
        for i in 0..40 {
            unbounded
                .append(&accepted(&format!("j{i:03}")))
                .expect("append");
        }
        assert_eq!(ids(&unbounded).len(), 40);
        assert!(!unbounded.previous_path().exists());
    }

    #[test]
    fn a_rotation_that_fails_fails_the_append_before_it_writes() {
        let dir = tempfile::tempdir().expect("dir");
        let line = receipt_line(&accepted("j000")).expect("line").len() as u64;
        let store = ReceiptStore::new(dir.path().join("r.jsonl")).with_max_bytes(2 * line);
        store.append(&accepted("j000")).expect("append");
        store.append(&accepted("j001")).expect("append");
        // A directory where the previous generation goes cannot be replaced.
        std::fs::create_dir_all(store.previous_path().join("x")).expect("dir");
        let e = store.append(&accepted("j002")).expect_err("cannot rotate");
        assert!(
            e.to_string().starts_with(&format!(
                "rotating {} to {}: ",
                store.path().display(),
                store.previous_path().display()
            )),
            "{e}"
        );
        assert_eq!(ids(&store), ["j000", "j001"]);
    }

    #[test]
    fn a_long_line_is_skipped_and_the_rest_read() {
        let dir = tempfile::tempdir().expect("dir");
        let store = ReceiptStore::new(dir.path().join("r.jsonl"));
        store.append(&accepted("before")).expect("append");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(store.path())
            .expect("open");
        f.write_all(&vec![b'x'; 3 * MAX_RECEIPT_LINE])
            .expect("long");
        f.write_all(b"\n").expect("newline");
        drop(f);
        store.append(&accepted("after")).expect("append");
        let mut kept = Vec::new();
        let scanned = store.scan(|r| kept.push(r.job_id)).expect("scan");
        assert_eq!(kept, ["before", "after"]);
        assert_eq!(
            scanned,
            Scanned {
                receipts: 2,
                unreadable: 1,
                forged: 0
            }
        );
    }
}
