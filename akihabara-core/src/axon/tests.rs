//! The axon pipeline end to end over loopback, with our dendrite and raw
//! requests for what a well-behaved dendrite never sends.

use super::*;
use crate::dendrite::{AuthMode, AxonTarget, Dendrite};
use crate::metagraph::snapshot;
use std::sync::atomic::AtomicUsize;
use tokio::sync::oneshot;

const T: Duration = Duration::from_secs(5);

struct Running {
    target: AxonTarget,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stats: Arc<AxonStats>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn alice() -> Keypair {
    Keypair::from_uri("//Alice").unwrap()
}
fn bob() -> Keypair {
    Keypair::from_uri("//Bob").unwrap()
}

/// A slow synapse for timeout and concurrency tests.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Sleep {
    ms: u64,
}
impl Synapse for Sleep {
    const NAME: &'static str = "Sleep";
}

async fn start(builder: AxonBuilder) -> Running {
    let axon = builder
        .builtins(Vec::new)
        .route(|s: Sleep, _| async move {
            tokio::time::sleep(Duration::from_millis(s.ms)).await;
            Ok(s)
        })
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    run(axon)
}

/// Serves `axon` (bound to 127.0.0.1 with bob's key) until stopped.
fn run(axon: Axon) -> Running {
    let port = axon.local_addr().unwrap().port();
    let stats = axon.stats();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(axon.serve(async {
        let _ = rx.await;
    }));
    Running {
        target: AxonTarget::new("127.0.0.1".parse().unwrap(), port, bob().account()),
        stop: Some(tx),
        task,
        stats,
    }
}

fn url(r: &Running, name: &str) -> String {
    format!("http://127.0.0.1:{}/{name}", r.target.port)
}

/// A signed legacy request as raw parts, for tampering.
fn signed(d: &Dendrite, target: &AxonTarget, ping: Ping) -> (Vec<u8>, Vec<(String, String)>) {
    d.prepare(target, ping, T, "lane-1").unwrap()
}

