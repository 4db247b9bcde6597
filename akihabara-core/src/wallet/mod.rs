//! Wallets in the on-disk format `btcli` writes, byte-compatible both ways.
//!
//! ```text
//! ~/.bittensor/wallets/<name>/coldkey              secret, usually $NACL-encrypted
//! ~/.bittensor/wallets/<name>/coldkeypub.txt       public
//! ~/.bittensor/wallets/<name>/hotkeys/<hotkey>     secret, usually plaintext
//! ~/.bittensor/wallets/<name>/hotkeys/<hotkey>pub.txt
//! ```
//!
//! Files are written atomically (temporary file, fsync, rename) with mode
//! 0600 in directories of mode 0700, and never replaced unless asked.
//!
//! ```
//! use akihabara_core::wallet::{Keypair, Wallet};
//! let dir = tempfile::tempdir()?;
//! let w = Wallet::new(dir.path(), "miner", "default");
//! let cold = Keypair::generate(12)?;
//! w.write_coldkey(&cold, None, false)?;
//! w.write_hotkey(&Keypair::from_uri("//miner1")?, None, false)?;
//! assert_eq!(w.coldkeypub()?, cold.account());
//! let hot = w.hotkey(&mut |_| unreachable!("plaintext hotkeys need no password"))?;
//! assert_eq!(Wallet::list(dir.path())?[0].hotkeys.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod crypto;
pub mod keyfile;
mod keypair;
pub mod password;
mod verifying;

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use crypto::{DecryptError, Encryption};
pub use keyfile::{KeyMaterial, KeyfileFormatError};
pub use keypair::{KeyError, Keypair, Signature, verify};
pub use password::PasswordError;
pub use verifying::{VerifyingKey, checks_on_avx512_ifma, verify_batch};

use crate::AccountId;

/// Where btcli keeps wallets, before `~` expansion.
pub const DEFAULT_WALLET_PATH: &str = "~/.bittensor/wallets";

/// The largest keyfile read, in bytes. A btcli keyfile is one line of JSON
/// of about 600 bytes (a 24-word mnemonic, three hex keys, an address);
/// `$NACL` adds 45 bytes and ansible-vault about 2.2 times, so 16 KiB is
/// several times any real keyfile. Larger files are refused before they
/// are read ([`WalletError::TooLarge`]).
pub const MAX_KEYFILE_BYTES: u64 = 16 * 1024;

/// The permission bits of `path` when group or others have any access to
/// it (`Some(0o644)`), `None` when only the owner has (or on non-Unix
/// systems). Secret files (a coldkey, a password file) should be 0600; the
/// CLI warns about the others.
pub fn loose_permissions(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| None)
    }
}

/// Supplies the password for an encrypted keyfile at the given path.
pub type PasswordFn<'a> = dyn FnMut(&Path) -> Result<Zeroizing<String>, WalletError> + 'a;

/// A wallet and a hotkey in it, summarised from public files only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WalletSummary {
    /// Wallet name (directory name).
    pub name: String,
    /// The wallet directory.
    pub path: PathBuf,
    /// The coldkey's address, if `coldkeypub.txt` is readable.
    pub coldkeypub: Option<AccountId>,
    /// Hotkeys, sorted by name.
    pub hotkeys: Vec<HotkeySummary>,
}

/// A hotkey's name and address (if readable without a password).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HotkeySummary {
    /// Hotkey name (file name).
    pub name: String,
    /// Its SS58 address; `None` when it cannot be read without a password.
    pub ss58: Option<AccountId>,
}

/// Renders what exists, for "not found" errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing(pub Vec<WalletSummary>);

