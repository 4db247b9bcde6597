//! The gateway over loopback: its HTTP API with real requests, and its
//! router against real miner job services (local executors) behind real
//! axons.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{self, HttpSettings, Listener};
use super::keys::{ClientLimits, QuotaCheck};
use super::*;
use crate::AccountId;
use crate::axon::Axon;
use crate::dendrite::AxonTarget;
use crate::executor::{ExecutorBackend, Fleet, HealthPolicy, LocalBackend};
use crate::market::jobs::{AcceptAll, ReceiptStore};
use crate::market::server::JobService;
use crate::store::{Embedded, Store};
use crate::wallet::Keypair;

fn key(uri: &str) -> Keypair {
    Keypair::from_uri(uri).expect("dev key")
}

fn rules() -> OrderRules {
    OrderRules {
        classes: ["cpu".to_owned()].into(),
        images: ["busybox:latest".to_owned()].into(),
        allow_no_image: true,
        max_timeout_s: 600,
        ..OrderRules::default()
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    gateway: Arc<Gateway>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(gateway: Arc<Gateway>) -> Api {
    serve_with(
        gateway,
        HttpSettings {
            body_timeout: Duration::from_secs(2),
            ..HttpSettings::default()
        },
    )
    .await
}

async fn serve_with(gateway: Arc<Gateway>, settings: HttpSettings) -> Api {
    let listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), settings)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(listener.serve(gateway.clone(), async {
        let _ = rx.await;
    }));
    Api {
        base: format!("http://{addr}"),
        http: akihabara_core::dendrite::http_client()
            .build()
            .expect("client"),
        gateway,
        _stop: tx,
    }
}

impl Api {
    /// `POST /v1/jobs` of `body` as hotkey client `client`, signed by
    /// `signer` (the client itself, or a forger) at `ts`.
    fn signed_post(
        &self,
        client: &Keypair,
        signer: &Keypair,
        ts: u64,
        body: &str,
    ) -> reqwest::RequestBuilder {
        self.signed_post_for(self.gateway.id(), client, signer, ts, body)
    }

    /// The same, signed for the gateway whose id is `gateway_id`.
    fn signed_post_for(
        &self,
        gateway_id: &str,
        client: &Keypair,
        signer: &Keypair,
        ts: u64,
        body: &str,
    ) -> reqwest::RequestBuilder {
        let sig = signer.sign(&http::signing_message(
            gateway_id,
            "POST",
            "/v1/jobs",
            ts,
            body.as_bytes(),
        ));
        self.http
            .post(format!("{}/v1/jobs", self.base))
            .header("content-type", "application/json")
            .header(http::HEADER_HOTKEY, client.account().to_string())
            .header(http::HEADER_TIMESTAMP, ts.to_string())
            .header(http::HEADER_SIGNATURE, sig.to_string())
            .body(body.to_owned())
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = req.send().await.expect("send");
        let status = r.status().as_u16();
        let text = r.text().await.expect("text");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn order(command: &[&str]) -> Value {
    json!({"command": command, "class": "cpu", "timeout_s": 30})
}

fn open(dir: &std::path::Path, store: Arc<dyn Store>, rules: OrderRules) -> Arc<Gateway> {
    Gateway::open(
        store.clone(),
        keys::Clients::new(dir.join("clients.json")),
        rules,
    )
    .expect("open")
}

fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(Embedded::open(dir.join("state.redb")).expect("store"))
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_and_the_document_is_served() {
    let dir = tempfile::tempdir().expect("dir");
    let api = serve(open(dir.path(), store(dir.path()), rules())).await;
    let (status, doc) = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in [
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/job-1"),
        ("DELETE", "/v1/jobs/job-1"),
        ("GET", "/v1/jobs/job-1/logs"),
    ] {
        let (status, body) = api
            .call(method, path, None, Some(&order(&["true"]).to_string()))
            .await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["field"], "authorization", "{body}");
        let (status, _) = api.call(method, path, Some("akh_0000"), Some("{}")).await;
        assert_eq!(status, 401, "{method} {path} with a made-up key");
    }
    let (status, _) = api.call("GET", "/nowhere", None, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_orders_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (_, k) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let api = serve(gateway).await;
    let bad = [
        ("{not json", 400, "body"),
        (
            r#"{"command":["true"],"class":"cpu","timeout_s":30,"colour":"red"}"#,
            400,
            "colour",
        ),
        (
            r#"{"command":"true","class":"cpu","timeout_s":30}"#,
            400,
            "command",
        ),
        (
            r#"{"command":["true"],"class":"cpu","timeout_s":-1}"#,
            400,
            "timeout_s",
        ),
        (
            r#"{"image":"evil:1","command":["true"],"class":"cpu","timeout_s":30}"#,
            422,
            "image",
        ),
        (
            r#"{"command":["true"],"class":"cpu","timeout_s":601}"#,
            400,
            "timeout_s",
        ),
        (
            r#"{"command":["true"],"class":"H100","timeout_s":30}"#,
            422,
            "class",
        ),
        (
            r#"{"command":["true"],"class":"cpu","timeout_s":30,"inputs":[{"url":"file:///etc/passwd","path":"p"}]}"#,
            400,
            "inputs[0].url",
        ),
        (
            r#"{"command":["true"],"class":"cpu","timeout_s":30,"inputs":[{"url":"http://x.test/a","path":"p","size":1}]}"#,
            400,
            "inputs[0].size",
        ),
    ];
    for (body, status, field) in bad {
        let (got, answer) = api.call("POST", "/v1/jobs", Some(&k), Some(body)).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (status, Some(field)),
            "{body}: {answer}"
        );
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    // The gateway's own address as an input.
    let own = format!(
        r#"{{"command":["true"],"class":"cpu","timeout_s":30,"inputs":[{{"url":"{}/v1/jobs","path":"p"}}]}}"#,
        api.base
    );
    let rules_with_self = OrderRules {
        own_addresses: vec![
            api.base
                .trim_start_matches("http://")
                .parse()
                .expect("addr"),
        ],
        ..rules()
    };
    assert_eq!(
        rules_with_self
            .check(&serde_json::from_str(&own).expect("order"))
            .expect_err("own")
            .field,
        "inputs[0].url"
    );
    // Not JSON, and too large.
    let r = api
        .http
        .post(format!("{}/v1/jobs", api.base))
        .bearer_auth(&k)
        .header("content-type", "text/plain")
        .body(order(&["true"]).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 415);
    let huge =
        json!({"command": ["x".repeat(70 * 1024)], "class": "cpu", "timeout_s": 1}).to_string();
    let (status, answer) = api.call("POST", "/v1/jobs", Some(&k), Some(&huge)).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (413, Some("body")),
        "{answer}"
    );
    // A body that stalls: the head and 10 of the 400 declared bytes, then
    // nothing. The gateway answers 408 once `body_timeout` (2 s here) has
    // passed, and closes the connection.
    let mut sock = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {k}\r\n\
         content-type: application/json\r\ncontent-length: 400\r\n\r\n{{\"command\""
    );
    let sent = Instant::now();
    tokio::io::AsyncWriteExt::write_all(&mut sock, head.as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut answer),
    )
    .await
    .expect("the gateway closes a stalled body's connection")
    .expect("read");
    let waited = sent.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408 "),
        "stalled body: {answer}"
    );
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: Value = serde_json::from_str(json).expect("a JSON error");
    assert_eq!(json["field"], "body", "{json}");
    assert!(
        waited >= Duration::from_millis(1900),
        "answered after {waited:?}, before the body deadline"
    );
    // Nothing bad was queued.
    assert!(api.gateway.book().ids().expect("ids").is_empty());
}

#[test]
fn client_limits_out_of_bounds_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    let clients = keys::Clients::new(dir.path().join("clients.json"));
    let ok = ClientLimits::default();
    let cases = [
        (
            ClientLimits {
                rate_per_s: 0.0,
                ..ok.clone()
            },
            "rate 0 requests/s",
        ),
        (
            ClientLimits {
                rate_per_s: f64::NAN,
                ..ok.clone()
            },
            "rate NaN requests/s",
        ),
        (
            ClientLimits {
                rate_per_s: 10_001.0,
                ..ok.clone()
            },
            "rate 10001 requests/s",
        ),
        (
            ClientLimits {
                burst: 0,
                ..ok.clone()
            },
            "burst 0 is not",
        ),
        (
            ClientLimits {
                burst: 10_001,
                ..ok.clone()
            },
            "burst 10001 is not",
        ),
        (
            ClientLimits {
                jobs_per_day: 0,
                ..ok.clone()
            },
            "a quota of 0 jobs",
        ),
    ];
    for (limits, says) in cases {
        let e = clients.add_key("k", &limits, 0).expect_err("out of bounds");
        assert!(e.to_string().contains(says), "{limits:?}: {e}");
        let e = clients
            .add_hotkey("h", key("//Alice").account(), &limits, 0)
            .expect_err("out of bounds");
        assert!(e.to_string().contains(says), "{limits:?}: {e}");
    }
    assert!(clients.list().expect("list").is_empty());
    // The bounds themselves are admitted.
    let edge = ClientLimits {
        rate_per_s: 10_000.0,
        burst: 10_000,
        jobs_per_day: 1,
    };
    clients
        .add_key("edge", &edge, 0)
        .expect("the bounds are in range");
    assert_eq!(clients.list().expect("list").len(), 1);
}

