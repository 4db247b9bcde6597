//! The local backend and the fleet, on this machine.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::*;

fn sh(script: &str, timeout: Duration) -> JobSpec {
    JobSpec::command("sh", ["-c", script], timeout)
}

async fn run(job: JobSpec) -> Outcome {
    LocalBackend::default()
        .run(job)
        .await
        .expect("start")
        .wait()
        .await
        .expect("outcome")
}

fn alive(pid: &str) -> bool {
    // A zombie still has /proc/PID; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

#[tokio::test]
async fn output_exit_code_and_logs() {
    let mut h = LocalBackend::default()
        .run(sh(
            "echo one; echo two >&2; exit 3",
            Duration::from_secs(10),
        ))
        .await
        .expect("start");
    let mut lines = Vec::new();
    while let Some(l) = h.next_log().await {
        lines.push((l.stream, String::from_utf8_lossy(&l.line).into_owned()));
    }
    lines.sort_by_key(|(s, _)| *s == Stream::Stderr);
    assert_eq!(
        lines,
        vec![
            (Stream::Stdout, "one".into()),
            (Stream::Stderr, "two".into())
        ]
    );
    let o = h.wait().await.expect("outcome");
    assert_eq!(o.status, JobStatus::Exited { code: 3 });
    assert_eq!(o.stdout.text, "one\n");
    assert_eq!(o.stdout.sha256, hex::encode(Sha256::digest(b"one\n")));
    assert!(!o.stdout.truncated);
}

#[tokio::test]
async fn output_of_any_size_is_hashed_not_kept() {
    let mut job = sh("head -c 20000000 /dev/zero", Duration::from_secs(60));
    job.output_cap = 1000;
    let o = run(job).await;
    assert!(o.status.success(), "{:?}", o.status);
    assert_eq!(o.stdout.bytes, 20_000_000);
    assert_eq!(o.stdout.text.len(), 1000);
    assert!(o.stdout.truncated);
    assert_eq!(
        o.stdout.sha256,
        hex::encode(Sha256::digest(vec![0u8; 20_000_000]))
    );
}

#[tokio::test]
async fn a_timeout_kills_the_job_and_its_children() {
    let dir = tempfile::tempdir().expect("dir");
    let pidfile = dir.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let t = Instant::now();
    let o = run(sh(&script, Duration::from_millis(500))).await;
    assert_eq!(o.status, JobStatus::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let pid = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !alive(&pid),
        "the background child {pid} survived the timeout"
    );
}

/// Issue 23, finding 6: a job that leaves a `setsid` daemon holding its
/// output, or a child in another process group of its session, ends when its
/// own process ends, and what it left is killed.
#[tokio::test]
async fn escaped_children_die_with_the_job() {
    let dir = tempfile::tempdir().expect("dir");
    let escaped = dir.path().join("escaped.pid");
    let grouped = dir.path().join("grouped.pid");
    // `setsid` leaves the session but keeps stdout; `set -m` puts the second
    // sleep in a process group of its own, inside the job's session, with
    // its output elsewhere.
    let script = format!(
        "setsid sh -c 'echo $$ > {e}; exec sleep 1004' & \
         set -m; sleep 1005 > /dev/null 2>&1 & echo $! > {g}; \
         sleep 0.3; echo hi",
        e = escaped.display(),
        g = grouped.display()
    );
    let t = Instant::now();
    let o = run(sh(&script, Duration::from_secs(3))).await;
    assert_eq!(o.status, JobStatus::Exited { code: 0 });
    assert_eq!(o.stdout.text, "hi\n");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the job was held open for {:?}",
        t.elapsed()
    );
    for file in [&escaped, &grouped] {
        let pid = std::fs::read_to_string(file).expect("pid file");
        let pid = pid.trim();
        assert!(!pid.is_empty(), "{} is empty", file.display());
        assert!(!alive(pid), "{pid} ({}) outlived the job", file.display());
    }
}

