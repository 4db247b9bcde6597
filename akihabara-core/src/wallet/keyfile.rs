//! The btcli keyfile JSON: parsing with field-level errors, and writing.
//!
//! A keyfile is one JSON object with `accountId` and `publicKey` (`0x` + 32
//! bytes hex), `privateKey` (`0x` + 64 bytes: sr25519 secret and nonce),
//! `secretPhrase`, `secretSeed` (`0x` + 32-byte mini-secret), `ss58Address`
//! and `cryptoType` (1 = sr25519; missing means 1). Public files
//! (`coldkeypub.txt`, `hotkeys/<name>pub.txt`) carry only the public fields.
//! Loaders prefer `secretPhrase`, then `secretSeed`, then `privateKey`.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keypair::Keypair;
use crate::AccountId;

/// What a keyfile holds.
#[derive(Debug)]
pub enum KeyMaterial {
    /// A full keypair.
    Secret(Box<Keypair>),
    /// Only the public key.
    Public(AccountId),
}

impl KeyMaterial {
    /// The account either way.
    pub fn account(&self) -> AccountId {
        match self {
            KeyMaterial::Secret(k) => k.account(),
            KeyMaterial::Public(a) => *a,
        }
    }
}

/// Why keyfile JSON was rejected; `field` names the JSON key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct KeyfileFormatError {
    /// The JSON field (or `document`).
    pub field: String,
    /// What was wrong with it.
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> KeyfileFormatError {
    KeyfileFormatError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct RawKeyfile {
    #[serde(rename = "accountId")]
    account_id: Option<String>,
    #[serde(rename = "publicKey")]
    public_key: Option<String>,
    #[serde(rename = "privateKey")]
    private_key: Option<String>,
    #[serde(rename = "secretPhrase")]
    secret_phrase: Option<String>,
    #[serde(rename = "secretSeed")]
    secret_seed: Option<String>,
    #[serde(rename = "ss58Address")]
    ss58_address: Option<String>,
    #[serde(rename = "cryptoType")]
    #[zeroize(skip)]
    crypto_type: Option<i64>,
}

fn hex_bytes<const N: usize>(
    field: &str,
    text: &str,
) -> Result<Zeroizing<[u8; N]>, KeyfileFormatError> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let bytes = Zeroizing::new(hex::decode(t).map_err(|_| bad(field, "not hex"))?);
    if bytes.len() != N {
        return Err(bad(field, format!("{} bytes, expected {N}", bytes.len())));
    }
    let mut out = Zeroizing::new([0u8; N]);
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// Parses plaintext keyfile JSON.
pub fn parse(data: &[u8]) -> Result<KeyMaterial, KeyfileFormatError> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    let raw: RawKeyfile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "document".to_owned()
        } else {
            path
        };
        // The message never quotes secret values: serde reports types, not content.
        bad(&field, e.into_inner().to_string())
    })?;
    match raw.crypto_type {
        None | Some(1) => {}
        Some(0) => {
            return Err(bad(
                "cryptoType",
                "0 (ed25519) is not supported; akihabara keys are sr25519",
            ));
        }
        Some(n) => {
            return Err(bad(
                "cryptoType",
                format!("unknown crypto type {n} (1 = sr25519)"),
            ));
        }
    }
    let material = if let Some(phrase) = &raw.secret_phrase {
        let kp = Keypair::from_mnemonic(phrase).map_err(|e| bad("secretPhrase", e.to_string()))?;
        KeyMaterial::Secret(Box::new(kp))
    } else if let Some(seed) = &raw.secret_seed {
        KeyMaterial::Secret(Box::new(Keypair::from_seed(*hex_bytes::<32>(
            "secretSeed",
            seed,
        )?)))
    } else if let Some(private) = &raw.private_key {
        let bytes = hex_bytes::<64>("privateKey", private)?;
        let kp =
            Keypair::from_private_key(&bytes[..]).map_err(|e| bad("privateKey", e.to_string()))?;
        KeyMaterial::Secret(Box::new(kp))
    } else if let Some(ss58) = &raw.ss58_address {
        KeyMaterial::Public(
            ss58.parse()
                .map_err(|e: crate::Ss58Error| bad("ss58Address", e.to_string()))?,
        )
    } else if let Some(public) = raw.public_key.as_ref().or(raw.account_id.as_ref()) {
        let field = if raw.public_key.is_some() {
            "publicKey"
        } else {
            "accountId"
        };
        KeyMaterial::Public(AccountId::from_bytes(*hex_bytes::<32>(field, public)?))
    } else {
        return Err(bad(
            "document",
            "no key: expected secretPhrase, secretSeed, privateKey, ss58Address or publicKey",
        ));
    };
    // Every public field present must agree with the key.
    let account = material.account();
    if let Some(ss58) = &raw.ss58_address {
        let parsed: AccountId = ss58
            .parse()
            .map_err(|e: crate::Ss58Error| bad("ss58Address", e.to_string()))?;
        if parsed != account {
            return Err(bad(
                "ss58Address",
                format!("{ss58} does not match the key ({account})"),
            ));
        }
    }
    for (field, value) in [
        ("publicKey", &raw.public_key),
        ("accountId", &raw.account_id),
    ] {
        if let Some(v) = value
            && *hex_bytes::<32>(field, v)? != *account.as_bytes()
        {
            return Err(bad(field, format!("does not match the key ({account})")));
        }
    }
    Ok(material)
}