#[tokio::test]
async fn rate_limits_and_quotas_answer_429_and_jobs_are_the_owners() {
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let tight = ClientLimits {
        rate_per_s: 1000.0,
        burst: 100,
        jobs_per_day: 2,
    };
    let (_, k) = gateway
        .clients()
        .add_key("two-a-day", &tight, 0)
        .expect("key");
    let (_, other) = gateway
        .clients()
        .add_key("other", &ClientLimits::default(), 0)
        .expect("key");
    let slow = ClientLimits {
        rate_per_s: 0.01,
        burst: 2,
        jobs_per_day: 100,
    };
    let (_, slow_key) = gateway.clients().add_key("slow", &slow, 0).expect("key");
    let api = serve(gateway).await;
    let body = order(&["true"]).to_string();
    let (s1, first) = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
    let (s2, _) = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
    let (s3, over) = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
    assert_eq!((s1, s2, s3), (201, 201, 429), "{over}");
    assert!(
        over["error"]
            .as_str()
            .is_some_and(|e| e.contains("quota of 2 jobs")),
        "{over}"
    );
    // Over its quota, an order is refused before its URLs are checked
    // (this one's would answer 422: loopback, and nothing listens there).
    let mut fetching = order(&["true"]);
    fetching["inputs"] = json!([{"url": "http://127.0.0.1:9/in", "path": "in/x"}]);
    let (status, over) = api
        .call("POST", "/v1/jobs", Some(&k), Some(&fetching.to_string()))
        .await;
    assert_eq!(status, 429, "{over}");
    let id = first["id"].as_str().expect("id");
    assert_eq!(first["state"], "queued");
    // Another client cannot see, cancel or follow it.
    for (method, path) in [
        ("GET", format!("/v1/jobs/{id}")),
        ("DELETE", format!("/v1/jobs/{id}")),
        ("GET", format!("/v1/jobs/{id}/logs")),
    ] {
        assert_eq!(api.call(method, &path, Some(&other), None).await.0, 404);
    }
    let (_, listed) = api.call("GET", "/v1/jobs", Some(&other), None).await;
    assert_eq!(listed["jobs"], json!([]));
    let (_, listed) = api.call("GET", "/v1/jobs", Some(&k), None).await;
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2));
    // The owner cancels it; a second cancel is a conflict.
    let (status, cancelled) = api
        .call("DELETE", &format!("/v1/jobs/{id}"), Some(&k), None)
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(
        api.call("DELETE", &format!("/v1/jobs/{id}"), Some(&k), None)
            .await
            .0,
        409
    );
    // Over the rate: a burst of 2, then 429 without the body being read.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api.call("GET", "/v1/jobs", Some(&slow_key), None).await.0);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    // A revoked key is refused.
    let id_other = api
        .gateway
        .clients()
        .by_key(&other)
        .expect("get")
        .expect("live")
        .id;
    api.gateway.clients().revoke(&id_other).expect("revoke");
    assert_eq!(api.call("GET", "/v1/jobs", Some(&other), None).await.0, 401);
}

/// A served gateway in `dir` whose one client is the hotkey `//client1`,
/// at `rate_per_s` with `burst`.
async fn hotkey_client(
    dir: &std::path::Path,
    rate_per_s: f64,
    burst: u32,
) -> (Arc<Gateway>, Keypair, Api) {
    let gateway = open(dir, store(dir), rules());
    let client = key("//client1");
    let limits = ClientLimits {
        rate_per_s,
        burst,
        ..ClientLimits::default()
    };
    gateway
        .clients()
        .add_hotkey("signer", client.account(), &limits, 0)
        .expect("hotkey");
    let api = serve(gateway.clone()).await;
    (gateway, client, api)
}

/// A client of two gateways: what it signs for one, the other refuses
/// (before the id was signed, a gateway could replay its clients' requests
/// to another within the 60 s window, on the client's quota there).
#[tokio::test]
async fn a_request_signed_for_one_gateway_is_refused_by_another() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, client, api_a) = hotkey_client(dir_a.path(), 100.0, 10).await;
    let (b, _, api_b) = hotkey_client(dir_b.path(), 100.0, 10).await;
    assert_ne!(a.id(), b.id());
    // Each gateway shows its id.
    let (status, health) = api_b.call("GET", "/health", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(health["gateway_id"], b.id());
    let body = order(&["true"]).to_string();
    let now = a.now_ms();
    // Signed for A, sent to B.
    let replayed = api_b
        .signed_post_for(a.id(), &client, &client, now, &body)
        .send()
        .await
        .expect("send");
    assert_eq!(replayed.status().as_u16(), 401);
    let answer: Value = replayed.json().await.expect("json");
    assert_eq!(answer["field"], http::HEADER_SIGNATURE);
    assert!(b.book().ids().expect("ids").is_empty());
    // The same request at A, and one signed for B at B, pass.
    let at_a = api_a.signed_post_for(a.id(), &client, &client, now, &body);
    assert_eq!(at_a.send().await.expect("send").status().as_u16(), 201);
    let at_b = api_b.signed_post(&client, &client, now + 1, &body);
    assert_eq!(at_b.send().await.expect("send").status().as_u16(), 201);
    // The id is the store's: a gateway opened again on it keeps it.
    let dir_c = tempfile::tempdir().expect("dir");
    let kept = store(dir_c.path());
    let first = open(dir_c.path(), kept.clone(), rules());
    let again = open(dir_c.path(), kept, rules());
    assert_eq!(first.id(), again.id());
    assert_ne!(first.id(), a.id());
}

/// A gateway id in the store that is not one stops the gateway from
/// opening, rather than signing requests against garbage.
#[test]
fn a_corrupt_gateway_id_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let s = store(dir.path());
    s.put(&[crate::store::Put::new(
        "akihabara:gateway:id",
        b"gw-../../etc",
    )])
    .expect("put");
    let err = Gateway::open(
        s,
        keys::Clients::new(dir.path().join("clients.json")),
        rules(),
    )
    .expect_err("a corrupt id");
    assert!(
        err.to_string().contains("akihabara:gateway:id")
            && err.to_string().contains("not a gateway id"),
        "{err}"
    );
}

#[tokio::test]
async fn hotkey_clients_sign_each_request_and_cannot_replay_one() {
    let dir = tempfile::tempdir().expect("dir");
    // A burst of 3: forged requests must not spend it.
    let (gateway, client, api) = hotkey_client(dir.path(), 0.01, 3).await;
    let body = order(&["true"]).to_string();
    let signed = |ts: u64, body: &str, signer: &Keypair| api.signed_post(&client, signer, ts, body);
    let now = gateway.now_ms();
    let ok = signed(now, &body, &client).send().await.expect("send");
    assert_eq!(ok.status().as_u16(), 201);
    // The same request again: its timestamp is used.
    let again = signed(now, &body, &client).send().await.expect("send");
    assert_eq!(again.status().as_u16(), 401);
    let answer: Value = again.json().await.expect("json");
    assert_eq!(answer["field"], http::HEADER_TIMESTAMP);
    // Another key's signature, a changed body, a stale time.
    let forged = signed(now + 1, &body, &key("//mallory"))
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status().as_u16(), 401);
    let sig = client.sign(&http::signing_message(
        gateway.id(),
        "POST",
        "/v1/jobs",
        now + 2,
        body.as_bytes(),
    ));
    let swapped = api
        .http
        .post(format!("{}/v1/jobs", api.base))
        .header("content-type", "application/json")
        .header(http::HEADER_HOTKEY, client.account().to_string())
        .header(http::HEADER_TIMESTAMP, (now + 2).to_string())
        .header(http::HEADER_SIGNATURE, sig.to_string())
        .body(order(&["rm", "-rf", "/"]).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(swapped.status().as_u16(), 401);
    let stale = signed(now - 120_000, &body, &client)
        .send()
        .await
        .expect("send");
    assert_eq!(stale.status().as_u16(), 401);
    assert_eq!(gateway.book().ids().expect("ids").len(), 1);
    // The four refused requests spent none of the client's burst: its second
    // and third good requests pass, the fourth is over the rate.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = signed(now + 10 + i, &body, &client)
            .send()
            .await
            .expect("send");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
}

