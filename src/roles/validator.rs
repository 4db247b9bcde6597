//! The validator role: rounds of proofs of work, epochs of weights.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akihabara_gpu::round::{RoundConfig, RoundError, challenge_miner};

/// Longest verdict text kept in a measurement.
const MAX_VERDICT: usize = 1024;
use akihabara_gpu::{Challenge, Seed, Verdict};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::chain::{
    ChainClient, ChainError, Hyperparameters, MechId, Receipt, Reveal, TimelockReceipt,
};
use crate::clock::Clock;
use crate::dendrite::{AxonTarget, Dendrite};
use crate::market::jobs::ReceiptStore;
use crate::market::server::unix_millis;
use crate::schedule::{ScheduleQuery, SlotRefusal};
use crate::score::{
    Ema, Measurements, MinerReport, Penalized, Penalties, PowReport, PowScorer, Scorer,
};
use crate::store::{self, Put, StateKeys, Store};
use crate::wallet::Keypair;
use crate::{Block, Metagraph, Netuid, Uid};

use super::probe::{ProbeReport, ProbeSettings, ProbeState, probe_miner};
use super::{Epoch, RoleError, blocking, score_epoch};

mod timelocked;
use timelocked::PendingTimelock;

/// Rounds kept between weight settings, at most (the oldest are dropped).
const MAX_MEASURED: usize = 10_000;

/// The longest [`PowSettings::round_deadline`] may be: a day.
pub const MAX_ROUND_DEADLINE: Duration = Duration::from_secs(86_400);

/// The longest a miner's [`SlotRefusal`] keeps it from being challenged.
const MAX_REFUSAL_BLOCKS: u64 = 720;

/// How rounds challenge miners.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PowSettings {
    /// Matrix side.
    pub n: u32,
    /// Products per challenge.
    pub count: u32,
    /// Rows opened per round.
    pub samples: u32,
    /// Limit on each call to a miner.
    pub timeout: Duration,
    /// Miners challenged at once.
    pub concurrency: usize,
    /// Compute time a challenge aims at, by the miner's last verified speed
    /// (see [`PowSettings::count_for`]); `None`: every challenge has `count`
    /// products.
    pub target_seconds: Option<f64>,
    /// The most products a scaled challenge asks for.
    pub max_count: u32,
    /// The longest a round takes: miners whose turn has not ended by then
    /// are skipped this round (not measured, no penalty), so miners that
    /// answer slowly cannot hold the round, and the weights after it, for
    /// hours. Miners are visited in a new random order each round, those
    /// the deadline left unmeasured before the others. One
    /// miner's turn (its Pings, challenge and opening) takes at most twice
    /// `timeout`, and is a failed round past that; with schedules
    /// respected, its `ScheduleQuery` (at most 10 s) comes first. At most
    /// [`MAX_ROUND_DEADLINE`].
    pub round_deadline: Duration,
}

impl Default for PowSettings {
    /// `validator.toml`'s defaults: n = 1024, 4 products, 16 rows, 60 s, 8 at
    /// once, rounds of at most 30 minutes.
    fn default() -> PowSettings {
        PowSettings {
            n: 1024,
            count: 4,
            samples: 16,
            timeout: Duration::from_secs(60),
            concurrency: 8,
            target_seconds: None,
            max_count: 64,
            round_deadline: Duration::from_secs(30 * 60),
        }
    }
}

impl PowSettings {
    /// Challenges of `count` products of `n × n` matrices, the other
    /// settings at their defaults.
    pub fn new(n: u32, count: u32) -> PowSettings {
        PowSettings {
            n,
            count,
            ..PowSettings::default()
        }
    }

    /// Rows opened per round.
    pub fn samples(mut self, samples: u32) -> PowSettings {
        self.samples = samples;
        self
    }

    /// Limit on each call to a miner.
    pub fn timeout(mut self, timeout: Duration) -> PowSettings {
        self.timeout = timeout;
        self
    }

    /// Miners challenged at once.
    pub fn concurrency(mut self, concurrency: usize) -> PowSettings {
        self.concurrency = concurrency;
        self
    }

    /// The longest a round takes ([`PowSettings::round_deadline`]).
    pub fn round_deadline(mut self, deadline: Duration) -> PowSettings {
        self.round_deadline = deadline;
        self
    }

    /// The longest one miner's turn takes: twice the limit on each call.
    pub fn turn_limit(&self) -> Duration {
        self.timeout.saturating_mul(2)
    }

    /// Scales challenges to the miner: each aims at `seconds` of compute at
    /// the miner's last verified speed, with at most `max_count` products.
    pub fn scaled(mut self, seconds: f64, max_count: u32) -> PowSettings {
        self.target_seconds = Some(seconds);
        self.max_count = max_count;
        self
    }

    /// Products in the next challenge of a miner whose last verified speed
    /// was `last` ops/s (`akihabara-gpu/SPEC.md`, section 7): without a
    /// target or a last speed, `count`; else the fewest products of
    /// `2 n^3` operations that take `target_seconds` at that speed, at
    /// least `count` and at most `max_count`.
    ///
    /// ```
    /// use akihabara::roles::PowSettings;
    /// let p = PowSettings::new(256, 2).scaled(0.5, 64);
    /// assert_eq!(p.count_for(None), 2);
    /// // 2 · 256³ = 33,554,432 ops a product; 1e9 ops/s · 0.5 s = 14.9 products.
    /// assert_eq!(p.count_for(Some(1e9)), 15);
    /// assert_eq!(p.count_for(Some(1e6)), 2);
    /// assert_eq!(p.count_for(Some(1e14)), 64);
    /// ```
    pub fn count_for(&self, last: Option<f64>) -> u32 {
        let (Some(t), Some(speed)) = (self.target_seconds, last) else {
            return self.count;
        };
        let per_product = 2.0 * f64::from(self.n).powi(3);
        let want = (speed * t / per_product).ceil();
        if !want.is_finite() {
            return self.count;
        }
        let top = self.max_count.max(self.count);
        (want.max(f64::from(self.count)).min(f64::from(top))) as u32
    }

