//! sr25519 keys as Bittensor derives and uses them.

use std::fmt;
use std::str::FromStr;

use bip39::{Language, Mnemonic};
use schnorrkel::derive::{ChainCode, Derivation};
use schnorrkel::{ExpansionMode, MiniSecretKey, SecretKey};
use subxt_signer::{DeriveJunction, ExposeSecret, SecretUri};
use zeroize::Zeroizing;

use crate::AccountId;

/// The signing context of Substrate's sr25519.
const SIGNING_CONTEXT: &[u8] = b"substrate";

/// The `substrate` signing context, built once: building it costs a Keccak
/// permutation, and every signature check starts from a copy of it.
pub(crate) fn signing_context() -> &'static schnorrkel::context::SigningContext {
    static CONTEXT: std::sync::LazyLock<schnorrkel::context::SigningContext> =
        std::sync::LazyLock::new(|| schnorrkel::signing_context(SIGNING_CONTEXT));
    &CONTEXT
}

/// What a secret URI may be, for the error that refuses one.
const URI_FORMS: &str = "expected //name (as in //Alice or //validator1), a mnemonic of 12 to 24 words, \
     or 0x and a 32-byte hex seed, each optionally followed by /soft or //hard derivations";

/// Why a key could not be made or a signature read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a valid BIP39 English mnemonic (bad word, count or checksum).
    #[error("invalid mnemonic: {0}")]
    BadMnemonic(#[source] bip39::Error),
    /// The operating system gave no randomness for a new key.
    #[error("no system randomness: {0}")]
    NoRandomness(#[source] getrandom::Error),
    /// A word count other than 12, 15, 18, 21 or 24.
    #[error("a mnemonic has 12, 15, 18, 21 or 24 words, not {0}")]
    BadWordCount(usize),
    /// A 64-byte sr25519 secret that is not a valid scalar and nonce.
    #[error("invalid sr25519 private key")]
    BadPrivateKey,
    /// A secret URI that could not be parsed.
    #[error("invalid secret URI: {0}")]
    BadUri(String),
    /// A signature that is not 64 bytes of hex.
    #[error("invalid signature {0:?}: expected 64 bytes as hex (0x optional)")]
    BadSignature(String),
}

/// An sr25519 keypair, with the mnemonic and seed it came from where known.
///
/// Secrets are zeroized on drop and never shown by `Debug`.
///
/// ```
/// use akihabara_core::wallet::{Keypair, verify};
/// let alice = Keypair::from_uri("//Alice").unwrap();
/// assert_eq!(alice.account().to_string(), "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
/// let sig = alice.sign(b"hello");
/// assert!(verify(&alice.account(), b"hello", &sig));
/// assert!(!format!("{alice:?}").contains(&hex::encode(alice.private_key().as_slice())));
/// ```
pub struct Keypair {
    pair: schnorrkel::Keypair,
    mnemonic: Option<Zeroizing<String>>,
    seed: Option<Zeroizing<[u8; 32]>>,
}

impl Clone for Keypair {
    fn clone(&self) -> Keypair {
        Keypair {
            pair: self.pair.clone(),
            mnemonic: self.mnemonic.clone(),
            seed: self.seed.clone(),
        }
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("account", &self.account())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Keypair {
    /// A new random key with a fresh mnemonic of `words` words (12 to 24).
    pub fn generate(words: usize) -> Result<Keypair, KeyError> {
        let bytes = match words {
            12 | 15 | 18 | 21 | 24 => words / 3 * 4,
            n => return Err(KeyError::BadWordCount(n)),
        };
        let mut entropy = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut entropy[..bytes]).map_err(KeyError::NoRandomness)?;
        let mnemonic = Mnemonic::from_entropy_in(Language::English, &entropy[..bytes])
            .map_err(KeyError::BadMnemonic)?;
        Keypair::from_mnemonic(&mnemonic.to_string())
    }

    /// From a BIP39 English mnemonic, as Substrate and btcli derive it:
    /// entropy → PBKDF2-HMAC-SHA512 (salt `mnemonic`, 2048 rounds) → 32-byte
    /// mini-secret → sr25519 with Ed25519 expansion.
    pub fn from_mnemonic(phrase: &str) -> Result<Keypair, KeyError> {
        let words = phrase.split_whitespace().count();
        if !matches!(words, 12 | 15 | 18 | 21 | 24) {
            return Err(KeyError::BadWordCount(words));
        }
        let mnemonic = Mnemonic::parse_in_normalized(Language::English, phrase)
            .map_err(KeyError::BadMnemonic)?;
        let mini = mini_from_mnemonic(&mnemonic, "")?;
        let mut kp = Keypair::from_mini(&mini);
        kp.mnemonic = Some(Zeroizing::new(mnemonic.to_string()));
        Ok(kp)
    }

    /// From a 32-byte mini-secret (btcli's `secretSeed`).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let seed = Zeroizing::new(seed);
        #[allow(clippy::expect_used)]
        let mini = MiniSecretKey::from_bytes(&seed[..]).expect("any 32 bytes are a mini-secret");
        Keypair::from_mini(&mini)
    }

    /// From a 64-byte sr25519 secret key and nonce (btcli's `privateKey`).
    pub fn from_private_key(bytes: &[u8]) -> Result<Keypair, KeyError> {
        let secret = SecretKey::from_bytes(bytes).map_err(|_| KeyError::BadPrivateKey)?;
        Ok(Keypair {
            pair: secret.to_keypair(),
            mnemonic: None,
            seed: None,
        })
    }

    /// From a Substrate secret URI: `//Alice`, `//validator1`,
    /// `<mnemonic>//hard/soft///password` or `0x<seed>//path`. Like btcli, a
    /// key made this way keeps only its private key (no mnemonic or seed).
    pub fn from_uri(uri: &str) -> Result<Keypair, KeyError> {
        // The URI may hold a mnemonic: no error repeats it.
        let parsed = SecretUri::from_str(uri).map_err(|_| KeyError::BadUri(URI_FORMS.into()))?;
        let phrase = parsed.phrase.expose_secret();
        let mini = if let Some(hex_seed) = phrase.strip_prefix("0x") {
            let bytes = Zeroizing::new(
                hex::decode(hex_seed).map_err(|_| KeyError::BadUri("seed is not hex".into()))?,
            );
            MiniSecretKey::from_bytes(&bytes)
                .map_err(|_| KeyError::BadUri("a hex seed must be 32 bytes".into()))?
        } else if !phrase.trim().contains(char::is_whitespace) {
            // One word is no attempt at a mnemonic: say what a URI is.
            return Err(KeyError::BadUri(URI_FORMS.into()));
        } else {
            let mnemonic = Mnemonic::parse_in_normalized(Language::English, phrase)
                .map_err(KeyError::BadMnemonic)?;
            let password = parsed.password.as_ref().map(|p| p.expose_secret());
            mini_from_mnemonic(&mnemonic, password.unwrap_or(""))?
        };
        let root = mini.expand(ExpansionMode::Ed25519);
        let secret = parsed.junctions.iter().fold(root, |acc, j| match j {
            DeriveJunction::Soft(cc) => acc.derived_key_simple(ChainCode(*cc), []).0,
            DeriveJunction::Hard(cc) => acc
                .hard_derive_mini_secret_key(Some(ChainCode(*cc)), b"")
                .0
                .expand(ExpansionMode::Ed25519),
        });
        Ok(Keypair {
            pair: secret.to_keypair(),
            mnemonic: None,
            seed: None,
        })
    }

    fn from_mini(mini: &MiniSecretKey) -> Keypair {
        Keypair {
            pair: mini.expand_to_keypair(ExpansionMode::Ed25519),
            mnemonic: None,
            seed: Some(Zeroizing::new(mini.to_bytes())),
        }
    }

    /// The public key as an account id (SS58 in `Display`).
    pub fn account(&self) -> AccountId {
        AccountId::from_bytes(self.pair.public.to_bytes())
    }

    /// The mnemonic, if the key was made from one.
    pub fn mnemonic(&self) -> Option<&str> {
        self.mnemonic.as_deref().map(String::as_str)
    }

    /// The 32-byte mini-secret, if known.
    pub fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_deref()
    }

    /// The 64-byte secret key and nonce.
    pub fn private_key(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.pair.secret.to_bytes())
    }

    /// Signs `message` (sr25519, context `substrate`).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.pair.sign(signing_context().bytes(message)).to_bytes())
    }
}