/// A signed request captured before a restart is not accepted after it.
/// On the same store the gateway remembers the last timestamp each hotkey
/// used (before, it refused every timestamp from before its own start, so a
/// client whose clock runs behind was refused after each restart, and one
/// whose clock ran ahead could have a request replayed); on a new store it
/// refuses timestamps from before the store.
#[tokio::test]
async fn a_request_signed_before_a_restart_is_refused_after_it() {
    let dir = tempfile::tempdir().expect("dir");
    let kept = store(dir.path());
    let (gateway, client, api) = {
        let gateway = open(dir.path(), kept.clone(), rules());
        let client = key("//client1");
        gateway
            .clients()
            .add_hotkey("signer", client.account(), &ClientLimits::default(), 0)
            .expect("hotkey");
        let api = serve(gateway.clone()).await;
        (gateway, client, api)
    };
    let body = order(&["true"]).to_string();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let now = gateway.now_ms();
    // The client's clock runs 30 ms behind the gateway's.
    let behind = now - 30;
    assert!(behind > gateway.opened_ms());
    let first = api.signed_post(&client, &client, behind, &body);
    assert_eq!(first.send().await.expect("send").status().as_u16(), 201);
    drop(api);

    // Restarted on the same store: the replay is refused, a later request
    // from the client with the slow clock (still before the restart) passes.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let restarted = open(dir.path(), kept.clone(), rules());
    assert_eq!(restarted.opened_ms(), gateway.opened_ms());
    assert!(restarted.now_ms() > behind + 1);
    let api = serve(restarted.clone()).await;
    let replay = api.signed_post(&client, &client, behind, &body);
    let replay = replay.send().await.expect("send");
    assert_eq!(replay.status().as_u16(), 401);
    let answer: Value = replay.json().await.expect("json");
    assert_eq!(answer["field"], http::HEADER_TIMESTAMP);
    assert_eq!(
        answer["error"],
        "a timestamp this hotkey already used (each request signs a later one)"
    );
    let later = api.signed_post(&client, &client, behind + 1, &body);
    assert_eq!(later.send().await.expect("send").status().as_u16(), 201);
    assert_eq!(restarted.book().ids().expect("ids").len(), 2);
    drop(api);

    // Started on a new store, with the same clients: it has no record of
    // the hotkey's timestamps and refuses any from before the store.
    let again = tempfile::tempdir().expect("dir");
    let fresh_store = store(again.path());
    let other = Gateway::open(
        fresh_store,
        keys::Clients::new(dir.path().join("clients.json")),
        rules(),
    )
    .expect("open");
    let api = serve(other.clone()).await;
    let replay = api
        .signed_post(&client, &client, behind + 1, &body)
        .send()
        .await
        .expect("send");
    assert_eq!(replay.status().as_u16(), 401);
    let answer: Value = replay.json().await.expect("json");
    assert_eq!(answer["field"], http::HEADER_TIMESTAMP);
    assert_eq!(
        answer["error"],
        "signed before this gateway's store was created, by a hotkey it has no record of \
         (it could be a request an earlier gateway accepted); sign it anew"
    );
    assert!(other.book().ids().expect("ids").is_empty());
    // A request signed now passes.
    let fresh = api.signed_post(&client, &client, other.now_ms(), &body);
    assert_eq!(fresh.send().await.expect("send").status().as_u16(), 201);
}

/// The last timestamp a hotkey used is kept as its decimal digits; a value
/// that is not one fails the request (500) rather than reading as "never
/// used".
#[tokio::test]
async fn a_corrupt_replay_record_refuses_the_request() {
    let dir = tempfile::tempdir().expect("dir");
    let kept = store(dir.path());
    let gateway = open(dir.path(), kept.clone(), rules());
    let client = key("//client1");
    gateway
        .clients()
        .add_hotkey("signer", client.account(), &ClientLimits::default(), 0)
        .expect("hotkey");
    let api = serve(gateway.clone()).await;
    kept.put(&[crate::store::Put::new(
        &format!("akihabara:gateway:signed:{}", client.account()),
        b"yesterday",
    )])
    .expect("put");
    let body = order(&["true"]).to_string();
    let r = api
        .signed_post(&client, &client, gateway.now_ms(), &body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 500);
    let answer: Value = r.json().await.expect("json");
    let error = answer["error"].as_str().expect("error");
    assert!(
        error.contains("akihabara:gateway:signed:") && error.contains("not a timestamp in ms"),
        "{error}"
    );
    assert!(gateway.book().ids().expect("ids").is_empty());
}

/// A signed request refused for its client's rate (429) has not used its
/// timestamp: sent again as it is once the rate allows, it passes; after
/// that it is a replay.
#[tokio::test]
async fn a_signed_request_refused_for_its_rate_can_be_sent_again() {
    let dir = tempfile::tempdir().expect("dir");
    let (gateway, client, api) = hotkey_client(dir.path(), 4.0, 1).await;
    let body = order(&["true"]).to_string();
    let now = gateway.now_ms();
    let send = |ts: u64| api.signed_post(&client, &client, ts, &body).send();
    assert_eq!(send(now).await.expect("send").status().as_u16(), 201);
    let over = send(now + 1).await.expect("send");
    assert_eq!(over.status().as_u16(), 429);
    // A token comes back every 250 ms.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let again = send(now + 1).await.expect("send");
    assert_eq!(again.status().as_u16(), 201, "the 429'd request, resent");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let replay = send(now + 1).await.expect("send");
    assert_eq!(replay.status().as_u16(), 401, "now a replay");
    assert_eq!(gateway.book().ids().expect("ids").len(), 2);
}

/// A miner: a job service over local executors of `classes`, behind an axon.
async fn miner(
    dir: &std::path::Path,
    uri: &str,
    classes: &[&str],
) -> (Candidate, tokio::sync::oneshot::Sender<()>) {
    let backends = classes.iter().map(|c| {
        let b: Arc<dyn ExecutorBackend> = Arc::new(LocalBackend::new(Some((*c).to_owned())));
        b
    });
    miner_with(dir, uri, backends.collect()).await
}

/// A miner over `backends`.
async fn miner_with(
    dir: &std::path::Path,
    uri: &str,
    backends: Vec<Arc<dyn ExecutorBackend>>,
) -> (Candidate, tokio::sync::oneshot::Sender<()>) {
    let fleet = Arc::new(Fleet::with_backends(
        HealthPolicy::default(),
        backends
            .into_iter()
            .enumerate()
            .map(|(i, b)| (format!("local-{i}"), b)),
    ));
    fleet.check_all().await;
    let service = Arc::new(
        JobService::open(
            &dir.join(uri.trim_start_matches('/')),
            fleet,
            key(uri),
            Arc::new(AcceptAll),
            Arc::new(|_: &AccountId| true),
        )
        .expect("service"),
    );
    let axon = service
        .routes(Axon::builder(key(uri)))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    (
        Candidate {
            target: AxonTarget::new([127, 0, 0, 1].into(), port, key(uri).account()),
            score: 0.0,
        },
        tx,
    )
}

struct Fixed(Vec<Candidate>);

#[async_trait::async_trait]
impl MinerDirectory for Fixed {
    async fn miners(&self) -> Result<Vec<Candidate>, GatewayError> {
        Ok(self.0.clone())
    }
}

async fn until_final(gateway: &Gateway, router: &Router, id: &str) -> OrganicJob {
    let start = Instant::now();
    loop {
        router.step().await.expect("step");
        let job = gateway.book().get(id).expect("get").expect("job");
        if job.state.is_final() {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {id} never ended: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A file server that stalls holds an order no longer than the preflight
/// deadline (422), and a client has one order's files checked at a time:
/// a second order meanwhile gets 429 at once, without outbound requests.
#[tokio::test]
async fn an_orders_file_checks_are_bounded_in_time_and_per_client() {
    let dir = tempfile::tempdir().expect("dir");
    // Accepts connections and never answers.
    let stalls = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/in", stalls.local_addr().expect("addr"));
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = stalls.accept().await {
            keep.lock().expect("lock").push(conn);
        }
    });
    let rules = OrderRules {
        allow_private_urls: true,
        preflight_deadline: Duration::from_secs(1),
        ..rules()
    };
    let gateway = open(dir.path(), store(dir.path()), rules);
    let (_, k) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let api = Arc::new(serve(gateway.clone()).await);
    let with_input = json!({"command": ["true"], "class": "cpu", "timeout_s": 30,
        "inputs": [{"url": url, "path": "in"}]})
    .to_string();
    let first = {
        let (api, k, body) = (api.clone(), k.clone(), with_input.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let answer = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
            (answer, start.elapsed())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while held.lock().expect("lock").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first order's check never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, answer) = api
        .call("POST", "/v1/jobs", Some(&k), Some(&with_input))
        .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(
        held.lock().expect("lock").len(),
        1,
        "the second order sent nothing"
    );
    let ((status, answer), took) = first.await.expect("first");
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("inputs")),
        "{answer}"
    );
    assert_eq!(
        answer["error"].as_str(),
        Some("the file servers did not answer within 1 s")
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(gateway.book().ids().expect("ids").is_empty());
    // The place is free again: the next order is checked (and refused) too,
    // here at its output, which is named when it stalls.
    let with_output = json!({"command": ["true"], "class": "cpu", "timeout_s": 30,
        "outputs": [{"path": "out", "put_url": url}]})
    .to_string();
    let (status, answer) = api
        .call("POST", "/v1/jobs", Some(&k), Some(&with_output))
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("outputs")),
        "{answer}"
    );
}

