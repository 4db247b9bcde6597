//! `akihabara axon` / `akihabara dendrite` against the official Python
//! `bittensor` package (10.5.0 for the legacy protocol, 11.3.0 for btauth/1),
//! all over loopback. Peers are started here and killed by their own PID when
//! the test ends, pass or fail.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use akihabara_core::protocol::btauth;
use akihabara_core::wallet::Keypair;
use serde_json::Value;

use super::{assert_bad_input, bin, last_json, peers, run, stderr, stdout};

/// A child process killed (by its PID) when dropped.
pub(super) struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Sends SIGTERM and waits (at most 30 s) for the exit status.
    pub(super) fn terminate(&mut self) -> std::process::ExitStatus {
        let o = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(o.success());
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash.
    pub(super) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(super) fn spawn(mut cmd: Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn peer");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines: rx }
    }

    /// The next JSON line with `"event": event` and `pred` true, with the
    /// whole search bounded by `within` (other lines keep arriving, so a
    /// per-line timeout would not end it).
    pub(super) fn event_where(
        &self,
        event: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!("no such {event:?} line from the peer within {within:?}: {e}")
            });
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == event
                && pred(&v)
            {
                return v;
            }
        }
    }

    /// The next JSON line with `"event": event`, within 60 s.
    pub(super) fn event(&self, event: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no {event:?} line from the peer: {e}"));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == event
            {
                return v;
            }
        }
    }
}

pub(super) struct Wallets {
    dir: tempfile::TempDir,
}

