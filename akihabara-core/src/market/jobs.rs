//! The jobs protocol's pieces that both sides keep: signed job requests, the
//! miner's accept policy, and signed receipts in a crash-safe store.
//!
//! Modelled on ComputeHorde: a validator signs a [`JobRequest`]; the miner
//! answers accepted or declined (with a [`DeclineReason`]); when the job ends
//! the miner signs a [`Receipt`] of the outcome. Both sides append receipts to
//! a [`ReceiptStore`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use super::volumes::{InputFile, OutputFile};
use crate::AccountId;
use crate::executor::{Outcome, Requirements};
use crate::wallet::{Keypair, Signature, verify};

/// A validator's signed request to run a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Unique id chosen by the validator.
    pub job_id: String,
    /// The validator's hotkey.
    pub validator: AccountId,
    /// Hardware class wanted.
    pub hardware_class: String,
    /// Wall-clock limit, seconds.
    pub timeout_s: u64,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Resources wanted.
    #[serde(default)]
    pub requirements: Requirements,
    /// A directory on the executor the job writes its output to; its files
    /// are digested when the job ends (see [`ReceiptKind::Finished`]).
    #[serde(default)]
    pub output_dir: Option<String>,
    /// The container image the job runs in (a miner's docker executor;
    /// other executors decline a job that names one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment added to the job's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files the miner downloads into the job's work directory first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputFile>,
    /// Files the miner uploads after the job; their digest is in the
    /// `finished` receipt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputFile>,
    /// When it was signed, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// sr25519 signature of [`JobRequest::message`], 0x hex.
    pub signature: String,
}

fn digest_json<T: Serialize>(v: &T) -> String {
    // Serializing our own plain types cannot fail; an empty digest input
    // would only make signatures fail to verify, never pass.
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

fn sign_hex(kp: &Keypair, message: &[u8]) -> String {
    format!("0x{}", hex::encode(kp.sign(message).0))
}

fn verify_hex(who: &AccountId, message: &[u8], signature: &str) -> bool {
    let Some(hex_part) = signature.strip_prefix("0x") else {
        return false;
    };
    let Ok(bytes) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    verify(who, message, &Signature(sig))
}

impl JobRequest {
    /// The bytes the validator signs: every field but the signature. The
    /// image and environment are appended only when a request has them, so
    /// a request without them signs the same bytes as before they existed.
    pub fn message(&self) -> Vec<u8> {
        let mut m = format!(
            "akihabara-job-request:{}:{}:{}:{}:{}:{}:{}:{}",
            self.job_id,
            self.validator,
            self.hardware_class,
            self.timeout_s,
            digest_json(&self.command),
            digest_json(&self.requirements),
            digest_json(&self.output_dir),
            self.issued_at_ms
        );
        if self.image.is_some() || !self.env.is_empty() {
            m.push_str(&format!(
                ":container:{}:{}",
                digest_json(&self.image),
                digest_json(&self.env)
            ));
        }
        if !self.inputs.is_empty() || !self.outputs.is_empty() {
            m.push_str(&format!(
                ":volumes:{}:{}",
                digest_json(&self.inputs),
                digest_json(&self.outputs)
            ));
        }
        m.into_bytes()
    }

    /// Signs the request with the validator's hotkey (sets `validator` too).
    pub fn sign(mut self, hotkey: &Keypair) -> JobRequest {
        self.validator = hotkey.account();
        self.signature = sign_hex(hotkey, &self.message());
        self
    }

    /// Whether the signature is the validator's.
    pub fn verify(&self) -> bool {
        verify_hex(&self.validator, &self.message(), &self.signature)
    }
}

/// Why a miner declined a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// No free executor of the class.
    Busy,
    /// The miner has no executor of the class.
    UnsupportedClass,
    /// The validator is not served.
    ValidatorBlacklisted,
    /// The operator's policy refused it.
    Unprofitable,
    /// The request itself is malformed (empty command, zero timeout, a
    /// signature that is not the caller's …).
    Invalid,
}

