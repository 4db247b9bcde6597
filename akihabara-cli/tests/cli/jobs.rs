//! The validator-side commands (`jobs submit|status`, `allocate`,
//! `deallocate`, `allocations`) against a real `akihabara axon serve --fleet`
//! process over loopback, and against a lying miner in this process.

use std::process::Output;
use std::time::{Duration, Instant};

use akihabara_core::market::jobs::ReceiptStore;
use serde_json::{Value, json};

use super::axon::{Peer, Wallets, serve_ours};
use super::{run, stderr, stdout};

/// A miner serving a fleet, and a validator wallet with a state directory.
pub(super) struct Setup {
    pub(super) wallets: Wallets,
    pub(super) dir: tempfile::TempDir,
    miner_process: Peer,
    port: u16,
    miner: String,
    validator: String,
}

impl Setup {
    /// Serves `fleet` (TOML) from the "miner" wallet.
    pub(super) fn start(fleet: &str) -> Setup {
        let wallets = Wallets::new(&["miner", "validator"]);
        let dir = tempfile::tempdir().unwrap();
        let fleet_path = dir.path().join("fleet.toml");
        std::fs::write(&fleet_path, fleet).unwrap();
        let miner_state = dir.path().join("miner");
        let (peer, port, miner) = serve_ours(
            &wallets,
            "miner",
            &[
                "--fleet",
                fleet_path.to_str().unwrap(),
                "--state-dir",
                miner_state.to_str().unwrap(),
            ],
        );
        let validator = wallets.hotkey("validator");
        Setup {
            wallets,
            dir,
            miner_process: peer,
            port,
            miner,
            validator,
        }
    }

    fn state(&self) -> String {
        self.dir
            .path()
            .join("validator")
            .to_string_lossy()
            .into_owned()
    }

    /// `akihabara <command…> <validator flags> <miner flags> <rest…>`.
    pub(super) fn call(&self, command: &[&str], rest: &[&str]) -> Output {
        let port = self.port.to_string();
        let state = self.state();
        let mut args: Vec<&str> = command.to_vec();
        args.extend([
            "--wallet.path",
            self.wallets.path(),
            "--wallet.name",
            "validator",
            "--state-dir",
            &state,
            "--port",
            &port,
            "--axon-hotkey",
            &self.miner,
        ]);
        args.extend(rest);
        run(&args)
    }

    /// Like [`Setup::call`] without the miner flags (`deallocate`, `allocations`).
    pub(super) fn local(&self, command: &[&str], rest: &[&str]) -> Output {
        let state = self.state();
        let mut args: Vec<&str> = command.to_vec();
        args.extend([
            "--wallet.path",
            self.wallets.path(),
            "--wallet.name",
            "validator",
            "--state-dir",
            &state,
        ]);
        args.extend(rest);
        run(&args)
    }

    fn receipts(&self) -> ReceiptStore {
        ReceiptStore::new(self.dir.path().join("validator/receipts.jsonl"))
    }

    fn miner_receipts(&self) -> ReceiptStore {
        ReceiptStore::new(self.dir.path().join("miner/receipts.jsonl"))
    }
}

fn parsed(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", stdout(o), stderr(o)))
}

const LOCAL_FLEET: &str = "[[executors]]\nid = \"here\"\nbackend = \"local\"\nclass = \"cpu\"\n\
                           unsafe_share_miner_user = true\n";

