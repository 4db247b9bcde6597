//! `miner run`, `validator run` and `config init`, on a simulated chain
//! (a snapshot) so they run anywhere; the local-chain test is in chain.rs.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::axon::{Peer, Wallets};
use super::{assert_bad_input, bin, run, stderr, stdout};

/// GET `path` from 127.0.0.1:`port`: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A subnet snapshot: //validator1 (uid 0) and //validator2 (uid 1) with
/// permits, and the given miners with axons on 127.0.0.1.
pub(super) fn snapshot(dir: &Path, miners: &[(String, u16)]) -> String {
    let mut neurons = vec![
        json!({"uid": 0, "hotkey": validator_hotkey("//validator1"), "stake_rao": 3_000_000_000_000u64, "validator_permit": true}),
        json!({"uid": 1, "hotkey": validator_hotkey("//validator2"), "stake_rao": 1_000_000_000_000u64, "validator_permit": true}),
    ];
    for (i, (hotkey, port)) in miners.iter().enumerate() {
        neurons.push(
            json!({"uid": 2 + i, "hotkey": hotkey, "stake_rao": 0, "validator_permit": false,
                            "axon": format!("127.0.0.1:{port}")}),
        );
    }
    let path = dir.join("subnet.json");
    std::fs::write(
        &path,
        json!({"version": 1, "netuid": 2, "block": 1000, "neurons": neurons}).to_string(),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// A one-miner subnet for the validator daemon tests.
pub(super) struct OneMiner {
    /// The miner's hotkey (`miner`) and //validator1 (`v1`).
    pub(super) wallets: Wallets,
    /// A free port for the miner's axon.
    pub(super) port: u16,
    /// The simulated chain ([`snapshot`]) that lists the miner at `port`.
    pub(super) snap: String,
}

pub(super) fn one_miner(dir: &Path) -> OneMiner {
    let wallets = Wallets::new(&["miner"]);
    let o = run(&[
        "wallet",
        "regen-hotkey",
        "--uri",
        "//validator1",
        "--wallet.path",
        wallets.path(),
        "--wallet.name",
        "v1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let port = super::free_port();
    let snap = snapshot(dir, &[(wallets.hotkey("miner"), port)]);
    OneMiner {
        wallets,
        port,
        snap,
    }
}

/// Writes `dir/v1.toml`, //validator1's config on `net`'s simulated chain
/// (200 ms blocks, tempo 20, rounds of 2 blocks, proofs of n = 128), its
/// state in `dir/v1-state`, and returns its path. `validator` is added to
/// the `[validator]` section; `after_state` follows the `[state]` section's
/// `dir` line: more `[state]` keys first, then whole sections.
pub(super) fn validator_config(
    dir: &Path,
    net: &OneMiner,
    commit_reveal: bool,
    validator: &str,
    after_state: &str,
) -> String {
    let path = dir.join("v1.toml");
    std::fs::write(
        &path,
        format!(
            "[wallet]\npath = \"{}\"\nname = \"v1\"\n\n\
             [chain]\nnetwork = \"snapshot:{}\"\nnetuid = 2\nblock_time = \"200ms\"\n\
             [chain.hyperparameters]\ntempo = 20\nweights_rate_limit = 5\ncommit_reveal_enabled = {commit_reveal}\n\
             weights_version = 0\nmax_weight_limit = 65535\n\n\
             [validator]\nround_blocks = 2\npoll = \"200ms\"\n{validator}\n\
             [pow]\nn = 128\ncount = 1\nsamples = 4\n\n\
             [state]\ndir = \"{}\"\n{after_state}",
            net.wallets.path(),
            net.snap,
            dir.join("v1-state").display(),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

pub(super) fn validator_hotkey(uri: &str) -> String {
    akihabara_core::wallet::Keypair::from_uri(uri)
        .unwrap()
        .account()
        .to_ss58()
}

/// The miner config used below: a simulated chain (200 ms blocks, tempo
/// 100, so a 200-block window of 40 s), a local executor, metrics on a free port.
pub(super) fn miner_config(
    dir: &Path,
    wallets: &Wallets,
    name: &str,
    snapshot: &str,
    port: u16,
    extra: &str,
) -> String {
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        "[health]\ninterval = \"1s\"\n\n[[executors]]\nid = \"here\"\nbackend = \"local\"\nclass = \"cpu\"\nunsafe_share_miner_user = true\n",
    )
    .unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[wallet]\npath = \"{}\"\nname = \"{name}\"\nhotkey = \"default\"\n\n\
             [chain]\nnetwork = \"snapshot:{snapshot}\"\nnetuid = 2\nblock_time = \"200ms\"\n\
             [chain.hyperparameters]\ntempo = 100\nweights_rate_limit = 10\ncommit_reveal_enabled = false\n\
             weights_version = 0\nmax_weight_limit = 65535\n\n\
             [axon]\nip = \"127.0.0.1\"\nport = {port}\n\n\
             [schedule]\npoll = \"200ms\"\n\n[pow]\nprover = \"cpu\"\n{extra}\n\
             [executors]\nfleet = \"{}\"\n\n\
             [state]\ndir = \"{}\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            wallets.path(),
            fleet.display(),
            dir.join(format!("{name}-state")).display(),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

pub(super) fn start(role: &str, config: &str, extra: &[&str]) -> Peer {
    let mut cmd = bin();
    cmd.args([role, "run", "--config", config]).args(extra);
    cmd.env_remove("AKIHABARA_WALLET_PASSWORD");
    Peer::spawn(cmd)
}

#[test]
fn config_init_writes_templates_that_run_checks_accept() {
    // `ROLE run --config FILE --set SET` is refused as bad input naming `needle`.
    let refused = |role: &str, file: &str, set: &str, needle: &str| {
        assert_bad_input(&[role, "run", "--config", file, "--set", set], needle);
    };
    let dir = tempfile::tempdir().unwrap();
    for role in ["miner", "validator"] {
        let o = run(&["config", "init", "--role", role]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("AKIHABARA_<SECTION>__<KEY>"));
        let out = dir.path().join(format!("{role}.toml"));
        let out = out.to_str().unwrap();
        let init = ["config", "init", "--role", role, "--out", out];
        let o = run(&init);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_bad_input(&init, "not overwriting");
        // The template is valid as it stands: the run gets past the config
        // and fails on the (absent) wallet, a bad input naming it.
        let wallets = dir.path().join("no-wallets");
        refused(
            role,
            out,
            &format!("wallet.path={}", wallets.display()),
            "no-wallets",
        );
        // Unknown keys are errors, not ignored; so are bad values.
        refused(role, out, "chain.netuidd=3", "unknown field `netuidd`");
        refused(role, out, "chain.timeout=0s", "chain.timeout");
    }
    let m = dir.path().join("miner.toml");
    let m = m.to_str().unwrap();
    refused("miner", m, "schedule.strategy=greedy", "schedule.strategy");
    refused("miner", m, "pow.throttle=2", "pow.throttle");
    assert_bad_input(
        &["miner", "run", "--config", "/nonexistent.toml"],
        "/nonexistent.toml",
    );
    let v = dir.path().join("validator.toml");
    let v = v.to_str().unwrap();
    refused("validator", v, "scoring.ema_alpha=0", "scoring.ema_alpha");
    refused("validator", v, "pow.n=1000000", "pow.n");
    refused("validator", v, "state.store=ftp://x", "state.store");
}

#[test]
fn a_miner_daemon_resumes_its_schedule_and_receipts_after_kill_9() {
    use akihabara_core::dendrite::{AxonTarget, Dendrite};
    use akihabara_core::market::client::query_job;
    use akihabara_core::market::jobs::ReceiptStore;
    use akihabara_core::schedule::ScheduleQuery;
    use akihabara_core::wallet::Keypair;

    let dir = tempfile::tempdir().unwrap();
    let wallets = Wallets::new(&["miner"]);
    let port = super::free_port();
    let snap = snapshot(dir.path(), &[(wallets.hotkey("miner"), port)]);
    let config = miner_config(dir.path(), &wallets, "miner", &snap, port, "");
    let receipts_file = dir.path().join("miner-state/jobs/receipts.jsonl");

    let mut miner = start("miner", &config, &[]);
    let ready = miner.event("ready");
    assert_eq!(ready["uid"], 2, "{ready}");
    let metrics_port = ready["metrics_port"].as_u64().unwrap() as u16;
    let first = miner.event("schedule");
    assert_eq!(first["resumed"], false, "{first}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let validator = Keypair::from_uri("//validator1").unwrap();
    let d = Dendrite::new(validator.clone()).unwrap();
    let target = AxonTarget::new(
        [127, 0, 0, 1].into(),
        port,
        akihabara_core::AccountId::from_ss58(&wallets.hotkey("miner")).unwrap(),
    );
    let t = Duration::from_secs(20);
    let before = rt.block_on(async {
        let r = d.call(&target, ScheduleQuery::default(), t).await;
        assert_eq!(r.status, 200, "{}", r.message);
        r.synapse.unwrap()
    });
    assert_eq!(before.window_start, first["window_start"].as_u64());
    assert!(
        before.slots.as_ref().is_some_and(|s| !s.is_empty()),
        "{before:?}"
    );
    assert!(before.serving_uid.is_some(), "{before:?}");

    // A validator without a permit is refused by the miner's axon.
    let stranger = Dendrite::new(Keypair::from_uri("//stranger").unwrap()).unwrap();
    let r = rt.block_on(stranger.call(&target, ScheduleQuery::default(), t));
    assert_eq!(r.status, 403, "{}", r.message);

    // A job runs to the end and both sides hold its receipts.
    let validator_receipts = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));
    let finished = super::executor::finish_a_job(&rt, &d, &target, &validator, &validator_receipts);
    let receipts_before = std::fs::read_to_string(&receipts_file).unwrap();
    assert_eq!(receipts_before.lines().count(), 2, "accepted + finished");

    // /health and /metrics.
    let (code, body) = http_get(metrics_port, "/health");
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (health["status"].as_str(), health["uid"].as_u64()),
        (Some("ok"), Some(2)),
        "{health}"
    );
    let (code, text) = http_get(metrics_port, "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "akihabara_schedule_changes_total 1",
        "akihabara_axon_requests_total{status=\"200\"}",
        "akihabara_axon_requests_total{status=\"403\"} 1",
        "akihabara_chain_errors_total 0",
        "akihabara_block ",
    ] {
        // Whole lines, from their start: `akihabara_akihabara_…` (a double
        // prefix) must not pass for `akihabara_…`.
        assert!(
            text.lines().any(|l| l.starts_with(needle)),
            "no line starts with {needle} in:\n{text}"
        );
    }
    assert_eq!(http_get(metrics_port, "/nothing").0, 404);

    // kill -9 mid-window, then start again on the same state.
    miner.kill9();
    let mut miner = start("miner", &config, &["--log-format", "json"]);
    miner.event("ready");
    let again = miner.event("schedule");
    assert_eq!(
        again["resumed"], true,
        "the stored schedule is taken up: {again}"
    );
    assert_eq!(again["slots"], first["slots"], "the same schedule");
    // A fresh dendrite: this test's runtime sleeps between calls, so its
    // pooled connection to the killed process was never seen to close.
    let d = Dendrite::new(validator.clone()).unwrap();
    let after = rt
        .block_on(d.call(&target, ScheduleQuery::default(), t))
        .synapse
        .unwrap();
    assert_eq!(after.slots, before.slots);
    assert_eq!(after.window_start, before.window_start);
    // No receipt lost: the miner's file holds every line it held, and the
    // finished job still answers as finished.
    let receipts_after = std::fs::read_to_string(&receipts_file).unwrap();
    assert!(
        receipts_after.starts_with(&receipts_before),
        "receipts changed:\n{receipts_before}\nvs\n{receipts_after}"
    );
    let r = rt
        .block_on(query_job(
            &d,
            &target,
            "before-crash",
            &validator_receipts,
            t,
        ))
        .unwrap();
    assert_eq!(r, finished);

    // SIGTERM: a graceful stop, exit 0.
    let status = miner.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_miner_daemon_applies_its_caller_policy_and_job_policy() {
    use akihabara_core::dendrite::{AxonTarget, Dendrite};
    use akihabara_core::market::client::submit_job;
    use akihabara_core::market::jobs::{DeclineReason, JobRequest, ReceiptStore};
    use akihabara_core::market::wire::JobReply;
    use akihabara_core::protocol::Ping;
    use akihabara_core::wallet::Keypair;
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let wallets = Wallets::new(&["miner"]);
    let port = super::free_port();
    let snap = snapshot(dir.path(), &[(wallets.hotkey("miner"), port)]);
    // Declines jobs whose command mentions `mine`.
    let script = dir.path().join("accept-job");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$(cat)\" in *mine*) echo 'no mining jobs' >&2; exit 1;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stranger = Keypair::from_uri("//stranger").unwrap();
    let extra = format!(
        "[policy]\ndeny_hotkeys = [\"{}\"]\nmin_stake = 2000\n\n\
         [jobs]\nmax_duration = {{ cpu = \"1m\" }}\nscript = \"{}\"\nscript_timeout = \"2s\"\n",
        stranger.account(),
        script.display()
    );
    let config = miner_config(dir.path(), &wallets, "miner", &snap, port, &extra);
    let mut miner = start("miner", &config, &[]);
    miner.event("ready");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = AxonTarget::new(
        [127, 0, 0, 1].into(),
        port,
        akihabara_core::AccountId::from_ss58(&wallets.hotkey("miner")).unwrap(),
    );
    let t = Duration::from_secs(20);
    let ping = |who: &Keypair| {
        let d = Dendrite::new(who.clone()).unwrap();
        let r = rt.block_on(d.call(&target, Ping::new("hi", 0), t));
        (r.status, r.message)
    };
    let forbidden = |why: String| (403, format!("Forbidden. Key is blacklisted: {why}."));
    let v1 = Keypair::from_uri("//validator1").unwrap();
    let v2 = Keypair::from_uri("//validator2").unwrap();
    assert_eq!(ping(&v1), (200, "Success".to_owned()));
    assert_eq!(
        ping(&v2),
        forbidden(format!(
            "hotkey {} has stake 1000, below the minimum 2000",
            v2.account()
        ))
    );
    assert_eq!(
        ping(&stranger),
        forbidden(format!("hotkey {} is on the deny list", stranger.account()))
    );

    // Jobs: the class limit, then the script.
    let d = Dendrite::new(v1.clone()).unwrap();
    let receipts = ReceiptStore::new(dir.path().join("validator-receipts.jsonl"));
    let job = |id: &str, timeout_s: u64, command: &[&str]| {
        JobRequest {
            job_id: id.into(),
            validator: v1.account(),
            hardware_class: "cpu".into(),
            timeout_s,
            command: command.iter().map(|c| (*c).to_owned()).collect(),
            requirements: Default::default(),
            output_dir: None,
            image: None,
            env: Default::default(),
            inputs: vec![],
            outputs: vec![],
            issued_at_ms: 1,
            signature: String::new(),
        }
        .sign(&v1)
    };
    let submit = |r: JobRequest| {
        rt.block_on(submit_job(&d, &target, r, &receipts, t))
            .unwrap()
    };
    assert_eq!(
        submit(job("long", 61, &["true"])),
        JobReply::Declined {
            reason: DeclineReason::Unprofitable,
            detail: "a cpu job may run at most 60 s; this one asks for 61 s".into(),
        }
    );
    assert_eq!(
        submit(job("mining", 60, &["mine"])),
        JobReply::Declined {
            reason: DeclineReason::Unprofitable,
            detail: "no mining jobs".into(),
        }
    );
    let r = submit(job("fine", 60, &["true"]));
    assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
    let status = miner.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_miner_refuses_bad_job_policy_settings() {
    let dir = tempfile::tempdir().unwrap();
    let wallets = Wallets::new(&["miner"]);
    let snap = snapshot(dir.path(), &[(wallets.hotkey("miner"), 1)]);
    let config = miner_config(dir.path(), &wallets, "miner", &snap, 0, "");
    let missing = dir.path().join("missing");
    for (set, message) in [
        (
            format!("jobs.script={}", missing.display()),
            format!(
                "config key `jobs.script`: {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            "jobs.script_timeout=2s".to_owned(),
            "config key `jobs.script_timeout`: is set, but jobs.script is not".to_owned(),
        ),
        (
            "jobs.max_duration.cpu=0s".to_owned(),
            "config key `jobs.max_duration.cpu`: must be at least 1s".to_owned(),
        ),
    ] {
        let o = run(&["miner", "run", "--config", &config, "--set", &set]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim(), format!("error: {message}"), "{set}");
    }
}

#[test]
fn a_miner_refuses_a_port_in_use_and_an_unregistered_hotkey() {
    let dir = tempfile::tempdir().unwrap();
    let wallets = Wallets::new(&["miner", "outsider"]);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let snap = snapshot(dir.path(), &[(wallets.hotkey("miner"), port)]);
    let config = miner_config(dir.path(), &wallets, "miner", &snap, port, "");
    let o = run(&["miner", "run", "--config", &config]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
    let config = miner_config(dir.path(), &wallets, "outsider", &snap, 0, "");
    let o = run(&["miner", "run", "--config", &config, "--log-format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("is not registered on netuid 2"), "{err}");
    // Logs before the failure are JSON lines: the fleet's opt-in to run
    // jobs as the miner's own user is warned about, then the simulated chain
    // is named.
    let logs: Vec<Value> = err
        .lines()
        .take_while(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<(&str, &str)> = logs
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap_or_default(),
                l["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        messages.first().copied(),
        Some((
            "WARN",
            "executor \"here\" runs validators' jobs as the miner's own user \
             (unsafe_share_miner_user = true): a job can read this miner's wallet"
        )),
        "{logs:?}"
    );
    assert!(
        messages
            .iter()
            .any(|(level, m)| *level == "WARN" && m.contains("the chain is a simulation")),
        "{logs:?}"
    );
}

/// A real `redis-server` on a free loopback port, stopped by its PID on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis() -> Option<Redis> {
    let port = super::free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn();
    let server = match child {
        Ok(child) => Redis {
            child,
            port,
            _dir: dir,
        },
        Err(e) => return super::peers::missing(&format!("redis-server cannot start: {e}")),
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

#[test]
fn a_validator_daemon_commits_reveals_and_continues_after_a_restart() {
    validator_restart(None);
}

#[test]
fn a_validator_daemon_keeps_its_state_in_a_real_redis() {
    let Some(server) = redis() else { return };
    validator_restart(Some(format!("redis://127.0.0.1:{}/0", server.port)));
    // The state is there, under the documented keys, as JSON.
    let o = std::process::Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "--raw", "GET"])
        .arg(format!(
            "akihabara:2:{}:weights",
            validator_hotkey("//validator1")
        ))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["uids"], json!([2]), "{v}");
}

fn validator_restart(store: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let net = one_miner(dir.path());
    let wallets = &net.wallets;
    let mut miner = start(
        "miner",
        &miner_config(dir.path(), wallets, "miner", &net.snap, net.port, ""),
        &[],
    );
    miner.event("ready");
    let state = dir.path().join("v1-state");
    let config = validator_config(
        dir.path(),
        &net,
        true,
        "",
        &format!(
            "{}\n[scoring]\nreference_ops = {{ cpu = 1e13 }}\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            store
                .as_ref()
                .map_or(String::new(), |s| format!("store = \"{s}\"\n")),
        ),
    );
    let config = config.as_str();
    let mut validator = start("validator", config, &[]);
    let ready = validator.event("ready");
    assert_eq!(
        (ready["uid"].as_u64(), ready["resumed"].as_bool()),
        (Some(0), Some(false)),
        "{ready}"
    );
    if let Some(s) = &store {
        assert_eq!(ready["store"], s.as_str(), "{ready}");
    }
    let metrics = ready["metrics_port"].as_u64().unwrap() as u16;
    // The subnet wants commit/reveal: a commitment, then its reveal.
    let commit = validator.event("weights");
    assert_eq!(commit["how"], "commit", "{commit}");
    assert_eq!(commit["uids"], json!([2]), "{commit}");
    let reveal = validator.event("weights");
    assert_eq!(reveal["how"], "reveal", "{reveal}");
    assert_eq!(
        (reveal["uids"].clone(), reveal["weights"].clone()),
        (json!([2]), json!([65535])),
        "{reveal}"
    );
    let recorded = std::fs::read_to_string(state.join("simulated-chain.jsonl")).unwrap();
    assert!(
        recorded.contains("reveal_weights") || recorded.contains("RevealWeights"),
        "{recorded}"
    );
    let (_, text) = http_get(metrics, "/metrics");
    for needle in [
        "akihabara_weights_set_total 2",
        "akihabara_challenges_passed_total ",
    ] {
        // Whole lines, from their start: `akihabara_akihabara_…` (a double
        // prefix) must not pass for `akihabara_…`.
        assert!(
            text.lines().any(|l| l.starts_with(needle)),
            "no line starts with {needle} in:\n{text}"
        );
    }
    assert!(
        !text.contains("akihabara_challenges_passed_total 0"),
        "{text}"
    );
    // SIGTERM: the round in flight ends, then a clean exit.
    let status = validator.terminate();
    assert!(status.success(), "{status:?}");
    // The restart continues from the stored state (EMA, last weights).
    let validator = start("validator", config, &[]);
    let again = validator.event("ready");
    assert_eq!(again["resumed"], true, "{again}");
    assert_eq!(again["last_weights_block"], commit["block"], "{again}");
    drop(validator);
    miner.kill9();
}

/// Builds one block on the local chain (Chopsticks builds blocks on demand).
fn new_block(port: u16) {
    let _ = std::process::Command::new("curl")
        .args([
            "-s",
            "-m",
            "20",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(r#"{"id":1,"jsonrpc":"2.0","method":"dev_newBlock","params":[{"count":1}]}"#)
        .arg(format!("http://127.0.0.1:{port}"))
        .output();
}

/// Issue 9 (b): three miners and a validator started from the CLI with dev
/// keys on the local subtensor. The miners run the same CPU prover, two of
/// them throttled (a simulation of slower hardware: 1/2 and 1/4 speed); the
/// validator's weights, read back from chain storage with substrate-interface,
/// rank them by measured speed.
#[test]
fn daemons_on_a_local_subtensor_rank_miners_by_speed() {
    let Some(si) = super::peers::python("substrate-interface-1.8.1") else {
        return;
    };
    let Some(chain) = super::chain::LocalChain::start() else {
        return;
    };
    let url = chain.url();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    super::chain::setup_subnet(&si, &url, dir.path());

    // `demo --network`: the dev subnet driven in one process first; miner
    // uid 4 (//miner3) cheats. Both validators' weights land on chain, the cheater's at 0.
    let demo = super::json(&[
        "demo",
        "--network",
        &url,
        "--netuid",
        "2",
        "--windows",
        "1",
        "--cheat-miner",
        "4",
        "--json",
    ]);
    assert_eq!(demo["chain"], url.as_str(), "{demo}");
    assert_eq!(demo["validators"].as_array().unwrap().len(), 2, "{demo}");
    for v in demo["validators"].as_array().unwrap() {
        assert_eq!(v["weights"].as_array().unwrap().len(), 3, "{v}");
        assert!(v["weights_set_at"].as_u64().is_some(), "{v}");
        let uid = v["uid"].as_u64().unwrap().to_string();
        let row = super::chain::peer(&si, &url, &["weights", "2", &uid])["weights"].clone();
        let row: Vec<(u64, u64)> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
            .collect();
        let stored = |m: u64| row.iter().find(|(u, _)| *u == m).map_or(0, |(_, w)| *w);
        for w in v["weights"].as_array().unwrap() {
            let (m, weight) = (w["uid"].as_u64().unwrap(), w["weight"].as_u64().unwrap());
            assert_eq!(
                stored(m),
                weight,
                "validator {uid}, miner {m}: chain {row:?} vs demo {v}"
            );
            assert_eq!(weight == 0, m == 4, "only the cheater (uid 4) gets 0: {v}");
        }
    }

    let wallets = dir.path().join("wallets");
    let w = wallets.to_str().unwrap();
    for (name, uri) in [
        ("v1", "//validator1"),
        ("m1", "//miner1"),
        ("m2", "//miner2"),
        ("m3", "//miner3"),
    ] {
        let o = run(&[
            "wallet",
            "regen-hotkey",
            "--uri",
            uri,
            "--wallet.path",
            w,
            "--wallet.name",
            name,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let common = |name: &str| {
        format!(
            "[wallet]\npath = \"{w}\"\nname = \"{name}\"\n\n\
             [chain]\nnetwork = \"{url}\"\nnetuid = 2\ntimeout = \"20s\"\n\n\
             [state]\ndir = \"{}\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join(format!("{name}-state")).display()
        )
    };
    // The chain refuses 127.0.0.1 as an axon address; all of 127/8 is loopback.
    let mut miners = Vec::new();
    let mut m1_ready = Value::Null;
    for (i, throttle) in [(1, 1.0), (2, 0.5), (3, 0.25)] {
        let name = format!("m{i}");
        let axon_port = super::free_port();
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "{}\n[axon]\nip = \"127.0.0.2\"\nport = {axon_port}\nexternal_ip = \"127.0.0.2\"\n\n\
                 [schedule]\npoll = \"500ms\"\n# Two tempos of 10 blocks: 40 would not fit.\nmin_blocks = 10\n\
                 # The timelock phase commits at a block it holds still, whoever's slot it is.\n\
                 enforce_slots = false\n\n\
                 [pow]\nprover = \"cpu\"\nthrottle = {throttle}\n",
                common(&name)
            ),
        )
        .unwrap();
        let m = start("miner", path.to_str().unwrap(), &[]);
        let ready = m.event("ready");
        assert_eq!(ready["uid"], 1 + i, "{ready}");
        if i == 1 {
            m1_ready = ready;
        }
        miners.push(m);
    }
    let path = dir.path().join("v1.toml");
    std::fs::write(
        &path,
        format!(
            "{}\n[validator]\nround_blocks = 2\npoll = \"500ms\"\n\n\
             [pow]\nn = 256\ncount = 2\nsamples = 8\nconcurrency = 1\ntimeout = \"60s\"\n\n\
             [scoring]\nema_alpha = 1.0\n",
            common("v1")
        ),
    )
    .unwrap();
    let validator = start("validator", path.to_str().unwrap(), &[]);
    let ready = validator.event("ready");
    assert_eq!(ready["uid"], 0, "{ready}");

    // The chain advances one block a second while the daemons work.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pump = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                new_block(port);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // The miners published their new axon addresses; the validator's
    // weights land once it has measured all three.
    let weights = loop {
        let e = validator.event("weights");
        if e["uids"].as_array().is_some_and(|u| u.len() == 3) {
            break e;
        }
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    pump.join().unwrap();
    let block = weights["block"].as_u64().unwrap();
    let stored = super::chain::peer(&si, &url, &["weights", "2", "0"])["weights"].clone();
    let stored: Vec<(u64, u64)> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect();
    let of = |uid: u64| {
        stored
            .iter()
            .find(|(u, _)| *u == uid)
            .map_or(0, |(_, w)| *w)
    };
    eprintln!("weights set at block {block}: {weights}\nstored: {stored:?}");
    assert_eq!(
        weights["uids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_u64().unwrap())
            .collect::<Vec<_>>(),
        stored.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        "what the validator sent is what the chain stores"
    );
    assert!(
        of(2) > of(3) && of(3) > of(4),
        "ranked by speed (uid 2 full, 3 half, 4 quarter): {stored:?}"
    );
    assert!(of(4) > 0, "every honest miner gets weight: {stored:?}");
    // The chain holds the axon address the miner published.
    let mg = super::json(&["metagraph", "--network", &url, "--netuid", "2", "--json"]);
    let axon = mg["neurons"][2]["axon"].as_str().unwrap().to_owned();
    assert!(
        axon.starts_with("127.0.0.2:") && axon != "127.0.0.2:8093",
        "{axon}"
    );

    drop(validator);
    timelocked_weights_from_the_daemon(&si, &url, dir.path(), w);

    // The chain goes away: the miners keep serving their axons and say so
    // in /health (503, degraded) while they retry.
    let (m1_port, m1_hotkey, m1_metrics) = (
        m1_ready["port"].as_u64().unwrap().to_string(),
        m1_ready["hotkey"].as_str().unwrap().to_owned(),
        m1_ready["metrics_port"].as_u64().unwrap() as u16,
    );
    assert_eq!(http_get(m1_metrics, "/health").0, 200);
    drop(chain);
    let start = Instant::now();
    let health = loop {
        let (code, body) = http_get(m1_metrics, "/health");
        if code == 503 {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "still healthy without a chain: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        health.contains("\"degraded\"") && health.contains("\"ok\":false"),
        "{health}"
    );
    let o = run(&[
        "dendrite",
        "call",
        "--wallet.path",
        w,
        "--wallet.name",
        "v1",
        "--ip",
        "127.0.0.2",
        "--port",
        &m1_port,
        "--axon-hotkey",
        &m1_hotkey,
        "--synapse",
        "Ping",
        "--message",
        "still there?",
        "--json",
    ]);
    assert!(
        o.status.success(),
        "the axon stopped serving: {}",
        stderr(&o)
    );
    drop(miners);
}

/// The validator daemon on the subnet once commit-reveal is on: it commits
/// its weights timelocked, and reports them revealed once the chain, given
/// the round's real drand pulse, has applied them.
///
/// The chain holds still (no block pump) until the commit, so the test
/// knows the block it is made at and pins the daemon's drand clock (found
/// with a dry run at that block) to make its round 1000, the round whose
/// published quicknet signature the test holds.
fn timelocked_weights_from_the_daemon(si: &Path, url: &str, dir: &Path, w: &str) {
    use super::chain::peer;
    for args in [
        &[
            "sudo",
            "sudo_set_commit_reveal_weights_enabled",
            "netuid=2",
            "enabled=true",
        ][..],
        &[
            "sudo",
            "sudo_set_weights_set_rate_limit",
            "netuid=2",
            "weights_set_rate_limit=0",
        ],
    ] {
        let r = peer(si, url, args);
        assert_eq!(r["ok"], true, "{args:?}: {r}");
    }
    let v1 = ["--wallet.path", w, "--wallet.name", "v1"];
    let now0 = akihabara_core::chain::timelock::QUICKNET_GENESIS + 100_000;
    let o = bin()
        .args(["weights", "commit", "--network", url, "--netuid", "2"])
        .args(v1)
        .args([
            "--uids",
            "2",
            "--weights",
            "1",
            "--timelock",
            "--dry-run",
            "--block-time",
            "60",
            "--json",
        ])
        .env("AKIHABARA_DRAND_NOW", now0.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dry: Value = serde_json::from_slice(&o.stdout).unwrap();
    let r0 = dry["reveal_round"].as_u64().unwrap();
    let now1 = now0 - (r0 - 1000) * 3;
    // A fresh state: weights are due at the first round.
    let path = dir.join("v1-timelock.toml");
    std::fs::write(
        &path,
        format!(
            "[wallet]\npath = \"{w}\"\nname = \"v1\"\n\n\
             [chain]\nnetwork = \"{url}\"\nnetuid = 2\ntimeout = \"20s\"\nblock_time = \"60s\"\n\n\
             [state]\ndir = \"{}\"\n\n\
             [validator]\nround_blocks = 1\npoll = \"500ms\"\nrespect_schedules = false\n\n\
             [pow]\nn = 256\ncount = 2\nsamples = 8\nconcurrency = 3\ntimeout = \"60s\"\n\n\
             [scoring]\nema_alpha = 1.0\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("v1-timelock-state").display()
        ),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["validator", "run", "--config", path.to_str().unwrap()])
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .env("AKIHABARA_DRAND_NOW", now1.to_string());
    let validator = super::axon::Peer::spawn(cmd);
    let committed = validator.event_where("weights", Duration::from_secs(120), |_| true);
    assert_eq!(committed["how"], "timelocked", "{committed}");
    assert_eq!(committed["call"], "commit_crv3_weights", "{committed}");
    assert_eq!(committed["reveal_round"], 1000, "{committed}");
    let until = committed["reveal_until"].as_u64().unwrap();
    let before = peer(si, url, &["weights", "2", "0"]);

    // The pulse arrives; the chain moves on past the reveal block.
    let p = peer(
        si,
        url,
        &[
            "pulse",
            "1000",
            "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39",
        ],
    );
    assert_eq!(p["last_stored_round"], 1000, "{p}");
    let status = || {
        super::json(
            &[
                &[
                    "weights",
                    "status",
                    "--network",
                    url,
                    "--netuid",
                    "2",
                    "--json",
                ][..],
                &v1,
            ]
            .concat(),
        )
    };
    let s = status();
    assert_eq!(
        s["pending"].as_array().map(Vec::len),
        Some(1),
        "one commit: {s}"
    );
    assert_eq!(s["pending"][0]["reveal_round"], 1000, "{s}");
    assert_eq!(s["pending"][0]["pulse_stored"], true, "{s}");
    let head = peer(si, url, &["head"])["head"].as_u64().unwrap();
    assert!(
        head < until,
        "the reveal is still ahead: {head} {committed}"
    );
    peer(si, url, &["blocks", &(until + 1 - head).to_string()]);
    // (The daemon may already have committed its next weights.)
    let s = status();
    let left = s["pending"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["reveal_round"] == 1000)
        .count();
    assert_eq!(left, 0, "the round-1000 commit was revealed: {s}");
    let revealed = validator.event_where("weights", Duration::from_secs(60), |e| {
        e["how"] == "revealed_by_chain"
    });
    assert_eq!(revealed["reveal_round"], 1000, "{revealed}");
    assert!(
        revealed["block"].as_u64().unwrap() > until,
        "{revealed} vs {committed}"
    );
    let stored = peer(si, url, &["weights", "2", "0"])["weights"].clone();
    assert_ne!(
        stored, before["weights"],
        "the reveal changed the chain's weights"
    );
    let pairs: Vec<Value> = committed["uids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(committed["weights"].as_array().unwrap())
        .map(|(u, w)| Value::from(vec![u.clone(), w.clone()]))
        .collect();
    assert_eq!(
        stored,
        Value::from(pairs),
        "the chain holds what the daemon committed"
    );
    drop(validator);
}
