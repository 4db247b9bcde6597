//! sr25519 signature checks, on curve25519-dalek 5 where it is faster.
//!
//! schnorrkel 0.11 (which signs, derives keys and batch-checks here) is
//! built on curve25519-dalek 4, whose AVX-512 IFMA backend needs a nightly
//! compiler. curve25519-dalek 5 has that backend on stable Rust and picks it
//! at run time when built with `--cfg curve25519_dalek_backend="avx512"`,
//! which this workspace's `.cargo/config.toml` sets on x86-64. On a CPU with
//! AVX-512 IFMA (Intel since Ice Lake, AMD since Zen 4) one check on dalek 5
//! costs about 60 % of schnorrkel's (19 against 33 µs on an AMD EPYC Zen 4);
//! on dalek 5's AVX2 backend it costs more than schnorrkel's, so elsewhere
//! schnorrkel checks (`cargo bench --bench signatures`).
//!
//! The dalek 5 check is schnorrkel's `PublicKey::verify` with the
//! `substrate` signing context: the same Merlin transcript (context,
//! message, protocol name, public key, `R`), the challenge scalar from 64
//! transcript bytes, and `R == s·B − k·A` compared as compressed Ristretto
//! points. The signature's scalar must be canonical and carry schnorrkel's
//! marker bit, as `schnorrkel::Signature::from_bytes` demands. Tests hold it
//! to schnorrkel's verdict on random keys, messages and tampered signatures.
//! [`verify_batch`] is schnorrkel's batch check on dalek 5 the same way.

use std::sync::LazyLock;

use curve25519_dalek_5::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek_5::scalar::Scalar;
use merlin::Transcript;

use super::keypair::Signature;
use crate::AccountId;

/// The `substrate` signing context's transcript, built once (building it
/// costs a Keccak permutation); every check starts from a copy of it.
fn context() -> &'static Transcript {
    static CONTEXT: LazyLock<Transcript> = LazyLock::new(|| {
        let mut t = Transcript::new(b"SigningContext");
        t.append_message(b"", b"substrate");
        t
    });
    &CONTEXT
}

/// Whether [`VerifyingKey`]s check on curve25519-dalek 5's AVX-512 IFMA
/// backend: built in (the workspace's `.cargo/config.toml`) and the CPU has
/// it. Otherwise they check with schnorrkel.
pub fn checks_on_avx512_ifma() -> bool {
    #[cfg(all(target_arch = "x86_64", curve25519_dalek_backend = "avx512"))]
    {
        std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(all(target_arch = "x86_64", curve25519_dalek_backend = "avx512")))]
    {
        false
    }
}

/// An sr25519 public key decompressed once, for many signature checks.
///
/// [`verify`](super::verify) decompresses the key on every call; a caller
/// that checks many signatures of one hotkey (an axon, a dendrite reading
/// receipts) keeps one of these instead.
///
/// ```
/// use akihabara_core::wallet::{Keypair, VerifyingKey};
///
/// let alice = Keypair::from_uri("//Alice").unwrap();
/// let key = VerifyingKey::new(&alice.account()).unwrap();
/// let signature = alice.sign(b"hello");
/// assert!(key.verify(b"hello", &signature));
/// assert!(!key.verify(b"hullo", &signature));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct VerifyingKey {
    compressed: [u8; 32],
    decompressed: Decompressed,
}

/// The key decompressed for the library that checks with it.
#[derive(Clone, Copy, Debug)]
enum Decompressed {
    /// dalek 5, where it is the faster one.
    Dalek5(RistrettoPoint),
    Schnorrkel(schnorrkel::PublicKey),
}

impl VerifyingKey {
    /// The key of `account`, or `None` when its 32 bytes are not a
    /// Ristretto point (not an sr25519 public key).
    pub fn new(account: &AccountId) -> Option<VerifyingKey> {
        VerifyingKey::checked_by(account, checks_on_avx512_ifma())
    }

    /// The key, checked by dalek 5 (`true`) or by schnorrkel.
    pub(crate) fn checked_by(account: &AccountId, dalek5: bool) -> Option<VerifyingKey> {
        let compressed = *account.as_bytes();
        let decompressed = if dalek5 {
            Decompressed::Dalek5(CompressedRistretto(compressed).decompress()?)
        } else {
            Decompressed::Schnorrkel(schnorrkel::PublicKey::from_bytes(&compressed).ok()?)
        };
        Some(VerifyingKey {
            compressed,
            decompressed,
        })
    }

