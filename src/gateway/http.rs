//! The gateway's HTTP API, on hyper: routes, authentication, budgets.
//!
//! Budgets, per the internet-facing rules of this workspace: at most
//! [`HttpSettings::max_connections`] connections (and a share per address;
//! at the cap a new connection takes the place of the one idle longest),
//! a deadline for the request head and for the body, a body cap, a lifetime
//! per connection, and the client's rate limit checked before its body is
//! read.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::AccountId;
use crate::axon::{ConnectionLimit, Serving, serve_connection};
use crate::wallet::{Signature, verify};

use super::GatewayError;
use super::jobs::OrganicJob;
use super::keys::Client;
use super::order::JobOrder;
use super::service::{Freshness, Gateway, SubmitError};

/// The OpenAPI 3.1 document the gateway serves at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Headers of a request signed with an sr25519 hotkey.
pub const HEADER_HOTKEY: &str = "x-akihabara-hotkey";
/// The signing time, ms since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "x-akihabara-timestamp";
/// The signature, `0x` and 128 hex digits.
pub const HEADER_SIGNATURE: &str = "x-akihabara-signature";

/// How far a signed timestamp may be from the gateway's clock.
pub const SIGNATURE_WINDOW_MS: u64 = 60_000;

/// The bytes a hotkey client signs for the gateway whose id is `gateway`
/// ([`Gateway::id`], shown by `GET /health`): the id, so that no other
/// gateway accepts the request, then the method, the path, the timestamp
/// and the body's SHA-256 in hex, a line each.
///
/// ```
/// use akihabara::gateway::http::signing_message;
/// let m = signing_message("gw-00112233445566778899aabbccddeeff", "GET", "/v1/jobs", 1_700_000_000_000, b"");
/// assert_eq!(
///     String::from_utf8(m).unwrap(),
///     "akihabara-gateway/2\ngw-00112233445566778899aabbccddeeff\nGET\n/v1/jobs\n1700000000000\n\
///      e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn signing_message(
    gateway: &str,
    method: &str,
    path: &str,
    timestamp_ms: u64,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "akihabara-gateway/2\n{gateway}\n{method}\n{path}\n{timestamp_ms}\n{}",
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

/// The HTTP budgets.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// Connections open at once. At the cap a new connection takes the
    /// place of the one idle longest (no request being answered, a log
    /// stream included), which is closed.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_ip: usize,
    /// Time to send the request head.
    pub header_timeout: Duration,
    /// Time to send the body.
    pub body_timeout: Duration,
    /// Largest body.
    pub max_body: usize,
    /// The longest a connection stays open (a log stream included).
    pub connection_lifetime: Duration,
    /// How long an answer may sit unsent or unacknowledged (a client that
    /// stopped reading) before the connection is closed.
    pub send_timeout: Duration,
}

