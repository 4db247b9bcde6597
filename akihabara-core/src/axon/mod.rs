//! The axon: an HTTP server that answers synapses (feature `net`).
//!
//! Each request goes through the same steps as in the Python axon, in the same
//! order, plus the limits a public server needs:
//!
//! 0. connections: at most [`AxonConfig::max_connections`] (at that cap a
//!    new one takes the place of the one that has served no request for
//!    longest, which is closed), and [`AxonConfig::max_connections_per_ip`]
//!    per caller network (an IPv4 address, an IPv6 /64; more are closed at
//!    once); headers must arrive within 30 s, which also ends idle
//!    keep-alive connections;
//! 1. method and route (405, 404), content type (415), declared size (413);
//! 2. headers: legacy `bt_header_*` or `btauth/1` (400 when malformed);
//! 3. blacklist ([`Policy::blacklist`]: 403 `Forbidden. Key is blacklisted: <reason>.`);
//! 4. verify, from the headers alone: freshness, receiver, the replay memory
//!    and (legacy) the signature (401 `Not Verified with error: …`);
//!    `btauth/1` signs the body, so its body is read here, within
//!    [`AxonConfig::body_timeout`] and the [`AxonConfig::max_unverified_bytes`]
//!    budget (503 when spent), then its signature is checked;
//! 5. per-hotkey rate limit (429); only a request it lets through is
//!    recorded in the nonce or replay memory;
//! 6. body (legacy): size (413), within [`AxonConfig::body_timeout`] (408);
//! 7. a worker slot, by [`Policy::priority`] (408 when the timeout passes
//!    first): a slot is only ever held by a verified request whose body is in;
//! 8. JSON (400), body hash (400), then the handler, under the request's
//!    timeout (408), then 200 with the synapse.
//!
//! ```no_run
//! use akihabara_core::axon::{Axon, AxonConfig, AllowAll};
//! use akihabara_core::wallet::Keypair;
//! # async fn run() -> std::io::Result<()> {
//! let hotkey = Keypair::from_uri("//Alice").expect("dev key");
//! let axon = Axon::builder(hotkey)
//!     .config(AxonConfig::default())
//!     .policy(AllowAll)
//!     .builtins(Vec::new)
//!     .bind("127.0.0.1:8091".parse().expect("address"))
//!     .await?;
//! axon.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # CPU per call
//!
//! Signatures are checked in batches on a thread of their own. A verified
//! `Ping` costs about 50 µs of CPU on one core (`cargo bench --bench axon`),
//! a quarter of it in the kernel's loopback TCP. The `akihabara` binary runs
//! on mimalloc; with glibc's allocator the same axon spends about a tenth more,
//! so a program that embeds a busy axon may want a faster global allocator too.

mod connections;
mod gate;
mod policy;
mod verifier;

pub use connections::{
    ConnectionLimit, ConnectionPermit, ConnectionTracker, EVICTION_GRACE, Serving,
    limit_stuck_sends, pipeline_and_stop_reading, serve_connection,
};
pub use policy::{AllowAll, Policy, StakePolicy};

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::http::{HeaderMap, Method, Response, StatusCode, Uri, header};

use crate::AccountId;
use crate::protocol::btauth::{self, ReplayCache, VerifyOptions};
use crate::protocol::{
    self, Envelope, FieldKind, GpuInfo, NoncePolicy, NonceStore, Ping, RequestHeaders, SpecsQuery,
    Synapse, TerminalInfo,
};
use crate::wallet::{Keypair, Signature};
use gate::Gate;
use verifier::Verifier;

