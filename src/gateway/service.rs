//! [`Gateway`]: the state the HTTP API and the [`Router`](super::Router)
//! share: clients, jobs, the order rules and the set of unfinished jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::AccountId;
use crate::store::{Put, Store, StoreError, get_json};

use super::GatewayError;
use super::jobs::{CrossCheck, JobBook, JobState, OrganicJob};
use crate::market::logs::{LogEntry, LogsReply};
use crate::roles::{OrganicPenalty, OrganicRun};

/// What [`Gateway::organic_work`] found for the validator's books.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganicWork {
    /// Runs to pay.
    pub runs: Vec<OrganicRun>,
    /// Miners to penalise.
    pub penalties: Vec<OrganicPenalty>,
    /// The jobs these come from, for [`Gateway::mark_accounted`].
    pub ids: Vec<String>,
}
use super::keys::{Client, Clients, QuotaCheck};
use super::order::{FieldError, JobOrder, OrderRules};

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// A field of the order.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The client's daily quota is used up.
    #[error("the quota of {limit} jobs a day is used up")]
    Quota {
        /// The client's daily quota.
        limit: u32,
    },
    /// The client has [`MAX_ACTIVE_PER_CLIENT`] jobs queued or running.
    #[error(
        "{limit} jobs of yours are queued or running, the most a client may have; send more as they end"
    )]
    Busy {
        /// [`MAX_ACTIVE_PER_CLIENT`].
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// Jobs one client may have queued or running at once: one client's flood
/// of jobs does not fill the router's queue ahead of everyone else's.
pub const MAX_ACTIVE_PER_CLIENT: usize = 64;

/// Log streams (`GET /v1/jobs/{id}/logs`) open at once, in all, and never
/// more than half the HTTP server's connections
/// ([`super::http::HttpSettings::max_streams`]), so other calls still get in.
pub const MAX_STREAMS: usize = 128;
/// Log streams one client may hold open at once.
pub const MAX_STREAMS_PER_CLIENT: usize = 8;

/// Orders whose files are being checked at once (the gateway's outbound
/// HEAD and PUT requests, before a job is accepted), and per client.
pub const MAX_PREFLIGHTS: usize = 32;
/// See [`MAX_PREFLIGHTS`].
pub const MAX_PREFLIGHTS_PER_CLIENT: usize = 1;

/// Jobs whose output lines the gateway keeps in memory.
const MAX_LOGGED_JOBS: usize = 512;

/// One job's fetched output lines.
#[derive(Debug, Default)]
struct FetchedLog {
    lines: std::collections::VecDeque<LogEntry>,
    next: u64,
    bytes: usize,
}

/// What the HTTP API and the router share.
pub struct Gateway {
    clients: Clients,
    store: Arc<dyn Store>,
    quota: Mutex<()>,
    book: JobBook,
    rules: OrderRules,
    /// The jobs not yet final, and their owners.
    active: Mutex<BTreeMap<String, String>>,
    wake: tokio::sync::Notify,
    /// One read-modify-write of a job at a time (the router and a client's
    /// cancel may race).
    transitions: tokio::sync::Mutex<()>,
    changed: tokio::sync::broadcast::Sender<String>,
    /// The last signed timestamp each hotkey client used (replay guard),
    /// as read from and written to the store; `None`: the store has none.
    /// One entry per hotkey client that has signed a request.
    signed: Mutex<HashMap<AccountId, Option<u64>>>,
    /// Finished jobs the validator has not paid or penalised yet.
    unaccounted: Mutex<BTreeSet<String>>,
    /// Running jobs cancelled by their client, for the router to tell
    /// their miners.
    to_cancel: Mutex<Vec<(String, AccountId)>>,
    /// Jobs' output lines as the router fetched them (memory only: a
    /// restarted gateway fetches them again from the miners).
    logs: Mutex<HashMap<String, FetchedLog>>,
    /// Open log streams, by client id.
    streams: Arc<crate::market::flight::InFlight<String>>,
    preflights: Arc<crate::market::flight::InFlight<String>>,
    /// Bad hotkey signatures, by address.
    bad_signatures: super::http::BadSignatures,
    /// When a gateway first opened its store, ms since the Unix epoch: a
    /// hotkey that the store has no used timestamp of may not use one from
    /// before (a request the gateway of an earlier store accepted).
    opened_ms: u64,
    /// This gateway's id, made when its store was first opened: hotkey
    /// clients sign it, so a request signed for another gateway is refused.
    id: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Where `client`'s job count for the UTC day of `now_ms` is kept.
fn quota_key(client: &Client, now_ms: u64) -> String {
    let day = now_ms / 86_400_000;
    format!("akihabara:gateway:quota:{}:{day}", client.id)
}

/// Whether `client` may have one more job queued or running.
fn at_most_active(active: &BTreeMap<String, String>, client: &Client) -> Result<(), SubmitError> {
    let mine = active.values().filter(|owner| **owner == client.id).count();
    if mine >= MAX_ACTIVE_PER_CLIENT {
        return Err(SubmitError::Busy {
            limit: MAX_ACTIVE_PER_CLIENT,
        });
    }
    Ok(())
}

/// Where the last signed timestamp `hotkey` used is kept.
fn signed_key(hotkey: &AccountId) -> String {
    format!("akihabara:gateway:signed:{hotkey}")
}

/// Where the time a gateway first opened the store is kept.
const OPENED_KEY: &str = "akihabara:gateway:opened";

/// When a gateway first opened `store`, ms since the Unix epoch; now, and
/// written down, if none has.
fn first_opened(store: &dyn Store) -> Result<u64, StoreError> {
    match store.get(OPENED_KEY)? {
        Some(bytes) => parse_ms(OPENED_KEY, &bytes),
        None => {
            let now = crate::market::server::unix_millis();
            store.put(&[Put::new(OPENED_KEY, now.to_string().as_bytes())])?;
            Ok(now)
        }
    }
}

/// Where the gateway's id is kept.
const ID_KEY: &str = "akihabara:gateway:id";

/// The id of the gateway on `store`; made, and written down, if it has none.
fn gateway_id(store: &dyn Store) -> Result<String, GatewayError> {
    if let Some(bytes) = store.get(ID_KEY)? {
        return std::str::from_utf8(&bytes)
            .ok()
            .filter(|id| is_gateway_id(id))
            .map(str::to_owned)
            .ok_or_else(|| {
                GatewayError::Store(StoreError::Corrupt {
                    key: ID_KEY.to_owned(),
                    reason: "not a gateway id (gw- and 32 hex digits)".into(),
                })
            });
    }
    let id = format!("gw-{}", super::keys::random_hex(16)?);
    store.put(&[Put::new(ID_KEY, id.as_bytes())])?;
    Ok(id)
}

/// `gw-` and 32 lowercase hex digits.
fn is_gateway_id(id: &str) -> bool {
    id.strip_prefix("gw-").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A time in ms kept as its decimal digits.
fn parse_ms(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| StoreError::Corrupt {
            key: key.to_owned(),
            reason: "not a timestamp in ms".into(),
        })
}

/// A signed timestamp against the hotkey's replay guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Later than the last one the hotkey used.
    Fresh,
    /// Not later than the last one the hotkey used: a replay, or a client
    /// that signed two requests with one timestamp.
    Reused,
    /// From before a gateway first opened the store, for a hotkey the store
    /// has no used timestamp of.
    BeforeStart,
}

fn job_id() -> Result<String, GatewayError> {
    Ok(format!("job-{}", super::keys::random_hex(16)?))
}

impl Gateway {
    /// A gateway keeping jobs in `store` and clients in `clients`
    /// ([`Clients`]), checking orders with `rules`. Jobs a previous run left
    /// unfinished are picked up again.
    pub fn open(
        store: Arc<dyn Store>,
        clients: Clients,
        rules: OrderRules,
    ) -> Result<Arc<Gateway>, GatewayError> {
        let book = JobBook::new(store.clone());
        let all = book.list()?;
        book.index_owners(&all)?;
        book.expire_settled(&all)?;
        let active = all
            .iter()
            .filter(|j| !j.state.is_final())
            .map(|j| (j.id.clone(), j.owner.clone()))
            .collect();
        let unaccounted = all
            .iter()
            .filter(|j| j.state == JobState::Finished && !j.accounted)
            .map(|j| j.id.clone())
            .collect();
        let opened_ms = first_opened(&*store)?;
        let id = gateway_id(&*store)?;
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        Ok(Arc::new(Gateway {
            clients,
            store,
            quota: Mutex::new(()),
            book,
            rules,
            active: Mutex::new(active),
            wake: tokio::sync::Notify::new(),
            transitions: tokio::sync::Mutex::new(()),
            changed,
            signed: Mutex::new(HashMap::new()),
            unaccounted: Mutex::new(unaccounted),
            to_cancel: Mutex::new(Vec::new()),
            logs: Mutex::new(HashMap::new()),
            streams: crate::market::flight::InFlight::new(MAX_STREAMS, MAX_STREAMS_PER_CLIENT),
            preflights: crate::market::flight::InFlight::new(
                MAX_PREFLIGHTS,
                MAX_PREFLIGHTS_PER_CLIENT,
            ),
            bad_signatures: super::http::BadSignatures::default(),
            opened_ms,
            id,
        }))
    }

    /// This gateway's id (`gw-` and 32 hex digits), made when its store was
    /// first opened and kept in it: what a hotkey client's signature names
    /// ([`signing_message`](super::http::signing_message)), so that a
    /// request signed for one gateway is refused by every other.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When a gateway first opened this store, ms since the Unix epoch: a
    /// hotkey client the store has no used timestamp of may not sign an
    /// earlier one (a gateway on a lost store may have accepted it).
    pub fn opened_ms(&self) -> u64 {
        self.opened_ms
    }

    /// Now, ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        crate::market::server::unix_millis()
    }

    /// A place for one more log stream of `client`'s, or why there is none.
    /// At most `max` streams are open in all (and [`MAX_STREAMS`]).
    pub fn open_stream(
        &self,
        client: &Client,
        max: usize,
    ) -> Result<crate::market::flight::Ticket<String>, crate::market::flight::Full> {
        self.streams.enter_within(&client.id, max)
    }

    /// A place for checking one more order's files for `client`
    /// ([`OrderRules::preflight`]), or why there is none.
    ///
    /// [`OrderRules::preflight`]: super::OrderRules::preflight
    pub fn start_preflight(
        &self,
        client: &Client,
    ) -> Result<crate::market::flight::Ticket<String>, crate::market::flight::Full> {
        self.preflights.enter(&client.id)
    }

    /// Bad hotkey signatures counted by address.
    pub fn bad_signatures(&self) -> &super::http::BadSignatures {
        &self.bad_signatures
    }

    /// The clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// The jobs.
    pub fn book(&self) -> &JobBook {
        &self.book
    }

    /// The order rules.
    pub fn rules(&self) -> &OrderRules {
        &self.rules
    }

    /// Checks and queues `order` for `client`: the quota is counted only
    /// for an order that passes.
    pub fn submit(&self, client: &Client, order: JobOrder) -> Result<OrganicJob, SubmitError> {
        self.rules.check(&order)?;
        let id = job_id()?;
        {
            // Counted and held in one step: concurrent orders cannot pass together.
            let mut active = self.lock_active();
            at_most_active(&active, client)?;
            active.insert(id.clone(), client.id.clone());
        }
        let admitted = self
            .admit_job(client, self.now_ms())
            .map_err(SubmitError::from)
            .and_then(|check| match check {
                QuotaCheck::Exhausted { limit } => Err(SubmitError::Quota { limit }),
                QuotaCheck::Admitted { .. } => {
                    let job =
                        OrganicJob::queued(id.clone(), client.id.clone(), order, self.now_ms());
                    self.book.insert(&job)?;
                    Ok(job)
                }
            });
        let job = match admitted {
            Ok(job) => job,
            Err(e) => {
                self.forget(&id);
                return Err(e);
            }
        };
        self.wake.notify_one();
        let _ = self.changed.send(job.id.clone());
        Ok(job)
    }

    /// [`SubmitError::Busy`] when `client` has [`MAX_ACTIVE_PER_CLIENT`]
    /// jobs queued or running: checked before an order's files are
    /// ([`Gateway::submit`] checks again).
    pub fn busy(&self, client: &Client) -> Option<SubmitError> {
        at_most_active(&self.lock_active(), client).err()
    }

    /// `Some(limit)` when `client` has no job left today. Nothing is
    /// counted: this refuses an order before any work is spent on it
    /// ([`Gateway::submit`] counts, and checks again).
    pub fn quota_exhausted(&self, client: &Client) -> Result<Option<u32>, GatewayError> {
        let key = quota_key(client, self.now_ms());
        let used = get_json::<u32>(&*self.store, &key)?.unwrap_or(0);
        Ok((used >= client.jobs_per_day).then_some(client.jobs_per_day))
    }

    /// Counts one job against `client`'s quota for the UTC day of `now_ms`,
    /// unless the quota is used up. The count is stored, so a restart does
    /// not reset it.
    pub fn admit_job(&self, client: &Client, now_ms: u64) -> Result<QuotaCheck, GatewayError> {
        let _one_at_a_time = self.quota.lock().unwrap_or_else(|p| p.into_inner());
        let key = quota_key(client, now_ms);
        let used = get_json::<u32>(&*self.store, &key)?.unwrap_or(0);
        if used >= client.jobs_per_day {
            return Ok(QuotaCheck::Exhausted {
                limit: client.jobs_per_day,
            });
        }
        let bytes = (used + 1).to_string();
        self.store
            .put(&[Put::new(&key, bytes.as_bytes())
                .expiring(std::time::Duration::from_secs(2 * 86_400))])?;
        Ok(QuotaCheck::Admitted {
            left: client.jobs_per_day - used - 1,
        })
    }

    /// Cancels a job that is not final yet. A running job's miner is told
    /// to kill it (by the router, with `JobCancel`).
    pub async fn cancel(&self, id: &str) -> Result<Option<OrganicJob>, GatewayError> {
        let now = self.now_ms();
        let mut running_on = None;
        self.transition(id, |j| {
            if j.state.is_final() {
                return false;
            }
            let detail = match (j.state, j.miner) {
                (JobState::Running, Some(miner)) => {
                    running_on = Some(miner);
                    "cancelled by the client; the miner is told to stop it"
                }
                _ => "cancelled by the client",
            };
            j.error = Some("cancelled".into());
            j.note(JobState::Cancelled, detail, now);
            true
        })
        .await?;
        if let Some(miner) = running_on {
            self.to_cancel
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id.to_owned(), miner));
            self.wake.notify_one();
        }
        self.book.get(id)
    }

    fn lock_logs(&self) -> std::sync::MutexGuard<'_, HashMap<String, FetchedLog>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The line number to ask job `id`'s miner from next.
    pub fn log_offset(&self, id: &str) -> u64 {
        self.lock_logs().get(id).map_or(0, |l| l.next)
    }

    /// Adds lines a miner sent for job `id`.
    pub fn add_logs(&self, id: &str, reply: &LogsReply) {
        {
            let mut all = self.lock_logs();
            if !all.contains_key(id) && all.len() >= MAX_LOGGED_JOBS {
                let active = self.lock_active();
                if let Some(old) = all.keys().find(|k| !active.contains_key(*k)).cloned() {
                    all.remove(&old);
                }
            }
            let log = all.entry(id.to_owned()).or_default();
            for line in &reply.lines {
                if line.n >= log.next {
                    log.bytes += line.text.len();
                    log.lines.push_back(line.clone());
                }
            }
            log.next = log.next.max(reply.next);
            while log.lines.len() > crate::market::logs::MAX_LINES
                || log.bytes > crate::market::logs::MAX_BYTES
            {
                match log.lines.pop_front() {
                    Some(old) => log.bytes -= old.text.len(),
                    None => break,
                }
            }
        }
        if !reply.lines.is_empty() {
            let _ = self.changed.send(id.to_owned());
        }
    }

    /// Job `id`'s kept output lines numbered `from` and after.
    pub fn log_lines(&self, id: &str, from: u64) -> Vec<LogEntry> {
        self.lock_logs().get(id).map_or_else(Vec::new, |l| {
            l.lines.iter().filter(|e| e.n >= from).cloned().collect()
        })
    }

    /// The running jobs cancelled since last asked, with their miners.
    pub fn take_cancels(&self) -> Vec<(String, AccountId)> {
        std::mem::take(&mut *self.to_cancel.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads job `id`, lets `change` edit it and, when it returns true,
    /// writes it back: one transition at a time.
    pub async fn transition(
        &self,
        id: &str,
        change: impl FnOnce(&mut OrganicJob) -> bool,
    ) -> Result<bool, GatewayError> {
        let _one = self.transitions.lock().await;
        let Some(mut job) = self.book.get(id)? else {
            return Ok(false);
        };
        if !change(&mut job) {
            return Ok(false);
        }
        self.book.update(&job)?;
        if job.state.is_final() {
            self.forget(id);
        }
        if job.state == JobState::Finished && !job.accounted {
            self.lock_unaccounted().insert(id.to_owned());
        }
        let _ = self.changed.send(id.to_owned());
        Ok(true)
    }

    fn lock_unaccounted(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.unaccounted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finished jobs for the validator's books: the runs to pay and the
    /// miners to penalise (a cross-check mismatch), with the job ids to pass
    /// to [`Gateway::mark_accounted`] once recorded. Jobs whose cross-check
    /// is still running wait.
    pub fn organic_work(&self) -> Result<OrganicWork, GatewayError> {
        let ids: Vec<String> = self.lock_unaccounted().iter().cloned().collect();
        let mut work = OrganicWork::default();
        for id in ids {
            let Some(job) = self.book.get(&id)? else {
                self.lock_unaccounted().remove(&id);
                continue;
            };
            if !job.to_account() {
                if job.accounted {
                    self.lock_unaccounted().remove(&id);
                }
                continue;
            }
            let Some(miner) = job.miner else { continue };
            match &job.cross_check {
                Some(CrossCheck::Mismatch { detail, .. }) => {
                    work.penalties.push(OrganicPenalty {
                        job_id: job.id.clone(),
                        miner,
                        reason: detail.clone(),
                    });
                }
                _ => {
                    let started = job.entered(JobState::Running).unwrap_or(job.created_ms);
                    let ended = job.entered(JobState::Finished).unwrap_or(started);
                    work.runs.push(OrganicRun {
                        job_id: job.id.clone(),
                        miner,
                        class: job.order.class.clone(),
                        started_s: started / 1000,
                        ended_s: ended / 1000,
                    });
                }
            }
            work.ids.push(job.id);
        }
        Ok(work)
    }

    /// For a gateway whose finished jobs no validator takes into its books
    /// (`akihabara gateway serve`): marks what [`Gateway::organic_work`]
    /// lists as accounted, paying and penalising no one, and returns it.
    /// Without this, a finished job never settles: its record never
    /// expires, and the list of jobs waiting for the books grows without
    /// end. Call it as often as a validator would account.
    pub async fn settle_without_books(&self) -> Result<OrganicWork, GatewayError> {
        let work = self.organic_work()?;
        self.mark_accounted(&work.ids).await?;
        Ok(work)
    }

    /// [`Gateway::settle_without_books`] every `every` until `shutdown`
    /// resolves, logging what a validator would have acted on (a miner a
    /// cross-check caught) and any error (the next turn tries again).
    /// `akihabara gateway serve` runs it every 30 s; an `every` under 1 ms
    /// is taken as 1 ms.
    pub async fn settle_without_books_every(
        &self,
        every: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let every = every.max(std::time::Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => return,
            }
            match self.settle_without_books().await {
                Ok(work) => {
                    for p in &work.penalties {
                        tracing::warn!(
                            job = %p.job_id, miner = %p.miner, reason = %p.reason,
                            "a cross-check caught a miner (no validator here to penalise it)"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "settling finished jobs"),
            }
        }
    }

    /// Marks jobs as taken into the validator's books.
    pub async fn mark_accounted(&self, ids: &[String]) -> Result<(), GatewayError> {
        for id in ids {
            self.transition(id, |j| {
                j.accounted = true;
                true
            })
            .await?;
            self.lock_unaccounted().remove(id);
        }
        Ok(())
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ids of the jobs not yet final.
    pub fn active_jobs(&self) -> Vec<String> {
        self.lock_active().keys().cloned().collect()
    }

    /// Drops `id` from the unfinished set.
    pub fn forget(&self, id: &str) {
        self.lock_active().remove(id);
    }

    /// Resolves when a job is submitted.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Ids of jobs as they change.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// Whether signed timestamp `ts_ms` from `hotkey` may be used, without
    /// using it (see [`Gateway::use_signature`]).
    pub fn signature_freshness(
        &self,
        hotkey: &AccountId,
        ts_ms: u64,
    ) -> Result<Freshness, GatewayError> {
        let mut seen = self.signed.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.freshness(&mut seen, hotkey, ts_ms)?)
    }

    /// Uses signed timestamp `ts_ms` from `hotkey` when it is later than the
    /// last one it used (so a captured request cannot be replayed), and
    /// records it in the store before answering [`Freshness::Fresh`]: a
    /// restarted gateway on the same store refuses it too.
    pub fn use_signature(&self, hotkey: &AccountId, ts_ms: u64) -> Result<Freshness, GatewayError> {
        let mut seen = self.signed.lock().unwrap_or_else(|p| p.into_inner());
        let freshness = self.freshness(&mut seen, hotkey, ts_ms)?;
        if freshness == Freshness::Fresh {
            let value = ts_ms.to_string();
            self.store
                .put(&[Put::new(&signed_key(hotkey), value.as_bytes())])?;
            seen.insert(*hotkey, Some(ts_ms));
        }
        Ok(freshness)
    }

    /// `ts_ms` against the last timestamp `hotkey` used, read from the store
    /// once per run. A hotkey the store has no timestamp of may not use one
    /// from before a gateway first opened the store.
    fn freshness(
        &self,
        seen: &mut HashMap<AccountId, Option<u64>>,
        hotkey: &AccountId,
        ts_ms: u64,
    ) -> Result<Freshness, StoreError> {
        let last = match seen.get(hotkey) {
            Some(&last) => last,
            None => {
                let key = signed_key(hotkey);
                let last = match self.store.get(&key)? {
                    None => None,
                    Some(bytes) => Some(parse_ms(&key, &bytes)?),
                };
                seen.insert(*hotkey, last);
                last
            }
        };
        Ok(match last {
            Some(last) if ts_ms <= last => Freshness::Reused,
            Some(_) => Freshness::Fresh,
            None if ts_ms < self.opened_ms => Freshness::BeforeStart,
            None => Freshness::Fresh,
        })
    }
}
