//! Login access for allocations (subnet 27 style): a validator's SSH public
//! key installed on an executor for the allocation's lifetime, and the
//! connection details sealed to the validator.
//!
//! The key goes into the executor's `authorized_keys` file (the ssh backend's
//! configured user, which the operator dedicates to allocations), restricted
//! with `restrict,pty` (a shell, no forwarding) and tagged with the
//! allocation's id so that revoking removes exactly that line. Creating a
//! user per allocation would need root on the executor and is not done.
//!
//! Connection details are sealed with a NaCl sealed box (X25519,
//! XSalsa20-Poly1305) to a public key the validator sends with its request:
//! only the holder of the matching secret key can read them.

use serde::{Deserialize, Serialize};

use super::ExecutorError;

/// The line tag that marks an allocation's key.
pub const MARKER_PREFIX: &str = "akihabara-allocation:";

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An OpenSSH public key, checked: a known type and a base64 body; the
/// comment is dropped and options are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SshPublicKey {
    kind: String,
    body: String,
}

impl SshPublicKey {
    /// Parses `ssh-ed25519 AAAA… [comment]` (a `.pub` file's content: the
    /// trailing newline is allowed).
    pub fn parse(text: &str) -> Result<SshPublicKey, ExecutorError> {
        let text = text.trim();
        let bad = |why: &str| ExecutorError::BadJob(format!("SSH public key: {why}"));
        if text.contains(['\n', '\r', '\0']) {
            return Err(bad("must be one line"));
        }
        let mut parts = text.split_whitespace();
        let kind = parts.next().ok_or_else(|| bad("empty"))?;
        if !KEY_TYPES.contains(&kind) {
            return Err(bad(&format!(
                "unknown key type {kind:?} (options before the key are not accepted)"
            )));
        }
        let body = parts.next().ok_or_else(|| bad("no key after the type"))?;
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad("the key is not base64"))?;
        // The blob starts with its own type name, length-prefixed.
        let named = raw
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|n| raw.get(4..4 + n));
        if named != Some(kind.as_bytes()) {
            return Err(bad("the key blob does not match its type"));
        }
        Ok(SshPublicKey {
            kind: kind.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The `authorized_keys` line for allocation `id`. Every session it
    /// opens runs with `AKIHABARA_ALLOCATION=<id>` in its environment (a
    /// forced command that then runs what the renter asked for, or a login
    /// shell), so revoking the allocation can end the renter's processes.
    pub fn authorized_line(&self, allocation_id: &str) -> String {
        format!(
            "restrict,pty,command=\"export {SESSION_ENV}={allocation_id}; exec ${{SHELL:-/bin/sh}} -c \\\"${{SSH_ORIGINAL_COMMAND:-exec ${{SHELL:-/bin/sh}} -l}}\\\"\" {} {} {MARKER_PREFIX}{allocation_id}",
            self.kind, self.body
        )
    }
}

impl TryFrom<String> for SshPublicKey {
    type Error = ExecutorError;
    fn try_from(s: String) -> Result<SshPublicKey, ExecutorError> {
        SshPublicKey::parse(&s)
    }
}

impl From<SshPublicKey> for String {
    fn from(k: SshPublicKey) -> String {
        format!("{} {}", k.kind, k.body)
    }
}

/// What an executor is asked to grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessGrant {
    /// The allocation (letters, digits, `-` only).
    pub allocation_id: String,
    /// The key to let in.
    pub key: SshPublicKey,
}

/// How to log in to an allocated executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginDetails {
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// User to log in as.
    pub user: String,
}

/// Checks an allocation id before it reaches a remote shell or a file.
pub fn check_allocation_id(id: &str) -> Result<(), ExecutorError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ExecutorError::BadJob(format!(
            "allocation id {id:?} must be 1 to 64 letters, digits or '-'"
        )));
    }
    Ok(())
}

/// POSIX-sh script that appends line `$2` to file `$1` (default
/// `$HOME/.ssh/authorized_keys`), creating it private.
pub(crate) const INSTALL_SCRIPT: &str = r#"F=${1:-$HOME/.ssh/authorized_keys}; umask 077; mkdir -p "$(dirname "$F")" && printf '%s\n' "$2" >> "$F""#;

/// The variable that marks an allocation's sessions.
pub const SESSION_ENV: &str = "AKIHABARA_ALLOCATION";