impl HttpSettings {
    /// Log streams open at once: half the connections (at least one), and
    /// at most [`MAX_STREAMS`](super::MAX_STREAMS).
    ///
    /// ```
    /// use akihabara::gateway::http::HttpSettings;
    /// let s = HttpSettings { max_connections: 10, ..HttpSettings::default() };
    /// assert_eq!(s.max_streams(), 5);
    /// assert_eq!(HttpSettings::default().max_streams(), 128);
    /// ```
    pub fn max_streams(&self) -> usize {
        (self.max_connections / 2).clamp(1, super::service::MAX_STREAMS)
    }
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            max_connections: 256,
            max_connections_per_ip: 32,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            connection_lifetime: Duration::from_secs(3600),
            send_timeout: Duration::from_secs(30),
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn reply(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(full(format!("{value}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An error answer: `{"error": …, "field": …}`.
fn error(status: u16, field: Option<&str>, message: impl std::fmt::Display) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    reply(
        status,
        &json!({"error": message.to_string(), "field": field}),
    )
}

/// A bound gateway listener, ready to [`serve`](Listener::serve).
#[derive(Debug)]
pub struct Listener {
    listener: tokio::net::TcpListener,
    settings: HttpSettings,
}

impl Listener {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr, settings: HttpSettings) -> Result<Listener, GatewayError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Listen { addr, source })?;
        Ok(Listener { listener, settings })
    }

    /// The address it listens on (the port, when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, GatewayError> {
        self.listener
            .local_addr()
            .map_err(|source| GatewayError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
    }

    /// Serves `gateway` until `stop` resolves.
    pub async fn serve(self, gateway: Arc<Gateway>, stop: impl std::future::Future<Output = ()>) {
        let settings = Arc::new(self.settings);
        let limit = ConnectionLimit::new(settings.max_connections, settings.max_connections_per_ip);
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                () = &mut stop => return,
                a = self.listener.accept() => a,
            };
            let Ok((stream, peer)) = accepted else {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Some(permit) = limit.admit(peer.ip()) else {
                drop(stream);
                continue;
            };
            let _ = akihabara_core::axon::limit_stuck_sends(&stream, settings.send_timeout);
            let (gateway, settings) = (gateway.clone(), settings.clone());
            tokio::spawn(async move {
                let (s, tracker) = (settings.clone(), permit.tracker());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (gateway, settings) = (gateway.clone(), s.clone());
                    // Serving until the answer's body is sent (a log
                    // stream included): till then it is not evicted.
                    let serving = tracker.serving();
                    async move {
                        let answer = route(&gateway, &settings, req, peer.ip()).await;
                        Ok::<_, Infallible>(answer.map(|body| {
                            Tracked {
                                body,
                                _serving: serving,
                            }
                            .boxed()
                        }))
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(settings.header_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(
                    settings.connection_lifetime,
                    serve_connection(conn, &permit, std::future::pending()),
                )
                .await;
                drop(permit);
            });
        }
    }
}

/// One request.
async fn route(
    gateway: &Arc<Gateway>,
    settings: &HttpSettings,
    req: Request<Incoming>,
    peer: std::net::IpAddr,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["openapi.json"]) => {
            let mut r = Response::new(full(OPENAPI));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        (&Method::GET, ["health"]) => reply(
            StatusCode::OK,
            &json!({"status": "ok", "gateway_id": gateway.id()}),
        ),
        (_, ["v1", "jobs", ..]) => {
            let known = matches!(
                (&method, &segments[2..]),
                (&Method::POST | &Method::GET, [])
                    | (&Method::GET | &Method::DELETE, [_])
                    | (&Method::GET, [_, "logs"])
            );
            if !known {
                return error(405, None, format!("{method} {path} is not a route"));
            }
            let (parts, body) = req.into_parts();
            let client = match authenticate(gateway, &parts.headers) {
                Ok(c) => c,
                Err(r) => return *r,
            };
            // A key client is known by now; a hotkey client only once its
            // signature holds: a stranger's forged requests must not spend
            // the client's rate.
            let over_rate = |client: &Client| {
                (!gateway.clients().allow_request(client)).then(|| {
                    error(
                        429,
                        None,
                        format!("over the rate limit of {} requests/s", client.rate_per_s),
                    )
                })
            };
            if client.signature.is_none()
                && let Some(r) = over_rate(&client.client)
            {
                return r;
            }
            // Checking a signature costs the body and the curve arithmetic:
            // an address that sent many bad ones waits before it costs more.
            if client.signature.is_some() && !gateway.bad_signatures().allowed(peer) {
                return error(
                    429,
                    None,
                    format!(
                        "more than {MAX_BAD_SIGNATURES} requests with bad signatures from this \
                         address in a minute; wait"
                    ),
                );
            }
            let body = match read_body(settings, &parts.headers, body).await {
                Ok(b) => b,
                Err(r) => return *r,
            };
            if let Some(check) = &client.signature {
                if let Err(r) = check.verify(gateway, &method, &path, &body) {
                    gateway.bad_signatures().failed(peer);
                    return *r;
                }
                if let Some(r) = over_rate(&client.client) {
                    return r;
                }
                if let Err(r) = check.used(gateway) {
                    return *r;
                }
            }
            let client = client.client;
            match (&method, &segments[2..]) {
                (&Method::POST, []) => submit(gateway, &client, &parts.headers, &body).await,
                (&Method::GET, []) => list(gateway, &client),
                (&Method::GET, [id]) => match owned(gateway, &client, id) {
                    Ok(job) => reply(StatusCode::OK, &view(&job)),
                    Err(r) => *r,
                },
                (&Method::DELETE, [id]) => cancel(gateway, &client, id).await,
                (&Method::GET, [id, "logs"]) => logs(gateway, settings, &client, id),
                _ => error(405, None, format!("{method} {path} is not a route")),
            }
        }
        _ => error(
            404,
            None,
            format!("no route {path}; the API is described at /openapi.json"),
        ),
    }
}

/// Requests with bad signatures one caller network (an IPv4 address, an
/// IPv6 /64) may send within a minute of its first before its signed
/// requests are refused unread (429) until that minute is over.
pub const MAX_BAD_SIGNATURES: u32 = 30;
/// Caller networks whose bad signatures are counted one by one at once.
/// Beyond, a newcomer is counted with its block (an IPv4 /24, an IPv6 /48;
/// [`akihabara_core::addr::caller_block`]), up to [`MAX_COUNTED_BLOCKS`]
/// blocks, and only past those with every other newcomer: a flood of bad
/// signatures from many networks locks out its own blocks first, and
/// newcomers elsewhere only once it spans more than that many blocks.
pub const MAX_COUNTED_NETWORKS: usize = 4096;
/// See [`MAX_COUNTED_NETWORKS`].
pub const MAX_COUNTED_BLOCKS: usize = 1024;

/// What a count of bad signatures is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Counted {
    Network(std::net::IpAddr),
    Block(std::net::IpAddr),
    Everyone,
}