/// Limits and knobs of an axon. Defaults suit a miner on a public address.
#[derive(Clone, Debug)]
pub struct AxonConfig {
    /// Largest request body (413 above it). Default 4 MiB.
    pub max_body_bytes: usize,
    /// Requests handled at once; more wait by priority. Default 64.
    pub max_concurrent: usize,
    /// Cap on a request's own timeout. Default 300 s.
    pub max_timeout: Duration,
    /// Timeout when a request names none. Default 12 s (Python's).
    pub default_timeout: Duration,
    /// Per-hotkey token bucket: requests per second and burst. Default none.
    pub rate_limit: Option<RateLimit>,
    /// Legacy nonce bounds.
    pub nonces: NoncePolicy,
    /// `btauth/1` freshness and receiver rules.
    pub btauth: VerifyOptions,
    /// Accept `btauth/1` requests beside the legacy scheme. Default true.
    pub accept_btauth: bool,
    /// Open connections at once. At the cap a new connection takes the
    /// place of the one idle longest (serving no request: idle keep-alive,
    /// or no request yet), which is closed; when every connection is
    /// serving a request, the new one is closed as soon as accepted.
    /// Default 512 (below the usual 1024-descriptor limit).
    pub max_connections: usize,
    /// Open connections from one caller network (an IPv4 address, an IPv6
    /// /64) at once. Default 64.
    pub max_connections_per_ip: usize,
    /// Time a body may take to arrive, from the end of the headers (408
    /// after it). Default 10 s.
    pub body_timeout: Duration,
    /// Body bytes held at once for callers whose signature is not yet
    /// checked (`btauth/1` signs the body, so it is read first); a request
    /// that would exceed it gets 503 at once. Each such body counts as at
    /// least this divided by a quarter of `max_connections` (256 KiB at the
    /// defaults), so at most a quarter of the connections read
    /// unverified bodies at once. Default 32 MiB.
    pub max_unverified_bytes: usize,
    /// How long an answer may sit unsent or unacknowledged (a client that
    /// stopped reading) before the connection is closed. Default 30 s.
    pub send_timeout: Duration,
}

impl Default for AxonConfig {
    fn default() -> AxonConfig {
        AxonConfig {
            max_body_bytes: 4 << 20,
            max_concurrent: 64,
            max_timeout: Duration::from_secs(300),
            default_timeout: Duration::from_secs(12),
            rate_limit: None,
            nonces: NoncePolicy::default(),
            btauth: VerifyOptions::default(),
            accept_btauth: true,
            max_connections: 512,
            max_connections_per_ip: 64,
            body_timeout: Duration::from_secs(10),
            max_unverified_bytes: 32 << 20,
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// A token bucket per hotkey.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second (> 0).
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell (≥ 1).
    pub burst: u32,
}

/// The slowest rate a [`RateLimit`] takes: one request a day (below it the
/// bucket's period would overflow a `Duration`; 1e-300 once panicked).
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// The fastest rate a [`RateLimit`] takes: a million requests a second.
pub const MAX_RATE: f64 = 1e6;

/// Why a rate limit was refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// Not a number of requests per second from [`MIN_RATE`] to [`MAX_RATE`].
    #[error(
        "must be a number of requests per second from one a day (1.16e-5) to 1e6, not {}",
        short_number(*.0)
    )]
    OutOfRange(f64),
    /// A burst of zero requests.
    #[error("a burst must be at least 1")]
    ZeroBurst,
}

/// `1e-300` rather than three hundred zeros.
fn short_number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e9).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

impl RateLimit {
    /// `per_second` requests a second from one hotkey, `burst` at once
    /// (default: one second's worth, at least 1). The one place both bounds
    /// are checked: the axon's flags, the miner's config and the axon
    /// itself all come here.
    ///
    /// ```
    /// use akihabara_core::axon::{RateLimit, RateLimitError};
    /// assert_eq!(RateLimit::new(2.5, None).unwrap().burst, 3);
    /// assert_eq!(RateLimit::new(1e-300, None), Err(RateLimitError::OutOfRange(1e-300)));
    /// assert_eq!(RateLimit::new(1.0, Some(0)), Err(RateLimitError::ZeroBurst));
    /// ```
    pub fn new(per_second: f64, burst: Option<u32>) -> Result<RateLimit, RateLimitError> {
        if !(per_second.is_finite() && (MIN_RATE..=MAX_RATE).contains(&per_second)) {
            return Err(RateLimitError::OutOfRange(per_second));
        }
        // In range, so the cast cannot saturate.
        let burst = burst.unwrap_or(per_second.ceil().max(1.0) as u32);
        if burst == 0 {
            return Err(RateLimitError::ZeroBurst);
        }
        Ok(RateLimit { per_second, burst })
    }
}

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `bt_header_dendrite_signature` (bittensor ≤ 10).
    Legacy,
    /// `btauth/1` (bittensor 11).
    BtAuth,
}

