//! Hash-based commit/reveal of weights, as subtensor checks it.
//!
//! The commitment is `blake2b-256(SCALE(account, netuid, uids, values, salt,
//! version_key))`, with uids, values and salt as `Vec<u16>`: the bytes the
//! runtime hashes in `reveal_weights` and that the Python SDK's
//! `generate_weight_hash` builds.

use codec::Encode as _;

use crate::{AccountId, Netuid, Uid};

/// The weights to reveal, and the salt that hid them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reveal {
    /// Destination uids, in the order committed.
    pub uids: Vec<Uid>,
    /// u16 weights, one per uid.
    pub weights: Vec<u16>,
    /// Salt chosen at commit time.
    pub salt: Vec<u16>,
    /// Version key sent with the weights; must not be below the subnet's.
    pub version_key: u64,
}

impl Reveal {
    /// A reveal with an 8-element salt from the operating system's RNG.
    pub fn new(
        uids: Vec<Uid>,
        weights: Vec<u16>,
        version_key: u64,
    ) -> Result<Reveal, super::ChainError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(super::ChainError::NoRandomness)?;
        let salt = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(Reveal {
            uids,
            weights,
            salt,
            version_key,
        })
    }

    /// The commitment `account` sends for this reveal on `netuid`.
    pub fn hash(&self, account: &AccountId, netuid: Netuid) -> [u8; 32] {
        commit_hash(
            account,
            netuid,
            &self.uids,
            &self.weights,
            &self.salt,
            self.version_key,
        )
    }
}

/// The commitment for these weights (see the module docs).
///
/// ```
/// use akihabara_core::chain::commit_hash;
/// use akihabara_core::{AccountId, Netuid, Uid};
/// let who = AccountId::from_bytes([1; 32]);
/// let a = commit_hash(&who, Netuid(2), &[Uid(1)], &[65535], &[7], 0);
/// let b = commit_hash(&who, Netuid(2), &[Uid(1)], &[65535], &[8], 0);
/// assert_ne!(a, b, "the salt hides the weights");
/// ```
pub fn commit_hash(
    account: &AccountId,
    netuid: Netuid,
    uids: &[Uid],
    weights: &[u16],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    let uids: Vec<u16> = uids.iter().map(|u| u.0).collect();
    let bytes = (
        account.as_bytes(),
        netuid.0,
        uids,
        weights,
        salt,
        version_key,
    )
        .encode();
    use blake2::Digest as _;
    blake2::Blake2b::<blake2::digest::consts::U32>::digest(&bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_scale_of_the_tuple() {
        // Hand-built bytes: 32-byte account, u16 LE netuid, compact lengths
        // (n << 2) before each Vec<u16>, u64 LE version key.
        let who = AccountId::from_bytes([9; 32]);
        let mut want = vec![9u8; 32];
        want.extend([2, 0]);
        want.extend([2 << 2, 1, 0, 4, 0]);
        want.extend([2 << 2, 0xff, 0xff, 0x10, 0]);
        want.extend([1 << 2, 7, 0]);
        want.extend(5u64.to_le_bytes());
        use blake2::Digest as _;
        let want: [u8; 32] = blake2::Blake2b::<blake2::digest::consts::U32>::digest(&want).into();
        assert_eq!(
            commit_hash(&who, Netuid(2), &[Uid(1), Uid(4)], &[65535, 16], &[7], 5),
            want
        );
    }

    #[test]
    fn salts_differ() {
        let a = Reveal::new(vec![Uid(1)], vec![1], 0).expect("salt");
        let b = Reveal::new(vec![Uid(1)], vec![1], 0).expect("salt");
        assert_eq!(a.salt.len(), 8);
        assert_ne!(a.salt, b.salt);
    }
}
