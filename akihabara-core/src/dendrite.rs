//! The dendrite: calls axons, signed, concurrently (feature `net`).
//!
//! Failures map to statuses the way the Python dendrite maps them, so callers
//! can treat both alike: connection refused 503 `Service unavailable`, timeout
//! 408 `Request timeout`, a broken response body 400 `Payload error`, a
//! response that is not JSON (or too large) 422 `Failed to parse response`,
//! other client errors 500 `Client error`.
//!
//! # Nonces under concurrency
//!
//! Axons require nonces to increase strictly per `{hotkey}:{uuid}`. Python's
//! dendrite uses one uuid for all calls, so two concurrent calls that reach an
//! axon out of order fail with 401. This dendrite keeps a pool of uuids
//! ("lanes"): a lane carries one call at a time, and nonces come from a
//! single counter that never goes backwards (`max(time_ns, last + 1)`), so no
//! axon can see a lane's nonces out of order.
//!
//! Lanes belong to one axon, and at most [`MAX_IN_FLIGHT_PER_AXON`] calls are
//! in flight to one axon at once (further calls wait for a lane, within their
//! timeout). So an axon never sees more of this dendrite's uuids than it
//! remembers per hotkey ([`protocol::MAX_UUIDS_PER_HOTKEY`]): it never evicts
//! one, and never raises the floor that an eviction leaves above a call
//! still in flight.
//!
//! ```no_run
//! use akihabara_core::dendrite::{AxonTarget, Dendrite};
//! use akihabara_core::protocol::Ping;
//! use akihabara_core::wallet::Keypair;
//! use std::time::Duration;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let dendrite = Dendrite::new(Keypair::from_uri("//Alice")?)?;
//! let target = AxonTarget::new("127.0.0.1".parse()?, 8091, "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".parse()?);
//! let reply = dendrite.call(&target, Ping::new("hello", 1), Duration::from_secs(12)).await;
//! assert_eq!(reply.status, 200);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::AccountId;
use crate::protocol::{self, Envelope, PROTOCOL_VERSION, Synapse, TerminalInfo, btauth};
use crate::wallet::Keypair;

/// Where to send a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxonTarget {
    /// Axon IP.
    pub ip: IpAddr,
    /// Axon port.
    pub port: u16,
    /// The axon's hotkey (signed into every call).
    pub hotkey: AccountId,
}

impl AxonTarget {
    /// A target.
    pub fn new(ip: IpAddr, port: u16, hotkey: AccountId) -> AxonTarget {
        AxonTarget { ip, port, hotkey }
    }

    fn url(&self, name: &str) -> String {
        match self.ip {
            IpAddr::V4(ip) => format!("http://{ip}:{}/{name}", self.port),
            IpAddr::V6(ip) => format!("http://[{ip}]:{}/{name}", self.port),
        }
    }
}

/// How calls prove who sent them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// `bt_header_*` headers, as bittensor 6–10 (default).
    #[default]
    Legacy,
    /// `btauth/1` headers, as bittensor 11.
    BtAuth,
}

/// Most calls one dendrite has in flight to one axon; more wait for a lane.
/// As many as an axon remembers uuids per hotkey, and as many connections as
/// an akihabara axon takes from one IP address by default.
pub const MAX_IN_FLIGHT_PER_AXON: usize = protocol::MAX_UUIDS_PER_HOTKEY;

/// Axons whose idle lanes are kept; past this many, idle axons' lanes are
/// dropped (their next calls take new uuids).
const MAX_AXONS_WITH_LANES: usize = 4096;

/// Longest a call waits for its TCP connection, whatever its timeout: an
/// axon address whose host is gone (the chain keeps it) costs a validator
/// this, not a whole call's timeout (a minute for proof-of-work calls).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest [`CallResult::message`] kept from an axon's answer (longer ones
/// are cut): the message reaches logs, errors and stored records.
pub const MAX_CALL_MESSAGE: usize = 1024;

