//! `/health` and `/metrics` (Prometheus text format) on the metrics port.
//!
//! Metric names (all prefixed `akihabara_`):
//! - `schedule_changes_total`: windows whose schedule the miner took up.
//! - `challenges_sent_total`, `challenges_passed_total`,
//!   `challenges_failed_total`: proof-of-work rounds a validator ran.
//! - `verify_seconds`: histogram of a validator's round time (challenge,
//!   open, verify).
//! - `weights_set_total`: weight submissions that landed (set, commit or reveal).
//! - `chain_errors_total`: failed chain calls.
//! - `axon_requests_total{status}`: requests the axon answered, by HTTP status.
//! - `block`: the last chain block seen.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use akihabara_core::axon::AxonStats;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;

/// The daemon's counters.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub schedule_changes: Counter,
    pub challenges_sent: Counter,
    pub challenges_passed: Counter,
    pub challenges_failed: Counter,
    pub verify_seconds: Option<Histogram>,
    pub weights_set: Counter,
    pub chain_errors: Counter,
    pub block: Gauge,
}

/// Reads the axon's own counters at scrape time.
#[derive(Debug)]
struct AxonRequests(Arc<AxonStats>);

impl Collector for AxonRequests {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut metric = encoder.encode_descriptor(
            // The registry adds the `akihabara_` prefix.
            "axon_requests",
            "Requests the axon answered, by HTTP status",
            None,
            MetricType::Counter,
        )?;
        for (status, n) in self.0.by_status() {
            let labels = [("status", status.to_string())];
            ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            verify_seconds: Some(Histogram::new(exponential_buckets(0.01, 2.0, 14))),
            ..Metrics::default()
        }
    }

    fn registry(&self, axon: Option<Arc<AxonStats>>) -> Registry {
        let mut r = Registry::with_prefix("akihabara");
        let counters = |r: &mut Registry, list: &[(&str, &str, &Counter)]| {
            for (name, help, counter) in list {
                r.register(*name, *help, (*counter).clone());
            }
        };
        counters(
            &mut r,
            &[
                (
                    "schedule_changes",
                    "Windows whose schedule the miner took up",
                    &self.schedule_changes,
                ),
                (
                    "challenges_sent",
                    "Proof-of-work rounds started",
                    &self.challenges_sent,
                ),
                (
                    "challenges_passed",
                    "Rounds whose openings verified",
                    &self.challenges_passed,
                ),
                (
                    "challenges_failed",
                    "Rounds that failed or were rejected",
                    &self.challenges_failed,
                ),
            ],
        );
        if let Some(h) = &self.verify_seconds {
            r.register(
                "verify_seconds",
                "Time of one round: challenge, open, verify",
                h.clone(),
            );
        }
        counters(
            &mut r,
            &[
                (
                    "weights_set",
                    "Weight submissions that landed (set, commit, reveal)",
                    &self.weights_set,
                ),
                (
                    "chain_errors",
                    "Chain calls that failed",
                    &self.chain_errors,
                ),
            ],
        );
        r.register("block", "The last chain block seen", self.block.clone());
        if let Some(stats) = axon {
            r.register_collector(Box::new(AxonRequests(stats)));
        }
        r
    }
}

/// What `/health` reports.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    role: &'static str,
    state: Mutex<serde_json::Map<String, serde_json::Value>>,
    chain_error: Mutex<Option<String>>,
}

impl Health {
    pub fn new(role: &'static str) -> Arc<Health> {
        Arc::new(Health {
            started: Instant::now(),
            role,
            state: Mutex::new(serde_json::Map::new()),
            chain_error: Mutex::new(None),
        })
    }

    /// Sets one field of the report.
    pub fn set(&self, key: &str, value: serde_json::Value) {
        if let Ok(mut s) = self.state.lock() {
            s.insert(key.to_owned(), value);
        }
    }

    /// The chain answered.
    pub fn chain_ok(&self) {
        if let Ok(mut e) = self.chain_error.lock() {
            *e = None;
        }
    }

    /// The chain failed; the daemon keeps serving and retries.
    pub fn chain_failed(&self, error: String) {
        if let Ok(mut e) = self.chain_error.lock() {
            *e = Some(error);
        }
    }

    /// 200 with `"status":"ok"`, or 503 with `"status":"degraded"` while
    /// the chain is failing.
    fn report(&self) -> (StatusCode, serde_json::Value) {
        let error = self.chain_error.lock().ok().and_then(|e| e.clone());
        let mut body = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        body.insert("role".into(), self.role.into());
        body.insert("uptime_s".into(), self.started.elapsed().as_secs().into());
        body.insert(
            "chain".into(),
            match &error {
                None => json!({"ok": true}),
                Some(e) => json!({"ok": false, "error": e}),
            },
        );
        let status = if error.is_none() { "ok" } else { "degraded" };
        body.insert("status".into(), status.into());
        let code = if error.is_none() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, serde_json::Value::Object(body))
    }
}

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Connections the metrics port keeps open at once (scrapers are few).
const MAX_CONNECTIONS: usize = 32;
/// Time a metrics client has to send its request headers; also ends idle
/// keep-alive connections.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest a metrics connection stays open, whatever it does.
const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// Binds the metrics port (failing clearly when it is taken) and serves
/// `/health` and `/metrics` until the task is dropped. At most
/// [`MAX_CONNECTIONS`] are open at once (more are closed as accepted), and
/// each is closed when idle or old, so the port cannot hold the descriptors
/// the axon needs.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
    axon: Option<Arc<AxonStats>>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_limited(addr, metrics, health, axon, MAX_CONNECTIONS, HEADER_TIMEOUT).await
}