    /// Checks every setting, naming the first bad one.
    pub fn check(&self) -> Result<(), RoleError> {
        let bad = |setting, reason: String| Err(RoleError::Setting { setting, reason });
        if let Err(e) = Challenge::new(Seed([0; 32]), self.n, self.count) {
            return bad("pow.n / pow.count", e.to_string());
        }
        if self.samples == 0 || self.samples > akihabara_gpu::MAX_SAMPLES {
            return bad(
                "pow.samples",
                format!(
                    "{}: must be 1 to {} (the rows one PowOpen may ask for)",
                    self.samples,
                    akihabara_gpu::MAX_SAMPLES
                ),
            );
        }
        // The largest challenge this validator sends must be one a miner with
        // the default limits takes, or every round fails.
        let limits = akihabara_gpu::synapse::PowLimits::default();
        let top = self.max_count.max(self.count);
        let largest = Challenge::new(
            Seed([0; 32]),
            self.n,
            if self.target_seconds.is_some() {
                top
            } else {
                self.count
            },
        );
        if let Ok(ch) = largest {
            let n = u128::from(ch.n);
            let work = n * n * n * u128::from(ch.count);
            if work > limits.max_work || ch.leaves() > limits.max_leaves {
                return bad(
                    if self.target_seconds.is_some() {
                        "pow.max_count"
                    } else {
                        "pow.count"
                    },
                    format!(
                        "a challenge of n = {} and count = {} is {work} multiply-adds and {} rows; \
                         miners take at most {} and {} (akihabara_gpu::synapse::PowLimits)",
                        ch.n,
                        ch.count,
                        ch.leaves(),
                        limits.max_work,
                        limits.max_leaves
                    ),
                );
            }
        }
        if self.concurrency == 0 {
            return bad("pow.concurrency", "must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("pow.timeout", "must be positive".into());
        }
        if self.round_deadline > MAX_ROUND_DEADLINE {
            return bad(
                "pow.round_deadline",
                format!(
                    "{} s: must be at most a day",
                    self.round_deadline.as_secs_f64()
                ),
            );
        }
        if self.round_deadline < self.turn_limit() {
            return bad(
                "pow.round_deadline",
                format!(
                    "{} s: must be at least twice pow.timeout ({} s), one miner's whole turn",
                    self.round_deadline.as_secs_f64(),
                    self.turn_limit().as_secs_f64()
                ),
            );
        }
        if let Some(t) = self.target_seconds {
            // A miner at its last speed finishes in a quarter of the limit.
            if !(t > 0.0 && t <= self.timeout.as_secs_f64() / 4.0) {
                return bad(
                    "pow.target_seconds",
                    format!("{t}: must be positive and at most a quarter of pow.timeout"),
                );
            }
            if let Err(e) = Challenge::new(Seed([0; 32]), self.n, self.max_count.max(self.count)) {
                return bad("pow.max_count", e.to_string());
            }
        }
        Ok(())
    }
}

/// Where challenge seeds and row secrets come from.
enum Seeds {
    /// The operating system (what a live validator must use: a miner that
    /// could predict the seed could precompute).
    Os,
    /// A seeded ChaCha20 stream, for simulations that replay.
    Seeded(Box<ChaCha20Rng>),
}

impl Seeds {
    fn next(&mut self) -> Result<[u8; 32], akihabara_gpu::PowError> {
        match self {
            Seeds::Os => Ok(Seed::random()?.0),
            Seeds::Seeded(rng) => {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                Ok(s)
            }
        }
    }
}

/// One round against one miner, as the validator keeps it (and stores it,
/// as JSON, between weight settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Measured {
    /// Uid of the miner measured.
    pub uid: u16,
    /// Its hotkey, SS58 (a round against a uid whose hotkey changed is dropped).
    pub hotkey: String,
    /// The block the round ran at.
    pub block: u64,
    /// The prover backend the miner names (informational; never scored).
    pub class: String,
    /// Whether the proof verified in time.
    pub passed: bool,
    /// Verified ops/s by the validator's clock (0 when failed).
    pub ops_per_second: f64,
    /// `valid`, `rejected: …` or `no verdict: …`.
    pub verdict: String,
    /// Wall time of the round, seconds.
    #[serde(default)]
    pub seconds: f64,
    /// Products in the challenge (scaled to the miner, see [`PowSettings::count_for`]).
    #[serde(default)]
    pub count: u32,
}

/// Challenges one miner at a time; cheap to clone and `Send`, so rounds run
/// concurrently (one task per miner).
#[derive(Clone)]
pub struct Challenger {
    inner: Arc<ChallengerInner>,
}

struct ChallengerInner {
    dendrite: Dendrite,
    round: RoundConfig,
    pow: PowSettings,
    seeds: Mutex<Seeds>,
    /// Each miner's last verified speed, which sizes its next challenge.
    speeds: Mutex<BTreeMap<Uid, f64>>,
    /// Miners that refused us outside our slot: not challenged again
    /// before this block (their next slot's start).
    refused: Mutex<BTreeMap<Uid, Block>>,
}

impl std::fmt::Debug for Challenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenger")
            .field("dendrite", &self.inner.dendrite)
            .field("pow", &self.inner.pow)
            .finish()
    }
}

