//! Wallet directory behaviour (fast paths; encryption interop lives in the
//! CLI's btcli tests).

use super::*;

fn no_password(p: &Path) -> Result<Zeroizing<String>, WalletError> {
    Err(WalletError::NeedPassword {
        path: p.to_path_buf(),
    })
}

#[test]
fn create_load_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "validator", "hk1");
    let cold = Keypair::generate(12).unwrap();
    let hot = Keypair::generate(12).unwrap();
    w.write_coldkey(&cold, None, false).unwrap();
    w.write_hotkey(&hot, None, false).unwrap();
    assert_eq!(w.coldkeypub().unwrap(), cold.account());
    assert_eq!(w.hotkey_account().unwrap(), hot.account());
    assert_eq!(
        w.coldkey(&mut no_password).unwrap().account(),
        cold.account()
    );
    assert_eq!(
        w.hotkey(&mut no_password).unwrap().mnemonic(),
        hot.mnemonic()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&w.coldkey_path()), 0o600);
        assert_eq!(mode(&w.hotkeypub_path()), 0o600);
        assert_eq!(mode(&w.dir()), 0o700);
        assert_eq!(mode(&w.dir().join("hotkeys")), 0o700);
    }
    let list = Wallet::list(dir.path()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].coldkeypub, Some(cold.account()));
    assert_eq!(
        list[0].hotkeys,
        vec![HotkeySummary {
            name: "hk1".into(),
            ss58: Some(hot.account())
        }]
    );
}

#[test]
fn never_overwrites_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "w", "h");
    let first = Keypair::generate(12).unwrap();
    w.write_coldkey(&first, None, false).unwrap();
    let second = Keypair::generate(12).unwrap();
    assert!(matches!(
        w.write_coldkey(&second, None, false),
        Err(WalletError::Exists { .. })
    ));
    assert_eq!(w.coldkeypub().unwrap(), first.account());
    w.write_coldkey(&second, None, true).unwrap();
    assert_eq!(w.coldkeypub().unwrap(), second.account());
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(w.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn missing_things_list_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "alpha", "one");
    w.write_coldkey(&Keypair::generate(12).unwrap(), None, false)
        .unwrap();
    w.write_hotkey(&Keypair::generate(12).unwrap(), None, false)
        .unwrap();
    w.with_hotkey("two")
        .write_hotkey(&Keypair::generate(12).unwrap(), None, false)
        .unwrap();
    let err = Wallet::new(dir.path(), "beta", "one")
        .coldkeypub()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wallet \"beta\" not found") && err.contains("alpha (hotkeys: one, two)"),
        "{err}"
    );
    let err = w
        .with_hotkey("three")
        .hotkey(&mut no_password)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hotkey \"three\" not found") && err.contains("hotkeys there: one, two"),
        "{err}"
    );
    let err = Wallet::new(dir.path(), "../etc", "x")
        .coldkeypub()
        .unwrap_err();
    assert!(matches!(
        err,
        WalletError::InvalidName { what: "wallet", .. }
    ));
    let empty = tempfile::tempdir().unwrap();
    let err = Wallet::new(empty.path(), "x", "y")
        .coldkeypub()
        .unwrap_err()
        .to_string();
    assert!(err.contains("wallets there: none"), "{err}");
}

#[test]
fn corrupt_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "w", "h");
    w.write_hotkey(&Keypair::generate(12).unwrap(), None, false)
        .unwrap();
    let full = std::fs::read(w.hotkey_path()).unwrap();
    std::fs::write(w.hotkey_path(), &full[..full.len() / 2]).unwrap();
    let err = w.hotkey(&mut no_password).unwrap_err();
    assert!(matches!(err, WalletError::Keyfile { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&*w.hotkey_path().to_string_lossy())
    );
    std::fs::write(w.hotkey_path(), b"gAAAAABlegacy").unwrap();
    assert!(
        w.hotkey(&mut no_password)
            .unwrap_err()
            .to_string()
            .contains("unsupported legacy format")
    );
    std::fs::write(w.hotkey_path(), b"$NACLxx").unwrap();
    // Encrypted: the password callback is consulted.
    assert!(matches!(
        w.hotkey(&mut no_password),
        Err(WalletError::NeedPassword { .. })
    ));
    std::fs::write(
        w.hotkey_path(),
        keyfile::render_public(&Keypair::generate(12).unwrap().account()),
    )
    .unwrap();
    assert!(matches!(
        w.hotkey(&mut no_password),
        Err(WalletError::NoSecret { .. })
    ));
}