#[tokio::test]
async fn cancel_and_signals_are_reported() {
    let mut h = LocalBackend::default()
        .run(sh("sleep 300", Duration::from_secs(600)))
        .await
        .expect("start");
    h.cancel();
    let o = h.wait().await.expect("outcome");
    assert_eq!(o.status, JobStatus::Cancelled);
    // Killed mid-run by someone else: the signal is reported.
    let o = run(sh("kill -TERM $$; sleep 5", Duration::from_secs(30))).await;
    assert_eq!(
        o.status,
        JobStatus::Signaled {
            signal: libc::SIGTERM
        }
    );
}

#[tokio::test]
async fn bad_jobs_are_typed_errors() {
    let b = LocalBackend::default();
    let mut empty = JobSpec::command("x", Vec::<String>::new(), Duration::from_secs(1));
    empty.command.clear();
    assert!(matches!(b.run(empty).await, Err(ExecutorError::BadJob(_))));
    let zero = JobSpec::command("true", Vec::<String>::new(), Duration::ZERO);
    assert!(matches!(b.run(zero).await, Err(ExecutorError::BadJob(_))));
    let mut image = JobSpec::command("true", Vec::<String>::new(), Duration::from_secs(1));
    image.image = Some("ubuntu:24.04".into());
    assert!(matches!(
        b.run(image).await,
        Err(ExecutorError::Unsupported(_))
    ));
    let missing = JobSpec::command(
        "/no/such/program",
        Vec::<String>::new(),
        Duration::from_secs(1),
    );
    assert!(matches!(
        b.run(missing).await,
        Err(ExecutorError::Spawn { .. })
    ));
    let bad: Result<JobSpec, _> = serde_json::from_str(r#"{"command": ["true"], "timeout": -1}"#);
    assert!(bad.is_err(), "negative timeout");
}

#[tokio::test]
async fn rlimits_apply() {
    // 64 MiB of address space is too little to allocate 256 MiB.
    let mut job = JobSpec::command(
        "python3",
        ["-c", "b = bytearray(256 * 1024 * 1024)"],
        Duration::from_secs(30),
    );
    job.requirements.ram_mb = 64;
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipped: no python3 to allocate with");
        return;
    }
    let o = run(job).await;
    assert!(
        !o.status.success(),
        "the allocation should fail under RLIMIT_AS"
    );
    assert!(o.stderr.text.contains("MemoryError"), "{}", o.stderr.text);
    let report = LocalBackend::limits_for(&JobSpec::command(
        "true",
        Vec::<String>::new(),
        Duration::from_secs(1),
    ));
    assert!(report.cgroup.starts_with("not enforced"));
}

#[tokio::test]
async fn capabilities_and_requirements() {
    let spec = LocalBackend::new(Some("cpu".into()))
        .capabilities()
        .await
        .expect("specs");
    assert!(spec.cpu_count >= 1 && spec.ram_mb > 0);
    assert_eq!(spec.hardware_class.as_deref(), Some("cpu"));
    let mut r = Requirements::default();
    assert_eq!(r.unmet_by(&spec), None);
    r.cpu = spec.cpu_count + 1;
    assert!(r.unmet_by(&spec).is_some_and(|w| w.contains("CPUs")));
}

#[tokio::test]
async fn a_fleet_admits_after_a_check_and_never_sends_to_the_unhealthy() {
    let cfg = FleetConfig::parse(
        r#"
        [health]
        interval = "1s"
        timeout = "2s"
        retries = 1

        [[executors]]
        id = "here"
        backend = "local"
        class = "cpu"

        [[executors]]
        id = "nowhere"
        backend = "ssh"
        class = "gpu"
        address = "127.0.0.1:1"
        user = "nobody"
        key = "/nonexistent"
        "#,
        std::path::Path::new("fleet.toml"),
    )
    .expect("config");
    let fleet = Fleet::new(cfg);
    let job = || JobSpec::command("true", Vec::<String>::new(), Duration::from_secs(5));
    assert!(
        matches!(
            fleet.run(job(), Some("cpu")).await,
            Err(ExecutorError::NoCapacity(_))
        ),
        "unchecked"
    );
    let states = fleet.check_all().await;
    let by = |id: &str| states.iter().find(|s| s.id == id).cloned().expect("state");
    assert!(by("here").healthy);
    assert!(!by("nowhere").healthy && by("nowhere").last_error.is_some());
    assert!(matches!(
        fleet.run(job(), Some("gpu")).await,
        Err(ExecutorError::NoCapacity(_))
    ));
    let (id, h) = fleet.run(job(), Some("cpu")).await.expect("runs");
    assert_eq!(id, "here");
    assert!(
        matches!(
            fleet.run(job(), Some("cpu")).await,
            Err(ExecutorError::NoCapacity(_))
        ),
        "busy"
    );
    assert!(h.wait().await.expect("outcome").status.success());
    fleet.release(&id);
    let mut big = job();
    big.requirements.cpu = 100_000;
    assert!(
        matches!(fleet.run(big, None).await, Err(ExecutorError::Unmet(w)) if w.contains("CPUs"))
    );
}