impl Challenger {
    fn new(keypair: Keypair, pow: PowSettings, seeds: Seeds) -> Result<Challenger, RoleError> {
        Ok(Challenger {
            inner: Arc::new(ChallengerInner {
                dendrite: Dendrite::new(keypair)?,
                round: RoundConfig::new(pow.samples, pow.timeout),
                pow,
                seeds: Mutex::new(seeds),
                speeds: Mutex::new(BTreeMap::new()),
                refused: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// The last verified speed of `uid`, if its last round passed.
    pub fn last_speed(&self, uid: Uid) -> Option<f64> {
        self.inner
            .speeds
            .lock()
            .ok()
            .and_then(|s| s.get(&uid).copied())
    }

    /// Remembers a round's outcome: a pass sizes the next challenge; a
    /// failure sends the miner back to the base size.
    fn remember(&self, uid: Uid, passed: bool, ops_per_second: f64) {
        if let Ok(mut s) = self.inner.speeds.lock() {
            if passed && ops_per_second > 0.0 {
                s.insert(uid, ops_per_second);
            } else {
                s.remove(&uid);
            }
        }
    }

    /// The dendrite the rounds are signed with.
    pub fn dendrite(&self) -> &Dendrite {
        &self.inner.dendrite
    }

    fn seed(&self) -> Result<[u8; 32], akihabara_gpu::PowError> {
        match self.inner.seeds.lock() {
            Ok(mut s) => s.next(),
            // A task panicked holding the lock: fall back to the OS.
            Err(_) => Seed::random().map(|s| s.0),
        }
    }

    /// One proof-of-work round against the miner `uid` at `target`, at
    /// `block`: a fresh seed, the commitment timed by this validator's
    /// clock, rows the miner could not predict, verified. A miner that
    /// fails, cheats or cannot be reached gets a failed record with the
    /// reason; this never errors.
    pub async fn challenge(&self, block: Block, uid: Uid, target: &AxonTarget) -> Measured {
        // A refusal outside our slot is not a measurement: the miner's
        // speed is kept, and the record says why it failed.
        self.attempt(block, uid, target)
            .await
            .unwrap_or_else(|(_, failed)| failed)
    }

    /// The block before which `uid` is not challenged again, after it
    /// refused this validator outside its slot ([`SlotRefusal`]).
    pub fn refused_until(&self, uid: Uid) -> Option<Block> {
        self.inner
            .refused
            .lock()
            .ok()
            .and_then(|r| r.get(&uid).copied())
    }

    /// One miner's turn in a round: skipped (`Err` with the reason) while
    /// an earlier [`SlotRefusal`] holds (until the slot it named starts),
    /// when `respect_schedule` and its `ScheduleQuery` answer gives the
    /// block to another validator ([`Challenger::not_our_slot`]), or when it
    /// refuses the challenge as outside our slot, which is remembered; a
    /// skip is not a measurement and costs the miner nothing. Otherwise the
    /// round's record ([`Challenger::challenge`]).
    pub async fn visit(
        &self,
        me: Uid,
        block: Block,
        uid: Uid,
        target: &AxonTarget,
        respect_schedule: bool,
    ) -> Result<Measured, (Uid, String)> {
        if let Ok(mut r) = self.inner.refused.lock()
            && let Some(&until) = r.get(&uid)
        {
            if block < until {
                return Err((
                    uid,
                    format!("refused outside our slot; not before block {}", until.0),
                ));
            }
            r.remove(&uid);
        }
        if respect_schedule && let Some(why) = self.not_our_slot(me, block, target).await {
            return Err((uid, why));
        }
        match self.attempt(block, uid, target).await {
            Ok(m) => Ok(m),
            Err((refusal, _)) => {
                // The miner names the block; it cannot hold us off for
                // longer than a default window (two tempos of 360).
                let until = Block(refusal.not_before().0.min(block.0 + MAX_REFUSAL_BLOCKS));
                if let Ok(mut r) = self.inner.refused.lock() {
                    r.insert(uid, until);
                }
                Err((
                    uid,
                    format!("refused outside our slot; not before block {}", until.0),
                ))
            }
        }
    }

    /// A round, or the miner's [`SlotRefusal`] (with the failed record
    /// [`Challenger::challenge`] returns for it).
    async fn attempt(
        &self,
        block: Block,
        uid: Uid,
        target: &AxonTarget,
    ) -> Result<Measured, (SlotRefusal, Measured)> {
        let t = Instant::now();
        let count = self.inner.pow.count_for(self.last_speed(uid));
        let mut refusal = None;
        let outcome = async {
            let (seed, secret) = (
                self.seed().map_err(|e| e.to_string())?,
                self.seed().map_err(|e| e.to_string())?,
            );
            let ch =
                Challenge::new(Seed(seed), self.inner.pow.n, count).map_err(|e| e.to_string())?;
            let turn = self.inner.pow.turn_limit();
            tokio::time::timeout(
                turn,
                challenge_miner(
                    &self.inner.dendrite,
                    target,
                    &ch,
                    &secret,
                    &self.inner.round,
                ),
            )
            .await
            .map_err(|_| {
                format!(
                    "the miner's turn took over {} s (twice pow.timeout)",
                    turn.as_secs_f64()
                )
            })?
            .map_err(|e| {
                if let RoundError::Call {
                    stage: "challenge",
                    status,
                    message,
                } = &e
                {
                    refusal = SlotRefusal::parse(*status, message);
                }
                e.to_string()
            })
        }
        .await;
        let (class, passed, ops_per_second, verdict) = match outcome {
            Ok(o) => match o.verdict {
                Verdict::Valid { ops_per_second, .. } => {
                    (o.backend, true, ops_per_second, "valid".to_owned())
                }
                Verdict::Rejected(f) => (o.backend, false, 0.0, format!("rejected: {f}")),
            },
            Err(e) => (String::new(), false, 0.0, format!("no verdict: {e}")),
        };
        // Kept in every measurement: whatever part of it a miner wrote is
        // bounded already; this bounds the whole.
        let verdict = crate::protocol::clip_text(verdict, MAX_VERDICT);
        let measured = Measured {
            uid: uid.0,
            hotkey: target.hotkey.to_ss58(),
            block: block.0,
            class,
            passed,
            ops_per_second,
            verdict,
            seconds: t.elapsed().as_secs_f64(),
            count,
        };
        if let Some(r) = refusal {
            return Err((r, measured));
        }
        self.remember(uid, passed, ops_per_second);
        Ok(measured)
    }

    /// `Some(reason)` when the miner's `ScheduleQuery` answer says it
    /// serves another validator at `block`; `None` when it serves `me` or
    /// does not answer (then it is challenged anyway).
    pub async fn not_our_slot(&self, me: Uid, block: Block, target: &AxonTarget) -> Option<String> {
        let q = self
            .inner
            .dendrite
            .call(target, ScheduleQuery::default(), Duration::from_secs(10))
            .await;
        let answer = q.synapse.filter(|_| q.status == 200)?;
        let at = answer.block.map_or(block, Block);
        (!answer.serves(me, at))
            .then(|| format!("not our slot (serving uid {:?})", answer.serving_uid))
    }
}

/// The last weights that landed, and a commitment waiting to be revealed
/// (by this validator: a hash; or by the chain: a timelocked commit).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct WeightsState {
    block: Option<u64>,
    uids: Vec<u16>,
    weights: Vec<u16>,
    pending_reveal: Option<Reveal>,
    #[serde(default)]
    pending_timelock: Option<PendingTimelock>,
}

/// What one [`Validator::round`] did.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RoundReport {
    /// The block it ran at.
    pub block: Block,
    /// One record per miner challenged, in uid order.
    pub challenged: Vec<Measured>,
    /// Miners left alone, with the reason (another validator's slot, or
    /// the round's deadline).
    pub skipped: Vec<(Uid, String)>,
}

/// What [`Validator::weights`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum WeightsReport {
    /// Weights were set (`how` = `set`), committed as a hash (`commit`) or
    /// committed timelocked (`timelocked`).
    Landed {
        /// `set`, `commit` or `timelocked`.
        how: &'static str,
        /// Block and extrinsic the weights landed in.
        receipt: Receipt,
        /// What was scored.
        epoch: Epoch,
        /// For a timelocked commit: its drand round and reveal window.
        timelock: Option<TimelockReceipt>,
    },
    /// The chain revealed a timelocked commit: it holds these weights now.
    RevealedByChain {
        /// The block the chain was seen holding them at (after the window).
        block: Block,
        /// The drand round that opened them.
        reveal_round: u64,
        /// The uids revealed.
        uids: Vec<Uid>,
        /// u16 weights, in the order of `uids`.
        weights: Vec<u16>,
    },
    /// The chain had the drand pulse of a timelocked commit and did not
    /// apply it: the runtime refused the weights (no validator permit,
    /// weight limits, a raised version key). They are dropped; the next
    /// epoch's weights go as usual.
    RevealRefused {
        /// The round of the refused commit.
        reveal_round: u64,
    },
    /// A timelocked commit is pending: nothing more is sent until its
    /// window has passed.
    Pending {
        /// Its round.
        reveal_round: u64,
        /// The last block the chain can reveal it in.
        reveal_until: Block,
    },
    /// A timelocked commit's reveal window passed without its drand pulse
    /// (or the subnet's settings changed): fresh scores were sent, or with
    /// no rounds since, the same weights again (`again`).
    TimelockExpired {
        /// The round the lost commit waited for.
        reveal_round: u64,
        /// What became of the weights.
        again: Box<WeightsReport>,
    },
    /// A pending commitment was revealed.
    Revealed {
        /// Block and extrinsic the reveal landed in.
        receipt: Receipt,
        /// The uids revealed.
        uids: Vec<Uid>,
        /// u16 weights, in the order of `uids`.
        weights: Vec<u16>,
    },
    /// The commitment cannot be revealed yet (the chain said why).
    RevealLater(ChainError),
    /// The chain holds no such commitment (expired, or a simulated chain
    /// that restarted): it was dropped.
    DroppedCommitment(ChainError),
    /// Every score was 0: nothing sent; the epoch is closed.
    AllZero {
        /// What was scored.
        epoch: Epoch,
    },
    /// The chain's rate limit: kept for a later block.
    RateLimited {
        /// The earliest block the chain allows.
        next: Block,
    },
}

/// What one [`Validator::step`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Step {
    /// The round, if one was due.
    pub round: Option<RoundReport>,
    /// The weights, if anything happened to them.
    pub weights: Option<WeightsReport>,
    /// A probe that finished since the last step (probes start once per
    /// tempo, with probes configured, and run beside the rounds).
    pub probe: Option<ProbeReport>,
}

/// Builds a [`Validator`].
pub struct ValidatorBuilder {
    keypair: Keypair,
    netuid: Netuid,
    chain: Option<Arc<dyn ChainClient>>,
    scorer: Box<dyn Scorer>,
    store: Option<Arc<dyn Store>>,
    uid: Option<Uid>,
    pow: PowSettings,
    ema_alpha: f64,
    round_blocks: u64,
    respect_schedules: bool,
    version_key: u64,
    seeds: Seeds,
    probe: Option<ProbeSettings>,
    penalty_decay: f64,
    mechid: Option<MechId>,
    unix_clock: Arc<dyn Clock>,
}

impl ValidatorBuilder {
    /// The mechanism (sub-subnet) weights are committed for, on runtimes
    /// with mechanisms (default: the subnet itself).
    pub fn mechid(mut self, mechid: MechId) -> ValidatorBuilder {
        self.mechid = Some(mechid);
        self
    }