/// POSIX-sh script that removes every line of file `$1` containing `$2`
/// (the allocation's marker), then kills every process that carries
/// `AKIHABARA_ALLOCATION=$3` in its environment: the renter's shells and
/// what they started. A renter who deliberately clears that variable and
/// detaches is not found this way; an executor account dedicated to rentals
/// bounds what such a process can reach.
pub(crate) const REVOKE_SCRIPT: &str = r#"F=${1:-$HOME/.ssh/authorized_keys}; if [ -f "$F" ]; then umask 077; { grep -v -F -- "$2" "$F" || true; } > "$F.akihabara-tmp" && mv "$F.akihabara-tmp" "$F" || exit 1; fi; [ -n "$3" ] || exit 0; for i in 1 2 3; do found=; for p in /proc/[0-9]*; do [ "${p#/proc/}" = "$$" ] && continue; if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qxF -- "AKIHABARA_ALLOCATION=$3"; then kill -9 "${p#/proc/}" 2>/dev/null && found=1; fi; done; [ -n "$found" ] || break; sleep 0.1; done; exit 0"#;

/// A fresh X25519 key pair for receiving sealed details (validator side).
pub fn new_sealing_key() -> crypto_box::SecretKey {
    crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng)
}

/// The public half of `secret`, hex, as an `Allocate` request carries it.
pub fn sealing_public_hex(secret: &crypto_box::SecretKey) -> String {
    hex::encode(secret.public_key().as_bytes())
}

/// The validator's X25519 public key that login details are sealed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealingKey(crypto_box::PublicKey);

impl SealingKey {
    /// Parses 32 bytes of hex (an optional `0x` prefix is allowed).
    pub fn parse(public_hex: &str) -> Result<SealingKey, ExecutorError> {
        let bytes: [u8; 32] = hex::decode(public_hex.trim_start_matches("0x"))
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                ExecutorError::BadJob("the sealing key must be 32 bytes of hex (X25519)".into())
            })?;
        Ok(SealingKey(crypto_box::PublicKey::from(bytes)))
    }
}

/// Seals `details` to `key` (miner side).
pub fn seal_details(details: &LoginDetails, key: &SealingKey) -> Result<String, ExecutorError> {
    let plain = serde_json::to_vec(details)
        .map_err(|e| ExecutorError::Failed(format!("encoding the connection details: {e}")))?;
    let sealed = key
        .0
        .seal(&mut crypto_box::aead::OsRng, &plain)
        .map_err(|_| ExecutorError::Failed("sealing the connection details failed".into()))?;
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}

/// Opens details sealed to `secret` (validator side).
pub fn open_details(
    sealed_b64: &str,
    secret: &crypto_box::SecretKey,
) -> Result<LoginDetails, ExecutorError> {
    use base64::Engine as _;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(sealed_b64)
        .map_err(|_| ExecutorError::BadJob("sealed details are not base64".into()))?;
    let plain = secret
        .unseal(&sealed)
        .map_err(|_| ExecutorError::BadJob("sealed details do not open with this key".into()))?;
    serde_json::from_slice(&plain)
        .map_err(|e| ExecutorError::BadJob(format!("sealed details are not login details: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0 me@host";

    #[test]
    fn keys_are_checked_and_tagged() {
        let k = SshPublicKey::parse(KEY).expect("key");
        assert_eq!(
            k.authorized_line("a-1"),
            "restrict,pty,command=\"export AKIHABARA_ALLOCATION=a-1; exec ${SHELL:-/bin/sh} -c \\\"${SSH_ORIGINAL_COMMAND:-exec ${SHELL:-/bin/sh} -l}\\\"\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0 akihabara-allocation:a-1"
        );
        for bad in [
            "",
            "command=\"sh\" ssh-ed25519 AAAA",
            "ssh-ed25519",
            "ssh-ed25519 !!!",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBvsOvNUmh+v4b4sQkz9ORcTT2VF5wY8r2E4gT7Rcxh0",
            "ssh-ed25519 AAAA\nssh-ed25519 AAAA",
        ] {
            assert!(SshPublicKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(check_allocation_id("ab-12").is_ok());
        for bad in ["", "a b", "a;rm", &"x".repeat(65)] {
            assert!(check_allocation_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn details_open_only_with_the_validators_key() {
        let secret = new_sealing_key();
        let d = LoginDetails {
            host: "10.0.0.2".into(),
            port: 22,
            user: "rent".into(),
        };
        let key = SealingKey::parse(&sealing_public_hex(&secret)).expect("key");
        let sealed = seal_details(&d, &key).expect("seal");
        assert_eq!(open_details(&sealed, &secret).expect("open"), d);
        assert!(open_details(&sealed, &new_sealing_key()).is_err());
        assert!(SealingKey::parse("abcd").is_err());
    }
}