/// The outcome of one call. `status` is 200 on success; otherwise the
/// axon's status or the mapped client failure, with `message`.
#[derive(Clone, Debug)]
pub struct CallResult<S> {
    /// HTTP status (or the mapped failure).
    pub status: u16,
    /// `Success` or the reason, at most [`MAX_CALL_MESSAGE`] bytes.
    pub message: String,
    /// The answer, on 200.
    pub synapse: Option<S>,
    /// What the axon said about itself (on 200).
    pub axon: TerminalInfo,
    /// Wall time of the call.
    pub elapsed: Duration,
    /// Whether the axon answered over HTTP. `false` when the call failed
    /// before any answer (connection refused: 503, timeout: 408, a request
    /// that could not be built: 500); `status` is then the Python
    /// dendrite's mapping of that failure, not the axon's word.
    pub answered: bool,
}

impl<S> CallResult<S> {
    /// Whether the axon answered 200.
    pub fn is_success(&self) -> bool {
        self.status == 200
    }
}

/// A client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct DendriteError(#[source] reqwest::Error);

/// Calls axons. Cheap to clone; clones share nonces and lanes.
#[derive(Clone)]
pub struct Dendrite {
    inner: Arc<Inner>,
}

struct Inner {
    keypair: Keypair,
    hotkey: String,
    client: reqwest::Client,
    last_nonce: AtomicU64,
    lanes: Mutex<HashMap<(IpAddr, u16), Arc<AxonLanes>>>,
    ip: String,
    auth: AuthMode,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Dendrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dendrite({})", self.inner.hotkey)
    }
}

/// One axon's lanes: the idle uuids, and a permit per call in flight.
struct AxonLanes {
    idle: Mutex<Vec<String>>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// A call's lane; returns its uuid to the axon's idle lanes when the call ends.
struct Lane {
    uuid: String,
    lanes: Arc<AxonLanes>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Lane {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.lanes.idle.lock() {
            idle.push(std::mem::take(&mut self.uuid));
        }
    }
}

/// A reqwest client builder, with rustls' crypto provider (ring) installed
/// for the process first: build every HTTP client of this workspace with it.
/// (reqwest's TLS takes the process's provider; without one it panics.)
pub fn http_client() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Another part of the program may have installed one: that is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

impl Dendrite {
    /// A dendrite signing with `keypair` (a hotkey), legacy auth.
    pub fn new(keypair: Keypair) -> Result<Dendrite, DendriteError> {
        Dendrite::with_options(keypair, AuthMode::Legacy, "0.0.0.0")
    }

    /// A dendrite with an auth mode and the IP it reports as its own.
    pub fn with_options(
        keypair: Keypair,
        auth: AuthMode,
        ip: &str,
    ) -> Result<Dendrite, DendriteError> {
        let client = http_client()
            .pool_max_idle_per_host(256)
            // An axon's address is the chain's word: a redirect would
            // re-send a signed call (307, 308) to any address it names.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(DendriteError)?;
        Ok(Dendrite {
            inner: Arc::new(Inner {
                hotkey: keypair.account().to_ss58(),
                keypair,
                client,
                last_nonce: AtomicU64::new(0),
                lanes: Mutex::new(HashMap::new()),
                ip: ip.to_owned(),
                auth,
                max_response_bytes: 16 << 20,
            }),
        })
    }

    /// The signing hotkey.
    pub fn hotkey(&self) -> &str {
        &self.inner.hotkey
    }

    /// Whether `other` is a clone of this dendrite (one budget of calls in
    /// flight per axon, one nonce sequence).
    ///
    /// ```
    /// use akihabara_core::dendrite::Dendrite;
    /// use akihabara_core::wallet::Keypair;
    /// let kp = Keypair::from_uri("//Alice")?;
    /// let d = Dendrite::new(kp.clone())?;
    /// assert!(d.shares_with(&d.clone()));
    /// assert!(!d.shares_with(&Dendrite::new(kp)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shares_with(&self, other: &Dendrite) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A nonce above every nonce this dendrite gave before.
    pub fn next_nonce(&self) -> u64 {
        let now = protocol::unix_nanos();
        let mut prev = self.inner.last_nonce.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self.inner.last_nonce.compare_exchange_weak(
                prev,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// The lanes to `target`'s axon.
    fn axon_lanes(&self, target: &AxonTarget) -> Arc<AxonLanes> {
        let mut all = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !all.contains_key(&(target.ip, target.port)) && all.len() >= MAX_AXONS_WITH_LANES {
            // Only the map holds an idle axon's lanes.
            all.retain(|_, lanes| Arc::strong_count(lanes) > 1);
        }
        all.entry((target.ip, target.port))
            .or_insert_with(|| {
                Arc::new(AxonLanes {
                    idle: Mutex::new(Vec::new()),
                    in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT_PER_AXON)),
                })
            })
            .clone()
    }

