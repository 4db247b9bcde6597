//! Organic jobs and their states, kept in the validator's [`Store`]: every
//! transition is written before it is acted on, so a gateway killed at any
//! point comes back with each job where it was.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::AccountId;
use crate::market::jobs::Receipt;
use crate::store::{Put, Store, get_json};

use super::GatewayError;
use super::order::JobOrder;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a miner with a free executor of its class.
    Queued,
    /// A miner accepted it and runs it.
    Running,
    /// It ran and exited (any exit code).
    Finished,
    /// It could not run, or was killed (no miner took it, a timeout, a
    /// signal, a miner that accepted and then failed).
    Failed,
    /// The client cancelled it.
    Cancelled,
}

impl JobState {
    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Cancelled
        )
    }

    /// Its name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// One step in a job's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobEvent {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The state after it.
    pub state: JobState,
    /// What happened, for people (`declined by 5F…: busy`).
    pub detail: String,
}

/// A miner that declined or failed the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerAttempt {
    /// The miner's hotkey.
    pub miner: AccountId,
    /// `declined`, `unreachable` or `failed`.
    pub outcome: String,
    /// The miner's reason, or the call's error.
    pub detail: String,
}

/// The result of re-running a finished job on the validator's trusted
/// executor and comparing what it printed with what the miner reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CrossCheck {
    /// Chosen; the trusted run has not ended yet.
    Pending,
    /// The trusted run printed the same (exit code and stdout digest).
    Matched,
    /// It did not: the miner is penalised and both results are kept as
    /// evidence.
    Mismatch {
        /// What differs, in words.
        detail: String,
        /// The trusted run's stdout SHA-256, hex.
        trusted_stdout_sha256: String,
        /// The trusted run's exit code, when it exited.
        trusted_exit_code: Option<i32>,
    },
    /// The trusted run could not decide (it failed, or timed out): no
    /// penalty.
    Unverifiable {
        /// Why.
        reason: String,
    },
}

/// A miner caught by a cross-check: the job, both results, and the miner's
/// signed receipts, kept in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The job.
    pub job_id: String,
    /// The miner that reported the other result.
    pub miner: AccountId,
    /// What differs.
    pub reason: String,
    /// The miner's stdout SHA-256 and exit code.
    pub miner_stdout_sha256: Option<String>,
    /// The miner's exit code.
    pub miner_exit_code: Option<i32>,
    /// The trusted run's stdout SHA-256.
    pub trusted_stdout_sha256: String,
    /// The trusted run's exit code.
    pub trusted_exit_code: Option<i32>,
    /// The miner's signed receipts for the job.
    pub receipts: Vec<Receipt>,
    /// When it was found, ms since the Unix epoch.
    pub at_ms: u64,
}

/// An organic job, as stored and as `GET /v1/jobs/{id}` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganicJob {
    /// Its id (`job-` and 32 hex digits), also its id on the miner.
    pub id: String,
    /// The client that submitted it.
    pub owner: String,
    /// What was ordered.
    pub order: JobOrder,
    /// Where it is.
    pub state: JobState,
    /// The miner running or that ran it.
    #[serde(default)]
    pub miner: Option<AccountId>,
    /// The exit code, once finished.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// SHA-256 of stdout, hex, once finished.
    #[serde(default)]
    pub stdout_sha256: Option<String>,
    /// SHA-256 of stderr, hex, once finished.
    #[serde(default)]
    pub stderr_sha256: Option<String>,
    /// Digest of the outputs, where the job had any.
    #[serde(default)]
    pub output_sha256: Option<String>,
    /// Why it failed or was cancelled.
    #[serde(default)]
    pub error: Option<String>,
    /// The miner's signed receipts (accepted, finished).
    #[serde(default)]
    pub receipts: Vec<Receipt>,
    /// Miners that declined, could not be reached, or failed it.
    #[serde(default)]
    pub attempts: Vec<MinerAttempt>,
    /// Its history, oldest first.
    pub history: Vec<JobEvent>,
    /// When it was submitted, ms since the Unix epoch.
    pub created_ms: u64,
    /// Whether it was re-run on a trusted executor, and what that found.
    #[serde(default)]
    pub cross_check: Option<CrossCheck>,
    /// Whether the validator has paid (or penalised) it.
    #[serde(default)]
    pub accounted: bool,
}

impl OrganicJob {
    /// Whether the validator's books should take it now: it finished on a
    /// miner, any cross-check has ended, and it was not taken before.
    pub fn to_account(&self) -> bool {
        self.state == JobState::Finished
            && self.miner.is_some()
            && !self.accounted
            && self.cross_check != Some(CrossCheck::Pending)
    }