/// One client holds at most MAX_ACTIVE_PER_CLIENT jobs queued or running:
/// the next order is refused (429 over HTTP) before its quota is charged,
/// other clients are not held back, and a job that ends frees a place.
#[tokio::test]
async fn a_client_has_a_bounded_number_of_jobs_in_the_queue() {
    use super::service::MAX_ACTIVE_PER_CLIENT;
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (flood, flood_key) = gateway
        .clients()
        .add_key("flood", &ClientLimits::default(), 0)
        .expect("key");
    let (other, _) = gateway
        .clients()
        .add_key("other", &ClientLimits::default(), 0)
        .expect("key");
    let mut ids = Vec::new();
    for i in 0..MAX_ACTIVE_PER_CLIENT {
        ids.push(gateway.submit(&flood, numbered(i)).expect("submit").id);
    }
    let refused = gateway.submit(&flood, numbered(0)).expect_err("busy");
    assert!(matches!(refused, SubmitError::Busy { limit } if limit == MAX_ACTIVE_PER_CLIENT));
    let api = serve(gateway.clone()).await;
    let (status, answer) = api
        .call(
            "POST",
            "/v1/jobs",
            Some(&flood_key),
            Some(&order(&["true"]).to_string()),
        )
        .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(
        answer["error"].as_str(),
        Some(
            "64 jobs of yours are queued or running, the most a client may have; send more as they end"
        )
    );
    gateway.submit(&other, numbered(0)).expect("another client");
    gateway.cancel(&ids[0]).await.expect("cancel");
    gateway
        .submit(&flood, numbered(0))
        .expect("a place was freed");
    // Refused orders were not charged.
    match gateway.admit_job(&flood, gateway.now_ms()).expect("quota") {
        QuotaCheck::Admitted { left } => {
            assert_eq!(left as usize, 1000 - MAX_ACTIVE_PER_CLIENT - 2)
        }
        other => panic!("{other:?}"),
    }
}

/// A gateway without a validator's books settles its finished jobs itself:
/// they are marked accounted (so their records expire), nothing is left
/// waiting for books, and a second call finds nothing.
#[tokio::test]
async fn a_gateway_without_books_settles_its_finished_jobs() {
    let dir = tempfile::tempdir().expect("dir");
    let (m, _stop) = miner(dir.path(), "//miner1", &["cpu"]).await;
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (client, _) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let router = Router::new(
        gateway.clone(),
        Arc::new(Fixed(vec![m])),
        key("//validator1"),
        ReceiptStore::new(dir.path().join("receipts.jsonl")),
        RouterSettings::default(),
    )
    .expect("router");
    let job = gateway.submit(&client, numbered(1)).expect("submit");
    let done = until_final(&gateway, &router, &job.id).await;
    assert_eq!(done.state, JobState::Finished);
    assert!(!done.settled(), "finished, not yet accounted");
    let settled = gateway.settle_without_books().await.expect("settle");
    assert_eq!(settled.ids, vec![job.id.clone()]);
    assert_eq!(settled.runs.len(), 1);
    let after = gateway.book().get(&job.id).expect("get").expect("job");
    assert!(after.accounted && after.settled(), "{after:?}");
    assert_eq!(
        gateway.organic_work().expect("work"),
        OrganicWork::default()
    );
    assert_eq!(
        gateway.settle_without_books().await.expect("settle"),
        OrganicWork::default()
    );
    // The loop `gateway serve` runs settles the next one by itself, and
    // stops when told.
    let next = gateway.submit(&client, numbered(2)).expect("submit");
    let done = until_final(&gateway, &router, &next.id).await;
    assert_eq!(done.state, JobState::Finished);
    assert!(!done.settled());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settling = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                // Zero is taken as 1 ms (tokio's interval would panic on it).
                .settle_without_books_every(Duration::ZERO, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = gateway.book().get(&next.id).expect("get").expect("job");
        if job.accounted && job.settled() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled within 10 s: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!settling.is_finished());
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), settling)
        .await
        .expect("the loop stops when told")
        .expect("joined");
}

#[tokio::test]
async fn jobs_route_past_a_declining_miner_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    // The best-scored miner has no cpu executor: it declines, and the job
    // moves on to the next.
    let (mut gpu_only, _s1) = miner(dir.path(), "//miner1", &["A100"]).await;
    gpu_only.score = 0.9;
    let (mut cpu, _s2) = miner(dir.path(), "//miner2", &["cpu"]).await;
    cpu.score = 0.1;
    let directory = Arc::new(Fixed(vec![cpu.clone(), gpu_only.clone()]));
    let store = store(dir.path());
    let gateway = open(dir.path(), store.clone(), rules());
    let (client, client_key) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let router = Router::new(
        gateway.clone(),
        directory.clone(),
        key("//validator1"),
        ReceiptStore::new(dir.path().join("receipts.jsonl")),
        RouterSettings {
            poll: Duration::from_millis(50),
            ..RouterSettings::default()
        },
    )
    .expect("router");
    let mut env = BTreeMap::new();
    env.insert("WHO".to_owned(), "organic".to_owned());
    let job = gateway
        .submit(
            &client,
            JobOrder {
                image: None,
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "printf %s \"$WHO\"; exit 3".into(),
                ],
                env,
                inputs: vec![],
                outputs: vec![],
                class: "cpu".into(),
                timeout_s: 30,
                deterministic: true,
            },
        )
        .expect("submit");
    let done = until_final(&gateway, &router, &job.id).await;
    assert_eq!(done.state, JobState::Finished, "{done:?}");
    assert_eq!(done.exit_code, Some(3));
    assert_eq!(done.miner, Some(cpu.target.hotkey));
    use sha2::Digest as _;
    assert_eq!(
        done.stdout_sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(b"organic")).as_str())
    );
    assert_eq!(done.attempts.len(), 1, "{:?}", done.attempts);
    assert_eq!(done.attempts[0].miner, gpu_only.target.hotkey);
    assert!(
        done.attempts[0].detail.starts_with("unsupported_class"),
        "{:?}",
        done.attempts
    );
    // What it printed was read from the miner, and is streamed with its states.
    let printed: Vec<String> = gateway
        .log_lines(&done.id, 0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(printed, ["organic"]);
    let api = serve(gateway.clone()).await;
    let r = api
        .http
        .get(format!("{}/v1/jobs/{}/logs", api.base, done.id))
        .bearer_auth(&client_key)
        .send()
        .await
        .expect("logs");
    let stream = r.text().await.expect("stream ends with the job");
    let log_at =
        stream.find("event: log\ndata: {\"n\":0,\"stream\":\"stdout\",\"text\":\"organic\"}");
    let finished_at = stream.find("\"state\":\"finished\"");
    assert!(log_at.is_some() && finished_at.is_some(), "{stream}");
    assert_eq!(
        stream.matches("event: state").count(),
        done.history.len(),
        "{stream}"
    );
    // Both receipts, signed by the miner that ran it.
    assert_eq!(done.receipts.len(), 2);
    assert!(
        done.receipts
            .iter()
            .all(|r| r.verify() && r.miner == cpu.target.hotkey)
    );

    // A running job cancelled by its client is killed on the miner.
    let long = gateway
        .submit(
            &client,
            JobOrder {
                command: vec!["sleep".into(), "30".into()],
                ..done.order.clone()
            },
        )
        .expect("submit");
    let start = Instant::now();
    while gateway
        .book()
        .get(&long.id)
        .expect("get")
        .expect("job")
        .state
        != JobState::Running
    {
        router.step().await.expect("step");
        assert!(start.elapsed() < Duration::from_secs(10), "never ran");
    }
    let cancelled = gateway
        .cancel(&long.id)
        .await
        .expect("cancel")
        .expect("job");
    assert_eq!(cancelled.state, JobState::Cancelled);
    router.step().await.expect("step tells the miner");
    let d = crate::dendrite::Dendrite::new(key("//validator1")).expect("dendrite");
    let receipts = ReceiptStore::new(dir.path().join("receipts.jsonl"));
    let start = Instant::now();
    loop {
        let r = crate::market::client::query_job(
            &d,
            &cpu.target,
            &long.id,
            &receipts,
            Duration::from_secs(5),
        )
        .await
        .expect("query");
        if let crate::market::wire::JobReply::Failed { reason, .. } = &r {
            assert_eq!(reason, "cancelled");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A class no miner has fails with the miners' reasons.
    let gateway_all = open(
        dir.path(),
        store.clone(),
        OrderRules {
            classes: ["cpu".to_owned(), "H100".to_owned()].into(),
            ..rules()
        },
    );
    let router_all = Router::new(
        gateway_all.clone(),
        directory,
        key("//validator1"),
        ReceiptStore::new(dir.path().join("receipts.jsonl")),
        RouterSettings::default(),
    )
    .expect("router");
    let orphan = gateway_all
        .submit(
            &client,
            JobOrder {
                class: "H100".into(),
                ..done.order.clone()
            },
        )
        .expect("submit");
    let failed = until_final(&gateway_all, &router_all, &orphan.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("unsupported_class")),
        "{failed:?}"
    );

    // A queued job is still there, queued, for a gateway opened afresh.
    let waiting = gateway_all
        .submit(&client, done.order.clone())
        .expect("submit");
    drop((gateway, gateway_all, router, router_all));
    let reopened = open(dir.path(), store, rules());
    assert_eq!(reopened.active_jobs(), vec![waiting.id.clone()]);
    let kept = reopened.book().get(&done.id).expect("get").expect("job");
    assert_eq!(kept, done);
}

/// A miner's executor that skips the work: every job prints `forged`.
struct Forger(LocalBackend);

#[async_trait::async_trait]
impl ExecutorBackend for Forger {
    fn kind(&self) -> &'static str {
        "local"
    }
    fn class(&self) -> Option<&str> {
        self.0.class()
    }
    async fn capabilities(
        &self,
    ) -> Result<crate::executor::HardwareSpec, crate::executor::ExecutorError> {
        self.0.capabilities().await
    }
    async fn run(
        &self,
        mut job: crate::executor::JobSpec,
    ) -> Result<crate::executor::JobHandle, crate::executor::ExecutorError> {
        job.command = vec!["sh".into(), "-c".into(), "echo forged".into()];
        self.0.run(job).await
    }
    async fn health(&self) -> Result<crate::executor::Health, crate::executor::ExecutorError> {
        self.0.health().await
    }
}

