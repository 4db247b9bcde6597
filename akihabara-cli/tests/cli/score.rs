//! `akihabara score`: the example files, state across epochs, bad input.

use super::{assert_bad_input, example_metagraph, run, stderr, stdout};
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn score(extra: &[&str], measurements: &Path) -> std::process::Output {
    let mg = example_metagraph();
    let mut args = vec![
        "score",
        "--metagraph",
        mg.to_str().unwrap(),
        "--measurements",
        measurements.to_str().unwrap(),
    ];
    args.extend(extra);
    run(&args)
}

#[test]
fn example_scores_and_weights() {
    let m = example("measurements.json");
    let o = score(&["--scorer", "gpu-table", "--json"], &m);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // 8 x H100 80GB HBM3, allocated: 3.30 * 8 * 50 / (8 * 4.00) * 2 = 82.5.
    assert_eq!(v["scores"]["3"], 82.5);
    assert_eq!(v["weights"]["uids"][0], 3);
    assert_eq!(v["weights"]["weights"][0], 65535);
    assert!(v["warnings"][0].as_str().unwrap().contains("Tesla K80"));

    let cfg = example("scoring.toml");
    let o = score(
        &["--scorer", "composite", "--config", cfg.to_str().unwrap()],
        &m,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("composite scorer"));
}

#[test]
fn state_keeps_the_ema_and_penalties_across_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let cfg = example("scoring.toml");
    let m = example("measurements.json");
    let args = [
        "--scorer",
        "pow",
        "--config",
        cfg.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--json",
    ];
    let first: serde_json::Value = serde_json::from_slice(&score(&args, &m).stdout).unwrap();
    let second: serde_json::Value = serde_json::from_slice(&score(&args, &m).stdout).unwrap();
    // uid 3: its verified 1.2e15 ops/s each epoch (the class it names is
    // not read), so the EMA stays at 1.2e15.
    assert_eq!(first["scores"]["3"], 1.2e15);
    assert_eq!(second["scores"]["3"], 1.2e15);
    // uid 5 failed its proof: 0 both times, and its penalty is on file.
    assert_eq!(second["scores"]["5"], 0.0);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["penalties"]["penalty"]["5"], 1.0);
}

#[test]
fn bad_score_input_exits_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let unknown = write("unknown.json", r#"{"miners": [{"uid": 99}]}"#);
    let dup = write("dup.json", r#"{"miners": [{"uid": 1}, {"uid": 1}]}"#);
    let negative = write(
        "neg.json",
        r#"{"miners": [{"uid": 1, "executors": [{"class": "h100", "worked_seconds": -5}]}]}"#,
    );
    let typo = write("typo.json", r#"{"miners": [{"uid": 1, "gpu": []}]}"#);
    let bad_table = write("bad.toml", "[gpu_table]\nH100 = -1.0\n");
    let ok = example("measurements.json");
    for (extra, file, needle) in [
        (vec![], &unknown, "uid 99 is not in the metagraph"),
        (vec![], &dup, "uid 1 is measured twice"),
        (vec![], &negative, "worked_seconds = -5"),
        (vec![], &typo, "unknown field"),
        (
            vec!["--config", bad_table.to_str().unwrap()],
            &ok,
            "finite and non-negative",
        ),
        (vec!["--scorer", "magic"], &ok, "no scorer named"),
        (
            vec!["--scorer", "hardware-class"],
            &ok,
            "needs a [hardware_classes]",
        ),
    ] {
        let mg = example_metagraph();
        let mut args = vec![
            "score",
            "--metagraph",
            mg.to_str().unwrap(),
            "--measurements",
            file.to_str().unwrap(),
        ];
        args.extend(extra);
        assert_bad_input(&args, needle);
    }
    let empty = write(
        "empty.json",
        r#"{"version": 1, "netuid": 1, "block": 1, "neurons": []}"#,
    );
    assert_bad_input(
        &[
            "score",
            "--metagraph",
            empty.to_str().unwrap(),
            "--measurements",
            ok.to_str().unwrap(),
        ],
        "the metagraph is empty",
    );
}
