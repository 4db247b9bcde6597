//! `akihabara gateway`: end users' jobs through a real gateway process,
//! routed to two real miner processes (`axon serve --fleet`) listed in a
//! simulated chain's metagraph, over loopback. The gateway is killed with -9
//! mid-job and comes back with the job.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::axon::{Peer, Wallets, serve_ours};
use super::{bin, run, stderr};

/// One HTTP/1.1 request over a fresh connection: `(status, JSON body)`.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    if let Some(k) = key {
        head.push_str(&format!("authorization: Bearer {k}\r\n"));
    }
    s.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (
        status,
        serde_json::from_str(rest.trim()).unwrap_or(Value::String(rest.to_owned())),
    )
}

fn fleet(dir: &std::path::Path, name: &str, class: &str) -> String {
    let path = dir.join(format!("{name}-fleet.toml"));
    std::fs::write(
        &path,
        format!(
            "[[executors]]\nid = \"{name}\"\nbackend = \"local\"\nclass = \"{class}\"\n\
             unsafe_share_miner_user = true\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// A simulated chain for the gateway and its config: the metagraph holds
/// the validator wallet at uid 0 and `miners` (hotkey, axon port, incentive)
/// from uid 1; `gateway.toml` signs as the validator, reads that metagraph,
/// routes class `cpu`, polls every 200 ms and adds `extra` to `[gateway]`.
/// Returns the config's path and the gateway's state directory.
fn gateway_config(
    d: &std::path::Path,
    wallets: &Wallets,
    miners: &[(&str, u16, f64)],
    extra: &str,
) -> (String, String) {
    let mut neurons = vec![json!({
        "uid": 0, "hotkey": wallets.hotkey("validator"), "stake_rao": 1000, "validator_permit": true
    })];
    for (uid, (hotkey, port, incentive)) in (1..).zip(miners) {
        neurons.push(json!({
            "uid": uid, "hotkey": hotkey, "stake_rao": 0, "validator_permit": false,
            "axon": format!("127.0.0.1:{port}"), "incentive": incentive
        }));
    }
    let mg = d.join("mg.json");
    std::fs::write(
        &mg,
        json!({"version": 1, "netuid": 7, "block": 100, "neurons": neurons}).to_string(),
    )
    .unwrap();
    let config = d.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[wallet]\npath = \"{}\"\nname = \"validator\"\n\
             [chain]\nnetwork = \"snapshot:{}\"\nnetuid = 7\n\
             [gateway]\nclasses = [\"cpu\"]\npoll = \"200ms\"\n{extra}",
            wallets.path(),
            mg.display(),
        ),
    )
    .unwrap();
    (
        config.to_string_lossy().into_owned(),
        d.join("gw").to_string_lossy().into_owned(),
    )
}

/// `gateway serve` on a free port: the process, its address and its ready line.
fn start_gateway(state: &str, config: &str) -> (Peer, String, Value) {
    let mut cmd = bin();
    cmd.args([
        "gateway",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state,
        "--config",
        config,
    ])
    .env_remove("AKIHABARA_WALLET_PASSWORD");
    let peer = Peer::spawn(cmd);
    let ready = peer.event("ready");
    let addr = ready["listen"].as_str().unwrap().to_owned();
    (peer, addr, ready)
}

fn key(state: &str, name: &str, jobs_per_day: &str) -> String {
    let o = run(&[
        "gateway",
        "keys",
        "add",
        "--state-dir",
        state,
        "--name",
        name,
        "--jobs-per-day",
        jobs_per_day,
        // The test polls every 100 ms.
        "--rate",
        "100",
        "--burst",
        "100",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["key"].as_str().unwrap().to_owned()
}

/// Polls the job until `done` holds, within `within`.
fn until(
    addr: &str,
    key: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (status, job) = http(addr, "GET", &format!("/v1/jobs/{id}"), Some(key), None);
        assert_eq!(status, 200, "{job}");
        if done(&job) {
            return job;
        }
        assert!(start.elapsed() < within, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn gateway_routes_jobs_past_a_declining_miner_and_survives_kill_9() {
    let wallets = Wallets::new(&["gpu-miner", "cpu-miner", "validator"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f1 = fleet(d, "gpu", "A100");
    let f2 = fleet(d, "cpu", "cpu");
    let s1 = d.join("m1").to_string_lossy().into_owned();
    let s2 = d.join("m2").to_string_lossy().into_owned();
    let (_m1, p1, gpu_miner) =
        serve_ours(&wallets, "gpu-miner", &["--fleet", &f1, "--state-dir", &s1]);
    let (_m2, p2, cpu_miner) =
        serve_ours(&wallets, "cpu-miner", &["--fleet", &f2, "--state-dir", &s2]);
    // The gpu miner scores best, so it is offered the job first and declines.
    let (config, state) = gateway_config(
        d,
        &wallets,
        &[(&gpu_miner, p1, 0.9), (&cpu_miner, p2, 0.1)],
        &format!(
            "allow_no_image = true\ncross_check_share = 1.0\ntrusted_fleet = \"{}\"\n",
            fleet(d, "trusted", "cpu")
        ),
    );
    let k = key(&state, "acme", "3");
    let (mut gateway, addr, ready) = start_gateway(&state, &config);
    assert_eq!(
        (&ready["routing"], &ready["cross_check"]),
        (&json!(true), &json!(true)),
        "{ready}"
    );

    // No key: 401. A class nobody serves: 422, naming the field.
    let order =
        json!({"command": ["sh", "-c", "sleep 2; echo done"], "class": "cpu", "timeout_s": 60});
    let (status, answer) = http(&addr, "POST", "/v1/jobs", None, Some(&order));
    assert_eq!(
        (status, answer["field"].as_str()),
        (401, Some("authorization")),
        "{answer}"
    );
    let gpu_order = json!({"command": ["true"], "class": "H100", "timeout_s": 60});
    let (status, answer) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&gpu_order));
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("class")),
        "{answer}"
    );

    let (status, job) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&order));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let running = until(&addr, &k, &id, Duration::from_secs(30), |j| {
        j["state"] == "running"
    });
    assert_eq!(running["miner"], cpu_miner.as_str());
    assert_eq!(
        running["attempts"][0]["miner"],
        gpu_miner.as_str(),
        "{running}"
    );
    assert_eq!(running["attempts"][0]["outcome"], "declined");

    // Killed mid-job, started again: the job is still there and followed to its end.
    gateway.kill9();
    let (_gateway, addr, again) = start_gateway(&state, &config);
    // The gateway's id (what hotkey clients sign) is its store's: the same
    // after the restart, and what `/health` shows.
    let id_before = ready["gateway_id"].as_str().unwrap_or_default();
    assert!(
        id_before.starts_with("gw-") && id_before.len() == 35,
        "{ready}"
    );
    assert_eq!(again["gateway_id"], ready["gateway_id"], "{again}");
    let (status, health) = http(&addr, "GET", "/health", None, None);
    assert_eq!((status, &health["gateway_id"]), (200, &ready["gateway_id"]));
    // Every job is cross-checked here (share 1.0): the trusted executor prints
    // what the miner reported.
    let done = until(&addr, &k, &id, Duration::from_secs(60), |j| {
        j["state"] != "running" && j["cross_check"]["result"] != "pending"
    });
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["cross_check"]["result"], "matched", "{done}");
    assert_eq!(done["exit_code"], 0);
    let digest = std::process::Command::new("sh")
        .args(["-c", "printf 'done\\n' | sha256sum"])
        .output()
        .unwrap();
    let digest = String::from_utf8_lossy(&digest.stdout);
    assert_eq!(
        done["stdout_sha256"].as_str(),
        digest.split_whitespace().next()
    );
    let receipts = done["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 2, "{done}");
    assert!(receipts.iter().all(|r| r["miner"] == cpu_miner.as_str()));
    // The receipts are the validator's too.
    let kept = std::fs::read_to_string(d.join("gw/receipts.jsonl")).unwrap();
    assert!(
        kept.lines().filter(|l| l.contains(&id)).count() >= 2,
        "{kept}"
    );

    // A quota of 3 jobs a day: the third accepted order is the last.
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&json!({"command": ["true"], "class": "cpu", "timeout_s": 5})),
    );
    assert_eq!(status, 201);
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&json!({"command": ["true"], "class": "cpu", "timeout_s": 5})),
    );
    assert_eq!(status, 201);
    let (status, answer) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&json!({"command": ["true"], "class": "cpu", "timeout_s": 5})),
    );
    assert_eq!(status, 429, "{answer}");
    // The client's listing has its three jobs, and `jobs list` shows them.
    // Both are read once every job has ended, so the router cannot change a
    // job between the two readings.
    let start = Instant::now();
    let listed = loop {
        let (_, listed) = http(&addr, "GET", "/v1/jobs", Some(&k), None);
        let jobs = listed["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.iter().all(|j| j["state"] == "finished") {
            break listed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jobs never ended: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(3), "{listed}");
    let url = format!("http://{addr}");
    let o = bin()
        .args(["jobs", "list", "--gateway", &url, "--json"])
        .env("AKIHABARA_GATEWAY_KEY", &k)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown, listed);
    let o = bin()
        .args(["jobs", "list", "--gateway", &url])
        .env("AKIHABARA_GATEWAY_KEY", &k)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains(" finished ")),
        "{table}"
    );
    let o = bin()
        .args(["jobs", "list", "--gateway", &url])
        .env_remove("AKIHABARA_GATEWAY_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = bin()
        .args(["jobs", "list", "--gateway", &url])
        .env("AKIHABARA_GATEWAY_KEY", "akh_wrong")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
}

