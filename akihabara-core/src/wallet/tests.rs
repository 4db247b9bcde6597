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
    // Encrypted and whole: the password callback is consulted.
    let plain = keyfile::render_secret(&Keypair::generate(12).unwrap());
    let sealed = crypto::nacl_encrypt_with_key(&plain, &[3; 32]).unwrap();
    std::fs::write(w.hotkey_path(), &sealed).unwrap();
    assert!(matches!(
        w.hotkey(&mut no_password),
        Err(WalletError::NeedPassword { .. })
    ));
    // Cut short: reported as such, before any password is asked for.
    std::fs::write(w.hotkey_path(), b"$NACLxx").unwrap();
    assert_eq!(
        w.hotkey(&mut no_password).unwrap_err().to_string(),
        format!(
            "keyfile {}: malformed $NACL data: 2 bytes after the prefix, at least 40 needed (nonce and tag)",
            w.hotkey_path().display()
        )
    );
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

/// A coldkey cut short is "truncated", not "wrong password", and the
/// password is not even asked for; a whole one that does not open is a
/// wrong password.
#[test]
fn truncated_coldkey_is_not_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "w", "h");
    w.write_coldkey(&Keypair::generate(12).unwrap(), None, false)
        .unwrap();
    let plain = std::fs::read(w.coldkey_path()).unwrap();
    // Sealed under a key no password derives: any password is wrong.
    let sealed = crypto::nacl_encrypt_with_key(&plain, &[9; 32]).unwrap();
    let path = w.coldkey_path();
    for cut in [5 + 24 + 16, 5 + 24 + 16 + 63] {
        std::fs::write(&path, &sealed[..cut]).unwrap();
        let err = w
            .coldkey(&mut |_| panic!("no password is asked for a truncated file"))
            .unwrap_err();
        assert!(
            matches!(
                &err,
                WalletError::Decrypt {
                    error: DecryptError::Malformed {
                        scheme: "$NACL",
                        ..
                    },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "keyfile {}: malformed $NACL data: {} bytes of ciphertext, fewer than the \
                 shortest keyfile's 64: the file is truncated",
                path.display(),
                cut - 45
            )
        );
    }
    std::fs::write(&path, &sealed).unwrap();
    let err = w
        .coldkey(&mut |_| Ok(Zeroizing::new("not the password".to_owned())))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            WalletError::WrongPassword {
                role: "coldkey",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "wrong password for coldkey {} (or its encrypted content was altered)",
            path.display()
        )
    );
}

#[test]
fn oversized_keyfiles_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "w", "h");
    w.write_coldkey(&Keypair::generate(12).unwrap(), None, false)
        .unwrap();
    let big = vec![b' '; MAX_KEYFILE_BYTES as usize + 1];
    std::fs::write(w.coldkey_path(), &big).unwrap();
    let err = w.coldkey(&mut no_password).unwrap_err();
    assert!(
        matches!(
            err,
            WalletError::TooLarge {
                size: 16385,
                max: 16384,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 16385 bytes is too large for a keyfile (at most 16384 bytes)",
            w.coldkey_path().display()
        )
    );
    // Exactly at the limit it is read (and fails as the JSON it is not).
    std::fs::write(w.coldkey_path(), &big[1..]).unwrap();
    assert!(matches!(
        w.coldkey(&mut no_password),
        Err(WalletError::Keyfile { .. })
    ));
}

#[cfg(unix)]
#[test]
fn loose_permissions_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pw");
    std::fs::write(&p, "pw").unwrap();
    for (mode, loose) in [
        (0o600, None),
        (0o400, None),
        (0o644, Some(0o644)),
        (0o640, Some(0o640)),
        (0o604, Some(0o604)),
        (0o620, Some(0o620)),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(loose_permissions(&p).unwrap(), loose, "{mode:o}");
    }
    assert!(loose_permissions(&dir.path().join("missing")).is_err());
}