impl Wallets {
    pub(super) fn new(names: &[&str]) -> Wallets {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            let o = run(&[
                "wallet",
                "create",
                "--wallet.path",
                dir.path().to_str().unwrap(),
                "--wallet.name",
                name,
                "--no-password",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        Wallets { dir }
    }
    pub(super) fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    pub(super) fn hotkey(&self, name: &str) -> String {
        let o = run(&[
            "wallet",
            "show",
            "--wallet.path",
            self.path(),
            "--wallet.name",
            name,
            "--json",
        ]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["hotkeys"][0]["ss58"].as_str().unwrap().to_owned()
    }
}

pub(super) fn serve_ours(w: &Wallets, name: &str, extra: &[&str]) -> (Peer, u16, String) {
    let mut cmd = bin();
    cmd.args([
        "axon",
        "serve",
        "--wallet.path",
        w.path(),
        "--wallet.name",
        name,
        "--port",
        "0",
    ])
    .args(extra)
    .env_remove("AKIHABARA_WALLET_PASSWORD");
    let peer = Peer::spawn(cmd);
    let ready = peer.event("ready");
    let port = ready["port"].as_u64().unwrap() as u16;
    let hotkey = ready["hotkey"].as_str().unwrap().to_owned();
    (peer, port, hotkey)
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/bittensor_peer.py")
}

fn call(
    w: &Wallets,
    name: &str,
    port: u16,
    axon_hotkey: &str,
    extra: &[&str],
) -> (Option<i32>, Value) {
    let port = port.to_string();
    let mut args = vec![
        "dendrite",
        "call",
        "--wallet.path",
        w.path(),
        "--wallet.name",
        name,
        "--port",
        &port,
        "--axon-hotkey",
        axon_hotkey,
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let v =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{args:?}: {}", stderr(&o)));
    (o.status.code(), v)
}

#[test]
fn our_dendrite_and_axon_talk() {
    let w = Wallets::new(&["m", "v"]);
    let (_axon, port, hk) = serve_ours(&w, "m", &[]);
    let (code, v) = call(&w, "v", port, &hk, &["--message", "hi", "--count", "41"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["synapse"]["echo"], "hi");
    // Another hotkey as --axon-hotkey: the axon's 401 is explained, not
    // passed on raw.
    let other = w.hotkey("v");
    let o = run(&[
        "dendrite",
        "call",
        "--wallet.path",
        w.path(),
        "--wallet.name",
        "v",
        "--port",
        &port.to_string(),
        "--axon-hotkey",
        &other,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("401 Not Verified with error: Signature mismatch"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        stderr(&o),
        format!(
            "error: the axon at 127.0.0.1:{port} refused our signature (401): the signed message \
             names the axon's hotkey as {other}; is --axon-hotkey the hotkey this axon serves?\n"
        )
    );
    assert_eq!(v["synapse"]["count_plus_one"], 42);
    assert_eq!(v["synapse"]["served_by"], hk.as_str());
    let (code, v) = call(
        &w,
        "v",
        port,
        &hk,
        &["--auth", "btauth", "--synapse", "SpecsQuery", "--no-gpus"],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["synapse"]["gpus"], serde_json::json!([]));
    // The wrong axon hotkey: printed, and exit 1.
    let (code, v) = call(&w, "v", port, &w.hotkey("v"), &[]);
    assert_eq!((code, v["status"].as_u64()), (Some(1), Some(401)));
}

#[test]
fn axon_and_dendrite_flags_are_checked() {
    let w = Wallets::new(&["m"]);
    let base = [
        "axon",
        "serve",
        "--wallet.path",
        w.path(),
        "--wallet.name",
        "m",
        "--port",
        "0",
    ];
    let with = |extra: &[&'static str]| {
        base.iter()
            .copied()
            .chain(extra.iter().copied())
            .collect::<Vec<&str>>()
    };
    assert_bad_input(&with(&["--rate-limit", "0"]), "--rate-limit");
    // Issue 23, finding 9: this panicked (exit 101) building the bucket.
    assert_bad_input(
        &with(&["--rate-limit", "1e-300"]),
        "--rate-limit must be a number of requests per second from one a day (1.16e-5) to 1e6, \
         not 1e-300",
    );
    assert_bad_input(&with(&["--duration", "-1"]), "--duration");
    assert_bad_input(&with(&["--max-concurrent", "0"]), "--max-concurrent");
    assert_bad_input(&with(&["--threads", "0"]), "--threads");
    assert_bad_input(&with(&["--blacklist", "5notanaddress"]), "blacklist");
    assert_bad_input(
        &with(&[
            "--deny-coldkey",
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        ]),
        "metagraph",
    );
    assert_bad_input(
        &[
            "axon",
            "serve",
            "--wallet.path",
            w.path(),
            "--wallet.name",
            "nobody",
            "--port",
            "0",
        ],
        "nobody",
    );
    let hk = w.hotkey("m");
    let call = [
        "dendrite",
        "call",
        "--wallet.path",
        w.path(),
        "--wallet.name",
        "m",
        "--port",
        "1",
        "--axon-hotkey",
    ];
    assert_bad_input(
        &[&call[..], &[hk.as_str(), "--timeout", "nan"]].concat(),
        "--timeout",
    );
    assert_bad_input(&[&call[..], &["bogus"]].concat(), "axon-hotkey");
    // Nothing listens: 503 like the Python dendrite, exit 1.
    let o = run(&[&call[..], &[hk.as_str(), "--json"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()["status"],
        503
    );
    // In text, nothing was answered, so nothing goes to standard output,
    // and the error says what to check.
    let o = run(&[&call[..], &[hk.as_str()]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "error: no axon at 127.0.0.1:1 (connection refused): is the miner running, \
         and are --ip and --port its axon's?\n"
    );
}

#[test]
fn official_dendrite_calls_our_axon() {
    let Some(python) = peers::python("bittensor-10.5.0") else {
        return;
    };
    let w = Wallets::new(&["m", "v", "b"]);
    let blocked = w.hotkey("b");
    let (axon, port, hk) = serve_ours(&w, "m", &["--blacklist", &blocked]);
    let o = Command::new(&python)
        .arg(peer_script())
        .args([
            "dendrite-suite",
            "--wallet-path",
            w.path(),
            "--wallet-name",
            "v",
            "--blacklisted-wallet",
            "b",
        ])
        .args(["--port", &port.to_string(), "--axon-hotkey", &hk])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = last_json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(r["ping"]["status"], 200, "{r}");
    assert_eq!(r["ping"]["message"], "Success");
    assert_eq!(r["ping"]["body"]["echo"], "hi");
    assert_eq!(r["ping"]["body"]["count_plus_one"], 42);
    assert_eq!(r["ping"]["body"]["served_by"], hk.as_str());
    assert_eq!(r["specs"]["status"], 200);
    assert!(r["specs"]["body"]["cpu_count"].as_u64().unwrap() >= 1);
    assert!(r["specs"]["body"]["gpus"].is_array());
    assert_eq!(r["specs_no_gpus"]["body"]["gpus"], serde_json::json!([]));
    assert_eq!(r["wrong_axon_hotkey"]["status"], 401);
    assert!(
        r["wrong_axon_hotkey"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Not Verified with error: Signature mismatch")
    );
    assert_eq!(r["replay"][0]["status"], 200);
    assert_eq!(r["replay"][1]["status"], 401);
    assert_eq!(
        r["replay"][1]["body"]["message"],
        "Not Verified with error: Nonce was already used"
    );
    // 50 concurrent calls from one official Dendrite (one uuid) all pass:
    // the reorder window absorbs calls that overtake each other.
    assert_eq!(r["concurrent_statuses"], serde_json::json!([200]));
    assert_eq!(r["blacklisted"]["status"], 403);
    assert_eq!(
        r["blacklisted"]["message"],
        format!("Forbidden. Key is blacklisted: hotkey {blocked} is on the deny list.")
    );
    drop(axon);
}

#[test]
fn our_dendrite_calls_the_official_axon() {
    let Some(python) = peers::python("bittensor-10.5.0") else {
        return;
    };
    let w = Wallets::new(&["m", "v"]);
    let port = super::free_port();
    let mut cmd = Command::new(&python);
    cmd.arg(peer_script()).args([
        "axon",
        "--wallet-path",
        w.path(),
        "--wallet-name",
        "m",
        "--port",
        &port.to_string(),
    ]);
    let axon = Peer::spawn(cmd);
    let hk = axon.event("ready")["hotkey"].as_str().unwrap().to_owned();
    let (code, v) = call(
        &w,
        "v",
        port,
        &hk,
        &["--message", "from rust", "--count", "-5"],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["synapse"]["echo"], "from rust");
    assert_eq!(v["synapse"]["count_plus_one"], -4);
    assert_eq!(v["synapse"]["served_by"], hk.as_str());
    let (code, v) = call(&w, "v", port, &hk, &["--synapse", "SpecsQuery"]);
    assert_eq!(code, Some(0), "{v}");
    assert!(v["synapse"]["cpu_count"].as_u64().unwrap() >= 1);
    // The Python axon refuses a call signed for another hotkey.
    let (code, v) = call(&w, "v", port, &w.hotkey("v"), &[]);
    assert_eq!((code, v["status"].as_u64()), (Some(1), Some(401)), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Not Verified with error"),
        "{v}"
    );
    drop(axon);
}

#[test]
fn btauth_vectors_match_bittensor_11() {
    let Some(python) = peers::python("bittensor-11.3.0") else {
        return;
    };
    let alice = Keypair::from_uri("//Alice").unwrap();
    let bob = Keypair::from_uri("//Bob").unwrap();
    let body = br#"{"message":"hi","count":7}"#;
    let nonce = 1_700_000_000_123_456_789u64;
    // Theirs → ours: same payload bytes, and our verifier accepts their headers.
    for (path, receiver) in [("/Ping?x=1", Some("//Bob")), ("/", None)] {
        let mut args = vec![
            "btauth-sign".to_owned(),
            "--uri".into(),
            "//Alice".into(),
            "--method".into(),
            "post".into(),
            "--path".into(),
            path.into(),
            "--body-hex".into(),
            hex::encode(body),
            "--nonce".into(),
            nonce.to_string(),
        ];
        if let Some(r) = receiver {
            args.extend(["--receiver-uri".to_owned(), r.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = last_json(&peers::run_python(&python, "bittensor_peer.py", &args));
        let receiver_ss58 = receiver.map(|_| bob.account().to_ss58());
        let ours = btauth::payload(
            "POST",
            path,
            body,
            nonce,
            &alice.account().to_ss58(),
            receiver_ss58.as_deref(),
        );
        assert_eq!(out["payload_hex"], hex::encode(&ours), "{path}");
        let headers: Vec<(String, String)> = out["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let parsed =
            btauth::parse(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()))).unwrap();
        let opts = btauth::VerifyOptions {
            require_receiver: receiver.is_some(),
            ..Default::default()
        };
        btauth::verify(
            &parsed,
            "POST",
            path,
            body,
            &bob.account(),
            &opts,
            nonce + 1_000_000_000,
        )
        .unwrap();
    }
    // Ours → theirs: accepted, and each tampering fails with their error class.
    let signed = btauth::sign(&alice, "POST", "/Ping", body, Some(&bob.account()), nonce);
    let headers: serde_json::Map<String, Value> = signed
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
        .collect();
    let case = |body: &[u8], path: &str, me: &str, now: u64| {
        serde_json::json!({"headers": headers, "body_hex": hex::encode(body), "method": "POST", "path": path, "self_uri": me, "now_ns": now}).to_string()
    };
    let cases = [
        case(body, "/Ping", "//Bob", nonce + 1),
        case(b"{}", "/Ping", "//Bob", nonce + 1),
        case(body, "/Ping", "//Charlie", nonce + 1),
        case(body, "/Ping", "//Bob", nonce + 11_000_000_000),
        case(body, "/Other", "//Bob", nonce + 1),
    ]
    .join("\n");
    let mut child = Command::new(&python)
        .arg(peer_script())
        .arg("btauth-verify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let results: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdicts: Vec<String> = results
        .iter()
        .map(|r| {
            if r["ok"] == true {
                "ok".to_owned()
            } else {
                r["error"].as_str().unwrap().to_owned()
            }
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            "ok",
            "BadSignature",
            "WrongReceiver",
            "StaleRequest",
            "BadSignature"
        ]
    );
    assert_eq!(results[0]["hotkey"], alice.account().to_ss58());
}

#[test]
fn bittensor_11_client_calls_our_axon_with_btauth() {
    let Some(python) = peers::python("bittensor-11.3.0") else {
        return;
    };
    let w = Wallets::new(&["m"]);
    let (axon, port, hk) = serve_ours(&w, "m", &[]);
    let out = last_json(&peers::run_python(
        &python,
        "bittensor_peer.py",
        &[
            "btauth-call",
            "--uri",
            "//Alice",
            "--port",
            &port.to_string(),
            "--axon-hotkey",
            &hk,
        ],
    ));
    assert_eq!(out["ok"]["status"], 200, "{out}");
    assert_eq!(out["ok"]["body"]["echo"], "v11");
    assert_eq!(out["ok"]["body"]["count_plus_one"], 2);
    assert_eq!(out["wrong_receiver"]["status"], 401);
    assert_eq!(
        out["wrong_receiver"]["body"]["message"],
        "Not Verified with error: request was signed for a different receiving hotkey"
    );
    drop(axon);
}
