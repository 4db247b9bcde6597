//! `akihabara executor`: the local backend end to end, and the ssh backend and
//! fleet health against a real `sshd` started on a loopback port with a
//! generated host key and user key.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::{peers, run, stderr, stdout};

pub(super) struct Sshd {
    dir: tempfile::TempDir,
    pub(super) port: u16,
    child: Option<Child>,
}

impl Sshd {
    pub(super) fn start() -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            return peers::missing("no /usr/sbin/sshd (apt install openssh-server)");
        }
        if Command::new("ssh-keygen").arg("-?").output().is_err() {
            return peers::missing("no ssh-keygen (apt install openssh-client)");
        }
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [("host_key", "ed25519"), ("user_key", "ed25519")] {
            let o = Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", "", "-f"])
                .arg(dir.path().join(name))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        std::fs::copy(
            dir.path().join("user_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let port = super::free_port();
        let host_pub = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
        std::fs::write(
            dir.path().join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .unwrap();
        let user = whoami();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowUsers {user}\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        // Privilege separation wants this directory; creating it needs root and is harmless.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut s = Sshd {
            dir,
            port,
            child: None,
        };
        if let Err(e) = s.spawn() {
            return peers::missing(&format!("sshd did not start: {e}"));
        }
        Some(s)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("sshd exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("sshd did not listen within 10 s".into())
    }

    /// Stops sshd by its own PID.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(super) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn host(&self) -> String {
        format!("{}@127.0.0.1:{}", whoami(), self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn whoami() -> String {
    let o = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

#[test]
fn local_run_streams_and_passes_the_exit_code() {
    let o = run(&[
        "executor",
        "run",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    let o = run(&["executor", "run", "--timeout", "0.3", "--", "sleep", "30"]);
    assert_eq!(o.status.code(), Some(124));
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
    let o = run(&["executor", "run", "--json", "--", "echo", "x"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["status"], "exited");
    assert_eq!(v["stdout"]["bytes"], 2);
    let v: serde_json::Value =
        serde_json::from_slice(&run(&["executor", "specs", "--json"]).stdout).unwrap();
    assert!(v["cpu_count"].as_u64().unwrap() >= 1);
    super::assert_bad_input(&["executor", "run"], "no command");
    super::assert_bad_input(
        &["executor", "run", "--timeout", "-1", "--", "true"],
        "--timeout",
    );
    super::assert_bad_input(
        &["executor", "run", "--", "/no/such/program"],
        "could not start",
    );
    super::assert_bad_input(
        &["executor", "run", "--backend", "ssh", "--", "true"],
        "--host",
    );
    super::assert_bad_input(
        &["executor", "run", "--backend", "docker", "--", "true"],
        "docker",
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fleet.toml");
    std::fs::write(&f, "[[executors]]\nid = \"k\"\nbackend = \"kubernetes\"\n").unwrap();
    super::assert_bad_input(
        &["executor", "check", "--config", &f.to_string_lossy()],
        "kubernetes",
    );
}

/// An unreachable ssh executor: its row says how ssh ended, in words, and
/// ssh's two lines of standard error (a warning, then the error) stay on
/// the one row of the table.
#[test]
fn an_unreachable_ssh_executor_is_one_row_in_words() {
    if Command::new("ssh").arg("-V").output().is_err() {
        peers::missing::<()>("no ssh client; the unreachable-executor row is untested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fleet.toml");
    // Nothing listens on a port just closed; the key file does not exist,
    // so ssh warns before it fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = dir.path().join("no-such-key");
    std::fs::write(
        &f,
        format!(
            "[health]\ntimeout = \"5s\"\nretries = 0\n\n[[executors]]\nid = \"far\"\n\
             backend = \"ssh\"\naddress = \"127.0.0.1:{port}\"\nuser = \"nobody\"\nkey = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let o = run(&["executor", "check", "--config", &f.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {out}");
    let row = lines[1];
    assert!(row.starts_with("far "), "{row}");
    assert!(
        row.contains(&format!(
            "executor unreachable: 127.0.0.1:{port}: ssh exited with code 255: Warning: Identity file"
        )),
        "{row}"
    );
    assert!(row.ends_with("Connection refused"), "{row}");
    assert!(!row.contains("Exited {"), "{row}");
    assert_eq!(
        stderr(&o).trim(),
        "error: 1 of 1 executors are unhealthy",
        "{out}"
    );
}

#[test]
fn ssh_backend_and_fleet_health_against_a_real_sshd() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let (key, kh, host) = (sshd.path("user_key"), sshd.path("known_hosts"), sshd.host());
    // `executor run` over ssh, trusting the host keys in `known_hosts`.
    let ssh_with = |known_hosts| {
        [
            "executor",
            "run",
            "--backend",
            "ssh",
            "--host",
            host.as_str(),
            "--key",
            key.as_str(),
            "--known-hosts",
            known_hosts,
        ]
    };
    let ssh = ssh_with(&kh);

    // A job runs remotely; its output streams back and its exit code passes through.
    let o = run(&[
        &ssh[..],
        &["--", "sh", "-c", "echo remote $((6*7)); exit 5"],
    ]
    .concat());
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "remote 42\n");

    // Over its timeout, the remote job is killed with its children.
    let pidfile = sshd.path("child.pid");
    let script = format!("sleep 300 & echo $! > {pidfile}; wait");
    let t = Instant::now();
    let o = run(&[&ssh[..], &["--timeout", "2", "--", "sh", "-c", &script]].concat());
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let t = Instant::now();
    while alive(&pid) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(&pid), "remote child {pid} outlived the timeout");

    // A wrong host key is refused.
    let other = sshd.path("other_known_hosts");
    std::fs::write(&other, format!("[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0\n", sshd.port)).unwrap();
    let o = run(&[&ssh_with(&other)[..], &["--", "true"]].concat());
    assert_ne!(o.status.code(), Some(0));

    // Fleet health: healthy, then unhealthy within one check of sshd stopping,
    // then re-admitted once it is back.
    let fleet = sshd.path("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[health]\ninterval = \"1s\"\ntimeout = \"3s\"\nretries = 1\n\n\
             [[executors]]\nid = \"here\"\nbackend = \"local\"\n\n\
             [[executors]]\nid = \"remote\"\nbackend = \"ssh\"\nclass = \"cpu\"\naddress = \"127.0.0.1:{}\"\n\
             user = \"{}\"\nkey = \"{key}\"\nknown_hosts = \"{kh}\"\n",
            sshd.port,
            whoami()
        ),
    )
    .unwrap();
    let check = |expect_ok: bool| {
        let o = run(&["executor", "check", "--config", &fleet, "--json"]);
        let v = super::last_json(&stdout(&o));
        assert_eq!(o.status.success(), expect_ok, "{v} {}", stderr(&o));
        v["executors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == "remote")
            .map(|e| e["healthy"].as_bool().unwrap())
            .unwrap()
    };
    assert!(check(true));
    sshd.stop();
    let t = Instant::now();
    assert!(!check(false));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    sshd.spawn().unwrap();
    assert!(check(true), "re-admitted after recovery");
}

/// The miner's axon with `--fleet`: a validator allocates the ssh executor
/// (its key then logs in), runs a job on the local one, the miner is killed
/// with SIGKILL and restarted: the allocation still holds, the job's receipt
/// still answers, and deallocating revokes the key.
/// Submits job "before-crash" (`echo 42` on the `cpu` class, signed by
/// `validator`) to `miner`, waits (at most 20 s) for it to finish, checks it
/// exited 0, and returns the finished reply.
pub(super) fn finish_a_job(
    rt: &tokio::runtime::Runtime,
    d: &akihabara_core::dendrite::Dendrite,
    miner: &akihabara_core::dendrite::AxonTarget,
    validator: &akihabara_core::wallet::Keypair,
    receipts: &akihabara_core::market::jobs::ReceiptStore,
) -> akihabara_core::market::wire::JobReply {
    use akihabara_core::market::client::{query_job, submit_job};
    use akihabara_core::market::jobs::JobRequest;
    use akihabara_core::market::wire::JobReply;
    let t = Duration::from_secs(20);
    let job = JobRequest {
        job_id: "before-crash".into(),
        validator: validator.account(),
        hardware_class: "cpu".into(),
        timeout_s: 30,
        command: vec!["echo".into(), "42".into()],
        requirements: Default::default(),
        output_dir: None,
        image: None,
        env: Default::default(),
        inputs: vec![],
        outputs: vec![],
        issued_at_ms: 1,
        signature: String::new(),
    }
    .sign(validator);
    let finished = rt.block_on(async {
        let r = submit_job(d, miner, job, receipts, t).await.unwrap();
        assert!(matches!(r, JobReply::Accepted { .. }), "{r:?}");
        let start = Instant::now();
        loop {
            let r = query_job(d, miner, "before-crash", receipts, t)
                .await
                .unwrap();
            if r != JobReply::Running {
                break r;
            }
            assert!(start.elapsed() < t);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(
        matches!(finished, JobReply::Finished { exit_code: 0, .. }),
        "{finished:?}"
    );
    finished
}

#[test]
fn a_miner_allocates_over_the_axon_and_keeps_state_across_a_kill() {
    use akihabara_core::dendrite::{AxonTarget, Dendrite};
    use akihabara_core::executor::access;
    use akihabara_core::market::client::query_job;
    use akihabara_core::market::jobs::ReceiptStore;
    use akihabara_core::market::wire::{Allocate, AllocateReply, Deallocate, DeallocateReply};
    use akihabara_core::wallet::Keypair;

    let Some(sshd) = Sshd::start() else {
        return;
    };
    let o = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &sshd.path("validator_key"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (key, kh) = (sshd.path("user_key"), sshd.path("known_hosts"));
    let fleet = sshd.path("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[health]\ninterval = \"1s\"\ntimeout = \"3s\"\n\n\
             [[executors]]\nid = \"here\"\nbackend = \"local\"\nclass = \"cpu\"\nunsafe_share_miner_user = true\n\n\
             [[executors]]\nid = \"box\"\nbackend = \"ssh\"\nclass = \"rent\"\naddress = \"127.0.0.1:{}\"\n\
             user = \"{}\"\nkey = \"{key}\"\nknown_hosts = \"{kh}\"\nauthorized_keys = \"{}\"\n",
            sshd.port,
            whoami(),
            sshd.path("authorized_keys"),
        ),
    )
    .unwrap();
    let wallets = super::axon::Wallets::new(&["miner"]);
    let state = sshd.path("state");
    let serve = || {
        super::axon::serve_ours(
            &wallets,
            "miner",
            &["--fleet", &fleet, "--state-dir", &state],
        )
    };
    let session = |command: &[&str]| {
        let mut c = Command::new("ssh");
        c.args([
            "-i",
            &sshd.path("validator_key"),
            "-o",
            "BatchMode=yes",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={kh}"))
        .args(["-o", "IdentitiesOnly=yes", "-p", &sshd.port.to_string()])
        .arg(format!("{}@127.0.0.1", whoami()))
        .args(command);
        c
    };
    let login_as_validator = || session(&["echo", "logged-in"]).output().unwrap();
    assert!(
        !login_as_validator().status.success(),
        "the key works before allocation"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let validator = Keypair::from_uri("//validator1").unwrap();
    let d = Dendrite::new(validator.clone()).unwrap();
    let receipts = ReceiptStore::new(sshd.path("validator-receipts.jsonl"));
    let t = Duration::from_secs(20);
    let secret = access::new_sealing_key();
    let ask = |duration_s| Allocate {
        ssh_public_key: std::fs::read_to_string(sshd.path("validator_key.pub")).unwrap(),
        duration_s,
        sealing_key: access::sealing_public_hex(&secret),
        hardware_class: Some("rent".into()),
        ..Allocate::default()
    };

    let (peer, port, hotkey) = serve();
    let miner = AxonTarget::new(
        [127, 0, 0, 1].into(),
        port,
        akihabara_core::AccountId::from_ss58(&hotkey).unwrap(),
    );
    let allocation_id = rt.block_on(async {
        let r = d.call(&miner, ask(3600), t).await;
        let reply = r.synapse.and_then(|s| s.reply);
        let Some(AllocateReply::Allocated {
            allocation_id,
            executor,
            sealed_details,
            ..
        }) = reply
        else {
            panic!("not allocated: {reply:?}")
        };
        assert_eq!(executor, "box");
        let login = access::open_details(&sealed_details, &secret).unwrap();
        assert_eq!((login.host.as_str(), login.port), ("127.0.0.1", sshd.port));
        assert_eq!(login.user, whoami());
        allocation_id
    });
    let o = login_as_validator();
    assert_eq!(stdout(&o).trim(), "logged-in", "{}", stderr(&o));
    // The renter leaves a session running, with a background process of
    // its own; deallocation must end both (issue 23, deliverable 2).
    let mut renter = session(&["sh", "-c", "'sleep 1007 & sleep 1008'"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = |pattern: &str| {
        Command::new("pgrep")
            .args(["-f", pattern])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let since = std::time::Instant::now();
    while !(running("^sleep 1007") && running("^sleep 1008")) {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the renter's session never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A job on the local executor, finished before the crash.
    let finished = finish_a_job(&rt, &d, &miner, &validator, &receipts);

    // SIGKILL, then a new miner process on the same state.
    drop(peer);
    let (_peer, port, _) = serve();
    let miner = AxonTarget { port, ..miner };
    rt.block_on(async {
        let again = query_job(&d, &miner, "before-crash", &receipts, t)
            .await
            .unwrap();
        assert_eq!(again, finished);
        // Still allocated: a second allocation of the class is refused.
        let r = d.call(&miner, ask(60), t).await;
        assert!(
            matches!(
                r.synapse.and_then(|s| s.reply),
                Some(AllocateReply::Declined { .. })
            ),
            "allocated twice after a restart"
        );
        let r = d
            .call(
                &miner,
                Deallocate {
                    allocation_id: allocation_id.clone(),
                    reply: None,
                },
                t,
            )
            .await;
        assert_eq!(
            r.synapse.and_then(|s| s.reply),
            Some(DeallocateReply::Deallocated),
            "{}",
            r.message
        );
    });
    let o = login_as_validator();
    assert!(
        !o.status.success(),
        "the key still works after deallocation"
    );
    // The session and what it started are gone.
    assert!(
        !running("^sleep 1007"),
        "the renter's background process survived"
    );
    assert!(!running("^sleep 1008"), "the renter's shell survived");
    let since = std::time::Instant::now();
    while renter.try_wait().unwrap().is_none() {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the renter's ssh session is still open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The fleet's own key is untouched.
    let keys = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    // Both sides hold the job's receipts.
    assert_eq!(receipts.load().unwrap().receipts.len(), 2);
    let theirs = ReceiptStore::new(std::path::Path::new(&state).join("receipts.jsonl"));
    assert_eq!(
        theirs.load().unwrap().receipts,
        receipts.load().unwrap().receipts
    );
}

#[test]
fn axon_serve_fleet_flags_are_checked() {
    let wallets = super::axon::Wallets::new(&["miner"]);
    let base = [
        "axon",
        "serve",
        "--wallet.path",
        wallets.path(),
        "--wallet.name",
        "miner",
        "--port",
        "0",
        "--duration",
        "1",
    ];
    super::assert_bad_input(
        &[&base[..], &["--fleet", "/nonexistent/fleet.toml"]].concat(),
        "fleet.toml",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("fleet.toml");
    std::fs::write(
        &bad,
        "[[executors]]\nid = \"x\"\nbackend = \"docker\"\naddress = \"/run/docker.sock\"\n",
    )
    .unwrap();
    super::assert_bad_input(
        &[&base[..], &["--fleet", bad.to_str().unwrap()]].concat(),
        "executor \"x\": address \"/run/docker.sock\" is not unix:///PATH or tcp://HOST:PORT",
    );
    let o = run(&[&base[..], &["--state-dir", "/tmp/x"]].concat());
    assert_eq!(
        o.status.code(),
        Some(2),
        "--state-dir needs --fleet: {}",
        stderr(&o)
    );
}