/// What a file server received, by path.
type Received = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>;

/// A file server on loopback for job files: GET and HEAD serve `files`,
/// PUT stores the body, except under `/deny` (403). Threads, std only.
fn file_server(files: Vec<(&'static str, Vec<u8>)>) -> (String, Received) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let files: std::collections::HashMap<String, Vec<u8>> =
        files.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let files = std::sync::Arc::new(files);
    let puts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let stored = puts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (files, stored) = (files.clone(), stored.clone());
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or("").to_owned(),
                );
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, payload, size) = match method {
                    "GET" | "HEAD" => match files.get(&path) {
                        Some(b) => (
                            "200 OK",
                            if method == "GET" {
                                b.clone()
                            } else {
                                Vec::new()
                            },
                            b.len(),
                        ),
                        None => ("404 Not Found", Vec::new(), 0),
                    },
                    "PUT" if path.starts_with("/deny") => ("403 Forbidden", Vec::new(), 0),
                    "PUT" => {
                        stored.lock().unwrap().insert(path, body);
                        ("200 OK", Vec::new(), 0)
                    }
                    _ => ("405 Method Not Allowed", Vec::new(), 0),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    if method == "HEAD" {
                        size
                    } else {
                        payload.len()
                    }
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&payload);
            });
        }
    });
    (format!("http://{addr}"), puts)
}