async fn serve_limited(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
    axon: Option<Arc<AxonStats>>,
    max_connections: usize,
    header_timeout: std::time::Duration,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let limit = akihabara_core::axon::ConnectionLimit::new(max_connections, max_connections);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for /health and /metrics: {e}"))?;
    let local = listener.local_addr()?;
    let registry = Arc::new(metrics.registry(axon));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // Out of file descriptors, say: wait instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let Some(admitted) = limit.admit(peer.ip()) else {
                drop(stream);
                continue;
            };
            // A scraper that stops reading does not keep its place.
            let _ = akihabara_core::axon::limit_stuck_sends(&stream, header_timeout);
            let (registry, health) = (registry.clone(), health.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (registry, health) = (registry.clone(), health.clone());
                        async move {
                            Ok::<_, Infallible>(match (req.method(), req.uri().path()) {
                                (&hyper::Method::GET, "/metrics") => {
                                    let mut text = String::new();
                                    match prometheus_client::encoding::text::encode(
                                        &mut text, &registry,
                                    ) {
                                        Ok(()) => reply(
                                            StatusCode::OK,
                                            "text/plain; version=0.0.4; charset=utf-8",
                                            text,
                                        ),
                                        Err(e) => reply(
                                            StatusCode::INTERNAL_SERVER_ERROR,
                                            "text/plain",
                                            e.to_string(),
                                        ),
                                    }
                                }
                                (&hyper::Method::GET, "/health") => {
                                    let (code, body) = health.report();
                                    reply(code, "application/json", body.to_string())
                                }
                                (_, "/metrics" | "/health") => reply(
                                    StatusCode::METHOD_NOT_ALLOWED,
                                    "text/plain",
                                    "use GET\n".into(),
                                ),
                                _ => reply(
                                    StatusCode::NOT_FOUND,
                                    "text/plain",
                                    "try /health or /metrics\n".into(),
                                ),
                            })
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(io, service);
                let _ = tokio::time::timeout(
                    CONNECTION_LIFETIME,
                    akihabara_core::axon::serve_connection(conn, &admitted, std::future::pending()),
                )
                .await;
                drop(admitted);
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    /// A miner's metrics port on loopback that keeps at most 4 connections,
    /// with `header_timeout`.
    async fn serve_four(
        header_timeout: std::time::Duration,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        serve_limited(
            "127.0.0.1:0".parse().expect("addr"),
            Metrics::new(),
            Health::new("miner"),
            None,
            4,
            header_timeout,
        )
        .await
        .expect("serve")
    }

    /// A scraper that pipelines requests and never reads the answers is cut
    /// off within seconds, not after the connection's 60 s lifetime while
    /// it holds one of the few places. Either guard alone does it (each was
    /// removed in turn, and the test failed only with both gone): the send
    /// limit (`limit_stuck_sends`, at the header timeout) and hyper's
    /// header timeout, which runs while the next pipelined request waits.
    #[tokio::test]
    async fn a_scraper_that_stops_reading_is_cut_off() {
        let (addr, task) = serve_four(std::time::Duration::from_secs(1)).await;
        // 20,000 pipelined scrapes: tens of MB of answers, far more than
        // the socket buffers hold.
        let request = b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n";
        let outcome = akihabara_core::axon::pipeline_and_stop_reading(addr, request, 20_000)
            .await
            .expect("connect");
        assert!(
            outcome.is_ok(),
            "still open after 5 s of reading: {outcome:?} bytes"
        );
        task.abort();
    }

    /// Issue 23, finding 5: idle connections to the metrics port are capped
    /// and closed after the header timeout, and /metrics still answers.
    #[tokio::test]
    async fn idle_metrics_connections_are_capped_and_timed_out() {
        let (addr, task) = serve_four(std::time::Duration::from_millis(500)).await;
        let mut idle = Vec::new();
        for _ in 0..10 {
            idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        async fn closed(s: &mut tokio::net::TcpStream) -> bool {
            let mut b = [0u8; 1];
            let d = std::time::Duration::from_millis(100);
            matches!(
                tokio::time::timeout(d, s.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        }
        let mut closed_now = 0;
        for s in &mut idle {
            closed_now += usize::from(closed(s).await);
        }
        assert_eq!(closed_now, 6, "the 6 over the cap are closed at once");
        // The 4 admitted ones are closed by the header timeout.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let mut closed_later = 0;
        for s in &mut idle {
            closed_later += usize::from(closed(s).await);
        }
        assert_eq!(closed_later, 10);
        use tokio::io::AsyncWriteExt as _;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("read");
        assert!(
            body.lines().any(|l| l == "akihabara_block 0"),
            "no block gauge in {body}"
        );
        task.abort();
    }
}
