//! Operator input that once aborted or ran away: each is now a usage error
//! (exit 2) naming its bound, or runs in bounded time (issue 23, item 9).

use std::path::Path;

use serde_json::{Value, json};

use super::{assert_usage, mg_arg, run, stderr, stdout};

/// A proof file for a small challenge, and the same file claiming a
/// challenge of 131,071 x 65,536 rows.
fn proofs(dir: &Path) -> (String, String) {
    let proof = dir.join("proof.json");
    let o = run(&[
        "pow",
        "prove",
        "--seed",
        &"01".repeat(32),
        "--n",
        "70",
        "--count",
        "3",
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut file: Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    file["challenge"]["n"] = 131_071.into();
    file["challenge"]["count"] = 65_536.into();
    let enlarged = dir.join("enlarged.json");
    std::fs::write(&enlarged, file.to_string()).unwrap();
    (
        proof.to_str().unwrap().to_owned(),
        enlarged.to_str().unwrap().to_owned(),
    )
}

/// `--samples 4294967295` on an enlarged proof once allocated 34 GB.
#[test]
fn pow_verify_bounds_samples_and_proof_files() {
    let dir = tempfile::tempdir().unwrap();
    let (proof, enlarged) = proofs(dir.path());
    for p in [&proof, &enlarged] {
        assert_usage(
            &["pow", "verify", "--proof", p, "--samples", "4294967295"],
            "error: --samples 4294967295 is more than 1024",
        );
    }
    // The most samples there are: the enlarged proof is rejected for its
    // shape before any row is computed.
    let o = run(&["pow", "verify", "--proof", &enlarged, "--samples", "1024"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "REJECTED: the proof has 210 leaves; the challenge has 8589869056 rows\n"
    );
    assert_eq!(
        stderr(&o),
        "error: the proof is invalid: the proof has 210 leaves; the challenge has 8589869056 rows\n"
    );
    // 1024 samples of the real proof: all 210 rows.
    let o = run(&[
        "pow",
        "verify",
        "--proof",
        &proof,
        "--samples",
        "1024",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["valid"].clone(), v["samples"].clone()),
        (json!(true), json!(210))
    );
    // A proof file larger than any proof is refused before it is read.
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    assert_usage(
        &["pow", "verify", "--proof", huge.to_str().unwrap()],
        &format!(
            "error: reading {}: 314572800 bytes, more than the 268435456 allowed",
            huge.display()
        ),
    );
    assert_usage(
        &["pow", "bench", "--samples", "1025"],
        "error: --samples 1025 is more than 1024",
    );
}

#[test]
fn sim_bounds_its_sizes_and_its_drift() {
    for (args, line) in [
        (
            vec!["--miners", "4294967295"],
            "4294967295 miners is more than 65536",
        ),
        (
            vec!["--validators", "65537"],
            "65537 validators is more than 65536 (a subnet's uids are 16-bit)",
        ),
        (
            vec!["--windows", "4294967295"],
            "4294967295 windows is more than 100000",
        ),
        (
            vec!["--miners", "65536", "--validators", "257"],
            "65536 miners x 257 validators is more than 16777216 pairs",
        ),
        (
            vec![
                "--miners",
                "65536",
                "--validators",
                "256",
                "--windows",
                "300",
            ],
            "65536 miners x 256 validators x 300 windows is more than 4294967296 cells",
        ),
        (
            vec!["--stake-drift", "1e308"],
            "stake drift 1e308 is not in [0, 1.0]",
        ),
        (
            vec!["--stake-drift", "1000"],
            "stake drift 1000.0 is not in [0, 1.0]",
        ),
        (
            vec!["--stake-drift", "inf"],
            "stake drift inf is not in [0, 1.0]",
        ),
        (
            vec!["--stake-drift", "NaN"],
            "stake drift NaN is not in [0, 1.0]",
        ),
    ] {
        let mut full = vec!["sim"];
        full.extend(args);
        assert_usage(
            &full,
            &format!("error: invalid simulation parameter: {line}"),
        );
    }
    // The largest drift keeps every column a number.
    let o = run(&[
        "sim",
        "--validators",
        "8",
        "--miners",
        "8",
        "--windows",
        "200",
        "--stake-drift",
        "1",
        "--json",
        "--no-timing",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for s in v["strategies"].as_array().unwrap() {
        for k in ["reward_per_compute", "jain_fairness", "coverage"] {
            assert!(s[k].as_f64().unwrap().is_finite(), "{k}: {s}");
        }
    }
}

#[test]
fn axon_threads_are_bounded() {
    assert_usage(
        &[
            "axon",
            "serve",
            "--port",
            "0",
            "--threads",
            "20000",
            "--wallet.path",
            "/nonexistent",
        ],
        "error: --threads 20000 is more than 256",
    );
}

/// 2^24 blocks interleaved took 4.9 GB.
#[test]
fn an_interleaved_window_is_bounded() {
    let mg = mg_arg();
    assert_usage(
        &[
            "schedule",
            "--metagraph",
            &mg,
            "--window-len",
            "16777216",
            "--layout",
            "interleaved",
        ],
        "error: the interleaved layout supports windows of at most 4194304 blocks, not \
         16777216; use the contiguous layout",
    );
    let o = run(&[
        "schedule",
        "--metagraph",
        &mg,
        "--window-len",
        "16777216",
        "--json",
    ]);
    assert!(
        o.status.success(),
        "contiguous takes any window: {}",
        stderr(&o)
    );
}

fn write_miner_config(dir: &Path, extra_schedule: &str) -> String {
    let wallets = dir.join("wallets");
    let o = run(&[
        "wallet",
        "create",
        "--wallet.path",
        wallets.to_str().unwrap(),
        "--wallet.name",
        "m",
        "--no-password",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hotkey = created["hotkeys"][0]["ss58"].as_str().unwrap().to_owned();
    let snapshot = dir.join("subnet.json");
    let neurons = json!([
        {"uid": 0, "hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
         "stake_rao": 3_000_000_000_000u64, "validator_permit": true},
        {"uid": 1, "hotkey": hotkey, "stake_rao": 0, "validator_permit": false},
    ]);
    std::fs::write(
        &snapshot,
        json!({"version": 1, "netuid": 2, "block": 1000, "neurons": neurons}).to_string(),
    )
    .unwrap();
    let path = dir.join("miner.toml");
    std::fs::write(
        &path,
        format!(
            "[wallet]\npath = \"{}\"\nname = \"m\"\nhotkey = \"default\"\n\n\
             [chain]\nnetwork = \"snapshot:{}\"\nnetuid = 2\nblock_time = \"200ms\"\n\
             [chain.hyperparameters]\ntempo = 100\nweights_rate_limit = 10\n\
             commit_reveal_enabled = false\nweights_version = 0\nmax_weight_limit = 65535\n\n\
             [axon]\nip = \"127.0.0.1\"\nport = 0\n\n\
             [schedule]\npoll = \"200ms\"\n{extra_schedule}\n\n[pow]\nprover = \"cpu\"\n\n\
             [state]\ndir = \"{}\"\n",
            wallets.display(),
            snapshot.display(),
            dir.join("state").display(),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// `schedule` refuses a minimum larger than the window; `miner run` once
/// started with it, retried every window and exited 0.
#[test]
fn a_miner_refuses_a_minimum_larger_than_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_miner_config(dir.path(), "");
    // The window is set: refused before anything starts.
    assert_usage(
        &[
            "miner",
            "run",
            "--config",
            &config,
            "--set",
            "schedule.window_blocks=5",
            "--duration",
            "20",
        ],
        "error: config key `schedule.min_blocks`: 40 is larger than the window (5 blocks: \
         schedule.window_blocks)",
    );
    assert_usage(
        &[
            "miner",
            "run",
            "--config",
            &config,
            "--set",
            "schedule.window_blocks=8388608",
            "--set",
            "schedule.layout=interleaved",
            "--duration",
            "20",
        ],
        "error: config key `schedule.window_blocks`: the interleaved layout supports windows \
         of at most 4194304 blocks, not 8388608; use the contiguous layout",
    );
    // A job-answer budget of zero would forget every job as it ends.
    for key in ["jobs.keep_ended", "jobs.keep_ended_per_validator"] {
        assert_usage(
            &[
                "miner",
                "run",
                "--config",
                &config,
                "--set",
                &format!("{key}=0"),
                "--duration",
                "20",
            ],
            &format!(
                "error: config key `{key}`: must be at least 1 (a validator must be able to \
                 query the job it ran)"
            ),
        );
    }
    // Two tempos of the (simulated) chain: refused once it is known, before
    // the axon serves.
    let o = run(&[
        "miner",
        "run",
        "--config",
        &config,
        "--set",
        "schedule.min_blocks=100000",
        "--duration",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "no ready line: {}", stdout(&o));
    assert_eq!(
        stderr(&o).lines().last().unwrap(),
        "error: config key `schedule.min_blocks`: 100000 is larger than the window (200 \
         blocks: two tempos of the subnet)"
    );
}

/// A gateway client's limits out of their bounds are refused before
/// anything is written.
#[test]
fn gateway_client_limits_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    for (flag, value, line) in [
        (
            "--rate",
            "0",
            "error: rate 0 requests/s is not in (0, 10000]",
        ),
        (
            "--rate",
            "NaN",
            "error: rate NaN requests/s is not in (0, 10000]",
        ),
        ("--burst", "10001", "error: burst 10001 is not in 1..=10000"),
        (
            "--jobs-per-day",
            "0",
            "error: a quota of 0 jobs a day admits nothing",
        ),
    ] {
        assert_usage(
            &[
                "gateway",
                "keys",
                "add",
                "--state-dir",
                state,
                "--name",
                "ci",
                flag,
                value,
            ],
            line,
        );
    }
    assert!(!dir.path().join("clients.json").exists());
}

/// Files an operator names are read up to a bound, never whole: /dev/zero
/// (endless, with no size) stands for a file too large, and each is refused
/// naming the file and the bound (the metagraph, measurements, state and
/// reveal files, a scoring config, an SSH public key, the allocations record).
#[cfg(unix)]
#[test]
fn operator_files_are_bounded() {
    let mg = mg_arg();
    let measurements = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/measurements.json")
        .to_string_lossy()
        .into_owned();
    fn score<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["score"][..], extra].concat()
    }
    fn allocate(ssh_key: &str) -> Vec<&str> {
        let hotkey = "5FKktvQ9adM6LDucqE4LKnhmc8iQT1w1G5UogB31WNScPbYZ";
        vec![
            "allocate",
            "--port",
            "1",
            "--axon-hotkey",
            hotkey,
            "--ssh-key",
            ssh_key,
        ]
    }
    for (args, line) in [
        (
            score(&["--metagraph", "/dev/zero", "--measurements", &measurements]),
            "error: metagraph /dev/zero: metagraph snapshot /dev/zero: 67108865 bytes, more than the 67108864 allowed",
        ),
        (
            score(&["--metagraph", &mg, "--measurements", "/dev/zero"]),
            "error: reading the measurements /dev/zero: 67108865 bytes, more than the 67108864 allowed",
        ),
        (
            score(&[
                "--metagraph",
                &mg,
                "--measurements",
                &measurements,
                "--config",
                "/dev/zero",
            ]),
            "error: reading the configuration /dev/zero: 1048577 bytes, more than the 1048576 allowed",
        ),
        (
            vec![
                "weights",
                "reveal",
                "--netuid",
                "1",
                "--reveal-file",
                "/dev/zero",
            ],
            "error: reading /dev/zero: 16777217 bytes, more than the 16777216 allowed",
        ),
        (
            allocate("/dev/zero"),
            "error: --ssh-key /dev/zero: 16385 bytes, more than the 16384 allowed",
        ),
        (
            allocate("/nonexistent/id.pub"),
            "error: --ssh-key /nonexistent/id.pub: No such file or directory (os error 2) \
             (create one with ssh-keygen -t ed25519)",
        ),
    ] {
        assert_usage(&args, line);
    }
    // The validator's allocations record.
    let state = tempfile::tempdir().unwrap();
    let book = state.path().join("allocations.json");
    std::os::unix::fs::symlink("/dev/zero", &book).unwrap();
    assert_usage(
        &["allocations", "--state-dir", state.path().to_str().unwrap()],
        &format!(
            "error: reading {}: 16777217 bytes, more than the 16777216 allowed",
            book.display()
        ),
    );
}

/// A mnemonic on standard input is read up to 4 KiB, never whole.
#[cfg(unix)]
#[test]
fn a_mnemonic_on_stdin_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let o = super::bin()
        .args([
            "wallet",
            "regen-coldkey",
            "--wallet.path",
            dir.path().to_str().unwrap(),
            "--mnemonic",
            "-",
            "--no-password",
        ])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: the mnemonic on standard input is longer than 4096 bytes\n"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// A one-shot HTTP server on loopback: answers each of `answers` (body) to
/// one connection, in order, with 200 and `application/json`.
fn serve_answers(answers: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for body in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            // The client may stop reading (and close) before the end.
            let _ = s.write_all(&body);
        }
    });
    (port, server)
}

/// `jobs list` reads the gateway's answer up to 16 MiB, and shows any text
/// it names a miner by without cutting a character in two (it cut at byte
/// 12, which panics inside a two-byte character).
#[test]
fn jobs_list_bounds_the_gateway_answer() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "k\n").unwrap();
    let mut huge = b"{\"jobs\":[".to_vec();
    huge.resize((16 << 20) + 10, b' ');
    let listed = json!({"jobs": [{"id": "j1", "state": "finished", "class": "cpu",
        "exit_code": 0, "miner": format!("a{}", "é".repeat(14))}]});
    let (port, server) = serve_answers(vec![huge, listed.to_string().into_bytes()]);
    let gateway = format!("http://127.0.0.1:{port}");
    let args = [
        "jobs",
        "list",
        "--gateway",
        &gateway,
        "--key-file",
        key.to_str().unwrap(),
    ];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("error: {gateway}/v1/jobs: the answer is larger than 16777216 bytes\n")
    );
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let miner = format!("a{}", "é".repeat(11));
    assert_eq!(
        stdout(&o),
        format!(
            "{:<36} {:<9} {:<8} {:<10} {miner}\n",
            "j1", "finished", "cpu", "0"
        )
    );
    server.join().unwrap();
}