/// The verified caller of a request, given to handlers.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The caller's hotkey (signature checked).
    pub hotkey: AccountId,
    /// Which scheme it used.
    pub scheme: AuthScheme,
    /// TCP peer address.
    pub peer: SocketAddr,
}

/// A handler's refusal, sent as `{"message": …}` with `status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HandlerError {
    /// HTTP status.
    pub status: u16,
    /// Reason, shown to the caller.
    pub message: String,
}

impl HandlerError {
    /// 400: the request cannot be served as asked.
    pub fn bad_request(message: impl Into<String>) -> HandlerError {
        HandlerError {
            status: 400,
            message: message.into(),
        }
    }
    /// 500: this side failed.
    pub fn internal(message: impl Into<String>) -> HandlerError {
        HandlerError {
            status: 500,
            message: message.into(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How long [`AxonBuilder::builtins`] keeps the GPU list it probed.
pub const GPU_LIST_TTL: Duration = Duration::from_secs(30);

/// A probed GPU list and when it was probed.
type Probed = Option<(Instant, Vec<GpuInfo>)>;

/// The GPU list `SpecsQuery` reports, probed once at a time and cached.
struct GpuList {
    probe: Arc<dyn Fn() -> Vec<GpuInfo> + Send + Sync>,
    kept: Arc<tokio::sync::Mutex<Probed>>,
}

impl GpuList {
    fn new(probe: impl Fn() -> Vec<GpuInfo> + Send + Sync + 'static) -> Arc<GpuList> {
        Arc::new(GpuList {
            probe: Arc::new(probe),
            kept: Arc::default(),
        })
    }

    async fn get(&self) -> Result<Vec<GpuInfo>, String> {
        // Callers wait here (and leave when they hang up); the probe holds
        // the lock in a task of its own, so one that outlives its caller
        // still fills the cache and no second probe starts meanwhile.
        let mut kept = self.kept.clone().lock_owned().await;
        if let Some((at, list)) = &*kept
            && at.elapsed() < GPU_LIST_TTL
        {
            return Ok(list.clone());
        }
        let probe = self.probe.clone();
        tokio::spawn(async move {
            let list = tokio::task::spawn_blocking(move || probe())
                .await
                .map_err(|e| format!("probing the host failed: {e}"))?;
            *kept = Some((Instant::now(), list.clone()));
            Ok(list)
        })
        .await
        .map_err(|e| format!("probing the host failed: {e}"))?
    }
}

/// A typed handler, erased.
trait Route: Send + Sync {
    fn required(&self) -> &'static [(&'static str, FieldKind)];
    fn call(&self, body: Bytes, ctx: CallCtx) -> BoxFuture<Result<Vec<u8>, Reject>>;
}

struct CallCtx {
    caller: Caller,
    /// The signed legacy body hash the body must match.
    expected_hash: Option<String>,
    start: Instant,
}

struct TypedRoute<S, F> {
    f: Arc<F>,
    _s: std::marker::PhantomData<fn() -> S>,
}

impl<S, F, Fut> Route for TypedRoute<S, F>
where
    S: Synapse,
    F: Fn(S, Caller) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, HandlerError>> + Send + 'static,
{
    fn required(&self) -> &'static [(&'static str, FieldKind)] {
        S::REQUIRED_FIELDS
    }

