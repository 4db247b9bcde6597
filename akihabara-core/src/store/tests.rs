use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::strategy::{self, AllocationRequest, Eligibility};
use crate::{Block, Layout, Metagraph, Neuron, Rao, Uid};

fn keys() -> StateKeys {
    let hotkey: AccountId = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        .parse()
        .expect("ss58");
    StateKeys::new(Netuid(2), &hotkey)
}

fn schedule(start: u64) -> Schedule {
    let v = |i: u8| AccountId::from_bytes([i; 32]);
    let mg = Metagraph::new(
        Netuid(2),
        Block(start),
        vec![
            Neuron::new(Uid(0), v(1), Rao(3_000_000_000_000), true),
            Neuron::new(Uid(1), v(2), Rao(1_000_000_000_000), true),
        ],
    )
    .expect("metagraph");
    let req = AllocationRequest::new(
        Window::new(Block(start), 100).expect("window"),
        10,
        Eligibility::new().candidates(&mg),
    )
    .expect("request");
    let s = strategy::by_name("proportional").expect("strategy");
    Schedule::build(&*s, &req, Layout::Contiguous).expect("schedule")
}

/// What every backend must do; run against each.
fn contract(store: &dyn Store) {
    let k = keys();
    // Absent keys read as None.
    assert_eq!(store.get(&k.scores()).expect("get"), None);
    // A multi-key write lands whole.
    store
        .put(&[
            Put::new(&k.scores(), b"{\"a\":1}"),
            Put::new(&k.weights(), b"[]"),
        ])
        .expect("put");
    assert_eq!(
        store.get(&k.scores()).expect("get").as_deref(),
        Some(&b"{\"a\":1}"[..])
    );
    assert_eq!(
        store.get(&k.weights()).expect("get").as_deref(),
        Some(&b"[]"[..])
    );
    // Overwrite, then delete.
    put_json(store, &k.scores(), &vec![1, 2]).expect("put");
    assert_eq!(
        get_json::<Vec<u8>>(store, &k.scores()).expect("get"),
        Some(vec![1, 2])
    );
    store.delete(&k.scores()).expect("delete");
    store
        .delete(&k.scores())
        .expect("deleting an absent key is fine");
    assert_eq!(store.get(&k.scores()).expect("get"), None);
    // A corrupt record names its key.
    store
        .put(&[Put::new(&k.scores(), b"not json")])
        .expect("put");
    let e = get_json::<Vec<u8>>(store, &k.scores()).expect_err("corrupt");
    assert!(e.to_string().contains(&k.scores()), "{e}");

    // Schedules: saved per window, with a latest pointer.
    assert!(latest_schedule(store, &k).expect("latest").is_none());
    let (a, b) = (schedule(1000), schedule(1100));
    save_schedule(store, &k, &a).expect("save");
    save_schedule(store, &k, &b).expect("save");
    assert_eq!(
        load_schedule(store, &k, a.window()).expect("load"),
        Some(a.clone())
    );
    assert_eq!(
        load_schedule(store, &k, b.window()).expect("load"),
        Some(b.clone())
    );
    assert_eq!(latest_schedule(store, &k).expect("latest"), Some(b));
    let other = Window::new(Block(1000), 50).expect("window");
    assert_eq!(
        load_schedule(store, &k, other).expect("load"),
        None,
        "same start, other length"
    );
}

#[test]
fn embedded_store_keeps_the_contract_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/state.redb");
    {
        let store = Embedded::open(&path).expect("open");
        contract(&store);
        assert!(store.describe().starts_with("embedded:"));
        // redb locks the file: a second opener gets a clear error.
        let e = Embedded::open(&path).expect_err("locked");
        assert!(
            e.to_string().contains("cannot open the embedded store"),
            "{e}"
        );
    }
    let store = Embedded::open(&path).expect("reopen");
    assert_eq!(
        latest_schedule(&store, &keys())
            .expect("latest")
            .map(|s| s.window().start),
        Some(Block(1100))
    );
}

#[test]
fn embedded_expiry_follows_the_injected_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = now.clone();
    let store = Embedded::open(dir.path().join("s.redb"))
        .expect("open")
        .with_clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst)));
    let k = keys();
    save_schedule(&store, &k, &schedule(1000)).expect("save");
    now.fetch_add(SCHEDULE_TTL.as_secs() - 1, Ordering::SeqCst);
    assert!(
        latest_schedule(&store, &k).expect("latest").is_some(),
        "kept until the TTL"
    );
    now.fetch_add(1, Ordering::SeqCst);
    assert!(
        latest_schedule(&store, &k).expect("latest").is_none(),
        "gone at the TTL"
    );
    assert!(store.get(&k.schedule(1000)).expect("get").is_none());
    // Keys without a TTL stay.
    store.put(&[Put::new("forever", b"1")]).expect("put");
    now.fetch_add(1_000_000, Ordering::SeqCst);
    assert_eq!(
        store.get("forever").expect("get").as_deref(),
        Some(&b"1"[..])
    );
}

