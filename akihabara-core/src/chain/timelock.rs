//! Weights encrypted to a future drand round (timelocked commit-reveal).
//!
//! On a subnet with commit-reveal enabled, the validator does not send its
//! weights in the clear: it SCALE-encodes them, encrypts them to a future
//! round of drand's *quicknet* beacon, and commits the ciphertext with the
//! round. Once the beacon's signature for that round is stored on chain
//! (`pallet_drand`), the runtime decrypts the commit itself and applies the
//! weights; the validator has nothing left to do, so a restart between commit
//! and reveal loses nothing.
//!
//! What this module computes, and where it comes from:
//! - [`target`]: the reveal round, by the formula of `bittensor-drand` 1.x's
//!   `get_encrypted_commit` (the SDK that commits on Finney's spec-393
//!   runtime): the first block of the reveal epoch, plus 3 blocks, converted
//!   to wall-clock time and rounded *down* to a quicknet round.
//!   [`RoundRule::Crv3`] is the older rule for runtimes that only have
//!   `commit_crv3_weights`, which reveal once, in the last block before that
//!   epoch, and so need an earlier pulse.
//! - [`WeightsPayload`]: the plaintext, SCALE `{hotkey, uids, values,
//!   version_key}`; runtimes before spec 297 decode the same struct without
//!   the hotkey.
//! - [`seal`] and [`open`]: Boneh–Franklin identity-based encryption to the
//!   identity `sha256(round as u64 big-endian)` under quicknet's public key,
//!   with AES-256-GCM for the body, serialized as arkworks writes it; this is
//!   the `timelock` crate (ideal-lab5) at the version whose bytes subtensor's
//!   runtime decodes.
//!
//! ```
//! use akihabara_core::chain::timelock::{self, DrandRound, RevealSchedule, RoundRule};
//! use akihabara_core::{Block, Netuid};
//! use std::time::Duration;
//!
//! let schedule = RevealSchedule {
//!     netuid: Netuid(2),
//!     tempo: 360,
//!     reveal_period_epochs: 1,
//!     block_time: Duration::from_secs(12),
//! };
//! // At block 1000, an hour after quicknet's genesis:
//! let now = Duration::from_secs(timelock::QUICKNET_GENESIS + 3600);
//! let t = timelock::target(&schedule, Block(1000), now, RoundRule::Timelocked);
//! assert_eq!(t.first_reveal_block, Block(1080));
//! // 83 blocks (80 to the reveal epoch, 3 more) of 12 s after now:
//! assert_eq!(t.reveal_round, DrandRound((3600 + 83 * 12) / 3));
//! ```

use std::time::Duration;

use ark_serialize::{CanonicalDeserialize as _, CanonicalSerialize as _};
use codec::{Decode as _, Encode as _};
use sha2::Digest as _;
use timelock::curves::drand::TinyBLS381;
use timelock::stream_ciphers::AESGCMStreamCipherProvider;
use timelock::tlock::{EngineBLS, TLECiphertext};

use crate::{AccountId, Block, Netuid};

/// Quicknet's genesis, in seconds since the Unix epoch: round 1's time.
pub const QUICKNET_GENESIS: u64 = 1_692_803_367;
/// Seconds between quicknet rounds.
pub const QUICKNET_PERIOD: u64 = 3;
/// Quicknet's public key (a compressed BLS12-381 G2 point), as
/// `pallet_drand`'s default beacon config and `bittensor-drand` hold it.
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
/// The most bytes a timelocked commit may hold (`MAX_CRV3_COMMIT_SIZE_BYTES`
/// in subtensor, spec 293 and 393).
pub const MAX_COMMIT_BYTES: usize = 5000;
/// Bytes a sealed commit adds to its plaintext: the IBE header (96 + 2 × 40),
/// the body's lengths, AES-GCM tag and nonce (8 + 16 + 8 + 12 + 8) and the
/// cipher-suite name (8 + 8).
pub const SEAL_OVERHEAD: usize = 244;
/// Blocks after the first block of the reveal epoch that `bittensor-drand`
/// 1.x aims the pulse at (`SECURITY_BLOCK_OFFSET`).
pub const SECURITY_BLOCK_OFFSET: u64 = 3;
/// Rounds before the reveal block that `bittensor-drand` 0.5 aims at
/// (`SUBTENSOR_PULSE_DELAY`), for [`RoundRule::Crv3`].
pub const CRV3_PULSE_DELAY: u64 = 24;

