//! SS58 account ids: [`AccountId`], with [`Hotkey`] and [`Coldkey`] as its two roles.

use std::fmt;
use std::str::FromStr;

use blake2::{Blake2b512, Digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SS58 address prefix Bittensor uses (the generic Substrate prefix).
pub const SS58_PREFIX: u16 = 42;

/// A 32-byte public key, shown and parsed as an SS58 address with prefix 42.
///
/// ```
/// use akihabara_core::AccountId;
/// let alice: AccountId = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".parse().unwrap();
/// assert_eq!(alice.as_bytes()[0], 0xd4);
/// assert_eq!(alice.to_string(), "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId([u8; 32]);

/// A hotkey: the account a neuron is registered under.
pub type Hotkey = AccountId;
/// A coldkey: the account that owns hotkeys and holds funds.
pub type Coldkey = AccountId;

/// Why an SS58 address could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ss58Error {
    /// Not base58 text.
    #[error("invalid SS58 address {0:?}: not base58")]
    NotBase58(String),
    /// Decoded to the wrong number of bytes for a 32-byte account.
    #[error("invalid SS58 address {address:?}: decodes to {len} bytes, expected 35 or 36")]
    BadLength {
        /// The input.
        address: String,
        /// Decoded length.
        len: usize,
    },
    /// The two checksum bytes do not match.
    #[error("invalid SS58 address {0:?}: checksum mismatch")]
    BadChecksum(String),
    /// A valid address for another network.
    #[error("SS58 address {address:?} has network prefix {found}, expected {expected}")]
    WrongPrefix {
        /// The input.
        address: String,
        /// The prefix found.
        found: u16,
        /// The prefix required.
        expected: u16,
    },
    /// A reserved or malformed prefix byte.
    #[error("invalid SS58 address {0:?}: reserved prefix")]
    ReservedPrefix(String),
}

fn ss58_checksum(payload: &[u8]) -> [u8; 2] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(payload);
    let out = h.finalize();
    [out[0], out[1]]
}

impl AccountId {
    /// Wraps 32 raw public-key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> AccountId {
        AccountId(bytes)
    }

    /// The raw public key.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encodes as SS58 with `prefix` (Bittensor uses [`SS58_PREFIX`]).
    pub fn to_ss58_with_prefix(&self, prefix: u16) -> String {
        let prefix = prefix & 0x3fff;
        let mut payload = Vec::with_capacity(36);
        if prefix < 64 {
            payload.push(prefix as u8);
        } else {
            // Two-byte form, as in the SS58 specification.
            payload.push(((prefix & 0b1111_1100) as u8 >> 2) | 0b0100_0000);
            payload.push((prefix >> 8) as u8 | ((prefix & 0b11) as u8) << 6);
        }
        payload.extend_from_slice(&self.0);
        let sum = ss58_checksum(&payload);
        payload.extend_from_slice(&sum);
        bs58::encode(payload).into_string()
    }

    /// Encodes as SS58 with prefix 42.
    pub fn to_ss58(&self) -> String {
        self.to_ss58_with_prefix(SS58_PREFIX)
    }

    /// Decodes an SS58 address of any network, returning its prefix too.
    pub fn from_ss58_any(address: &str) -> Result<(u16, AccountId), Ss58Error> {
        let raw = bs58::decode(address)
            .into_vec()
            .map_err(|_| Ss58Error::NotBase58(address.to_owned()))?;
        if raw.len() != 35 && raw.len() != 36 {
            return Err(Ss58Error::BadLength {
                address: address.to_owned(),
                len: raw.len(),
            });
        }
        let (prefix, prefix_len) = match raw.first() {
            Some(&b) if b < 64 => (u16::from(b), 1),
            Some(&b) if b < 128 => {
                let second = *raw.get(1).ok_or_else(|| Ss58Error::BadLength {
                    address: address.to_owned(),
                    len: raw.len(),
                })?;
                let lower = (b << 2) | (second >> 6);
                let upper = second & 0b0011_1111;
                (u16::from(lower) | (u16::from(upper) << 8), 2)
            }
            Some(_) => return Err(Ss58Error::ReservedPrefix(address.to_owned())),
            None => {
                return Err(Ss58Error::BadLength {
                    address: address.to_owned(),
                    len: 0,
                });
            }
        };
        if raw.len() != prefix_len + 32 + 2 {
            return Err(Ss58Error::BadLength {
                address: address.to_owned(),
                len: raw.len(),
            });
        }
        let (payload, sum) = raw.split_at(prefix_len + 32);
        if ss58_checksum(payload) != sum {
            return Err(Ss58Error::BadChecksum(address.to_owned()));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&payload[prefix_len..]);
        Ok((prefix, AccountId(key)))
    }

    /// Decodes an SS58 address, requiring prefix 42.
    pub fn from_ss58(address: &str) -> Result<AccountId, Ss58Error> {
        let (prefix, id) = AccountId::from_ss58_any(address)?;
        if prefix != SS58_PREFIX {
            return Err(Ss58Error::WrongPrefix {
                address: address.to_owned(),
                found: prefix,
                expected: SS58_PREFIX,
            });
        }
        Ok(id)
    }
}

impl FromStr for AccountId {
    type Err = Ss58Error;
    fn from_str(s: &str) -> Result<AccountId, Ss58Error> {
        AccountId::from_ss58(s.trim())
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.to_ss58())
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AccountId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AccountId::from_ss58(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    const ALICE_HEX: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn known_vector() {
        let id = AccountId::from_bytes(hex32(ALICE_HEX));
        assert_eq!(id.to_ss58(), ALICE);
        assert_eq!(ALICE.parse::<AccountId>().unwrap(), id);
        // Polkadot (prefix 0) address of the same key.
        let dot = id.to_ss58_with_prefix(0);
        assert_eq!(dot, "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5");
        assert_eq!(AccountId::from_ss58_any(&dot).unwrap(), (0, id));
        assert!(matches!(
            AccountId::from_ss58(&dot),
            Err(Ss58Error::WrongPrefix { found: 0, .. })
        ));
        // Kusama-style two-byte prefix round trip.
        let long = id.to_ss58_with_prefix(1000);
        assert_eq!(AccountId::from_ss58_any(&long).unwrap(), (1000, id));
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(
            AccountId::from_ss58("0OIl"),
            Err(Ss58Error::NotBase58(_))
        ));
        assert!(matches!(
            AccountId::from_ss58("5Grwva"),
            Err(Ss58Error::BadLength { .. })
        ));
        let mut bad = ALICE.to_owned();
        bad.replace_range(10..11, if &ALICE[10..11] == "a" { "b" } else { "a" });
        assert!(matches!(
            AccountId::from_ss58(&bad),
            Err(Ss58Error::BadChecksum(_)) | Err(Ss58Error::BadLength { .. })
        ));
        assert!(AccountId::from_ss58("").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 32]>(), prefix in 0u16..16384) {
            let id = AccountId::from_bytes(bytes);
            prop_assert_eq!(AccountId::from_ss58_any(&id.to_ss58_with_prefix(prefix)).unwrap(), (prefix, id));
        }

        #[test]
        fn never_panics_on_text(s in "\\PC{0,64}") {
            let _ = AccountId::from_ss58_any(&s);
        }
    }
}