fn sha256sum(data: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" | sha256sum", "sh", data])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// One miner (`axon serve --fleet`, a local `cpu` executor) that may fetch
/// job files from loopback: its process, port and hotkey.
fn file_miner(wallets: &Wallets, d: &std::path::Path) -> (Peer, u16, String) {
    let f = fleet(d, "cpu", "cpu");
    let s = d.join("m").to_string_lossy().into_owned();
    serve_ours(
        wallets,
        "miner",
        &[
            "--fleet",
            &f,
            "--state-dir",
            &s,
            "--allow-private-file-urls",
        ],
    )
}

#[test]
fn gateway_jobs_fetch_inputs_upload_outputs_and_refuse_bad_files() {
    let wallets = Wallets::new(&["miner", "validator"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_m, port, miner) = file_miner(&wallets, d);
    let (config, state) = gateway_config(
        d,
        &wallets,
        &[(&miner, port, 0.5)],
        &format!(
            "allow_no_image = true\nallow_private_urls = true\nmax_input_mb = 1\n\
             cross_check_share = 1.0\ntrusted_fleet = \"{}\"\n",
            fleet(d, "trusted", "cpu")
        ),
    );
    let k = key(&state, "acme", "100");
    let (base, puts) = file_server(vec![
        ("/in/numbers.txt", b"3 4\n".to_vec()),
        ("/huge", vec![0; 2 << 20]),
    ]);
    let (_gateway, addr, _) = start_gateway(&state, &config);

    let order = |input: &str, put: &str| {
        json!({
            "command": ["sh", "-c", "mkdir -p out && read a b < in/numbers.txt && echo $((a*b)) > out/product"],
            "class": "cpu", "timeout_s": 60,
            "inputs": [{"url": format!("{base}{input}"), "path": "in/numbers.txt", "sha256": sha256sum("3 4\n")}],
            "outputs": [{"path": "out/product", "put_url": format!("{base}{put}")}]
        })
    };
    let (status, job) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&order("/in/numbers.txt", "/bucket/product")),
    );
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    // Cross-checked (share 1.0): the trusted run fetches the input again and
    // digests its output without uploading it.
    let done = until(&addr, &k, &id, Duration::from_secs(60), |j| {
        j["state"] != "queued" && j["state"] != "running" && j["cross_check"]["result"] != "pending"
    });
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["cross_check"]["result"], "matched", "{done}");
    assert_eq!(
        puts.lock()
            .unwrap()
            .get("/bucket/product")
            .map(Vec::as_slice),
        Some(&b"12\n"[..])
    );
    let listing = format!("{}  out/product\n", sha256sum("12\n"));
    assert_eq!(
        done["output_sha256"].as_str(),
        Some(sha256sum(&listing).as_str()),
        "{done}"
    );
    assert_eq!(
        done["receipts"][1]["output_sha256"], done["output_sha256"],
        "the digest is signed"
    );

    // Refused when submitted, each naming its field.
    let (status, answer) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&order("/huge", "/bucket/x")),
    );
    assert_eq!(
        (status, answer["field"].as_str()),
        (413, Some("inputs[0].url")),
        "{answer}"
    );
    let (status, answer) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&order("/in/numbers.txt", "/deny/x")),
    );
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("outputs[0].put_url")),
        "{answer}"
    );
    let mut at_gateway = order("/in/numbers.txt", "/bucket/x");
    at_gateway["inputs"][0]["url"] = json!(format!("http://{addr}/v1/jobs"));
    let (status, answer) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&at_gateway));
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("inputs[0].url")),
        "{answer}"
    );
    let (_, listed) = http(&addr, "GET", "/v1/jobs", Some(&k), None);
    assert_eq!(
        listed["jobs"].as_array().map(Vec::len),
        Some(1),
        "only the good job was queued: {listed}"
    );
}

