//! `akihabara wallet …`.

mod args;

use std::io::IsTerminal;
use std::path::Path;

use akihabara_core::AccountId;
use akihabara_core::wallet::{
    self, Keypair, PasswordFn, Signature, Wallet, WalletError, WalletSummary, password,
};
use anyhow::Context;
use zeroize::Zeroizing;

pub use self::args::WalletCommand;
use self::args::{
    CreateArgs, ListArgs, NewHotkeyArgs, RegenColdkeyArgs, RegenHotkeyArgs, ShowArgs, SignArgs,
    VerifyArgs,
};

use crate::args::{PasswordArgs, SignerArgs, WalletArgs};
use crate::exit::{self, bad_input};
use crate::out;

impl WalletArgs {
    fn wallet(&self) -> Wallet {
        Wallet::new(&self.path, &self.name, &self.hotkey)
    }
}

impl SignerArgs {
    /// The hotkey pair (decrypted if it is encrypted).
    pub fn hotkey(&self) -> anyhow::Result<Keypair> {
        load_hotkey(&self.wallet, &self.password)
    }

    /// The coldkey pair (decrypted with its password).
    pub fn coldkey(&self) -> anyhow::Result<Keypair> {
        load_coldkey(&self.wallet, &self.password)
    }

    /// The public hotkey (no password needed).
    pub fn hotkey_account(&self) -> anyhow::Result<AccountId> {
        hotkey_account(&self.wallet)
    }
}

/// Loads the hotkey pair of `wallet` (decrypting it if it is encrypted).
pub fn load_hotkey(wallet: &WalletArgs, password: &PasswordArgs) -> anyhow::Result<Keypair> {
    let w = wallet.wallet();
    decrypting(password, |ask| w.hotkey(ask)).map_err(exit::wallet)
}

/// Loads the coldkey pair of `wallet` (decrypting it with its password).
pub fn load_coldkey(wallet: &WalletArgs, password: &PasswordArgs) -> anyhow::Result<Keypair> {
    let w = wallet.wallet();
    warn_if_loose(&w.coldkey_path(), "coldkey");
    decrypting(password, |ask| w.coldkey(ask)).map_err(exit::wallet)
}

/// Runs `load` with a password callback; once a password is given (after
/// any prompt), a spinner shows while the keyfile is decrypted, which takes
/// seconds by design (the key derivation is slow on purpose).
fn decrypting<T>(
    password: &PasswordArgs,
    load: impl FnOnce(&mut PasswordFn<'_>) -> Result<T, WalletError>,
) -> Result<T, WalletError> {
    let mut spinner = None;
    let r = load(&mut |path: &Path| {
        let pw = password_for(password, path, false)?;
        spinner = Some(crate::progress::spinner(&format!(
            "decrypting {} (a few seconds)",
            path.display()
        )));
        Ok(pw)
    });
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    r
}

/// The public hotkey of `wallet` (no password needed).
pub fn hotkey_account(wallet: &WalletArgs) -> anyhow::Result<AccountId> {
    wallet.wallet().hotkey_account().map_err(exit::wallet)
}

/// Warns when a secret file (a coldkey, a password file) is open to group
/// or others: on standard error, or in the log once a daemon has one.
fn warn_if_loose(path: &Path, what: &str) {
    if let Ok(Some(mode)) = wallet::loose_permissions(path) {
        let text = format!(
            "{what} {} is accessible to group or others (mode {mode:04o}); run chmod 600 on it",
            path.display()
        );
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{text}");
        } else {
            eprintln!("warning: {text}");
        }
    }
}

/// The password for `keyfile`: --password-file, AKIHABARA_WALLET_PASSWORD,
/// BT_PW_<path>, then a no-echo prompt when standard input is a terminal.
fn password_for(
    args: &PasswordArgs,
    keyfile: &Path,
    confirm: bool,
) -> Result<Zeroizing<String>, WalletError> {
    if let Some(file) = &args.password_file {
        warn_if_loose(file, "password file");
        return Ok(password::from_file(file)?);
    }
    if let Some(pw) = password::from_env(keyfile)? {
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        return Err(WalletError::NeedPassword {
            path: keyfile.to_path_buf(),
        });
    }
    let prompt = |text: String| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(|error| WalletError::Io {
                path: "/dev/tty".into(),
                error,
            })
    };
    let pw = prompt(format!("Password for {}: ", keyfile.display()))?;
    if confirm && *prompt("Retype the password: ".to_owned())? != *pw {
        return Err(WalletError::Io {
            path: keyfile.to_path_buf(),
            error: std::io::Error::other("the passwords do not match"),
        });
    }
    Ok(pw)
}