    /// A free lane to `target`, waiting while [`MAX_IN_FLIGHT_PER_AXON`]
    /// calls to it are in flight.
    async fn lane(&self, target: &AxonTarget) -> Result<Lane, tokio::sync::AcquireError> {
        let lanes = self.axon_lanes(target);
        let permit = lanes.in_flight.clone().acquire_owned().await?;
        let reused = lanes.idle.lock().ok().and_then(|mut l| l.pop());
        Ok(Lane {
            uuid: reused.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            lanes,
            _permit: permit,
        })
    }

    /// Calls one axon with `synapse`, waiting at most `timeout`.
    pub async fn call<S: Synapse>(
        &self,
        target: &AxonTarget,
        synapse: S,
        timeout: Duration,
    ) -> CallResult<S> {
        let start = Instant::now();
        let fail = |status: u16, message: String| CallResult {
            status,
            message: protocol::clip_text(message, MAX_CALL_MESSAGE),
            synapse: None,
            axon: TerminalInfo::default(),
            elapsed: start.elapsed(),
            answered: false,
        };
        // The axon's own answer, refused or unreadable.
        let refused = |status: u16, message: String| CallResult {
            answered: true,
            ..fail(status, message)
        };
        let lane = match tokio::time::timeout(timeout, self.lane(target)).await {
            Ok(Ok(lane)) => lane,
            Ok(Err(closed)) => return fail(500, format!("Client error: {closed}")),
            Err(_) => {
                return fail(
                    408,
                    format!(
                        "Request timeout after {} seconds (waiting for one of the \
                         {MAX_IN_FLIGHT_PER_AXON} calls in flight to this axon)",
                        timeout.as_secs_f64()
                    ),
                );
            }
        };
        // The time spent waiting for the lane counts against the timeout,
        // and the axon is told what is left.
        let timeout_left = timeout.saturating_sub(start.elapsed());
        let (body, headers) = match self.prepare(target, synapse, timeout_left, &lane.uuid) {
            Ok(x) => x,
            Err(e) => return fail(500, format!("Client error: {e}")),
        };
        let mut req = self
            .inner
            .client
            .post(target.url(S::NAME))
            .timeout(timeout_left)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        // The synapse's own bound on its answer, within the dendrite's.
        let max_answer = S::MAX_ANSWER_BYTES.min(self.inner.max_response_bytes);
        let result = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let json = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let bytes = read_limited(resp, max_answer).await?;
            Ok::<_, CallFailure>((status, json, bytes))
        }
        .await;
        drop(lane);
        let (status, json, bytes) = match result {
            Ok(x) => x,
            Err(CallFailure::Http(e)) => {
                let (status, message) = map_error(&e, target, S::NAME, timeout);
                return fail(status, message);
            }
            Err(CallFailure::TooLarge) => {
                return refused(
                    422,
                    format!("Failed to parse response: larger than {max_answer} bytes"),
                );
            }
        };
        if !json {
            return refused(422, "Failed to parse response: not application/json".into());
        }
        if status != 200 {
            // Only the message is read: the rest is skipped unbuilt.
            #[derive(serde::Deserialize)]
            struct Refusal {
                message: Option<String>,
            }
            let message = serde_json::from_slice::<Refusal>(&bytes)
                .ok()
                .and_then(|r| r.message)
                .unwrap_or_default();
            return refused(status, message);
        }
        match protocol::parse_body::<S>(&bytes) {
            Ok(env) => CallResult {
                status,
                message: env
                    .axon
                    .as_ref()
                    .and_then(|a| a.status_message.clone())
                    .map_or_else(
                        || "Success".into(),
                        |m| protocol::clip_text(m, MAX_CALL_MESSAGE),
                    ),
                axon: env.axon.unwrap_or_default(),
                synapse: Some(env.body),
                elapsed: start.elapsed(),
                answered: true,
            },
            Err(e) => refused(422, format!("Failed to parse response: {e}")),
        }
    }