    /// The clock timelocked commits compute their drand round from: time
    /// since the Unix epoch (default: the system's wall clock, through
    /// [`WallClock`](crate::clock::WallClock)).
    pub fn unix_clock(mut self, clock: Arc<dyn Clock>) -> ValidatorBuilder {
        self.unix_clock = clock;
        self
    }

    /// The chain it reads and sets weights on (required).
    pub fn chain(mut self, chain: Arc<dyn ChainClient>) -> ValidatorBuilder {
        self.chain = Some(chain);
        self
    }

    /// The scorer of each epoch's measurements (default: [`PowScorer`]).
    pub fn scorer(mut self, scorer: Box<dyn Scorer>) -> ValidatorBuilder {
        self.scorer = scorer;
        self
    }

    /// Keeps the EMA, the rounds and the last weights here, and resumes from
    /// them (default: in memory only).
    pub fn store(mut self, store: Arc<dyn Store>) -> ValidatorBuilder {
        self.store = Some(store);
        self
    }

    /// This validator's uid (default: looked up on the chain by hotkey).
    pub fn uid(mut self, uid: Uid) -> ValidatorBuilder {
        self.uid = Some(uid);
        self
    }

    /// How rounds challenge miners.
    pub fn pow(mut self, pow: PowSettings) -> ValidatorBuilder {
        self.pow = pow;
        self
    }

    /// Weight of the newest epoch in the moving average, in `(0, 1]` (default 0.3).
    pub fn ema_alpha(mut self, alpha: f64) -> ValidatorBuilder {
        self.ema_alpha = alpha;
        self
    }

    /// Blocks between rounds in [`Validator::step`] (default 10).
    pub fn round_blocks(mut self, blocks: u64) -> ValidatorBuilder {
        self.round_blocks = blocks;
        self
    }

    /// Whether a round skips miners whose schedule says they serve another
    /// validator now (default true).
    pub fn respect_schedules(mut self, respect: bool) -> ValidatorBuilder {
        self.respect_schedules = respect;
        self
    }