#[derive(Serialize)]
struct OutKeyfile<'a> {
    #[serde(rename = "accountId")]
    account_id: &'a str,
    #[serde(rename = "publicKey")]
    public_key: &'a str,
    #[serde(rename = "privateKey", skip_serializing_if = "Option::is_none")]
    private_key: Option<&'a str>,
    #[serde(rename = "secretPhrase", skip_serializing_if = "Option::is_none")]
    secret_phrase: Option<&'a str>,
    #[serde(rename = "secretSeed", skip_serializing_if = "Option::is_none")]
    secret_seed: Option<&'a str>,
    #[serde(rename = "ss58Address")]
    ss58_address: &'a str,
    #[serde(rename = "cryptoType")]
    crypto_type: u8,
}

fn render(out: &OutKeyfile<'_>) -> Zeroizing<Vec<u8>> {
    // A struct of strings always serialises.
    Zeroizing::new(serde_json::to_vec(out).unwrap_or_default())
}

/// The full keyfile JSON for `kp`, as btcli writes it (one line).
pub fn render_secret(kp: &Keypair) -> Zeroizing<Vec<u8>> {
    let account = kp.account();
    let public = format!("0x{}", hex::encode(account.as_bytes()));
    let private = Zeroizing::new(format!("0x{}", hex::encode(kp.private_key().as_slice())));
    let seed = kp
        .seed()
        .map(|s| Zeroizing::new(format!("0x{}", hex::encode(s))));
    let ss58 = account.to_ss58();
    render(&OutKeyfile {
        account_id: &public,
        public_key: &public,
        private_key: Some(&private),
        secret_phrase: kp.mnemonic(),
        secret_seed: seed.as_deref().map(String::as_str),
        ss58_address: &ss58,
        crypto_type: 1,
    })
}

