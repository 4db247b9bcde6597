//! Drives the `akihabara` binary end to end.
// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "cli/axon.rs"]
mod axon;
#[path = "cli/btcli.rs"]
mod btcli;
#[path = "cli/chain.rs"]
mod chain;
#[path = "cli/daemon.rs"]
mod daemon;
#[path = "cli/docker.rs"]
mod docker;
#[path = "cli/executor.rs"]
mod executor;
#[path = "cli/exit.rs"]
mod exit;
#[path = "cli/files.rs"]
mod files;
#[path = "cli/gateway.rs"]
mod gateway;
#[path = "cli/jobs.rs"]
mod jobs;
#[path = "cli/limits.rs"]
mod limits;
#[path = "cli/offline.rs"]
mod offline;
#[path = "cli/peers.rs"]
mod peers;
#[path = "cli/pow.rs"]
mod pow;
#[path = "cli/probe.rs"]
mod probe;
#[path = "cli/readme.rs"]
mod readme;
#[path = "cli/score.rs"]
mod score;
#[path = "cli/timelock.rs"]
mod timelock;
#[path = "cli/wallet.rs"]
mod wallet;
#[path = "cli/weights.rs"]
mod weights;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_akihabara"))
}

fn example_metagraph() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/metagraph.json")
}

/// Runs the binary with no standard input and no password in the environment.
fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .output()
        .expect("run akihabara")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(args: &[&str]) -> Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

/// The JSON object a peer printed last (Python packages print progress lines too).
fn last_json(text: &str) -> Value {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {text:?}"));
    serde_json::from_str(line).expect("peer JSON")
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mg_arg() -> String {
    example_metagraph().to_string_lossy().into_owned()
}

/// Fails with exit code 2 and exactly one line on stderr that mentions `needle`.
fn assert_bad_input(args: &[&str], needle: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: one line expected, got {err:?}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should mention {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "no partial output on failure: {}",
        stdout(&o)
    );
}

/// Fails with exit code 2, exactly `line` (and a newline) on stderr and
/// nothing on stdout.
fn assert_usage(args: &[&str], line: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), format!("{line}\n"), "{args:?}");
    assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
}

#[test]
fn schedule_json_is_exact() {
    let mg = mg_arg();
    let v = json(&[
        "schedule",
        "--metagraph",
        &mg,
        "--window-start",
        "1000",
        "--window-len",
        "720",
        "--json",
    ]);
    assert_eq!(v["strategy"], "proportional");
    assert_eq!(v["window"]["start"], 1000);
    assert_eq!(v["window"]["len"], 720);
    let allocs = v["allocations"].as_array().unwrap();
    // Five neurons hold permits; all are listed, in descending stake.
    let uids: Vec<u64> = allocs.iter().map(|a| a["uid"].as_u64().unwrap()).collect();
    assert_eq!(uids, vec![0, 1, 2, 3, 4]);
    let blocks: Vec<u64> = allocs
        .iter()
        .map(|a| a["blocks"].as_u64().unwrap())
        .collect();
    assert_eq!(blocks, vec![436, 164, 40, 40, 40]);
    assert_eq!(
        allocs[0]["hotkey"],
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
    let slots = v["slots"].as_array().unwrap();
    assert_eq!(slots[0]["start"], 1000);
    assert_eq!(slots[slots.len() - 1]["end"], 1720, "end is exclusive");
    for pair in slots.windows(2) {
        assert_eq!(pair[0]["end"], pair[1]["start"]);
    }
}

#[test]
fn schedule_lists_unserved_validators_with_zero_blocks() {
    let mg = mg_arg();
    let v = json(&[
        "schedule",
        "--metagraph",
        &mg,
        "--strategy",
        "stake",
        "--json",
    ]);
    let blocks: Vec<u64> = v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["blocks"].as_u64().unwrap())
        .collect();
    assert_eq!(blocks, vec![489, 183, 48, 0, 0]);
    // Default window: the one containing the snapshot's block 7300.
    assert_eq!(v["window"]["start"], 7200);
    assert_eq!(v["slots"].as_array().unwrap().len(), 3);
}

#[test]
fn tempo_is_shorthand_for_window_len() {
    let mg = mg_arg();
    let a = json(&["schedule", "--metagraph", &mg, "--tempo", "100", "--json"]);
    let b = json(&[
        "schedule",
        "--metagraph",
        &mg,
        "--window-len",
        "200",
        "--json",
    ]);
    assert_eq!(a, b);
    assert_eq!(a["window"]["len"], 200);
}