    /// The version key sent with weights (default 0).
    pub fn version_key(mut self, version_key: u64) -> ValidatorBuilder {
        self.version_key = version_key;
        self
    }

    /// Also probes every miner once per tempo: `SpecsQuery`, benchmark
    /// jobs, an allocation login ([`ProbeSettings`]). What it finds feeds
    /// the measurements (GPUs, worked seconds, declines) and the penalties.
    pub fn probe(mut self, probe: ProbeSettings) -> ValidatorBuilder {
        self.probe = Some(probe);
        self
    }

    /// How much of a penalty is left after each epoch, in `[0, 1)`
    /// (default 0.5). A penalty (a failed proof, a failed probe) multiplies
    /// a miner's score by `1 − penalty`, whatever the scorer.
    pub fn penalty_decay(mut self, decay: f64) -> ValidatorBuilder {
        self.penalty_decay = decay;
        self
    }

    /// Draws challenge seeds from a ChaCha20 stream seeded with `seed`, so a
    /// simulation replays (default: the operating system's randomness,
    /// which a validator facing real miners must keep).
    pub fn seeded(mut self, seed: u64) -> ValidatorBuilder {
        self.seeds = Seeds::Seeded(Box::new(ChaCha20Rng::seed_from_u64(seed)));
        self
    }

    /// Checks the settings, finds the uid, and loads the stored state.
    pub async fn build(self) -> Result<Validator, RoleError> {
        let chain = self.chain.ok_or(RoleError::Setting {
            setting: "chain",
            reason: "a validator needs a chain: call .chain(…)".into(),
        })?;
        self.pow.check()?;
        if self.round_blocks == 0 {
            return Err(RoleError::Setting {
                setting: "validator.round_blocks",
                reason: "must be at least 1".into(),
            });
        }
        let fresh = Ema::new(self.ema_alpha).map_err(|e| RoleError::Setting {
            setting: "scoring.ema_alpha",
            reason: e.to_string(),
        })?;
        let hotkey = self.keypair.account();
        let uid = match self.uid {
            Some(u) => u,
            None => chain.uid_of(self.netuid, &hotkey).await?.ok_or_else(|| {
                RoleError::NotRegistered {
                    hotkey: hotkey.to_ss58(),
                    netuid: self.netuid.0,
                }
            })?,
        };
        if let Some(p) = &self.probe {
            p.check()?;
        }
        let fresh_probes = ProbeState::new(self.penalty_decay)?;
        let keys = StateKeys::new(self.netuid, &hotkey);
        type Loaded = (Ema, Vec<Measured>, WeightsState, ProbeState);
        let (ema, measured, weights, probes): Loaded = match &self.store {
            None => (fresh, Vec::new(), WeightsState::default(), fresh_probes),
            Some(s) => {
                let (s, k) = (s.clone(), keys.clone());
                blocking(move || {
                    Ok((
                        store::get_json(&*s, &k.scores())?.unwrap_or(fresh),
                        store::get_json(&*s, &k.measurements())?.unwrap_or_default(),
                        store::get_json(&*s, &k.weights())?.unwrap_or_default(),
                        store::get_json(&*s, &k.probes())?.unwrap_or(fresh_probes),
                    ))
                })
                .await?
            }
        };
        // The configured decay holds, whatever the stored penalties had.
        let mut probes = probes;
        probes
            .penalties
            .set_decay(self.penalty_decay)
            .map_err(|e| RoleError::Setting {
                setting: "scoring.penalty_decay",
                reason: e.to_string(),
            })?;
        let challenger = Challenger::new(self.keypair.clone(), self.pow, self.seeds)?;
        // A restart sizes challenges from the stored rounds.
        for m in &measured {
            challenger.remember(Uid(m.uid), m.passed, m.ops_per_second);
        }
        Ok(Validator {
            challenger,
            keypair: self.keypair,
            netuid: self.netuid,
            uid,
            chain,
            scorer: self.scorer,
            store: self.store.map(|s| (s, keys)),
            round_blocks: self.round_blocks,
            respect_schedules: self.respect_schedules,
            version_key: self.version_key,
            ema,
            measured,
            weights,
            next_round: 0,
            rounds: 0,
            last_turn: HashMap::new(),
            receipts: self
                .probe
                .as_ref()
                .map(|p| Arc::new(ReceiptStore::new(&p.receipts))),
            probe: self.probe.map(Arc::new),
            probes,
            next_probe: 0,
            probing: None,
            mechid: self.mechid,
            unix_clock: self.unix_clock,
        })
    }
}

/// A validator: challenges miners in rounds, scores them each epoch with any
/// [`Scorer`], and sets weights on any [`ChainClient`].
///
/// [`Validator::step`] is the whole loop body (a daemon calls it every few
/// seconds with the chain's block); [`Validator::round`],
/// [`Validator::record`] and [`Validator::weights`] are its parts, for
/// programs that drive the rounds themselves (`akihabara demo` challenges
/// each miner in that miner's slot with [`Validator::challenger`]).
pub struct Validator {
    keypair: Keypair,
    pub(super) netuid: Netuid,
    pub(super) uid: Uid,
    pub(super) chain: Arc<dyn ChainClient>,
    scorer: Box<dyn Scorer>,
    store: Option<(Arc<dyn Store>, StateKeys)>,
    challenger: Challenger,
    round_blocks: u64,
    respect_schedules: bool,
    version_key: u64,
    ema: Ema,
    measured: Vec<Measured>,
    weights: WeightsState,
    next_round: u64,
    /// Rounds run by this value (memory only).
    rounds: u64,
    /// The round each miner's turn last ended in (measured, failed or
    /// skipped for a reason of its own, not for the round's deadline):
    /// miners whose turns ended longest ago go first (memory only; after a
    /// restart the order is random).
    last_turn: HashMap<Uid, u64>,
    probe: Option<Arc<ProbeSettings>>,
    receipts: Option<Arc<ReceiptStore>>,
    pub(super) probes: ProbeState,
    next_probe: u64,
    /// A probe running beside the rounds, and the block it started at.
    probing: Option<(Block, tokio::task::JoinHandle<Vec<super::probe::Probe>>)>,
    mechid: Option<MechId>,
    unix_clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("uid", &self.uid)
            .field("netuid", &self.netuid)
            .field("scorer", &self.scorer.name())
            .field("measured", &self.measured.len())
            .finish()
    }
}

