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
            "akihabara_axon_requests",
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
        r.register(
            "schedule_changes",
            "Windows whose schedule the miner took up",
            self.schedule_changes.clone(),
        );
        r.register(
            "challenges_sent",
            "Proof-of-work rounds started",
            self.challenges_sent.clone(),
        );
        r.register(
            "challenges_passed",
            "Rounds whose openings verified",
            self.challenges_passed.clone(),
        );
        r.register(
            "challenges_failed",
            "Rounds that failed or were rejected",
            self.challenges_failed.clone(),
        );
        if let Some(h) = &self.verify_seconds {
            r.register(
                "verify_seconds",
                "Time of one round: challenge, open, verify",
                h.clone(),
            );
        }
        r.register(
            "weights_set",
            "Weight submissions that landed (set, commit, reveal)",
            self.weights_set.clone(),
        );
        r.register(
            "chain_errors",
            "Chain calls that failed",
            self.chain_errors.clone(),
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

/// Binds the metrics port (failing clearly when it is taken) and serves
/// `/health` and `/metrics` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
    axon: Option<Arc<AxonStats>>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for /health and /metrics: {e}"))?;
    let local = listener.local_addr()?;
    let registry = Arc::new(metrics.registry(axon));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
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
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok((local, task))
}
