//! The validator's side of jobs and allocations: [`submit_job`] and
//! [`query_job`] check the miner's receipts and keep them in the validator's
//! own [`ReceiptStore`]; [`allocate`] and [`deallocate`] open the sealed
//! login details with the validator's sealing key. The miner's side is
//! [`JobService`](super::server::JobService).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jobs::{DeclineReason, JobRequest, Receipt, ReceiptKind, ReceiptStore, is_sha256_hex};
use super::wire::{
    Allocate, AllocateReply, CancelReply, Deallocate, DeallocateReply, JobCancel, JobLogs,
    JobQuery, JobReply, JobSubmit,
};
use crate::AccountId;
use crate::dendrite::{AxonTarget, CallResult, Dendrite};
use crate::executor::access::{
    LoginDetails, check_allocation_id, open_details, sealing_public_hex,
};
use crate::protocol::clip_text;

/// A failed validator-side call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The call did not succeed.
    #[error("{}", call_text(*.status, .message, *.answered))]
    Call {
        /// HTTP status the axon answered with, or the dendrite's status for
        /// a call that got no answer (503 connection refused, 408 timeout).
        status: u16,
        /// The axon's status message, saying why, or the dendrite's.
        message: String,
        /// Whether the axon answered at all
        /// ([`CallResult::answered`](crate::dendrite::CallResult::answered)).
        answered: bool,
    },
    /// The answer has no reply, or a receipt that is not the miner's.
    #[error("bad answer from the miner: {0}")]
    BadAnswer(String),
    /// Storing the receipt failed.
    #[error("storing the receipt")]
    Store(#[source] crate::executor::IoCause),
}

/// A failed call in words: what the axon answered, or that nothing did.
fn call_text(status: u16, message: &str, answered: bool) -> String {
    match (answered, status) {
        (true, _) => format!("the miner's axon answered {status}: {message}"),
        (false, 503) => format!("connection refused ({message})"),
        (false, _) => format!("no answer: {message}"),
    }
}

impl ClientError {
    /// Whether no answer came at all: the connection was refused or the call
    /// timed out (the dendrite's 503 and 408), as opposed to an axon that
    /// answered with an error status.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Call { status, .. } if *status == 503 || *status == 408)
    }

    /// Whether the miner answered 429: too many of the caller's calls at
    /// once (its rate limit, or its budget of job calls still being worked
    /// on). Try again later; it is not a refusal of the job.
    pub fn is_busy(&self) -> bool {
        matches!(self, ClientError::Call { status: 429, .. })
    }
}

/// Longest free text kept from a miner's reply (a decline's detail, a
/// failure's reason); longer text is cut ([`clip_text`]).
pub const MAX_MINER_TEXT: usize = 512;

fn keep_receipt(
    reply: &JobReply,
    job_id: &str,
    miner: &AccountId,
    store: &ReceiptStore,
) -> Result<(), ClientError> {
    let Some(r) = receipt_of(reply) else {
        return Ok(());
    };
    if &r.miner != miner || r.job_id != job_id || !r.verify() {
        return Err(ClientError::BadAnswer(
            "a receipt that is not the miner's signature over this job".into(),
        ));
    }
    if !receipt_matches(reply) {
        return Err(ClientError::BadAnswer(format!(
            "a {} reply whose signed receipt says otherwise (its kind, exit code or digests \
             differ)",
            reply.state()
        )));
    }
    r.check_shape()
        .map_err(|e| ClientError::BadAnswer(format!("a receipt with {e}")))?;
    store
        .append_first(r)
        .map(|_| ())
        .map_err(|e| ClientError::Store(e.into()))
}

/// A miner's job reply as a validator keeps it: free text cut to
/// [`MAX_MINER_TEXT`], digests checked to be SHA-256 hex (whatever is
/// stored or shown of a reply is bounded, whoever the miner is).
fn checked(mut reply: JobReply) -> Result<JobReply, ClientError> {
    match &mut reply {
        JobReply::Declined { detail: text, .. } | JobReply::Failed { reason: text, .. } => {
            *text = clip_text(std::mem::take(text), MAX_MINER_TEXT);
        }
        JobReply::Finished {
            stdout_sha256,
            stderr_sha256,
            output_sha256,
            ..
        } => {
            let digests = [stdout_sha256.as_str(), stderr_sha256.as_str()];
            if !digests
                .into_iter()
                .chain(output_sha256.as_deref())
                .all(is_sha256_hex)
            {
                return Err(ClientError::BadAnswer(
                    "a digest that is not 64 lowercase hex digits".into(),
                ));
            }
        }
        _ => {}
    }
    Ok(reply)
}