impl Validator {
    /// A validator signing with `keypair` on subnet `netuid`.
    pub fn builder(keypair: Keypair, netuid: Netuid) -> ValidatorBuilder {
        ValidatorBuilder {
            keypair,
            netuid,
            chain: None,
            scorer: Box::new(PowScorer::new()),
            store: None,
            uid: None,
            pow: PowSettings::default(),
            ema_alpha: 0.3,
            round_blocks: 10,
            respect_schedules: true,
            version_key: 0,
            seeds: Seeds::Os,
            probe: None,
            penalty_decay: 0.5,
            mechid: None,
            unix_clock: Arc::new(crate::clock::WallClock::since(std::time::UNIX_EPOCH)),
        }
    }

    /// This validator's uid.
    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// The subnet.
    pub fn netuid(&self) -> Netuid {
        self.netuid
    }

    /// Rounds measured since the last weights.
    pub fn measured(&self) -> &[Measured] {
        &self.measured
    }

    /// The block the last weights landed at, if any.
    pub fn last_weights_block(&self) -> Option<Block> {
        self.weights.block.map(Block)
    }

    /// Whether stored state was found (rounds or weights).
    pub fn resumed(&self) -> bool {
        self.weights.block.is_some() || !self.measured.is_empty()
    }

    /// A handle that challenges one miner at a time.
    pub fn challenger(&self) -> Challenger {
        self.challenger.clone()
    }

    /// The loop body: a round when one is due (every `round_blocks`), then
    /// the weights ([`Validator::weights`]).
    pub async fn step(&mut self, block: Block, h: &Hyperparameters) -> Result<Step, RoleError> {
        let mut step = Step::default();
        if block.0 >= self.next_round {
            step.round = Some(self.round(block).await?);
            self.next_round = block.0 + self.round_blocks;
        }
        // A probe runs beside the rounds (its jobs and logins can take
        // minutes); its results count once it has finished.
        if self
            .probing
            .as_ref()
            .is_some_and(|(_, task)| task.is_finished())
            && let Some((started, task)) = self.probing.take()
        {
            let miners = task.await.map_err(|source| RoleError::Task {
                what: "the probe task",
                source,
            })?;
            step.probe = Some(self.apply_probe(started, miners).await?);
        }
        if self.probe.is_some() && self.probing.is_none() && block.0 >= self.next_probe {
            let task = self.start_probe().await?;
            self.probing = Some((block, task));
            self.next_probe = block.0 + h.tempo.max(1);
        }
        step.weights = self.weights(block, h).await?;
        Ok(step)
    }

    /// Challenges every miner in the metagraph that serves an axon (and,
    /// with `respect_schedules`, serves this validator now), a few at a
    /// time, records the rounds and saves them.
    pub async fn round(&mut self, block: Block) -> Result<RoundReport, RoleError> {
        let mg = self.chain.metagraph(self.netuid).await?;
        self.follow(&mg);
        // Miners whose turns ended longest ago (or never) first, in a new
        // random order among equals each round: when the deadline leaves
        // miners out, they go first the next round, so miners that stall
        // their turns cannot keep others unmeasured round after round.
        let mut order = ChaCha20Rng::from_seed(self.challenger.seed()?);
        self.rounds += 1;
        let targets = axon_targets(&mg, self.uid);
        let present: HashSet<Uid> = targets.iter().map(|t| t.0).collect();
        self.last_turn.retain(|uid, _| present.contains(uid));
        let mut keyed: Vec<((u64, u64), (Uid, AxonTarget))> = targets
            .into_iter()
            .map(|t| {
                let last = self.last_turn.get(&t.0).copied().unwrap_or(0);
                ((last, order.next_u64()), t)
            })
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let pow = &self.challenger.inner.pow;
        let deadline = tokio::time::Instant::now() + pow.round_deadline;
        let late = format!(
            "not measured: the round's deadline ({} s, pow.round_deadline) passed before this \
             miner's turn ended",
            pow.round_deadline.as_secs_f64()
        );
        // `concurrency` workers take the miners in this order (spawned
        // tasks waiting on a semaphore would start in the scheduler's order,
        // not this one); a turn the deadline cuts short ends its worker, and
        // the miners still queued then are left out too.
        let queue = Arc::new(Mutex::new(
            keyed
                .into_iter()
                .map(|(_, t)| t)
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..pow.concurrency.max(1) {
            let (c, me, respect, queue) = (
                self.challenger.clone(),
                self.uid,
                self.respect_schedules,
                queue.clone(),
            );
            tasks.spawn(async move {
                // `Err(Err(uid))`: the deadline passed during its turn.
                let mut turns = Vec::new();
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some((uid, target)) = next else { break };
                    let turn = c.visit(me, block, uid, &target, respect);
                    match tokio::time::timeout_at(deadline, turn).await {
                        Ok(Ok(m)) => turns.push(Ok(m)),
                        Ok(Err(skip)) => turns.push(Err(Ok(skip))),
                        Err(_) => {
                            turns.push(Err(Err(uid)));
                            break;
                        }
                    }
                }
                turns
            });
        }
        let mut report = RoundReport {
            block,
            ..RoundReport::default()
        };
        for r in tasks.join_all().await.into_iter().flatten() {
            match r {
                Ok(m) => {
                    self.last_turn.insert(Uid(m.uid), self.rounds);
                    report.challenged.push(m);
                }
                Err(Ok(skip)) => {
                    self.last_turn.insert(skip.0, self.rounds);
                    report.skipped.push(skip);
                }
                Err(Err(uid)) => report.skipped.push((uid, late.clone())),
            }
        }
        let left = std::mem::take(&mut *queue.lock().unwrap_or_else(|p| p.into_inner()));
        report
            .skipped
            .extend(left.into_iter().map(|(uid, _)| (uid, late.clone())));
        report.challenged.sort_by_key(|m| m.uid);
        report.skipped.sort_by_key(|s| s.0);
        self.record(report.challenged.iter().cloned());
        self.save().await?;
        Ok(report)
    }

    /// Probes every miner that serves an axon, a few at a time
    /// ([`ProbeSettings`]): `SpecsQuery`, the benchmark jobs, the allocation
    /// login. Results feed the next weights; failures the protocol blames
    /// on a miner set its penalty. Without probe settings, probes nobody.
    pub async fn probe(&mut self, block: Block) -> Result<ProbeReport, RoleError> {
        let miners = self
            .start_probe()
            .await?
            .await
            .map_err(|source| RoleError::Task {
                what: "the probe task",
                source,
            })?;
        self.apply_probe(block, miners).await
    }

    /// Starts probing every miner that serves an axon, a few at a time, in
    /// a task of its own; nothing when no probe is configured.
    async fn start_probe(
        &mut self,
    ) -> Result<tokio::task::JoinHandle<Vec<super::probe::Probe>>, RoleError> {
        let (Some(settings), Some(receipts)) = (self.probe.clone(), self.receipts.clone()) else {
            return Ok(tokio::spawn(async { Vec::new() }));
        };
        let mg = self.chain.metagraph(self.netuid).await?;
        self.follow(&mg);
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.challenger.inner.pow.concurrency,
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for (uid, target) in axon_targets(&mg, self.uid) {
            let tag = hex::encode(&self.challenger.seed()?[..8]);
            let (settings, receipts, limit) = (settings.clone(), receipts.clone(), limit.clone());
            let (dendrite, keypair) = (self.challenger.dendrite().clone(), self.keypair.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                probe_miner(
                    &settings, &dendrite, &keypair, &receipts, uid, &target, &tag,
                )
                .await
            });
        }
        Ok(tokio::spawn(async move {
            let mut miners = tasks.join_all().await;
            miners.sort_by_key(|p| p.uid);
            miners
        }))
    }

