//! The fuzz targets' kept corpora (`fuzz/corpus/TARGET`) and seeds
//! (`fuzz/seeds/TARGET`), replayed as regression inputs, plus the empty
//! input, as `fuzz/run-all.sh --regress` replays them under libFuzzer.
//!
//! Each target's source file under `fuzz/fuzz_targets/` is compiled here as
//! a module, with a `fuzz_target!` that turns its body into `fn run(&[u8])`:
//! the code replayed is the code fuzzed, built with this workspace's debug
//! profile, so CI needs neither cargo-fuzz nor a second build of every
//! dependency with coverage instrumentation. The campaign itself
//! (`fuzz/run-all.sh MINUTES`) still runs under cargo-fuzz. (The `configs`
//! target compiles the CLI's config module from its source, so that
//! module's unit tests run here a second time.)

// `btauth` and `headers` each load `common/header_list.rs`: in the fuzz
// crate every target is a crate of its own.
#![allow(clippy::duplicate_mod)]

// The fuzz targets' `use libfuzzer_sys::fuzz_target;` finds this crate's.
extern crate self as libfuzzer_sys;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The CLI's `exit` module, as the `configs` target stubs it: its config
/// module tags errors with it.
mod exit {
    pub fn bad_input(e: anyhow::Error) -> anyhow::Error {
        e
    }
}

/// Declares one module per target (its source file under
/// `fuzz/fuzz_targets/`) and the list of them.
macro_rules! targets {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[allow(unused_attributes, dead_code)]
            #[path = $file]
            mod $name;
        )*
        const TARGETS: &[(&str, fn(&[u8]))] = &[$((stringify!($name), $name::run)),*];
        /// Each module's name and the file it was compiled from.
        const FILES: &[(&str, &str)] = &[$((stringify!($name), $file)),*];
    };
}

targets!(
    btauth => "../../fuzz/fuzz_targets/btauth.rs",
    configs => "../../fuzz/fuzz_targets/configs.rs",
    fleet => "../../fuzz/fuzz_targets/fleet.rs",
    headers => "../../fuzz/fuzz_targets/headers.rs",
    keyfile => "../../fuzz/fuzz_targets/keyfile.rs",
    measurements => "../../fuzz/fuzz_targets/measurements.rs",
    nacl => "../../fuzz/fuzz_targets/nacl.rs",
    pow_proof => "../../fuzz/fuzz_targets/pow_proof.rs",
    pystr => "../../fuzz/fuzz_targets/pystr.rs",
    scale => "../../fuzz/fuzz_targets/scale.rs",
    snapshot => "../../fuzz/fuzz_targets/snapshot.rs",
    ss58 => "../../fuzz/fuzz_targets/ss58.rs",
    synapses => "../../fuzz/fuzz_targets/synapses.rs",
    vault => "../../fuzz/fuzz_targets/vault.rs",
);

/// libfuzzer-sys's macro, reduced to what the replay needs. Defined after
/// the targets, so they reach it through their own `use` (by path), not by
/// textual scope.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        pub fn run($data: &[u8]) $body
    };
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file in `fuzz/corpus/TARGET` and `fuzz/seeds/TARGET`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "seeds"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `run` on the empty input and every kept input of `target`; returns
/// how many ran, or the inputs that panicked.
fn replay(target: &str, run: fn(&[u8])) -> Result<usize, Vec<String>> {
    let mut cases = vec![("the empty input".to_owned(), Vec::new())];
    for path in inputs(target) {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cases.push((path.display().to_string(), bytes));
    }
    let mut failed = Vec::new();
    for (name, bytes) in &cases {
        if catch_unwind(AssertUnwindSafe(|| run(bytes))).is_err() {
            failed.push(name.clone());
        }
    }
    if failed.is_empty() {
        Ok(cases.len())
    } else {
        Err(failed)
    }
}

#[test]
fn every_kept_input_replays_without_a_panic() {
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        match replay(target, *run) {
            Ok(n) => println!("{target}: {n} inputs replayed"),
            Err(bad) => failures.push(format!("{target}: {}", bad.join(", "))),
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that panic a fuzz target:\n{}",
        failures.join("\n")
    );
}

/// A target added to `fuzz/Cargo.toml` but not here would never be
/// replayed in CI.
#[test]
fn every_fuzz_target_is_replayed() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "akihabara-fuzz")
        .collect();
    declared.sort_unstable();
    let mut here: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    here.sort_unstable();
    assert_eq!(declared, here);
    // And each module is its own target's source, so no corpus is replayed
    // through another target's code.
    for (name, file) in FILES {
        assert!(
            file.ends_with(&format!("/fuzz_targets/{name}.rs")),
            "{name}: {file}"
        );
    }
}

/// The replay notices a target that panics and names the input: a stand-in
/// target that panics on the empty input only, fed btauth's inputs.
#[test]
fn a_panicking_input_is_reported_by_name() {
    fn picky(data: &[u8]) {
        assert!(data != b"", "the empty input");
    }
    let err = replay("btauth", picky).expect_err("the empty input panics");
    assert_eq!(err, ["the empty input"]);
    // And the corpus is really read: btauth keeps a corpus.
    let n = replay("btauth", |_| {}).expect("no panic");
    assert!(n > 100, "btauth's corpus has {n} inputs with the empty one");
}
