//! Axon load: verified calls per second and axon CPU per call, ours against
//! the official Python axon (bittensor 10.5.0), same dendrite, same machine,
//! same run. Loopback only; a bounded number of calls.
//!
//! Each axon runs in its own process (ours: this binary re-executed in axon
//! mode), so its CPU time is read from `/proc/<pid>/stat` (user + system,
//! all threads) before and after the load. The load comes from akihabara's
//! dendrite with 32 calls in flight; every call is a signed `Ping` that the
//! axon verifies (signature, nonce, body hash) before answering.
//!
//! Target (issue 4): ours verifies at least 100x the calls per axon CPU
//! second of the Python axon. The Python column needs the peer venv
//! (`bash .ci/python-venv.sh ~/.cache/akihabara-peers/bittensor-10.5.0
//! bittensor==10.5.0`); without it the row says so.
//!
//! Run: `cargo bench --bench axon` (Linux: reads /proc).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use akihabara::axon::{Axon, AxonConfig};
use akihabara::dendrite::{AxonTarget, Dendrite};
use akihabara::protocol::Ping;
use akihabara::wallet::{Keypair, Wallet};

/// The allocator of the `akihabara` binary, so our axon here is the one that
/// `akihabara axon serve` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OURS_CALLS: usize = 20_000;
const PYTHON_CALLS: usize = 400;
const IN_FLIGHT: usize = 32;
const ROUNDS: usize = 3;

/// Kills the axon process when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system, all threads) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn alice() -> Keypair {
    Keypair::from_uri("//Alice").expect("dev key")
}

/// Axon mode: serve Ping with //Bob until killed; print the port.
fn serve_axon() {
    let rt = if std::env::var("AKIHABARA_BENCH_AXON").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async {
        let axon = Axon::builder(Keypair::from_uri("//Bob").expect("dev key"))
            .config(AxonConfig::default())
            .builtins(Vec::new)
            .bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        println!("{}", axon.local_addr().expect("addr").port());
        axon.serve(std::future::pending()).await.expect("serve");
    });
}

struct Row {
    name: &'static str,
    calls: usize,
    ok: usize,
    wall: f64,
    cpu: f64,
}

async fn load(target: &AxonTarget, calls: usize, pid: u32) -> (usize, f64, f64) {
    let d = Dendrite::new(alice()).expect("dendrite");
    // Warm up connections, then measure.
    d.call_many(
        &vec![target.clone(); IN_FLIGHT],
        &Ping::new("warm", 0),
        Duration::from_secs(30),
        IN_FLIGHT,
    )
    .await;
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let replies = d
        .call_many(
            &vec![target.clone(); calls],
            &Ping::new("load", 1),
            Duration::from_secs(60),
            IN_FLIGHT,
        )
        .await;
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    (
        replies.iter().filter(|r| r.status == 200).count(),
        wall,
        cpu,
    )
}

fn peer_python() -> Option<PathBuf> {
    let peers = std::env::var_os("AKIHABARA_PEERS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/akihabara-peers"))
        })?;
    let p = peers.join("bittensor-10.5.0/bin/python");
    p.exists().then_some(p)
}

fn first_line(child: &mut Child) -> String {
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    lines
        .find_map(|l| {
            l.ok()
                .filter(|l| l.starts_with('{') || l.chars().all(|c| c.is_ascii_digit()))
        })
        .expect("axon printed nothing")
}

async fn bench_python(python: &Path) -> Result<Row, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let w = Wallet::new(dir.path(), "m", "default");
    let bob = Keypair::from_uri("//Bob").map_err(|e| e.to_string())?;
    w.write_coldkey(
        &Keypair::generate(12).map_err(|e| e.to_string())?,
        None,
        false,
    )
    .map_err(|e| e.to_string())?;
    w.write_hotkey(&bob, None, false)
        .map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("akihabara-cli/tests/peers/bittensor_peer.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["axon", "--wallet-path"])
        .arg(dir.path())
        .args(["--wallet-name", "m", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    first_line(&mut child);
    let proc = Proc(child);
    let target = AxonTarget::new("127.0.0.1".parse().map_err(|_| "ip")?, port, bob.account());
    let (ok, wall, cpu) = load(&target, PYTHON_CALLS, proc.0.id()).await;
    Ok(Row {
        name: "bittensor 10.5.0 (Python)",
        calls: PYTHON_CALLS,
        ok,
        wall,
        cpu,
    })
}

/// Starts our axon in a child process on the given runtime; returns it and its port.
fn spawn_ours(runtime: &str) -> (Proc, u16) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("AKIHABARA_BENCH_AXON", runtime)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn our axon");
    let port: u16 = first_line(&mut child).trim().parse().expect("port");
    (Proc(child), port)
}

fn bench_ours(rt: &tokio::runtime::Runtime, runtime: &'static str) -> Result<Row, String> {
    let (proc, port) = spawn_ours(runtime);
    let target = AxonTarget::new(
        "127.0.0.1".parse().map_err(|_| "ip")?,
        port,
        Keypair::from_uri("//Bob")
            .map_err(|e| e.to_string())?
            .account(),
    );
    let (ok, wall, cpu) = rt.block_on(load(&target, OURS_CALLS, proc.0.id()));
    Ok(Row {
        name: if runtime == "current" {
            "akihabara (Rust), 1 thread (axon serve default)"
        } else {
            "akihabara (Rust), multi-thread runtime"
        },
        calls: OURS_CALLS,
        ok,
        wall,
        cpu,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::var_os("AKIHABARA_BENCH_AXON").is_some() {
        serve_axon();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let python = peer_python();
    // Rounds alternate the axons so drifting machine load hits all of them;
    // each row reports its median round.
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut missing = None;
    for _ in 0..ROUNDS {
        for (i, runtime) in ["current", "multi"].into_iter().enumerate() {
            match bench_ours(&rt, runtime) {
                Ok(r) => rows[i].push(r),
                Err(e) => panic!("our axon: {e}"),
            }
        }
        match &python {
            Some(py) => match rt.block_on(bench_python(py)) {
                Ok(r) => rows[2].push(r),
                Err(e) => missing = Some(format!("not measured: {e}")),
            },
            None => missing = Some("not measured: no bittensor-10.5.0 peer venv".into()),
        }
    }

    println!(
        "| axon | calls per round | 200s (all rounds) | calls/s | axon CPU ms/call | verified calls per axon CPU s (median of {ROUNDS}) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut per_cpu = Vec::new();
    for r in rows.iter().filter(|r| !r.is_empty()) {
        let pcs = median(r.iter().map(|r| r.ok as f64 / r.cpu.max(0.01)).collect());
        let rate = median(r.iter().map(|r| r.ok as f64 / r.wall).collect());
        let ok: usize = r.iter().map(|r| r.ok).sum();
        let calls: usize = r.iter().map(|r| r.calls).sum();
        per_cpu.push(pcs);
        println!(
            "| {} | {} | {ok}/{calls} | {rate:.0} | {:.3} | {pcs:.0} |",
            r[0].name,
            r[0].calls,
            1e3 / pcs,
        );
    }
    if let Some(e) = missing {
        println!("| bittensor 10.5.0 (Python) | {e} | | | | |");
    }
    if let [ours, multi, python] = per_cpu[..] {
        println!(
            "\nverified calls per axon CPU second, akihabara / Python: {:.0}x with one thread, {:.0}x multi-threaded (target >= 100x)",
            ours / python,
            multi / python
        );
    }
}