    /// Whether nothing more will happen to it: final, any cross-check
    /// ended, and (when it finished on a miner) accounted for.
    pub fn settled(&self) -> bool {
        // A finished job without a miner has nothing to account for.
        self.state.is_final()
            && (self.accounted || self.state != JobState::Finished || self.miner.is_none())
            && self.cross_check != Some(CrossCheck::Pending)
    }

    /// When it entered `state` last, ms since the Unix epoch.
    pub fn entered(&self, state: JobState) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|e| e.state == state)
            .map(|e| e.at_ms)
    }

    /// A queued job.
    pub fn queued(id: String, owner: String, order: JobOrder, now_ms: u64) -> OrganicJob {
        OrganicJob {
            id,
            owner,
            order,
            state: JobState::Queued,
            miner: None,
            exit_code: None,
            stdout_sha256: None,
            stderr_sha256: None,
            output_sha256: None,
            error: None,
            receipts: Vec::new(),
            attempts: Vec::new(),
            history: vec![JobEvent {
                at_ms: now_ms,
                state: JobState::Queued,
                detail: "submitted".into(),
            }],
            created_ms: now_ms,
            cross_check: None,
            accounted: false,
        }
    }

    /// Moves to `state`, noting why.
    pub fn note(&mut self, state: JobState, detail: impl Into<String>, now_ms: u64) {
        self.state = state;
        self.history.push(JobEvent {
            at_ms: now_ms,
            state,
            detail: detail.into(),
        });
    }
}

/// The index before it was kept in chunks: one list of up to 50,000 ids,
/// read and written whole on each new job. Read while no chunk exists, and
/// split into chunks by the first insert.
const OLD_INDEX: &str = "akihabara:gateway:jobs";
/// Which chunks of the index exist ([`IndexChunks`]).
const INDEX_CHUNKS: &str = "akihabara:gateway:job-chunks";
/// Job ids per chunk of the index: a new job reads and writes one chunk
/// (about 40 KB), not the whole index (about 2 MB at [`MAX_LISTED`]).
const INDEX_CHUNK: usize = 1_000;

fn chunk_key(n: u64) -> String {
    format!("akihabara:gateway:job-chunk:{n}")
}

/// The chunks of the index that exist: `first..=last` (none when `last <
/// first`), the newest ids in `last`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
struct IndexChunks {
    first: u64,
    last: u64,
}
const PENALTIES: &str = "akihabara:gateway:penalties";

/// The most evidence records the penalty list keeps (the latest).
pub const MAX_PENALTIES: usize = 10_000;

/// How many job ids the index lists (the oldest settled ones drop out of
/// listings 1,000 at a time, so it lists at least 49,001 once full; jobs
/// not yet settled stay listed, and every job stays readable by id).
pub const MAX_LISTED: usize = 50_000;

/// How many job ids each client's own index lists (its newest): what
/// `GET /v1/jobs` answers, read without touching other clients' jobs.
pub const MAX_LISTED_PER_CLIENT: usize = 256;

/// Set once every client's index is built (stores from before it had only
/// the global index).
const OWNER_INDEXES: &str = "akihabara:gateway:owner-indexes";

/// Set once the settled jobs a store held before records expired were
/// given their expiry.
const SETTLED_EXPIRY: &str = "akihabara:gateway:settled-expiry";

fn job_key(id: &str) -> String {
    format!("akihabara:gateway:job:{id}")
}

fn owner_key(owner: &str) -> String {
    format!("akihabara:gateway:owner-jobs:{owner}")
}

/// `ids` with `id` added at the end, the oldest dropped beyond `max`.
fn pushed(mut ids: Vec<String>, id: &str, max: usize) -> Vec<String> {
    ids.push(id.to_owned());
    if ids.len() > max {
        ids.drain(..ids.len() - max);
    }
    ids
}

/// How long a settled job's record is kept (see [`JobBook::with_final_ttl`]).
pub const FINAL_JOB_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// The jobs in a [`Store`].
pub struct JobBook {
    store: Arc<dyn Store>,
    write: Mutex<()>,
    final_ttl: std::time::Duration,
    /// Ids per chunk of the index, and the most chunks kept.
    chunk: (usize, u64),
}

impl std::fmt::Debug for JobBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobBook")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(v).map_err(|e| GatewayError::Setting(format!("cannot encode: {e}")))
}

impl JobBook {
    /// The jobs in `store`.
    pub fn new(store: Arc<dyn Store>) -> JobBook {
        JobBook {
            store,
            write: Mutex::new(()),
            final_ttl: FINAL_JOB_TTL,
            chunk: (INDEX_CHUNK, (MAX_LISTED / INDEX_CHUNK) as u64),
        }
    }

