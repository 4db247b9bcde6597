//! Real peers for tests: found or built on demand, skipped with a printed
//! reason when unavailable, and a hard failure under AKIHABARA_REQUIRE_PEERS=1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Whether a missing peer must fail the test (set by `.ci/run`).
pub fn required() -> bool {
    std::env::var("AKIHABARA_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports a missing peer: prints why and returns `None`, or panics when peers are required.
pub fn missing<T>(reason: &str) -> Option<T> {
    assert!(
        !required(),
        "required peer unavailable (AKIHABARA_REQUIRE_PEERS=1): {reason}"
    );
    // Straight to the terminal: libtest captures `eprintln!`, and a skip
    // must be seen in the run's output, not pass silently.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
    None
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_dir() -> PathBuf {
    match std::env::var_os("AKIHABARA_PEERS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/akihabara-peers"),
    }
}

static BUILD: Mutex<()> = Mutex::new(());

/// The `python` of the venv named `name` in `.ci/python-peers`, built if needed.
pub fn python(name: &str) -> Option<PathBuf> {
    let spec = std::fs::read_to_string(repo_root().join(".ci/python-peers")).ok()?;
    let Some(line) = spec
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(name))
    else {
        return missing(&format!("no peer {name:?} in .ci/python-peers"));
    };
    let mut fields = line.split_whitespace().skip(1);
    let size = fields.next().unwrap_or("?");
    let requirements: Vec<&str> = fields.collect();
    let dir = peers_dir().join(name);
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    // Say where a venv goes and how large it is before building it (once).
    let ready = std::fs::read_to_string(dir.join(".akihabara-ready")).unwrap_or_default();
    if ready.trim() != requirements.join(" ") {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "building the Python venv {} ({}, about {size} on disk, once; \
             AKIHABARA_PEERS_DIR puts it elsewhere)",
            dir.display(),
            requirements.join(" ")
        );
    }
    let out = Command::new("bash")
        .arg(repo_root().join(".ci/python-venv.sh"))
        .arg(&dir)
        .args(&requirements)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(dir.join("bin/python")),
        Ok(o) => missing(&format!(
            "could not build the {name} venv ({}): {}",
            requirements.join(" "),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => missing(&format!("could not run bash to build the {name} venv: {e}")),
    }
}

/// Runs a peer script under `python`, returning its stdout (panics with its stderr on failure).
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let o = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