/// A drand quicknet round number.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DrandRound(pub u64);

impl std::fmt::Display for DrandRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl DrandRound {
    /// The latest round published by `now` (time since the Unix epoch): round
    /// 1 at genesis, one more every [`QUICKNET_PERIOD`] seconds; 0 before.
    ///
    /// ```
    /// use akihabara_core::chain::timelock::{DrandRound, QUICKNET_GENESIS};
    /// use std::time::Duration;
    /// let at = |s| DrandRound::latest_at(Duration::from_secs(QUICKNET_GENESIS + s));
    /// assert_eq!((at(0), at(2), at(3)), (DrandRound(1), DrandRound(1), DrandRound(2)));
    /// ```
    pub fn latest_at(now: Duration) -> DrandRound {
        match now.as_secs().checked_sub(QUICKNET_GENESIS) {
            Some(since) => DrandRound(since / QUICKNET_PERIOD + 1),
            None => DrandRound(0),
        }
    }

    /// When this round is published, as time since the Unix epoch.
    pub fn published_at(self) -> Duration {
        Duration::from_secs(
            QUICKNET_GENESIS
                .saturating_add(self.0.saturating_sub(1).saturating_mul(QUICKNET_PERIOD)),
        )
    }
}

/// A subnet's settings that decide when a commit is revealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevealSchedule {
    /// The subnet.
    pub netuid: Netuid,
    /// Blocks per epoch, less one (the chain's `Tempo`).
    pub tempo: u64,
    /// Epochs between commit and reveal (`RevealPeriodEpochs`, at least 1 in
    /// practice).
    pub reveal_period_epochs: u64,
    /// Time per block, used to turn blocks into drand rounds (12 s on
    /// Finney; the SDK's default).
    pub block_time: Duration,
}

/// Which runtime generation the round is aimed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundRule {
    /// `commit_timelocked_weights` (spec 297 and later, Finney): the runtime
    /// retries the reveal every block of the reveal epoch, so the pulse is
    /// aimed 3 blocks into it (`bittensor-drand` 1.x).
    Timelocked,
    /// `commit_crv3_weights` (before spec 297): the runtime reveals once, in
    /// the block before the reveal epoch, and drops a commit whose pulse is
    /// missing then, so the pulse is aimed 24 rounds (72 s) before that block,
    /// as `bittensor-drand` 0.5 did. The epochs are the runtime's filing
    /// ([`filed_epoch`] of the next block), not the SDK's estimate. (0.5 also moved the round an epoch later
    /// when the reveal was under 72 s away, past the one block the runtime
    /// reveals in; this rule does not, and a round already published is
    /// refused by the caller instead.)
    Crv3,
}

/// When a commit made now will be revealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// The round the weights are encrypted to.
    pub reveal_round: DrandRound,
    /// The epoch the commit is made in (`(block + netuid + 1) / (tempo + 1)`).
    pub commit_epoch: u64,
    /// The epoch it is revealed in.
    pub reveal_epoch: u64,
    /// The first block of the reveal epoch.
    pub first_reveal_block: Block,
}

/// The reveal round (and epoch) for a commit made at `current_block`, `now`
/// being the time since the Unix epoch. Pure: the caller brings the clock.
pub fn target(
    schedule: &RevealSchedule,
    current_block: Block,
    now: Duration,
    rule: RoundRule,
) -> Target {
    let tempo1 = schedule.tempo.saturating_add(1);
    let netuid1 = u64::from(schedule.netuid.0) + 1;
    let commit_epoch = match rule {
        // The SDK's estimate, kept as it is so the round is the SDK's.
        RoundRule::Timelocked => current_block.0.saturating_add(netuid1) / tempo1,
        // Where the runtime files a commit landing in the next block: with
        // a single reveal block, an epoch off is a commit lost.
        RoundRule::Crv3 => filed_epoch(
            schedule.netuid,
            schedule.tempo,
            Block(current_block.0.saturating_add(1)),
        ),
    };
    let reveal_epoch = commit_epoch.saturating_add(schedule.reveal_period_epochs);
    let first_block = |epoch: u64| epoch.saturating_mul(tempo1).saturating_sub(netuid1);
    let block_secs = schedule.block_time.as_secs_f64();
    let now_secs = now.as_secs_f64();
    let genesis = QUICKNET_GENESIS as f64;
    let period = QUICKNET_PERIOD as f64;
    let reveal_round = match rule {
        RoundRule::Timelocked => {
            let ingest = first_block(reveal_epoch).saturating_add(SECURITY_BLOCK_OFFSET);
            let secs = ingest.saturating_sub(current_block.0) as f64 * block_secs;
            ((now_secs + secs - genesis) / period).floor()
        }
        RoundRule::Crv3 => {
            // The runtime reveals in the block before the reveal epoch.
            let reveal_block = first_block(reveal_epoch).saturating_sub(1);
            let secs = reveal_block.saturating_sub(current_block.0) as f64 * block_secs;
            ((now_secs + secs - genesis) / period).ceil() - CRV3_PULSE_DELAY as f64
        }
    };
    // `as` saturates: NaN and negatives become 0; round 0 does not exist.
    let reveal_round = DrandRound((reveal_round as u64).max(1));
    Target {
        reveal_round,
        commit_epoch,
        reveal_epoch,
        first_reveal_block: Block(first_block(reveal_epoch)),
    }
}

