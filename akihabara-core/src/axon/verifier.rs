//! Signature checks for the axon, batched under load, on the axon's own
//! runtime.
//!
//! A request that needs its signature checked queues its (key, message,
//! signature) and, when no check is under way, spawns one task that checks
//! the queue. That task runs after the requests the runtime already has in
//! hand, so everything that arrived in the same turn of the event loop is
//! taken as one batch (at most [`MAX_BATCH`]), checked with sr25519 batch
//! verification (signatures from the same hotkey, as a subnet has few
//! validators, share one term); when it fails each signature in it is
//! checked alone, so one forged request never fails an honest one. Where
//! curve25519-dalek 5 runs its AVX-512 IFMA backend
//! ([`crate::wallet::VerifyingKey`]), batches and single checks are made
//! there, else with schnorrkel. An idle
//! axon sees batches of one and pays no wait. After each batch the task
//! yields, so a flood of signatures cannot keep other connections waiting
//! longer than one batch (a failed batch of 64 costs about 65 checks, a few
//! milliseconds). At most [`MAX_QUEUED`] signatures wait at once; further
//! requests wait for a place, and a request whose client went away is
//! dropped from the queue unchecked.
//!
//! Checking on the runtime, not on a thread of its own, saves the two thread
//! wake-ups per batch that a hand-off costs; `scripts/soak.py cpu` measured
//! the difference under the Python dendrite's load (README, Performance).
//! Decompressed public keys are cached per hotkey string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::AccountId;
use crate::wallet::{Signature, VerifyingKey, verify_batch};

/// Most signatures checked in one batch.
pub(crate) const MAX_BATCH: usize = 64;
/// Most signatures queued at once; further requests wait for a place.
const MAX_QUEUED: usize = 4 * MAX_BATCH;
const KEY_CACHE: usize = 4096;

struct Job {
    key: VerifyingKey,
    message: Vec<u8>,
    signature: Signature,
    done: oneshot::Sender<bool>,
    /// The job's place in the queue, given back when it is answered.
    _place: OwnedSemaphorePermit,
}

/// Signatures waiting for the checking task, and whether one is scheduled.
#[derive(Default)]
struct Pending {
    jobs: Vec<Job>,
    checking: bool,
    /// The size of every batch checked, for tests.
    #[cfg(test)]
    batches: Vec<usize>,
}

/// Locks the queue. A poisoned lock still holds a valid queue: nothing
/// panics while holding it.
fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Verifier {
    pending: Arc<Mutex<Pending>>,
    places: Arc<Semaphore>,
    keys: Mutex<HashMap<String, (AccountId, VerifyingKey)>>,
}