#[test]
fn filters_and_layouts() {
    let mg = mg_arg();
    let v = json(&[
        "schedule",
        "--metagraph",
        &mg,
        "--min-stake",
        "2500",
        "--deny",
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        "--layout",
        "interleaved",
        "--json",
    ]);
    let uids: Vec<u64> = v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, vec![0, 2, 3]);
    assert!(
        v["slots"].as_array().unwrap().len() > 3,
        "interleaved spreads blocks"
    );
    let with_miners = json(&[
        "schedule",
        "--metagraph",
        &mg,
        "--ignore-permits",
        "--max-validators",
        "6",
        "--json",
    ]);
    assert_eq!(with_miners["allocations"].as_array().unwrap().len(), 6);
}

#[test]
fn emission_reads_competitor_load_and_falls_back_with_a_note() {
    let mg = mg_arg();
    let v = json(&[
        "schedule",
        "--metagraph",
        &mg,
        "--strategy",
        "emission",
        "--json",
    ]);
    let blocks: Vec<u64> = v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["blocks"].as_u64().unwrap())
        .collect();
    assert_eq!(blocks.iter().sum::<u64>(), 720);
    assert!(
        blocks[1] > blocks[0],
        "the heavily contested top validator gets less: {blocks:?}"
    );
    // Miners without permits have no competitor_load: fallback, said on stderr.
    let o = run(&[
        "schedule",
        "--metagraph",
        &mg,
        "--strategy",
        "emission",
        "--ignore-permits",
    ]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("fell back to proportional"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schedule_table_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("gantt.svg");
    let mg = mg_arg();
    let o = run(&[
        "schedule",
        "--metagraph",
        &mg,
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("proportional schedule for netuid 2"),
        "{text}"
    );
    assert!(text.contains("[7200, 7636)"), "{text}");
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg"), "{drawing}");
    assert_eq!(drawing.matches("<title>uid").count(), 5, "one bar per slot");
}

#[test]
fn metagraph_from_stdin() {
    use std::io::Write;
    let mut child = bin()
        .args(["schedule", "--metagraph", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(example_metagraph()).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["allocations"].as_array().unwrap().len(), 5);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let good = std::fs::read_to_string(example_metagraph()).unwrap();
    let stake = write(
        "stake.json",
        &good.replace("\"stake_rao\": 8000000000000", "\"stake_rao\": \"8000\""),
    );
    let dup = write("dup.json", &good.replace("\"uid\": 3,", "\"uid\": 2,"));
    let trunc = write("trunc.json", &good[..good.len() / 2]);
    let empty = write("empty.json", "");
    let mg = mg_arg();
    let missing = dir
        .path()
        .join("missing.json")
        .to_string_lossy()
        .into_owned();

    assert_bad_input(&["schedule", "--metagraph", &missing], "missing.json");
    assert_bad_input(&["schedule", "--metagraph", &stake], "neurons[2].stake_rao");
    assert_bad_input(&["schedule", "--metagraph", &dup], "duplicate uid 2");
    assert_bad_input(&["schedule", "--metagraph", &trunc], "trunc.json");
    assert_bad_input(&["schedule", "--metagraph", &empty], "empty.json");
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--strategy", "magic"],
        "unknown strategy \"magic\"",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--window-len", "0"],
        "at least 1 block",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--tempo", "0"],
        "at least 1 block",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--min-blocks", "721"],
        "--min-blocks 721 is larger than the window",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--min-stake", "ten"],
        "--min-stake",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--min-stake", "1000000"],
        "no eligible validators",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--layout", "zigzag"],
        "unknown layout",
    );
    assert_bad_input(
        &["schedule", "--metagraph", &mg, "--deny", "not-an-address"],
        "--deny",
    );
    assert_bad_input(
        &[
            "schedule",
            "--metagraph",
            &mg,
            "--window-len",
            "5",
            "--tempo",
            "5",
        ],
        "cannot be used with",
    );
    assert_bad_input(
        &[
            "schedule",
            "--metagraph",
            &mg,
            "--window-start",
            "18446744073709551000",
        ],
        "runs past",
    );
    assert_bad_input(&["schedule"], "--metagraph");
    assert_bad_input(
        &["sim", "--strategies", "stake,bogus"],
        "unknown strategy \"bogus\"",
    );
    assert_bad_input(&["sim", "--windows", "0"], "windows");
    assert_bad_input(&["sim", "--validators", "0"], "validators");
    assert_bad_input(&["sim", "--metagraph", &dup], "duplicate uid 2");
    assert_bad_input(&["frobnicate"], "frobnicate");
}

#[test]
fn sim_replays_by_seed() {
    let args = [
        "sim",
        "--validators",
        "24",
        "--miners",
        "60",
        "--windows",
        "4",
        "--seed",
        "11",
        "--json",
        "--no-timing",
    ];
    let a = run(&args);
    let b = run(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout, "same seed, byte-identical output");
    let mut other = args.to_vec();
    other[8] = "12";
    assert_ne!(run(&other).stdout, a.stdout);
    let v: Value = serde_json::from_slice(&a.stdout).unwrap();
    let names: Vec<&str> = v["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stake", "equal", "proportional", "emission"]);
    for s in v["strategies"].as_array().unwrap() {
        assert!(s.get("mean_alloc_us").is_none());
        assert!(s["reward_per_compute"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn sim_table_metagraph_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sim.svg");
    let mg = mg_arg();
    let o = run(&[
        "sim",
        "--metagraph",
        &mg,
        "--miners",
        "20",
        "--windows",
        "3",
        "--strategies",
        "proportional,equal",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("5 validators, 20 miners, 3 windows"),
        "{text}"
    );
    assert!(text.contains("ALLOC µs"), "{text}");
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawing.contains("Jain fairness") && drawing.contains("proportional"),
        "{drawing}"
    );
}

#[test]
fn demo_runs_a_local_subnet_and_zeroes_the_cheater() {
    let o = run(&["demo", "--windows", "2", "--n", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("simulation"),
        "the chain is named a simulation: {text}"
    );
    assert!(text.contains("validator 0 -> miner 2: valid"), "{text}");
    assert!(
        text.contains(
            "\nAgreement: the honest miners run the same prover; their weights differ by "
        ) && text.contains("% (validator 0), ")
            && text.contains(" miner pairs the same way (among identical miners an order is within the spread).\n"),
        "{text}"
    );

    let v = json(&[
        "demo",
        "--json",
        "--windows",
        "2",
        "--n",
        "64",
        "--cheat-miner",
        "3",
    ]);
    let miners = v["miners"].as_array().unwrap();
    assert_eq!(miners.len(), 3);
    let cheater = miners.iter().find(|m| m["cheating"] == true).unwrap();
    assert_eq!(cheater["uid"], 3);
    assert_eq!(cheater["pow_passed"], 0);
    assert!(cheater["pow_failed"].as_u64().unwrap() >= 2);
    for m in miners.iter().filter(|m| m["cheating"] == false) {
        assert!(m["pow_passed"].as_u64().unwrap() >= 2, "{m}");
        assert_eq!(m["pow_failed"], 0, "{m}");
    }
    let validators = v["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 2);
    for val in validators {
        assert!(val["weights_set_at"].is_u64(), "{val}");
        for w in val["weights"].as_array().unwrap() {
            let weight = w["weight"].as_u64().unwrap();
            if w["uid"] == 3 {
                assert_eq!(weight, 0, "the cheater got weight: {val}");
            } else {
                assert!(weight > 0, "an honest miner got no weight: {val}");
            }
        }
    }
    // Every verdict against the cheater names the wrong row.
    for r in v["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["miner"] == 3)
    {
        assert!(r["verdict"].as_str().unwrap().contains("is wrong"), "{r}");
    }

    // --cheat-miner takes a uid of the MINER column: with 2 validators and
    // 3 miners, 2 to 4.
    for uid in ["1", "5"] {
        assert_bad_input(
            &["demo", "--cheat-miner", uid],
            &format!("--cheat-miner {uid}: not a miner's uid; the miners' uids are 2 to 4"),
        );
    }
    assert_bad_input(&["demo", "--n", "0"], "n must");
    assert_bad_input(&["demo", "--strategy", "nope"], "nope");
}

#[test]
fn help_teaches() {
    let o = run(&["schedule", "--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for needle in [
        "Examples:",
        "--tempo",
        "--min-blocks",
        "proportional",
        "interleaved",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from schedule --help"
        );
    }
    let o = run(&["--help"]);
    assert!(o.status.success() && stdout(&o).contains("Exit codes"));
}

#[test]
fn closed_stdout_is_not_an_error() {
    let mut child = bin()
        .args([
            "schedule",
            "--metagraph",
            &mg_arg(),
            "--layout",
            "interleaved",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}