#[test]
fn jobs_submit_and_status_against_a_real_miner() {
    let s = Setup::start(LOCAL_FLEET);

    // Submitted: accepted with the miner's receipt.
    let o = s.call(
        &["jobs", "submit"],
        &[
            "--class",
            "cpu",
            "--job-id",
            "j1",
            "--duration",
            "30",
            "--json",
            "--",
            "sh",
            "-c",
            "echo out; exit 7",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let v = parsed(&o);
    assert_eq!(v["state"], "accepted");
    assert_eq!(v["job_id"], "j1");
    assert_eq!(v["miner"], s.miner.as_str());
    let receipt = &v["receipt"];
    assert_eq!(receipt["kind"], "accepted");
    assert_eq!(receipt["job_id"], "j1");
    assert_eq!(receipt["validator"], s.validator.as_str());
    assert_eq!(receipt["miner"], s.miner.as_str());
    assert_eq!(receipt["hardware_class"], "cpu");

    // `jobs status` until it has finished: exit 0 (the state was read),
    // the job's own exit code and output digests in the answer.
    let start = Instant::now();
    let v = loop {
        let o = s.call(&["jobs", "status", "j1"], &["--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = parsed(&o);
        if v["state"] != "running" {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still running");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["state"], "finished", "{v}");
    assert_eq!(v["job_id"], "j1");
    assert_eq!(v["exit_code"], 7);
    assert_eq!(
        v["stdout_sha256"],
        "54034ac5c6e9ea95734ec2b729fd6d62abf64af34a9f9ce5d466cb788191a73d"
    );
    assert_eq!(
        v["stderr_sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(v["output_sha256"], Value::Null);
    assert_eq!(v["receipt"]["kind"], "finished");
    assert_eq!(v["receipt"]["exit_code"], 7);
    assert_eq!(v["receipt"]["status"], "exited");
    // The same miner found by uid in a metagraph snapshot.
    let mg = s.dir.path().join("mg.json");
    std::fs::write(
        &mg,
        json!({
            "version": 1, "netuid": 2, "block": 100,
            "neurons": [
                {"uid": 3, "hotkey": s.miner, "stake_rao": 0, "validator_permit": false,
                 "axon": format!("127.0.0.1:{}", s.port)},
                {"uid": 4, "hotkey": s.validator, "stake_rao": 0, "validator_permit": true}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let mg = mg.to_str().unwrap();
    let o = s.local(
        &["jobs", "status", "j1"],
        &["--metagraph", mg, "--uid", "3", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(parsed(&o), v);
    for (uid, needle) in [
        ("9", format!("no uid 9 in {mg}")),
        ("4", format!("uid 4 in {mg} serves no axon")),
    ] {
        let o = s.local(
            &["jobs", "status", "j1"],
            &["--metagraph", mg, "--uid", uid],
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o), format!("error: {needle}\n"));
    }
    let o = s.call(&["jobs", "status", "j1"], &["--uid", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o), "error: --uid needs --metagraph or --netuid\n");

    // With --wait, a job that exited non-zero fails the command.
    let o = s.call(&["jobs", "status", "j1"], &["--wait", "5"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error: job j1 exited with 7\n");
    assert_eq!(
        stdout(&o),
        format!(
            "job j1: finished, exit code 7\n\
             stdout sha256 54034ac5c6e9ea95734ec2b729fd6d62abf64af34a9f9ce5d466cb788191a73d\n\
             stderr sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             receipt signed by {}, kept in {}/receipts.jsonl\n",
            s.miner,
            s.state()
        )
    );

    // Submit and wait in one command: exit 0 once it finished cleanly.
    let o = s.call(
        &["jobs", "submit"],
        &[
            "--class", "cpu", "--job-id", "j2", "--wait", "20", "--json", "--", "echo", "42",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = parsed(&o);
    assert_eq!(
        (&v["state"], &v["exit_code"], &v["stdout_sha256"]),
        (
            &json!("finished"),
            &json!(0),
            &json!("084c799cd551dd1d8d5c5f9a5d593b2e931f5e36122ee5c793c1d08a19839cc0")
        )
    );

    // Both sides hold the same four receipts (accepted and finished, per job).
    let ours = s.receipts().load().unwrap();
    assert_eq!(ours.forged, 0);
    let mut kinds: Vec<(String, String)> = ours
        .receipts
        .iter()
        .map(|r| {
            let v = serde_json::to_value(r).unwrap();
            (r.job_id.clone(), v["kind"].as_str().unwrap().to_owned())
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("j1", "accepted"),
            ("j1", "finished"),
            ("j2", "accepted"),
            ("j2", "finished")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let mut theirs = s.miner_receipts().load().unwrap().receipts;
    let mut ours = ours.receipts;
    theirs.sort_by(|a, b| a.signature.cmp(&b.signature));
    ours.sort_by(|a, b| a.signature.cmp(&b.signature));
    assert_eq!(ours, theirs);

    // An id the miner never saw.
    let o = s.call(&["jobs", "status", "nope"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "job nope: unknown\n");
    assert_eq!(
        stderr(&o),
        "error: the miner knows no job nope of this hotkey\n"
    );
}

#[test]
fn a_declined_job_an_unreachable_miner_and_bad_flags_have_their_exit_codes() {
    let s = Setup::start(LOCAL_FLEET);
    // No executor of the class: declined, exit 3.
    let o = s.call(
        &["jobs", "submit"],
        &["--class", "gpu", "--job-id", "j3", "--json", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        parsed(&o),
        json!({
            "state": "declined",
            "reason": "unsupported_class",
            "detail": "no executor of class gpu",
            "job_id": "j3",
            "miner": s.miner,
        })
    );
    assert_eq!(
        stderr(&o),
        "error: the miner declined job j3: unsupported_class: no executor of class gpu\n"
    );
    let o = s.call(
        &["jobs", "submit"],
        &["--class", "gpu", "--job-id", "j4", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stdout(&o),
        "job j4: declined (unsupported_class: no executor of class gpu)\n"
    );
    // More than the executor has: declined, exit 3.
    let o = s.call(
        &["jobs", "submit"],
        &[
            "--class", "cpu", "--cpus", "100000", "--job-id", "j5", "--json", "--", "true",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v = parsed(&o);
    assert_eq!(
        (&v["state"], &v["reason"], &v["job_id"]),
        (
            &json!("declined"),
            &json!("unsupported_class"),
            &json!("j5")
        )
    );
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("here: 100000 CPUs wanted, ") && detail.ends_with(" offered"),
        "{detail}"
    );
    // The local executor cannot be rented: declined, exit 3.
    let key = s.dir.path().join("v_key");
    std::fs::write(
        key.with_extension("pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0 v@x\n",
    )
    .unwrap();
    let o = s.call(
        &["allocate"],
        &["--ssh-key", key.with_extension("pub").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: the miner declined the allocation: unsupported_class: "),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");

    // Nobody listens: no answer, exit 4.
    let closed = super::free_port().to_string();
    let o = run(&[
        "jobs",
        "submit",
        "--wallet.path",
        s.wallets.path(),
        "--wallet.name",
        "validator",
        "--state-dir",
        &s.state(),
        "--port",
        &closed,
        "--axon-hotkey",
        &s.miner,
        "--class",
        "cpu",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let prefix = format!(
        "error: miner {} at 127.0.0.1:{closed} is unreachable: connection refused (Service unavailable at ",
        s.miner
    );
    assert!(stderr(&o).starts_with(&prefix), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);

    // Bad input: exit 2, one line, nothing on stdout.
    let port = s.port.to_string();
    let base = [
        "jobs",
        "submit",
        "--wallet.path",
        s.wallets.path(),
        "--wallet.name",
        "validator",
        "--port",
        &port,
        "--axon-hotkey",
        &s.miner,
        "--class",
        "cpu",
    ];
    super::assert_bad_input(&base, "no command");
    super::assert_bad_input(
        &[&base[..], &["--duration", "0", "--", "true"]].concat(),
        "--duration",
    );
    super::assert_bad_input(
        &[&base[..], &["--timeout", "-1", "--", "true"]].concat(),
        "--timeout",
    );
    let o = run(&["jobs", "submit", "--class", "cpu", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--port"), "{}", stderr(&o));
    super::assert_bad_input(
        &[
            "deallocate",
            "nope",
            "--wallet.path",
            s.wallets.path(),
            "--wallet.name",
            "validator",
            "--state-dir",
            &s.state(),
        ],
        "no allocation nope",
    );
}

/// A miner in this process that signs receipts with another key and seals
/// login details to another key. Returns the runtime serving it, its port
/// and its hotkey.
fn lying_miner() -> (tokio::runtime::Runtime, u16, String) {
    use akihabara_core::axon::{Axon, Caller};
    use akihabara_core::executor::access::{self, LoginDetails};
    use akihabara_core::market::jobs::{Receipt, ReceiptKind};
    use akihabara_core::market::wire::{Allocate, AllocateReply, JobReply, JobSubmit};
    use akihabara_core::wallet::Keypair;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let miner = Keypair::from_uri("//liar").unwrap();
    let hotkey = miner.account().to_ss58();
    let port = rt.block_on(async move {
        let axon = Axon::builder(miner)
            .route(|mut s: JobSubmit, _: Caller| async move {
                let other = Keypair::from_uri("//someone-else").unwrap();
                let receipt = Receipt::sign(&s.request, ReceiptKind::Accepted, 1, &other);
                s.reply = Some(JobReply::Accepted { receipt });
                Ok(s)
            })
            .route(|mut r: Allocate, _: Caller| async move {
                let elsewhere = access::SealingKey::parse(&access::sealing_public_hex(
                    &access::new_sealing_key(),
                ))
                .unwrap();
                let details = LoginDetails {
                    host: "h".into(),
                    port: 22,
                    user: "u".into(),
                };
                r.reply = Some(AllocateReply::Allocated {
                    allocation_id: "a-1".into(),
                    executor: "box".into(),
                    expires_at_ms: 1,
                    sealed_details: access::seal_details(&details, &elsewhere).unwrap(),
                });
                Ok(r)
            })
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let port = axon.local_addr().unwrap().port();
        tokio::spawn(axon.serve(std::future::pending::<()>()));
        port
    });
    (rt, port, hotkey)
}

#[test]
fn a_forged_receipt_and_unopenable_details_exit_5() {
    let (_rt, port, hotkey) = lying_miner();
    let wallets = Wallets::new(&["validator"]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let key = dir.path().join("v.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0 v@x\n",
    )
    .unwrap();
    let port = port.to_string();
    let flags = [
        "--wallet.path",
        wallets.path(),
        "--wallet.name",
        "validator",
        "--state-dir",
        state.to_str().unwrap(),
        "--port",
        &port,
        "--axon-hotkey",
        &hotkey,
    ];
    let o = run(&[
        &["jobs", "submit"][..],
        &flags,
        &["--class", "cpu", "--", "true"],
    ]
    .concat());
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: miner {hotkey} at 127.0.0.1:{port}: bad answer from the miner: \
             a receipt that is not the miner's signature over this job\n"
        )
    );
    assert_eq!(stdout(&o), "");
    let kept = ReceiptStore::new(state.join("receipts.jsonl"))
        .load()
        .unwrap();
    assert!(kept.receipts.is_empty(), "a forged receipt was kept");

    let o = run(&[
        &["allocate"][..],
        &flags,
        &["--ssh-key", key.to_str().unwrap()],
    ]
    .concat());
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: miner {hotkey} at 127.0.0.1:{port}: bad answer from the miner: \
             bad job: sealed details do not open with this key\n"
        )
    );
    // Nothing recorded.
    let o = run(&[
        "allocations",
        "--wallet.path",
        wallets.path(),
        "--wallet.name",
        "validator",
        "--state-dir",
        state.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(parsed(&o), json!({"allocations": []}));
}

#[test]
fn allocate_lists_and_deallocates_an_ssh_executor() {
    use super::executor::{Sshd, whoami};
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(sshd.path("validator_key"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let fleet = format!(
        "[health]\ninterval = \"1s\"\ntimeout = \"3s\"\n\n\
         [[executors]]\nid = \"box\"\nbackend = \"ssh\"\nclass = \"rent\"\naddress = \"127.0.0.1:{}\"\n\
         user = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\nauthorized_keys = \"{}\"\n",
        sshd.port,
        whoami(),
        sshd.path("user_key"),
        sshd.path("known_hosts"),
        sshd.path("authorized_keys"),
    );
    let s = Setup::start(&fleet);
    let pubkey = sshd.path("validator_key.pub");
    let before = now_ms();
    let o = s.call(
        &["allocate"],
        &[
            "--ssh-key",
            &pubkey,
            "--class",
            "rent",
            "--duration",
            "600",
            "--json",
        ],
    );
    let after = now_ms();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = parsed(&o);
    let id = v["allocation_id"].as_str().unwrap().to_owned();
    let created = v["created_at_ms"].as_u64().unwrap();
    let expires = v["expires_at_ms"].as_u64().unwrap();
    assert!((before..=after).contains(&created), "{v}");
    // The miner's clock and ours are the same machine's.
    assert!(
        (before + 600_000..=after + 600_000).contains(&expires),
        "{v}"
    );
    assert_eq!(
        v,
        json!({
            "state": "allocated",
            "allocation_id": id,
            "miner": s.miner,
            "axon": format!("127.0.0.1:{}", s.port),
            "executor": "box",
            "created_at_ms": created,
            "expires_at_ms": expires,
            "host": "127.0.0.1",
            "port": sshd.port,
            "user": whoami(),
        })
    );
    // The record lists it (and nothing secret is in it).
    let o = s.local(&["allocations"], &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        parsed(&o),
        json!({"allocations": [{
            "allocation_id": id,
            "miner": s.miner,
            "axon": format!("127.0.0.1:{}", s.port),
            "executor": "box",
            "created_at_ms": created,
            "expires_at_ms": expires,
            "expired": false,
            "host": "127.0.0.1",
            "port": sshd.port,
            "user": whoami(),
        }]})
    );
    // The record holds exactly this (no secret: the sealing key was never stored).
    let path = format!("{}/allocations.json", s.state());
    let record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        record,
        json!({"version": 1, "allocations": [{
            "allocation_id": id,
            "miner": s.miner,
            "axon": format!("127.0.0.1:{}", s.port),
            "executor": "box",
            "created_at_ms": created,
            "expires_at_ms": expires,
            "login": {"host": "127.0.0.1", "port": sshd.port, "user": whoami()},
        }]})
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The only executor is rented: a second allocation is declined.
    let o = s.call(&["allocate"], &["--ssh-key", &pubkey, "--class", "rent"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: the miner declined the allocation: busy: "),
        "{}",
        stderr(&o)
    );

    let o = s.local(&["deallocate", &id], &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        parsed(&o),
        json!({"allocation_id": id, "miner": s.miner, "state": "deallocated"})
    );
    // The miner removed the key: only the fleet's own is left.
    let keys = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let o = s.local(&["allocations"], &["--json"]);
    assert_eq!(parsed(&o), json!({"allocations": []}));
    let o = s.local(&["allocations"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "no allocations\n");

    // In text, for one second; the miner's sweep then ends it, and
    // deallocating what the miner no longer holds clears the record.
    let o = s.call(&["allocate"], &["--ssh-key", &pubkey, "--duration", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let id = text
        .strip_prefix("allocation ")
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_owned();
    let listed = parsed(&s.local(&["allocations"], &["--json"]));
    let expires = listed["allocations"][0]["expires_at_ms"].as_u64().unwrap();
    let until = humantime_serde::re::humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(expires),
    );
    assert_eq!(
        text,
        format!(
            "allocation {id} on executor box until {until}\n\
             login: ssh -i {} -p {} {}@127.0.0.1\n",
            sshd.path("validator_key"),
            sshd.port,
            whoami()
        )
    );
    let expired = s.miner_process.event("allocation_expired");
    assert_eq!(expired["allocation_id"], id.as_str());
    let o = s.local(&["allocations"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let cells = [
        id.clone(),
        format!("{} (127.0.0.1:{})", s.miner, s.port),
        "box".to_owned(),
        format!("{}@127.0.0.1:{}", whoami(), sshd.port),
        format!("{until} (expired)"),
    ];
    let heads = ["ID", "MINER", "EXECUTOR", "LOGIN", "EXPIRES"];
    let line = |row: [&str; 5]| {
        let padded: Vec<String> = row
            .iter()
            .zip(&cells)
            .zip(heads)
            .map(|((c, w), h)| format!("{c:<0$}", w.len().max(h.len())))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    assert_eq!(
        stdout(&o),
        line(heads) + &line(cells.each_ref().map(String::as_str))
    );
    let o = s.local(&["deallocate", &id], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "allocation {id}: the miner holds it no more (expired, or ended before); \
             removed from the record\n"
        )
    );
    assert_eq!(
        parsed(&s.local(&["allocations"], &["--json"])),
        json!({"allocations": []})
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