fn mini_from_mnemonic(mnemonic: &Mnemonic, password: &str) -> Result<MiniSecretKey, KeyError> {
    let (entropy, len) = mnemonic.to_entropy_array();
    let entropy = Zeroizing::new(entropy);
    // The only failure is entropy of a length BIP39 does not define, which
    // a parsed mnemonic cannot have; it is still an error, not a panic.
    substrate_bip39::mini_secret_from_entropy(&entropy[..len], password)
        .map_err(|_| KeyError::BadMnemonic(bip39::Error::BadEntropyBitCount(len * 8)))
}

/// An sr25519 signature; `Display` is `0x` + lowercase hex, as btcli prints it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: a dendrite writes one per call.
        let mut digits = [0u8; 128];
        let _ = hex::encode_to_slice(self.0, &mut digits);
        f.write_str("0x")?;
        f.write_str(std::str::from_utf8(&digits).unwrap_or_default())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Signature, KeyError> {
        let t = s.trim();
        let hex_part = t.strip_prefix("0x").unwrap_or(t);
        let mut arr = [0u8; 64];
        // Also refuses any length but 128 digits.
        hex::decode_to_slice(hex_part, &mut arr)
            .map_err(|_| KeyError::BadSignature(s.to_owned()))?;
        Ok(Signature(arr))
    }
}