impl Verifier {
    /// An empty queue and key cache; checks run on the caller's runtime.
    pub(crate) fn new() -> Verifier {
        Verifier {
            pending: Arc::default(),
            places: Arc::new(Semaphore::new(MAX_QUEUED)),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The account of an SS58 hotkey, with its decompressed key when the
    /// cache holds it. Decoding the address is cheap; decompressing the key
    /// is not, so [`Verifier::key`] does that only for a caller the policy
    /// admitted, and only admitted callers fill the cache.
    pub(crate) fn account(&self, ss58: &str) -> Result<(AccountId, Option<VerifyingKey>), String> {
        if let Ok(keys) = self.keys.lock()
            && let Some((account, key)) = keys.get(ss58)
        {
            return Ok((*account, Some(*key)));
        }
        let (_, account) =
            AccountId::from_ss58_any(ss58).map_err(|e| format!("bad hotkey {ss58}: {e}"))?;
        Ok((account, None))
    }

    /// The decompressed key of `account` (the SS58 text `ss58`), cached.
    pub(crate) fn key(
        &self,
        ss58: &str,
        account: AccountId,
    ) -> Result<(AccountId, VerifyingKey), String> {
        let public = VerifyingKey::new(&account)
            .ok_or_else(|| format!("hotkey {ss58} is not an sr25519 public key"))?;
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= KEY_CACHE {
                keys.clear();
            }
            keys.insert(ss58.to_owned(), (account, public));
        }
        Ok((account, public))
    }

    /// How many keys the cache holds.
    #[cfg(test)]
    pub(crate) fn cached_keys(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Whether `raw` signs `message` for `key`.
    pub(crate) async fn verify(
        &self,
        key: (AccountId, VerifyingKey),
        message: Vec<u8>,
        signature: Signature,
    ) -> bool {
        // Malformed (no schnorrkel mark, a scalar out of range): refused
        // without a place in the queue.
        if schnorrkel::Signature::from_bytes(&signature.0).is_err() {
            return false;
        }
        // A flood waits here, as it waited on the old thread's channel.
        let Ok(place) = self.places.clone().acquire_owned().await else {
            return false;
        };
        let (done, rx) = oneshot::channel();
        let job = Job {
            key: key.1,
            message,
            signature,
            done,
            _place: place,
        };
        let start = {
            let mut p = lock(&self.pending);
            p.jobs.push(job);
            !std::mem::replace(&mut p.checking, true)
        };
        if start {
            tokio::spawn(check_queue(self.pending.clone()));
        }
        // A dropped sender (the checking task panicked) is a failed check.
        rx.await.unwrap_or(false)
    }
}

/// Checks the queue batch by batch until it is empty.
async fn check_queue(pending: Arc<Mutex<Pending>>) {
    loop {
        let batch = {
            let mut p = lock(&pending);
            // A request that went away (its client hung up) is not checked.
            p.jobs.retain(|j| !j.done.is_closed());
            let n = p.jobs.len().min(MAX_BATCH);
            #[cfg(test)]
            p.batches.push(n);
            p.jobs.drain(..n).collect::<Vec<_>>()
        };
        // Should a check panic, the requests in its batch get a failed
        // check (their senders are dropped), not a hang, and the queue
        // behind them is still checked.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(batch, 2)));
        if checked.is_err() {
            tracing::error!("a signature check panicked; its batch is refused");
        }
        {
            let mut p = lock(&pending);
            if p.jobs.is_empty() {
                p.checking = false;
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Checks a batch, at once when it holds at least `smallest_batch`
/// signatures ([`verify_batch`]), and each signature alone when it is
/// smaller or the batch fails.
fn check(batch: Vec<Job>, smallest_batch: usize) {
    let all_good = batch.len() >= smallest_batch && {
        let items: Vec<_> = batch
            .iter()
            .map(|j| (&j.key, j.message.as_slice(), &j.signature))
            .collect();
        verify_batch(&items)
    };
    for j in batch {
        // One at a time (also the `<Bytes>…</Bytes>` form, as `verify` allows).
        let ok = all_good || j.key.verify(&j.message, &j.signature);
        let _ = j.done.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::Keypair;

    /// Call `i`'s message and signature: by //Alice, except the forged
    /// ones (3: signed by //Bob; 5: over another message).
    fn signed_call(i: usize) -> (Vec<u8>, Signature) {
        let alice = Keypair::from_uri("//Alice").expect("dev key");
        let message = format!("message {i}").into_bytes();
        let signature = match i {
            3 => Keypair::from_uri("//Bob").expect("dev key").sign(&message),
            5 => alice.sign(b"another message"),
            _ => alice.sign(&message),
        };
        (message, signature)
    }

    /// `n` calls ([`signed_call`]) spawned at once; their verdicts.
    async fn calls(v: &Arc<Verifier>, n: usize) -> Vec<bool> {
        let alice = Keypair::from_uri("//Alice").expect("dev key");
        let key = v
            .key(&alice.account().to_ss58(), alice.account())
            .expect("alice's key");
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (message, signature) = signed_call(i);
                let v = v.clone();
                tokio::spawn(async move { v.verify(key, message, signature).await })
            })
            .collect();
        let mut verdicts = Vec::new();
        for h in handles {
            verdicts.push(h.await.expect("no panic"));
        }
        verdicts
    }

    fn forged_fail(n: usize) -> Vec<bool> {
        (0..n).map(|i| i != 3 && i != 5).collect()
    }

    /// On one thread, calls spawned together all queue before the checking
    /// task runs: one batch per turn, a forged signature failing alone.
    #[tokio::test]
    async fn calls_of_one_turn_are_one_batch_and_a_forgery_fails_alone() {
        let v = Arc::new(Verifier::new());
        let run = async {
            for round in 0..2 {
                assert_eq!(calls(&v, 8).await, forged_fail(8), "round {round}");
            }
            assert_eq!(calls(&v, 1).await, [true]);
            assert_eq!(calls(&v, 2).await, [true, true]);
            // More than one batch: 64, then the rest.
            let n = MAX_BATCH + 3;
            assert_eq!(calls(&v, n).await, forged_fail(n));
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .expect("no call hangs");
        let p = lock(&v.pending);
        assert_eq!(p.batches, [8, 8, 1, 2, MAX_BATCH, 3]);
        assert!(!p.checking, "the checking task ended");
        assert!(p.jobs.is_empty());
        assert_eq!(
            v.places.available_permits(),
            MAX_QUEUED,
            "every place given back"
        );
    }

    /// On a pool, where the checking task may run beside the calls, the
    /// verdicts are the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verdicts_are_the_same_on_a_multi_thread_runtime() {
        let v = Arc::new(Verifier::new());
        let run = async {
            for n in [1, 8, MAX_BATCH + 3, 2 * MAX_QUEUED] {
                assert_eq!(calls(&v, n).await, forged_fail(n), "{n} calls");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(120), run)
            .await
            .expect("no call hangs");
        assert_eq!(v.places.available_permits(), MAX_QUEUED);
    }

    /// A call whose request went away (its receiver dropped) is not checked.
    #[tokio::test]
    async fn an_abandoned_call_is_not_checked() {
        let v = Arc::new(Verifier::new());
        let alice = Keypair::from_uri("//Alice").expect("dev key");
        let key = v
            .key(&alice.account().to_ss58(), alice.account())
            .expect("alice's key");
        let (done, rx) = oneshot::channel();
        drop(rx);
        let place = v.places.clone().try_acquire_owned().expect("a place");
        lock(&v.pending).jobs.push(Job {
            key: key.1,
            message: b"gone".to_vec(),
            signature: alice.sign(b"gone"),
            done,
            _place: place,
        });
        assert_eq!(calls(&v, 2).await, [true, true]);
        let p = lock(&v.pending);
        assert_eq!(p.batches, [2], "the abandoned call was left out");
        assert_eq!(v.places.available_permits(), MAX_QUEUED);
    }

    /// Every way of checking a batch (at once on dalek 5 or with
    /// schnorrkel, or each signature alone on either) gives each signature
    /// its own verdict: forgeries fail, the honest ones in their batch pass.
    #[test]
    fn both_ways_of_checking_a_batch_agree() {
        let v = Verifier::new();
        let alice = Keypair::from_uri("//Alice").expect("dev key");
        for (dalek5, smallest_batch) in [
            (true, 2),
            (false, 2),
            (true, usize::MAX),
            (false, usize::MAX),
        ] {
            let key = VerifyingKey::checked_by(&alice.account(), dalek5).expect("alice's key");
            for n in [1, 2, 8] {
                let mut verdicts = Vec::new();
                let batch = (0..n)
                    .map(|i| {
                        let (message, signature) = signed_call(i);
                        let (done, rx) = oneshot::channel();
                        verdicts.push(rx);
                        let place = v.places.clone().try_acquire_owned().expect("a place");
                        Job {
                            key,
                            message,
                            signature,
                            done,
                            _place: place,
                        }
                    })
                    .collect();
                check(batch, smallest_batch);
                let got: Vec<bool> = verdicts
                    .into_iter()
                    .map(|mut rx| rx.try_recv().expect("a verdict"))
                    .collect();
                assert_eq!(
                    got,
                    forged_fail(n),
                    "dalek5={dalek5}, smallest_batch={smallest_batch}, n={n}"
                );
            }
        }
    }
}
