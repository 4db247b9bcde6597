//! Where wallet passwords come from (never from a command-line flag).
//!
//! In order: a password file, the `AKIHABARA_WALLET_PASSWORD` variable,
//! bittensor's own `BT_PW_<path>` variable, then (in the CLI) a no-echo
//! prompt on the terminal.

use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

/// The environment variable akihabara reads a wallet password from.
pub const PASSWORD_ENV: &str = "AKIHABARA_WALLET_PASSWORD";

/// The largest password file read, in bytes (a password is one line).
pub const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// Why a password could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password file could not be read.
    #[error("password file {}: {error}", path.display())]
    File {
        /// The password file that could not be read.
        path: std::path::PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The password file is larger than [`MAX_PASSWORD_FILE_BYTES`].
    #[error("password file {}: {size} bytes is too large for a password (at most {max} bytes)", path.display())]
    TooLarge {
        /// The password file that was too large.
        path: std::path::PathBuf,
        /// Its size (or the bytes read before stopping).
        size: u64,
        /// The most bytes a password file may hold ([`MAX_PASSWORD_FILE_BYTES`]).
        max: u64,
    },
    /// The password file is not UTF-8 text.
    #[error("password file {}: not UTF-8 text", path.display())]
    NotText {
        /// The password file that is not UTF-8.
        path: std::path::PathBuf,
    },
    /// A `BT_PW_…` variable that is not the base64 of a XOR-ed password.
    #[error("environment variable {0} is not a valid bittensor password variable")]
    BadBtPw(String),
}

/// The `BT_PW_…` variable name bittensor uses for the keyfile at `path`:
/// the path with `/` and `.` replaced by `_`, upper-cased.
///
/// ```
/// use akihabara_core::wallet::password::bt_pw_var_name;
/// let name = bt_pw_var_name(std::path::Path::new("/root/.bittensor/wallets/default/coldkey"));
/// assert_eq!(name, "BT_PW__ROOT__BITTENSOR_WALLETS_DEFAULT_COLDKEY");
/// ```
pub fn bt_pw_var_name(path: &Path) -> String {
    let p = path
        .to_string_lossy()
        .replace([std::path::MAIN_SEPARATOR, '.'], "_");
    format!("BT_PW_{}", p.to_uppercase())
}

fn xor_with(name: &str, data: &[u8]) -> Vec<u8> {
    let key = name.as_bytes();
    data.iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % key.len()])
        .collect()
}

/// The value bittensor stores in `name` for `password`: base64(password XOR name).
/// This is obfuscation, not encryption.
pub fn bt_pw_encode(name: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xor_with(name, password.as_bytes()))
}

/// Decodes a `BT_PW_…` value.
pub fn bt_pw_decode(name: &str, value: &str) -> Result<Zeroizing<String>, PasswordError> {
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| PasswordError::BadBtPw(name.to_owned()))?,
    );
    String::from_utf8(xor_with(name, &raw))
        .map(Zeroizing::new)
        .map_err(|_| PasswordError::BadBtPw(name.to_owned()))
}

/// Reads a password file; one trailing newline is dropped.
/// Files over [`MAX_PASSWORD_FILE_BYTES`] are refused before they are read.
pub fn from_file(path: &Path) -> Result<Zeroizing<String>, PasswordError> {
    let text = Zeroizing::new(
        crate::fs::read_text_limited(path, MAX_PASSWORD_FILE_BYTES).map_err(|e| match e {
            crate::fs::ReadError::TooLarge { size, max } => PasswordError::TooLarge {
                path: path.to_path_buf(),
                size,
                max,
            },
            crate::fs::ReadError::NotText { .. } => PasswordError::NotText {
                path: path.to_path_buf(),
            },
            crate::fs::ReadError::Io(error) => PasswordError::File {
                path: path.to_path_buf(),
                error,
            },
        })?,
    );
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// The password for the keyfile at `keyfile` from the environment:
/// `AKIHABARA_WALLET_PASSWORD`, then bittensor's `BT_PW_<path>`.
pub fn from_env(keyfile: &Path) -> Result<Option<Zeroizing<String>>, PasswordError> {
    if let Ok(pw) = std::env::var(PASSWORD_ENV) {
        return Ok(Some(Zeroizing::new(pw)));
    }
    let name = bt_pw_var_name(keyfile);
    match std::env::var(&name) {
        Ok(value) => bt_pw_decode(&name, &value).map(Some),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bt_pw_round_trip() {
        let name = bt_pw_var_name(Path::new("/home/me/.bittensor/wallets/w1/coldkey"));
        assert_eq!(name, "BT_PW__HOME_ME__BITTENSOR_WALLETS_W1_COLDKEY");
        let value = bt_pw_encode(
            &name,
            "correct horse battery staple, longer than the name itself?",
        );
        assert_eq!(
            &*bt_pw_decode(&name, &value).unwrap(),
            "correct horse battery staple, longer than the name itself?"
        );
        assert!(bt_pw_decode(&name, "%%%").is_err());
    }

    #[test]
    fn password_file_drops_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret \n\n").unwrap();
        assert_eq!(&*from_file(&p).unwrap(), "secret \n");
        std::fs::write(&p, "secret\r\n").unwrap();
        assert_eq!(&*from_file(&p).unwrap(), "secret");
        assert!(from_file(&dir.path().join("missing")).is_err());
        std::fs::write(&p, vec![b'x'; 4097]).unwrap();
        assert_eq!(
            from_file(&p).unwrap_err().to_string(),
            format!(
                "password file {}: 4097 bytes is too large for a password (at most 4096 bytes)",
                p.display()
            )
        );
        std::fs::write(&p, vec![b'x'; 4096]).unwrap();
        assert_eq!(from_file(&p).unwrap().len(), 4096);
    }
}
