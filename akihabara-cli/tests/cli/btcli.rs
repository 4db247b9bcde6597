//! Interoperability with the official `bittensor-wallet` 4.1.1 package (btcli's
//! wallet code), run for real in a venv: wallets it writes load here with the
//! same keys, wallets akihabara writes load there, and signatures cross over.

use std::path::Path;

use akihabara_core::wallet::{KeyMaterial, Keypair, Wallet, WalletError, crypto, keyfile};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{bin, last_json, peers, stderr};

const PASSWORD: &str = "correct horse 42";

fn cli(args: &[&str]) -> std::process::Output {
    bin()
        .args(args)
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .output()
        .expect("run akihabara")
}

fn cli_json(args: &[&str]) -> Value {
    let o = cli(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

fn password(_: &Path) -> Result<Zeroizing<String>, WalletError> {
    Ok(Zeroizing::new(PASSWORD.to_owned()))
}

#[test]
fn akihabara_reads_wallets_btcli_wrote() {
    let Some(py) = peers::python("btwallet-4.1.1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let theirs = last_json(&peers::run_python(
        &py,
        "btwallet_interop.py",
        &["write", root, PASSWORD],
    ));

    // Public files only: no password asked.
    let show = cli_json(&[
        "wallet",
        "show",
        "--wallet.path",
        root,
        "--wallet.name",
        "py",
        "--json",
    ]);
    assert_eq!(show["coldkeypub"], theirs["coldkey"]["ss58"]);
    let hotkey = |name: &str| {
        show["hotkeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap()["ss58"]
            .clone()
    };
    assert_eq!(hotkey("hk"), theirs["hotkey"]["ss58"]);
    assert_eq!(hotkey("dev"), theirs["dev"]["ss58"]);

    // The $NACL coldkey decrypts to the same key and mnemonic.
    let w = Wallet::new(root, "py", "hk");
    let cold = w.coldkey(&mut password).unwrap();
    assert_eq!(
        cold.account().to_string(),
        theirs["coldkey"]["ss58"].as_str().unwrap()
    );
    assert_eq!(
        format!("0x{}", hex::encode(cold.account().as_bytes())),
        theirs["coldkey"]["public"].as_str().unwrap()
    );
    assert_eq!(cold.mnemonic(), theirs["coldkey"]["mnemonic"].as_str());
    let hot = w.hotkey(&mut |_| panic!("plaintext hotkey")).unwrap();
    assert_eq!(hot.mnemonic(), theirs["hotkey"]["mnemonic"].as_str());
    assert_eq!(
        hot.account().to_string(),
        theirs["hotkey"]["ss58"].as_str().unwrap()
    );
    // A URI key written by btcli holds only its private key.
    let dev = w
        .with_hotkey("dev")
        .hotkey(&mut |_| panic!("plaintext hotkey"))
        .unwrap();
    assert_eq!(
        dev.account(),
        Keypair::from_uri("//validator1").unwrap().account()
    );
    assert_eq!(
        dev.private_key(),
        Keypair::from_uri("//validator1").unwrap().private_key()
    );

    // The legacy ansible-vault file btcli wrote opens to the same coldkey.
    let vault = std::fs::read(dir.path().join("py/legacy_coldkey")).unwrap();
    let plain = crypto::vault_decrypt(&vault, PASSWORD).unwrap();
    let KeyMaterial::Secret(from_vault) = keyfile::parse(&plain).unwrap() else {
        panic!("secret")
    };
    assert_eq!(from_vault.account(), cold.account());

    // A wrong password: exit 1 and a message naming the file.
    let bad = dir.path().join("bad-password");
    std::fs::write(&bad, "not it\n").unwrap();
    let o = cli(&[
        "wallet",
        "sign",
        "--wallet.path",
        root,
        "--wallet.name",
        "py",
        "--coldkey",
        "--message",
        "x",
        "--password-file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("wrong password for coldkey")
            && err.contains(&*w.coldkey_path().to_string_lossy()),
        "{err}"
    );

    // bittensor's own BT_PW_<path> variable opens the coldkey; the official
    // package verifies the signature akihabara makes with it.
    let message = "akihabara interop: signed by akihabara";
    let o = bin()
        .args([
            "wallet",
            "sign",
            "--wallet.path",
            root,
            "--wallet.name",
            "py",
            "--coldkey",
            "--message",
            message,
            "--json",
        ])
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .env(
            theirs["bt_pw"]["name"].as_str().unwrap(),
            theirs["bt_pw"]["value"].as_str().unwrap(),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let signed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(signed["ss58"], theirs["coldkey"]["ss58"]);
    let verdict = peers::run_python(
        &py,
        "btwallet_interop.py",
        &[
            "verify",
            signed["ss58"].as_str().unwrap(),
            message,
            signed["signature"].as_str().unwrap(),
        ],
    );
    assert_eq!(verdict.trim(), "true");

    // Their signatures verify with ours; a changed message does not.
    let msg = theirs["message"].as_str().unwrap();
    for (who, sig) in [
        ("hotkey", "hotkey_signature"),
        ("coldkey", "coldkey_signature"),
    ] {
        let ss58 = theirs[who]["ss58"].as_str().unwrap();
        let sig = theirs[sig].as_str().unwrap();
        let ok = cli(&[
            "wallet",
            "verify",
            "--ss58",
            ss58,
            "--message",
            msg,
            "--signature",
            sig,
        ]);
        assert!(ok.status.success(), "{who}: {}", stderr(&ok));
        let changed = format!("{msg}!");
        let no = cli(&[
            "wallet",
            "verify",
            "--ss58",
            ss58,
            "--message",
            &changed,
            "--signature",
            sig,
        ]);
        assert_eq!(no.status.code(), Some(1));
    }
}

#[test]
fn btcli_reads_wallets_akihabara_wrote() {
    let Some(py) = peers::python("btwallet-4.1.1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let base = ["--wallet.path", root, "--wallet.name", "ak"];
    let created = cli_json(
        &[
            &["wallet", "create"][..],
            &base,
            &[
                "--wallet.hotkey",
                "main",
                "--password-file",
                pw.to_str().unwrap(),
                "--json",
            ],
        ]
        .concat(),
    );
    cli_json(
        &[
            &["wallet", "regen-hotkey"][..],
            &base,
            &["--wallet.hotkey", "dev", "--uri", "//validator1", "--json"],
        ]
        .concat(),
    );
    let shown = cli_json(
        &[
            &["wallet", "new-hotkey"][..],
            &base,
            &["--wallet.hotkey", "extra", "--words", "24", "--json"],
        ]
        .concat(),
    );
    assert_eq!(created["coldkeypub"], shown["coldkeypub"]);

    let theirs = last_json(&peers::run_python(
        &py,
        "btwallet_interop.py",
        &["read", root, "ak", "main,dev,extra", PASSWORD],
    ));
    assert_eq!(theirs["coldkeypub"], created["coldkeypub"]);
    assert_eq!(
        theirs["coldkey"], created["coldkeypub"],
        "btcli decrypts our $NACL coldkey"
    );
    for h in shown["hotkeys"].as_array().unwrap() {
        let name = h["name"].as_str().unwrap();
        assert_eq!(theirs["hotkeys"][name]["ss58"], h["ss58"], "{name}");
        assert_eq!(theirs["hotkeys"][name]["pub"], h["ss58"], "{name}pub.txt");
    }
    let dev_uri = peers::run_python(&py, "btwallet_interop.py", &["uri", "//validator1"]);
    assert_eq!(
        theirs["hotkeys"]["dev"]["ss58"].as_str().unwrap(),
        dev_uri.trim()
    );

    // Our hotkey signature verifies in the official package.
    let message = "signed by an akihabara hotkey";
    let signed = cli_json(
        &[
            &["wallet", "sign"][..],
            &base,
            &["--wallet.hotkey", "main", "--message", message, "--json"],
        ]
        .concat(),
    );
    let verdict = peers::run_python(
        &py,
        "btwallet_interop.py",
        &[
            "verify",
            signed["ss58"].as_str().unwrap(),
            message,
            signed["signature"].as_str().unwrap(),
        ],
    );
    assert_eq!(verdict.trim(), "true");
}