/// The miner's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    /// It will run.
    Accepted,
    /// It will not.
    Declined(DeclineReason),
}

/// What the miner knows when it decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Situation {
    /// Some executor has the requested class.
    pub class_supported: bool,
    /// One of them is healthy and free.
    pub free_executor: bool,
    /// The validator passes the miner's blacklist.
    pub validator_allowed: bool,
}

/// How a miner decides. The protocol's rule comes first and is not the
/// policy's to change: a miner with a free executor of the requested class
/// must accept, unless the validator is blacklisted. The policy decides only
/// what the rule leaves open ([`decide`]); a refusal is sent as
/// [`DeclineReason::Unprofitable`] with the [`Refusal`] as its detail.
///
/// It may block (a script runs, see
/// [`ScriptPolicy`](super::accept::ScriptPolicy)): the job service calls it
/// off the async runtime. Reference policies are in
/// [`market::accept`](super::accept).
pub trait AcceptPolicy: Send + Sync {
    /// `Some(why)` refuses a job the rule does not settle, as unprofitable.
    fn refuse(&self, request: &JobRequest) -> Option<Refusal>;
}

impl<P: AcceptPolicy + ?Sized> AcceptPolicy for &P {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        (**self).refuse(request)
    }
}

impl<P: AcceptPolicy + ?Sized> AcceptPolicy for Box<P> {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        (**self).refuse(request)
    }
}

impl<P: AcceptPolicy + ?Sized> AcceptPolicy for std::sync::Arc<P> {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        (**self).refuse(request)
    }
}

/// Why an [`AcceptPolicy`] refused a job; its text is the declined answer's
/// `detail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The job asks for longer than the operator sells its class for
    /// ([`ClassLimits`](super::accept::ClassLimits)).
    #[error("a {class} job may run at most {max_s} s; this one asks for {asked_s} s")]
    TooLong {
        /// The hardware class asked for.
        class: String,
        /// The job's `timeout_s`.
        asked_s: u64,
        /// The longest the operator accepts for the class.
        max_s: u64,
    },
    /// The operator does not sell this class for jobs
    /// ([`ClassLimits::only_listed`](super::accept::ClassLimits::only_listed)).
    #[error("class {class} is not offered for jobs")]
    ClassNotOffered {
        /// The hardware class asked for.
        class: String,
    },
    /// The accept script declined, with the first line of its stderr.
    #[error("{0}")]
    Script(String),
    /// The accept script could not decide (it could not start, timed out,
    /// was killed): the job is declined, never accepted by default.
    #[error("the accept script failed: {0}")]
    ScriptFailed(String),
    /// A plug-in policy's own reason.
    #[error("{0}")]
    Other(String),
}

/// Accepts everything it may.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl AcceptPolicy for AcceptAll {
    fn refuse(&self, _request: &JobRequest) -> Option<Refusal> {
        None
    }
}

/// The protocol's rule alone: `Some(reason)` when it settles the request
/// as declined. A request whose signature does not verify is declined as
/// blacklisted.
pub fn rule(request: &JobRequest, situation: Situation) -> Option<DeclineReason> {
    if !situation.validator_allowed || !request.verify() {
        return Some(DeclineReason::ValidatorBlacklisted);
    }
    if !situation.class_supported {
        return Some(DeclineReason::UnsupportedClass);
    }
    if !situation.free_executor {
        return Some(DeclineReason::Busy);
    }
    None
}

/// The decision for `request` in `situation` under `policy`: the
/// [`rule`], then the policy.
pub fn decide(policy: &dyn AcceptPolicy, request: &JobRequest, situation: Situation) -> Decision {
    if let Some(reason) = rule(request, situation) {
        return Decision::Declined(reason);
    }
    // A free executor of the class: the rule says accept. The policy may only
    // refuse what is unprofitable, and a miner that does so is scored down
    // for the decline (see `score::Penalties` and the ledger's declines).
    if policy.refuse(request).is_some() {
        return Decision::Declined(DeclineReason::Unprofitable);
    }
    Decision::Accepted
}