/// The epoch the runtime files a commit landing in `block` under: the epoch
/// of the block after it, since the runtime counts a block that runs the
/// subnet's epoch as the next one's (`(block + netuid + 2) / (tempo + 1)`).
///
/// ```
/// use akihabara_core::chain::timelock::filed_epoch;
/// use akihabara_core::{Block, Netuid};
/// // netuid 2, tempo 10: block 62 runs the epoch; 63 starts epoch 6.
/// assert_eq!(filed_epoch(Netuid(2), 10, Block(61)), 5);
/// assert_eq!(filed_epoch(Netuid(2), 10, Block(62)), 6);
/// ```
pub fn filed_epoch(netuid: Netuid, tempo: u64, block: Block) -> u64 {
    block.0.saturating_add(u64::from(netuid.0) + 2) / tempo.saturating_add(1)
}

/// The plaintext of a timelocked commit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WeightsPayload {
    /// The committing hotkey (spec 297 and later check it; older runtimes
    /// decode the payload without it).
    pub hotkey: Option<AccountId>,
    /// Destination uids.
    pub uids: Vec<u16>,
    /// u16 weights, one per uid.
    pub values: Vec<u16>,
    /// The version key the weights are set with.
    pub version_key: u64,
}

impl WeightsPayload {
    /// SCALE: `(hotkey: Vec<u8>)?, uids: Vec<u16>, values: Vec<u16>,
    /// version_key: u64`, in that order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(h) = &self.hotkey {
            h.as_bytes().to_vec().encode_to(&mut out);
        }
        (&self.uids, &self.values, self.version_key).encode_to(&mut out);
        out
    }

    /// Decodes a payload as the runtime does: with a 32-byte hotkey first,
    /// else without one. Trailing bytes are an error.
    pub fn decode(mut bytes: &[u8]) -> Result<WeightsPayload, TimelockError> {
        let whole = bytes;
        type Rest = (Vec<u16>, Vec<u16>, u64);
        let with_hotkey = <(Vec<u8>, Rest)>::decode(&mut bytes)
            .ok()
            .filter(|(h, _)| h.len() == 32 && bytes.is_empty());
        if let Some((h, (uids, values, version_key))) = with_hotkey {
            let mut key = [0u8; 32];
            key.copy_from_slice(&h);
            return Ok(WeightsPayload {
                hotkey: Some(AccountId::from_bytes(key)),
                uids,
                values,
                version_key,
            });
        }
        let mut bytes = whole;
        let (uids, values, version_key) =
            Rest::decode(&mut bytes).map_err(|_| TimelockError::Payload)?;
        if !bytes.is_empty() {
            return Err(TimelockError::Payload);
        }
        Ok(WeightsPayload {
            hotkey: None,
            uids,
            values,
            version_key,
        })
    }
}