    /// Folds a finished probe into the state and saves it.
    async fn apply_probe(
        &mut self,
        block: Block,
        miners: Vec<super::probe::Probe>,
    ) -> Result<ProbeReport, RoleError> {
        for p in &miners {
            self.probes.apply(self.uid, p);
        }
        self.save().await?;
        Ok(ProbeReport { block, miners })
    }

    /// Adds rounds measured elsewhere (by [`Validator::challenger`]); they
    /// count toward the next weights. Saved by the next round or weights.
    pub fn record(&mut self, rounds: impl IntoIterator<Item = Measured>) {
        self.measured.extend(rounds);
        let over = self.measured.len().saturating_sub(MAX_MEASURED);
        self.measured.drain(..over);
    }

    /// One report per miner from the rounds since the last weights: passed
    /// only if every round passed, at the median verified speed
    /// ([`PowReport::from_rounds`]). Rounds against a uid whose hotkey has
    /// changed since are dropped.
    pub fn measurements(&self, mg: &Metagraph) -> Measurements {
        let hotkeys: BTreeMap<u16, String> = mg
            .neurons()
            .iter()
            .map(|n| (n.uid.0, n.hotkey.to_ss58()))
            .collect();
        let mut by_uid: BTreeMap<u16, Vec<&Measured>> = BTreeMap::new();
        for m in &self.measured {
            if hotkeys.get(&m.uid) == Some(&m.hotkey) {
                by_uid.entry(m.uid).or_default().push(m);
            }
        }
        let mut reports: BTreeMap<u16, MinerReport> = by_uid
            .into_iter()
            .map(|(uid, rounds)| {
                let report = MinerReport {
                    uid: Uid(uid),
                    pow: Some(PowReport::from_rounds(
                        rounds.last().map_or("", |r| r.class.as_str()),
                        rounds.iter().map(|r| r.passed.then_some(r.ops_per_second)),
                    )),
                    ..MinerReport::default()
                };
                (uid, report)
            })
            .collect();
        self.probes
            .fill(&mut reports, &hotkeys, unix_millis() / 1000);
        Measurements {
            miners: reports.into_values().collect(),
        }
    }

    /// What the rounds since the last weights would score now, with the
    /// moving average, without changing any state.
    pub fn preview(&self, mg: &Metagraph) -> Result<Epoch, RoleError> {
        let (mut ema, penalties) = self.followed(mg);
        let scorer = Penalized::new(&*self.scorer, &penalties);
        score_epoch(&scorer, &self.measurements(mg), Some(&mut ema))
    }

    /// The moving average and the penalties, with every uid whose hotkey
    /// changed since they were kept (or that left the subnet) forgotten: a
    /// new registrant at a uid inherits neither its predecessor's score
    /// nor its penalty.
    pub(crate) fn followed(&self, mg: &Metagraph) -> (Ema, Penalties) {
        let (mut ema, mut penalties) = (self.ema.clone(), self.probes.penalties.clone());
        follow(mg, &mut ema, &mut penalties);
        (ema, penalties)
    }

    /// [`Validator::followed`], kept: done whenever the metagraph is read
    /// for a round, a probe or weights, so a penalty set after it belongs to
    /// the uid's holder then, and the next follow keeps it.
    pub(crate) fn follow(&mut self, mg: &Metagraph) {
        follow(mg, &mut self.ema, &mut self.probes.penalties);
    }

    /// Reveals a pending commitment; otherwise, once per tempo (and within
    /// the rate limit) when rounds were measured, scores them and sets (or,
    /// where the subnet wants it, commits) weights. `None`: nothing to do.
    pub async fn weights(
        &mut self,
        block: Block,
        h: &Hyperparameters,
    ) -> Result<Option<WeightsReport>, RoleError> {
        if let Some(p) = self.weights.pending_timelock.clone() {
            // The chain reveals it; until its window has passed there is
            // nothing to do, and no second commit.
            if block.0 <= p.reveal_until {
                return Ok(None);
            }
            return self.settle_timelock(block, h, p).await;
        }
        if let Some(reveal) = self.weights.pending_reveal.clone() {
            let r = self
                .chain
                .reveal_weights(self.netuid, &self.keypair, &reveal)
                .await;
            return Ok(Some(match r {
                Ok(receipt) => {
                    self.weights.pending_reveal = None;
                    self.save().await?;
                    WeightsReport::Revealed {
                        receipt,
                        uids: reveal.uids,
                        weights: reveal.weights,
                    }
                }
                Err(e @ ChainError::NoCommitment(_)) => {
                    self.weights.pending_reveal = None;
                    self.save().await?;
                    WeightsReport::DroppedCommitment(e)
                }
                Err(e) => WeightsReport::RevealLater(e),
            }));
        }
        let due = weights_due(self.weights.block, block, h);
        if !due || self.measured.is_empty() {
            return Ok(None);
        }
        self.weights_now(block, h).await.map(Some)
    }