    fn call(&self, body: Bytes, ctx: CallCtx) -> BoxFuture<Result<Vec<u8>, Reject>> {
        let f = self.f.clone();
        Box::pin(async move {
            let request_len = body.len();
            let envelope: Envelope<S> =
                protocol::parse_body(&body).map_err(|e| Reject::new(400, e.to_string()))?;
            if let Some(expected) = &ctx.expected_hash {
                let actual = protocol::synapse_body_hash(&envelope)
                    .map_err(|e| Reject::new(400, e.to_string()))?;
                if &actual != expected {
                    return Err(Reject::new(
                        400,
                        format!(
                            "Hash mismatch between header body hash {expected} and parsed body hash {actual}"
                        ),
                    ));
                }
            }
            let Envelope {
                name,
                timeout,
                total_size,
                header_size,
                dendrite,
                axon,
                computed_body_hash,
                body,
            } = envelope;
            let answer = f(body, ctx.caller)
                .await
                .map_err(|e| Reject::new(e.status, e.message))?;
            let mut axon = axon.unwrap_or_default();
            axon.status_code = Some(200);
            axon.status_message = Some("Success".into());
            axon.process_time = Some(ctx.start.elapsed().as_secs_f64());
            let response = Envelope {
                name: name.or_else(|| Some(S::NAME.into())),
                timeout,
                total_size,
                header_size,
                dendrite,
                axon: Some(axon),
                computed_body_hash,
                body: answer,
            };
            // The answer is about the request's size: one allocation, no regrowth.
            let mut out = Vec::with_capacity(request_len + 512);
            serde_json::to_writer(&mut out, &response)
                .map_err(|e| Reject::new(500, format!("cannot encode the response: {e}")))?;
            Ok(out)
        })
    }
}

/// A refusal on the way: status and message.
#[derive(Debug)]
struct Reject {
    status: u16,
    message: String,
}

impl Reject {
    fn new(status: u16, message: impl Into<String>) -> Reject {
        Reject {
            status,
            message: message.into(),
        }
    }
    fn unverified(e: impl std::fmt::Display) -> Reject {
        Reject::new(401, format!("Not Verified with error: {e}"))
    }
}

/// Counts of answered requests by HTTP status (lock-free).
#[derive(Debug)]
pub struct AxonStats {
    by_status: Box<[AtomicU64]>,
    total: AtomicU64,
    refused_connections: AtomicU64,
}

impl Default for AxonStats {
    fn default() -> AxonStats {
        AxonStats {
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
        }
    }
}