/// Whether the miner's signed receipt in `reply` attests what the reply
/// says: an `Accepted` receipt for an acceptance, and for a finished job a
/// `Finished` receipt of the same exit code and digests (the reply's own
/// fields are unsigned; a check that judges them must be able to show the
/// signature behind them).
fn receipt_matches(reply: &JobReply) -> bool {
    match reply {
        JobReply::Accepted { receipt } => receipt.kind == ReceiptKind::Accepted,
        JobReply::Finished {
            exit_code,
            stdout_sha256,
            stderr_sha256,
            output_sha256,
            receipt,
        } => matches!(
            &receipt.kind,
            ReceiptKind::Finished {
                exit_code: Some(code),
                status,
                stdout_sha256: out,
                stderr_sha256: err,
                output_sha256: outputs,
                ..
            } if code == exit_code
                && status == "exited"
                && out == stdout_sha256
                && err == stderr_sha256
                && outputs == output_sha256
        ),
        // A failure's receipt, when there is one, says how the job ended
        // (any kind): the reply's reason is the miner's word either way.
        _ => true,
    }
}

fn receipt_of(reply: &JobReply) -> Option<&Receipt> {
    match reply {
        JobReply::Accepted { receipt } | JobReply::Finished { receipt, .. } => Some(receipt),
        JobReply::Failed { receipt, .. } => receipt.as_ref(),
        _ => None,
    }
}

/// The miner's reply in a call's answer, or why there is none.
fn reply_of_call<S, R>(
    call: CallResult<S>,
    reply: impl FnOnce(S) -> Option<R>,
) -> Result<R, ClientError> {
    let (status, answered) = (call.status, call.answered);
    call.synapse
        .and_then(reply)
        .ok_or_else(|| no_reply(status, call.message, answered))
}

/// The error for a call whose answer holds no reply: the call failed, or
/// (status 200) the miner answered without one.
fn no_reply(status: u16, message: String, answered: bool) -> ClientError {
    if status == 200 {
        ClientError::BadAnswer("the miner answered without a reply".into())
    } else {
        ClientError::Call {
            status,
            message,
            answered,
        }
    }
}

/// Validator side: submits `request` to `miner`, checks the miner's receipt
/// and keeps it in `store`.
pub async fn submit_job(
    dendrite: &Dendrite,
    miner: &AxonTarget,
    request: JobRequest,
    store: &ReceiptStore,
    timeout: Duration,
) -> Result<JobReply, ClientError> {
    let job_id = request.job_id.clone();
    let call = dendrite
        .call(
            miner,
            JobSubmit {
                request,
                reply: None,
            },
            timeout,
        )
        .await;
    let reply = checked(reply_of_call(call, |s| s.reply)?)?;
    keep_receipt(&reply, &job_id, &miner.hotkey, store)?;
    Ok(reply)
}

/// Validator side: asks `miner` for a job's state; keeps a `finished`
/// receipt in `store`.
pub async fn query_job(
    dendrite: &Dendrite,
    miner: &AxonTarget,
    job_id: &str,
    store: &ReceiptStore,
    timeout: Duration,
) -> Result<JobReply, ClientError> {
    let call = dendrite
        .call(
            miner,
            JobQuery {
                job_id: job_id.to_owned(),
                reply: None,
            },
            timeout,
        )
        .await;
    let reply = checked(reply_of_call(call, |s| s.reply)?)?;
    keep_receipt(&reply, job_id, &miner.hotkey, store)?;
    Ok(reply)
}

/// Validator side: asks `miner` to kill a running job of ours.
pub async fn cancel_job(
    dendrite: &Dendrite,
    miner: &AxonTarget,
    job_id: &str,
    timeout: Duration,
) -> Result<CancelReply, ClientError> {
    let call = dendrite
        .call(
            miner,
            JobCancel {
                job_id: job_id.to_owned(),
                reply: None,
            },
            timeout,
        )
        .await;
    reply_of_call(call, |s| s.reply)
}

