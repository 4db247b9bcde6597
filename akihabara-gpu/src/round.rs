//! One proof-of-work round over the network (feature `net`): the miner's
//! routes ([`serve_pow`]) and the validator's side ([`challenge_miner`]):
//! measure the round trip, send the seed, time the commitment by the
//! validator's own clock, pick rows the miner could not predict, open them,
//! verify.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use akihabara_core::axon::{AxonBuilder, Caller, HandlerError};
use akihabara_core::dendrite::{AxonTarget, Dendrite};
use akihabara_core::protocol::{Ping, clip_text};

use crate::synapse::{PowChallenge, PowOpen, PowService};
use crate::{Challenge, PowError, Timing, Verdict, Verifier, choose_rows};

/// Serves [`PowChallenge`] and [`PowOpen`] with `service`, off the async
/// runtime (the work blocks). Each validator opens its own commitment, and a
/// challenge's work is cancelled when its caller goes away (the handler is
/// dropped on a timeout or a closed connection).
pub fn serve_pow(builder: AxonBuilder, service: Arc<PowService>) -> AxonBuilder {
    serve_pow_admitting(builder, service, |_: &Caller| Ok(()))
}

/// [`serve_pow`], with `admit` asked before each [`PowChallenge`] starts:
/// its error is the answer, and no work is done (a miner refuses a
/// validator outside its slot this way). [`PowOpen`] is not asked: it
/// finishes a challenge already admitted.
pub fn serve_pow_admitting<A>(
    builder: AxonBuilder,
    service: Arc<PowService>,
    admit: A,
) -> AxonBuilder
where
    A: Fn(&Caller) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    let (s1, s2) = (service.clone(), service);
    builder
        .route(move |req: PowChallenge, caller| {
            let s = s1.clone();
            let admitted = admit(&caller);
            async move {
                admitted?;
                let cancel = Arc::new(AtomicBool::new(false));
                let _on_drop = CancelOnDrop(cancel.clone());
                tokio::task::spawn_blocking(move || s.challenge(&caller.hotkey, req, &cancel))
                    .await
                    .map_err(|e| HandlerError::internal(e.to_string()))?
                    .map_err(refusal)
            }
        })
        .route(move |req: PowOpen, caller| {
            let s = s2.clone();
            async move {
                tokio::task::spawn_blocking(move || s.open(&caller.hotkey, req))
                    .await
                    .map_err(|e| HandlerError::internal(e.to_string()))?
                    .map_err(refusal)
            }
        })
}

/// A refusal's status: 429 when the caller already has a challenge or an
/// opening running, 400 otherwise.
fn refusal(e: PowError) -> HandlerError {
    match e {
        PowError::Busy => HandlerError {
            status: 429,
            message: e.to_string(),
        },
        e => HandlerError::bad_request(e.to_string()),
    }
}

/// Sets the flag when dropped: the handler's future was dropped (its caller
/// timed out or went away) or finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Longest backend or device name kept from a miner's answer (longer ones
/// are cut).
pub const MAX_SELF_DESCRIPTION: usize = 128;

/// The most of a Ping round trip a round subtracts from a challenge's
/// time by default: more than a round trip between any two places on Earth
/// over TCP, so only a miner that delays its own Pings loses by it.
pub const DEFAULT_MAX_ROUND_TRIP: Duration = Duration::from_millis(500);

/// How a validator runs a round.
#[derive(Clone, Debug)]
pub struct RoundConfig {
    /// Rows opened (see [`crate::samples_for`]).
    pub samples: u32,
    /// Limit for each call.
    pub timeout: Duration,
    /// Checks the openings (and the time, if it has a limit).
    pub verifier: Verifier,
    /// The most of the measured Ping round trip subtracted from the
    /// challenge's time ([`DEFAULT_MAX_ROUND_TRIP`]): the miner answers the
    /// Ping, so this bounds what delaying it gains.
    pub max_round_trip: Duration,
}

impl RoundConfig {
    /// `samples` rows opened, `timeout` per call, the default verifier and
    /// [`DEFAULT_MAX_ROUND_TRIP`].
    pub fn new(samples: u32, timeout: Duration) -> RoundConfig {
        RoundConfig {
            samples,
            timeout,
            verifier: Verifier::new(),
            max_round_trip: DEFAULT_MAX_ROUND_TRIP,
        }
    }
}