/// Bad signatures per caller network: a count, and when it started (a count
/// older than a minute starts again).
#[derive(Debug, Default)]
pub struct BadSignatures {
    counts: std::sync::Mutex<std::collections::HashMap<Counted, (u64, u32)>>,
}

/// How long a count of bad signatures lasts, ms.
const BAD_SIGNATURE_WINDOW_MS: u64 = 60_000;

impl BadSignatures {
    fn now() -> u64 {
        crate::market::server::unix_millis()
    }

    fn current((since, _): &(u64, u32), now: u64) -> bool {
        now.saturating_sub(*since) < BAD_SIGNATURE_WINDOW_MS
    }

    /// Whether `peer` may still have a signature checked.
    pub fn allowed(&self, peer: std::net::IpAddr) -> bool {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = Self::now();
        let key = Self::key(&counts, peer);
        !counts
            .get(&key)
            .is_some_and(|c| Self::current(c, now) && c.1 >= MAX_BAD_SIGNATURES)
    }

    /// Counts a bad signature from `peer`.
    pub fn failed(&self, peer: std::net::IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = Self::now();
        let network = Counted::Network(akihabara_core::addr::caller_network(peer));
        if counts.len() >= MAX_COUNTED_NETWORKS && !counts.contains_key(&network) {
            counts.retain(|_, c| Self::current(c, now));
        }
        let key = Self::key(&counts, peer);
        let entry = counts.entry(key).or_insert((now, 0));
        if !Self::current(entry, now) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// `peer`'s network while there is room to count it, else its block,
    /// else everyone's shared count.
    fn key(
        counts: &std::collections::HashMap<Counted, (u64, u32)>,
        peer: std::net::IpAddr,
    ) -> Counted {
        let network = Counted::Network(akihabara_core::addr::caller_network(peer));
        if counts.contains_key(&network) || counts.len() < MAX_COUNTED_NETWORKS {
            return network;
        }
        let block = Counted::Block(akihabara_core::addr::caller_block(peer));
        if counts.contains_key(&block) || counts.len() < MAX_COUNTED_NETWORKS + MAX_COUNTED_BLOCKS {
            return block;
        }
        Counted::Everyone
    }
}

/// A client found from its headers, and the signature still to check
/// against the body.
struct Authenticated {
    client: Client,
    signature: Option<SignatureCheck>,
}

struct SignatureCheck {
    hotkey: AccountId,
    timestamp_ms: u64,
    signature: Signature,
}

impl SignatureCheck {
    fn verify(
        &self,
        gateway: &Gateway,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<(), Box<Response<Body>>> {
        let message = signing_message(gateway.id(), method.as_str(), path, self.timestamp_ms, body);
        if !verify(&self.hotkey, &message, &self.signature) {
            return Err(Box::new(error(
                401,
                Some(HEADER_SIGNATURE),
                format!(
                    "the signature does not verify for this hotkey, this gateway ({}), method, \
                     path, timestamp and body (akihabara-gateway/2)",
                    gateway.id()
                ),
            )));
        }
        // Only looked at here: the timestamp is used once the rate lets the
        // request through (`used`), so a request refused with 429 can be
        // sent again as it is.
        stale(gateway.signature_freshness(&self.hotkey, self.timestamp_ms))
    }

    /// Uses the timestamp (recorded in the store); an error if another
    /// request used it first.
    fn used(&self, gateway: &Gateway) -> Result<(), Box<Response<Body>>> {
        stale(gateway.use_signature(&self.hotkey, self.timestamp_ms))
    }
}

/// The answer to a signed timestamp that may not be used, if it may not.
fn stale(freshness: Result<Freshness, GatewayError>) -> Result<(), Box<Response<Body>>> {
    let reason = match freshness {
        Ok(Freshness::Fresh) => return Ok(()),
        Err(e) => return Err(Box::new(error(500, None, e))),
        Ok(Freshness::Reused) => {
            "a timestamp this hotkey already used (each request signs a later one)"
        }
        Ok(Freshness::BeforeStart) => {
            "signed before this gateway's store was created, by a hotkey it has no record \
             of (it could be a request an earlier gateway accepted); sign it anew"
        }
    };
    Err(Box::new(error(401, Some(HEADER_TIMESTAMP), reason)))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(field: &str, why: impl std::fmt::Display) -> Box<Response<Body>> {
    let mut r = error(401, Some(field), why);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"akihabara-gateway\""),
    );
    Box::new(r)
}

/// Who is calling: an API key (`Authorization: Bearer akh_…`) or a hotkey's
/// signature headers. Nothing of the body is read before this passes.
fn authenticate(
    gateway: &Gateway,
    headers: &HeaderMap,
) -> Result<Authenticated, Box<Response<Body>>> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let key = auth
            .to_str()
            .ok()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("authorization", "use `Authorization: Bearer <key>`"))?;
        let client = gateway
            .clients()
            .by_key(key)
            .map_err(|e| Box::new(error(500, None, e)))?
            .ok_or_else(|| unauthorized("authorization", "unknown or revoked API key"))?;
        return Ok(Authenticated {
            client,
            signature: None,
        });
    }
    let Some(hotkey) = header_str(headers, HEADER_HOTKEY) else {
        return Err(unauthorized(
            "authorization",
            format!(
                "authenticate with `Authorization: Bearer <key>` or the {HEADER_HOTKEY}, \
                 {HEADER_TIMESTAMP} and {HEADER_SIGNATURE} headers"
            ),
        ));
    };
    let hotkey: AccountId = hotkey
        .parse()
        .map_err(|e| unauthorized(HEADER_HOTKEY, format!("not an SS58 address: {e}")))?;
    let timestamp_ms: u64 = header_str(headers, HEADER_TIMESTAMP)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| unauthorized(HEADER_TIMESTAMP, "must be ms since the Unix epoch"))?;
    if gateway.now_ms().abs_diff(timestamp_ms) > SIGNATURE_WINDOW_MS {
        return Err(unauthorized(
            HEADER_TIMESTAMP,
            format!(
                "more than {} s from the gateway's clock",
                SIGNATURE_WINDOW_MS / 1000
            ),
        ));
    }
    let signature = header_str(headers, HEADER_SIGNATURE)
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
        .map(Signature)
        .ok_or_else(|| unauthorized(HEADER_SIGNATURE, "must be 0x and 64 bytes of hex"))?;
    let client = gateway
        .clients()
        .by_hotkey(&hotkey)
        .map_err(|e| Box::new(error(500, None, e)))?
        .ok_or_else(|| unauthorized(HEADER_HOTKEY, "this hotkey is not a client"))?;
    Ok(Authenticated {
        client,
        signature: Some(SignatureCheck {
            hotkey,
            timestamp_ms,
            signature,
        }),
    })
}

