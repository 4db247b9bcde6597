//! Keyfile encryption: `$NACL` (current), `$ANSIBLE_VAULT` 1.1 (legacy, read
//! only) and Fernet (`gAAAAA`, obsolete: reported, not decrypted).

use argon2::{Algorithm, Argon2, Params, Version};
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use zeroize::Zeroizing;

/// btwallet's fixed Argon2i salt for `$NACL` keyfiles.
pub const NACL_SALT: [u8; 16] = *b"\x13q\x83\xdf\xf1Z\t\xbc\x9c\x90\xb5Q\x879\xe9\xb1";
/// Argon2i memory cost in KiB (libsodium's `MEMLIMIT_SENSITIVE`, 512 MiB).
pub const NACL_MEMORY_KIB: u32 = 512 * 1024;
/// Argon2i passes (libsodium's `OPSLIMIT_SENSITIVE`).
pub const NACL_PASSES: u32 = 8;

const NACL_PREFIX: &[u8] = b"$NACL";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The shortest plaintext a secret keyfile can have, in bytes: the smallest
/// JSON holding a key is `{"secretPhrase":"…"}` with a 12-word mnemonic of
/// 3-letter words (66 bytes) or `{"secretSeed":"…"}` (81). An encrypted
/// keyfile with less ciphertext than this was cut short.
pub const MIN_KEYFILE_PLAINTEXT: usize = 64;

/// How a keyfile's bytes are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encryption {
    /// `$NACL`: Argon2i + XSalsa20-Poly1305 secretbox.
    Nacl,
    /// `$ANSIBLE_VAULT;1.1;AES256`.
    AnsibleVault,
    /// Fernet (`gAAAAA…`), from very old bittensor releases.
    LegacyFernet,
    /// Plain JSON.
    None,
}

impl Encryption {
    /// Detects the scheme from the file's first bytes.
    pub fn detect(data: &[u8]) -> Encryption {
        if data.starts_with(NACL_PREFIX) {
            Encryption::Nacl
        } else if data.starts_with(b"$ANSIBLE_VAULT") {
            Encryption::AnsibleVault
        } else if data.starts_with(b"gAAAAA") {
            Encryption::LegacyFernet
        } else {
            Encryption::None
        }
    }
}