/// Verifies an sr25519 signature by `account` over `message`.
///
/// Like the Python SDK, a signature over `<Bytes>message</Bytes>` (what
/// polkadot.js signs) is accepted too.
pub fn verify(account: &AccountId, message: &[u8], signature: &Signature) -> bool {
    super::VerifyingKey::new(account).is_some_and(|key| key.verify(message, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_PHRASE: &str =
        "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

    #[test]
    fn dev_uris_match_substrate() {
        for (uri, ss58) in [
            (
                "//Alice",
                "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            ),
            ("//Bob", "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"),
            (
                "//Alice//stash",
                "5GNJqTPyNqANBkUVMN1LPPrxXnFouWXoe2wNSmmEoLctxiZY",
            ),
            (
                "//Bob//stash",
                "5HpG9w8EBLe5XCrbczpwq5TSXvedjrBGCwqxK1iQ7qUsSWFc",
            ),
        ] {
            let kp = Keypair::from_uri(uri).unwrap();
            assert_eq!(kp.account().to_string(), ss58, "{uri}");
            // Cross-check with subxt-signer's independent derivation.
            let other = subxt_signer::sr25519::Keypair::from_uri(&uri.parse().unwrap()).unwrap();
            assert_eq!(kp.account().as_bytes(), &other.public_key().0);
            assert!(kp.mnemonic().is_none() && kp.seed().is_none());
        }
        let root = Keypair::from_mnemonic(DEV_PHRASE).unwrap();
        let via_uri = Keypair::from_uri(DEV_PHRASE).unwrap();
        assert_eq!(root.account(), via_uri.account());
        assert_eq!(
            hex::encode(root.seed().unwrap()),
            "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e"
        );
    }

    #[test]
    fn round_trips_through_secret_forms() {
        let kp = Keypair::generate(12).unwrap();
        assert_eq!(kp.mnemonic().unwrap().split(' ').count(), 12);
        let from_phrase = Keypair::from_mnemonic(kp.mnemonic().unwrap()).unwrap();
        let from_seed = Keypair::from_seed(*kp.seed().unwrap());
        let from_private = Keypair::from_private_key(kp.private_key().as_slice()).unwrap();
        for other in [&from_phrase, &from_seed, &from_private] {
            assert_eq!(other.account(), kp.account());
            let sig = other.sign(b"msg");
            assert!(verify(&kp.account(), b"msg", &sig));
            assert!(!verify(&kp.account(), b"msh", &sig));
        }
        let wrapped = kp.sign(b"<Bytes>data</Bytes>");
        assert!(verify(&kp.account(), b"data", &wrapped));
        assert_eq!(
            Keypair::generate(24)
                .unwrap()
                .mnemonic()
                .unwrap()
                .split(' ')
                .count(),
            24
        );
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            Keypair::generate(13).unwrap_err(),
            KeyError::BadWordCount(13)
        );
        let bad_checksum = DEV_PHRASE.replace("walk", "wall");
        let e = Keypair::from_mnemonic(&bad_checksum).unwrap_err();
        assert_eq!(e, KeyError::BadMnemonic(bip39::Error::InvalidChecksum));
        // The BIP39 error is kept as the cause, not flattened into text.
        let cause = std::error::Error::source(&e).map(|c| c.to_string());
        assert_eq!(
            cause,
            Some(bip39::Error::InvalidChecksum.to_string()),
            "{e}"
        );
        assert!(matches!(
            Keypair::from_mnemonic("abandon abandon"),
            Err(KeyError::BadWordCount(2))
        ));
        let bad_word = DEV_PHRASE.replace("bottom", "bottomz");
        assert!(matches!(
            Keypair::from_mnemonic(&bad_word),
            Err(KeyError::BadMnemonic(_))
        ));
        assert!(matches!(
            Keypair::from_private_key(&[0xffu8; 64]),
            Err(KeyError::BadPrivateKey)
        ));
        assert!(matches!(
            Keypair::from_private_key(&[1u8; 10]),
            Err(KeyError::BadPrivateKey)
        ));
        assert!(matches!(
            Keypair::from_uri("0x1234//Alice"),
            Err(KeyError::BadUri(_))
        ));
        // One word is not a mnemonic: the error says what a URI is, and no
        // error repeats the URI (it may hold a secret).
        let e = Keypair::from_uri("notauri").unwrap_err();
        assert_eq!(e, KeyError::BadUri(URI_FORMS.into()));
        assert!(
            e.to_string()
                .starts_with("invalid secret URI: expected //name")
        );
        let e = Keypair::from_uri("secretword secretword//x").unwrap_err();
        assert!(matches!(e, KeyError::BadMnemonic(_)), "{e}");
        assert!(!e.to_string().contains("secretword"), "{e}");
        assert!("0x12".parse::<Signature>().is_err());
        assert!("zz".parse::<Signature>().is_err());
        let sig = Keypair::from_uri("//Alice").unwrap().sign(b"x");
        assert_eq!(sig.to_string().parse::<Signature>().unwrap(), sig);
        assert_eq!(sig.to_string()[2..].parse::<Signature>().unwrap(), sig);
        let mut bytes = [0xabu8; 64];
        bytes[0] = 0x0f;
        assert_eq!(
            Signature(bytes).to_string(),
            format!("0x0f{}", "ab".repeat(63))
        );
        // 129 digits, and 128 digits with one that is not hex.
        assert!(format!("{}0", sig).parse::<Signature>().is_err());
        assert!(
            format!("0xg{}", &sig.to_string()[3..])
                .parse::<Signature>()
                .is_err()
        );
    }
}