    /// Scores the rounds since the last weights and sets (or commits)
    /// weights now, whatever the tempo; the chain's rate limit still applies.
    /// While a timelocked commit waits for its reveal, it answers
    /// [`WeightsReport::Pending`] and sends nothing.
    pub async fn weights_now(
        &mut self,
        block: Block,
        h: &Hyperparameters,
    ) -> Result<WeightsReport, RoleError> {
        if let Some(p) = &self.weights.pending_timelock {
            return Ok(WeightsReport::Pending {
                reveal_round: p.reveal_round,
                reveal_until: Block(p.reveal_until),
            });
        }
        if !h.commit_reveal_enabled {
            self.check_mechid("set_weights")?;
        }
        let mg = self.chain.metagraph(self.netuid).await?;
        self.follow(&mg);
        let mut ema = self.ema.clone();
        let m = self.measurements(&mg);
        let scorer = Penalized::new(&*self.scorer, &self.probes.penalties);
        let epoch = score_epoch(&scorer, &m, Some(&mut ema))?;
        if epoch.weights.is_empty() {
            self.ema = ema;
            self.probes.settle(&m, unix_millis() / 1000);
            self.measured.clear();
            self.weights.block = Some(block.0);
            self.save().await?;
            return Ok(WeightsReport::AllZero { epoch });
        }
        let w = &epoch.weights;
        let mut timelock = None;
        let (how, landed) = if h.commit_reveal_enabled
            && let Some(r) = self.commit_timelocked(&w.uids, &w.weights).await
        {
            timelock = r.as_ref().ok().cloned();
            ("timelocked", r.map(|t| t.receipt))
        } else if h.commit_reveal_enabled {
            self.check_mechid("a hash commit")?;
            let reveal = Reveal::new(w.uids.clone(), w.weights.clone(), self.version_key)?;
            let hash = reveal.hash(&self.keypair.account(), self.netuid);
            let r = self
                .chain
                .commit_weights(self.netuid, &self.keypair, hash)
                .await;
            if r.is_ok() {
                self.weights.pending_reveal = Some(reveal);
            }
            ("commit", r)
        } else {
            let r = self
                .chain
                .set_weights(
                    self.netuid,
                    &self.keypair,
                    &w.uids,
                    &w.weights,
                    self.version_key,
                )
                .await;
            ("set", r)
        };
        match landed {
            Ok(receipt) => {
                self.ema = ema;
                self.probes.settle(&m, unix_millis() / 1000);
                self.measured.clear();
                self.record_landed(receipt.block, &w.uids, &w.weights)
                    .await?;
                Ok(WeightsReport::Landed {
                    how,
                    receipt,
                    epoch,
                    timelock,
                })
            }
            Err(ChainError::RateLimited { next, .. }) => Ok(WeightsReport::RateLimited { next }),
            Err(source @ ChainError::Timeout(_)) if how == "timelocked" => {
                // Sent, but not seen included: it may have landed. Wait a
                // tempo before the next commit rather than risk a second
                // one now; the rounds stay for it.
                self.weights.block = Some(block.0);
                self.save().await?;
                Err(RoleError::Weights { how, source })
            }
            Err(source) => Err(RoleError::Weights { how, source }),
        }
    }

    /// Records weights that landed in `block`, and saves the whole state.
    async fn record_landed(
        &mut self,
        block: Block,
        uids: &[Uid],
        weights: &[u16],
    ) -> Result<(), RoleError> {
        self.weights.block = Some(block.0);
        self.weights.uids = uids.iter().map(|u| u.0).collect();
        self.weights.weights = weights.to_vec();
        self.save().await
    }

    /// Writes the whole state (EMA, rounds, weights) in one atomic write.
    pub(super) async fn save(&self) -> Result<(), RoleError> {
        let Some((store, keys)) = &self.store else {
            return Ok(());
        };
        let (a, b, c, d) = (
            keys.scores(),
            keys.measurements(),
            keys.weights(),
            keys.probes(),
        );
        let (ema, measured, weights, probes) = (
            encode(&a, &self.ema)?,
            encode(&b, &self.measured)?,
            encode(&c, &self.weights)?,
            encode(&d, &self.probes)?,
        );
        let store = store.clone();
        blocking(move || {
            store.put(&[
                Put::new(&a, &ema),
                Put::new(&b, &measured),
                Put::new(&c, &weights),
                Put::new(&d, &probes),
            ])?;
            Ok(())
        })
        .await
    }
}

/// Forgets, in `ema` and `penalties`, the uids whose hotkey in `mg` is not
/// the one `ema` last saw.
fn follow(mg: &Metagraph, ema: &mut Ema, penalties: &mut Penalties) {
    let hotkeys = mg.neurons().iter().map(|n| (n.uid, n.hotkey)).collect();
    for uid in ema.follow(&hotkeys) {
        penalties.forget(uid);
    }
}

/// The miners of `mg` (all but `me`) that serve an axon, with its address.
fn axon_targets(mg: &Metagraph, me: Uid) -> Vec<(Uid, AxonTarget)> {
    mg.neurons()
        .iter()
        .filter(|n| n.uid != me)
        .filter_map(|n| {
            let a = n.axon?;
            (a.port() != 0 && !a.ip().is_unspecified())
                .then(|| (n.uid, AxonTarget::new(a.ip(), a.port(), n.hotkey)))
        })
        .collect()
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, crate::store::StoreError> {
    serde_json::to_vec(value).map_err(|e| crate::store::StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("cannot encode: {e}").into(),
    })
}

/// Whether weights are due at `block`, the last ones set at `last`: once a
/// tempo, and never faster than the chain's rate limit. Both come from the
/// node; a hostile one's `u64::MAX` means "not yet", not an overflow.
pub(super) fn weights_due(last: Option<u64>, block: Block, h: &Hyperparameters) -> bool {
    match last {
        None => true,
        Some(last) => block.0 >= last.saturating_add(h.tempo.max(h.weights_rate_limit).max(1)),
    }
}