impl AxonStats {
    fn refused_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }
    /// Connections closed at once because a connection cap was reached.
    pub fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Ordering::Relaxed)
    }
    fn record(&self, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.by_status.get(status as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// `(status, count)` for every status seen, sorted by status.
    pub fn by_status(&self) -> Vec<(u16, u64)> {
        self.by_status
            .iter()
            .enumerate()
            .filter_map(|(s, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((s as u16, n))
            })
            .collect()
    }
    /// All answered requests.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// Builds an [`Axon`].
pub struct AxonBuilder {
    keypair: Keypair,
    config: AxonConfig,
    policy: Arc<dyn Policy>,
    routes: HashMap<&'static str, Arc<dyn Route>>,
}

impl AxonBuilder {
    /// Replaces the configuration.
    pub fn config(mut self, config: AxonConfig) -> AxonBuilder {
        self.config = config;
        self
    }

    /// Sets the blacklist/priority policy (default [`AllowAll`]).
    pub fn policy(mut self, policy: impl Policy) -> AxonBuilder {
        self.policy = Arc::new(policy);
        self
    }

    /// Serves synapse `S` with `handler`, which gets the request's fields and
    /// the verified caller and returns the answer (the same type, as in Python).
    pub fn route<S, F, Fut>(mut self, handler: F) -> AxonBuilder
    where
        S: Synapse,
        F: Fn(S, Caller) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, HandlerError>> + Send + 'static,
    {
        self.routes.insert(
            S::NAME,
            Arc::new(TypedRoute {
                f: Arc::new(handler),
                _s: std::marker::PhantomData,
            }),
        );
        self
    }

    /// Serves the built-in [`Ping`] and [`SpecsQuery`]; `gpus` lists the GPUs
    /// `SpecsQuery` reports (e.g. [`protocol::nvidia_smi_gpus`]). The list is
    /// probed at most once at a time and kept for [`GPU_LIST_TTL`]: callers
    /// cannot make the axon start a probe (a process, for nvidia-smi) per
    /// call, even by hanging up before the answer.
    pub fn builtins<G>(self, gpus: G) -> AxonBuilder
    where
        G: Fn() -> Vec<GpuInfo> + Send + Sync + 'static,
    {
        let me: Arc<str> = self.keypair.account().to_ss58().into();
        let gpus = GpuList::new(gpus);
        self.route(move |p: Ping, _| {
            let me = me.clone();
            async move {
                p.answer(&me)
                    .ok_or_else(|| HandlerError::bad_request("count + 1 does not fit in 64 bits"))
            }
        })
        .route(move |q: SpecsQuery, _| {
            let gpus = gpus.clone();
            async move {
                let list = if q.include_gpus {
                    gpus.get().await.map_err(HandlerError::internal)?
                } else {
                    Vec::new()
                };
                Ok(protocol::host_specs(q, || list))
            }
        })
    }

    /// Binds the listening socket (port 0 picks a free port).
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<Axon> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let rate = match self.config.rate_limit {
            None => None,
            Some(r) => Some(Arc::new(DefaultKeyedRateLimiter::keyed(quota(r).map_err(
                |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            )?))),
        };
        let inner = Inner {
            hotkey: self.keypair.account(),
            hotkey_ss58: self.keypair.account().to_ss58(),
            verifier: Verifier::new(),
            gate: Gate::new(self.config.max_concurrent.max(1)),
            nonces: Mutex::new(NonceStore::started_at(
                NoncePolicy {
                    max_timeout: self.config.max_timeout,
                    ..self.config.nonces
                },
                protocol::unix_nanos(),
            )),
            replay: Mutex::new(ReplayCache::started_at(
                (self.config.btauth.max_age + self.config.btauth.allowed_skew)
                    .max(Duration::from_secs(60)),
                self.config.nonces.capacity,
                protocol::unix_nanos(),
            )),
            unverified: Arc::new(tokio::sync::Semaphore::new(
                self.config
                    .max_unverified_bytes
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            connections: ConnectionLimit::new(
                self.config.max_connections,
                self.config.max_connections_per_ip,
            ),
            config: self.config,
            policy: self.policy,
            routes: self.routes,
            rate,
            stats: Arc::new(AxonStats::default()),
        };
        Ok(Axon {
            listener,
            inner: Arc::new(inner),
        })
    }
}

fn quota(r: RateLimit) -> Result<Quota, String> {
    // The fields are public: a limit built by hand is checked here too.
    let r = RateLimit::new(r.per_second, Some(r.burst)).map_err(|e| format!("rate limit {e}"))?;
    let burst = NonZeroU32::new(r.burst).ok_or("rate-limit burst must be at least 1")?;
    let period = Duration::try_from_secs_f64(1.0 / r.per_second)
        .map_err(|_| format!("rate limit {} requests/s is out of range", r.per_second))?;
    Quota::with_period(period)
        .map(|q| q.allow_burst(burst))
        .ok_or_else(|| "rate limit is too high".to_owned())
}

struct Inner {
    hotkey: AccountId,
    hotkey_ss58: String,
    verifier: Verifier,
    config: AxonConfig,
    policy: Arc<dyn Policy>,
    routes: HashMap<&'static str, Arc<dyn Route>>,
    gate: Arc<Gate>,
    nonces: Mutex<NonceStore>,
    replay: Mutex<ReplayCache>,
    unverified: Arc<tokio::sync::Semaphore>,
    connections: Arc<ConnectionLimit>,
    rate: Option<Arc<DefaultKeyedRateLimiter<AccountId>>>,
    stats: Arc<AxonStats>,
}

/// A bound axon, ready to serve.
pub struct Axon {
    listener: tokio::net::TcpListener,
    inner: Arc<Inner>,
}

impl Axon {
    /// Starts building an axon that answers as `keypair` (its hotkey).
    pub fn builder(keypair: Keypair) -> AxonBuilder {
        AxonBuilder {
            keypair,
            config: AxonConfig::default(),
            policy: Arc::new(AllowAll),
            routes: HashMap::new(),
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Request counters, shared with the running server.
    pub fn stats(&self) -> Arc<AxonStats> {
        self.inner.stats.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting and finishes
    /// the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let inner = self.inner.clone();
        let sweeper = inner.rate.clone().map(|rate| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    rate.retain_recent();
                    rate.shrink_to_fit();
                }
            })
        });
        // Each connection holds a receiver: at shutdown they are told to
        // close, and the sender's `closed` waits for the last.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let mut shutdown = std::pin::pin!(shutdown);
        let result = loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    // Out of descriptors or a connection reset while queued:
                    // keep serving the connections we have, retry shortly.
                    Err(e) if is_transient(&e) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => break Err(e),
                },
                () = &mut shutdown => break Ok(()),
            };
            let Some(admitted) = inner.connections.admit(peer.ip()) else {
                // Over the cap: close it now, so it holds no descriptor.
                drop(stream);
                inner.stats.refused_connection();
                continue;
            };
            let _ = stream.set_nodelay(true);
            let _ = limit_stuck_sends(&stream, inner.config.send_timeout);
            let inner = inner.clone();
            let tracker = admitted.tracker();
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let (inner, serving) = (inner.clone(), tracker.serving());
                async move {
                    let (parts, body) = req.into_parts();
                    let answer = inner
                        .dispatch(peer, parts.method, parts.uri, parts.headers, body)
                        .await;
                    drop(serving);
                    Ok::<_, std::convert::Infallible>(answer)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                serve_connection(conn, &admitted, async move {
                    let _ = stop.changed().await;
                })
                .await;
                drop(admitted);
            });
        };
        drop(self.listener);
        drop(stop_rx);
        let _ = stop_tx.send(());
        stop_tx.closed().await;
        if let Some(s) = sweeper {
            s.abort();
        }
        result
    }
}