/// What a receipt attests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReceiptKind {
    /// The miner accepted the job.
    Accepted,
    /// The job ended.
    Finished {
        /// Exit code, when it exited.
        exit_code: Option<i32>,
        /// How it ended (`exited`, `signaled`, `timed_out`, `cancelled`).
        status: String,
        /// SHA-256 of stdout, hex.
        stdout_sha256: String,
        /// SHA-256 of stderr, hex.
        stderr_sha256: String,
        /// Digest of the request's outputs: with `outputs`, SHA-256 of one
        /// line `<sha256>  <path>` per uploaded file
        /// ([`outputs_digest`](super::volumes::outputs_digest)); with an
        /// `output_dir`, SHA-256 of the listing
        /// `cd DIR && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum`
        /// prints, hex; `None` when the request named neither.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_sha256: Option<String>,
        /// Wall time, ms.
        duration_ms: u64,
    },
}

impl ReceiptKind {
    /// The `Finished` receipt of an outcome, with the output digest.
    pub fn finished(o: &Outcome, output_sha256: Option<String>) -> ReceiptKind {
        let (exit_code, status) = match &o.status {
            crate::executor::JobStatus::Exited { code } => (Some(*code), "exited"),
            crate::executor::JobStatus::Signaled { .. } => (None, "signaled"),
            crate::executor::JobStatus::TimedOut => (None, "timed_out"),
            crate::executor::JobStatus::Cancelled => (None, "cancelled"),
            crate::executor::JobStatus::OutOfMemory => (None, "out_of_memory"),
        };
        ReceiptKind::Finished {
            exit_code,
            status: status.to_owned(),
            stdout_sha256: o.stdout.sha256.clone(),
            stderr_sha256: o.stderr.sha256.clone(),
            output_sha256,
            duration_ms: o.duration.as_millis() as u64,
        }
    }
}

/// A receipt signed by the miner's hotkey. (Unknown fields are ignored:
/// serde cannot refuse them beside a flattened `kind`; the signature covers
/// every field that matters.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Id of the job it is for.
    pub job_id: String,
    /// The validator that asked.
    pub validator: AccountId,
    /// The miner that signs.
    pub miner: AccountId,
    /// Hardware class of the executor that runs the job.
    pub hardware_class: String,
    /// When it was signed, ms since the Unix epoch.
    pub at_ms: u64,
    /// What it attests.
    #[serde(flatten)]
    pub kind: ReceiptKind,
    /// sr25519 signature by `miner`, 0x hex.
    pub signature: String,
}

impl Receipt {
    /// A receipt for `request`, signed by the miner's hotkey.
    pub fn sign(request: &JobRequest, kind: ReceiptKind, at_ms: u64, miner: &Keypair) -> Receipt {
        let mut r = Receipt {
            job_id: request.job_id.clone(),
            validator: request.validator,
            miner: miner.account(),
            hardware_class: request.hardware_class.clone(),
            at_ms,
            kind,
            signature: String::new(),
        };
        r.signature = sign_hex(miner, &r.message());
        r
    }

    /// The bytes the miner signs: every field but the signature.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "akihabara-job-receipt:{}:{}:{}:{}:{}:{}",
            self.job_id,
            self.validator,
            self.miner,
            self.hardware_class,
            self.at_ms,
            digest_json(&self.kind)
        )
        .into_bytes()
    }

    /// Whether the miner's signature holds.
    pub fn verify(&self) -> bool {
        verify_hex(&self.miner, &self.message(), &self.signature)
    }

    /// Whether the fields have the shapes a miner writes: a class of at most
    /// 128 bytes, a known status, SHA-256 digests as 64 hex digits. A
    /// signature says who wrote a receipt, not that it is sane; a validator
    /// stores what passes this.
    pub fn check_shape(&self) -> Result<(), String> {
        if self.hardware_class.len() > 128 || self.job_id.len() > 128 {
            return Err("a job id or hardware class longer than 128 bytes".into());
        }
        if let ReceiptKind::Finished {
            status,
            stdout_sha256,
            stderr_sha256,
            output_sha256,
            ..
        } = &self.kind
        {
            if !FINISHED_STATUSES.contains(&status.as_str()) {
                return Err(format!(
                    "an unknown status {:?}",
                    crate::protocol::clip_text(status.clone(), 32)
                ));
            }
            let digests = [stdout_sha256, stderr_sha256];
            if !digests
                .into_iter()
                .chain(output_sha256)
                .all(|d| is_sha256_hex(d))
            {
                return Err("a digest that is not 64 lowercase hex digits".into());
            }
        }
        Ok(())
    }
}

