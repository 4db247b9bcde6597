//! Timelocked weights: decrypted and applied by the real runtime (local
//! chain, a real quicknet pulse written into `pallet_drand`), and the reveal
//! round and ciphertexts checked against the SDK's `bittensor-drand`.

use std::path::Path;
use std::time::Duration;

use akihabara_core::chain::timelock::{self, DrandRound, RevealSchedule, RoundRule};
use akihabara_core::{Block, Netuid};
use serde_json::Value;

use super::chain::peer;
use super::{bin, peers, stderr};

/// Quicknet's published signature for round 1000, the pulse subtensor's own
/// tests verify (`https://api.drand.sh/52db9ba7…/public/1000`).
const SIG_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

/// Runs the binary with the drand clock pinned to `now` (Unix seconds) and
/// parses its JSON.
fn json_at(args: &[&str], now: u64) -> Value {
    let o = bin()
        .args(args)
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .env("AKIHABARA_DRAND_NOW", now.to_string())
        .output()
        .expect("run akihabara");
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

/// `akihabara weights commit` with the network, the wallet and `rest`.
fn commit<'a>(net: &[&'a str], v1: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    [&["weights", "commit"][..], net, v1, rest].concat()
}

/// On the local chain (spec 293: `commit_crv3_weights`), after the chain
/// test enabled commit-reveal on netuid 2: `weights set` commits the weights
/// timelocked, `weights status` follows them, and once round 1000's real
/// pulse is stored the runtime decrypts them and sets the SDK's u16 values.
pub(super) fn the_chain_reveals_timelocked_weights(
    si: &Path,
    bt: &Path,
    url: &str,
    net: &[&str],
    v1: &[&str],
) {
    let r = peer(
        si,
        url,
        &[
            "sudo",
            "sudo_set_weights_set_rate_limit",
            "netuid=2",
            "weights_set_rate_limit=0",
        ],
    );
    assert_eq!(r["ok"], true, "{r}");
    // 60 s blocks keep the single reveal block (spec 293) more than the
    // 24 rounds ahead the round is aimed before it.
    let w = [
        "--uids",
        "2,3,4",
        "--weights",
        "0.25,1,0.5",
        "--block-time",
        "60",
    ];

    // 1. A dry run at a pinned clock says which round the weights would be
    // encrypted to; moving the clock by whole rounds moves the round to
    // 1000, the one whose published pulse this test holds.
    let now0 = timelock::QUICKNET_GENESIS + 100_000;
    let dry = json_at(
        &commit(
            net,
            v1,
            &[&w, &["--timelock", "--dry-run", "--json"][..]].concat(),
        ),
        now0,
    );
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["call"], "commit_crv3_weights");
    let r0 = dry["reveal_round"].as_u64().unwrap();
    assert!(r0 > 1000, "{dry}");
    let now1 = now0 - (r0 - 1000) * timelock::QUICKNET_PERIOD;
    let before = peer(si, url, &["weights", "2", "0"]);

    // 2. `weights set` on a commit-reveal subnet commits, as the SDK does.
    let c = json_at(
        &[&["weights", "set"][..], net, v1, &w, &["--json"]].concat(),
        now1,
    );
    assert_eq!(c["call"], "commit_crv3_weights", "{c}");
    assert_eq!(c["reveal_round"], 1000, "{c}");
    assert_eq!(c["commit_epoch"], dry["commit_epoch"], "{c} vs {dry}");
    let (from, until) = (
        c["reveal_from"].as_u64().unwrap(),
        c["reveal_until"].as_u64().unwrap(),
    );
    assert_eq!(from, until, "spec 293 reveals in one block: {c}");
    assert_eq!(c["sealed_len"], 22 + 244, "3 uids, no hotkey: {c}");

    // 3. The status shows it pending, its pulse not stored yet.
    let status_args = [&["weights", "status"][..], net, &v1[..6], &["--json"]].concat();
    let s = super::json(&status_args);
    assert_eq!(s["commit_reveal_enabled"], true, "{s}");
    let pending = s["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{s}");
    assert_eq!(pending[0]["kind"], "timelocked");
    assert_eq!(pending[0]["reveal_round"], 1000);
    assert_eq!(pending[0]["pulse_stored"], false);
    assert_eq!(pending[0]["reveal_from"].as_u64(), Some(from));
    assert_eq!(pending[0]["bytes"], c["sealed_len"]);

    // 4. The pulse, written as the drand pallet stores it.
    let p = peer(si, url, &["pulse", "1000", SIG_1000]);
    assert_eq!(p["last_stored_round"], 1000, "{p}");
    let s = super::json(&status_args);
    assert_eq!(s["pending"][0]["pulse_stored"], true, "{s}");
    assert_eq!(s["last_stored_round"], 1000);
    // Nothing is revealed before the reveal block.
    assert_eq!(peer(si, url, &["weights", "2", "0"]), before);

    // 5. Past the reveal block the chain holds the SDK's u16 values.
    let head = peer(si, url, &["head"])["head"].as_u64().unwrap();
    assert!(
        head < until,
        "the commit is still ahead of its reveal: {head} {c}"
    );
    peer(si, url, &["blocks", &(until + 1 - head).to_string()]);
    let stored = peer(si, url, &["weights", "2", "0"])["weights"].clone();
    let sdk = super::last_json(&peers::run_python(
        bt,
        "sdk_emit.py",
        &["2,3,4", "0.25,1,0.5"],
    ));
    let pairs: Vec<Value> = sdk["uids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(sdk["weights"].as_array().unwrap())
        .map(|(u, w)| Value::from(vec![u.clone(), w.clone()]))
        .collect();
    assert_eq!(stored, Value::from(pairs), "revealed weights vs the SDK's");
    let s = super::json(&status_args);
    assert_eq!(s["pending"], Value::Array(vec![]), "{s}");
    assert_eq!(s["weights"], stored);

    // 6. Refused before any fee: a round already published (1 s blocks put
    // the reveal block under 24 rounds away), and a runtime without
    // mechanisms asked for one.
    let one_uid = ["--uids", "2", "--weights", "1", "--timelock"];
    super::assert_bad_input(
        &commit(net, v1, &[&one_uid, &["--block-time", "1"][..]].concat()),
        "is already published",
    );
    let o = super::run(&commit(
        net,
        v1,
        &[&one_uid, &["--mechid", "1"][..]].concat(),
    ));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("call SubtensorModule.commit_timelocked_mechanism_weights"),
        "{err}"
    );
}