    /// Builds the body and headers of one call.
    pub(crate) fn prepare<S: Synapse>(
        &self,
        target: &AxonTarget,
        synapse: S,
        timeout: Duration,
        uuid: &str,
    ) -> Result<(Vec<u8>, Headers), String> {
        let nonce = self.next_nonce();
        let axon_hotkey = target.hotkey.to_ss58();
        let mut env = Envelope::new(synapse);
        env.timeout = Some(timeout.as_secs_f64());
        env.axon = Some(TerminalInfo {
            ip: Some(target.ip.to_string()),
            port: Some(target.port as i64),
            hotkey: Some(axon_hotkey.clone()),
            ..TerminalInfo::default()
        });
        let mut dendrite = TerminalInfo {
            ip: Some(self.inner.ip.clone()),
            version: Some(PROTOCOL_VERSION as i64),
            nonce: Some(nonce),
            uuid: Some(uuid.to_owned()),
            hotkey: Some(self.inner.hotkey.clone()),
            ..TerminalInfo::default()
        };
        match self.inner.auth {
            AuthMode::Legacy => {
                let hash = protocol::synapse_body_hash(&env).map_err(|e| e.to_string())?;
                let msg =
                    protocol::signing_message(nonce, &self.inner.hotkey, &axon_hotkey, uuid, &hash);
                dendrite.signature = Some(self.inner.keypair.sign(msg.as_bytes()).to_string());
                env.dendrite = Some(dendrite);
                let headers = protocol::headers::request_headers(&env, &hash);
                let body = serde_json::to_vec(&env).map_err(|e| e.to_string())?;
                Ok((body, headers))
            }
            AuthMode::BtAuth => {
                env.dendrite = Some(dendrite);
                let body = serde_json::to_vec(&env).map_err(|e| e.to_string())?;
                let path = format!("/{}", S::NAME);
                let mut headers: Vec<(String, String)> = btauth::sign(
                    &self.inner.keypair,
                    "POST",
                    &path,
                    &body,
                    Some(&target.hotkey),
                    nonce,
                )
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                headers.push((
                    "timeout".into(),
                    protocol::pystr::py_float_repr(timeout.as_secs_f64()),
                ));
                Ok((body, headers))
            }
        }
    }

    /// Calls many axons with the same synapse, at most `concurrency` at once;
    /// results come back in the order of `targets`.
    pub async fn call_many<S: Synapse + Clone>(
        &self,
        targets: &[AxonTarget],
        synapse: &S,
        timeout: Duration,
        concurrency: usize,
    ) -> Vec<CallResult<S>> {
        let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in targets.iter().enumerate() {
            let (d, t, s, limit) = (self.clone(), t.clone(), synapse.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (i, d.call(&t, s, timeout).await)
            });
        }
        let mut out: Vec<Option<CallResult<S>>> = (0..targets.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, r)) = joined {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| CallResult {
                    status: 500,
                    message: "Client error: the call task failed".into(),
                    synapse: None,
                    axon: TerminalInfo::default(),
                    elapsed: Duration::ZERO,
                    answered: false,
                })
            })
            .collect()
    }
}

/// Header name/value pairs of one request.
type Headers = Vec<(String, String)>;

enum CallFailure {
    Http(reqwest::Error),
    TooLarge,
}

