//! The README's offline quickstart, run verbatim: `config init --offline`,
//! then `miner run` and `validator run` on the simulated chain it writes,
//! until the validator has a passing proof-of-work round and weights.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::axon::Peer;
use super::{bin, stderr, stdout};

/// The commands of the README block after `<!-- offline-quickstart -->`,
/// each split into its arguments (without the leading `akihabara` and any
/// trailing `# comment`).
fn readme_commands() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let (_, rest) = readme
        .split_once("<!-- offline-quickstart -->")
        .expect("the README marks its offline quickstart");
    let block = rest
        .split_once("```")
        .and_then(|(_, b)| b.split_once("```"))
        .map(|(b, _)| b)
        .expect("a fenced block after the marker");
    block
        .lines()
        .map(|l| l.split_once('#').map_or(l, |(c, _)| c).trim())
        .filter(|l| !l.is_empty() && !l.starts_with("console") && !l.starts_with("sh"))
        .map(|l| {
            let words: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
            assert_eq!(words[0], "akihabara", "{l}");
            words[1..].to_vec()
        })
        .collect()
}

#[test]
fn the_readme_offline_quickstart_runs_as_written() {
    let cmds = readme_commands();
    assert_eq!(cmds.len(), 3, "init, miner run, validator run: {cmds:?}");
    assert_eq!(&cmds[1][..2], ["miner", "run"]);
    assert_eq!(&cmds[2][..2], ["validator", "run"]);
    let dir = tempfile::tempdir().unwrap();
    let here = |args: &[String]| {
        let mut c = bin();
        c.args(args).current_dir(dir.path());
        c.env_remove("AKIHABARA_WALLET_PASSWORD");
        c
    };
    let o = here(&cmds[0]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("wrote an offline subnet to "),
        "{}",
        stdout(&o)
    );
    // A second init into the same place refuses and writes nothing.
    let again = here(&cmds[0]).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("exists; not overwriting it"),
        "{}",
        stderr(&again)
    );

    let miner = Peer::spawn(here(&cmds[1]));
    let ready = miner.event("ready");
    assert_eq!(ready["uid"], 1, "{ready}");
    let validator = Peer::spawn(here(&cmds[2]));
    let ready = validator.event("ready");
    assert_eq!(ready["uid"], 0, "{ready}");
    // A round that challenged the miner and passed (rounds before the
    // miner's slot opens may challenge nobody), then weights, all on the
    // one miner. The README promises both within a minute; the bounds here
    // only stop a hung run (timings belong in benchmarks).
    let round = validator.event_where("round", Duration::from_secs(120), |r| {
        r["challenged"].as_u64() > Some(0)
    });
    assert_eq!(round["passed"], round["challenged"], "{round}");
    let w = validator.event_where("weights", Duration::from_secs(120), |_| true);
    assert_eq!(
        (&w["how"], &w["uids"], &w["weights"]),
        (&json!("set"), &json!([1]), &json!([65535])),
        "{w}"
    );
    let recorded = std::fs::read_to_string(
        dir.path()
            .join("akihabara-offline/validator-state/simulated-chain.jsonl"),
    )
    .unwrap();
    assert!(recorded.contains("set_weights"), "{recorded}");
    // Both stop by their own PIDs when dropped, also on a failed assert.
    drop(validator);
    drop(miner);
}