/// Why decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The password does not open the file (or the file was altered).
    #[error("wrong password")]
    WrongPassword,
    /// Not a well-formed encrypted keyfile.
    #[error("malformed {scheme} data: {reason}")]
    Malformed {
        /// The scheme the prefix announced.
        scheme: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A scheme this build does not decrypt.
    #[error(
        "unsupported legacy format {0} (decrypt it with an old bittensor release and re-encrypt)"
    )]
    Unsupported(&'static str),
    /// Key derivation could not run (e.g. out of memory).
    #[error("key derivation failed: {0}")]
    Kdf(#[source] argon2::Error),
    /// The operating system gave no randomness for a nonce.
    #[error("no system randomness: {0}")]
    NoRandomness(#[source] getrandom::Error),
    /// The cipher refused to encrypt (a plaintext beyond its limits).
    #[error("encryption failed")]
    Encrypt,
    /// The input was not encrypted at all.
    #[error("data is not encrypted")]
    NotEncrypted,
}

/// The secretbox key for `password`: Argon2i v1.3, btwallet's salt, 8 passes,
/// 512 MiB, parallelism 1. Deliberately slow (seconds).
pub fn nacl_key(password: &[u8]) -> Result<Zeroizing<[u8; 32]>, DecryptError> {
    let params =
        Params::new(NACL_MEMORY_KIB, NACL_PASSES, 1, Some(32)).map_err(DecryptError::Kdf)?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
        .hash_password_into(password, &NACL_SALT, &mut key[..])
        .map_err(DecryptError::Kdf)?;
    Ok(key)
}

/// Encrypts `plaintext` as `$NACL` ‖ nonce ‖ tag ‖ ciphertext (PyNaCl's
/// `SecretBox.encrypt` layout).
pub fn nacl_encrypt(plaintext: &[u8], password: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let key = nacl_key(password)?;
    nacl_encrypt_with_key(plaintext, &key)
}

/// [`nacl_encrypt`] with an already derived key.
pub fn nacl_encrypt_with_key(plaintext: &[u8], key: &[u8; 32]) -> Result<Vec<u8>, DecryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(DecryptError::NoRandomness)?;
    let cipher = XSalsa20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .map_err(|_| DecryptError::Encrypt)?;
    let mut out = Vec::with_capacity(NACL_PREFIX.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(NACL_PREFIX);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Checks the shape of `$NACL` data before any expensive key derivation.
fn nacl_parts(data: &[u8]) -> Result<(&[u8], &[u8]), DecryptError> {
    let body = data
        .strip_prefix(NACL_PREFIX)
        .ok_or(DecryptError::NotEncrypted)?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(DecryptError::Malformed {
            scheme: "$NACL",
            reason: format!(
                "{} bytes after the prefix, at least {} needed (nonce and tag)",
                body.len(),
                NONCE_LEN + TAG_LEN
            ),
        });
    }
    Ok(body.split_at(NONCE_LEN))
}

/// Decrypts `$NACL` data with `password`.
pub fn nacl_decrypt(data: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    nacl_parts(data)?;
    let key = nacl_key(password)?;
    nacl_decrypt_with_key(data, &key)
}

/// [`nacl_decrypt`] with an already derived key.
pub fn nacl_decrypt_with_key(
    data: &[u8],
    key: &[u8; 32],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let (nonce, sealed) = nacl_parts(data)?;
    XSalsa20Poly1305::new(key.into())
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map(Zeroizing::new)
        .map_err(|_| DecryptError::WrongPassword)
}

fn vault_malformed(reason: impl Into<String>) -> DecryptError {
    DecryptError::Malformed {
        scheme: "$ANSIBLE_VAULT",
        reason: reason.into(),
    }
}

/// Checks that an encrypted keyfile is whole and well formed, without a
/// password: the prefix, nonce and tag of `$NACL` and at least
/// [`MIN_KEYFILE_PLAINTEXT`] bytes of ciphertext; the header, hex fields and
/// whole AES blocks of ansible-vault. A decryption that then fails is a
/// wrong password (or an altered ciphertext, which authenticated encryption
/// cannot tell from it). Plain and Fernet data pass unchecked.
pub fn check_encrypted(data: &[u8]) -> Result<(), DecryptError> {
    match Encryption::detect(data) {
        Encryption::Nacl => {
            let (_, sealed) = nacl_parts(data)?;
            let ciphertext = sealed.len() - TAG_LEN;
            if ciphertext < MIN_KEYFILE_PLAINTEXT {
                return Err(DecryptError::Malformed {
                    scheme: "$NACL",
                    reason: format!(
                        "{ciphertext} bytes of ciphertext, fewer than the shortest keyfile's \
                         {MIN_KEYFILE_PLAINTEXT}: the file is truncated"
                    ),
                });
            }
            Ok(())
        }
        Encryption::AnsibleVault => {
            let (_, _, body) = vault_parts(data)?;
            if body.len() < MIN_KEYFILE_PLAINTEXT || body.len() % 16 != 0 {
                return Err(vault_malformed(format!(
                    "{} bytes of ciphertext, not whole 16-byte blocks of a keyfile: \
                     the file is truncated",
                    body.len()
                )));
            }
            Ok(())
        }
        Encryption::LegacyFernet | Encryption::None => Ok(()),
    }
}

/// An ansible-vault file's salt, HMAC and ciphertext.
type VaultParts = (Vec<u8>, Vec<u8>, Vec<u8>);

fn vault_parts(data: &[u8]) -> Result<VaultParts, DecryptError> {
    let text = std::str::from_utf8(data).map_err(|_| vault_malformed("not UTF-8"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").trim().split(';').collect();
    if header.len() < 3
        || header[0] != "$ANSIBLE_VAULT"
        || !matches!(header[1], "1.1" | "1.2")
        || header[2] != "AES256"
    {
        return Err(vault_malformed(format!(
            "unsupported header {:?}",
            header.join(";")
        )));
    }
    let body: String = lines.map(str::trim).collect();
    let inner = hex::decode(body).map_err(|_| vault_malformed("body is not hex"))?;
    let inner = String::from_utf8(inner).map_err(|_| vault_malformed("inner text is not UTF-8"))?;
    let mut parts = inner.split('\n');
    let mut field = |name: &str| {
        parts
            .next()
            .ok_or_else(|| vault_malformed(format!("missing {name}")))
            .and_then(|h| {
                hex::decode(h.trim()).map_err(|_| vault_malformed(format!("{name} is not hex")))
            })
    };
    Ok((field("salt")?, field("hmac")?, field("ciphertext")?))
}

/// Decrypts an ansible-vault 1.1 (AES256) keyfile: PBKDF2-HMAC-SHA256 of the
/// password (10,000 rounds, the vault's salt) gives the AES-256-CTR key, the
/// HMAC-SHA256 key and the IV; the HMAC is checked before decrypting.
pub fn vault_decrypt(data: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    use hmac::Mac;

    let (salt, tag, mut body) = vault_parts(data)?;
    let mut keys = Zeroizing::new([0u8; 80]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, 10_000, &mut keys[..]);
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&keys[32..64])
        .map_err(|_| vault_malformed("bad HMAC key"))?;
    mac.update(&body);
    mac.verify_slice(&tag)
        .map_err(|_| DecryptError::WrongPassword)?;
    ctr::Ctr128BE::<aes::Aes256>::new(keys[..32].into(), keys[64..80].into())
        .apply_keystream(&mut body);
    let body = Zeroizing::new(body);
    // PKCS#7 padding.
    let pad = usize::from(
        *body
            .last()
            .ok_or_else(|| vault_malformed("empty ciphertext"))?,
    );
    if pad == 0
        || pad > 16
        || pad > body.len()
        || body[body.len() - pad..]
            .iter()
            .any(|&b| usize::from(b) != pad)
    {
        return Err(vault_malformed("bad padding"));
    }
    Ok(Zeroizing::new(body[..body.len() - pad].to_vec()))
}

/// Decrypts `data` with whichever scheme its prefix names.
pub fn decrypt(data: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    match Encryption::detect(data) {
        Encryption::Nacl => nacl_decrypt(data, password.as_bytes()),
        Encryption::AnsibleVault => vault_decrypt(data, password),
        Encryption::LegacyFernet => Err(DecryptError::Unsupported("Fernet")),
        Encryption::None => Err(DecryptError::NotEncrypted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A fixed key keeps these tests fast; `nacl_key` itself is exercised
    // (once, it takes seconds) by the btcli interop tests and the bench.
    const KEY: [u8; 32] = [7u8; 32];

    #[test]
    fn nacl_round_trip_and_tamper() {
        let sealed = nacl_encrypt_with_key(b"{\"secretPhrase\":\"x\"}", &KEY).unwrap();
        assert!(sealed.starts_with(b"$NACL"));
        assert_eq!(sealed.len(), 5 + 24 + 16 + 20);
        assert_eq!(Encryption::detect(&sealed), Encryption::Nacl);
        assert_eq!(
            &nacl_decrypt_with_key(&sealed, &KEY).unwrap()[..],
            b"{\"secretPhrase\":\"x\"}"
        );
        assert_eq!(
            nacl_decrypt_with_key(&sealed, &[8u8; 32]),
            Err(DecryptError::WrongPassword)
        );
        for i in 5..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                nacl_decrypt_with_key(&bad, &KEY),
                Err(DecryptError::WrongPassword),
                "byte {i}"
            );
        }
        assert!(matches!(
            nacl_decrypt(b"$NACLshort", b"pw"),
            Err(DecryptError::Malformed { .. })
        ));
    }

    #[test]
    fn pynacl_layout_vector() {
        // PyNaCl 1.5: SecretBox(bytes([7]*32)).encrypt(b'{"k":1}', bytes([1]*24))[24:]
        // is the Poly1305 tag followed by the ciphertext.
        let mut data = b"$NACL".to_vec();
        data.extend_from_slice(&[1u8; 24]);
        data.extend_from_slice(
            &hex::decode("245c84c0d477e1ecece3613550b4719bf2c929fc14f183").unwrap(),
        );
        assert_eq!(
            &nacl_decrypt_with_key(&data, &KEY).unwrap()[..],
            br#"{"k":1}"#
        );
    }

    #[test]
    fn ansible_vault_vector() {
        // From the ansible-vault-rs documentation (made with ansible-vault):
        // "lipsum" under the password "hush".
        let vault = "$ANSIBLE_VAULT;1.1;AES256
33666638363066623664653234386231616339646438303933633830376132633330353032393364
3363373531316565663539326661393165323030383934380a366133633066623963303665303238
34633364626339313035633763313034366538363537306265316532663531363632383333353737
3863616362363731660a666161623033666331663937626433313432616266393830376431393665
3965
";
        assert_eq!(
            Encryption::detect(vault.as_bytes()),
            Encryption::AnsibleVault
        );
        assert_eq!(
            &vault_decrypt(vault.as_bytes(), "hush").unwrap()[..],
            b"lipsum"
        );
        assert_eq!(
            vault_decrypt(vault.as_bytes(), "nope"),
            Err(DecryptError::WrongPassword)
        );
        assert!(matches!(
            vault_decrypt(b"$ANSIBLE_VAULT;1.1;AES256\nzz", "hush"),
            Err(DecryptError::Malformed { .. })
        ));
        assert_eq!(
            decrypt(b"gAAAAABfoo", "x"),
            Err(DecryptError::Unsupported("Fernet"))
        );
        assert_eq!(decrypt(b"{}", "x"), Err(DecryptError::NotEncrypted));
        // Six bytes of plaintext are no keyfile: check_encrypted says so.
        assert_eq!(
            check_encrypted(vault.as_bytes()),
            Err(vault_malformed(
                "16 bytes of ciphertext, not whole 16-byte blocks of a keyfile: the file is truncated"
            ))
        );
    }

    #[test]
    fn check_encrypted_tells_truncation_from_a_wrong_key() {
        let sealed = nacl_encrypt_with_key(&[b'x'; MIN_KEYFILE_PLAINTEXT], &KEY).unwrap();
        assert_eq!(check_encrypted(&sealed), Ok(()));
        assert_eq!(
            check_encrypted(&sealed[..sealed.len() - 1]),
            Err(DecryptError::Malformed {
                scheme: "$NACL",
                reason: "63 bytes of ciphertext, fewer than the shortest keyfile's 64: \
                         the file is truncated"
                    .into()
            })
        );
        assert!(matches!(
            check_encrypted(b"$NACL"),
            Err(DecryptError::Malformed { .. })
        ));
        assert_eq!(check_encrypted(b"{}"), Ok(()));
        assert_eq!(check_encrypted(b"gAAAAABfoo"), Ok(()));
    }
}
