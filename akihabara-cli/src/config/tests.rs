//! The loader's layering and the sections' checks.

use akihabara_core::{AccountId, Tao};

use super::*;

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).expect("write");
    (dir, p)
}

#[test]
fn templates_parse_to_their_configs() {
    let (_d, p) = write(MINER_TEMPLATE);
    let m: MinerConfig = load(&p, [], &[]).expect("miner template");
    assert_eq!((m.chain.netuid, m.axon.port), (27, 8091));
    assert_eq!(m.chain.timeout, Duration::from_secs(30));
    assert!(
        !m.chain.sign_unpinned_calls,
        "only pinned calls are signed by default"
    );
    let (_d, p) = write(VALIDATOR_TEMPLATE);
    let v: ValidatorConfig = load(&p, [], &[]).expect("validator template");
    assert_eq!(v.scoring.reference_ops, None);
    assert_eq!(v.pow.timeout, Duration::from_secs(60));
    assert_eq!(v.pow.round_deadline, Duration::from_secs(30 * 60));
}

#[test]
fn environment_then_flags_override_the_file() {
    let (_d, p) = write(MINER_TEMPLATE);
    let env = [
        ("AKIHABARA_CHAIN__NETUID".to_owned(), "3".to_owned()),
        ("AKIHABARA_AXON__PORT".to_owned(), "9000".to_owned()),
        ("AKIHABARA_SCHEDULE__POLL".to_owned(), "2s".to_owned()),
        ("AKIHABARA_REQUIRE_PEERS".to_owned(), "1".to_owned()),
    ];
    let m: MinerConfig = load(&p, env, &["axon.port=9001".into()]).expect("load");
    assert_eq!(m.chain.netuid, 3);
    assert_eq!(m.axon.port, 9001, "the flag beats the environment");
    assert_eq!(m.schedule.poll, Duration::from_secs(2));
    let m: MinerConfig = load(&p, [], &["chain.sign_unpinned_calls=true".into()]).expect("opt in");
    assert!(m.chain.sign_unpinned_calls);
}

#[test]
fn errors_name_the_key_and_where_it_came_from() {
    let err = |text: &str, env: Vec<(String, String)>, sets: &[String]| {
        let (_d, p) = write(text);
        format!("{:#}", load::<MinerConfig>(&p, env, sets).expect_err("bad"))
    };
    let base = MINER_TEMPLATE;
    let e = err(&format!("{base}\n[extra]\nx = 1\n"), vec![], &[]);
    assert!(e.contains("unknown field `extra`"), "{e}");
    let e = err(
        &base.replace("min_blocks = 40", "min_blocks = 40\nmin_blokcs = 3"),
        vec![],
        &[],
    );
    assert!(
        e.contains("`schedule.min_blokcs`") && e.contains("unknown field `min_blokcs`"),
        "{e}"
    );
    let e = err(base, vec![], &["chain.netuid=-1".into()]);
    assert!(
        e.contains("`chain.netuid`") && e.contains("--set chain.netuid"),
        "{e}"
    );
    let env = vec![("AKIHABARA_CHAIN__TIMEOUT".into(), "soon".into())];
    let e = err(base, env, &[]);
    assert!(
        e.contains("`chain.timeout`") && e.contains("AKIHABARA_CHAIN__TIMEOUT"),
        "{e}"
    );
    let e = err("[chain]\nnetwork = \"local\"\n", vec![], &[]);
    assert!(e.contains("missing field `netuid`"), "{e}");
    let e = err("[chain\n", vec![], &[]);
    assert!(e.contains("c.toml"), "{e}");
    let e = err(base, vec![], &["nokey".into()]);
    assert!(e.contains("expected section.key=value"), "{e}");
}

const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
const BOB: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";

#[test]
fn the_miner_template_has_the_policy_defaults() {
    let (_d, p) = write(MINER_TEMPLATE);
    let m: MinerConfig = load(&p, [], &[]).expect("miner template");
    assert_eq!(m.schedule.min_blocks, 40);
    assert!(m.schedule.enforce_slots);
    assert_eq!(m.schedule.slot_grace, 2);
    let p = &m.policy;
    assert_eq!(
        (p.deny_hotkeys.len(), p.allow_hotkeys.len()),
        (0, 0),
        "{p:?}"
    );
    assert_eq!((p.deny_coldkeys.len(), p.allow_coldkeys.len()), (0, 0));
    assert_eq!(p.min_stake, Tao::ZERO);
    assert!(p.require_permit);
    assert!(m.jobs.max_duration.is_empty());
    assert_eq!((m.jobs.only_listed, m.jobs.script.as_ref()), (false, None));
    // Sections left out take the same defaults.
    let (_d, p) = write("[chain]\nnetwork = \"local\"\nnetuid = 1\n[state]\ndir = \"/x\"\n");
    let m: MinerConfig = load(&p, [], &[]).expect("minimal");
    assert_eq!(m.schedule.min_blocks, 40);
    assert!(m.policy.require_permit && m.schedule.enforce_slots);
}

