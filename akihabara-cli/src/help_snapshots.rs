//! Every command's `--help`, compared with the snapshots in `tests/help/`
//! (one file per command path, e.g. `wallet-create.txt`). A change to a flag,
//! a help line or the order of either shows up here;
//! `AKIHABARA_BLESS=1 cargo test -p akihabara-cli --bins help_snapshots`
//! rewrites the files after a change that is meant.

use std::path::{Path, PathBuf};

/// Help is wrapped at a fixed width, whatever terminal runs the test.
const WIDTH: usize = 100;

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/help")
}

/// Every command path below the root, the root first (`[]`, `["wallet"]`,
/// `["wallet", "create"]`, …), without clap's own `help` subcommand.
fn paths(cmd: &clap::Command, prefix: &[String], all: &mut Vec<Vec<String>>) {
    all.push(prefix.to_vec());
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        paths(sub, &path, all);
    }
}

/// What `akihabara PATH… --help` prints.
fn render(path: &[String]) -> String {
    let argv = std::iter::once("akihabara".to_owned())
        .chain(path.iter().cloned())
        .chain(std::iter::once("--help".to_owned()));
    match crate::args::command()
        .term_width(WIDTH)
        .try_get_matches_from(argv)
    {
        Ok(_) => panic!("`{} --help` did not print help", path.join(" ")),
        Err(e) => {
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
            e.render().to_string()
        }
    }
}

fn file_name(path: &[String]) -> String {
    if path.is_empty() {
        "akihabara.txt".to_owned()
    } else {
        format!("{}.txt", path.join("-"))
    }
}

#[test]
fn help_snapshots_match() {
    let dir = snapshot_dir();
    let bless = std::env::var_os("AKIHABARA_BLESS").is_some_and(|v| v == "1");
    let mut all = Vec::new();
    paths(&crate::args::command(), &[], &mut all);
    let mut expected: Vec<String> = all.iter().map(|p| file_name(p)).collect();
    expected.sort();
    let mut failures = Vec::new();
    for path in &all {
        let text = render(path);
        let file = dir.join(file_name(path));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(snapshot) if snapshot == text => {}
            Ok(snapshot) => failures.push(format!(
                "`akihabara {} --help` changed:\n--- {}\n{snapshot}\n+++ now\n{text}",
                path.join(" "),
                file.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", file.display())),
        }
    }
    // A snapshot with no command left is a command that disappeared.
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    on_disk.sort();
    if bless {
        for stale in on_disk.iter().filter(|n| !expected.contains(n)) {
            std::fs::remove_file(dir.join(stale)).unwrap();
        }
        return;
    }
    for stale in on_disk.iter().filter(|n| !expected.contains(n)) {
        failures.push(format!("{stale}: no such command any more"));
    }
    assert!(
        failures.is_empty(),
        "{}\n\n(AKIHABARA_BLESS=1 rewrites the snapshots)",
        failures.join("\n\n")
    );
}
