//! `akihabara wallet` without outside peers (btcli interop is in btcli.rs).

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use super::{assert_bad_input, bin, run, stderr, stdout};

const DEV_PHRASE: &str = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

fn ok_json(args: &[&str]) -> Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn create_show_sign_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let o = run(&[
        "wallet",
        "create",
        "--wallet.path",
        root,
        "--wallet.name",
        "m",
        "--no-password",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The mnemonics go to stderr, once, with a warning; never into the JSON.
    let err = stderr(&o);
    assert_eq!(err.matches("shown only this once").count(), 2, "{err}");
    let created: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!stdout(&o).contains("mnemonic"));
    // Keys in the documented order (serde_json::Value would sort them).
    let text = stdout(&o);
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(
        at("name") < at("path")
            && at("path") < at("coldkeypub")
            && at("coldkeypub") < at("hotkeys"),
        "{text}"
    );
    assert_eq!(created["name"], "m");
    assert_eq!(created["hotkeys"][0]["name"], "default");

    let shown = ok_json(&[
        "wallet",
        "show",
        "--wallet.path",
        root,
        "--wallet.name",
        "m",
        "--json",
    ]);
    assert_eq!(shown, created);
    let signed = ok_json(&[
        "wallet",
        "sign",
        "--wallet.path",
        root,
        "--wallet.name",
        "m",
        "--message",
        "hi",
        "--json",
    ]);
    assert_eq!(signed["ss58"], created["hotkeys"][0]["ss58"]);
    let sig = signed["signature"].as_str().unwrap();
    assert!(sig.starts_with("0x") && sig.len() == 130 && sig == sig.to_lowercase());
    let ss58 = signed["ss58"].as_str().unwrap();
    assert!(
        run(&[
            "wallet",
            "verify",
            "--ss58",
            ss58,
            "--message",
            "hi",
            "--signature",
            sig
        ])
        .status
        .success()
    );
    assert_eq!(
        run(&[
            "wallet",
            "verify",
            "--ss58",
            ss58,
            "--message",
            "ho",
            "--signature",
            sig
        ])
        .status
        .code(),
        Some(1)
    );
    let cold = created["coldkeypub"].as_str().unwrap();
    assert_eq!(
        run(&[
            "wallet",
            "verify",
            "--ss58",
            cold,
            "--message",
            "hi",
            "--signature",
            sig
        ])
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        run(&[
            "wallet",
            "verify",
            "--ss58",
            "5Grwva",
            "--message",
            "hi",
            "--signature",
            sig
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        run(&[
            "wallet",
            "verify",
            "--ss58",
            ss58,
            "--message",
            "hi",
            "--signature",
            "0x12"
        ])
        .status
        .code(),
        Some(2)
    );

    let list = ok_json(&["wallet", "list", "--wallet.path", root, "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn regen_from_mnemonic_and_uri() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    // From standard input, so the phrase stays out of the process list.
    let mut child = bin()
        .args([
            "wallet",
            "regen-coldkey",
            "--wallet.path",
            root,
            "--wallet.name",
            "dev",
            "--mnemonic",
            "-",
            "--no-password",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{DEV_PHRASE}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // The dev phrase's root key.
    assert_eq!(
        v["coldkeypub"],
        "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"
    );
    let v = ok_json(&[
        "wallet",
        "regen-hotkey",
        "--wallet.path",
        root,
        "--wallet.name",
        "dev",
        "--wallet.hotkey",
        "alice",
        "--uri",
        "//Alice",
        "--json",
    ]);
    assert_eq!(
        v["hotkeys"][0]["ss58"],
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
}

#[test]
fn wallet_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    assert!(
        run(&[
            "wallet",
            "create",
            "--wallet.path",
            root,
            "--wallet.name",
            "a",
            "--no-password"
        ])
        .status
        .success()
    );
    assert_bad_input(
        &[
            "wallet",
            "show",
            "--wallet.path",
            root,
            "--wallet.name",
            "b",
        ],
        "wallets there: a (hotkeys: default)",
    );
    assert_bad_input(
        &[
            "wallet",
            "sign",
            "--wallet.path",
            root,
            "--wallet.name",
            "a",
            "--wallet.hotkey",
            "x",
            "--message",
            "m",
        ],
        "hotkeys there: default",
    );
    assert_bad_input(
        &[
            "wallet",
            "create",
            "--wallet.path",
            root,
            "--wallet.name",
            "a",
            "--no-password",
        ],
        "--overwrite",
    );
    let bad_checksum = DEV_PHRASE.replace("walk", "wall");
    assert_bad_input(
        &[
            "wallet",
            "regen-coldkey",
            "--wallet.path",
            root,
            "--wallet.name",
            "c",
            "--mnemonic",
            &bad_checksum,
            "--no-password",
        ],
        "invalid mnemonic",
    );
    assert_bad_input(
        &[
            "wallet",
            "regen-hotkey",
            "--wallet.path",
            root,
            "--wallet.name",
            "a",
            "--mnemonic",
            "one two",
            "--wallet.hotkey",
            "h",
        ],
        "12, 15, 18, 21 or 24 words",
    );
    assert_bad_input(
        &[
            "wallet",
            "create",
            "--wallet.path",
            root,
            "--wallet.name",
            "../x",
            "--no-password",
        ],
        "invalid wallet name",
    );
    assert_bad_input(
        &[
            "wallet",
            "create",
            "--wallet.path",
            root,
            "--wallet.name",
            "d",
            "--words",
            "13",
            "--no-password",
        ],
        "not 13",
    );
    // No password source and no terminal: a clear error, no prompt, no hang.
    assert_bad_input(
        &[
            "wallet",
            "create",
            "--wallet.path",
            root,
            "--wallet.name",
            "e",
        ],
        "needs a password",
    );
    assert_bad_input(
        &[
            "wallet",
            "create",
            "--wallet.path",
            root,
            "--wallet.name",
            "e",
            "--password-file",
            "/nonexistent/pw",
        ],
        "/nonexistent/pw",
    );
    // A corrupted hotkey names the file and field.
    let hk = dir.path().join("a/hotkeys/default");
    let text = std::fs::read_to_string(&hk).unwrap();
    std::fs::write(
        &hk,
        text.replacen("\"secretPhrase\":\"", "\"secretPhrase\":\"zzz ", 1),
    )
    .unwrap();
    assert_bad_input(
        &[
            "wallet",
            "sign",
            "--wallet.path",
            root,
            "--wallet.name",
            "a",
            "--message",
            "m",
        ],
        "field secretPhrase",
    );
    // Nothing was written for the failed commands.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["a".to_owned()], "{names:?}");
}

#[test]
fn new_hotkey_needs_an_existing_wallet() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let o = run(&[
        "wallet",
        "new-hotkey",
        "--wallet.path",
        root,
        "--wallet.name",
        "ghost",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wallet \"ghost\" not found"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("ghost").exists(), "nothing created");
}
