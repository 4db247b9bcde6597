//! Signature checks for the axon, batched under load, on the axon's own
//! runtime.
//!
//! A request that needs its signature checked queues its (key, message,
//! signature) and, when no check is under way, spawns one task that checks
//! the queue. That task runs after the requests the runtime already has in
//! hand, so everything that arrived in the same turn of the event loop is
//! checked as one batch (at most [`MAX_BATCH`]) with sr25519 batch
//! verification; signatures from the same hotkey (a subnet has few
//! validators) share one term. An idle axon sees batches of one and pays no
//! wait. When a batch fails, each signature in it is checked alone, so one
//! forged request never fails an honest one. After each batch the task
//! yields, so a flood of signatures cannot keep other connections waiting
//! longer than one batch.
//!
//! Checking on the runtime, not on a thread of its own, saves the two thread
//! wake-ups per batch that a hand-off costs; `scripts/soak.py cpu` measured
//! the difference under the Python dendrite's load (README, Performance).
//! Decompressed public keys are cached per hotkey string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::AccountId;
use crate::wallet::{Signature, verify_with};

/// Most signatures checked in one batch.
pub(crate) const MAX_BATCH: usize = 64;
const KEY_CACHE: usize = 4096;

struct Job {
    public: schnorrkel::PublicKey,
    message: Vec<u8>,
    signature: schnorrkel::Signature,
    done: oneshot::Sender<bool>,
}

/// Signatures waiting for the checking task, and whether one is scheduled.
#[derive(Default)]
struct Pending {
    jobs: Vec<Job>,
    checking: bool,
}

/// Locks the queue. A poisoned lock still holds a valid queue: nothing
/// panics while holding it.
fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Verifier {
    pending: Arc<Mutex<Pending>>,
    keys: Mutex<HashMap<String, (AccountId, schnorrkel::PublicKey)>>,
}

impl Verifier {
    /// An empty queue and key cache; checks run on the caller's runtime.
    pub(crate) fn new() -> Verifier {
        Verifier {
            pending: Arc::default(),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The account and decompressed key of an SS58 hotkey (cached).
    pub(crate) fn key(&self, ss58: &str) -> Result<(AccountId, schnorrkel::PublicKey), String> {
        if let Ok(keys) = self.keys.lock()
            && let Some(k) = keys.get(ss58)
        {
            return Ok(*k);
        }
        let (_, account) =
            AccountId::from_ss58_any(ss58).map_err(|e| format!("bad hotkey {ss58}: {e}"))?;
        let public = schnorrkel::PublicKey::from_bytes(account.as_bytes())
            .map_err(|_| format!("hotkey {ss58} is not an sr25519 public key"))?;
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= KEY_CACHE {
                keys.clear();
            }
            keys.insert(ss58.to_owned(), (account, public));
        }
        Ok((account, public))
    }

    /// Whether `raw` signs `message` for `key`.
    pub(crate) async fn verify(
        &self,
        key: (AccountId, schnorrkel::PublicKey),
        message: Vec<u8>,
        raw: Signature,
    ) -> bool {
        let Ok(signature) = schnorrkel::Signature::from_bytes(&raw.0) else {
            return false;
        };
        let (done, rx) = oneshot::channel();
        let job = Job {
            public: key.1,
            message,
            signature,
            done,
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
    // Should a check panic, the queue is left to a new task, and the
    // requests in the batch get a failed check (their senders are dropped),
    // not a hang.
    struct Reset(Arc<Mutex<Pending>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            if std::thread::panicking() {
                lock(&self.0).checking = false;
            }
        }
    }
    let _reset = Reset(pending.clone());
    loop {
        let mut batch = {
            let mut p = lock(&pending);
            let n = p.jobs.len().min(MAX_BATCH);
            p.jobs.drain(..n).collect::<Vec<_>>()
        };
        check(&mut batch);
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

fn check(batch: &mut Vec<Job>) {
    let ctx = crate::wallet::signing_context();
    let all_good = batch.len() > 1 && {
        let transcripts: Vec<_> = batch.iter().map(|j| ctx.bytes(&j.message)).collect();
        let sigs: Vec<_> = batch.iter().map(|j| j.signature).collect();
        let keys: Vec<_> = batch.iter().map(|j| j.public).collect();
        schnorrkel::verify_batch(transcripts, &sigs, &keys, true).is_ok()
    };
    for j in batch.drain(..) {
        // One at a time (also the `<Bytes>…</Bytes>` form, as `verify` allows).
        let ok = all_good || verify_with(&j.public, &j.message, &j.signature);
        let _ = j.done.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::Keypair;

    /// Requests in one turn of the event loop are checked as one batch; a
    /// forged signature among them fails alone, and a second turn's checks
    /// still run after the first batch emptied the queue.
    #[tokio::test]
    async fn a_forged_signature_in_a_batch_fails_alone() {
        let v = Arc::new(Verifier::new());
        let alice = Arc::new(Keypair::from_uri("//Alice").expect("dev key"));
        let bob = Keypair::from_uri("//Bob").expect("dev key");
        let key = v.key(&alice.account().to_ss58()).expect("alice's key");
        // Request 3 is signed by the wrong key; 5 signs another message.
        let forged = [(3, bob.sign(b"message 3")), (5, alice.sign(b"another"))];
        let calls = |n: usize| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let message = format!("message {i}").into_bytes();
                    let signature = forged
                        .iter()
                        .find(|(j, _)| *j == i)
                        .map_or_else(|| alice.sign(&message), |(_, s)| Signature(s.0));
                    let v = v.clone();
                    tokio::spawn(async move { v.verify(key, message, signature).await })
                })
                .collect();
            async move {
                let mut verdicts = Vec::new();
                for h in handles {
                    verdicts.push(h.await.expect("no panic"));
                }
                verdicts
            }
        };
        // Spawned on this one-thread runtime, the calls all queue before the
        // checking task runs: one batch, twice over.
        for round in 0..2 {
            let expected: Vec<bool> = (0..8).map(|i| i != 3 && i != 5).collect();
            assert_eq!(calls(8).await, expected, "round {round}");
            assert!(!lock(&v.pending).checking, "round {round}: the task ended");
            assert!(lock(&v.pending).jobs.is_empty());
        }
        // A batch of one, and a queue longer than one batch.
        assert_eq!(calls(1).await, [true]);
        let verdicts = calls(MAX_BATCH + 3).await;
        assert_eq!(verdicts.len(), MAX_BATCH + 3);
        assert_eq!(
            verdicts
                .iter()
                .enumerate()
                .filter(|(_, ok)| !**ok)
                .map(|(i, _)| i)
                .collect::<Vec<_>>(),
            [3, 5],
            "only the forged ones fail"
        );
    }
}