/// For many random inputs, our reveal round is `bittensor-drand`'s
/// `get_encrypted_commit` round; its ciphertexts open with our decryption and
/// ours with its decryption, given round 1000's real signature.
#[test]
fn reveal_rounds_and_ciphertexts_match_bittensor_drand() {
    let Some(py) = peers::python("bittensor-drand-1.3.0") else {
        return;
    };
    let cases = super::last_json(&peers::run_python(
        &py,
        "drand_peer.py",
        &["rounds", "300", "20"],
    ));
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 300);
    for case in cases {
        let u = |k: &str| case[k].as_u64().unwrap();
        let schedule = RevealSchedule {
            netuid: Netuid(u16::try_from(u("netuid")).unwrap()),
            tempo: u("tempo"),
            reveal_period_epochs: u("reveal_period"),
            block_time: Duration::from_secs_f64(case["block_time"].as_f64().unwrap()),
        };
        // The SDK reads the wall clock inside the call: its round is ours
        // at a time between the two readings around it.
        let at = |k: &str| {
            let now = Duration::from_secs_f64(case[k].as_f64().unwrap());
            timelock::target(
                &schedule,
                Block(u("current_block")),
                now,
                RoundRule::Timelocked,
            )
            .reveal_round
        };
        let theirs = DrandRound(u("round"));
        assert!(
            (at("before")..=at("after")).contains(&theirs),
            "{case}: ours {:?}..{:?}",
            at("before"),
            at("after")
        );
        // Their payload carries the hotkey: 33 + uids + values + 8 bytes.
        let n = case["uids"].as_array().unwrap().len();
        let compact = if n < 64 { 1 } else { 2 };
        assert_eq!(
            u("ct_len") as usize,
            33 + 2 * (compact + 2 * n) + 8 + timelock::SEAL_OVERHEAD
        );
    }

    let sig = hex::decode(SIG_1000).unwrap();
    let payload = timelock::WeightsPayload {
        hotkey: Some(akihabara_core::AccountId::from_bytes([5; 32])),
        uids: vec![1, 2],
        values: vec![65535, 7],
        version_key: 3,
    }
    .encode();
    let theirs = super::last_json(&peers::run_python(
        &py,
        "drand_peer.py",
        &["seal", "1000", &hex::encode(&payload)],
    ));
    let theirs = hex::decode(theirs["ciphertext"].as_str().unwrap()).unwrap();
    assert_eq!(timelock::open(&theirs, &sig), Ok(payload.clone()));
    assert_eq!(
        timelock::open(&theirs, &[0xff; 48]),
        Err(timelock::TimelockError::WrongSignature)
    );
    let ours = timelock::seal(&payload, DrandRound(1000), 2).unwrap();
    let opened = super::last_json(&peers::run_python(
        &py,
        "drand_peer.py",
        &["open", &hex::encode(&ours), SIG_1000],
    ));
    assert_eq!(opened["plaintext"], hex::encode(&payload));
}