/// The password to encrypt a new coldkey with, or `None` for `--no-password`.
fn new_password(
    args: &PasswordArgs,
    no_password: bool,
    keyfile: &Path,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    if no_password {
        return Ok(None);
    }
    let pw = password_for(args, keyfile, true).map_err(|e| match e {
        WalletError::NeedPassword { path } => bad_input(anyhow::anyhow!(
            "{} needs a password: give --password-file or {}, or --no-password to leave it unencrypted",
            path.display(),
            password::PASSWORD_ENV
        )),
        e => exit::wallet(e),
    })?;
    if pw.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "empty password; use --no-password to leave the coldkey unencrypted"
        )));
    }
    Ok(Some(pw))
}

fn show_mnemonic(role: &str, kp: &Keypair, regen: &str) {
    if let Some(m) = kp.mnemonic() {
        eprintln!(
            "\nIMPORTANT: the {role} mnemonic below is shown only this once and stored nowhere but the\n\
             keyfile. Anyone who has it controls the key. Write it down and keep it offline.\n\n    {m}\n\n\
             To restore it: akihabara wallet {regen} --mnemonic \"<the words>\"\n"
        );
    }
}

fn read_mnemonic(arg: &str) -> anyhow::Result<Zeroizing<String>> {
    if arg != "-" {
        return Ok(Zeroizing::new(arg.to_owned()));
    }
    // 24 words are under 250 bytes. The buffer is sized once, so no copy of
    // the words is left behind by a reallocation.
    const MAX: u64 = 4096;
    let bytes = Zeroizing::new(
        akihabara_core::fs::read_limited_from(std::io::stdin().lock(), MAX).map_err(
            |e| match e {
                akihabara_core::fs::ReadError::TooLarge { .. } => bad_input(anyhow::anyhow!(
                    "the mnemonic on standard input is longer than {MAX} bytes"
                )),
                other => {
                    anyhow::Error::new(other).context("reading the mnemonic from standard input")
                }
            },
        )?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        bad_input(anyhow::anyhow!(
            "the mnemonic on standard input is not UTF-8 text"
        ))
    })?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn print_summary(s: &WalletSummary, json: bool) -> anyhow::Result<()> {
    if json {
        return Ok(out::println(serde_json::to_string_pretty(s)?)?);
    }
    let addr = |a: &Option<AccountId>| {
        a.map_or_else(
            || "(unreadable without a password)".to_owned(),
            |a| a.to_string(),
        )
    };
    let mut text = format!(
        "wallet {} ({})\n  coldkey  {}\n",
        s.name,
        s.path.display(),
        addr(&s.coldkeypub)
    );
    if s.coldkeypub.is_none() && !s.path.join("coldkeypub.txt").exists() {
        text = format!(
            "wallet {} ({})\n  coldkey  (no coldkeypub.txt)\n",
            s.name,
            s.path.display()
        );
    }
    for h in &s.hotkeys {
        text.push_str(&format!("  hotkey   {:<16} {}\n", h.name, addr(&h.ss58)));
    }
    if s.hotkeys.is_empty() {
        text.push_str("  (no hotkeys)\n");
    }
    Ok(out::print(text)?)
}

pub fn run(cmd: WalletCommand) -> anyhow::Result<()> {
    match cmd {
        WalletCommand::Create(a) => create(a),
        WalletCommand::NewHotkey(a) => new_hotkey(a),
        WalletCommand::RegenColdkey(a) => regen_coldkey(a),
        WalletCommand::RegenHotkey(a) => regen_hotkey(a),
        WalletCommand::List(a) => list(a),
        WalletCommand::Show(a) => show(a),
        WalletCommand::Sign(a) => sign(a),
        WalletCommand::Verify(a) => verify(a),
    }
}