fn numbered(i: usize) -> JobOrder {
    JobOrder {
        image: None,
        command: vec!["sh".into(), "-c".into(), format!("echo job {i}")],
        env: BTreeMap::new(),
        inputs: vec![],
        outputs: vec![],
        class: "cpu".into(),
        timeout_s: 30,
        deterministic: true,
    }
}

/// Runs `n` jobs one after another; returns them once final and checked.
async fn run_jobs(
    gateway: &Gateway,
    router: &Router,
    client: &keys::Client,
    n: usize,
) -> Vec<OrganicJob> {
    let mut out = Vec::new();
    for i in 0..n {
        let job = gateway.submit(client, numbered(i)).expect("submit");
        out.push(until_checked(gateway, router, &job.id).await);
    }
    out
}

/// Job `id` once it is final and its cross-check (if any) has ended.
async fn until_checked(gateway: &Gateway, router: &Router, id: &str) -> OrganicJob {
    until_final(gateway, router, id).await;
    let start = Instant::now();
    loop {
        let j = gateway.book().get(id).expect("get").expect("job");
        if j.cross_check != Some(CrossCheck::Pending) {
            return j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "check never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cross_checks_catch_a_forging_miner_at_the_configured_rate() {
    let dir = tempfile::tempdir().expect("dir");
    let forger: Arc<dyn ExecutorBackend> =
        Arc::new(Forger(LocalBackend::new(Some("cpu".to_owned()))));
    let (liar, _s1) = miner_with(dir.path(), "//miner1", vec![forger]).await;
    let (honest, _s2) = miner(dir.path(), "//miner2", &["cpu"]).await;
    let trusted =
        || -> Arc<dyn ExecutorBackend> { Arc::new(LocalBackend::new(Some("cpu".to_owned()))) };
    let (share, seed, n) = (0.25, 7, 40);

    let store = store(dir.path());
    let gateway = open(dir.path(), store.clone(), rules());
    let (client, _) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let router = |miners: Vec<Candidate>, share: f64| {
        Router::new(
            gateway.clone(),
            Arc::new(Fixed(miners)),
            key("//validator1"),
            ReceiptStore::new(dir.path().join("receipts.jsonl")),
            RouterSettings::default(),
        )
        .expect("router")
        .cross_check(
            CrossChecker::new(trusted(), share)
                .expect("checker")
                .seeded(seed),
        )
    };
    // Every job the forger runs: the drawn ones are caught, and only those.
    let jobs = run_jobs(&gateway, &router(vec![liar.clone()], share), &client, n).await;
    let replay = CrossChecker::new(trusted(), share)
        .expect("checker")
        .seeded(seed);
    let drawn: Vec<bool> = (0..n).map(|_| replay.draw()).collect();
    let caught: Vec<bool> = jobs
        .iter()
        .map(|j| matches!(j.cross_check, Some(CrossCheck::Mismatch { .. })))
        .collect();
    assert_eq!(
        caught, drawn,
        "the checked jobs are the seed's draws, each caught"
    );
    let checked = caught.iter().filter(|c| **c).count();
    assert!(
        (4..=18).contains(&checked),
        "{checked} of {n} checked at a share of {share}"
    );
    assert!(
        jobs.iter()
            .all(|j| j.state == JobState::Finished && j.miner == Some(liar.target.hotkey))
    );
    let penalties = gateway.book().penalties().expect("penalties");
    assert_eq!(penalties.len(), checked);
    let first = &penalties[0];
    assert_eq!(first.miner, liar.target.hotkey);
    assert!(first.reason.contains("stdout SHA-256"), "{}", first.reason);
    assert_eq!(
        first.receipts.len(),
        2,
        "both of the miner's receipts are kept"
    );
    assert!(first.receipts.iter().all(|r| r.verify()));

    // An honest miner checked every time is never penalised; a job that
    // opts out is never checked.
    let honest_router = router(vec![honest.clone()], 1.0);
    let jobs = run_jobs(&gateway, &honest_router, &client, 5).await;
    assert!(
        jobs.iter()
            .all(|j| j.cross_check == Some(CrossCheck::Matched)),
        "{jobs:?}"
    );
    let opted_out = gateway
        .submit(
            &client,
            JobOrder {
                deterministic: false,
                ..numbered(99)
            },
        )
        .expect("submit");
    let done = until_final(&gateway, &honest_router, &opted_out.id).await;
    assert_eq!(done.cross_check, None);
    assert_eq!(
        gateway.book().penalties().expect("penalties").len(),
        checked
    );

    // For the validator's books: every finished job once, the caught ones
    // as penalties instead of pay.
    let work = gateway.organic_work().expect("work");
    assert_eq!(work.penalties.len(), checked);
    assert_eq!(work.runs.len(), n - checked + 5 + 1);
    assert!(
        work.runs
            .iter()
            .all(|r| r.class == "cpu" && r.ended_s >= r.started_s)
    );
    gateway.mark_accounted(&work.ids).await.expect("mark");
    assert_eq!(
        gateway.organic_work().expect("work"),
        OrganicWork::default()
    );
    let reopened = open(dir.path(), store, rules());
    assert_eq!(
        reopened.organic_work().expect("work"),
        OrganicWork::default(),
        "a restart pays nothing twice"
    );
}

/// The OpenAPI document against the running server: every operation it
/// lists answers, with and without a key, only with statuses it documents;
/// and its schemas name exactly the fields the server sends and takes.
#[tokio::test]
async fn the_openapi_document_matches_the_server() {
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (_, k) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let api = serve(gateway).await;
    let doc: Value = serde_json::from_str(http::OPENAPI).expect("the document is JSON");
    let body = order(&["true"]).to_string();
    // A job to read, follow and cancel.
    let (status, made) = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
    assert_eq!(status, 201);
    let id = made["id"].as_str().expect("id").to_owned();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if method == "parameters" {
                continue;
            }
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(|s| s.parse().expect("numeric status"))
                .collect();
            let url = path.replace("{id}", &id);
            let m = method.to_uppercase();
            let send_body = (m == "POST").then_some(body.as_str());
            let public = op["security"].as_array().is_some_and(Vec::is_empty);
            let (with_key, answer) = if m == "GET" && url.ends_with("/logs") {
                // A stream: only its head is read.
                let r = api
                    .http
                    .get(format!("{}{url}", api.base))
                    .bearer_auth(&k)
                    .send()
                    .await
                    .expect("send");
                let ct = r.headers().get("content-type").cloned();
                assert_eq!(
                    ct.as_ref().and_then(|v| v.to_str().ok()),
                    Some("text/event-stream")
                );
                (r.status().as_u16(), Value::Null)
            } else {
                api.call(&m, &url, Some(&k), send_body).await
            };
            assert!(
                documented.contains(&with_key),
                "{m} {path}: {with_key} is not documented ({documented:?}): {answer}"
            );
            if !public {
                let (without, _) = api.call(&m, &url, None, send_body).await;
                assert_eq!(without, 401, "{m} {path} without a key");
                assert!(
                    documented.contains(&401),
                    "{m} {path}: 401 is not documented"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 7, "operations walked");
    // The schemas name the fields the server uses.
    let props = |name: &str| -> std::collections::BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect()
    };
    let keys = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    let (_, job) = api
        .call("GET", &format!("/v1/jobs/{id}"), Some(&k), None)
        .await;
    assert_eq!(props("Job"), keys(&job));
    assert_eq!(props("JobOrder"), keys(&job["order"]));
    assert_eq!(props("JobEvent"), keys(&job["history"][0]));
    let input = serde_json::to_value(order::InputVolume {
        url: String::new(),
        path: String::new(),
        sha256: None,
    })
    .expect("json");
    assert_eq!(props("InputVolume"), keys(&input));
    let output = serde_json::to_value(order::OutputVolume {
        path: String::new(),
        put_url: String::new(),
    })
    .expect("json");
    assert_eq!(props("OutputVolume"), keys(&output));
    let (_, listed) = api.call("GET", "/v1/jobs", Some(&k), None).await;
    let listed_props: std::collections::BTreeSet<String> = doc["components"]["schemas"]["JobList"]
        ["properties"]["jobs"]["items"]["properties"]
        .as_object()
        .expect("items")
        .keys()
        .cloned()
        .collect();
    assert_eq!(listed_props, keys(&listed["jobs"][0]));
    let (_, refused) = api.call("POST", "/v1/jobs", Some(&k), Some("{}")).await;
    assert_eq!(props("Error"), keys(&refused));
}

/// A client's listing reads its own index: the newest
/// `MAX_LISTED_PER_CLIENT` of its jobs, whatever the other clients have,
/// and a store written before those indexes gets them at open.
#[test]
fn a_clients_listing_reads_only_its_own_newest_jobs() {
    use super::jobs::{JobBook, MAX_LISTED_PER_CLIENT, OrganicJob};
    let dir = tempfile::tempdir().expect("dir");
    let store = store(dir.path());
    let book = JobBook::new(store.clone());
    let job_order: super::order::JobOrder =
        serde_json::from_value(order(&["true"])).expect("order");
    let job = |id: String, owner: &str| OrganicJob::queued(id, owner.into(), job_order.clone(), 1);
    let many = MAX_LISTED_PER_CLIENT + 44;
    for i in 0..many {
        book.insert(&job(format!("a-{i:04}"), "a")).expect("insert");
        if i % 100 == 0 {
            book.insert(&job(format!("b-{i:04}"), "b")).expect("insert");
        }
    }
    let ids = |jobs: Vec<OrganicJob>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let a = ids(book.list_owned("a").expect("list"));
    assert_eq!(a.len(), MAX_LISTED_PER_CLIENT);
    assert_eq!(a.first().map(String::as_str), Some("a-0044"));
    assert_eq!(a.last().map(String::as_str), Some("a-0299"));
    assert_eq!(
        ids(book.list_owned("b").expect("list")),
        ["b-0000", "b-0100", "b-0200"]
    );
    assert!(book.list_owned("nobody").expect("list").is_empty());

    // A store from before the owner indexes: only the global one.
    store
        .delete("akihabara:gateway:owner-jobs:a")
        .expect("delete");
    store
        .delete("akihabara:gateway:owner-jobs:b")
        .expect("delete");
    store
        .delete("akihabara:gateway:owner-indexes")
        .expect("delete");
    assert!(book.list_owned("b").expect("list").is_empty());
    let gateway = open(dir.path(), store, rules());
    assert_eq!(ids(gateway.book().list_owned("a").expect("list")), a);
    assert_eq!(gateway.book().list_owned("b").expect("list").len(), 3);
}

/// A job that prints something new on every run, though its order says it
/// is deterministic, gets its honest miner no penalty: the trusted
/// executor runs it a second time before blaming the miner, and two trusted
/// runs that differ make it unverifiable. Before, the first mismatch was a
/// penalty, so a client could get any miner penalised.
#[tokio::test]
async fn a_job_whose_trusted_runs_differ_costs_its_miner_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (honest, _stop) = miner(dir.path(), "//miner1", &["cpu"]).await;
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (client, _) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let router = Router::new(
        gateway.clone(),
        Arc::new(Fixed(vec![honest])),
        key("//validator1"),
        ReceiptStore::new(dir.path().join("receipts.jsonl")),
        RouterSettings::default(),
    )
    .expect("router")
    .cross_check(
        CrossChecker::new(Arc::new(LocalBackend::new(Some("cpu".to_owned()))), 1.0)
            .expect("checker"),
    );
    let job = gateway
        .submit(
            &client,
            JobOrder {
                command: vec!["cat".into(), "/proc/sys/kernel/random/uuid".into()],
                ..numbered(0)
            },
        )
        .expect("submit");
    let checked = until_checked(&gateway, &router, &job.id).await;
    match &checked.cross_check {
        Some(CrossCheck::Unverifiable { reason }) => assert!(
            reason.starts_with(
                "the job is not deterministic: two trusted runs differ (stdout SHA-256 "
            ),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(gateway.book().penalties().expect("penalties").is_empty());
}

/// A job with an input whose digest the order does not pin is not
/// cross-checked: its URL could serve the miner one file and the check
/// another. Before, the check fetched the input again and compared.
#[tokio::test]
async fn a_job_with_an_unpinned_input_is_not_cross_checked() {
    let checker = CrossChecker::new(Arc::new(LocalBackend::new(Some("cpu".to_owned()))), 1.0)
        .expect("checker");
    let mut order = numbered(0);
    order.inputs = vec![order::InputVolume {
        url: "http://127.0.0.1:9/data.txt".into(),
        path: "in/data.txt".into(),
        sha256: None,
    }];
    let job = OrganicJob::queued("job-u".into(), "c-1".into(), order, 1);
    assert_eq!(
        checker.verdict(&job).await,
        CrossCheck::Unverifiable {
            reason: "input in/data.txt has no sha256: the file the miner fetched may not be the \
                     one a trusted run would fetch"
                .into()
        }
    );
}

/// A gateway and a cross-checker whose trusted executor runs each check's
/// `sleep 5`: checks started on it wait in its queue.
fn slow_checks(dir: &std::path::Path) -> (Arc<Gateway>, Arc<CrossChecker>) {
    let gateway = open(dir, store(dir), rules());
    let trusted: Arc<dyn ExecutorBackend> = Arc::new(LocalBackend::new(Some("cpu".to_owned())));
    let checker = Arc::new(CrossChecker::new(trusted, 1.0).expect("checker"));
    (gateway, checker)
}

/// Books a finished job of `owner`, drawn for a cross-check, and starts its
/// check; returns the job's id.
fn start_check(
    gateway: &Arc<Gateway>,
    checker: &Arc<CrossChecker>,
    i: usize,
    owner: &str,
) -> String {
    let job_order: JobOrder = serde_json::from_value(order(&["sleep", "5"])).expect("order");
    let mut job = OrganicJob::queued(format!("job-{i:03}"), owner.into(), job_order, 1);
    job.note(JobState::Finished, "exited with code 0", 2);
    job.cross_check = Some(CrossCheck::Pending);
    gateway.book().insert(&job).expect("insert");
    let id = job.id.clone();
    checker.start(gateway.clone(), job);
    id
}

/// Jobs drawn for a cross-check while the queue is full are marked
/// unverifiable at once, not queued without end.
#[tokio::test]
async fn cross_checks_beyond_the_queue_are_marked_unverifiable() {
    use super::cross::MAX_WAITING_CHECKS;
    let dir = tempfile::tempdir().expect("dir");
    let (gateway, checker) = slow_checks(dir.path());
    let extra = 5;
    // Eight clients: none reaches its own cap.
    let ids: Vec<String> = (0..MAX_WAITING_CHECKS + extra)
        .map(|i| start_check(&gateway, &checker, i, &format!("c{}", i % 8)))
        .collect();
    let not_checked = |id: &String| {
        matches!(
            gateway.book().get(id).expect("get").and_then(|j| j.cross_check),
            Some(CrossCheck::Unverifiable { reason }) if reason.starts_with("not checked: 32 checks")
        )
    };
    let start = Instant::now();
    while ids.iter().filter(|id| not_checked(id)).count() < extra {
        assert!(start.elapsed() < Duration::from_secs(10), "never marked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first ones wait for (or are on) the trusted executor.
    assert!(ids[..MAX_WAITING_CHECKS].iter().all(|id| !not_checked(id)));
    assert!(ids[MAX_WAITING_CHECKS..].iter().all(not_checked));
    assert!(checker.busy());
}

/// One client's drawn jobs take at most its share of the checks' queue:
/// past it, its further jobs are marked unverifiable, and another client's
/// job is still queued. Before, one client's long jobs (each run twice
/// when a trusted run differed) could take all 32 places.
#[tokio::test]
async fn one_clients_jobs_take_at_most_their_share_of_the_checks() {
    use super::cross::MAX_WAITING_CHECKS_PER_CLIENT;
    let dir = tempfile::tempdir().expect("dir");
    let (gateway, checker) = slow_checks(dir.path());
    let owners = std::iter::repeat_n("greedy", MAX_WAITING_CHECKS_PER_CLIENT + 2).chain(["other"]);
    let ids: Vec<String> = owners
        .enumerate()
        .map(|(i, owner)| start_check(&gateway, &checker, i, owner))
        .collect();
    let check = |id: &String| {
        gateway
            .book()
            .get(id)
            .expect("get")
            .and_then(|j| j.cross_check)
    };
    let start = Instant::now();
    let over = &ids[MAX_WAITING_CHECKS_PER_CLIENT..MAX_WAITING_CHECKS_PER_CLIENT + 2];
    while over.iter().any(|id| check(id) == Some(CrossCheck::Pending)) {
        assert!(start.elapsed() < Duration::from_secs(10), "never marked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in over {
        assert_eq!(
            check(id),
            Some(CrossCheck::Unverifiable {
                reason: "not checked: 8 checks of this client's jobs were already waiting for \
                         the trusted executor"
                    .into()
            })
        );
    }
    // The greedy client's first eight and the other client's job wait.
    for id in ids[..MAX_WAITING_CHECKS_PER_CLIENT]
        .iter()
        .chain(ids.last())
    {
        assert_eq!(check(id), Some(CrossCheck::Pending), "{id}");
    }
}

/// A router inside a validator shares the validator's dendrite (one
/// budget of calls in flight per miner), and refuses one that signs with
/// another hotkey.
#[test]
fn a_router_shares_a_dendrite_of_its_own_hotkey_only() {
    use crate::dendrite::Dendrite;
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let router = |kp: &Keypair| {
        Router::new(
            gateway.clone(),
            Arc::new(Fixed(Vec::new())),
            kp.clone(),
            ReceiptStore::new(dir.path().join("receipts.jsonl")),
            RouterSettings::default(),
        )
        .expect("router")
    };
    let validator = key("//validator");
    let rounds = Dendrite::new(validator.clone()).expect("dendrite");
    let shared = router(&validator).sharing(rounds.clone()).expect("shared");
    assert!(shared.dendrite().shares_with(&rounds));
    assert!(!router(&validator).dendrite().shares_with(&rounds));
    let other = Dendrite::new(key("//someone-else")).expect("dendrite");
    let err = router(&validator)
        .sharing(other)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err,
        Some(format!(
            "the dendrite to share signs as {}, this router's jobs as {}",
            key("//someone-else").account().to_ss58(),
            validator.account().to_ss58()
        ))
    );
}

/// One client cannot hold every connection open with log streams.
#[tokio::test]
async fn a_client_holds_at_most_its_share_of_log_streams() {
    use super::service::MAX_STREAMS_PER_CLIENT;
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (_, k) = gateway
        .clients()
        .add_key("streamer", &ClientLimits::default(), 0)
        .expect("key");
    let (_, other) = gateway
        .clients()
        .add_key("other", &ClientLimits::default(), 0)
        .expect("key");
    let api = serve(gateway).await;
    let body = order(&["true"]).to_string();
    let (status, job) = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
    assert_eq!(status, 201, "{job}");
    let (_, theirs) = api
        .call("POST", "/v1/jobs", Some(&other), Some(&body))
        .await;
    let stream = |key: &str, id: &str| {
        api.http
            .get(format!("{}/v1/jobs/{id}/logs", api.base))
            .bearer_auth(key)
            .send()
    };
    let id = job["id"].as_str().expect("id");
    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS_PER_CLIENT {
        let r = stream(&k, id).await.expect("stream");
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    let over = stream(&k, id).await.expect("stream");
    assert_eq!(over.status().as_u16(), 429);
    let answer: Value = over.json().await.expect("json");
    assert_eq!(
        answer["error"],
        "you have 8 log streams open, the most a client may"
    );
    // Another client still gets its stream.
    let theirs = stream(&other, theirs["id"].as_str().expect("id"))
        .await
        .expect("stream");
    assert_eq!(theirs.status().as_u16(), 200);
}

/// Log streams never take more than half the connections: on a gateway of
/// 6 connections the fourth stream is refused (503) and other calls still
/// get in. Before, the cap was 128 whatever the connections, so streams
/// could hold all six.
#[tokio::test]
async fn log_streams_take_at_most_half_the_connections() {
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (_, k) = gateway
        .clients()
        .add_key("streamer", &ClientLimits::default(), 0)
        .expect("key");
    let settings = HttpSettings {
        max_connections: 6,
        ..HttpSettings::default()
    };
    assert_eq!(settings.max_streams(), 3);
    let api = serve_with(gateway, settings).await;
    let body = order(&["sleep", "30"]).to_string();
    let (status, job) = api.call("POST", "/v1/jobs", Some(&k), Some(&body)).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id");
    let stream = || {
        api.http
            .get(format!("{}/v1/jobs/{id}/logs", api.base))
            .bearer_auth(&k)
            .send()
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = stream().await.expect("stream");
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    let over = stream().await.expect("stream");
    assert_eq!(over.status().as_u16(), 503);
    let answer: Value = over.json().await.expect("json");
    assert_eq!(
        answer["error"],
        "3 log streams are open, the most the gateway holds"
    );
    let (status, listed) = api.call("GET", "/v1/jobs", Some(&k), None).await;
    assert_eq!(status, 200, "{listed}");
    // A stream given back makes room for another.
    drop(open.pop());
    let start = std::time::Instant::now();
    loop {
        let r = stream().await.expect("stream");
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A settled job's record expires; one the validator has still to account
/// for does not.
#[tokio::test]
async fn settled_jobs_expire_and_unsettled_ones_stay() {
    use super::jobs::JobBook;
    let dir = tempfile::tempdir().expect("dir");
    let ttl = Duration::from_millis(300);
    let book = JobBook::new(store(dir.path())).with_final_ttl(ttl);
    let job_order: JobOrder = serde_json::from_value(order(&["true"])).expect("order");
    let mut cancelled = OrganicJob::queued("job-c".into(), "a".into(), job_order.clone(), 1);
    let mut finished = OrganicJob::queued("job-f".into(), "a".into(), job_order, 1);
    for job in [&cancelled, &finished] {
        book.insert(job).expect("insert");
    }
    cancelled.note(JobState::Cancelled, "by its client", 2);
    finished.miner = Some(key("//miner1").account());
    finished.note(JobState::Finished, "exited with code 0", 2);
    book.update(&cancelled).expect("update");
    book.update(&finished).expect("update");
    assert!(cancelled.settled() && !finished.settled());
    tokio::time::sleep(ttl * 2).await;
    assert!(book.get("job-c").expect("get").is_none());
    assert_eq!(
        book.get("job-f").expect("get").map(|j| j.state),
        Some(JobState::Finished)
    );
    let listed: Vec<String> = book
        .list_owned("a")
        .expect("list")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, ["job-f"]);
    // Accounted for, it is settled too.
    finished.accounted = true;
    book.update(&finished).expect("update");
    tokio::time::sleep(ttl * 2).await;
    assert!(book.get("job-f").expect("get").is_none());

    // A store from before records expired: settled jobs written plainly get
    // their expiry once, at open; a job still to account for does not.
    let (store, old) = (store(&dir.path().join("old")), JobBook::new);
    let plain = |job: &OrganicJob| {
        let record = serde_json::to_vec(job).expect("json");
        store
            .put(&[crate::store::Put::new(
                &format!("akihabara:gateway:job:{}", job.id),
                &record,
            )])
            .expect("put");
    };
    let mut unaccounted = finished.clone();
    unaccounted.id = "job-u".into();
    unaccounted.accounted = false;
    plain(&cancelled);
    plain(&unaccounted);
    let book = old(store.clone()).with_final_ttl(ttl);
    book.expire_settled(&[cancelled.clone(), unaccounted.clone()])
        .expect("expire");
    tokio::time::sleep(ttl * 2).await;
    assert!(book.get("job-c").expect("get").is_none());
    assert!(book.get("job-u").expect("get").is_some());
    // Once only: a later open leaves records as they are.
    plain(&cancelled);
    book.expire_settled(&[cancelled.clone()]).expect("expire");
    tokio::time::sleep(ttl * 2).await;
    assert!(book.get("job-c").expect("get").is_some());
}

/// A miner that answers 429 (its budget of our job calls is spent) is busy,
/// not refusing: the job waits for it instead of failing.
#[tokio::test]
async fn a_miner_answering_429_is_waited_for() {
    use crate::axon::{Caller, HandlerError};
    use crate::market::wire::JobSubmit;
    let dir = tempfile::tempdir().expect("dir");
    let axon = Axon::builder(key("//miner1"))
        .route(|_: JobSubmit, _: Caller| async move {
            Err::<JobSubmit, _>(HandlerError {
                status: 429,
                message: "Too many requests: 8 of your job calls are still being worked on".into(),
            })
        })
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let port = axon.local_addr().expect("addr").port();
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    let crowded = Candidate {
        target: AxonTarget::new([127, 0, 0, 1].into(), port, key("//miner1").account()),
        score: 1.0,
    };
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (client, _) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let router = Router::new(
        gateway.clone(),
        Arc::new(Fixed(vec![crowded])),
        key("//validator1"),
        ReceiptStore::new(dir.path().join("receipts.jsonl")),
        RouterSettings::default(),
    )
    .expect("router");
    let order: JobOrder = serde_json::from_value(order(&["true"])).expect("order");
    let job = gateway.submit(&client, order).expect("submit");
    router.step().await.expect("step");
    let after = gateway.book().get(&job.id).expect("get").expect("kept");
    assert_eq!(after.state, JobState::Queued, "{:?}", after.history);
    assert_eq!(after.attempts.len(), 1);
    assert!(
        after.attempts[0].detail.contains("429"),
        "{:?}",
        after.attempts
    );
}

/// Forged signatures from one address stop costing a body read and a
/// signature check once there are too many of them in a minute.
#[tokio::test]
async fn an_address_sending_bad_signatures_is_made_to_wait() {
    use super::http::MAX_BAD_SIGNATURES;
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let client = key("//client1");
    gateway
        .clients()
        .add_hotkey("signer", client.account(), &ClientLimits::default(), 0)
        .expect("hotkey");
    let api = serve(gateway.clone()).await;
    let body = order(&["true"]).to_string();
    let send = |ts: u64, signer: &Keypair| api.signed_post(&client, signer, ts, &body).send();
    let now = gateway.now_ms();
    for i in 0..u64::from(MAX_BAD_SIGNATURES) {
        let r = send(now + i, &key("//mallory")).await.expect("send");
        assert_eq!(r.status().as_u16(), 401);
    }
    // Now even a good signature from this address waits out the minute.
    let r = send(now + 100, &client).await.expect("send");
    assert_eq!(r.status().as_u16(), 429);
    let answer: Value = r.json().await.expect("json");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("more than 30 requests with bad signatures")),
        "{answer}"
    );
    assert!(gateway.book().ids().expect("ids").is_empty());
}

/// A client that pipelines requests and never reads the answers is cut off
/// once they have not moved for `send_timeout`, instead of holding its
/// connection for `connection_lifetime` (an hour by default).
#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_cut_off() {
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let settings = HttpSettings {
        send_timeout: Duration::from_secs(1),
        ..HttpSettings::default()
    };
    let api = serve_with(gateway, settings).await;
    let addr: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let request = b"GET /openapi.json HTTP/1.1\r\nhost: a\r\n\r\n";
    let outcome = akihabara_core::axon::pipeline_and_stop_reading(addr, request, 20_000)
        .await
        .expect("connect");
    assert!(
        outcome.is_ok(),
        "still open after 5 s of reading: {outcome:?} bytes"
    );
}

/// Once 4096 networks are counted, an attacker's further /64s are counted
/// by their /48 and lock out only that /48: a newcomer from elsewhere still
/// has its signature checked. Before, every newcomer past 4096 networks
/// shared one count, so 30 bad signatures from new /64s locked all of them
/// out.
#[test]
fn bad_signatures_past_the_counted_networks_lock_out_only_their_block() {
    use super::http::{BadSignatures, MAX_BAD_SIGNATURES, MAX_COUNTED_NETWORKS};
    let counts = BadSignatures::default();
    let ip = |s: String| s.parse::<std::net::IpAddr>().expect("ip");
    // An attacker's 4096 /64s in 2001:db8:aaaa::/48, one bad signature each.
    for i in 0..MAX_COUNTED_NETWORKS {
        counts.failed(ip(format!("2001:db8:aaaa:{i:x}::1")));
    }
    // More of its /64s, in another /48 it holds: 30 bad signatures.
    for i in 0..MAX_BAD_SIGNATURES {
        counts.failed(ip(format!("2001:db8:bbbb:{i:x}::1")));
    }
    assert!(
        !counts.allowed(ip("2001:db8:bbbb:ffff::1".into())),
        "the flooding /48 is locked out"
    );
    assert!(
        counts.allowed(ip("2001:db8:cccc::1".into())),
        "a newcomer from another /48"
    );
    assert!(counts.allowed(ip("192.0.2.1".into())), "an IPv4 newcomer");
    assert!(
        counts.allowed(ip("2001:db8:aaaa:1::1".into())),
        "a counted network under its own count"
    );
}

/// Bad signatures are counted per IPv6 /64, not per address: a host with a
/// /64 cannot start a new count from each of its addresses.
#[test]
fn bad_signatures_from_one_ipv6_64_share_a_count() {
    use super::http::{BadSignatures, MAX_BAD_SIGNATURES};
    let counts = BadSignatures::default();
    let ip = |s: String| s.parse::<std::net::IpAddr>().expect("ip");
    for i in 0..MAX_BAD_SIGNATURES {
        assert!(counts.allowed(ip(format!("2001:db8:7:7::{:x}", i + 1))));
        counts.failed(ip(format!("2001:db8:7:7::{:x}", i + 1)));
    }
    assert!(
        !counts.allowed(ip("2001:db8:7:7:abcd::1".into())),
        "a new address in the /64"
    );
    assert!(counts.allowed(ip("2001:db8:7:8::1".into())), "another /64");
}

/// A store that remembers the largest value each put wrote under a key
/// with `prefix`.
#[derive(Debug)]
struct Recording {
    inner: Embedded,
    prefix: &'static str,
    largest: std::sync::Mutex<usize>,
}

impl Store for Recording {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
        self.inner.get(key)
    }
    fn put(&self, entries: &[crate::store::Put<'_>]) -> Result<(), crate::store::StoreError> {
        let mut largest = self.largest.lock().expect("lock");
        for e in entries.iter().filter(|e| e.key.starts_with(self.prefix)) {
            *largest = (*largest).max(e.value.len());
        }
        drop(largest);
        self.inner.put(entries)
    }
    fn delete(&self, key: &str) -> Result<(), crate::store::StoreError> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn queued(i: usize) -> OrganicJob {
    OrganicJob::queued(format!("job-{i:032x}"), "client".into(), numbered(i), 0)
}

/// Job `i`, cancelled: settled, nothing more will happen to it.
fn settled(i: usize) -> OrganicJob {
    let mut job = queued(i);
    job.note(JobState::Cancelled, "cancelled by its client", 1);
    assert!(job.settled());
    job
}

/// The index of jobs is kept in chunks: a new job writes one chunk, not the
/// whole list (before, each insert rewrote every listed id: about 2 MB at
/// 50,000), and the oldest chunk drops out whole past the cap.
#[test]
fn a_new_job_writes_one_chunk_of_the_index() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(Recording {
        inner: Embedded::open(dir.path().join("state.redb")).expect("store"),
        prefix: "akihabara:gateway:job-chunk:",
        largest: std::sync::Mutex::new(0),
    });
    let book = jobs::JobBook::new(store.clone()).with_index_chunks(10, 5);
    for i in 0..73 {
        book.insert(&settled(i)).expect("insert");
    }
    // Ten ids a chunk: the largest index write is ten ids, not 73 (nor 50).
    let ten = serde_json::to_vec(&(0..10).map(|i| queued(i).id).collect::<Vec<_>>())
        .expect("json")
        .len();
    assert_eq!(*store.largest.lock().expect("lock"), ten);
    // Chunks 4..=8 are kept (jobs 30 to 72); chunks 1 to 3 are gone.
    let ids = book.ids().expect("ids");
    assert_eq!(ids, (30..73).map(|i| queued(i).id).collect::<Vec<_>>());
    for n in 1..=3 {
        let key = format!("akihabara:gateway:job-chunk:{n}");
        assert_eq!(store.get(&key).expect("get"), None, "{key}");
    }
    // The jobs themselves stay readable by id.
    assert!(book.get(&queued(0).id).expect("get").is_some());
}

/// A job not yet settled is never dropped from the index with its chunk: it
/// moves to the newest, so a restart still finds it to resume or settle.
/// (Without the move, a job queued or unaccounted when 50,000 newer ones
/// were listed was lost to restarts, and its record never expired.)
#[test]
fn jobs_not_yet_settled_stay_listed() {
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn Store> =
        Arc::new(Embedded::open(dir.path().join("state.redb")).expect("store"));
    let book = jobs::JobBook::new(store).with_index_chunks(10, 2);
    // Job 3 is still queued; the rest are settled.
    for i in 0..35 {
        let job = if i == 3 { queued(i) } else { settled(i) };
        book.insert(&job).expect("insert");
    }
    let mut expected = vec![queued(3).id];
    expected.extend((20..35).map(|i| queued(i).id));
    assert_eq!(book.ids().expect("ids"), expected);
    assert_eq!(book.unfinished().expect("unfinished")[0].id, queued(3).id);
}

/// A store from before the chunks: its one list is read as it is, and the
/// first new job splits it into chunks and drops it.
#[test]
fn an_index_from_before_chunks_is_read_then_split() {
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn Store> =
        Arc::new(Embedded::open(dir.path().join("state.redb")).expect("store"));
    let old: Vec<String> = (0..25).map(|i| queued(i).id).collect();
    let list = serde_json::to_vec(&old).expect("json");
    store
        .put(&[crate::store::Put::new("akihabara:gateway:jobs", &list)])
        .expect("put");
    let book = jobs::JobBook::new(store.clone()).with_index_chunks(10, 5);
    assert_eq!(book.ids().expect("ids"), old);
    book.insert(&queued(25)).expect("insert");
    let mut all = old.clone();
    all.push(queued(25).id);
    assert_eq!(book.ids().expect("ids"), all);
    assert_eq!(store.get("akihabara:gateway:jobs").expect("get"), None);
    // Split as 10, 10, 5, and the new id joined the last chunk.
    let last: Vec<String> = serde_json::from_slice(
        &store
            .get("akihabara:gateway:job-chunk:3")
            .expect("get")
            .expect("chunk 3"),
    )
    .expect("json");
    assert_eq!(last, all[20..]);
}

/// Idle connections give their places to new ones once every place is
/// taken; one with a request being served (here, its body still coming)
/// keeps its place. Before, idle connections from a few addresses left a
/// client with nowhere to connect.
#[tokio::test]
async fn idle_connections_give_their_places_and_busy_ones_keep_theirs() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("dir");
    let gateway = open(dir.path(), store(dir.path()), rules());
    let (_, key) = gateway
        .clients()
        .add_key("test", &ClientLimits::default(), 0)
        .expect("key");
    let settings = HttpSettings {
        max_connections: 3,
        max_connections_per_ip: 1,
        body_timeout: Duration::from_secs(5),
        ..HttpSettings::default()
    };
    let api = serve_with(gateway.clone(), settings).await;
    let addr: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let connect = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, last], 0)))
            .expect("bind");
        socket.connect(addr).await.expect("connect")
    };
    // The oldest: a job submission whose body has not arrived yet.
    let body = order(&["true"]).to_string();
    let mut busy = connect(10).await;
    busy.write_all(
        format!(
            "POST /v1/jobs HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut idle = [connect(11).await, connect(12).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = akihabara_core::dendrite::http_client()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let health = client
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("a place was made");
    assert_eq!(health.status().as_u16(), 200);
    // The idle one of 127.0.0.11 made way; 127.0.0.12's is still open.
    let mut b = [0u8; 1];
    let first = tokio::time::timeout(Duration::from_secs(2), idle[0].read(&mut b)).await;
    assert!(matches!(first, Ok(Ok(0) | Err(_))), "{first:?}");
    let second = tokio::time::timeout(Duration::from_millis(50), idle[1].read(&mut b)).await;
    assert!(second.is_err(), "{second:?}");
    // The submission goes through on its connection.
    busy.write_all(body.as_bytes()).await.expect("body");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), busy.read(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 201 "), "{head}");
    assert_eq!(gateway.book().ids().expect("ids").len(), 1);
}