/// A client has this long to send a request's headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept errors that concern one connection or a passing shortage, not the
/// listener itself.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105)) // ENFILE, EMFILE, ENOMEM, ENOBUFS
}

type Body = Full<Bytes>;

/// The request body, read at most once.
fn take_body(body: &mut Option<Incoming>) -> Result<Incoming, Reject> {
    body.take()
        .ok_or_else(|| Reject::new(500, "the request body was already read"))
}

fn json_response(status: u16, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(rej: &Reject) -> Response<Body> {
    let body = serde_json::to_vec(&serde_json::json!({ "message": rej.message }))
        .unwrap_or_else(|_| b"{\"message\":\"error\"}".to_vec());
    let mut r = json_response(rej.status, body);
    let mut h = Vec::new();
    protocol::headers::terminal_headers(
        "bt_header_axon_",
        &TerminalInfo {
            status_code: Some(rej.status as i64),
            ..TerminalInfo::default()
        },
        &mut h,
    );
    for (k, v) in h {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            header::HeaderValue::from_str(&v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

impl Inner {
    async fn dispatch(
        &self,
        peer: SocketAddr,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Incoming,
    ) -> Response<Body> {
        let start = Instant::now();
        let response = match self.pipeline(peer, method, uri, headers, body, start).await {
            Ok(bytes) => json_response(200, bytes),
            Err(rej) => error_response(&rej),
        };
        self.stats.record(response.status().as_u16());
        response
    }

    async fn pipeline(
        &self,
        peer: SocketAddr,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Incoming,
        start: Instant,
    ) -> Result<Vec<u8>, Reject> {
        let mut body = Some(body);
        // 1. Route, method, content type, declared size.
        let name = uri.path().trim_start_matches('/');
        let Some((route_name, route)) = self.routes.get_key_value(name) else {
            let mut names: Vec<&str> = self.routes.keys().copied().collect();
            names.sort_unstable();
            let list = names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Reject::new(
                404,
                format!("Synapse name '{name}' not found. Available synapses [{list}]"),
            ));
        };
        if method != Method::POST {
            return Err(Reject::new(
                405,
                format!("{method} is not allowed; synapses are called with POST"),
            ));
        }
        let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
        let is_json = content_type.is_some_and(|ct| {
            let ct = ct.split(|b| *b == b';').next().unwrap_or_default();
            ct.trim_ascii().eq_ignore_ascii_case(b"application/json")
        });
        if !is_json {
            return Err(Reject::new(415, "the body must be application/json"));
        }
        if let Some(len) = headers.get(header::CONTENT_LENGTH) {
            let len: Option<usize> = len.to_str().ok().and_then(|s| s.parse().ok());
            match len {
                Some(n) if n > self.config.max_body_bytes => {
                    return Err(Reject::new(
                        413,
                        format!(
                            "the body is {n} bytes; this axon accepts at most {}",
                            self.config.max_body_bytes
                        ),
                    ));
                }
                Some(_) => {}
                None => return Err(Reject::new(400, "header `content-length` is invalid")),
            }
        }
        let pairs = || headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));

        // 2–5. Headers, blacklist, verify, rate limit, then record.
        let btauth = self.config.accept_btauth && btauth::is_btauth(pairs());
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let (caller, timeout, expected_hash, body_bytes) = if btauth {
            let auth = btauth::parse(pairs()).map_err(|e| Reject::new(400, e.to_string()))?;
            self.blacklist(route_name, &auth.hotkey)?;
            let timeout = match headers.get("timeout") {
                Some(t) => Some(
                    RequestHeaders::parse([("timeout", t.as_bytes())], &[])
                        .map_err(|e| Reject::new(400, e.to_string()))?
                        .timeout
                        .unwrap_or_default(),
                ),
                None => None,
            };
            // Everything that needs no body, before reading a byte of it.
            btauth::check_fresh(
                &auth,
                &self.hotkey,
                &self.config.btauth,
                protocol::unix_nanos(),
            )
            .map_err(Reject::unverified)?;
            self.replay
                .lock()
                .map_err(|_| Reject::new(500, "replay cache poisoned"))?
                .check(&auth.hotkey, auth.nonce)
                .map_err(Reject::unverified)?;
            // The body is signed: read it, within the unverified budget.
            // Each read is charged at least a share of it, so that at most a
            // quarter of the connections read unverified bodies at once: a
            // stalled one-byte body keeps its connection serving, and so
            // safe from eviction, until the body timeout.
            let share = self.config.max_unverified_bytes / (self.config.max_connections / 4).max(1);
            let want = declared
                .unwrap_or(self.config.max_body_bytes)
                .min(self.config.max_body_bytes)
                .max(share)
                .max(1);
            let _budget = u32::try_from(want)
                .ok()
                .and_then(|n| self.unverified.clone().try_acquire_many_owned(n).ok())
                .ok_or_else(|| {
                    Reject::new(
                        503,
                        "too many unverified request bytes in flight; retry shortly",
                    )
                })?;
            let body = self.read_body_in_time(take_body(&mut body)?).await?;
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            btauth::verify_signature(&auth, method.as_str(), path, &body)
                .map_err(Reject::unverified)?;
            self.rate_limit(&auth.hotkey)?;
            self.replay
                .lock()
                .map_err(|_| Reject::new(500, "replay cache poisoned"))?
                .check_and_store(auth.hotkey, auth.nonce, protocol::unix_nanos())
                .map_err(Reject::unverified)?;
            (auth.hotkey, timeout, None, Some(body))
        } else {
            let h = RequestHeaders::parse(pairs(), route.required())
                .map_err(|e| Reject::new(400, e.to_string()))?;
            let hotkey_str = h
                .dendrite
                .hotkey
                .as_deref()
                .ok_or_else(|| Reject::unverified("Missing hotkey"))?;
            let (hotkey, cached) = self
                .verifier
                .account(hotkey_str)
                .map_err(Reject::unverified)?;
            // Before the key is decompressed (and cached): a refused caller
            // costs an address decode, and cannot push admitted keys out.
            self.blacklist(route_name, &hotkey)?;
            let key = match cached {
                Some(k) => (hotkey, k),
                None => self
                    .verifier
                    .key(hotkey_str, hotkey)
                    .map_err(Reject::unverified)?,
            };
            let hash = self.verify_legacy(&h, hotkey_str, key).await?;
            (hotkey, h.timeout, Some(hash), None)
        };

        // 6. The body of a verified legacy request, before any worker slot.
        let t = timeout.unwrap_or(self.config.default_timeout.as_secs_f64());
        let budget = Duration::from_secs_f64(t.min(self.config.max_timeout.as_secs_f64()));
        let deadline = tokio::time::Instant::from_std(start) + budget;
        let body = match body_bytes {
            Some(b) => b,
            None => self.read_body_in_time(take_body(&mut body)?).await?,
        };

        // 7. A worker slot, by priority, within the timeout.
        let priority = self.policy.priority(route_name, &caller);
        let _permit = match tokio::time::timeout_at(deadline, self.gate.acquire(priority)).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(Reject::new(503, "the axon is shutting down")),
            Err(_) => return Err(Reject::new(408, format!("Response timeout after: {t}s"))),
        };

        // 8. Handler.
        let ctx = CallCtx {
            caller: Caller {
                hotkey: caller,
                scheme: if btauth {
                    AuthScheme::BtAuth
                } else {
                    AuthScheme::Legacy
                },
                peer,
            },
            expected_hash,
            start,
        };
        match tokio::time::timeout_at(deadline, route.call(body, ctx)).await {
            Ok(r) => r,
            Err(_) => Err(Reject::new(408, format!("Response timeout after: {t}s"))),
        }
    }

    /// 429 when `caller` is over its rate.
    fn rate_limit(&self, caller: &AccountId) -> Result<(), Reject> {
        if let Some(rate) = &self.rate
            && rate.check_key(caller).is_err()
        {
            let r = self.config.rate_limit.unwrap_or(RateLimit {
                per_second: 0.0,
                burst: 0,
            });
            return Err(Reject::new(
                429,
                format!(
                    "Rate limit exceeded for {caller}: {} requests/s, burst {}",
                    r.per_second, r.burst
                ),
            ));
        }
        Ok(())
    }

    /// Reads a body within [`AxonConfig::body_timeout`].
    async fn read_body_in_time(&self, body: Incoming) -> Result<Bytes, Reject> {
        let limit = self.config.body_timeout;
        match tokio::time::timeout(limit, self.read_body(body)).await {
            Ok(b) => b,
            Err(_) => Err(Reject::new(
                408,
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            )),
        }
    }

    fn blacklist(&self, synapse: &str, hotkey: &AccountId) -> Result<(), Reject> {
        match self.policy.blacklist(synapse, hotkey) {
            Some(reason) => Err(Reject::new(
                403,
                format!("Forbidden. Key is blacklisted: {reason}."),
            )),
            None => Ok(()),
        }
    }

    /// Nonce and signature of a legacy request; returns the signed body hash.
    async fn verify_legacy(
        &self,
        h: &RequestHeaders,
        hotkey_str: &str,
        key: (AccountId, crate::wallet::VerifyingKey),
    ) -> Result<String, Reject> {
        let caller = key.0;
        let d = &h.dendrite;
        let nonce = d.nonce.ok_or_else(|| Reject::unverified("Missing Nonce"))?;
        let uuid = d.uuid.as_deref().unwrap_or("None");
        self.nonces
            .lock()
            .map_err(|_| Reject::new(500, "nonce store poisoned"))?
            .check(hotkey_str, uuid, nonce, h.timeout, protocol::unix_nanos())
            .map_err(Reject::unverified)?;
        let sig_str = d
            .signature
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Reject::unverified("Missing Signature"))?;
        let body_hash = h
            .computed_body_hash
            .clone()
            .unwrap_or_else(|| "None".into());
        let message =
            protocol::signing_message(nonce, hotkey_str, &self.hotkey_ss58, uuid, &body_hash);
        let good = match sig_str.parse::<Signature>() {
            Ok(sig) => self.verifier.verify(key, message.into_bytes(), sig).await,
            Err(_) => false,
        };
        if !good {
            let message =
                protocol::signing_message(nonce, hotkey_str, &self.hotkey_ss58, uuid, &body_hash);
            return Err(Reject::unverified(format!(
                "Signature mismatch with {message} and {sig_str}"
            )));
        }
        // Only a request the rate limit lets through is remembered.
        self.rate_limit(&caller)?;
        self.nonces
            .lock()
            .map_err(|_| Reject::new(500, "nonce store poisoned"))?
            .accept(hotkey_str, uuid, nonce, h.timeout, protocol::unix_nanos())
            .map_err(Reject::unverified)?;
        Ok(body_hash)
    }

    async fn read_body(&self, body: Incoming) -> Result<Bytes, Reject> {
        use http_body_util::BodyExt as _;
        let limit = self.config.max_body_bytes;
        match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Reject::new(
                413,
                format!("the body is larger than this axon accepts ({limit} bytes)"),
            )),
            Err(e) => Err(Reject::new(400, format!("reading the body failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests;