    /// Whether `signature` signs `message` with this key. Like the Python
    /// SDK, a signature over `<Bytes>message</Bytes>` (what polkadot.js
    /// signs) is accepted too.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let wrapped = || [b"<Bytes>".as_slice(), message, b"</Bytes>"].concat();
        match self.decompressed {
            Decompressed::Dalek5(point) => {
                let Some(s) = scalar(&signature.0) else {
                    return false;
                };
                verify_exact(&self.compressed, &point, message, &signature.0, &s)
                    || verify_exact(&self.compressed, &point, &wrapped(), &signature.0, &s)
            }
            Decompressed::Schnorrkel(public) => {
                let Ok(sig) = schnorrkel::Signature::from_bytes(&signature.0) else {
                    return false;
                };
                let ctx = super::keypair::signing_context();
                public.verify(ctx.bytes(message), &sig).is_ok()
                    || public.verify(ctx.bytes(&wrapped()), &sig).is_ok()
            }
        }
    }
}

/// schnorrkel's check of `signature` over `message` by `compressed`
/// (decompressed to `point`), on dalek 5.
fn verify_exact(
    compressed: &[u8; 32],
    point: &RistrettoPoint,
    message: &[u8],
    signature: &[u8; 64],
    s: &Scalar,
) -> bool {
    let k = challenge(compressed, message, signature);
    let r = RistrettoPoint::vartime_double_scalar_mul_basepoint(&k, &(-point), s);
    r.compress().as_bytes()[..] == signature[..32]
}