#[test]
fn policy_and_jobs_sections_parse() {
    let text = MINER_TEMPLATE
        .replace(
            "deny_hotkeys = []",
            &format!("deny_hotkeys = [\"{ALICE}\"]"),
        )
        .replace(
            "allow_coldkeys = []",
            &format!("allow_coldkeys = [\"{BOB}\", \"{ALICE}\"]"),
        )
        .replace("min_stake = 0", "min_stake = 1000.5")
        .replace("require_permit = true", "require_permit = false")
        .replace(
            "# max_duration = { cpu = \"2h\", h100 = \"30m\" }",
            "max_duration = { cpu = \"2h\", h100 = \"30m\" }",
        )
        .replace("# script = ", "script = ")
        .replace("# script_timeout = \"5s\"", "script_timeout = \"2s\"");
    let (_d, p) = write(&text);
    let m: MinerConfig = load(&p, [], &[]).expect("policy");
    let alice: AccountId = ALICE.parse().expect("alice");
    let bob: AccountId = BOB.parse().expect("bob");
    assert_eq!(m.policy.deny_hotkeys, vec![alice]);
    assert_eq!(m.policy.allow_coldkeys, vec![bob, alice]);
    assert_eq!(
        m.policy.min_stake.to_rao(),
        akihabara_core::Rao(1_000_500_000_000)
    );
    assert!(!m.policy.require_permit);
    let max: Vec<(String, Duration)> = m
        .jobs
        .max_duration
        .iter()
        .map(|(k, v)| (k.clone(), **v))
        .collect();
    assert_eq!(
        max,
        [
            ("cpu".to_owned(), Duration::from_secs(7200)),
            ("h100".to_owned(), Duration::from_secs(1800))
        ]
    );
    assert_eq!(
        m.jobs.script,
        Some(PathBuf::from("/etc/akihabara/accept-job"))
    );
    assert_eq!(m.jobs.script_timeout, Some(Duration::from_secs(2)));
    // min_stake from a flag (a number) or as a string, exact to the rao.
    let (_d, p) = write(MINER_TEMPLATE);
    let m: MinerConfig = load(&p, [], &["policy.min_stake=0.000000001".into()]).expect("one rao");
    assert_eq!(m.policy.min_stake.to_rao(), akihabara_core::Rao(1));
    let m: MinerConfig = load(&p, [], &["policy.min_stake=\"12\"".into()]).expect("text");
    assert_eq!(
        m.policy.min_stake.to_rao(),
        akihabara_core::Rao(12_000_000_000)
    );
}

#[test]
fn bad_policy_values_name_their_key() {
    let err = |sets: &[&str]| {
        let (_d, p) = write(MINER_TEMPLATE);
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        format!("{:#}", load::<MinerConfig>(&p, [], &sets).expect_err("bad"))
    };
    assert_eq!(
        err(&[&format!(
            "policy.deny_hotkeys=[\"{ALICE}\", \"5Gnot-an-address\"]"
        )]),
        "config key `policy.deny_hotkeys[1]` (from --set policy.deny_hotkeys): \
         invalid SS58 address \"5Gnot-an-address\": not base58"
    );
    assert_eq!(
        err(&["policy.min_stake=-1"]),
        "config key `policy.min_stake` (from --set policy.min_stake): \
         invalid TAO amount \"-1\": expected a non-negative decimal such as 1000 or 0.5"
    );
    assert_eq!(
        err(&["policy.min_stake=0.0000000001"]),
        "config key `policy.min_stake` (from --set policy.min_stake): \
         TAO amount \"0.0000000001\" has more than 9 decimal places (1 rao = 0.000000001 TAO)"
    );
    assert_eq!(
        err(&["policy.allow_hotkey=[]"]),
        "config key `policy.allow_hotkey` (from --set policy.allow_hotkey): unknown field \
         `allow_hotkey`, expected one of `deny_hotkeys`, `allow_hotkeys`, `deny_coldkeys`, \
         `allow_coldkeys`, `min_stake`, `require_permit`"
    );
    assert_eq!(
        err(&["jobs.max_duration.h100=soon"]),
        "config key `jobs.max_duration.h100` (from --set jobs.max_duration.h100): \
         invalid value: string \"soon\", expected a duration"
    );
}

#[test]
fn a_config_file_is_bounded_and_must_be_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.toml");
    let line = "# padding\n".repeat(1024);
    let text = line.repeat(usize::try_from(MAX_CONFIG_BYTES).expect("fits") / line.len() + 1);
    std::fs::write(&big, format!("{MINER_TEMPLATE}\n{text}")).expect("write");
    let e = format!(
        "{:#}",
        load::<MinerConfig>(&big, [], &[]).expect_err("too big")
    );
    assert!(
        e.contains("cannot read the config file") && e.contains("more than the 1048576 allowed"),
        "{e}"
    );
    let binary = dir.path().join("bin.toml");
    std::fs::write(&binary, b"[chain]\nnetwork = \"\xff\"\n").expect("write");
    let e = format!(
        "{:#}",
        load::<MinerConfig>(&binary, [], &[]).expect_err("not text")
    );
    assert!(e.ends_with("not UTF-8 text (byte 19)"), "{e}");
    // The same text through `parse` names its origin as given.
    let e = format!(
        "{:#}",
        parse::<MinerConfig>("[chain\n", "(fuzz)", [], &[]).expect_err("bad toml")
    );
    assert!(e.starts_with("config (fuzz): "), "{e}");
}
