//! Signature checks for the axon, batched under load.
//!
//! Requests hand their (key, message, signature) to one verifier thread.
//! It takes whatever has queued up (at most [`MAX_BATCH`]) and checks it with
//! sr25519 batch verification, which costs about half as much per signature
//! as checking one at a time once a few are waiting; signatures from the same
//! hotkey (a subnet has few validators) share one term. An idle axon sees
//! batches of one: no added wait. Under load a small batch waits once, for
//! [`LINGER`], so batches grow. When a batch fails, each signature in it
//! is checked alone, so one forged request never fails an honest one.
//! Decompressed public keys are cached per hotkey string.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::AccountId;
use crate::wallet::{Signature, verify_with};

/// Most signatures checked in one batch.
pub(crate) const MAX_BATCH: usize = 64;
const KEY_CACHE: usize = 4096;
/// Under load (the previous batch had more than one signature), a batch
/// smaller than this waits once for [`LINGER`] to gather more.
const LINGER_UNTIL: usize = 24;
/// The one wait of a batch under load: small against network latency, and it
/// roughly halves the curve arithmetic per signature.
const LINGER: std::time::Duration = std::time::Duration::from_micros(250);

struct Job {
    public: schnorrkel::PublicKey,
    message: Vec<u8>,
    signature: schnorrkel::Signature,
    done: oneshot::Sender<bool>,
}

pub(crate) struct Verifier {
    tx: mpsc::Sender<Job>,
    keys: Mutex<HashMap<String, (AccountId, schnorrkel::PublicKey)>>,
}

impl Verifier {
    /// Starts the verifier thread; it ends when the `Verifier` is dropped.
    pub(crate) fn start() -> std::io::Result<Verifier> {
        let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("axon-verify".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                let mut last = 0usize;
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    let mut lingered = false;
                    loop {
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(j) => batch.push(j),
                                Err(_) => break,
                            }
                        }
                        if lingered || batch.len() >= LINGER_UNTIL || last <= 1 {
                            break;
                        }
                        std::thread::sleep(LINGER);
                        lingered = true;
                    }
                    last = batch.len();
                    check(&mut batch);
                }
            })?;
        Ok(Verifier {
            tx,
            keys: Mutex::new(HashMap::new()),
        })
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
        if self.tx.send(job).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
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