/// The challenge `k` of schnorrkel's signature over `message` by
/// `compressed`: 64 bytes of the transcript (context, message, protocol
/// name, key, `R`), reduced.
fn challenge(compressed: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Scalar {
    let mut t = context().clone();
    t.append_message(b"sign-bytes", message);
    t.append_message(b"proto-name", b"Schnorr-sig");
    t.append_message(b"sign:pk", compressed);
    t.append_message(b"sign:R", &signature[..32]);
    let mut challenge = [0u8; 64];
    t.challenge_bytes(b"sign:c", &mut challenge);
    Scalar::from_bytes_mod_order_wide(&challenge)
}

/// Whether every `(key, message, signature)` is good, checked at once,
/// for less than checking each alone when there are two or more.
///
/// Where every key is checked by dalek 5 ([`VerifyingKey`]), this is
/// schnorrkel's batch equation on dalek 5,
/// `Σ zᵢ·Rᵢ + Σ (zᵢ·kᵢ)·Aᵢ − (Σ zᵢ·sᵢ)·B = 0`, with a random 128-bit `zᵢ`
/// per signature from the operating system and one term per distinct key;
/// elsewhere it is `schnorrkel::verify_batch`. Only bare messages pass here
/// (not the `<Bytes>` form that [`VerifyingKey::verify`] also accepts), and
/// a `false` does not say which signature failed: check each alone for
/// that. Also `false` when the operating system gives no randomness.
///
/// ```
/// use akihabara_core::wallet::{Keypair, VerifyingKey, verify_batch};
///
/// let alice = Keypair::from_uri("//Alice").unwrap();
/// let key = VerifyingKey::new(&alice.account()).unwrap();
/// let (a, b) = (alice.sign(b"one"), alice.sign(b"two"));
/// assert!(verify_batch(&[(&key, b"one".as_slice(), &a), (&key, b"two".as_slice(), &b)]));
/// assert!(!verify_batch(&[(&key, b"one".as_slice(), &b), (&key, b"two".as_slice(), &a)]));
/// ```
pub fn verify_batch(items: &[(&VerifyingKey, &[u8], &Signature)]) -> bool {
    if items
        .iter()
        .all(|(key, _, _)| matches!(key.decompressed, Decompressed::Dalek5(_)))
    {
        verify_batch_dalek5(items)
    } else {
        verify_batch_schnorrkel(items)
    }
}

/// [`verify_batch`] with schnorrkel.
fn verify_batch_schnorrkel(items: &[(&VerifyingKey, &[u8], &Signature)]) -> bool {
    let ctx = super::keypair::signing_context();
    let transcripts = items.iter().map(|(_, message, _)| ctx.bytes(message));
    let sigs: Option<Vec<_>> = items
        .iter()
        .map(|(_, _, sig)| schnorrkel::Signature::from_bytes(&sig.0).ok())
        .collect();
    // A key decompressed for dalek 5 (only in a batch that mixes the two)
    // is decompressed again for schnorrkel.
    let keys: Option<Vec<_>> = items
        .iter()
        .map(|(key, _, _)| match key.decompressed {
            Decompressed::Schnorrkel(public) => Some(public),
            Decompressed::Dalek5(_) => schnorrkel::PublicKey::from_bytes(&key.compressed).ok(),
        })
        .collect();
    match (sigs, keys) {
        (Some(sigs), Some(keys)) => {
            schnorrkel::verify_batch(transcripts, &sigs, &keys, true).is_ok()
        }
        _ => false,
    }
}

/// [`verify_batch`] on dalek 5; `false` when a key has no dalek 5 point.
fn verify_batch_dalek5(items: &[(&VerifyingKey, &[u8], &Signature)]) -> bool {
    use curve25519_dalek_5::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
    let mut random = vec![0u8; 16 * items.len()];
    if getrandom::fill(&mut random).is_err() {
        return false;
    }
    let mut scalars = Vec::with_capacity(items.len() + 2);
    let mut points = Vec::with_capacity(items.len() + 2);
    // One term per distinct key (a subnet has few validators), found by a
    // map so that many distinct keys cost no more than one each.
    let mut keys: Vec<(RistrettoPoint, Scalar)> = Vec::new();
    let mut key_index: std::collections::HashMap<&[u8; 32], usize> =
        std::collections::HashMap::new();
    let mut base = Scalar::ZERO;
    for ((key, message, signature), z) in items.iter().zip(random.chunks_exact(16)) {
        let Decompressed::Dalek5(point) = key.decompressed else {
            return false;
        };
        let Some(s) = scalar(&signature.0) else {
            return false;
        };
        let mut r = [0u8; 32];
        r.copy_from_slice(&signature.0[..32]);
        let Some(r) = CompressedRistretto(r).decompress() else {
            return false;
        };
        let mut z16 = [0u8; 16];
        z16.copy_from_slice(z);
        let z = Scalar::from(u128::from_le_bytes(z16));
        let zk = z * challenge(&key.compressed, message, &signature.0);
        match key_index.get(&key.compressed) {
            Some(&i) => keys[i].1 += zk,
            None => {
                key_index.insert(&key.compressed, keys.len());
                keys.push((point, zk));
            }
        }
        base -= z * s;
        scalars.push(z);
        points.push(r);
    }
    for (point, sum) in keys {
        scalars.push(sum);
        points.push(point);
    }
    scalars.push(base);
    points.push(curve25519_dalek_5::constants::RISTRETTO_BASEPOINT_POINT);
    RistrettoPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

/// The signature's `s`, when it is marked as schnorrkel's (top bit set)
/// and canonical once the mark is cleared.
fn scalar(signature: &[u8; 64]) -> Option<Scalar> {
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    if s[31] & 0x80 == 0 {
        return None;
    }
    s[31] &= 0x7f;
    Scalar::from_canonical_bytes(s).into()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wallet::Keypair;

    /// The key checked by dalek 5 and by schnorrkel.
    fn both(account: &AccountId) -> (VerifyingKey, VerifyingKey) {
        (
            VerifyingKey::checked_by(account, true).expect("a real key"),
            VerifyingKey::checked_by(account, false).expect("a real key"),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Good signatures pass both checks, and every tampering (a bit of
        /// the signature, another message, another key) gets the same
        /// verdict from both.
        #[test]
        fn dalek5_agrees_with_schnorrkel(
            seed in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..300),
            bit in 0usize..512,
            other in any::<u8>(),
        ) {
            let kp = Keypair::from_seed(seed);
            let (fast, reference) = both(&kp.account());
            prop_assert!(matches!(fast.decompressed, Decompressed::Dalek5(_)));
            prop_assert!(matches!(reference.decompressed, Decompressed::Schnorrkel(_)));
            let sig = kp.sign(&message);
            prop_assert!(fast.verify(&message, &sig));
            prop_assert!(reference.verify(&message, &sig));

            let mut flipped = sig;
            flipped.0[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!fast.verify(&message, &flipped));
            prop_assert!(!reference.verify(&message, &flipped));

            let mut changed = message.clone();
            changed.push(other);
            prop_assert!(!fast.verify(&changed, &sig));
            prop_assert!(!reference.verify(&changed, &sig));

            let (sfast, sreference) = both(&Keypair::from_seed([other; 32]).account());
            prop_assert_eq!(sfast.verify(&message, &sig), sreference.verify(&message, &sig));
            prop_assert!(!sfast.verify(&message, &sig));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// A batch passes exactly when every signature in it passes alone:
        /// signatures by up to three keys, one of them possibly tampered
        /// with (a bit flipped, or signing another message).
        #[test]
        fn a_batch_passes_exactly_when_each_signature_does(
            dalek5 in any::<bool>(),
            n in 1usize..12,
            owners in proptest::collection::vec(0usize..3, 12),
            tamper in proptest::option::of((0usize..12, 0usize..513)),
        ) {
            let signers: Vec<Keypair> = (0..3u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
            let keys: Vec<VerifyingKey> = signers
                .iter()
                .map(|k| VerifyingKey::checked_by(&k.account(), dalek5).expect("a real key"))
                .collect();
            let messages: Vec<Vec<u8>> = (0..n).map(|i| format!("message {i}").into_bytes()).collect();
            let mut sigs: Vec<Signature> = (0..n).map(|i| signers[owners[i]].sign(&messages[i])).collect();
            if let Some((i, bit)) = tamper {
                let i = i % n;
                if bit == 512 {
                    sigs[i] = signers[owners[i]].sign(b"another message");
                } else {
                    sigs[i].0[bit / 8] ^= 1 << (bit % 8);
                }
            }
            let items: Vec<_> = (0..n)
                .map(|i| (&keys[owners[i]], messages[i].as_slice(), &sigs[i]))
                .collect();
            let each = items.iter().all(|(k, m, s)| k.verify(m, s));
            prop_assert_eq!(verify_batch(&items), each);
            prop_assert_eq!(each, tamper.is_none());
        }
    }

    /// A batch mixing keys checked by dalek 5 and by schnorrkel is
    /// checked by schnorrkel, with the same verdict.
    #[test]
    fn a_mixed_batch_is_checked_by_schnorrkel() {
        let kp = Keypair::from_uri("//Alice").expect("dev key");
        let (fast, reference) = both(&kp.account());
        let (m, sig) = (b"m".as_slice(), kp.sign(b"m"));
        let bad = kp.sign(b"n");
        assert!(verify_batch_dalek5(&[(&fast, m, &sig)]));
        assert!(!verify_batch_dalek5(&[
            (&fast, m, &sig),
            (&reference, m, &sig)
        ]));
        assert!(verify_batch(&[(&fast, m, &sig), (&reference, m, &sig)]));
        assert!(!verify_batch(&[(&fast, m, &sig), (&reference, m, &bad)]));
    }

    /// What polkadot.js signs (`<Bytes>…</Bytes>`) passes for the bare
    /// message, in both checks.
    #[test]
    fn a_wrapped_message_passes_as_the_bare_one() {
        let kp = Keypair::from_uri("//Alice").expect("dev key");
        let sig = kp.sign(b"<Bytes>hello</Bytes>");
        let (fast, reference) = both(&kp.account());
        for key in [fast, reference] {
            assert!(key.verify(b"hello", &sig));
            assert!(!key.verify(b"hullo", &sig));
        }
    }

    /// A signature without schnorrkel's mark (an ed25519-style one) and
    /// one whose scalar is not canonical are refused by both checks.
    #[test]
    fn unmarked_and_non_canonical_signatures_are_refused() {
        let kp = Keypair::from_uri("//Alice").expect("dev key");
        let sig = kp.sign(b"m");
        let mut unmarked = sig;
        unmarked.0[63] &= 0x7f;
        // s = 2^255 - 1 with the mark: far above the group order.
        let mut big = sig;
        big.0[32..].fill(0xff);
        assert!(scalar(&big.0).is_none());
        let (fast, reference) = both(&kp.account());
        for key in [fast, reference] {
            assert!(key.verify(b"m", &sig));
            assert!(!key.verify(b"m", &unmarked));
            assert!(!key.verify(b"m", &big));
        }
    }

    /// Bytes that are no Ristretto point are no key.
    #[test]
    fn a_non_point_is_no_key() {
        let not_a_point = AccountId::from_bytes([0xff; 32]);
        assert!(VerifyingKey::new(&not_a_point).is_none());
        assert!(VerifyingKey::checked_by(&not_a_point, true).is_none());
        assert!(VerifyingKey::checked_by(&not_a_point, false).is_none());
    }
}
