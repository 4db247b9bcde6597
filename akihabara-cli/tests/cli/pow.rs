//! `akihabara pow`: prove, verify proof files (good, tampered, another
//! seed's), selftest, and every bad input with exit code 2.

use std::process::Command;

use super::{assert_bad_input, run, stderr, stdout};

fn seed(b: u8) -> String {
    format!("{b:02x}").repeat(32)
}

#[test]
fn prove_then_verify_a_proof_file() {
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("proof.json");
    let p = proof.to_str().unwrap();
    let o = run(&[
        "pow",
        "prove",
        "--seed",
        &seed(1),
        "--n",
        "70",
        "--count",
        "3",
        "--json",
        "--out",
        p,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 70);
    assert_eq!(v["count"], 3);
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["root"].as_str().unwrap().len(), 64);
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);

    // Same seed, same root (deterministic), and the file verifies.
    let again = run(&[
        "pow",
        "prove",
        "--seed",
        &seed(1),
        "--n",
        "70",
        "--count",
        "3",
        "--json",
    ]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["root"], w["root"]);
    let ok = run(&["pow", "verify", "--proof", p, "--samples", "40", "--json"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let r: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(r["valid"], true);
    assert_eq!(r["samples"], 40);

    // A proof of another seed than the one asked for is rejected (exit 1,
    // as the help says), not a usage error.
    let other = run(&["pow", "verify", "--proof", p, "--seed", &seed(2)]);
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    assert_eq!(
        stdout(&other).trim(),
        format!("REJECTED: {p} proves seed {}, not {}", seed(1), seed(2))
    );
    assert_eq!(
        stderr(&other).trim(),
        format!(
            "error: the proof is invalid: {p} proves seed {}, not {}",
            seed(1),
            seed(2)
        )
    );
    let other = run(&["pow", "verify", "--proof", p, "--seed", &seed(2), "--json"]);
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    let r: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(r["valid"], false, "{r}");

    // A file claiming seed 2 with seed 1's leaves: its rows do not recompute.
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    file["challenge"]["seed"] = seed(2).into();
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, file.to_string()).unwrap();
    let bad = run(&[
        "pow",
        "verify",
        "--proof",
        forged.to_str().unwrap(),
        "--samples",
        "5",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stdout(&bad).contains("REJECTED")
            && stdout(&bad).contains("does not hash to its committed leaf"),
        "{}",
        stdout(&bad)
    );

    // One changed leaf: the leaves no longer build the root.
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    let leaves = file["leaves"].as_str().unwrap().to_owned();
    // Change the first base64 digit (the first 6 bits of leaf 0).
    let first = if leaves.starts_with('A') { "B" } else { "A" };
    let flipped = format!("{first}{}", &leaves[1..]);
    file["leaves"] = flipped.into();
    std::fs::write(&forged, file.to_string()).unwrap();
    let bad = run(&["pow", "verify", "--proof", forged.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stdout(&bad).contains("do not build the committed root"),
        "{}",
        stdout(&bad)
    );

    // Unreadable files are usage errors naming the file.
    std::fs::write(&forged, "{not json").unwrap();
    assert_bad_input(
        &["pow", "verify", "--proof", forged.to_str().unwrap()],
        "forged.json",
    );
    assert_bad_input(
        &["pow", "verify", "--proof", "/nonexistent/proof.json"],
        "/nonexistent/proof.json",
    );
}

#[test]
fn selftest_catches_the_tampered_row() {
    let o = run(&["pow", "selftest", "--n", "48", "--count", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("verified on the CPU: valid"), "{out}");
    assert!(out.contains("changed: rejected"), "{out}");
    assert!(out.contains("committed in the tree: rejected"), "{out}");
    assert!(out.contains("selftest passed"));
}

#[test]
fn bad_pow_input_exits_2_with_a_reason() {
    let s = seed(3);
    for (args, needle) in [
        (vec!["--seed", "xyz", "--n", "8"], "invalid seed"),
        (vec!["--seed", &s[..62], "--n", "8"], "invalid seed"),
        (vec!["--seed", &s, "--n", "0"], "n must be at least 1"),
        (vec!["--seed", &s, "--n", "131072"], "131071"),
        (
            vec!["--seed", &s, "--n", "8", "--count", "0"],
            "count must be at least 1",
        ),
        (vec!["--seed", &s, "--n", "-5"], "-5"),
    ] {
        let mut full = vec!["pow", "prove"];
        full.extend(args.iter().copied());
        assert_bad_input(&full, needle);
    }
    // Too much memory: refused before allocating; stderr also has the progress line.
    let o = run(&[
        "pow", "prove", "--seed", &s, "--n", "131071", "--count", "65536",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: the challenge needs"),
        "{}",
        stderr(&o)
    );
    assert_bad_input(
        &["pow", "verify", "--proof", "x", "--samples", "0"],
        "--samples",
    );
}

#[test]
fn bench_prints_both_tables() {
    let o = run(&[
        "pow",
        "bench",
        "--n",
        "32,48",
        "--verify-n",
        "64",
        "--samples",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("measured CPU peak"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("| 32 | 1 |")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("| 48 | 1 |")), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("| 64 | 64 | 4 |")),
        "{out}"
    );
}

/// Long work shows progress on a terminal and nothing when piped: under a
/// pseudo-terminal (`script`, util-linux) `pow prove` draws its spinner and
/// `demo` its bar; piped, standard error holds the one line that says what
/// is proved, and no terminal codes.
#[test]
fn progress_shows_on_a_terminal_and_stays_quiet_when_piped() {
    let s = seed(9);
    let piped = run(&["pow", "prove", "--seed", &s, "--n", "256", "--count", "2"]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    let err = stderr(&piped);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("proving 2 product(s) of 256x256"),
        "{err:?}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");

    if Command::new("script").arg("--version").output().is_err() {
        super::peers::missing::<()>("no `script` (util-linux) to run under a terminal");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_akihabara");
    let on_tty = |args: &str| {
        let o = Command::new("script")
            .args(["-qec", &format!("{bin} {args}"), "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script");
        assert!(
            o.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // A spinner line: a braille frame, the work, the time so far, and the
    // line cleared when it is done.
    let out = on_tty(&format!("pow prove --seed {s} --n 768 --count 1"));
    assert!(out.contains(" proving ("), "{out:?}");
    assert!(out.contains("\u{1b}[2K"), "{out:?}");
    let out = on_tty("demo --windows 1 --n 64 --count 1 --samples 4");
    assert!(out.contains("window 1 of 1 ["), "{out:?}");
    assert!(out.contains(" proofs, "), "{out:?}");
}