/// An S3-compatible server (s3s-fs) in this process, on loopback, that
/// checks SigV4 signatures with one access key; its files are under `root`.
struct S3 {
    endpoint: String,
    root: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

const S3_ACCESS: &str = "AKIAAKIHABARATEST";
const S3_SECRET: &str = "akihabara-test-secret-key-0123456789";

impl S3 {
    fn start(buckets: &[&str]) -> S3 {
        let root = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir(root.path().join(b)).unwrap();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(S3_ACCESS, S3_SECRET));
        let service = builder.build();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        S3 {
            endpoint,
            root,
            _runtime: runtime,
        }
    }

    /// A presigned PUT URL from boto3, or `None` (skipped) without the venv.
    fn presign_put(&self, bucket: &str, key: &str) -> Option<String> {
        let python = super::peers::python("boto3-1.35.36")?;
        let url = super::peers::run_python(
            &python,
            "presign_s3.py",
            &[&self.endpoint, S3_ACCESS, S3_SECRET, bucket, key],
        );
        Some(url.trim().to_owned())
    }
}

#[test]
fn gateway_job_outputs_go_to_s3_through_presigned_urls() {
    let s3 = S3::start(&["results"]);
    let Some(put_url) = s3.presign_put("results", "run-1/product") else {
        return;
    };
    let wallets = Wallets::new(&["miner", "validator"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_m, port, miner) = file_miner(&wallets, d);
    let (config, state) = gateway_config(
        d,
        &wallets,
        &[(&miner, port, 0.5)],
        "allow_no_image = true\nallow_private_urls = true\n",
    );
    let k = key(&state, "acme", "100");
    let (_gateway, addr, _) = start_gateway(&state, &config);

    let order = |put: &str| {
        json!({
            "command": ["sh", "-c", "mkdir -p out && echo 42 > out/product"],
            "class": "cpu", "timeout_s": 60,
            "outputs": [{"path": "out/product", "put_url": put}]
        })
    };
    // A URL whose signature was tampered with is refused by S3, so by the
    // gateway, before anything runs.
    let sig_at = put_url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged = put_url.clone();
    let first = &put_url[sig_at..=sig_at];
    forged.replace_range(sig_at..=sig_at, if first == "0" { "1" } else { "0" });
    let (status, answer) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&order(&forged)));
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("outputs[0].put_url")),
        "{answer}"
    );
    assert!(
        answer["error"].as_str().unwrap().contains("403"),
        "{answer}"
    );

    let (status, job) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&order(&put_url)));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = until(&addr, &k, &id, Duration::from_secs(60), |j| {
        j["state"] != "queued" && j["state"] != "running"
    });
    assert_eq!(done["state"], "finished", "{done}");
    let stored = std::fs::read(s3.root.path().join("results/run-1/product")).unwrap();
    assert_eq!(stored, b"42\n");
    let listing = format!("{}  out/product\n", sha256sum("42\n"));
    assert_eq!(
        done["output_sha256"].as_str(),
        Some(sha256sum(&listing).as_str()),
        "{done}"
    );
}

