//! `$NACL` keyfile decryption: akihabara (RustCrypto Argon2i) against
//! libsodium (inside the official bittensor-wallet package) in the same run.
//!
//! Argon2i with 512 MiB and 8 passes is slow by design, so this is a plain
//! table, not criterion: 3 runs each, the median reported. Target: ours no
//! slower than 1.5x libsodium. libsodium's column needs the test peer venv
//! (`bash .ci/python-venv.sh ~/.cache/akihabara-peers/btwallet-4.1.1
//! bittensor-wallet==4.1.1`); without it the column says so.
//!
//! Run: `cargo bench --bench nacl`

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use akihabara::wallet::crypto;

const PASSWORD: &str = "benchmark password";
const RUNS: usize = 3;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds for `call` (a Python expression over `data` and `PW`) in the peer venv.
fn peer_seconds(data: &[u8], imports: &str, call: &str) -> Result<f64, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let peers = std::env::var_os("AKIHABARA_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cache/akihabara-peers"));
    let python = peers.join("btwallet-4.1.1/bin/python");
    if !python.exists() {
        return Err(format!(
            "not measured: no peer venv at {}",
            python.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("coldkey");
    std::fs::write(&file, data).map_err(|e| e.to_string())?;
    let script = format!(
        "import time, statistics\n{imports}\n\
         data = open({file:?}, 'rb').read()\nPW = {PASSWORD:?}\n\
         ts = []\n\
         for _ in range({RUNS}):\n    t = time.perf_counter(); {call}; ts.append(time.perf_counter() - t)\n\
         print(statistics.median(ts))\n",
        file = file.display().to_string()
    );
    let out = Command::new(&python)
        .args(["-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("peer failed: {}", String::from_utf8_lossy(&out.stderr)))
}

fn main() {
    // Under `cargo test --benches` (or `--bench nacl -- --list`), do nothing.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let plaintext = br#"{"accountId":"0x00","secretPhrase":"benchmark"}"#;
    let sealed = crypto::nacl_encrypt(plaintext, PASSWORD.as_bytes()).expect("encrypt");
    let ours = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let opened = crypto::nacl_decrypt(&sealed, PASSWORD.as_bytes()).expect("decrypt");
                assert_eq!(&opened[..], plaintext);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("$NACL decryption (Argon2i v1.3, 512 MiB, 8 passes), median of {RUNS}\n");
    println!("{:<34} {:>10}", "implementation", "seconds");
    println!("{:<34} {:>10.3}", "akihabara (RustCrypto argon2 0.6)", ours);
    let peers = [
        (
            "libsodium (bittensor-wallet 4.1.1)",
            "from bittensor_wallet import keyfile as kf",
            "kf.decrypt_keyfile_data(data, PW)",
        ),
        (
            "libsodium (PyNaCl 1.5.0)",
            "import nacl.pwhash, nacl.secret",
            "nacl.secret.SecretBox(nacl.pwhash.argon2i.kdf(32, PW.encode(), \
             b'\\x13q\\x83\\xdf\\xf1Z\\t\\xbc\\x9c\\x90\\xb5Q\\x879\\xe9\\xb1', \
             opslimit=8, memlimit=536870912)).decrypt(data[5:])",
        ),
    ];
    let mut ratios = Vec::new();
    for (name, imports, call) in peers {
        match peer_seconds(&sealed, imports, call) {
            Ok(theirs) => {
                println!("{name:<34} {theirs:>10.3}");
                ratios.push((name, ours / theirs));
            }
            Err(why) => println!("{name:<34} {why}"),
        }
    }
    for (name, ratio) in ratios {
        println!("\nratio akihabara / {name}: {ratio:.2} (target <= 1.5)");
    }
}
