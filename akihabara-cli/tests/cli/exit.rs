//! A sample of the one-line messages and exit codes users see, pinned
//! exactly: the mapping from errors to exit codes (`src/exit.rs`) may move,
//! but what it prints must not change unnoticed.

use super::{run, stderr, stdout};

/// `(arguments, exit code, standard error)`; `{dir}` is a fresh directory.
const CASES: &[(&[&str], i32, &str)] = &[
    (
        &[
            "wallet",
            "show",
            "--wallet.path",
            "{dir}",
            "--wallet.name",
            "nosuch",
        ],
        2,
        "error: wallet \"nosuch\" not found under {dir}; wallets there: none\n",
    ),
    (
        &["pow", "prove", "--seed", "zz", "--n", "4"],
        2,
        "error: invalid seed: `zz` is not 64 hex digits (Invalid string length); a seed is 32 bytes of hex\n",
    ),
    (
        &[
            "pow",
            "prove",
            "--seed",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "--n",
            "0",
        ],
        2,
        "error: invalid challenge: n must be at least 1\n",
    ),
    (
        &["pow", "verify", "--proof", "/nonexistent/proof.json"],
        2,
        "error: reading /nonexistent/proof.json: No such file or directory (os error 2)\n",
    ),
    (
        &["weights", "normalize", "--uids", "1", "--weights", "-1"],
        2,
        "error: weight 0 is negative (-1); negative weights cannot exist on chain\n",
    ),
    (
        &["metagraph", "--network", "bogus", "--netuid", "1"],
        2,
        "error: connection: unknown network \"bogus\": use finney, test, local, or a ws:// or wss:// URL\n",
    ),
    (
        &["schedule", "--metagraph", "/nonexistent/mg.json"],
        2,
        "error: metagraph snapshot /nonexistent/mg.json: No such file or directory (os error 2)\n",
    ),
    (
        &["schedule", "--bogus"],
        2,
        "error: unexpected argument '--bogus' found (see --help)\n",
    ),
    (
        &[
            "wallet",
            "verify",
            "--ss58",
            "x",
            "--message",
            "m",
            "--signature",
            "00",
        ],
        2,
        "error: --ss58: invalid SS58 address \"x\": decodes to 1 bytes, expected 35 or 36\n",
    ),
    (
        &[
            "wallet",
            "create",
            "--wallet.path",
            "{dir}",
            "--wallet.name",
            "enc",
            "--password-file",
            "/nonexistent/pw",
        ],
        2,
        "error: password file /nonexistent/pw: No such file or directory (os error 2)\n",
    ),
    (
        &[
            "weights",
            "set",
            "--network",
            "ws://127.0.0.1:1",
            "--netuid",
            "1",
            "--uids",
            "1",
            "--weights",
            "0",
            "--wallet.path",
            "{dir}",
        ],
        2,
        "error: every weight is zero: there is nothing to set\n",
    ),
    // A job's own exit code passes through, and nothing is printed.
    (&["executor", "run", "--", "sh", "-c", "exit 7"], 7, ""),
    // A negative number is a value its flag's parser refuses, not an
    // unknown argument.
    (
        &["sim", "--windows", "-1"],
        2,
        "error: invalid value '-1' for '--windows <W>': invalid digit found in string (see --help)\n",
    ),
    // A one-word --uri is not reported as a bad mnemonic.
    (
        &[
            "wallet",
            "regen-hotkey",
            "--wallet.path",
            "{dir}",
            "--uri",
            "notauri",
        ],
        2,
        "error: invalid secret URI: expected //name (as in //Alice or //validator1), a mnemonic of \
         12 to 24 words, or 0x and a 32-byte hex seed, each optionally followed by /soft or //hard \
         derivations\n",
    ),
    // An output path that cannot be written: bad input, and nothing is
    // printed before it.
    (
        &[
            "schedule",
            "--metagraph",
            "../examples/metagraph.json",
            "--svg",
            "{dir}/no/such/dir/s.svg",
        ],
        2,
        "error: writing {dir}/no/such/dir/s.svg: No such file or directory (os error 2)\n",
    ),
];

#[test]
fn messages_and_exit_codes_are_pinned() {
    for (args, code, expected) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", d)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {err}");
        assert_eq!(err, expected.replace("{dir}", d), "{args:?}");
        assert_eq!(
            stdout(&o),
            "",
            "{args:?}: nothing is printed before an error"
        );
    }
}

/// An existing coldkey is the user's to resolve (2); a chain that does not
/// answer is a failure (1), named with its address.
#[test]
fn wallet_exists_is_bad_input_and_no_chain_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let create = ["wallet", "create", "--wallet.path", d, "--no-password"];
    assert_eq!(run(&create).status.code(), Some(0));
    let o = run(&create);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!("error: {d}/default/coldkey already exists; pass --overwrite to replace it\n")
    );
    let o = run(&[
        "metagraph",
        "--network",
        "ws://127.0.0.1:1",
        "--netuid",
        "1",
        "--chain-timeout",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: connecting to ws://127.0.0.1:1: connection: no node at ws://127.0.0.1:1 \
         (connection refused): start one, or use --network finney\n"
    );
}

/// A missing password is missing input (2) for every command that needs
/// one: `wallet create` and `wallet sign --coldkey` alike.
#[test]
fn a_missing_password_is_bad_input_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&["wallet", "create", "--wallet.path", d, "--wallet.name", "w"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {d}/w/coldkey needs a password: give --password-file or \
             AKIHABARA_WALLET_PASSWORD, or --no-password to leave it unencrypted\n"
        )
    );
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let pw = pw.to_str().unwrap();
    let o = run(&[
        "wallet",
        "create",
        "--wallet.path",
        d,
        "--wallet.name",
        "w",
        "--password-file",
        pw,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&[
        "wallet",
        "sign",
        "--wallet.path",
        d,
        "--wallet.name",
        "w",
        "--coldkey",
        "--message",
        "hi",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {d}/w/coldkey is encrypted and no password was given (use --password-file, \
             AKIHABARA_WALLET_PASSWORD or a terminal)\n"
        )
    );
}