fn create(a: CreateArgs) -> anyhow::Result<()> {
    let w = a.wallet.wallet();
    if !a.overwrite {
        for p in [w.coldkey_path(), w.hotkey_path()] {
            if p.exists() {
                return Err(exit::wallet(WalletError::Exists { path: p }));
            }
        }
    }
    let cold = Keypair::generate(a.words).map_err(bad_input)?;
    let hot = Keypair::generate(a.words).map_err(bad_input)?;
    let pw = new_password(&a.password, a.no_password, &w.coldkey_path())?;
    if pw.is_some() {
        eprintln!("Encrypting the coldkey (Argon2i, 512 MiB: a few seconds)...");
    }
    w.write_coldkey(&cold, pw.as_deref().map(String::as_str), a.overwrite)
        .map_err(exit::wallet)?;
    w.write_hotkey(&hot, None, a.overwrite)
        .map_err(exit::wallet)?;
    show_mnemonic("coldkey", &cold, "regen-coldkey");
    show_mnemonic("hotkey", &hot, "regen-hotkey");
    print_summary(&w.summary().map_err(exit::wallet)?, a.json)
}

fn new_hotkey(a: NewHotkeyArgs) -> anyhow::Result<()> {
    let w = a.wallet.wallet();
    // The wallet must exist: a hotkey is not a wallet of its own.
    w.summary().map_err(exit::wallet)?;
    let hot = Keypair::generate(a.words).map_err(bad_input)?;
    w.write_hotkey(&hot, None, a.overwrite)
        .map_err(exit::wallet)?;
    show_mnemonic("hotkey", &hot, "regen-hotkey");
    print_summary(&w.summary().map_err(exit::wallet)?, a.json)
}

fn regen_coldkey(a: RegenColdkeyArgs) -> anyhow::Result<()> {
    let w = a.wallet.wallet();
    let phrase = read_mnemonic(&a.mnemonic)?;
    let cold = Keypair::from_mnemonic(&phrase).map_err(bad_input)?;
    if !a.overwrite && w.coldkey_path().exists() {
        return Err(exit::wallet(WalletError::Exists {
            path: w.coldkey_path(),
        }));
    }
    let pw = new_password(&a.password, a.no_password, &w.coldkey_path())?;
    w.write_coldkey(&cold, pw.as_deref().map(String::as_str), a.overwrite)
        .map_err(exit::wallet)?;
    print_summary(&w.summary().map_err(exit::wallet)?, a.json)
}

fn regen_hotkey(a: RegenHotkeyArgs) -> anyhow::Result<()> {
    let w = a.wallet.wallet();
    let hot = match (a.mnemonic, a.uri) {
        (Some(m), _) => Keypair::from_mnemonic(&read_mnemonic(&m)?),
        (None, Some(u)) => Keypair::from_uri(&u),
        (None, None) => return Err(bad_input(anyhow::anyhow!("give --mnemonic or --uri"))),
    }
    .map_err(bad_input)?;
    w.write_hotkey(&hot, None, a.overwrite)
        .map_err(exit::wallet)?;
    print_summary(&w.summary().map_err(exit::wallet)?, a.json)
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let all = Wallet::list(&a.path).map_err(exit::wallet)?;
    if a.json {
        return Ok(out::println(serde_json::to_string_pretty(&all)?)?);
    }
    if all.is_empty() {
        return Ok(out::println(format!(
            "no wallets under {}",
            akihabara_core::fs::expand_tilde(&a.path).display()
        ))?);
    }
    for s in &all {
        print_summary(s, false)?;
    }
    Ok(())
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    print_summary(&a.wallet.wallet().summary().map_err(exit::wallet)?, a.json)
}

fn sign(a: SignArgs) -> anyhow::Result<()> {
    let w = a.wallet.wallet();
    let kp = if a.coldkey {
        warn_if_loose(&w.coldkey_path(), "coldkey");
        decrypting(&a.password, |ask| w.coldkey(ask))
    } else {
        decrypting(&a.password, |ask| w.hotkey(ask))
    }
    .map_err(exit::wallet)?;
    let sig = kp.sign(a.message.as_bytes());
    if a.json {
        return Ok(out::println(serde_json::to_string(&serde_json::json!({
            "ss58": kp.account(),
            "message": a.message,
            "signature": sig.to_string(),
        }))?)?);
    }
    Ok(out::println(sig.to_string())?)
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let account: AccountId = a.ss58.parse().context("--ss58").map_err(bad_input)?;
    let sig: Signature = a
        .signature
        .parse()
        .context("--signature")
        .map_err(bad_input)?;
    if wallet::verify(&account, a.message.as_bytes(), &sig) {
        Ok(out::println("valid")?)
    } else {
        Err(anyhow::anyhow!("invalid a.signature for {account}"))
    }
}