async fn send(
    r: &Running,
    name: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> (u16, serde_json::Value) {
    send_with(
        &crate::dendrite::http_client().build().expect("client"),
        r,
        name,
        body,
        headers,
    )
    .await
}

/// [`send`] through `client` (one bound to another source address, say).
async fn send_with(
    client: &reqwest::Client,
    r: &Running,
    name: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> (u16, serde_json::Value) {
    let mut req = client
        .post(url(r, name))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn ping_and_specs_answer_exactly() {
    let r = start(Axon::builder(bob())).await;
    let d = Dendrite::new(alice()).unwrap();
    let reply = d.call(&r.target, Ping::new("héllo 'x'", 41), T).await;
    assert_eq!(
        (reply.status, reply.message.as_str()),
        (200, "Success"),
        "{reply:?}"
    );
    let p = reply.synapse.unwrap();
    assert_eq!(p.echo.as_deref(), Some("héllo 'x'"));
    assert_eq!(p.count_plus_one, Some(42));
    assert_eq!(p.served_by, Some(bob().account().to_ss58()));
    assert_eq!(reply.axon.status_code, Some(200));
    let specs = d.call(&r.target, SpecsQuery::default(), T).await;
    assert_eq!(specs.status, 200);
    assert!(specs.synapse.unwrap().cpu_count.unwrap() >= 1);
    r.stop().await;
}

#[tokio::test]
async fn wrong_axon_hotkey_and_replays_are_unverified() {
    let r = start(Axon::builder(bob())).await;
    let d = Dendrite::new(alice()).unwrap();
    let mut wrong = r.target.clone();
    wrong.hotkey = alice().account();
    let reply = d.call(&wrong, Ping::new("x", 0), T).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .message
            .starts_with("Not Verified with error: Signature mismatch"),
        "{}",
        reply.message
    );

    let (body, headers) = signed(&d, &r.target, Ping::new("once", 1));
    assert_eq!(send(&r, "Ping", body.clone(), &headers).await.0, 200);
    let (status, json) = send(&r, "Ping", body, &headers).await;
    assert_eq!(status, 401);
    assert_eq!(
        json["message"],
        "Not Verified with error: Nonce was already used"
    );

    let (body, mut headers) = signed(&d, &r.target, Ping::new("x", 1));
    headers.retain(|(k, _)| k != "bt_header_dendrite_signature");
    let (status, json) = send(&r, "Ping", body, &headers).await;
    assert_eq!(
        (status, json["message"].as_str()),
        (401, Some("Not Verified with error: Missing Signature"))
    );
    r.stop().await;
}

#[tokio::test]
async fn blacklist_runs_before_verify_and_allow_lists_only_restrict() {
    let mg = snapshot::from_slice(
        format!(
            r#"{{"netuid": 2, "block": 1, "neurons": [
              {{"uid": 0, "hotkey": "{}", "stake_rao": 5000000000000, "validator_permit": true}},
              {{"uid": 1, "hotkey": "{}", "stake_rao": 1000000000, "validator_permit": false}}]}}"#,
            alice().account(),
            Keypair::from_uri("//Charlie").unwrap().account()
        )
        .as_bytes(),
    )
    .unwrap();
    let charlie = Keypair::from_uri("//Charlie").unwrap();
    let policy = StakePolicy::new(Some(mg))
        .allow_hotkeys([alice().account(), charlie.account()])
        .deny_hotkeys([Keypair::from_uri("//Dave").unwrap().account()]);
    let axon = Axon::builder(bob())
        .policy(policy)
        .builtins(Vec::new)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let inner = axon.inner.clone();
    let r = run(axon);
    let call = |k: Keypair| {
        let t = r.target.clone();
        async move {
            Dendrite::new(k)
                .unwrap()
                .call(&t, Ping::new("x", 0), T)
                .await
        }
    };
    assert_eq!(call(alice()).await.status, 200);
    let c = call(charlie.clone()).await;
    assert_eq!(c.status, 403);
    assert_eq!(
        c.message,
        format!(
            "Forbidden. Key is blacklisted: hotkey {} has no validator permit.",
            charlie.account()
        )
    );
    let dave = call(Keypair::from_uri("//Dave").unwrap()).await;
    assert!(dave.message.contains("deny list"), "{}", dave.message);
    let eve = call(Keypair::from_uri("//Eve").unwrap()).await;
    assert!(
        eve.message.contains("not on the allow list"),
        "{}",
        eve.message
    );
    // Blacklist comes before verify: a forged request from a denied key is 403, not 401.
    let d = Dendrite::new(Keypair::from_uri("//Dave").unwrap()).unwrap();
    let (body, mut headers) = signed(&d, &r.target, Ping::new("x", 0));
    for h in headers
        .iter_mut()
        .filter(|(k, _)| k == "bt_header_dendrite_signature")
    {
        h.1 = format!("0x{}", "00".repeat(64));
    }
    assert_eq!(send(&r, "Ping", body, &headers).await.0, 403);
    // Refused callers' keys were never decompressed into the cache: only
    // alice's is there.
    assert_eq!(inner.verifier.cached_keys(), 1);
    r.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_the_server_keeps_serving() {
    let config = AxonConfig {
        max_body_bytes: 1024,
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let d = Dendrite::new(alice()).unwrap();
    let client = crate::dendrite::http_client().build().expect("client");

    let (status, json) = send(&r, "Nope", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 404);
    assert_eq!(
        json["message"],
        "Synapse name 'Nope' not found. Available synapses ['Ping', 'Sleep', 'SpecsQuery']"
    );
    assert_eq!(
        client
            .get(url(&r, "Ping"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        405
    );

    let (body, headers) = signed(&d, &r.target, Ping::new("x", 0));
    let mut req = client
        .post(url(&r, "Ping"))
        .header("content-type", "text/plain")
        .body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 415);

    let (body, headers) = signed(&d, &r.target, Ping::new("x".repeat(2000), 0));
    assert_eq!(send(&r, "Ping", body, &headers).await.0, 413);

    for (name, value) in [
        ("timeout", "-1"),
        ("timeout", "nan"),
        ("bt_header_dendrite_nonce", "soon"),
    ] {
        let (body, mut headers) = signed(&d, &r.target, Ping::new("x", 0));
        headers.retain(|(k, _)| k != name);
        headers.push((name.into(), value.into()));
        let (status, json) = send(&r, "Ping", body, &headers).await;
        assert_eq!(status, 400, "{name}={value}: {json}");
        assert!(json["message"].as_str().unwrap().contains(name), "{json}");
    }
    let (body, mut headers) = signed(&d, &r.target, Ping::new("x", 0));
    headers.retain(|(k, _)| !k.starts_with("bt_header_input_obj"));
    let (status, json) = send(&r, "Ping", body, &headers).await;
    assert_eq!(
        (status, json["message"].as_str()),
        (400, Some("header `bt_header_input_obj_message` is missing"))
    );

    // Duplicate protocol headers.
    let (body, headers) = signed(&d, &r.target, Ping::new("x", 0));
    let mut req = client
        .post(url(&r, "Ping"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let resp = req.header("computed_body_hash", "ab").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // A body that is not the one that was signed.
    let (_, headers) = signed(&d, &r.target, Ping::new("signed", 0));
    let (other, _) = signed(&d, &r.target, Ping::new("swapped", 0));
    let (status, json) = send(&r, "Ping", other, &headers).await;
    assert_eq!(status, 400);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .starts_with("Hash mismatch"),
        "{json}"
    );

    // Not JSON at all (the signature covers the hash header, not the body).
    let (_, headers) = signed(&d, &r.target, Ping::new("x", 0));
    assert_eq!(
        send(&r, "Ping", b"\xff\xfe not json".to_vec(), &headers)
            .await
            .0,
        400
    );

    // Still serving.
    assert_eq!(d.call(&r.target, Ping::new("ok", 1), T).await.status, 200);
    let by_status: std::collections::HashMap<u16, u64> = r.stats.by_status().into_iter().collect();
    assert_eq!(by_status.get(&413), Some(&1));
    r.stop().await;
}

#[tokio::test]
async fn a_flooding_hotkey_is_rate_limited_alone() {
    let config = AxonConfig {
        rate_limit: Some(RateLimit {
            per_second: 0.5,
            burst: 3,
        }),
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let flood = Dendrite::new(alice()).unwrap();
    let statuses: Vec<u16> = flood
        .call_many(&vec![r.target.clone(); 8], &Ping::new("x", 0), T, 1)
        .await
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    let other = Dendrite::new(Keypair::from_uri("//Charlie").unwrap()).unwrap();
    assert_eq!(
        other.call(&r.target, Ping::new("x", 0), T).await.status,
        200
    );
    r.stop().await;
}

#[tokio::test]
async fn full_worker_slots_time_out_with_408_and_handlers_are_bounded() {
    let config = AxonConfig {
        max_concurrent: 1,
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let d = Dendrite::new(alice()).unwrap();
    let slow = {
        let (d, t) = (d.clone(), r.target.clone());
        tokio::spawn(async move { d.call(&t, Sleep { ms: 1500 }, T).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Queued behind the slow call, with a 0.3 s budget: the axon answers 408.
    let queued = d
        .call(&r.target, Ping::new("x", 0), Duration::from_millis(300))
        .await;
    assert_eq!(queued.status, 408, "{queued:?}");
    assert_eq!(slow.await.unwrap().status, 200);
    // A handler slower than the request's own timeout: 408 from the axon
    // (the client allows longer than it announced here).
    let (body, mut headers) = d
        .prepare(&r.target, Sleep { ms: 2000 }, T, "lane-x")
        .unwrap();
    headers.retain(|(k, _)| k != "timeout");
    headers.push(("timeout".into(), "0.2".into()));
    let (status, json) = send(&r, "Sleep", body, &headers).await;
    assert_eq!(
        (status, json["message"].as_str()),
        (408, Some("Response timeout after: 0.2s"))
    );
    r.stop().await;
}

#[tokio::test]
async fn concurrent_calls_from_one_dendrite_never_trip_the_nonce_check() {
    let r = start(Axon::builder(bob())).await;
    let d = Dendrite::new(alice()).unwrap();
    let replies = d
        .call_many(&vec![r.target.clone(); 300], &Ping::new("x", 1), T, 32)
        .await;
    assert!(
        replies.iter().all(|c| c.status == 200),
        "{:?}",
        replies.iter().find(|c| c.status != 200)
    );
    r.stop().await;
}

#[tokio::test]
async fn btauth_calls_are_served_and_replays_refused() {
    let r = start(Axon::builder(bob())).await;
    let d = Dendrite::with_options(alice(), AuthMode::BtAuth, "127.0.0.1").unwrap();
    let reply = d.call(&r.target, Ping::new("v11", 1), T).await;
    assert_eq!(reply.status, 200, "{}", reply.message);
    assert_eq!(reply.synapse.unwrap().echo.as_deref(), Some("v11"));
    let (body, headers) = d.prepare(&r.target, Ping::new("again", 1), T, "-").unwrap();
    assert_eq!(send(&r, "Ping", body.clone(), &headers).await.0, 200);
    let (status, json) = send(&r, "Ping", body, &headers).await;
    assert_eq!(status, 401);
    assert_eq!(
        json["message"],
        "Not Verified with error: this nonce was already accepted from this hotkey"
    );
    let mut wrong = r.target.clone();
    wrong.hotkey = alice().account();
    assert_eq!(d.call(&wrong, Ping::new("x", 1), T).await.status, 401);
    r.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let r = start(Axon::builder(bob())).await;
    let d = Dendrite::new(alice()).unwrap();
    let slow = {
        let (d, t) = (d.clone(), r.target.clone());
        tokio::spawn(async move { d.call(&t, Sleep { ms: 500 }, T).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let target = r.target.clone();
    r.stop().await;
    assert_eq!(slow.await.unwrap().status, 200);
    // And it no longer accepts connections.
    assert_eq!(d.call(&target, Ping::new("x", 0), T).await.status, 503);
}

#[tokio::test]
async fn dendrite_maps_client_failures_like_python() {
    let d = Dendrite::new(alice()).unwrap();
    // Nothing listens on port 9 of loopback.
    let closed = AxonTarget::new("127.0.0.1".parse().unwrap(), 9, bob().account());
    let c = d.call(&closed, Ping::new("x", 0), T).await;
    assert_eq!(c.status, 503);
    assert_eq!(c.message, "Service unavailable at 127.0.0.1:9/Ping");
    // A server that accepts and never answers: 408.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = AxonTarget::new("127.0.0.1".parse().unwrap(), port, bob().account());
    let c = d
        .call(&t, Ping::new("x", 0), Duration::from_millis(200))
        .await;
    assert_eq!(c.status, 408);
    drop(silent);
}

/// A hostile axon's status messages are cut to `MAX_CALL_MESSAGE`, on a
/// refusal and on a success: they reach logs and stored records.
#[tokio::test]
async fn dendrite_cuts_a_hostile_axons_messages() {
    use crate::dendrite::MAX_CALL_MESSAGE;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // Within a Ping answer's bound (64 KiB), far above MAX_CALL_MESSAGE.
    let long = "x".repeat(60 << 10);
    let refusal = serde_json::json!({ "message": long }).to_string();
    let mut env = crate::protocol::Envelope::new(Ping::new("x", 0));
    env.axon = Some(crate::protocol::TerminalInfo {
        status_message: Some(long.clone()),
        ..Default::default()
    });
    let success = serde_json::to_string(&env).unwrap();
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let answers = [("403 Forbidden", refusal), ("200 OK", success)];
    let serve = tokio::spawn(async move {
        for (status, body) in answers {
            let (mut s, _) = server.accept().await.unwrap();
            let mut head = vec![0u8; 64 * 1024];
            let _ = s.read(&mut head).await.unwrap();
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    let d = Dendrite::new(alice()).unwrap();
    let t = AxonTarget::new("127.0.0.1".parse().unwrap(), port, bob().account());
    for status in [403, 200] {
        let c = d.call(&t, Ping::new("x", 0), T).await;
        assert_eq!(c.status, status);
        assert!(c.message.len() <= MAX_CALL_MESSAGE, "{}", c.message.len());
        assert!(c.message.starts_with("xxx") && c.message.ends_with('…'));
    }
    serve.await.unwrap();
}

/// Callers that hang up cannot make the axon probe its GPUs once per call:
/// one probe at a time, its list kept for a while.
#[tokio::test]
async fn gpus_are_probed_once_however_many_callers_hang_up() {
    use std::sync::atomic::AtomicUsize;
    let probes = Arc::new(AtomicUsize::new(0));
    let counted = probes.clone();
    let axon = Axon::builder(bob())
        .builtins(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            vec![GpuInfo {
                name: "NVIDIA H100".into(),
                memory_mb: 81_559,
                uuid: "GPU-1".into(),
            }]
        })
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let target = AxonTarget::new(
        "127.0.0.1".parse().unwrap(),
        axon.local_addr().unwrap().port(),
        bob().account(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(axon.serve(async {
        let _ = stopped.await;
    }));
    let d = Dendrite::new(alice()).unwrap();
    let mut hung_up = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (d, target) = (d.clone(), target.clone());
        hung_up.spawn(async move {
            d.call(&target, SpecsQuery::default(), Duration::from_millis(50))
                .await
                .status
        });
    }
    for status in hung_up.join_all().await {
        assert_eq!(status, 408);
    }
    let answered = d.call(&target, SpecsQuery::default(), T).await;
    assert_eq!(answered.status, 200, "{}", answered.message);
    let gpus = answered.synapse.and_then(|s| s.gpus).unwrap_or_default();
    assert_eq!(gpus.len(), 1);
    assert_eq!(probes.load(Ordering::SeqCst), 1);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn nonces_never_go_backwards_under_concurrency() {
    let d = Dendrite::new(alice()).unwrap();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let d = d.clone();
        handles.push(std::thread::spawn(move || {
            (0..5000).map(|_| d.next_nonce()).collect::<Vec<_>>()
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for h in handles {
        let v = h.join().unwrap();
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        all.extend(v);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "every nonce is unique");
}

// ---- Issue 23: what a hostile caller could do, as regression tests. Each
// attacker is raw sockets over loopback, bounded in count and time.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Opens a raw connection and writes `head` (request line and headers).
async fn raw(r: &Running, head: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", r.target.port))
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// The status of the first response on `s`, or `None` when the server
/// closed without one. Gives up after `within`.
async fn status_of(s: &mut tokio::net::TcpStream, within: Duration) -> Option<u16> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, s.read(&mut buf))
        .await
        .expect("the server neither answered nor closed")
        .ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn btauth_head(nonce: u64, content_length: usize) -> String {
    format!(
        "POST /Ping HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {content_length}\r\nX-Bittensor-Version: 1\r\n\
         X-Bittensor-Hotkey: {}\r\nX-Bittensor-Nonce: {nonce}\r\n\
         X-Bittensor-Signature: 0x{}\r\nX-Bittensor-Receiver: {}\r\n\r\n",
        alice().account().to_ss58(),
        "00".repeat(64),
        bob().account().to_ss58()
    )
}

/// Finding 1: a request that merely claims btauth/1 cannot make the axon
/// hold more than the unverified-bytes budget, nor hold it for long; a stale
/// nonce is refused before a byte of the body is read.
#[tokio::test]
async fn unverified_bodies_are_budgeted_and_stale_ones_never_read() {
    let config = AxonConfig {
        max_unverified_bytes: 1 << 20,
        body_timeout: Duration::from_secs(1),
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    // Stale: 401 at once, although 4 MiB are announced and none sent.
    let mut stale = raw(&r, &btauth_head(1, 4 << 20)).await;
    assert_eq!(status_of(&mut stale, T).await, Some(401));
    // Fresh but forged: the first stalled body takes 900 KB of the 1 MiB
    // budget; a second is refused with 503 at once.
    let now = protocol::unix_nanos();
    let mut first = raw(&r, &btauth_head(now, 900_000)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = raw(&r, &btauth_head(now + 1, 900_000)).await;
    assert_eq!(status_of(&mut second, T).await, Some(503));
    // A real caller with a small body still gets through meanwhile.
    let d = Dendrite::with_options(alice(), AuthMode::BtAuth, "127.0.0.1").unwrap();
    let reply = d.call(&r.target, Ping::new("ok", 1), T).await;
    assert_eq!(reply.status, 200, "{}", reply.message);
    // The stalled body is given up after the body timeout.
    let t = std::time::Instant::now();
    assert_eq!(status_of(&mut first, T).await, Some(408));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    r.stop().await;
}

/// Finding 4: a hotkey flooding under a rate limit, with a new uuid each
/// time, neither fills the nonce store for others nor is remembered for
/// the requests the rate limit refused.
#[tokio::test]
async fn a_throttled_flood_does_not_lock_other_callers_out() {
    let config = AxonConfig {
        rate_limit: Some(RateLimit {
            per_second: 0.01,
            burst: 1,
        }),
        nonces: NoncePolicy {
            capacity: 20,
            ..NoncePolicy::default()
        },
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let flood = Dendrite::new(alice()).unwrap();
    let mut statuses = Vec::new();
    for i in 0..60 {
        let (body, headers) = flood
            .prepare(&r.target, Ping::new("x", 0), T, &format!("uuid-{i}"))
            .unwrap();
        statuses.push(send(&r, "Ping", body, &headers).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        59,
        "{statuses:?}"
    );
    for who in ["//Charlie", "//Dave", "//Eve"] {
        let d = Dendrite::new(Keypair::from_uri(who).unwrap()).unwrap();
        let reply = d.call(&r.target, Ping::new("x", 0), T).await;
        assert_eq!(reply.status, 200, "{who}: {}", reply.message);
    }
    // An attacker-sized uuid is refused, not stored.
    let (body, headers) = flood
        .prepare(&r.target, Ping::new("x", 0), T, &"u".repeat(8192))
        .unwrap();
    let (status, json) = send(&r, "Ping", body, &headers).await;
    assert_eq!(
        (status, json["message"].as_str()),
        (
            401,
            Some("Not Verified with error: uuid is 8192 bytes; at most 64 are accepted")
        )
    );
    r.stop().await;
}

/// Finding 5: signed requests whose bodies stall hold no worker slot.
#[tokio::test]
async fn stalled_bodies_hold_no_worker_slot() {
    let config = AxonConfig {
        max_concurrent: 2,
        body_timeout: Duration::from_secs(2),
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let d = Dendrite::new(alice()).unwrap();
    let mut stalled = Vec::new();
    for i in 0..6 {
        let (body, headers) = d
            .prepare(&r.target, Ping::new("x", 0), T, &format!("s{i}"))
            .unwrap();
        let mut head = format!(
            "POST /Ping HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n",
            body.len()
        );
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut s = raw(&r, &head).await;
        s.write_all(&body[..body.len() / 2]).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    let reply = Dendrite::new(Keypair::from_uri("//Charlie").unwrap())
        .unwrap()
        .call(&r.target, Ping::new("x", 0), Duration::from_secs(1))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.message);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    for s in &mut stalled {
        assert_eq!(status_of(s, T).await, Some(408));
    }
    r.stop().await;
}

/// Finding 5: idle connections from one address cannot use up the axon's
/// descriptors; a caller from another address is still served.
#[tokio::test]
async fn connections_are_capped_per_address() {
    let config = AxonConfig {
        max_connections_per_ip: 8,
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", r.target.port))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Those over the cap were closed by the server at once.
    let mut closed = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 32);
    assert_eq!(r.stats.refused_connections(), 32);
    // Another address is served: 127.0.0.2 is loopback too.
    let d = Dendrite::new(Keypair::from_uri("//Charlie").unwrap()).unwrap();
    let (body, headers) = d.prepare(&r.target, Ping::new("x", 0), T, "c").unwrap();
    let client = crate::dendrite::http_client()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(send_with(&client, &r, "Ping", body, &headers).await.0, 200);
    r.stop().await;
}

/// Finding 10: a request captured before a restart is refused after it,
/// even with its unsigned timeout header raised to 300 s.
#[tokio::test]
async fn a_restart_does_not_reopen_captured_requests() {
    let first = start(Axon::builder(bob())).await;
    let d = Dendrite::new(alice()).unwrap();
    let (body, mut headers) = d
        .prepare(&first.target, Ping::new("x", 0), T, "lane")
        .unwrap();
    assert_eq!(send(&first, "Ping", body.clone(), &headers).await.0, 200);
    first.stop().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = start(Axon::builder(bob())).await;
    headers.retain(|(k, _)| k != "timeout");
    headers.push(("timeout".into(), "300".into()));
    let (status, json) = send(&second, "Ping", body, &headers).await;
    assert_eq!(
        (status, json["message"].as_str()),
        (
            401,
            Some(
                "Not Verified with error: Nonce predates this axon's replay memory (it \
                 restarted or forgot older nonces); sign a new request"
            )
        )
    );
    second.stop().await;
}

/// Finding 9: a rate too small for a Duration is a typed error, not a panic.
#[test]
fn absurd_rate_limits_are_refused() {
    for per_second in [1e-300, 0.0, -1.0, f64::NAN] {
        let e = quota(RateLimit {
            per_second,
            burst: 1,
        })
        .expect_err("refused");
        assert!(e.starts_with("rate limit"), "{e}");
    }
    assert!(
        quota(RateLimit {
            per_second: 1.0 / 86_400.0,
            burst: 1
        })
        .is_ok()
    );
}

/// An axon whose `Sleep` route counts the calls in it, and the most at once.
async fn start_counting(config: AxonConfig) -> (Running, Arc<(AtomicUsize, AtomicUsize)>) {
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let c = counts.clone();
    let axon = Axon::builder(bob())
        .config(config)
        .builtins(Vec::new)
        .route(move |s: Sleep, _| {
            let c = c.clone();
            async move {
                let now = c.0.fetch_add(1, Ordering::SeqCst) + 1;
                c.1.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(s.ms)).await;
                c.0.fetch_sub(1, Ordering::SeqCst);
                Ok(s)
            }
        })
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (run(axon), counts)
}

/// An axon that takes 200 calls at once from one address.
fn roomy() -> AxonConfig {
    AxonConfig {
        max_concurrent: 200,
        max_connections_per_ip: 200,
        ..AxonConfig::default()
    }
}

/// 150 calls at once from one dendrite to one axon: at most
/// `MAX_IN_FLIGHT_PER_AXON` are in flight, each on a lane the axon
/// remembers, so all are served. (With one lane per call, 150 uuids pushed
/// each other out of the axon's memory of the hotkey, and calls still in
/// flight fell below the floor an eviction leaves: 401.)
#[tokio::test]
async fn a_dendrite_keeps_at_most_its_lanes_in_flight_to_one_axon() {
    use crate::dendrite::MAX_IN_FLIGHT_PER_AXON;
    let (r, counts) = start_counting(roomy()).await;
    let d = Dendrite::new(alice()).unwrap();
    let replies = d
        .call_many(&vec![r.target.clone(); 150], &Sleep { ms: 1000 }, T, 150)
        .await;
    let refused: Vec<_> = replies
        .iter()
        .filter(|c| c.status != 200)
        .map(|c| (c.status, c.message.clone()))
        .collect();
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
    assert_eq!(counts.1.load(Ordering::SeqCst), MAX_IN_FLIGHT_PER_AXON);
    r.stop().await;
}

/// A call that waits for a lane longer than its timeout gets 408, and the
/// wait is per axon: another axon is called meanwhile.
#[tokio::test]
async fn a_call_waiting_for_a_lane_times_out_and_other_axons_are_not_held() {
    use crate::dendrite::MAX_IN_FLIGHT_PER_AXON;
    let (busy, counts) = start_counting(roomy()).await;
    let (other, _) = start_counting(roomy()).await;
    let d = Dendrite::new(alice()).unwrap();
    let slow = {
        let (d, t) = (d.clone(), busy.target.clone());
        tokio::spawn(async move {
            d.call_many(
                &vec![t; MAX_IN_FLIGHT_PER_AXON],
                &Sleep { ms: 1500 },
                T,
                MAX_IN_FLIGHT_PER_AXON,
            )
            .await
        })
    };
    let deadline = Instant::now() + T;
    while counts.0.load(Ordering::SeqCst) < MAX_IN_FLIGHT_PER_AXON {
        assert!(
            Instant::now() < deadline,
            "the slow calls never all arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = d
        .call(&busy.target, Sleep { ms: 0 }, Duration::from_millis(300))
        .await;
    assert_eq!(waited.status, 408, "{}", waited.message);
    assert!(!waited.answered);
    assert_eq!(
        waited.message,
        format!(
            "Request timeout after 0.3 seconds (waiting for one of the {MAX_IN_FLIGHT_PER_AXON} calls in flight to this axon)"
        )
    );
    let meanwhile = d.call(&other.target, Sleep { ms: 0 }, T).await;
    assert_eq!(meanwhile.status, 200, "{}", meanwhile.message);
    assert!(slow.await.unwrap().iter().all(|c| c.status == 200));
    // The lanes are free again.
    assert_eq!(d.call(&busy.target, Sleep { ms: 0 }, T).await.status, 200);
    busy.stop().await;
    other.stop().await;
}

/// The per-address cap counts an IPv6 /64 as one caller (one host is
/// usually given a whole /64), and an IPv4-mapped address as its IPv4.
#[test]
fn connection_caps_count_an_ipv6_64_as_one_caller() {
    let limit = ConnectionLimit::new(100, 2);
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let a = limit.admit(ip("2001:db8:1:2::1")).expect("first");
    let _b = limit
        .admit(ip("2001:db8:1:2:ffff:ffff:ffff:fffe"))
        .expect("second");
    assert!(
        limit.admit(ip("2001:db8:1:2::3")).is_none(),
        "a third from the /64"
    );
    let _other = limit.admit(ip("2001:db8:1:3::1")).expect("another /64");
    drop(a);
    let _c = limit
        .admit(ip("2001:db8:1:2::4"))
        .expect("a place was freed");
    let _v4 = limit.admit(ip("192.0.2.1")).expect("v4");
    let _mapped = limit.admit(ip("::ffff:192.0.2.1")).expect("v4, mapped");
    assert!(
        limit.admit(ip("192.0.2.1")).is_none(),
        "mapped counts as the v4"
    );
    assert_eq!(limit.open(), 5);
}

/// An attacker that pipelines requests and never reads the answers, with a
/// small receive window: its connection is closed once the axon's answers
/// have not moved for `send_timeout`. (hyper's timers run only while it
/// reads a request: before, the connection, and its place under the caps,
/// stayed while the answers sat unsent.)
#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_cut_off() {
    let config = AxonConfig {
        send_timeout: Duration::from_secs(1),
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], r.target.port));
    // 100,000 pipelined requests, several MB of answers: far more than the
    // socket buffers hold.
    let request = b"GET /Nowhere HTTP/1.1\r\nhost: a\r\n\r\n";
    let outcome = pipeline_and_stop_reading(addr, request, 100_000)
        .await
        .unwrap();
    assert!(
        outcome.is_ok(),
        "still open after 5 s of reading: {outcome:?} bytes"
    );
    r.stop().await;
}

/// Connects to `r` from loopback address `from`.
async fn connect_from(r: &Running, from: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], r.target.port)))
        .await
        .unwrap()
}

/// Whether the server closed `s` (read 0 or an error within `within`).
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Idle connections from a few addresses cannot hold every place: at the
/// cap in all, a new connection takes the place of the one idle longest.
/// Before, four addresses at their cap of 2 left a validator's call with
/// nowhere to go (closed at once), for as long as they sent a request each
/// 30 s. Connections serving a request keep their places.
#[tokio::test]
async fn idle_connections_give_their_places_to_new_ones() {
    let config = AxonConfig {
        max_connections: 8,
        max_connections_per_ip: 2,
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let mut idle = Vec::new();
    for i in 0..4u8 {
        for _ in 0..2 {
            idle.push(connect_from(&r, [127, 0, 0, 10 + i]).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for s in &mut idle {
        assert!(!closed_within(s, Duration::from_millis(20)).await);
    }
    // A validator from another address is served, twice (its keep-alive
    // connection is kept between the calls)...
    let d = Dendrite::new(Keypair::from_uri("//Charlie").unwrap()).unwrap();
    let client = crate::dendrite::http_client()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    for i in 0..2 {
        let (body, headers) = d.prepare(&r.target, Ping::new("x", i), T, "c").unwrap();
        assert_eq!(send_with(&client, &r, "Ping", body, &headers).await.0, 200);
    }
    // ...and only the oldest idle connection made way.
    assert!(closed_within(&mut idle[0], Duration::from_secs(2)).await);
    for s in &mut idle[1..] {
        assert!(!closed_within(s, Duration::from_millis(20)).await);
    }
    assert_eq!(r.stats.refused_connections(), 0);

    // Eight calls in flight hold all eight places: a ninth connection is
    // refused, and the eight are answered.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slow = Vec::new();
    for i in 0..8u8 {
        let client = crate::dendrite::http_client()
            .local_address(std::net::IpAddr::from([127, 0, 1, i]))
            .build()
            .unwrap();
        let d = Dendrite::new(Keypair::from_uri(&format!("//Slow{i}")).unwrap()).unwrap();
        let (body, headers) = d.prepare(&r.target, Sleep { ms: 1500 }, T, "s").unwrap();
        let r_url = url(&r, "Sleep");
        slow.push(tokio::spawn(async move {
            let mut req = client
                .post(r_url)
                .header("content-type", "application/json")
                .body(body);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req.send().await.map(|a| a.status().as_u16())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ninth = connect_from(&r, [127, 0, 0, 3]).await;
    assert!(closed_within(&mut ninth, Duration::from_millis(500)).await);
    assert_eq!(r.stats.refused_connections(), 1);
    for call in slow {
        assert_eq!(call.await.unwrap().unwrap(), 200);
    }
    r.stop().await;
}

/// The accounting behind eviction: the idle longest goes first, a
/// connection serving a request is never chosen, nothing is freed twice.
#[tokio::test]
async fn eviction_takes_the_idle_longest_and_never_one_serving() {
    let limit = ConnectionLimit::new(2, 2);
    let ip = |i: u8| std::net::IpAddr::from([192, 0, 2, i]);
    let soon = Duration::from_millis(10);
    let a = limit.admit(ip(1)).expect("a");
    let b = limit.admit(ip(2)).expect("b");
    let c = limit.admit(ip(3)).expect("c, in a's place");
    assert!(tokio::time::timeout(soon, a.evicted()).await.is_ok());
    assert!(tokio::time::timeout(soon, b.evicted()).await.is_err());
    assert_eq!(limit.open(), 2);
    drop(a);
    assert_eq!(limit.open(), 2, "an evicted place is not freed twice");
    // b serves a request: c, though newer, goes.
    let serving = b.tracker().serving();
    let d = limit.admit(ip(4)).expect("d, in c's place");
    assert!(tokio::time::timeout(soon, c.evicted()).await.is_ok());
    drop(c);
    // d and b both serving: no place for e.
    let also = d.tracker().serving();
    assert!(limit.admit(ip(5)).is_none());
    // b's request ends after d's: d is now the idle longest.
    drop(also);
    drop(serving);
    let _e = limit.admit(ip(5)).expect("e, in d's place");
    assert!(tokio::time::timeout(soon, d.evicted()).await.is_ok());
    assert!(tokio::time::timeout(soon, b.evicted()).await.is_err());
    drop(d);
    drop(b);
    assert_eq!(limit.open(), 1);
}

/// A body that claims `btauth/1` and one byte, then stalls, keeps its
/// connection serving (so not evicted) until the body timeout: each is
/// charged a share of the unverified budget, so at most a quarter of the
/// connections can be held that way. Before, each was charged its one
/// byte, and any number could be.
#[tokio::test]
async fn stalled_unverified_bodies_hold_at_most_a_quarter_of_the_connections() {
    let config = AxonConfig {
        max_connections: 8,
        max_connections_per_ip: 8,
        max_unverified_bytes: 1 << 20,
        body_timeout: Duration::from_secs(2),
        ..AxonConfig::default()
    };
    let r = start(Axon::builder(bob()).config(config)).await;
    let now = protocol::unix_nanos();
    let mut stalled = Vec::new();
    for i in 0..2 {
        stalled.push(raw(&r, &btauth_head(now + i, 1)).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = raw(&r, &btauth_head(now + 2, 1)).await;
    assert_eq!(status_of(&mut third, T).await, Some(503));
    for s in &mut stalled {
        assert_eq!(status_of(s, T).await, Some(408));
    }
    r.stop().await;
}