/// A fleet file is read up to [`super::MAX_FLEET_FILE_BYTES`], never whole.
#[cfg(unix)]
#[test]
fn a_fleet_file_is_bounded() {
    let e = FleetConfig::read(std::path::Path::new("/dev/zero")).expect_err("endless");
    assert_eq!(
        e.to_string(),
        "reading /dev/zero: 1048577 bytes, more than the 1048576 allowed"
    );
}

#[test]
fn fleet_files_name_the_bad_key() {
    use super::ExecutorConfig;
    let p = std::path::Path::new("f.toml");
    let docker = FleetConfig::parse(
        "[[executors]]\nid = \"a\"\nbackend = \"docker\"\naddress = \"unix:///run/d.sock\"\n\
         images = [\"team/*\"]\nimage = \"team/job:1\"\n",
        p,
    )
    .expect("a docker executor");
    assert_eq!(
        docker.executors,
        [ExecutorConfig::Docker {
            id: "a".into(),
            class: None,
            address: Some("unix:///run/d.sock".into()),
            images: vec!["team/*".into()],
            image: Some("team/job:1".into()),
            rental: None,
        }]
    );
    let e = FleetConfig::parse(
        "[[executors]]\nid = \"a\"\nbackend = \"docker\"\naddress = \"/run/d.sock\"\n",
        p,
    )
    .expect_err("address");
    assert_eq!(
        e.to_string(),
        "f.toml: executor \"a\": address \"/run/d.sock\" is not unix:///PATH or tcp://HOST:PORT"
    );
    let e = FleetConfig::parse(
        "[[executors]]\nid = \"a\"\nbackend = \"docker\"\nimages = [\"x:1\"]\nimage = \"y:1\"\n",
        p,
    )
    .expect_err("default image outside the list");
    assert_eq!(
        e.to_string(),
        "f.toml: executor \"a\": the default image \"y:1\" is not in its images"
    );
    let e = FleetConfig::parse(
        "[health]\ninterval = \"soon\"\n[[executors]]\nid = \"a\"\nbackend = \"local\"\n",
        p,
    )
    .expect_err("interval");
    assert!(e.to_string().contains("interval"), "{e}");
    let e = FleetConfig::parse("[[executors]]\nid = \"a\"\nbackend = \"local\"\n[[executors]]\nid = \"a\"\nbackend = \"local\"\n", p)
        .expect_err("dup");
    assert!(e.to_string().contains("twice"), "{e}");
    assert!(FleetConfig::parse("", p).is_err());
}