    /// The index in chunks of `ids`, at most `chunks` of them (tests).
    #[cfg(test)]
    pub(crate) fn with_index_chunks(self, ids: usize, chunks: u64) -> JobBook {
        JobBook {
            chunk: (ids, chunks),
            ..self
        }
    }

    /// Keeps a settled job's record for `ttl` after its last change
    /// (default [`FINAL_JOB_TTL`]), then lets the store drop it: a job is
    /// settled once it is final, its cross-check has ended and, when it
    /// finished, the validator has accounted for it. Clients' jobs do not
    /// fill the disk without end; indexes skip a record that is gone.
    pub fn with_final_ttl(self, ttl: std::time::Duration) -> JobBook {
        JobBook {
            final_ttl: ttl,
            ..self
        }
    }

    /// A new job: written with its place in the index and in its owner's,
    /// in one write.
    pub fn insert(&self, job: &OrganicJob) -> Result<(), GatewayError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let (ids_per_chunk, max_chunks) = self.chunk;
        let mut chunks = match self.chunks()? {
            Some(c) => c,
            None => self.split_old_index()?,
        };
        let mut ids = if chunks.last < chunks.first {
            chunks.last = chunks.first;
            Vec::new()
        } else {
            self.chunk_ids(chunks.last)?
        };
        if ids.len() >= ids_per_chunk {
            chunks.last += 1;
            ids.clear();
        }
        // The oldest chunk goes when one more would be over the cap (only
        // ever as a new chunk starts); its jobs not yet settled move to the
        // new chunk, so a restart still finds them to resume or settle.
        let dropped = if chunks.last - chunks.first + 1 > max_chunks {
            let oldest = chunks.first;
            chunks.first += 1;
            for id in self.chunk_ids(oldest)? {
                if self.get(&id)?.is_some_and(|j| !j.settled()) {
                    ids.push(id);
                }
            }
            Some(chunk_key(oldest))
        } else {
            None
        };
        ids.push(job.id.clone());
        let owner_ids = pushed(self.owner_ids(&job.owner)?, &job.id, MAX_LISTED_PER_CLIENT);
        let (key, owner, chunk) = (
            job_key(&job.id),
            owner_key(&job.owner),
            chunk_key(chunks.last),
        );
        let (record, index, owner_index, head) = (
            encode(job)?,
            encode(&ids)?,
            encode(&owner_ids)?,
            encode(&chunks)?,
        );
        self.store.put(&[
            Put::new(&key, &record),
            Put::new(&chunk, &index),
            Put::new(INDEX_CHUNKS, &head),
            Put::new(&owner, &owner_index),
        ])?;
        if let Some(old) = dropped {
            self.store.delete(&old)?;
        }
        Ok(())
    }

    /// Which chunks of the index exist; `None` for a store without them.
    fn chunks(&self) -> Result<Option<IndexChunks>, GatewayError> {
        Ok(get_json::<IndexChunks>(&*self.store, INDEX_CHUNKS)?)
    }

    fn chunk_ids(&self, n: u64) -> Result<Vec<String>, GatewayError> {
        Ok(get_json::<Vec<String>>(&*self.store, &chunk_key(n))?.unwrap_or_default())
    }

    /// Writes the index of a store from before chunks as chunks (an empty
    /// index when there is none), then drops it. Called with the write lock.
    fn split_old_index(&self) -> Result<IndexChunks, GatewayError> {
        let (ids_per_chunk, max_chunks) = self.chunk;
        let old = get_json::<Vec<String>>(&*self.store, OLD_INDEX)?.unwrap_or_default();
        let mut parts: Vec<&[String]> = old.chunks(ids_per_chunk).collect();
        if parts.len() as u64 > max_chunks {
            parts.drain(..parts.len() - max_chunks as usize);
        }
        // Chunks 1..=n; none is `first: 1, last: 0`.
        let chunks = IndexChunks {
            first: 1,
            last: parts.len() as u64,
        };
        let mut records = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            records.push((chunk_key(i as u64 + 1), encode(part)?));
        }
        let head = encode(&chunks)?;
        let mut puts: Vec<Put<'_>> = records.iter().map(|(k, v)| Put::new(k, v)).collect();
        puts.push(Put::new(INDEX_CHUNKS, &head));
        self.store.put(&puts)?;
        self.store.delete(OLD_INDEX)?;
        Ok(chunks)
    }

    /// Builds each client's index from `all` (the listed jobs, oldest
    /// first), once: a store written before those indexes existed.
    pub fn index_owners(&self, all: &[OrganicJob]) -> Result<(), GatewayError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.get(OWNER_INDEXES)?.is_some() {
            return Ok(());
        }
        let mut by_owner: HashMap<&str, Vec<String>> = HashMap::new();
        for job in all {
            let ids = by_owner.entry(&job.owner).or_default();
            *ids = pushed(std::mem::take(ids), &job.id, MAX_LISTED_PER_CLIENT);
        }
        let mut records = Vec::new();
        for (owner, ids) in &by_owner {
            records.push((owner_key(owner), encode(ids)?));
        }
        let mut puts: Vec<Put<'_>> = records.iter().map(|(k, v)| Put::new(k, v)).collect();
        puts.push(Put::new(OWNER_INDEXES, b"1"));
        self.store.put(&puts)?;
        Ok(())
    }

    /// Gives the settled jobs among `all` (the listed jobs) their expiry,
    /// once: a store written before settled records expired.
    pub fn expire_settled(&self, all: &[OrganicJob]) -> Result<(), GatewayError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.get(SETTLED_EXPIRY)?.is_some() {
            return Ok(());
        }
        let mut records = Vec::new();
        for job in all.iter().filter(|j| j.settled()) {
            records.push((job_key(&job.id), encode(job)?));
        }
        let mut puts: Vec<Put<'_>> = records
            .iter()
            .map(|(k, v)| Put::new(k, v).expiring(self.final_ttl))
            .collect();
        puts.push(Put::new(SETTLED_EXPIRY, b"1"));
        self.store.put(&puts)?;
        Ok(())
    }

    /// `owner`'s listed job ids, oldest first.
    fn owner_ids(&self, owner: &str) -> Result<Vec<String>, GatewayError> {
        Ok(get_json::<Vec<String>>(&*self.store, &owner_key(owner))?.unwrap_or_default())
    }

    /// `owner`'s newest jobs (at most [`MAX_LISTED_PER_CLIENT`]), oldest
    /// first, read from its own index: a client's listing costs what its
    /// own jobs cost, whatever the others have.
    pub fn list_owned(&self, owner: &str) -> Result<Vec<OrganicJob>, GatewayError> {
        let mut out = Vec::new();
        for id in self.owner_ids(owner)? {
            if let Some(j) = self.get(&id)?
                && j.owner == owner
            {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Writes a job's new state (expiring, once the job is settled).
    pub fn update(&self, job: &OrganicJob) -> Result<(), GatewayError> {
        let (key, record) = (job_key(&job.id), encode(job)?);
        let put = Put::new(&key, &record);
        let put = if job.settled() {
            put.expiring(self.final_ttl)
        } else {
            put
        };
        self.store.put(&[put])?;
        Ok(())
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<Option<OrganicJob>, GatewayError> {
        if id.len() > 64 {
            return Ok(None);
        }
        Ok(get_json(&*self.store, &job_key(id))?)
    }

    /// The listed job ids, oldest first.
    pub fn ids(&self) -> Result<Vec<String>, GatewayError> {
        let Some(chunks) = self.chunks()? else {
            return Ok(get_json::<Vec<String>>(&*self.store, OLD_INDEX)?.unwrap_or_default());
        };
        let mut ids = Vec::new();
        for n in chunks.first..=chunks.last {
            ids.extend(self.chunk_ids(n)?);
        }
        Ok(ids)
    }

    /// The listed jobs, oldest first (a job whose record is gone is skipped).
    pub fn list(&self) -> Result<Vec<OrganicJob>, GatewayError> {
        let mut out = Vec::new();
        for id in self.ids()? {
            if let Some(j) = self.get(&id)? {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Keeps `evidence` and adds it to the penalty list, in one write.
    pub fn penalise(&self, evidence: &Evidence) -> Result<(), GatewayError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.penalties()?;
        all.push(evidence.clone());
        if all.len() > MAX_PENALTIES {
            all.drain(..all.len() - MAX_PENALTIES);
        }
        let (key, record, list) = (
            format!("akihabara:gateway:evidence:{}", evidence.job_id),
            encode(evidence)?,
            encode(&all)?,
        );
        self.store
            .put(&[Put::new(&key, &record), Put::new(PENALTIES, &list)])?;
        Ok(())
    }

    /// The miners caught by cross-checks, oldest first.
    pub fn penalties(&self) -> Result<Vec<Evidence>, GatewayError> {
        Ok(get_json::<Vec<Evidence>>(&*self.store, PENALTIES)?.unwrap_or_default())
    }

    /// Jobs not yet final, oldest first: what a restarted router resumes.
    pub fn unfinished(&self) -> Result<Vec<OrganicJob>, GatewayError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|j| !j.state.is_final())
            .collect())
    }

    /// Finished jobs whose cross-check has not ended (a restart lost it).
    pub fn pending_checks(&self) -> Result<Vec<OrganicJob>, GatewayError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|j| j.cross_check == Some(CrossCheck::Pending))
            .collect())
    }
}