/// The public keyfile JSON for `account` (`coldkeypub.txt`, `<hotkey>pub.txt`).
pub fn render_public(account: &AccountId) -> Vec<u8> {
    let public = format!("0x{}", hex::encode(account.as_bytes()));
    let ss58 = account.to_ss58();
    render(&OutKeyfile {
        account_id: &public,
        public_key: &public,
        private_key: None,
        secret_phrase: None,
        secret_seed: None,
        ss58_address: &ss58,
        crypto_type: 1,
    })
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by bittensor-wallet 4.1.1 (`create_new_hotkey`, no password).
    const BTCLI_HOTKEY: &str = r#"{"secretSeed":"0xa5a5eacc42c41174f493fe0f5647a59ab1fb45629210e8a0444b234d1185fd16","ss58Address":"5FPRQNGKhETmB54SxwTck9h2YZAaXzQ5wXtbKjk22kCyQfWj","publicKey":"0x92faf9c8e2f73c134fb4ff2597da619195d4ecca10791bd94a22ae20073b855d","secretPhrase":"speed weasel option galaxy kiss explain car knee vibrant grain then panic","cryptoType":1,"accountId":"0x92faf9c8e2f73c134fb4ff2597da619195d4ecca10791bd94a22ae20073b855d"}"#;
    const BTCLI_PUB: &str = r#"{"accountId":"0x92faf9c8e2f73c134fb4ff2597da619195d4ecca10791bd94a22ae20073b855d","publicKey":"0x92faf9c8e2f73c134fb4ff2597da619195d4ecca10791bd94a22ae20073b855d","ss58Address":"5FPRQNGKhETmB54SxwTck9h2YZAaXzQ5wXtbKjk22kCyQfWj","cryptoType":1}"#;

    #[test]
    fn reads_btcli_files() {
        let KeyMaterial::Secret(kp) = parse(BTCLI_HOTKEY.as_bytes()).unwrap() else {
            panic!("a secret keyfile")
        };
        assert_eq!(
            kp.account().to_string(),
            "5FPRQNGKhETmB54SxwTck9h2YZAaXzQ5wXtbKjk22kCyQfWj"
        );
        assert_eq!(
            hex::encode(kp.seed().unwrap()),
            "a5a5eacc42c41174f493fe0f5647a59ab1fb45629210e8a0444b234d1185fd16"
        );
        let KeyMaterial::Public(p) = parse(BTCLI_PUB.as_bytes()).unwrap() else {
            panic!("a public keyfile")
        };
        assert_eq!(p, kp.account());
    }

    #[test]
    fn writes_what_it_reads() {
        let kp = Keypair::generate(12).unwrap();
        let text = render_secret(&kp);
        let KeyMaterial::Secret(back) = parse(&text).unwrap() else {
            panic!()
        };
        assert_eq!(back.account(), kp.account());
        assert_eq!(back.mnemonic(), kp.mnemonic());
        // A URI key has only a private key; it must round-trip through it.
        let alice = Keypair::from_uri("//Alice").unwrap();
        let text = String::from_utf8(render_secret(&alice).to_vec()).unwrap();
        assert!(!text.contains("secretPhrase") && text.contains("privateKey"));
        let KeyMaterial::Secret(back) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(back.account(), alice.account());
        let public = String::from_utf8(render_public(&alice.account())).unwrap();
        assert!(!public.contains("private") && public.contains("\"cryptoType\":1"));
        assert_eq!(parse(public.as_bytes()).unwrap().account(), alice.account());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                BTCLI_HOTKEY.replace("speed weasel", "speed weasels"),
                "secretPhrase",
            ),
            (
                BTCLI_HOTKEY.replace("then panic", "then then"),
                "secretPhrase",
            ),
            (
                BTCLI_PUB.replace("\"cryptoType\":1", "\"cryptoType\":7"),
                "cryptoType",
            ),
            (
                BTCLI_PUB.replace("\"cryptoType\":1", "\"cryptoType\":0"),
                "cryptoType",
            ),
            (
                BTCLI_PUB.replace("\"cryptoType\":1", "\"cryptoType\":\"1\""),
                "cryptoType",
            ),
            (BTCLI_PUB.replacen("0x92faf9", "0x92fzf9", 1), "accountId"),
            (BTCLI_PUB.replace("5FPRQNGK", "5FPRQNGJ"), "ss58Address"),
            (r#"{"secretSeed":"0x1234"}"#.to_owned(), "secretSeed"),
            (r#"{"privateKey":"0xzz"}"#.to_owned(), "privateKey"),
            (r#"{"cryptoType":1}"#.to_owned(), "document"),
            (BTCLI_HOTKEY[..80].to_owned(), "EOF"),
            ("not json".to_owned(), "document"),
        ];
        for (text, needle) in cases {
            let err = parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should name {needle:?}");
            assert!(!err.contains("weasel"), "secrets stay out of errors: {err}");
        }
        // A public key that disagrees with the secret is caught.
        let other = BTCLI_HOTKEY.replace("\"publicKey\":\"0x92faf9", "\"publicKey\":\"0x92faf8");
        assert!(
            parse(other.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("publicKey")
        );
    }
}
