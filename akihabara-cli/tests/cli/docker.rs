//! The `docker` executor backend against a real Docker Engine: a `dockerd`
//! started for the test as root, on a private socket and data root (vfs
//! storage, no iptables, no bridge), stopped by its PID. No registry is
//! reachable: the test image is a `docker import` of a directory holding
//! Debian's static busybox.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use akihabara_core::executor::{
    DockerBackend, ExecutorBackend, ExecutorError, ImagePolicy, JobSpec, JobStatus,
};

use super::{peers, run, stderr, stdout};

/// The test image's name.
pub(super) const IMAGE: &str = "akihabara-test/busybox:1";
/// The rental test image: busybox and this machine's sshd.
const RENTAL_IMAGE: &str = "akihabara-test/sshd:1";

pub(super) struct Dockerd {
    // Short: the engine's unix sockets live under it (108-byte limit).
    dir: PathBuf,
    child: Option<Child>,
    /// The bridge made for this engine (deleted with it).
    bridge: Option<String>,
    // One engine at a time: engines started together race over network
    // interfaces.
    _one: std::sync::MutexGuard<'static, ()>,
}

static ONE_ENGINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

impl Dockerd {
    /// An engine without a bridge network (jobs have none anyway).
    pub(super) fn start() -> Option<Dockerd> {
        Dockerd::start_with(false)
    }

