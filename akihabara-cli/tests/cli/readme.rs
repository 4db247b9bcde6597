//! The README's console examples: every ```console block is marked, just
//! before it, either `<!-- tested -->` (each `$ akihabara …` command in it
//! is run from the repository root and its output must match the lines
//! that follow it, timings aside) or `<!-- illustrative -->` (it needs a
//! chain, a wallet, a GPU or a time, or its output is random).

use std::path::{Path, PathBuf};

use super::{bin, stderr};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One console block: its first line's number, whether it is tested, and
/// its commands with the output each shows.
struct Block {
    line: usize,
    tested: bool,
    commands: Vec<(String, Vec<String>)>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```console" {
            i += 1;
            continue;
        }
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim())
            .unwrap_or("");
        let tested = match marker {
            "<!-- tested -->" => true,
            "<!-- illustrative -->" => false,
            _ => panic!(
                "README.md line {}: a console block needs <!-- tested --> or \
                 <!-- illustrative --> on the line before it, not {marker:?}",
                i + 1
            ),
        };
        let start = i + 1;
        let mut commands: Vec<(String, Vec<String>)> = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            let l = lines[i];
            if let Some(cmd) = l.strip_prefix("$ ") {
                // A trailing `\` continues the command on the next line.
                let mut cmd = cmd.to_owned();
                while cmd.ends_with('\\') && i + 1 < lines.len() {
                    cmd.pop();
                    i += 1;
                    cmd = format!("{} {}", cmd.trim_end(), lines[i].trim());
                }
                commands.push((cmd, Vec::new()));
            } else if let Some((_, shown)) = commands.last_mut() {
                shown.push(l.to_owned());
            }
            i += 1;
        }
        out.push(Block {
            line: start,
            tested,
            commands,
        });
    }
    out
}

/// Output as compared: trailing spaces dropped, and a number before `ms`,
/// `µs` or `s` (a timing) replaced by `<t>`.
fn normalized(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let mut out = String::new();
            let words: Vec<&str> = l.split(' ').collect();
            for (k, w) in words.iter().enumerate() {
                let next = words.get(k + 1).copied().unwrap_or("");
                let timing = w.parse::<f64>().is_ok()
                    && ["ms", "µs", "s", "ms)", "s)", "ms,", "s,"].contains(&next);
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(if timing { "<t>" } else { w });
            }
            out.trim_end().to_owned()
        })
        .collect()
}

#[test]
fn readme_console_examples_are_marked_and_the_tested_ones_match() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let all = blocks(&readme);
    let tested: Vec<&Block> = all.iter().filter(|b| b.tested).collect();
    assert!(tested.len() >= 3, "{} tested blocks", tested.len());
    for b in tested {
        for (cmd, shown) in &b.commands {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            assert_eq!(words.first(), Some(&"akihabara"), "line {}: {cmd}", b.line);
            let o = bin()
                .args(&words[1..])
                .current_dir(root())
                .output()
                .expect("run akihabara");
            assert!(
                o.status.success(),
                "README line {}: `{cmd}`: {}",
                b.line,
                stderr(&o)
            );
            let got = normalized(&String::from_utf8_lossy(&o.stdout));
            let want = normalized(&shown.join("\n"));
            assert_eq!(
                got, want,
                "README line {}: `{cmd}` prints something else than the README shows",
                b.line
            );
        }
    }
}