impl fmt::Display for Existing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let hotkeys: Vec<&str> = w.hotkeys.iter().map(|h| h.name.as_str()).collect();
            if hotkeys.is_empty() {
                write!(f, "{} (no hotkeys)", w.name)?;
            } else {
                write!(f, "{} (hotkeys: {})", w.name, hotkeys.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A keyfile larger than [`MAX_KEYFILE_BYTES`].
    #[error("{}: {size} bytes is too large for a keyfile (at most {max} bytes)", path.display())]
    TooLarge {
        /// The keyfile that was too large.
        path: PathBuf,
        /// Its size (or the bytes read before stopping).
        size: u64,
        /// The most bytes a keyfile may hold ([`MAX_KEYFILE_BYTES`]).
        max: u64,
    },
    /// No such wallet.
    #[error("wallet {name:?} not found under {}; wallets there: {existing}", root.display())]
    WalletNotFound {
        /// The name asked for.
        name: String,
        /// The wallets directory.
        root: PathBuf,
        /// What does exist.
        existing: Existing,
    },
    /// No such hotkey in the wallet.
    #[error("hotkey {hotkey:?} not found in wallet {wallet:?} ({}); hotkeys there: {}", path.display(), if existing.is_empty() { "none".to_owned() } else { existing.join(", ") })]
    HotkeyNotFound {
        /// The name of the wallet searched.
        wallet: String,
        /// The hotkey asked for.
        hotkey: String,
        /// The hotkey file looked for.
        path: PathBuf,
        /// Hotkeys that exist.
        existing: Vec<String>,
    },
    /// A keyfile whose JSON is wrong.
    #[error("keyfile {}: {error}", path.display())]
    Keyfile {
        /// The keyfile whose JSON is wrong.
        path: PathBuf,
        /// Which field and why.
        error: KeyfileFormatError,
    },
    /// The password does not open the keyfile. (An encrypted keyfile whose
    /// ciphertext was altered fails the same way: authenticated encryption
    /// cannot tell the two apart. Truncated and malformed files are
    /// [`WalletError::Decrypt`].)
    #[error("wrong password for {role} {} (or its encrypted content was altered)", path.display())]
    WrongPassword {
        /// `coldkey` or `hotkey`.
        role: &'static str,
        /// The keyfile the password was tried on.
        path: PathBuf,
    },
    /// An encrypted keyfile that could not be decrypted for another reason.
    #[error("keyfile {}: {error}", path.display())]
    Decrypt {
        /// The encrypted keyfile.
        path: PathBuf,
        /// What went wrong: a malformed file, an unsupported scheme or a failed key derivation.
        error: DecryptError,
    },
    /// The keyfile holds only a public key.
    #[error("keyfile {} holds only a public key", path.display())]
    NoSecret {
        /// The keyfile, which holds no secret key.
        path: PathBuf,
    },
    /// An encrypted keyfile and no way to ask for its password.
    #[error("{} is encrypted and no password was given (use --password-file, {} or a terminal)", path.display(), password::PASSWORD_ENV)]
    NeedPassword {
        /// The encrypted keyfile that needs a password.
        path: PathBuf,
    },
    /// The target exists and overwriting was not requested.
    #[error("{} already exists; pass --overwrite to replace it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A wallet or hotkey name that is not a plain file name.
    #[error("invalid {what} name {name:?}: use letters, digits, '-', '_' or '.', not a path")]
    InvalidName {
        /// `wallet` or `hotkey`.
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// A key could not be made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A password could not be read.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalletError + '_ {
    move |error| WalletError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), WalletError> {
    crate::fs::write_atomic(path, data, crate::fs::Access::Private).map_err(io_err(path))
}

fn check_name(what: &'static str, name: &str) -> Result<(), WalletError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(WalletError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// A wallet (`<root>/<name>`) with a selected hotkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    root: PathBuf,
    name: String,
    hotkey: String,
}

impl Wallet {
    /// Wallet `name` under `root` (a leading `~` is expanded), hotkey `hotkey`.
    pub fn new(root: impl AsRef<Path>, name: &str, hotkey: &str) -> Wallet {
        Wallet {
            root: crate::fs::expand_tilde(root.as_ref()),
            name: name.to_owned(),
            hotkey: hotkey.to_owned(),
        }
    }

    /// The wallet name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The selected hotkey name.
    pub fn hotkey_name(&self) -> &str {
        &self.hotkey
    }

    /// The same wallet with another hotkey selected.
    pub fn with_hotkey(&self, hotkey: &str) -> Wallet {
        Wallet {
            hotkey: hotkey.to_owned(),
            ..self.clone()
        }
    }

    /// `<root>/<name>`.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// The coldkey file.
    pub fn coldkey_path(&self) -> PathBuf {
        self.dir().join("coldkey")
    }

    /// The public coldkey file.
    pub fn coldkeypub_path(&self) -> PathBuf {
        self.dir().join("coldkeypub.txt")
    }

    /// The selected hotkey's file.
    pub fn hotkey_path(&self) -> PathBuf {
        self.dir().join("hotkeys").join(&self.hotkey)
    }

    /// The selected hotkey's public file.
    pub fn hotkeypub_path(&self) -> PathBuf {
        self.dir()
            .join("hotkeys")
            .join(format!("{}pub.txt", self.hotkey))
    }

    fn check_names(&self) -> Result<(), WalletError> {
        check_name("wallet", &self.name)?;
        check_name("hotkey", &self.hotkey)
    }

    fn not_found(&self) -> WalletError {
        WalletError::WalletNotFound {
            name: self.name.clone(),
            root: self.root.clone(),
            existing: Existing(Wallet::list(&self.root).unwrap_or_default()),
        }
    }

    /// Reads a file, mapping "not found" to a wallet or hotkey error that
    /// lists what exists.
    fn read(&self, path: &Path, hotkey: bool) -> Result<Zeroizing<Vec<u8>>, WalletError> {
        self.check_names()?;
        match crate::fs::read_limited(path, MAX_KEYFILE_BYTES) {
            Ok(data) => Ok(Zeroizing::new(data)),
            Err(crate::fs::ReadError::TooLarge { size, max }) => Err(WalletError::TooLarge {
                path: path.to_path_buf(),
                size,
                max,
            }),
            Err(crate::fs::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.dir().is_dir() {
                    Err(self.not_found())
                } else if hotkey {
                    Err(WalletError::HotkeyNotFound {
                        wallet: self.name.clone(),
                        hotkey: self.hotkey.clone(),
                        path: path.to_path_buf(),
                        existing: hotkey_names(&self.dir()),
                    })
                } else {
                    Err(io_err(path)(e))
                }
            }
            Err(crate::fs::ReadError::Io(e)) => Err(io_err(path)(e)),
            // Not from `read_limited` (a text read's error).
            Err(other) => Err(io_err(path)(std::io::Error::other(other))),
        }
    }

    /// Parses a keyfile, decrypting it with `password` when it is encrypted.
    fn open(
        &self,
        path: &Path,
        role: &'static str,
        data: &[u8],
        password: &mut PasswordFn<'_>,
    ) -> Result<KeyMaterial, WalletError> {
        let plain = match Encryption::detect(data) {
            Encryption::None => Zeroizing::new(data.to_vec()),
            Encryption::LegacyFernet => {
                return Err(WalletError::Decrypt {
                    path: path.to_path_buf(),
                    error: DecryptError::Unsupported("Fernet"),
                });
            }
            _ => {
                // A truncated or mangled file is reported as such, before a
                // password is asked for (a failed decryption cannot tell).
                crypto::check_encrypted(data).map_err(|error| WalletError::Decrypt {
                    path: path.to_path_buf(),
                    error,
                })?;
                let pw = password(path)?;
                crypto::decrypt(data, &pw).map_err(|error| match error {
                    DecryptError::WrongPassword => WalletError::WrongPassword {
                        role,
                        path: path.to_path_buf(),
                    },
                    error => WalletError::Decrypt {
                        path: path.to_path_buf(),
                        error,
                    },
                })?
            }
        };
        keyfile::parse(&plain).map_err(|error| WalletError::Keyfile {
            path: path.to_path_buf(),
            error,
        })
    }

    fn secret(
        &self,
        path: &Path,
        role: &'static str,
        hotkey: bool,
        password: &mut PasswordFn<'_>,
    ) -> Result<Keypair, WalletError> {
        let data = self.read(path, hotkey)?;
        match self.open(path, role, &data, password)? {
            KeyMaterial::Secret(kp) => Ok(*kp),
            KeyMaterial::Public(_) => Err(WalletError::NoSecret {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The account in a keyfile read without decrypting (a public file or a
    /// plaintext keyfile).
    fn public_of(&self, path: PathBuf, hotkey: bool) -> Result<AccountId, WalletError> {
        let data = self.read(&path, hotkey)?;
        keyfile::parse(&data)
            .map(|m| m.account())
            .map_err(|error| WalletError::Keyfile { path, error })
    }

    /// The coldkey's address, from `coldkeypub.txt` (never asks for a password).
    pub fn coldkeypub(&self) -> Result<AccountId, WalletError> {
        self.public_of(self.coldkeypub_path(), false)
    }

    /// The hotkey's address from its public file, or from the hotkey file when
    /// that is plaintext (never asks for a password).
    pub fn hotkey_account(&self) -> Result<AccountId, WalletError> {
        let pub_path = self.hotkeypub_path();
        if pub_path.is_file() {
            return self.public_of(pub_path, true);
        }
        let path = self.hotkey_path();
        let data = self.read(&path, true)?;
        self.open(&path, "hotkey", &data, &mut |p| {
            Err(WalletError::NeedPassword {
                path: p.to_path_buf(),
            })
        })
        .map(|m| m.account())
    }

    /// The coldkey keypair; `password` is asked only if the file is encrypted.
    pub fn coldkey(&self, password: &mut PasswordFn<'_>) -> Result<Keypair, WalletError> {
        self.secret(&self.coldkey_path(), "coldkey", false, password)
    }

    /// The hotkey keypair; `password` is asked only if the file is encrypted.
    pub fn hotkey(&self, password: &mut PasswordFn<'_>) -> Result<Keypair, WalletError> {
        self.secret(&self.hotkey_path(), "hotkey", true, password)
    }

    /// Writes the coldkey (encrypted with `$NACL` when `password` is given)
    /// and `coldkeypub.txt`. Existing files are kept unless `overwrite`.
    pub fn write_coldkey(
        &self,
        kp: &Keypair,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        self.check_names()?;
        let (secret, public) = (self.coldkey_path(), self.coldkeypub_path());
        self.write_pair(&secret, &public, kp, password, overwrite)
    }

    /// Writes the selected hotkey (plaintext unless `password`) and its public file.
    pub fn write_hotkey(
        &self,
        kp: &Keypair,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        self.check_names()?;
        let (secret, public) = (self.hotkey_path(), self.hotkeypub_path());
        self.write_pair(&secret, &public, kp, password, overwrite)
    }

    fn write_pair(
        &self,
        secret_path: &Path,
        public_path: &Path,
        kp: &Keypair,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        if !overwrite {
            for p in [secret_path, public_path] {
                if p.exists() {
                    return Err(WalletError::Exists {
                        path: p.to_path_buf(),
                    });
                }
            }
        }
        let plain = keyfile::render_secret(kp);
        let data = match password {
            Some(pw) => Zeroizing::new(crypto::nacl_encrypt(&plain, pw.as_bytes()).map_err(
                |error| WalletError::Decrypt {
                    path: secret_path.to_path_buf(),
                    error,
                },
            )?),
            None => plain,
        };
        write_private(secret_path, &data)?;
        write_private(public_path, &keyfile::render_public(&kp.account()))
    }

    /// This wallet's addresses from public files only (never asks for a
    /// password); a missing wallet is an error listing those that exist.
    pub fn summary(&self) -> Result<WalletSummary, WalletError> {
        self.check_names()?;
        if !self.dir().is_dir() {
            return Err(self.not_found());
        }
        Ok(self.summarize())
    }

    fn summarize(&self) -> WalletSummary {
        let hotkeys = hotkey_names(&self.dir())
            .into_iter()
            .map(|h| HotkeySummary {
                ss58: self.with_hotkey(&h).hotkey_account().ok(),
                name: h,
            })
            .collect();
        WalletSummary {
            name: self.name.clone(),
            path: self.dir(),
            coldkeypub: self.coldkeypub().ok(),
            hotkeys,
        }
    }

    /// Every wallet under `root` (after `~` expansion), from public files only.
    pub fn list(root: impl AsRef<Path>) -> Result<Vec<WalletSummary>, WalletError> {
        let root = crate::fs::expand_tilde(root.as_ref());
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&root)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                let name = entry.file_name().to_string_lossy().into_owned();
                out.push(Wallet::new(&root, &name, "default").summarize());
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Hotkey names in `<wallet>/hotkeys`, sorted (public files excluded).
fn hotkey_names(wallet_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(wallet_dir.join("hotkeys"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("pub.txt") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests;