    /// An engine with the default bridge, for rentals' published ports.
    fn start_with(bridge: bool) -> Option<Dockerd> {
        let Some(dockerd) = tool("dockerd") else {
            return peers::missing("no dockerd (apt install docker.io)");
        };
        if tool("docker").is_none() {
            return peers::missing("no docker CLI (apt install docker.io)");
        }
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return peers::missing("no /bin/busybox (apt install busybox-static)");
        }
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return peers::missing("dockerd needs root");
        }
        let one = ONE_ENGINE.lock().unwrap_or_else(|e| e.into_inner());
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/akd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        // Rentals publish ports through a bridge: a private one, so the
        // machine's docker0 (if any) is never touched.
        let bridge = if bridge {
            let name = format!("akd{}", std::process::id() % 100_000);
            let _ = ip(&["link", "delete", &name]);
            let made = ip(&["link", "add", &name, "type", "bridge"])
                && ip(&["addr", "add", "10.213.77.1/24", "dev", &name])
                && ip(&["link", "set", &name, "up"]);
            if !made {
                return peers::missing("cannot create a network bridge (iproute2, root)");
            }
            Some(name)
        } else {
            None
        };
        let child = Command::new(dockerd)
            .arg("--host")
            .arg(format!("unix://{}/docker.sock", dir.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("x"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip-masq=false",
            ])
            .arg(format!("--bridge={}", bridge.as_deref().unwrap_or("none")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd {
            dir,
            child: Some(child),
            bridge,
            _one: one,
        };
        let t = Instant::now();
        loop {
            let o = d.docker(&["version", "--format", "{{.Server.Version}}"]);
            if o.status.success() {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default();
                return peers::missing(&format!("dockerd did not answer within 60 s: {log}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        d.import_busybox(busybox);
        Some(d)
    }

    /// `unix://…/docker.sock`.
    pub(super) fn address(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }

    pub(super) fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.address())
            .args(args)
            .output()
            .unwrap()
    }

    fn import_busybox(&self, busybox: &Path) {
        let root = self.dir.join("rootfs");
        for d in ["bin", "work", "tmp", "proc", "sys", "dev", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "echo", "sleep", "cat", "ls", "touch", "dd", "true", "false", "head", "id",
            "grep",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        self.import(&root, IMAGE, "ENV PATH=/bin");
    }

    /// `docker import` of the directory `root` as `image`.
    fn import(&self, root: &Path, image: &str, change: &str) {
        let tarball = root.with_extension("tar");
        let o = Command::new("tar")
            .arg("-C")
            .arg(root)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .output()
            .unwrap();
        assert!(o.status.success(), "tar: {}", stderr(&o));
        let o = Command::new("docker")
            .arg("-H")
            .arg(self.address())
            .args(["import", "--change", change])
            .arg(&tarball)
            .arg(image)
            .output()
            .unwrap();
        assert!(o.status.success(), "docker import: {}", stderr(&o));
    }

    /// Imports [`RENTAL_IMAGE`]: busybox, this machine's sshd and
    /// ssh-keygen with their libraries, and a marker file only the rental
    /// holds.
    fn import_rental_image(&self) -> Option<()> {
        let sshd = Path::new("/usr/sbin/sshd");
        let keygen = tool("ssh-keygen")?;
        if !sshd.exists() {
            return peers::missing("no /usr/sbin/sshd (apt install openssh-server)");
        }
        let root = self.dir.join("rental");
        for d in [
            "bin",
            "usr/sbin",
            "usr/bin",
            "etc/ssh",
            "root",
            "run/sshd",
            "var/empty",
            "tmp",
            "dev",
            "proc",
            "sys",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "echo", "cat", "mkdir", "printf", "id", "hostname"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let mut files = vec![sshd.to_path_buf(), keygen.clone()];
        let ldd = Command::new("ldd").arg(sshd).arg(&keygen).output().unwrap();
        for line in stdout(&ldd).lines() {
            let lib = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line
                    .split_whitespace()
                    .next()
                    .filter(|p| p.starts_with('/')),
            };
            if let Some(l) = lib.filter(|l| l.starts_with('/') && !l.ends_with(':')) {
                files.push(PathBuf::from(l));
            }
        }
        for f in files {
            let to = root.join(f.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&f, &to).unwrap();
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nsshd:x:101:65534::/run/sshd:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        std::fs::write(root.join("etc/ssh/sshd_config"), "").unwrap();
        std::fs::write(root.join("etc/akihabara-rental"), "inside-the-rental\n").unwrap();
        self.import(&root, RENTAL_IMAGE, "ENV PATH=/usr/sbin:/usr/bin:/bin");
        Some(())
    }

    /// Containers and volumes the engine holds (ids).
    pub(super) fn leftovers(&self) -> (String, String) {
        let c = self.docker(&["ps", "-aq"]);
        let v = self.docker(&["volume", "ls", "-q"]);
        (stdout(&c).trim().to_owned(), stdout(&v).trim().to_owned())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM by its own PID, so it stops its containers; then wait.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(b) = &self.bridge {
            let _ = ip(&["link", "delete", b]);
        }
    }
}

fn job(cmd: &str, timeout_s: u64) -> JobSpec {
    let mut j = JobSpec::command("sh", ["-c", cmd], Duration::from_secs(timeout_s));
    j.image = Some(IMAGE.to_owned());
    j
}

#[test]
fn docker_jobs_run_contained_limited_and_leave_nothing_behind() {
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let d = DockerBackend::connect(Some(&engine.address())).unwrap();
    rt.block_on(async {
        d.health().await.expect("the engine answers");
        let spec = d.capabilities().await.unwrap();
        assert!(spec.cpu_count >= 1 && spec.ram_mb > 0, "{spec:?}");

        // Exit code and digest.
        let o = d
            .run(job("echo hello; echo oops >&2; exit 7", 60))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(o.status, JobStatus::Exited { code: 7 });
        assert_eq!(o.stdout.text, "hello\n");
        assert_eq!(
            o.stdout.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(o.stderr.text, "oops\n");

        // Contained: no network but loopback, a read-only root, a
        // writable /work, not root's capabilities; the engine's init is
        // PID 1, the job its child.
        let o = d
            .run(job(
                "ls /sys/class/net; touch /x 2>/dev/null && echo root-rw || echo root-ro; \
                 touch /work/y && pwd; cat /proc/1/comm",
                60,
            ))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(
            o.stdout.text, "lo\nroot-ro\n/work\ndocker-init\n",
            "{}",
            o.stderr.text
        );

        // The memory limit: over it is a typed failure. The engine can
        // still lose the kernel's OOM event under load (containerd drops it
        // when the container's cgroup is already gone; the init as PID 1
        // makes that rarer, not impossible): this `dd` can end in no other
        // way than an OOM kill, so a plain 137 is tried again, at most
        // twice, and said.
        let mut tries = 0;
        let o = loop {
            let mut hog = job("dd if=/dev/zero of=/dev/null bs=64M count=1", 60);
            hog.requirements.ram_mb = 16;
            let o = d.run(hog).await.unwrap().wait().await.unwrap();
            tries += 1;
            if o.status != (JobStatus::Exited { code: 137 }) || tries == 3 {
                break o;
            }
            eprintln!("NOTE: the engine lost an OOM kill's event (exit 137, not OOMKilled); again");
        };
        assert_eq!(o.status, JobStatus::OutOfMemory, "{}", o.stderr.text);

        // The timeout kills the container.
        let t = Instant::now();
        let o = d
            .run(job("sleep 300", 2))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(o.status, JobStatus::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());

        // Cancellation.
        let mut h = d.run(job("echo started; sleep 300", 600)).await.unwrap();
        let first = h.next_log().await.expect("a log line");
        assert_eq!(first.line, b"started");
        h.cancel();
        assert_eq!(h.wait().await.unwrap().status, JobStatus::Cancelled);

        // Images are never pulled, and the allow list holds.
        let e = d
            .run(job("true", 5).with_image("nope:1"))
            .await
            .unwrap_err();
        assert_eq!(e, ExecutorError::ImageNotFound("nope:1".into()));
        assert_eq!(e.to_string(), "image not found: nope:1");
        let strict = DockerBackend::connect(Some(&engine.address()))
            .unwrap()
            .with_images(ImagePolicy::only(["other/*"]));
        let e = strict.run(job("true", 5)).await.unwrap_err();
        assert_eq!(e, ExecutorError::ImageNotAllowed(IMAGE.into()));
        // A job without an image, on an executor without a default one.
        let mut bare = job("true", 5);
        bare.image = None;
        assert!(matches!(d.run(bare).await, Err(ExecutorError::BadJob(_))));
    });

    // The command line: `executor run --backend docker` passes the job's
    // exit code through; a missing image is bad input (exit 2).
    let addr = engine.address();
    let o = run(&[
        "executor",
        "run",
        "--backend",
        "docker",
        "--docker-host",
        &addr,
        "--image",
        IMAGE,
        "--ram-mb",
        "32",
        "--",
        "sh",
        "-c",
        "echo in-a-container; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "in-a-container\n");
    let o = run(&[
        "executor",
        "run",
        "--backend",
        "docker",
        "--docker-host",
        &addr,
        "--image",
        "nope:1",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("image not found: nope:1"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "executor",
        "run",
        "--backend",
        "docker",
        "--docker-host",
        &addr,
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--backend docker needs --image NAME"),
        "{}",
        stderr(&o)
    );
    let o = run(&["executor", "run", "--image", IMAGE, "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "executor",
        "specs",
        "--backend",
        "docker",
        "--docker-host",
        &addr,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let specs: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(specs["cpu_count"].as_u64().unwrap() >= 1, "{specs}");
    // A fleet file with a docker executor: healthy when the engine answers.
    let fleet = engine.dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[[executors]]\nid = \"box\"\nbackend = \"docker\"\naddress = \"{addr}\"\n\
             images = [\"akihabara-test/*\"]\nimage = \"{IMAGE}\"\n"
        ),
    )
    .unwrap();
    let o = run(&[
        "executor",
        "check",
        "--config",
        fleet.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["executors"][0]["backend"], "docker", "{v}");
    assert_eq!(v["executors"][0]["healthy"], true, "{v}");

    assert_eq!(
        engine.leftovers(),
        (String::new(), String::new()),
        "containers or volumes left"
    );

    // An engine that is not there: unreachable, typed.
    let gone = DockerBackend::connect(Some("unix:///tmp/akihabara-no-such.sock")).unwrap();
    let e = rt.block_on(gone.health()).unwrap_err();
    assert!(matches!(e, ExecutorError::Unreachable(_)), "{e:?}");
}

trait WithImage {
    fn with_image(self, image: &str) -> JobSpec;
    fn with_env(self, key: &str, value: &str) -> JobSpec;
}

impl WithImage for JobSpec {
    fn with_image(mut self, image: &str) -> JobSpec {
        self.image = Some(image.to_owned());
        self
    }

    fn with_env(mut self, key: &str, value: &str) -> JobSpec {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// Issue 19, deliverable 3: `Allocate` on a docker executor starts a
/// container with sshd that lets in exactly the validator's key; the login
/// runs inside it, not on the host; `Deallocate` removes it.
#[test]
fn a_rented_container_lets_its_validator_in_and_goes_on_deallocate() {
    let Some(engine) = Dockerd::start_with(true) else {
        return;
    };
    let Some(()) = engine.import_rental_image() else {
        return;
    };
    let fleet = format!(
        "[health]\ninterval = \"1s\"\n\n[[executors]]\nid = \"box\"\nbackend = \"docker\"\nclass = \"rent\"\n\
         address = \"{}\"\n[executors.rental]\nimage = \"{RENTAL_IMAGE}\"\nhost = \"127.0.0.1\"\n\
         bind = \"127.0.0.1\"\nmemory_mb = 256\n",
        engine.address()
    );
    let s = super::jobs::Setup::start(&fleet);
    let key = s.dir.path().join("validator_key");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.call(
        &["allocate"],
        &[
            "--ssh-key",
            key.with_extension("pub").to_str().unwrap(),
            "--class",
            "rent",
            "--duration",
            "600",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = v["allocation_id"].as_str().unwrap().to_owned();
    assert_eq!(v["executor"], "box", "{v}");
    assert_eq!(v["user"], "root", "{v}");
    assert_eq!(v["host"], "127.0.0.1", "{v}");
    let port = v["port"].as_u64().unwrap().to_string();
    let login = || {
        Command::new("ssh")
            .arg("-i")
            .arg(&key)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                "-p",
                &port,
                "root@127.0.0.1",
                "cat /etc/akihabara-rental",
            ])
            .output()
            .unwrap()
    };
    let o = login();
    assert_eq!(stdout(&o), "inside-the-rental\n", "{}", stderr(&o));
    assert!(
        !Path::new("/etc/akihabara-rental").exists(),
        "the marker must exist only in the rental"
    );
    let labelled = engine.docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=akihabara.allocation={id}"),
    ]);
    assert_eq!(
        stdout(&labelled).lines().count(),
        1,
        "{}",
        stdout(&labelled)
    );

    let o = s.local(&["deallocate", &id], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        engine.leftovers(),
        (String::new(), String::new()),
        "the rental is left"
    );
    assert!(!login().status.success(), "a login after deallocation");
}

/// Issue 19, deliverable 2: an ssh executor runs its jobs in containers
/// with the remote host's docker CLI (here the remote host is this machine
/// behind a real sshd), and removes each container when the job ends or
/// times out.
#[test]
fn an_ssh_executor_runs_its_jobs_in_remote_containers() {
    use akihabara_core::executor::{RemoteDocker, SshBackend, SshTarget};
    let Some(sshd) = super::executor::Sshd::start() else {
        return;
    };
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let target = SshTarget {
        address: format!("127.0.0.1:{}", sshd.port).parse().unwrap(),
        user: super::executor::whoami(),
        key: sshd.path("user_key").into(),
        known_hosts: Some(sshd.path("known_hosts").into()),
        authorized_keys: None,
    };
    let backend = SshBackend::new(target, None).in_docker(Some(RemoteDocker {
        host: Some(engine.address()),
        image: Some(IMAGE.into()),
        ..RemoteDocker::default()
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A job that names no image runs in the executor's.
        let mut j = JobSpec::command(
            "sh",
            [
                "-c",
                "ls /sys/class/net; touch /x 2>/dev/null || echo ro; cat /proc/1/comm; exit 4",
            ],
            Duration::from_secs(60),
        );
        j.env.insert("GREETING".into(), "it's here".into());
        let o = backend.run(j).await.unwrap().wait().await.unwrap();
        assert_eq!(o.status, JobStatus::Exited { code: 4 }, "{}", o.stderr.text);
        assert_eq!(o.stdout.text, "lo\nro\ndocker-init\n");
        let o = backend
            .run(job("echo \"$GREETING\"", 60).with_env("GREETING", "it's here"))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(o.stdout.text, "it's here\n", "{}", o.stderr.text);
        // A timeout: the container goes with the job.
        let o = backend
            .run(job("sleep 300", 3))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(o.status, JobStatus::TimedOut);
        // A missing image is not pulled.
        let o = backend
            .run(job("true", 30).with_image("nope:1"))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(
            o.status,
            JobStatus::Exited { code: 125 },
            "{}",
            o.stderr.text
        );
    });
    // The remote cleanup runs after the connection closes: give it a moment.
    let t = Instant::now();
    while engine.leftovers() != (String::new(), String::new()) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "containers left: {:?}",
            engine.leftovers()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GPUs reach a job's container through the engine's `nvidia` device
/// requests. Only where a GPU (and the NVIDIA container runtime) exists.
#[test]
fn docker_gpu_passthrough_where_a_gpu_exists() {
    let gpu = Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success());
    if !gpu {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: no NVIDIA GPU here (nvidia-smi -L failed); GPU passthrough untested"
        );
        return;
    }
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let d = DockerBackend::connect(Some(&engine.address())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut j = job("ls /dev | grep -c '^nvidia[0-9]'", 60);
    j.requirements.gpu = 1;
    let o = rt
        .block_on(async { d.run(j).await.unwrap().wait().await })
        .unwrap();
    assert_eq!(o.status, JobStatus::Exited { code: 0 }, "{}", o.stderr.text);
    assert_eq!(o.stdout.text, "1\n", "one GPU asked, one device seen");
}