/// The statuses of a `finished` receipt ([`ReceiptKind::finished`]).
pub const FINISHED_STATUSES: [&str; 5] = [
    "exited",
    "signaled",
    "timed_out",
    "cancelled",
    "out_of_memory",
];

/// Whether `text` is a SHA-256 digest as `hex` writes it: 64 lowercase hex
/// digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub use super::receipts::{Loaded, ReceiptStore};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key(uri: &str) -> Keypair {
        Keypair::from_uri(uri).expect("dev key")
    }

    pub(crate) fn request() -> JobRequest {
        JobRequest {
            job_id: "job-1".into(),
            validator: AccountId::from_bytes([0; 32]),
            hardware_class: "A100".into(),
            timeout_s: 60,
            command: vec!["nvidia-smi".into()],
            requirements: Requirements::default(),
            output_dir: None,
            image: None,
            env: Default::default(),
            inputs: vec![],
            outputs: vec![],
            issued_at_ms: 1_700_000_000_000,
            signature: String::new(),
        }
        .sign(&key("//validator1"))
    }

    #[test]
    fn requests_are_signed_by_the_validator() {
        let r = request();
        assert!(r.verify());
        let mut tampered = r.clone();
        tampered.command.push("--evil".into());
        assert!(!tampered.verify());
        let mut other = r.clone();
        other.validator = key("//validator2").account();
        assert!(!other.verify());
        let mut junk = r.clone();
        junk.signature = "0xzz".into();
        assert!(!junk.verify());
        // The image and environment are signed too, once a request has them.
        let mut contained = r.clone();
        contained.image = Some("busybox:latest".into());
        assert!(!contained.verify());
        let contained = contained.sign(&key("//validator1"));
        assert!(contained.verify());
        let mut swapped = contained.clone();
        swapped.env.insert("EVIL".into(), "1".into());
        assert!(!swapped.verify());
        // A request without them signs the bytes it signed before they existed.
        assert!(!String::from_utf8_lossy(&r.message()).contains(":container:"));
    }

    #[test]
    fn the_rule_comes_before_the_policy() {
        struct Refuse;
        impl AcceptPolicy for Refuse {
            fn refuse(&self, _: &JobRequest) -> Option<Refusal> {
                Some(Refusal::Other("no".into()))
            }
        }
        let r = request();
        let s = |class_supported, free_executor, validator_allowed| Situation {
            class_supported,
            free_executor,
            validator_allowed,
        };
        assert_eq!(
            decide(&AcceptAll, &r, s(true, true, true)),
            Decision::Accepted
        );
        assert_eq!(
            decide(&AcceptAll, &r, s(true, false, true)),
            Decision::Declined(DeclineReason::Busy)
        );
        assert_eq!(
            decide(&AcceptAll, &r, s(false, false, true)),
            Decision::Declined(DeclineReason::UnsupportedClass)
        );
        assert_eq!(
            decide(&AcceptAll, &r, s(true, true, false)),
            Decision::Declined(DeclineReason::ValidatorBlacklisted)
        );
        assert_eq!(
            decide(&Refuse, &r, s(true, true, true)),
            Decision::Declined(DeclineReason::Unprofitable)
        );
        let mut forged = r;
        forged.timeout_s = 1;
        assert_eq!(
            decide(&AcceptAll, &forged, s(true, true, true)),
            Decision::Declined(DeclineReason::ValidatorBlacklisted)
        );
    }
}