/// A round that could not reach a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoundError {
    /// A call failed (unreachable, timed out, refused).
    #[error("{stage}: the miner answered {status}: {message}")]
    Call {
        /// `ping`, `challenge` or `open`.
        stage: &'static str,
        /// HTTP status (or the dendrite's mapped failure).
        status: u16,
        /// The status message the miner or dendrite gave.
        message: String,
    },
    /// The answer is malformed (no root, undecodable openings).
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// What a round found.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundOutcome {
    /// Valid with the measured speed, or the failure that rejected the proof.
    pub verdict: Verdict,
    /// The miner's prover backend, as it says (`cpu`, `cuda`).
    pub backend: String,
    /// The miner's device, as it says.
    pub device: String,
}

fn failed<S>(stage: &'static str, r: &akihabara_core::dendrite::CallResult<S>) -> RoundError {
    RoundError::Call {
        stage,
        status: r.status,
        message: r.message.clone(),
    }
}

/// Challenges the miner at `target` with `challenge`; `secret` (the
/// validator's, fresh per round) makes the opened rows unpredictable.
///
/// The work time is the challenge call's time less a Ping round trip timed
/// on the open connection, but the round trip subtracted is at most
/// [`RoundConfig::max_round_trip`] and at most half the call: the miner
/// answers the Ping, so a miner that delays it gains at most
/// `elapsed / (elapsed - max_round_trip)`, and never a factor over 2.
pub async fn challenge_miner(
    dendrite: &Dendrite,
    target: &AxonTarget,
    challenge: &Challenge,
    secret: &[u8; 32],
    config: &RoundConfig,
) -> Result<RoundOutcome, RoundError> {
    // The first call may open the connection; time a second one on it.
    let mut round_trip = Duration::ZERO;
    for _ in 0..2 {
        let t = Instant::now();
        let ping = dendrite
            .call(target, Ping::new("rtt", 0), config.timeout)
            .await;
        if !ping.is_success() {
            return Err(failed("ping", &ping));
        }
        round_trip = t.elapsed();
    }
    let t = Instant::now();
    let answer = dendrite
        .call(target, PowChallenge::new(challenge), config.timeout)
        .await;
    let elapsed = t.elapsed();
    if !answer.is_success() {
        return Err(failed("challenge", &answer));
    }
    let answer = answer
        .synapse
        .ok_or_else(|| RoundError::Malformed("no challenge answer".into()))?;
    let root = answer
        .root_hash()
        .map_err(|e| RoundError::Malformed(e.to_string()))?;
    let rows = choose_rows(challenge, &root, secret, config.samples);
    let opened = dendrite
        .call(target, PowOpen::new(challenge, &rows), config.timeout)
        .await;
    if !opened.is_success() {
        return Err(failed("open", &opened));
    }
    let openings = opened
        .synapse
        .ok_or_else(|| RoundError::Malformed("no openings".into()))?
        .decoded(challenge.n)
        .map_err(|e| RoundError::Malformed(e.to_string()))?;
    let (ch, verifier) = (*challenge, config.verifier.clone());
    // The miner controls how fast it answers Ping: subtract no more than a
    // real network's round trip, and at most half of the measured time.
    let timing = Timing {
        elapsed,
        round_trip: round_trip.min(config.max_round_trip).min(elapsed / 2),
    };
    let verdict =
        tokio::task::spawn_blocking(move || verifier.verify(&ch, &root, &rows, &openings, timing))
            .await
            .map_err(|e| RoundError::Malformed(format!("the verifier panicked: {e}")))?
            .map_err(|e| RoundError::Malformed(e.to_string()))?;
    // What the miner says of itself is kept in the validator's records:
    // a name, not a megabyte.
    let said = |s: Option<String>| clip_text(s.unwrap_or_default(), MAX_SELF_DESCRIPTION);
    Ok(RoundOutcome {
        verdict,
        backend: said(answer.backend),
        device: said(answer.device),
    })
}