fn docker_fleet(dir: &std::path::Path, name: &str, class: &str, engine: &str) -> String {
    let path = dir.join(format!("{name}-fleet.toml"));
    std::fs::write(
        &path,
        format!(
            "[[executors]]\nid = \"{name}\"\nbackend = \"docker\"\nclass = \"{class}\"\n\
             address = \"{engine}\"\nimages = [\"akihabara-test/*\"]\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// The whole path: a gateway, two miners whose executors are containers on
/// a real dockerd, an input from a loopback file server, and the output
/// uploaded back to it.
#[test]
fn gateway_jobs_run_in_miners_containers_with_their_files() {
    let Some(engine) = super::docker::Dockerd::start() else {
        return;
    };
    let image = super::docker::IMAGE;
    let wallets = Wallets::new(&["gpu-miner", "cpu-miner", "validator"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (f1, f2) = (
        docker_fleet(d, "gpu", "A100", &engine.address()),
        docker_fleet(d, "cpu", "cpu", &engine.address()),
    );
    let (s1, s2) = (
        d.join("m1").to_string_lossy().into_owned(),
        d.join("m2").to_string_lossy().into_owned(),
    );
    let miner_flags = |f: &str, s: &str| {
        vec![
            "--fleet".to_owned(),
            f.to_owned(),
            "--state-dir".to_owned(),
            s.to_owned(),
            "--allow-private-file-urls".to_owned(),
        ]
    };
    let a1 = miner_flags(&f1, &s1);
    let a2 = miner_flags(&f2, &s2);
    let (_m1, p1, gpu_miner) = serve_ours(
        &wallets,
        "gpu-miner",
        &a1.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (_m2, p2, cpu_miner) = serve_ours(
        &wallets,
        "cpu-miner",
        &a2.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (config, state) = gateway_config(
        d,
        &wallets,
        &[(&gpu_miner, p1, 0.9), (&cpu_miner, p2, 0.1)],
        &format!("images = [\"{image}\"]\nallow_private_urls = true\n"),
    );
    let k = key(&state, "acme", "100");
    let (base, puts) = file_server(vec![("/in/numbers.txt", b"6 7\n".to_vec())]);
    let (_gateway, addr, _) = start_gateway(&state, &config);

    // No image: refused, this gateway sells containers only.
    let (status, answer) = http(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&k),
        Some(&json!({"command": ["true"], "class": "cpu", "timeout_s": 60})),
    );
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("image")),
        "{answer}"
    );
    let order = json!({
        "image": image,
        "command": ["sh", "-c", "mkdir -p out && read a b < in/numbers.txt && echo $((a*b)) > out/product && cat /proc/1/cgroup >/dev/null"],
        "class": "cpu", "timeout_s": 60,
        "inputs": [{"url": format!("{base}/in/numbers.txt"), "path": "in/numbers.txt"}],
        "outputs": [{"path": "out/product", "put_url": format!("{base}/bucket/product")}]
    });
    let (status, job) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&order));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = until(&addr, &k, &id, Duration::from_secs(120), |j| {
        j["state"] != "queued" && j["state"] != "running"
    });
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["miner"], cpu_miner.as_str());
    assert_eq!(done["attempts"][0]["miner"], gpu_miner.as_str(), "{done}");
    assert_eq!(
        puts.lock()
            .unwrap()
            .get("/bucket/product")
            .map(Vec::as_slice),
        Some(&b"42\n"[..])
    );
    // The containers are gone.
    let (ps, _) = engine.leftovers();
    assert!(ps.trim().is_empty(), "containers left: {ps}");
}

/// `validator run` with `[gateway]`: the validator daemon serves the
/// gateway itself, routes a job to a miner daemon, and pays the finished
/// job into its own ledger (an `organic` event), once.
#[test]
fn a_validator_daemon_serves_the_gateway_and_pays_organic_work() {
    use super::daemon::{miner_config, one_miner, start, validator_config};
    let dir = tempfile::tempdir().unwrap();
    let net = one_miner(dir.path());
    let mut miner = start(
        "miner",
        &miner_config(dir.path(), &net.wallets, "miner", &net.snap, net.port, ""),
        &[],
    );
    miner.event("ready");
    let state = dir.path().join("v1-state");
    let config = validator_config(
        dir.path(),
        &net,
        false,
        "",
        "\n[gateway]\nlisten = \"127.0.0.1:0\"\nclasses = [\"cpu\"]\nallow_no_image = true\npoll = \"200ms\"\n",
    );
    let k = key(&state.to_string_lossy(), "acme", "100");
    let validator = start("validator", &config, &[]);
    let ready = validator.event("ready");
    let addr = ready["gateway"]
        .as_str()
        .unwrap_or_else(|| panic!("no gateway in {ready}"))
        .to_owned();
    let (status, health) = http(&addr, "GET", "/health", None, None);
    assert_eq!((status, &health["gateway_id"]), (200, &ready["gateway_id"]));
    let order =
        json!({"command": ["sh", "-c", "sleep 1; echo organic"], "class": "cpu", "timeout_s": 60});
    let (status, job) = http(&addr, "POST", "/v1/jobs", Some(&k), Some(&order));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let paid = validator.event_where("organic", Duration::from_secs(60), |e| {
        e["jobs"]
            .as_array()
            .is_some_and(|j| j.iter().any(|x| x == id.as_str()))
    });
    assert_eq!(
        (paid["paid"].as_u64(), paid["penalised"].as_u64()),
        (Some(1), Some(0)),
        "{paid}"
    );
    let (_, done) = http(&addr, "GET", &format!("/v1/jobs/{id}"), Some(&k), None);
    assert_eq!(
        (done["state"].as_str(), done["accounted"].as_bool()),
        (Some("finished"), Some(true)),
        "{done}"
    );
    drop(validator);
    miner.kill9();
}
