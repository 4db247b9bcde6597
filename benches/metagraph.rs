//! Metagraph sync on the local subtensor: one full `metagraph(netuid)` read
//! (one `get_metagraph` runtime-API call) on a 256-uid subnet over loopback.
//! Target: under 100 ms.
//!
//! Needs the local chain tools in `../shared/chain` (Node, npm) and the
//! `substrate-interface-1.8.1` venv from `.ci/python-peers`; without them it
//! prints why and exits. It starts its own chain on a free port and stops it
//! by its PID at the end (also on panic).
//!
//! `cargo bench --bench metagraph`; with `AKIHABARA_BENCH_CHAIN=ws://…` it
//! reads netuid 2 of an existing chain instead of starting one.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use akihabara::Netuid;
use akihabara::chain::{ChainClient, Network, Subtensor};

const UIDS: usize = 256;
const READS: usize = 30;

struct Chain {
    port: u16,
    work: PathBuf,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

impl Chain {
    fn script(&self, action: &str) -> std::process::Output {
        Command::new("bash")
            .arg(root().join("../shared/chain/localnet.sh"))
            .arg(action)
            .env("CHAIN_PORT", self.port.to_string())
            .env("CHAIN_WORK_DIR", &self.work)
            .env("CHAIN_LIFETIME_S", "900")
            .output()
            .expect("run localnet.sh")
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.script("stop");
    }
}

fn python() -> Option<PathBuf> {
    let dir = std::env::var_os("AKIHABARA_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/akihabara-peers")
        });
    let venv = dir.join("substrate-interface-1.8.1");
    let ok = Command::new("bash")
        .arg(root().join(".ci/python-venv.sh"))
        .arg(&venv)
        .arg("substrate-interface==1.8.1")
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| venv.join("bin/python"))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Ok(url) = std::env::var("AKIHABARA_BENCH_CHAIN") {
        measure(&url);
        return;
    }
    if !root().join("../shared/chain/localnet.sh").exists()
        || Command::new("node").arg("--version").output().is_err()
    {
        println!("SKIPPED: the local chain needs ../shared/chain and Node");
        return;
    }
    let Some(py) = python() else {
        println!("SKIPPED: the substrate-interface venv could not be built");
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()));
    let chain = Chain {
        port,
        work: home.join(".cache/akihabara-chain"),
    };
    chain.script("stop");
    let started = chain.script("start");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let url = format!("ws://127.0.0.1:{port}");
    let t = Instant::now();
    let setup = Command::new(&py)
        .arg(root().join("../shared/chain/setup_subnet.py"))
        .args(["--url", &url, "--epochs", "0"])
        .output()
        .expect("setup");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stdout)
    );
    let more = (UIDS - 5).to_string();
    let reg = Command::new(&py)
        .arg(root().join("akihabara-cli/tests/peers/chain_peer.py"))
        .args([url.as_str(), "register-many", "2", &more])
        .output()
        .expect("register");
    assert!(
        reg.status.success(),
        "{}",
        String::from_utf8_lossy(&reg.stderr)
    );
    println!("subnet of {UIDS} uids set up in {:.0?}", t.elapsed());
    measure(&url);
    drop(chain);
}

fn measure(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let network: Network = url.parse().expect("url");
        let client = Subtensor::connect(&network).await.expect("connect");
        let mg = client.metagraph(Netuid(2)).await.expect("warm-up read");
        assert_eq!(mg.len(), UIDS, "uids registered");
        let mut times: Vec<Duration> = Vec::with_capacity(READS);
        for _ in 0..READS {
            let t = Instant::now();
            let mg = client.metagraph(Netuid(2)).await.expect("read");
            times.push(t.elapsed());
            assert_eq!(mg.len(), UIDS);
        }
        times.sort();
        let mut heads: Vec<Duration> = Vec::with_capacity(READS);
        for _ in 0..READS {
            let t = Instant::now();
            client.block().await.expect("block");
            heads.push(t.elapsed());
        }
        heads.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!();
        println!("metagraph sync, {UIDS} uids, {READS} reads over loopback (Chopsticks)");
        println!("{:<10} {:>10}", "", "ms");
        println!("{:<10} {:>10.1}", "min", ms(times[0]));
        println!("{:<10} {:>10.1}", "median", ms(times[READS / 2]));
        println!("{:<10} {:>10.1}", "p90", ms(times[READS * 9 / 10]));
        println!("{:<10} {:>10.1}", "max", ms(times[READS - 1]));
        // The same runtime call, raw (no client, no decoding): what the chain
        // itself takes to answer.
        let http = format!("http{}", url.trim_start_matches("ws"));
        let mut raw: Vec<Duration> = Vec::with_capacity(READS);
        for _ in 0..READS {
            let t = Instant::now();
            let o = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-H", "content-type: application/json", "-d"])
                .arg(r#"{"id":1,"jsonrpc":"2.0","method":"state_call","params":["SubnetInfoRuntimeApi_get_metagraph","0x0200"]}"#)
                .arg(&http)
                .status()
                .expect("curl");
            assert!(o.success());
            raw.push(t.elapsed());
        }
        raw.sort();
        println!(
            "for comparison: the chain's own answer to the raw state_call (curl): median {:.1} ms",
            ms(raw[READS / 2])
        );
        println!(
            "for comparison: block() (head lookup only): median {:.1} ms",
            ms(heads[READS / 2])
        );
        println!(
            "target: median under 100 ms: {}",
            if times[READS / 2] < Duration::from_millis(100) { "met" } else { "NOT MET" }
        );
    });
}