/// Validator side: reads a job's output lines from `offset`.
pub async fn job_logs(
    dendrite: &Dendrite,
    miner: &AxonTarget,
    job_id: &str,
    offset: u64,
    timeout: Duration,
) -> Result<super::logs::LogsReply, ClientError> {
    let call = dendrite
        .call(
            miner,
            JobLogs {
                job_id: job_id.to_owned(),
                offset,
                reply: None,
            },
            timeout,
        )
        .await;
    reply_of_call(call, |s| s.reply)
}

/// An allocation a miner granted, its login details opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Allocation {
    /// The id to deallocate with.
    pub allocation_id: String,
    /// The executor reserved.
    pub executor: String,
    /// When it expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// How to log in (with the SSH key the request carried).
    pub login: LoginDetails,
}

/// What [`allocate`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocateOutcome {
    /// Reserved; the login details opened with the validator's key.
    Allocated(Allocation),
    /// The miner declined.
    Declined {
        /// Why the miner declined: busy, no such class, validator not served, …
        reason: DeclineReason,
        /// Details for people.
        detail: String,
    },
}

/// Validator side: asks `miner` for an allocation and opens the login
/// details it seals to `secret`.
///
/// `request`'s `sealing_key` is replaced by the public half of `secret`, so
/// the details always open with the key the caller holds. A reply that is
/// missing, names an allocation id that is not 1 to 64 letters, digits or
/// `-`, or whose details do not open with `secret` is a
/// [`ClientError::BadAnswer`]; a decline is an `Ok` outcome, for the caller
/// to weigh.
///
/// ```no_run
/// use akihabara_core::dendrite::{AxonTarget, Dendrite};
/// use akihabara_core::executor::access::new_sealing_key;
/// use akihabara_core::market::client::{AllocateOutcome, allocate};
/// use akihabara_core::market::wire::Allocate;
/// use akihabara_core::wallet::Keypair;
/// use std::time::Duration;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let dendrite = Dendrite::new(Keypair::from_uri("//validator1")?)?;
/// let miner = AxonTarget::new("127.0.0.1".parse()?, 8091, "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".parse()?);
/// let request = Allocate {
///     ssh_public_key: std::fs::read_to_string("/home/me/.ssh/id_ed25519.pub")?,
///     duration_s: 3600,
///     ..Allocate::default()
/// };
/// let secret = new_sealing_key();
/// if let AllocateOutcome::Allocated(a) =
///     allocate(&dendrite, &miner, request, &secret, Duration::from_secs(30)).await?
/// {
///     println!("ssh -p {} {}@{}", a.login.port, a.login.user, a.login.host);
/// }
/// # Ok(()) }
/// ```
pub async fn allocate(
    dendrite: &Dendrite,
    miner: &AxonTarget,
    mut request: Allocate,
    secret: &crypto_box::SecretKey,
    timeout: Duration,
) -> Result<AllocateOutcome, ClientError> {
    request.sealing_key = sealing_public_hex(secret);
    request.reply = None;
    let call = dendrite.call(miner, request, timeout).await;
    match reply_of_call(call, |s| s.reply)? {
        AllocateReply::Declined { reason, detail } => Ok(AllocateOutcome::Declined {
            reason,
            detail: clip_text(detail, MAX_MINER_TEXT),
        }),
        AllocateReply::Allocated {
            allocation_id,
            executor,
            expires_at_ms,
            sealed_details,
        } => {
            check_allocation_id(&allocation_id)
                .map_err(|e| ClientError::BadAnswer(format!("the miner's allocation id: {e}")))?;
            let login = open_details(&sealed_details, secret)
                .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
            Ok(AllocateOutcome::Allocated(Allocation {
                allocation_id,
                executor,
                expires_at_ms,
                login,
            }))
        }
    }
}

/// Validator side: ends allocation `allocation_id` on `miner` early.
/// [`DeallocateReply::Unknown`] means the miner holds no such allocation
/// of this validator (it expired, or was ended before).
pub async fn deallocate(
    dendrite: &Dendrite,
    miner: &AxonTarget,
    allocation_id: &str,
    timeout: Duration,
) -> Result<DeallocateReply, ClientError> {
    let call = dendrite
        .call(
            miner,
            Deallocate {
                allocation_id: allocation_id.to_owned(),
                reply: None,
            },
            timeout,
        )
        .await;
    reply_of_call(call, |s| s.reply)
}