/// Why sealing or opening a timelocked commit failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimelockError {
    /// The sealed commit would exceed the runtime's bound.
    #[error("the sealed weights take {len} bytes; the chain takes at most {max} ({uids} uids)")]
    TooLarge {
        /// Bytes the ciphertext would take.
        len: usize,
        /// [`MAX_COMMIT_BYTES`].
        max: usize,
        /// How many uids the weights name.
        uids: usize,
    },
    /// The reveal round has already been published: the weights would be
    /// readable by anyone at once.
    #[error(
        "drand round {round} is already published (the latest is {latest}); commit to a later one"
    )]
    PastRound {
        /// The round asked for.
        round: DrandRound,
        /// The latest round published by now.
        latest: DrandRound,
    },
    /// The bytes are not a sealed commit.
    #[error("not a timelocked commit: {0}")]
    Malformed(&'static str),
    /// A signature that is not a quicknet signature (48 bytes, a G1 point).
    #[error("not a drand quicknet signature (48 bytes, compressed G1)")]
    Signature,
    /// The signature is not the one for the commit's round.
    #[error("the signature does not open this commit (another round's?)")]
    WrongSignature,
    /// The plaintext is not a weights payload.
    #[error("the decrypted bytes are not a weights payload")]
    Payload,
    /// The encryption itself failed (no randomness).
    #[error("encryption failed: {0}")]
    Encrypt(&'static str),
}

/// The identity a round's signature opens: `sha256(round, big-endian u64)`.
fn identity(round: DrandRound) -> timelock::ibe::fullident::Identity {
    let msg = sha2::Sha256::digest(round.0.to_be_bytes()).to_vec();
    timelock::ibe::fullident::Identity::new(b"", vec![msg])
}

/// Encrypts `plaintext` to `round`, refusing output over
/// [`MAX_COMMIT_BYTES`] (`uids` is only for the message).
///
/// ```
/// use akihabara_core::chain::timelock::{self, DrandRound, SEAL_OVERHEAD};
/// let sealed = timelock::seal(b"weights", DrandRound(1000), 1)?;
/// assert_eq!(sealed.len(), 7 + SEAL_OVERHEAD);
/// # Ok::<(), timelock::TimelockError>(())
/// ```
pub fn seal(plaintext: &[u8], round: DrandRound, uids: usize) -> Result<Vec<u8>, TimelockError> {
    let len = plaintext.len() + SEAL_OVERHEAD;
    if len > MAX_COMMIT_BYTES {
        return Err(TimelockError::TooLarge {
            len,
            max: MAX_COMMIT_BYTES,
            uids,
        });
    }
    let pk = hex::decode(QUICKNET_PUBLIC_KEY).map_err(|_| TimelockError::Encrypt("public key"))?;
    let pk = <TinyBLS381 as EngineBLS>::PublicKeyGroup::deserialize_compressed(&pk[..])
        .map_err(|_| TimelockError::Encrypt("public key"))?;
    let mut esk = [0u8; 32];
    rand_core_06::RngCore::try_fill_bytes(&mut rand_core_06::OsRng, &mut esk)
        .map_err(|_| TimelockError::Encrypt("no randomness from the operating system"))?;
    let ct = timelock::tlock::tle::<TinyBLS381, AESGCMStreamCipherProvider, _>(
        pk,
        esk,
        plaintext,
        identity(round),
        rand_core_06::OsRng,
    )
    .map_err(|_| TimelockError::Encrypt("AES-GCM"))?;
    let mut out = Vec::with_capacity(len);
    ct.serialize_compressed(&mut out)
        .map_err(|_| TimelockError::Encrypt("serialization"))?;
    Ok(out)
}

/// Decrypts a sealed commit with the drand signature of its round (48 raw
/// bytes; a `0x` prefix, as the chain tolerates, is not accepted here).
/// Checks the shape first, so hostile bytes are an error, never a panic.
pub fn open(sealed: &[u8], signature: &[u8]) -> Result<Vec<u8>, TimelockError> {
    if sealed.len() > MAX_COMMIT_BYTES {
        return Err(TimelockError::Malformed("longer than the chain's bound"));
    }
    let ct = TLECiphertext::<TinyBLS381>::deserialize_compressed(sealed)
        .map_err(|_| TimelockError::Malformed("it does not deserialize"))?;
    // The IBE step XORs 32-byte blocks and panics on longer ones.
    if ct.header.v.len() != 32 || ct.header.w.len() != 32 {
        return Err(TimelockError::Malformed("its key blocks are not 32 bytes"));
    }
    if signature.len() != 48 {
        return Err(TimelockError::Signature);
    }
    let sig = <TinyBLS381 as EngineBLS>::SignatureGroup::deserialize_compressed(signature)
        .map_err(|_| TimelockError::Signature)?;
    timelock::tlock::tld::<TinyBLS381, AESGCMStreamCipherProvider>(ct, sig)
        .map_err(|_| TimelockError::WrongSignature)
}

#[cfg(test)]
mod tests;