impl From<reqwest::Error> for CallFailure {
    fn from(e: reqwest::Error) -> CallFailure {
        CallFailure::Http(e)
    }
}

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, CallFailure> {
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(CallFailure::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Err(CallFailure::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn map_error(
    e: &reqwest::Error,
    target: &AxonTarget,
    name: &str,
    timeout: Duration,
) -> (u16, String) {
    if e.is_timeout() && e.is_connect() {
        (
            408,
            format!(
                "Request timeout: no connection to {} within {} seconds",
                std::net::SocketAddr::new(target.ip, target.port),
                CONNECT_TIMEOUT.as_secs_f64().min(timeout.as_secs_f64())
            ),
        )
    } else if e.is_timeout() {
        (
            408,
            format!("Request timeout after {} seconds", timeout.as_secs_f64()),
        )
    } else if e.is_connect() {
        (
            503,
            format!(
                "Service unavailable at {}:{}/{name}",
                target.ip, target.port
            ),
        )
    } else if e.is_body() || e.is_decode() {
        (400, format!("Payload error: {e}"))
    } else {
        (500, format!("Client error: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// The lanes of axons no call is using are dropped past
    /// `MAX_AXONS_WITH_LANES` axons; an axon with a call in flight keeps its.
    #[test]
    fn idle_axons_lanes_are_dropped_past_the_cap() {
        let d = Dendrite::new(Keypair::from_uri("//Alice").unwrap()).unwrap();
        let target = |i: usize| {
            let ip = std::net::Ipv4Addr::from(0x7f00_0000 + i as u32);
            AxonTarget::new(IpAddr::V4(ip), 8091, d.inner.keypair.account())
        };
        let busy = d.axon_lanes(&target(0));
        for i in 1..=MAX_AXONS_WITH_LANES + 10 {
            drop(d.axon_lanes(&target(i)));
        }
        let all = d.inner.lanes.lock().unwrap();
        assert!(all.len() <= MAX_AXONS_WITH_LANES, "{}", all.len());
        assert!(
            all.len() > 10,
            "dropped more than the idle ones: {}",
            all.len()
        );
        assert!(Arc::ptr_eq(&all[&(target(0).ip, 8091)], &busy));
    }

    /// A hostile axon on loopback: reads one request, sends `answer` (a
    /// whole HTTP response) and holds the connection open, so the answer
    /// is not cut, until the returned task is aborted.
    async fn canned_axon(answer: String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let hostile = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = hostile.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = hostile.accept().await.unwrap();
            let mut buf = vec![0u8; 64 << 10];
            let _ = conn.read(&mut buf).await.unwrap();
            let _ = conn.write_all(answer.as_bytes()).await;
            let _ = conn.read(&mut buf).await;
        });
        (addr, server)
    }

    /// A `Ping` from //Alice to //Bob's axon at `addr`.
    async fn ping(addr: SocketAddr, timeout: Duration) -> CallResult<crate::protocol::Ping> {
        let d = Dendrite::new(Keypair::from_uri("//Alice").unwrap()).unwrap();
        let bob = Keypair::from_uri("//Bob").unwrap().account();
        let target = AxonTarget::new(addr.ip(), addr.port(), bob);
        d.call(&target, crate::protocol::Ping::new("x", 1), timeout)
            .await
    }

    /// A hostile axon that answers 307 to another address: the dendrite
    /// does not re-send the signed call there, and reports the 307.
    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let location = format!("http://{}/Ping", elsewhere.local_addr().unwrap());
        let body = r#"{"message":"moved"}"#;
        let (addr, server) = canned_axon(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let reply = ping(addr, Duration::from_secs(5)).await;
        assert_eq!((reply.status, reply.message.as_str()), (307, "moved"));
        let followed = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
        assert!(followed.is_err(), "the call was re-sent to {followed:?}");
        server.abort();
    }

    /// A host that is gone (SYNs unanswered: here a listener whose queue is
    /// full) costs a call CONNECT_TIMEOUT, not its whole timeout.
    #[tokio::test]
    async fn a_host_that_never_answers_costs_the_connect_timeout() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fills the queue; later SYNs are dropped.
        let _queued = tokio::net::TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let reply = ping(addr, Duration::from_secs(60)).await;
        let took = start.elapsed();
        assert_eq!(reply.status, 408, "{}", reply.message);
        assert_eq!(
            reply.message,
            format!("Request timeout: no connection to {addr} within 5 seconds")
        );
        assert!(!reply.answered);
        assert!(took < Duration::from_secs(15), "{took:?}");
    }

    /// An answer larger than its synapse's bound (Ping: 64 KiB) is refused
    /// unparsed, though far below the dendrite's 16 MiB.
    #[tokio::test]
    async fn an_answer_over_its_synapses_bound_is_refused() {
        let body = format!(r#"{{"message":"m","x":[{}0]}}"#, "0,".repeat(40_000));
        let (addr, server) = canned_axon(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let reply = ping(addr, Duration::from_secs(5)).await;
        assert_eq!(
            (reply.status, reply.message.as_str()),
            (422, "Failed to parse response: larger than 65536 bytes")
        );
        server.abort();
    }
}
