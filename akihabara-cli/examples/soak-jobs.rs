//! The validator side of `scripts/soak.py`: submits small jobs to a miner's
//! axon one after another (`JobSubmit`, then `JobQuery` until the job ends),
//! keeps every receipt the miner signs in a validator-side `ReceiptStore`,
//! and prints one JSON line per event. It keeps going while the miner is
//! down (a refused call is counted and retried) and stops when its stdin
//! closes, after the job in hand has ended or been given up.
//!
//! Not a test: `scripts/soak.py` builds it
//! (`cargo build --release -p akihabara-cli --example soak-jobs`) and runs it.
//!
//! Usage: `soak-jobs --uri //validator1 --ip 127.0.0.2 --port 8093
//! --miner SS58 --store validator-receipts.jsonl [--prefix soak] [--class cpu]`

use std::io::Read as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use akihabara_core::AccountId;
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::executor::Requirements;
use akihabara_core::market::client::{query_job, submit_job};
use akihabara_core::market::jobs::{JobRequest, ReceiptStore};
use akihabara_core::market::server::unix_millis;
use akihabara_core::market::wire::JobReply;
use akihabara_core::wallet::Keypair;
use serde_json::json;

struct Args {
    uri: String,
    ip: IpAddr,
    port: u16,
    miner: AccountId,
    store: String,
    prefix: String,
    class: String,
}

fn args() -> anyhow::Result<Args> {
    let mut map = std::collections::HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{k} needs a value"))?;
        map.insert(k.trim_start_matches("--").to_owned(), v);
    }
    let get = |k: &str| {
        map.get(k)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("--{k} is required"))
    };
    Ok(Args {
        uri: get("uri")?,
        ip: get("ip")?.parse()?,
        port: get("port")?.parse()?,
        miner: AccountId::from_ss58(&get("miner")?)?,
        store: get("store")?,
        prefix: map.get("prefix").cloned().unwrap_or_else(|| "soak".into()),
        class: map.get("class").cloned().unwrap_or_else(|| "cpu".into()),
    })
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

/// The job's end, as (state, detail): `finished`, `failed`, `lost`
/// (the miner restarted while it ran, no receipt) or `gave_up`.
async fn follow(
    d: &Dendrite,
    target: &AxonTarget,
    id: &str,
    store: &ReceiptStore,
) -> (&'static str, String) {
    let start = Instant::now();
    let t = Duration::from_secs(10);
    // A miner that is down is waited for: up to 3 minutes per job.
    while start.elapsed() < Duration::from_secs(180) {
        match query_job(d, target, id, store, t).await {
            Ok(JobReply::Running) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(JobReply::Finished { exit_code, .. }) => {
                return ("finished", format!("exit {exit_code}"));
            }
            Ok(JobReply::Failed {
                reason,
                receipt: Some(_),
            }) => return ("failed", reason),
            Ok(JobReply::Failed {
                reason,
                receipt: None,
            }) => return ("lost", reason),
            Ok(other) => return ("unexpected", format!("{other:?}")),
            Err(e) => {
                emit(json!({"event": "query_error", "job_id": id, "error": e.to_string()}));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    ("gave_up", "no end within 180 s".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let key = Keypair::from_uri(&a.uri)?;
    let d = Dendrite::new(key.clone())?;
    let target = AxonTarget::new(a.ip, a.port, a.miner);
    let store = ReceiptStore::new(&a.store);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::SeqCst);
        });
    }
    emit(json!({"event": "ready", "validator": key.account().to_ss58()}));
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("{}-{n}", a.prefix);
        let request = JobRequest {
            job_id: id.clone(),
            validator: key.account(),
            hardware_class: a.class.clone(),
            timeout_s: 30,
            command: vec!["sh".into(), "-c".into(), format!("echo soak {n}")],
            requirements: Requirements::default(),
            output_dir: None,
            image: None,
            env: Default::default(),
            inputs: vec![],
            outputs: vec![],
            issued_at_ms: unix_millis(),
            signature: String::new(),
        }
        .sign(&key);
        let t0 = Instant::now();
        match submit_job(&d, &target, request, &store, Duration::from_secs(10)).await {
            Ok(JobReply::Accepted { .. }) => {
                emit(json!({"event": "accepted", "job_id": id}));
                let (state, detail) = follow(&d, &target, &id, &store).await;
                emit(json!({"event": state, "job_id": id, "detail": detail,
                            "ms": t0.elapsed().as_millis() as u64}));
            }
            Ok(other) => {
                emit(json!({"event": "not_accepted", "job_id": id, "reply": format!("{other:?}")}));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                emit(json!({"event": "submit_error", "job_id": id, "error": e.to_string()}));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emit(json!({"event": "stopped", "submitted": n}));
    Ok(())
}