#[test]
fn open_understands_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("a.redb");
    let s = open(&format!("embedded:{}", p.display())).expect("embedded");
    assert!(s.describe().ends_with("a.redb"));
    let e = open("ftp://x").expect_err("unknown scheme");
    assert!(e.to_string().contains("embedded:PATH or redis://"), "{e}");
    let e = open("redis://127.0.0.1:1").expect_err("nothing listens on port 1");
    assert!(
        e.to_string()
            .starts_with("cannot open the redis store at redis://127.0.0.1:1: "),
        "{e}"
    );
    let e = open("redis://me:hunter2@127.0.0.1:1").expect_err("nothing listens on port 1");
    let shown = e.to_string();
    assert!(
        shown.starts_with("cannot open the redis store at redis://me:***@127.0.0.1:1: "),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn passwords_are_redacted() {
    for (address, shown) in [
        ("redis://u:pw@h:1/0", "redis://u:***@h:1/0"),
        ("rediss://:pw@h", "rediss://:***@h"),
        ("redis://h:1", "redis://h:1"),
        ("redis://user@h", "redis://user@h"),
        ("redis//user:pw@h:6379/0", "redis//***@h:6379/0"),
        ("user:pw@h", "***@h"),
        ("/var/lib/a@b/state.redb", "/var/lib/***@b/state.redb"),
        ("embedded:/x/state.redb", "embedded:/x/state.redb"),
    ] {
        assert_eq!(redact(address), shown, "{address}");
    }
}

/// `redis//user:pw@host` (a missing `:`) once became a directory named
/// after the credentials, shown with the password in every message.
#[test]
fn mistyped_urls_are_refused_without_showing_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd_free = |a: &str| {
        let e = open(a).expect_err(a);
        assert!(matches!(e, StoreError::Unsupported(_)), "{a}: {e:?}");
        e.to_string()
    };
    assert_eq!(
        cwd_free("redis//user:pw@db.example:6379/0"),
        "unsupported store: \"redis//***@db.example:6379/0\" looks like a mistyped URL \
         (a bare path with ':', '@' or '//'); use embedded:PATH or redis://HOST:PORT/DB \
         (embedded:PATH for a file whose path has them)"
    );
    for a in ["redis:/h:6379", "rediss//h", "h@example", "state//x.redb"] {
        let e = cwd_free(a);
        assert!(e.contains("looks like a mistyped URL"), "{a}: {e}");
    }
    assert_eq!(
        cwd_free("ftp://u:pw@x"),
        "unsupported store: \"ftp://u:***@x\" looks like a mistyped URL (a bare path with \
         ':', '@' or '//'); use embedded:PATH or redis://HOST:PORT/DB (embedded:PATH for a \
         file whose path has them)"
    );
    assert_eq!(
        cwd_free("embedded:"),
        "unsupported store: \"embedded:\" names no file; use embedded:PATH or redis://HOST:PORT/DB"
    );
    assert_eq!(
        cwd_free("embedded:redis://u:pw@h"),
        "unsupported store: \"embedded:redis://u:***@h\": a URL is not a path; use \
         embedded:PATH or redis://HOST:PORT/DB"
    );
    // Nothing was created in the working directory for any of them.
    assert!(!std::path::Path::new("redis").exists());
    // embedded: takes a path with ':' or '@' on purpose.
    let odd = dir.path().join("a:b@c");
    let s = open(&format!("embedded:{}", odd.display())).expect("embedded");
    assert!(s.describe().ends_with("a:b@c"), "{}", s.describe());
    // A bare path without them is fine.
    let plain = dir.path().join("plain.redb");
    assert!(check_address(&plain.display().to_string()).is_ok());
}

/// A real `redis-server` on a free loopback port, stopped by its PID on drop.
struct RedisServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server` on 127.0.0.1:`port`, without persistence, in `dir`.
fn spawn_redis(port: u16, dir: &std::path::Path) -> std::io::Result<std::process::Child> {
    std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
}

fn redis_server() -> Option<RedisServer> {
    let required = std::env::var("AKIHABARA_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(
            !required,
            "required peer unavailable (AKIHABARA_REQUIRE_PEERS=1): {why}"
        );
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {why}");
        None
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let child = match spawn_redis(port, dir.path()) {
        Ok(c) => c,
        Err(e) => return skip(format!("redis-server cannot start: {e}")),
    };
    let server = RedisServer {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not listen on 127.0.0.1:{port} within 5 s");
}

#[test]
fn redis_store_keeps_the_contract_against_a_real_server() {
    let Some(mut server) = redis_server() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let store = RedisStore::connect(&url).expect("connect");
    contract(&store);
    assert_eq!(store.describe(), url);

    // Redis holds the expiry: the schedule and the pointer carry a 7200 s TTL.
    let client = ::redis::Client::open(url.as_str()).expect("client");
    let mut c = client.get_connection().expect("connection");
    let k = keys();
    for key in [k.schedule(1100), k.schedule_latest()] {
        let ttl: i64 = ::redis::cmd("TTL").arg(&key).query(&mut c).expect("ttl");
        assert!((7190..=7200).contains(&ttl), "{key}: ttl {ttl}");
    }
    // The key layout the issue names: a prefix per netuid and hotkey, JSON values.
    let raw: Vec<u8> = ::redis::cmd("GET")
        .arg(k.schedule(1100))
        .query(&mut c)
        .expect("get");
    let v: serde_json::Value = serde_json::from_slice(&raw).expect("json, not a pickle");
    assert_eq!(v["window"]["start"], 1100, "{v}");
    assert!(k.schedule(1100).starts_with("akihabara:2:5GrwvaEF"));

    // The server dies: calls fail with a clear error within the bound …
    let _ = server.child.kill();
    let _ = server.child.wait();
    let e = store.get(&k.scores()).expect_err("server gone");
    assert!(e.to_string().contains("redis store"), "{e}");
    // … and the same store reconnects when a server is back on the port.
    let port = server.port;
    let dir = tempfile::tempdir().expect("tempdir");
    server.child = spawn_redis(port, dir.path()).expect("restart redis-server");
    let mut back = false;
    for _ in 0..100 {
        if store.put(&[Put::new("k", b"v")]).is_ok() {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(back, "the store did not reconnect");
    assert_eq!(store.get("k").expect("get").as_deref(), Some(&b"v"[..]));
}