/// The body, within its cap and deadline.
async fn read_body(
    settings: &HttpSettings,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Bytes, Box<Response<Body>>> {
    let too_large = || {
        Box::new(error(
            413,
            Some("body"),
            format!("the body is over {} bytes", settings.max_body),
        ))
    };
    if let Some(len) =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|l| l.parse::<u64>().ok())
        && len > settings.max_body as u64
    {
        return Err(too_large());
    }
    let read = Limited::new(body, settings.max_body).collect();
    match tokio::time::timeout(settings.body_timeout, read).await {
        Err(_) => Err(Box::new(error(
            408,
            Some("body"),
            format!(
                "the body did not arrive within {} s",
                settings.body_timeout.as_secs()
            ),
        ))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Box::new(error(400, Some("body"), e))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// A JSON parse error as `(field, message)`: `body` for text that is not
/// JSON, else the path to the bad value or unknown field.
fn parse_error(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let inner = e.inner().to_string();
    if e.inner().is_syntax() || e.inner().is_eof() {
        return ("body".to_owned(), format!("not JSON: {inner}"));
    }
    let path = e.path().to_string();
    let path = if path == "." || path == "?" {
        String::new()
    } else {
        path
    };
    // The path ends at the bad value, or at an unknown field's own name.
    let field = if path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    (field, inner)
}

async fn submit(
    gateway: &Gateway,
    client: &Client,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Body> {
    let json_type = header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.split(';').next().map(str::trim) == Some("application/json"));
    if !json_type {
        return error(
            415,
            Some("content-type"),
            "send the order as application/json",
        );
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let order: JobOrder = match serde_path_to_error::deserialize(de) {
        Ok(o) => o,
        Err(e) => {
            let (field, message) = parse_error(&e);
            return error(400, Some(&field), message);
        }
    };
    // The cheap checks first: nothing is fetched for an order they refuse.
    if let Err(f) = gateway.rules().check(&order) {
        return error(f.status, Some(&f.field), f.reason);
    }
    // A client over its quota costs no outbound requests.
    match gateway.quota_exhausted(client) {
        Ok(Some(limit)) => return error(429, None, SubmitError::Quota { limit }),
        Ok(None) => {}
        Err(e) => return error(500, None, e),
    }
    if let Some(busy) = gateway.busy(client) {
        return error(429, None, busy);
    }
    if !order.inputs.is_empty() || !order.outputs.is_empty() {
        // One order's files checked at a time per client: each check is
        // up to 32 outbound requests, not yet paid for by the quota.
        let _checking = match gateway.start_preflight(client) {
            Ok(t) => t,
            Err(crate::market::flight::Full::Caller(_)) => {
                return error(
                    429,
                    None,
                    "the files of another order of yours are being checked; send this one after",
                );
            }
            Err(crate::market::flight::Full::All(n)) => {
                return error(
                    503,
                    None,
                    format!(
                        "{n} orders' files are being checked, the most the gateway does at once"
                    ),
                );
            }
        };
        if let Err(f) = gateway.rules().preflight(&order).await {
            return error(f.status, Some(&f.field), f.reason);
        }
    }
    match gateway.submit(client, order) {
        Ok(job) => {
            let mut r = reply(StatusCode::CREATED, &view(&job));
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(SubmitError::Field(f)) => error(f.status, Some(&f.field), f.reason),
        Err(e @ (SubmitError::Quota { .. } | SubmitError::Busy { .. })) => error(429, None, e),
        Err(e) => error(500, None, e),
    }
}

fn view(job: &OrganicJob) -> Value {
    serde_json::to_value(job).unwrap_or_else(|e| json!({"id": job.id, "error": e.to_string()}))
}

fn list(gateway: &Gateway, client: &Client) -> Response<Body> {
    match gateway.book().list_owned(&client.id) {
        Ok(jobs) => {
            let mine: Vec<Value> = jobs
                .iter()
                .map(|j| {
                    json!({
                        "id": j.id,
                        "state": j.state,
                        "class": j.order.class,
                        "miner": j.miner,
                        "exit_code": j.exit_code,
                        "created_ms": j.created_ms,
                    })
                })
                .collect();
            reply(StatusCode::OK, &json!({ "jobs": mine }))
        }
        Err(e) => error(500, None, e),
    }
}

/// The job, when it is the client's (another client's is 404, as if absent).
fn owned(gateway: &Gateway, client: &Client, id: &str) -> Result<OrganicJob, Box<Response<Body>>> {
    match gateway.book().get(id) {
        Ok(Some(j)) if j.owner == client.id => Ok(j),
        Ok(_) => Err(Box::new(error(404, Some("id"), format!("no job {id}")))),
        Err(e) => Err(Box::new(error(500, None, e))),
    }
}

async fn cancel(gateway: &Gateway, client: &Client, id: &str) -> Response<Body> {
    let job = match owned(gateway, client, id) {
        Ok(j) => j,
        Err(r) => return *r,
    };
    if job.state.is_final() {
        return error(
            409,
            Some("id"),
            format!("job {id} is already {}", job.state.as_str()),
        );
    }
    match gateway.cancel(id).await {
        Ok(Some(j)) => reply(StatusCode::OK, &view(&j)),
        Ok(None) => error(404, Some("id"), format!("no job {id}")),
        Err(e) => error(500, None, e),
    }
}

/// `text/event-stream` of the job: each state change as `event: state`
/// (a `JobEvent`) and each output line as `event: log` (`{n, stream,
/// text}`), those so far first, then as they come, until the job is final.
fn logs(
    gateway: &Arc<Gateway>,
    settings: &HttpSettings,
    client: &Client,
    id: &str,
) -> Response<Body> {
    let job = match owned(gateway, client, id) {
        Ok(j) => j,
        Err(r) => return *r,
    };
    let ticket = match gateway.open_stream(client, settings.max_streams()) {
        Ok(t) => t,
        Err(crate::market::flight::Full::Caller(n)) => {
            return error(
                429,
                None,
                format!("you have {n} log streams open, the most a client may"),
            );
        }
        Err(crate::market::flight::Full::All(n)) => {
            return error(
                503,
                None,
                format!("{n} log streams are open, the most the gateway holds"),
            );
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let body = EventBody(rx);
    let mut changes = gateway.changes();
    let gateway = gateway.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        // Given back when the stream ends (the client hung up, or the job
        // is final).
        let _ticket = ticket;
        let (mut events, mut lines) = (0usize, 0u64);
        let mut job = job;
        loop {
            // What is new: states, then lines.
            let mut frames: Vec<Bytes> = job.history.iter().skip(events).map(sse).collect();
            events = job.history.len();
            for line in gateway.log_lines(&id, lines) {
                lines = line.n.saturating_add(1);
                frames.push(sse_log(&line));
            }
            for frame in frames {
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
            if job.state.is_final() {
                return;
            }
            loop {
                let next = tokio::select! {
                    // The client hung up: give the stream's place back now,
                    // not at the next keep-alive.
                    () = tx.closed() => return,
                    next = tokio::time::timeout(Duration::from_secs(15), changes.recv()) => next,
                };
                match next {
                    // A comment line keeps proxies from closing an idle stream.
                    Err(_) => {
                        if tx
                            .send(Bytes::from_static(b": keep-alive\n\n"))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                    Ok(Ok(changed)) if changed != id => {}
                    Ok(_) => break,
                }
            }
            let Ok(Some(fresh)) = gateway.book().get(&id) else {
                return;
            };
            job = fresh;
        }
    });
    let mut r = Response::new(body.boxed());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An answer's body that keeps its connection marked as serving a request
/// until it has been sent.
struct Tracked {
    body: Body,
    _serving: Serving,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// An event stream's body: its frames come through a channel whose sender
/// sees the client hang up (the body is dropped with the connection).
struct EventBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
    }
}

fn sse_log(line: &crate::market::logs::LogEntry) -> Bytes {
    let data = serde_json::to_string(line).unwrap_or_default();
    Bytes::from(format!("event: log\ndata: {data}\n\n"))
}

fn sse(event: &super::jobs::JobEvent) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_default();
    Bytes::from(format!("event: state\ndata: {data}\n\n"))
}
