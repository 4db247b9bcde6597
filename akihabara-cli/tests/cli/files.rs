//! Files holding secrets and the store address: permission warnings, size
//! caps, truncated coldkeys, and a mistyped redis URL (issue 23, item 8).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{assert_usage, bin, run, stderr, stdout};

fn create_wallet(root: &Path, name: &str) {
    let o = run(&[
        "wallet",
        "create",
        "--wallet.path",
        root.to_str().unwrap(),
        "--wallet.name",
        name,
        "--no-password",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn sign_with_coldkey(root: &Path, name: &str) -> std::process::Output {
    run(&[
        "wallet",
        "sign",
        "--wallet.path",
        root.to_str().unwrap(),
        "--wallet.name",
        name,
        "--coldkey",
        "--message",
        "hi",
    ])
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_coldkey_or_password_file_open_to_others_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    create_wallet(dir.path(), "w");
    let coldkey = dir.path().join("w/coldkey");
    let quiet = sign_with_coldkey(dir.path(), "w");
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert_eq!(stderr(&quiet), "", "a 0600 coldkey is not warned about");
    chmod(&coldkey, 0o644);
    let o = sign_with_coldkey(dir.path(), "w");
    assert!(o.status.success(), "{}", stderr(&o));
    // The signature is made all the same (sr25519 signatures are randomised).
    let sig = stdout(&o);
    assert_eq!(sig.len(), 2 + 128 + 1, "{sig}");
    assert!(sig.starts_with("0x"), "{sig}");
    assert_eq!(
        stderr(&o),
        format!(
            "warning: coldkey {} is accessible to group or others (mode 0644); run chmod 600 on it\n",
            coldkey.display()
        )
    );

    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    chmod(&pw, 0o640);
    let o = run(&[
        "wallet",
        "create",
        "--wallet.path",
        dir.path().to_str().unwrap(),
        "--wallet.name",
        "e",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).lines().next().unwrap(),
        format!(
            "warning: password file {} is accessible to group or others (mode 0640); run chmod 600 on it",
            pw.display()
        )
    );
}

#[test]
fn an_oversized_coldkey_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    create_wallet(dir.path(), "w");
    let coldkey = dir.path().join("w/coldkey");
    std::fs::write(&coldkey, vec![b'{'; 20_000]).unwrap();
    assert_usage(
        &[
            "wallet",
            "sign",
            "--wallet.path",
            dir.path().to_str().unwrap(),
            "--wallet.name",
            "w",
            "--coldkey",
            "--message",
            "hi",
        ],
        &format!(
            "error: {}: 20000 bytes is too large for a keyfile (at most 16384 bytes)",
            coldkey.display()
        ),
    );
}

/// A cut-short encrypted coldkey was reported as needing (or failing) a
/// password; it is a malformed file, named, with exit code 2.
#[test]
fn a_truncated_coldkey_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    create_wallet(dir.path(), "w");
    let coldkey = dir.path().join("w/coldkey");
    let mut data = b"$NACL".to_vec();
    data.extend_from_slice(&[7u8; 24 + 16 + 10]);
    std::fs::write(&coldkey, &data).unwrap();
    assert_usage(
        &[
            "wallet",
            "sign",
            "--wallet.path",
            dir.path().to_str().unwrap(),
            "--wallet.name",
            "w",
            "--coldkey",
            "--message",
            "hi",
        ],
        &format!(
            "error: keyfile {}: malformed $NACL data: 10 bytes of ciphertext, fewer than the \
             shortest keyfile's 64: the file is truncated",
            coldkey.display()
        ),
    );
}

/// `redis//user:pw@host` (a missing `:`) became a directory named after the
/// credentials, and the password was printed in the ready line and the log.
#[test]
fn a_mistyped_redis_url_is_refused_without_showing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("miner.toml");
    let o = run(&[
        "config",
        "init",
        "--role",
        "miner",
        "--out",
        config.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .current_dir(dir.path())
        .args([
            "miner",
            "run",
            "--config",
            config.to_str().unwrap(),
            "--set",
            "state.store=redis//user:hunter2@db.example:6379/0",
            "--duration",
            "5",
        ])
        .env_remove("AKIHABARA_WALLET_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: config key `state.store`: unsupported store: \"redis//***@db.example:6379/0\" \
         looks like a mistyped URL (a bare path with ':', '@' or '//'); use embedded:PATH or \
         redis://HOST:PORT/DB (embedded:PATH for a file whose path has them)\n"
    );
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    assert!(!dir.path().join("redis").exists(), "no directory was made");
}