/// Issue 23, deliverable 2: validators' jobs never run as the miner's own
/// user unless the operator opts in by name, and a job user must be real,
/// unprivileged and the executor's own.
#[test]
fn remote_jobs_need_a_dedicated_user_or_an_explicit_opt_in() {
    let p = std::path::Path::new("fleet.toml");
    let parse = |t: &str| FleetConfig::parse(t, p).expect("parses");
    let shared = parse("[[executors]]\nid = \"a\"\nbackend = \"local\"\n");
    let e = shared.check_remote_jobs(p).expect_err("own user refused");
    assert_eq!(
        e.to_string(),
        "fleet.toml: executor \"a\" would run validators' jobs as the miner's own user, who can \
         read its wallet; set `user = \"NAME\"` to a dedicated unprivileged account (or, \
         knowingly, `unsafe_share_miner_user = true`)"
    );
    let opted =
        parse("[[executors]]\nid = \"a\"\nbackend = \"local\"\nunsafe_share_miner_user = true\n");
    assert_eq!(
        opted.check_remote_jobs(p).expect("opted in"),
        vec![
            "executor \"a\" runs validators' jobs as the miner's own user \
             (unsafe_share_miner_user = true): a job can read this miner's wallet"
                .to_owned()
        ]
    );
    let root = parse("[[executors]]\nid = \"a\"\nbackend = \"local\"\nuser = \"root\"\n");
    let e = root.check_remote_jobs(p).expect_err("root refused");
    assert!(
        e.to_string()
            .ends_with("job user \"root\" is root; jobs must run as an unprivileged user"),
        "{e}"
    );
    let ghost =
        parse("[[executors]]\nid = \"a\"\nbackend = \"local\"\nuser = \"no-such-user-xq\"\n");
    let e = ghost.check_remote_jobs(p).expect_err("unknown refused");
    assert!(
        e.to_string().contains(
            "executor \"a\": bad job: job user \"no-such-user-xq\" is not in /etc/passwd"
        ),
        "{e}"
    );
    let e = FleetConfig::parse(
        "[[executors]]\nid = \"a\"\nbackend = \"local\"\nuser = \"nobody\"\n\
         [[executors]]\nid = \"b\"\nbackend = \"local\"\nuser = \"nobody\"\n",
        p,
    )
    .expect_err("shared job user");
    assert!(
        e.to_string()
            .contains("executors \"a\" and \"b\" both run jobs as user \"nobody\""),
        "{e}"
    );
}

#[test]
fn job_users_come_from_passwd() {
    let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                  broken line\n\
                  job:x:1234:4321::/home/job:/usr/sbin/nologin\n";
    let u = JobUser::from_passwd_for_tests(passwd, "job").expect("by name");
    assert_eq!(
        (u.name.as_str(), u.uid, u.gid, u.home.as_path()),
        ("job", 1234, 4321, std::path::Path::new("/home/job"))
    );
    assert_eq!(
        JobUser::from_passwd_for_tests(passwd, "1234").expect("by uid"),
        u
    );
    assert!(JobUser::from_passwd_for_tests(passwd, "0").is_err());
    assert!(JobUser::from_passwd_for_tests(passwd, "broken line").is_err());
}

/// A job as a dedicated user cannot read the miner's secrets, does not see
/// its environment, and leaves no process behind. Needs root to switch
/// users; skipped (with the reason printed) otherwise.
#[tokio::test]
async fn a_job_user_cannot_read_the_wallet_and_leaves_nothing() {
    if sys::euid() != 0 {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED a_job_user_cannot_read_the_wallet_and_leaves_nothing: needs root"
        );
        return;
    }
    let nobody = JobUser::resolve("nobody").expect("nobody is in /etc/passwd");
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("hotkey");
    std::fs::write(&secret, "secret phrase").expect("write");
    // A world-traversable directory, as a home directory often is; the key
    // file itself is the miner's only (0600), as btcli writes it.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let backend = LocalBackend::new(None).user("nobody").workdir("/");
    let script = format!(
        "id -u; cat {} 2>/dev/null && echo LEAKED; echo \"home:$HOME\"; \
         setsid sh -c 'exec sleep 1006 > /dev/null 2>&1 < /dev/null' &",
        secret.display()
    );
    let mut job = sh(&script, Duration::from_secs(20));
    job.env.clear();
    let o = backend
        .run(job)
        .await
        .expect("start")
        .wait()
        .await
        .expect("outcome");
    assert_eq!(o.status, JobStatus::Exited { code: 0 }, "{}", o.stderr.text);
    // The job's environment is its own: HOME is the job user's, not ours.
    assert_ne!(
        std::env::var_os("HOME"),
        Some(nobody.home.clone().into_os_string())
    );
    assert_eq!(
        o.stdout.text,
        format!("{}\nhome:{}\n", nobody.uid, nobody.home.display())
    );
    // The daemon it left (its own session, no pipe held) is gone too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let left = std::process::Command::new("pgrep")
        .args(["-u", &nobody.uid.to_string(), "-f", "sleep 1006"])
        .output()
        .expect("pgrep");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout),
        "",
        "a process of the job user survived"
    );
}
