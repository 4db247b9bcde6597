//! The chain commands against a real subtensor runtime: `../shared/chain/localnet.sh`
//! (Chopsticks running the node-subtensor WASM) on a free loopback port, set up by
//! `setup_subnet.py`, read back with substrate-interface (not our code) and
//! compared with what the Bittensor SDK would send.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{peers, run, stderr, stdout};

fn shared_chain() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/chain")
}

/// The local chain; stopped (by the PID `localnet.sh` recorded) when dropped,
/// also when the test fails.
pub(super) struct LocalChain {
    port: u16,
    work: PathBuf,
}

impl LocalChain {
    pub(super) fn start() -> Option<LocalChain> {
        let script = shared_chain().join("localnet.sh");
        if !script.exists() {
            return peers::missing(&format!("{} not found", script.display()));
        }
        for tool in ["node", "npm", "curl"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return peers::missing(&format!(
                    "{tool} is not installed (the local chain needs it)"
                ));
            }
        }
        let port = super::free_port();
        // The npm install (~25 s) is kept in one directory between runs; each
        // chain gets its own work directory (pid file, spec, log) beside it,
        // sharing the install, so concurrent runs never touch each other's chain.
        let base = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/akihabara-chain");
        if !base.join("node_modules/.bin/chopsticks").exists() {
            let o = Command::new("bash")
                .arg(&script)
                .arg("install")
                .env("CHAIN_WORK_DIR", &base)
                .output()
                .expect("run localnet.sh install");
            if !o.status.success() {
                return peers::missing(&format!(
                    "could not install Chopsticks: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
        }
        let work = base.join(format!("run-{port}"));
        std::fs::create_dir_all(&work).expect("work dir");
        let link = work.join("node_modules");
        if !link.exists() {
            std::os::unix::fs::symlink(base.join("node_modules"), &link).expect("link the install");
        }
        let chain = LocalChain { port, work };
        let o = chain.script("start");
        if !o.status.success() {
            return peers::missing(&format!(
                "the local chain did not start: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Some(chain)
    }

    fn script(&self, action: &str) -> std::process::Output {
        Command::new("bash")
            .arg(shared_chain().join("localnet.sh"))
            .arg(action)
            .env("CHAIN_PORT", self.port.to_string())
            .env("CHAIN_WORK_DIR", &self.work)
            .env("CHAIN_LIFETIME_S", "1200")
            .output()
            .expect("run localnet.sh")
    }

    pub(super) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        let o = self.script("stop");
        eprintln!("local chain: {}", String::from_utf8_lossy(&o.stdout).trim());
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Runs `setup_subnet.py`: netuid 2, validators uid 0-1, miners uid 2-4.
/// Returns what it created.
pub(super) fn setup_subnet(si: &Path, url: &str, dir: &Path) -> Value {
    let out = dir.join("setup.json");
    let setup = Command::new(si)
        .arg(shared_chain().join("setup_subnet.py"))
        .args(["--url", url, "--json-out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "setup_subnet.py: {}",
        String::from_utf8_lossy(&setup.stdout)
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Runs `chain_peer.py` (substrate-interface) and parses its JSON.
pub(super) fn peer(py: &Path, url: &str, args: &[&str]) -> Value {
    let mut all = vec![url];
    all.extend_from_slice(args);
    let out = peers::run_python(py, "chain_peer.py", &all);
    super::last_json(&out)
}

/// The chain refused: exit 1 and one stderr line mentioning `needle`.
/// (Bad input, exit 2, goes through `assert_bad_input`.)
fn refused(args: &[&str], needle: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should mention {needle:?}"
    );
}

#[test]
fn chain_commands_against_a_local_subtensor() {
    let Some(si) = peers::python("substrate-interface-1.8.1") else {
        return;
    };
    let Some(bt) = peers::python("bittensor-10.5.0") else {
        return;
    };
    let Some(chain) = LocalChain::start() else {
        return;
    };
    let url = chain.url();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    let want = setup_subnet(&si, &url, dir.path());

    // 1. The metagraph equals what the setup created.
    let o = run(&["metagraph", "--network", &url, "--netuid", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d("mg.json"), &o.stdout).unwrap();
    let mg: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(mg["netuid"], 2);
    let neurons = mg["neurons"].as_array().unwrap();
    let expected = want["neurons"].as_array().unwrap();
    assert_eq!(neurons.len(), 5);
    assert_eq!(neurons.len(), expected.len());
    for (n, w) in neurons.iter().zip(expected) {
        let uid = &w["uid"];
        assert_eq!(n["uid"], *uid);
        for (ours, theirs) in [
            ("hotkey", "hotkey"),
            ("coldkey", "coldkey"),
            ("stake_rao", "alpha_stake"),
            ("validator_permit", "ValidatorPermit"),
            ("axon", "axon"),
            ("last_update", "LastUpdate"),
        ] {
            assert_eq!(n[ours], w[theirs], "uid {uid} {ours}");
        }
        for (ours, theirs, scale) in [
            ("incentive", "Incentive", 65535.0),
            ("dividends", "Dividends", 65535.0),
            ("emission", "Emission", 1e9),
        ] {
            let got = n[ours].as_f64().unwrap();
            let exp = w[theirs].as_f64().unwrap() / scale;
            assert!(
                (got - exp).abs() < 1e-12,
                "uid {uid} {ours}: {got} vs {exp}"
            );
        }
        assert!(
            n["total_stake_rao"].as_u64().is_some(),
            "uid {uid} total stake"
        );
    }
    let miners_with_incentive = neurons
        .iter()
        .filter(|n| n["incentive"].as_f64().unwrap() > 0.0)
        .count();
    assert_eq!(
        miners_with_incentive, 3,
        "the setup's epochs paid the miners"
    );
    // ... and it is the snapshot format every command reads.
    let s = run(&["schedule", "--metagraph", &d("mg.json"), "--json"]);
    assert!(s.status.success(), "{}", stderr(&s));

    // 2. set_weights by //validator1 lands with the SDK's u16 values.
    let w = d("wallets");
    let v1 = [
        "--wallet.path",
        &w,
        "--wallet.name",
        "v1",
        "--wallet.hotkey",
        "default",
    ];
    let o = run(&[
        &["wallet", "regen-hotkey", "--uri", "//validator1"][..],
        &v1,
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let net = ["--network", url.as_str(), "--netuid", "2"];
    let r = super::json(
        &[
            &["weights", "set"][..],
            &net,
            &v1,
            &["--uids", "2,3,4", "--weights", "0.2,0.5,1", "--json"],
        ]
        .concat(),
    );
    assert_eq!(r["call"], "set_weights");
    assert!(r["block"].as_u64().unwrap() > want["head"].as_u64().unwrap());
    assert_eq!(r["extrinsic"].as_str().unwrap().len(), 66);
    let sdk = peers::run_python(&bt, "sdk_emit.py", &["2,3,4", "0.2,0.5,1"]);
    let sdk = super::last_json(&sdk);
    let stored = peer(&si, &url, &["weights", "2", "0"])["weights"].clone();
    let stored_uids: Vec<Value> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].clone())
        .collect();
    let stored_weights: Vec<Value> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].clone())
        .collect();
    assert_eq!(Value::from(stored_uids), sdk["uids"]);
    assert_eq!(Value::from(stored_weights), sdk["weights"]);

    // 3. serve-axon updates Axons, skips when unchanged, and refuses 127.0.0.1 with a reason.
    let r = super::json(
        &[
            &["chain", "serve-axon"][..],
            &net,
            &v1,
            &["--ip", "127.0.0.3", "--port", "9001", "--json"],
        ]
        .concat(),
    );
    assert_eq!(r["call"], "serve_axon");
    let ax = peer(
        &si,
        &url,
        &["axon", "2", neurons[0]["hotkey"].as_str().unwrap()],
    );
    assert_eq!(ax["ip"], 0x7f00_0003u64);
    assert_eq!(ax["port"], 9001);
    assert_eq!(ax["ip_type"], 4);
    let r = super::json(
        &[
            &["chain", "serve-axon"][..],
            &net,
            &v1,
            &["--ip", "127.0.0.3", "--port", "9001", "--json"],
        ]
        .concat(),
    );
    assert_eq!(r["unchanged"], true);
    refused(
        &[
            &["chain", "serve-axon"][..],
            &net,
            &v1,
            &["--ip", "127.0.0.1", "--port", "9001"],
        ]
        .concat(),
        "invalid IP address",
    );

    // 4. Bad input against the live chain: typed, one line, exit 2.
    super::assert_bad_input(
        &["metagraph", "--network", &url, "--netuid", "99"],
        "netuid 99 does not exist",
    );
    for (uids, weights, expected) in [
        ("2,9", "1,1", "beyond the subnet"),
        ("2,2", "1,1", "uid"),
        ("2,3", "1", "2 uids but 1 weights"),
    ] {
        super::assert_bad_input(
            &[
                &["weights", "set"][..],
                &net,
                &v1,
                &["--uids", uids, "--weights", weights],
            ]
            .concat(),
            expected,
        );
    }
    let stranger = [
        "--wallet.path",
        &w,
        "--wallet.name",
        "stranger",
        "--wallet.hotkey",
        "default",
    ];
    let o = run(&[
        &["wallet", "regen-hotkey", "--uri", "//Stranger"][..],
        &stranger,
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));
    super::assert_bad_input(
        &[
            &["weights", "set"][..],
            &net,
            &stranger,
            &["--uids", "2", "--weights", "1"],
        ]
        .concat(),
        "is not registered on netuid 2",
    );

    // 5. Commit/reveal once sudo enables it.
    let on = peer(
        &si,
        &url,
        &[
            "sudo",
            "sudo_set_commit_reveal_weights_enabled",
            "netuid=2",
            "enabled=true",
        ],
    );
    assert_eq!(on["ok"], true, "{on}");
    let h = super::json(&[
        "chain",
        "hyperparams",
        "--network",
        &url,
        "--netuid",
        "2",
        "--json",
    ]);
    assert_eq!(h["commit_reveal_enabled"], true);
    assert_eq!(h["tempo"], 10);
    let reveal = d("reveal.json");
    let c = super::json(
        &[
            &["weights", "commit"][..],
            &net,
            &v1,
            &[
                "--uids",
                "3,4",
                "--weights",
                "1,0.5",
                "--reveal-file",
                &reveal,
                "--json",
            ],
        ]
        .concat(),
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&reveal).unwrap()).unwrap();
    let sdk_hash = peers::run_python(
        &bt,
        "sdk_emit.py",
        &[
            "--hash",
            neurons[0]["hotkey"].as_str().unwrap(),
            "2",
            &saved.to_string(),
        ],
    );
    assert_eq!(
        c["commit"],
        super::last_json(&sdk_hash)["hash"],
        "the SDK's generate_weight_hash"
    );
    let reveal_args = [
        &["weights", "reveal"][..],
        &net,
        &v1,
        &["--reveal-file", &reveal],
    ]
    .concat();
    refused(&reveal_args, "RevealTooEarly");
    peer(&si, &url, &["blocks", "10"]);
    let o = run(&reveal_args);
    assert!(o.status.success(), "{}", stderr(&o));
    let stored = peer(&si, &url, &["weights", "2", "0"]);
    assert_eq!(
        stored["weights"],
        serde_json::json!([[3, 65535], [4, 32768]])
    );
    super::assert_bad_input(&reveal_args, "no pending commitment");

    // 5b. Timelocked commits, revealed by the runtime with a real drand pulse.
    super::timelock::the_chain_reveals_timelocked_weights(&si, &bt, &url, &net, &v1);

    // 6. Burned registration: an unfunded coldkey is refused, a funded one registers.
    let fresh = [
        "--wallet.path",
        &w,
        "--wallet.name",
        "fresh",
        "--wallet.hotkey",
        "default",
    ];
    let o = run(&[&["wallet", "create", "--no-password", "--json"][..], &fresh].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    refused(
        &[&["chain", "register"][..], &net, &fresh].concat(),
        "insufficient balance",
    );
    let created: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let cold = created["coldkeypub"].as_str().unwrap().to_owned();
    assert_eq!(peer(&si, &url, &["fund", &cold, "100"])["ok"], true);
    let r = super::json(&[&["chain", "register"][..], &net, &fresh, &["--json"]].concat());
    assert_eq!(r["call"], "burned_register");
    let mg = super::json(&["metagraph", "--network", &url, "--netuid", "2", "--json"]);
    let hot = created["hotkeys"][0]["ss58"].clone();
    let joined = mg["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hotkey"] == hot);
    assert_eq!(
        joined.map(|n| n["uid"].clone()),
        Some(Value::from(5)),
        "{hot}"
    );

    // 7. A connection the node stops answering on is replaced.
    a_stalled_connection_is_replaced(&chain);

    // 8. Last, as it restarts the chain.
    subscription_and_reconnect(&chain, &si);
}

/// A node that stops in the middle of an answer (here a proxy in front of
/// the chain that, on every connection open so far, passes on half of the
/// node's next bytes, a frame cut short, and then nothing): the call waiting
/// on it times out, and the next call connects afresh instead of waiting on
/// the same socket again.
fn a_stalled_connection_is_replaced(chain: &LocalChain) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use akihabara_core::chain::{ChainClient, ChainError, Network, Subtensor, SubtensorOptions};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = format!("127.0.0.1:{}", chain.port);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap();
        // Connections numbered below this one get nothing more from the node.
        let stall_below = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let (stall, count) = (stall_below.clone(), accepted.clone());
        let proxying = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let node = node.clone();
                let stall = stall.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(&node).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut uw).await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match ur.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if id < stall.load(Ordering::SeqCst) {
                            // Half of it, then silence, the socket kept open.
                            let _ = cw.write_all(&buf[..n / 2]).await;
                            std::future::pending::<()>().await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        let network: Network = format!("ws://{proxy}").parse().unwrap();
        let timeout = Duration::from_secs(10);
        let opts = SubtensorOptions {
            connect_timeout: Duration::from_secs(20),
            timeout,
            ..SubtensorOptions::default()
        };
        let client = Subtensor::connect_with(&network, opts).await.unwrap();
        let before = client.block().await.expect("a read through the proxy");
        stall_below.store(accepted.load(Ordering::SeqCst), Ordering::SeqCst);
        let t = Instant::now();
        let err = client.block().await.expect_err("the node went silent");
        assert!(matches!(err, ChainError::Timeout(_)), "{err}");
        let waited = t.elapsed();
        assert!(
            waited >= timeout && waited < 2 * timeout,
            "the silent read took {waited:?}"
        );
        // Without a new connection this read would wait on the same socket
        // and time out again.
        let after = client
            .block()
            .await
            .expect("the next read on a fresh connection");
        assert!(after.0 >= before.0, "{before} then {after}");
        proxying.abort();
    });
}

/// The library client on the same chain: a block subscription, and a
/// reconnection after the chain goes away and comes back on the same port.
fn subscription_and_reconnect(chain: &LocalChain, si: &Path) {
    use akihabara_core::chain::{ChainClient, Network, Subtensor, SubtensorOptions};
    let url = chain.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let network: Network = url.parse().unwrap();
        let opts = SubtensorOptions {
            connect_timeout: Duration::from_secs(20),
            timeout: Duration::from_secs(20),
            ..SubtensorOptions::default()
        };
        let client = Subtensor::connect_with(&network, opts).await.unwrap();
        let mut blocks = client.subscribe_blocks().await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(20), blocks.next())
            .await
            .expect("a block within 20 s")
            .expect("stream open")
            .expect("ok");
        peer(si, &url, &["blocks", "2"]);
        let mut last = first;
        while last.0 < first.0 + 2 {
            last = tokio::time::timeout(Duration::from_secs(20), blocks.next())
                .await
                .expect("new blocks within 20 s")
                .expect("stream open")
                .expect("ok");
        }
        // The chain stops: a read fails within its bound, as a connection error.
        let o = chain.script("stop");
        assert!(o.status.success());
        let t = Instant::now();
        let err = client.block().await.expect_err("the chain is gone");
        assert!(
            matches!(
                err,
                akihabara_core::chain::ChainError::Connection { .. }
                    | akihabara_core::chain::ChainError::Timeout(_)
            ),
            "{err}"
        );
        assert!(t.elapsed() < Duration::from_secs(45), "{:?}", t.elapsed());
        // It comes back (a fresh chain on the same port): the same client reconnects.
        let o = chain.script("start");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let b = client.block().await.expect("reconnected");
        assert!(b.0 < 1000, "the fresh chain's head: {b}");
    });
}

#[test]
fn a_dead_endpoint_fails_within_the_timeout() {
    let port = super::free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let t = Instant::now();
    let o = run(&[
        "metagraph",
        "--network",
        &url,
        "--netuid",
        "2",
        "--chain-timeout",
        "2",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with(&format!(
            "no node at {url} (connection refused): start one, or use --network finney\n"
        )),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    super::assert_bad_input(
        &["metagraph", "--network", "mainnet", "--netuid", "2"],
        "unknown network",
    );
    super::assert_bad_input(
        &[
            "metagraph",
            "--network",
            "local",
            "--netuid",
            "2",
            "--chain-timeout",
            "0",
        ],
        "--chain-timeout",
    );
}
