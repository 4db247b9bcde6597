//! Replay protection for the legacy scheme: a nonce per `(hotkey, uuid)`
//! that must be fresh for a new sender and strictly increasing after that.
//!
//! The Python axon accepts only nonces above the last one per key, so when one
//! Python dendrite sends concurrent calls to the same axon (one uuid for all)
//! and they arrive out of order, the late ones fail with 401; against a fast
//! axon this happens routinely. This store keeps, per key, the nonces seen in
//! the last `reorder_window` (at most [`MAX_RECENT`]) and also accepts a nonce
//! below the highest when it is inside that window and was never seen: the
//! sliding anti-replay window of IPsec. Exact replays are still refused, and a
//! zero window gives Python's strict rule.
//!
//! Memory is bounded three ways, and no sender can use it to lock others out:
//! - a uuid is at most [`MAX_UUID_LEN`] bytes (Python's are 36);
//! - a hotkey holds at most [`MAX_UUIDS_PER_HOTKEY`] uuids: a new one evicts
//!   that hotkey's oldest, so one hotkey can only crowd out itself;
//! - the store holds at most `capacity` keys: beyond it, the oldest eighth of
//!   all keys is evicted.
//!
//! Forgetting is made safe by floors: an evicted key's highest nonce raises
//! the floor (its hotkey's, or the store's), and a nonce at or below a floor
//! is refused for an unknown key, so a forgotten nonce can never be replayed.
//! A store made with [`NonceStore::started_at`] starts with its floor at that
//! time: a request captured before a restart cannot be replayed after it,
//! whatever its unsigned `timeout` header says. Keys whose last nonce is older
//! than the freshness window (`allowed_delta + max_timeout`) are dropped: any
//! replay of them is refused as stale.

use std::collections::HashMap;
use std::time::Duration;

/// Most nonces remembered per key inside the reorder window.
pub const MAX_RECENT: usize = 64;
/// Longest uuid accepted (bytes).
pub const MAX_UUID_LEN: usize = 64;
/// Most uuids remembered per hotkey. akihabara's dendrite signs each call
/// in flight with its own uuid (a lane), so this many calls in flight from
/// one dendrite to one axon never push a lane out; with 16, 32 in flight
/// (`cargo bench --bench axon`) had about 1.7 % of calls refused as below
/// the floor that an evicted lane leaves.
pub const MAX_UUIDS_PER_HOTKEY: usize = 64;

/// Bounds of the nonce check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoncePolicy {
    /// How old a new sender's first nonce may be, beside its timeout (4 s, as Python).
    pub allowed_delta: Duration,
    /// The largest timeout that widens the window (the server's cap).
    pub max_timeout: Duration,
    /// How far ahead of this clock a nonce may be.
    pub max_future: Duration,
    /// How far below the highest nonce of a key a never-seen nonce may be
    /// (calls that overtook each other). Zero: strictly increasing only.
    pub reorder_window: Duration,
    /// The most `(hotkey, uuid)` keys held at once.
    pub capacity: usize,
}

impl Default for NoncePolicy {
    fn default() -> NoncePolicy {
        NoncePolicy {
            allowed_delta: Duration::from_secs(4),
            max_timeout: Duration::from_secs(300),
            max_future: Duration::from_secs(30),
            reorder_window: Duration::from_secs(2),
            capacity: 100_000,
        }
    }
}

/// Why a nonce was refused. Messages match the Python axon's where it has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// No nonce header.
    #[error("Missing Nonce")]
    Missing,
    /// A new sender's nonce is outside the window.
    #[error(
        "Nonce is too old: acceptable delta is {allowed_s:.2} seconds but request was {age_s:.2} seconds old"
    )]
    TooOld {
        /// Age of the nonce.
        age_s: f64,
        /// The greatest age accepted, in seconds.
        allowed_s: f64,
    },
    /// Not above the last nonce accepted for this key (and outside the
    /// reorder window).
    #[error("Nonce is too old, a newer one was last processed")]
    NotIncreasing,
    /// Exactly a nonce accepted before: a replay.
    #[error("Nonce was already used")]
    Replayed,
    /// Ahead of this clock by more than allowed.
    #[error("Nonce is {ahead_s:.2} seconds in the future (at most {allowed_s:.2} allowed)")]
    InFuture {
        /// How far ahead.
        ahead_s: f64,
        /// The most seconds ahead accepted.
        allowed_s: f64,
    },
    /// At or below a floor: sent before this axon started, or older than
    /// nonces it had to forget. A fresh request passes.
    #[error(
        "Nonce predates this axon's replay memory (it restarted or forgot older nonces); sign a new request"
    )]
    BelowFloor,
    /// The uuid is longer than [`MAX_UUID_LEN`].
    #[error("uuid is {len} bytes; at most {max} are accepted")]
    UuidTooLong {
        /// Its length in bytes.
        len: usize,
        /// The most bytes accepted ([`MAX_UUID_LEN`]).
        max: usize,
    },
}

/// The per-sender nonce memory of one axon.
#[derive(Debug)]
pub struct NonceStore {
    policy: NoncePolicy,
    senders: HashMap<String, Sender>,
    keys: usize,
    /// Unknown keys need a nonce above this (start time, raised by evictions).
    floor: u64,
    last_prune_ns: u64,
}

#[derive(Debug, Default)]
struct Sender {
    /// Unknown uuids of this hotkey need a nonce above this.
    floor: u64,
    uuids: HashMap<Box<str>, Entry>,
}

#[derive(Debug, Default)]
struct Entry {
    max: u64,
    /// Accepted nonces inside the reorder window, ascending.
    recent: Vec<u64>,
}

impl NonceStore {
    /// An empty store with no floor (every fresh nonce passes).
    pub fn new(policy: NoncePolicy) -> NonceStore {
        NonceStore::started_at(policy, 0)
    }

    /// An empty store that refuses, for unknown keys, nonces at or below
    /// `now_ns`: a server that forgot everything when it (re)started cannot
    /// be fed requests captured before.
    pub fn started_at(policy: NoncePolicy, now_ns: u64) -> NonceStore {
        NonceStore {
            policy,
            senders: HashMap::new(),
            keys: 0,
            floor: now_ns,
            last_prune_ns: now_ns,
        }
    }

    /// `(hotkey, uuid)` keys held now.
    pub fn len(&self) -> usize {
        self.keys
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    fn horizon_ns(&self) -> u64 {
        (self.policy.allowed_delta + self.policy.max_timeout).as_nanos() as u64
    }

    /// Checks `nonce` for `(hotkey, uuid)` without recording it (cheap; run it
    /// before the signature check). `timeout` is the request's, capped by the
    /// policy.
    pub fn check(
        &self,
        hotkey: &str,
        uuid: &str,
        nonce: u64,
        timeout: Option<f64>,
        now_ns: u64,
    ) -> Result<(), NonceError> {
        if uuid.len() > MAX_UUID_LEN {
            return Err(NonceError::UuidTooLong {
                len: uuid.len(),
                max: MAX_UUID_LEN,
            });
        }
        let future = self.policy.max_future.as_nanos() as u64;
        if nonce > now_ns.saturating_add(future) {
            return Err(NonceError::InFuture {
                ahead_s: (nonce - now_ns) as f64 / 1e9,
                allowed_s: future as f64 / 1e9,
            });
        }
        let sender = self.senders.get(hotkey);
        match sender.and_then(|s| s.uuids.get(uuid)) {
            Some(e) if nonce > e.max => Ok(()),
            Some(e) => {
                let window = self.policy.reorder_window.as_nanos() as u64;
                let floor = e.max.saturating_sub(window);
                let full_floor = if e.recent.len() >= MAX_RECENT {
                    e.recent[0]
                } else {
                    0
                };
                if e.recent.binary_search(&nonce).is_ok() || nonce == e.max {
                    Err(NonceError::Replayed)
                } else if window == 0 || nonce <= floor || nonce <= full_floor {
                    Err(NonceError::NotIncreasing)
                } else {
                    Ok(())
                }
            }
            None => {
                let cap = self.policy.max_timeout.as_secs_f64();
                let timeout = timeout.unwrap_or(0.0).clamp(0.0, cap);
                let window = self.policy.allowed_delta.as_nanos() as u64 + (timeout * 1e9) as u64;
                if nonce <= now_ns.saturating_sub(window) {
                    Err(NonceError::TooOld {
                        age_s: (now_ns as f64 - nonce as f64) / 1e9,
                        allowed_s: window as f64 / 1e9,
                    })
                } else if nonce <= self.floor.max(sender.map_or(0, |s| s.floor)) {
                    Err(NonceError::BelowFloor)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Checks and records `nonce` for `(hotkey, uuid)` in one step; call it
    /// once the signature is known good and the rate limit has let the
    /// request through, so neither forged nor throttled requests take memory.
    pub fn accept(
        &mut self,
        hotkey: &str,
        uuid: &str,
        nonce: u64,
        timeout: Option<f64>,
        now_ns: u64,
    ) -> Result<(), NonceError> {
        self.check(hotkey, uuid, nonce, timeout, now_ns)?;
        if now_ns.saturating_sub(self.last_prune_ns) > 1_000_000_000
            || self.keys >= self.policy.capacity
        {
            self.prune(now_ns);
        }
        let window = self.policy.reorder_window.as_nanos() as u64;
        if let Some(e) = self
            .senders
            .get_mut(hotkey)
            .and_then(|s| s.uuids.get_mut(uuid))
        {
            if let Err(at) = e.recent.binary_search(&nonce) {
                e.recent.insert(at, nonce);
            }
            e.max = e.max.max(nonce);
            let floor = e.max.saturating_sub(window);
            e.recent.retain(|&n| n > floor || n == e.max);
            if e.recent.len() > MAX_RECENT {
                let extra = e.recent.len() - MAX_RECENT;
                e.recent.drain(..extra);
            }
            return Ok(());
        }
        if self.keys >= self.policy.capacity.max(1) {
            self.evict_oldest();
        }
        let sender = self.senders.entry(hotkey.to_owned()).or_default();
        if sender.uuids.len() >= MAX_UUIDS_PER_HOTKEY
            && let Some((oldest, max)) = sender
                .uuids
                .iter()
                .min_by_key(|(_, e)| e.max)
                .map(|(k, e)| (k.clone(), e.max))
        {
            sender.uuids.remove(&oldest);
            sender.floor = sender.floor.max(max);
            self.keys -= 1;
        }
        sender.uuids.insert(
            uuid.into(),
            Entry {
                max: nonce,
                recent: vec![nonce],
            },
        );
        self.keys += 1;
        Ok(())
    }

    /// Forgets the oldest eighth of all keys (by their highest nonce) and
    /// raises the store's floor to the newest nonce forgotten.
    fn evict_oldest(&mut self) {
        let mut maxes: Vec<u64> = self
            .senders
            .values()
            .flat_map(|s| s.uuids.values().map(|e| e.max))
            .collect();
        if maxes.is_empty() {
            return;
        }
        let n = (maxes.len() / 8).max(1);
        let (_, cut, _) = maxes.select_nth_unstable(n - 1);
        let cut = *cut;
        let mut removed = 0;
        for s in self.senders.values_mut() {
            s.uuids.retain(|_, e| {
                let keep = e.max > cut;
                removed += usize::from(!keep);
                keep
            });
        }
        self.senders.retain(|_, s| !s.uuids.is_empty());
        self.keys -= removed;
        self.floor = self.floor.max(cut);
    }

    /// Forgets keys whose last nonce is older than the freshness window.
    pub fn prune(&mut self, now_ns: u64) {
        let cutoff = now_ns.saturating_sub(self.horizon_ns());
        let mut keys = 0;
        self.senders.retain(|_, s| {
            s.uuids.retain(|_, e| e.max > cutoff);
            keys += s.uuids.len();
            !s.uuids.is_empty()
        });
        self.keys = keys;
        self.last_prune_ns = now_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_700_000_000 * S;
    const H: &str = "hotkey";

    fn store() -> NonceStore {
        NonceStore::new(NoncePolicy {
            capacity: 3,
            ..NoncePolicy::default()
        })
    }

    #[test]
    fn new_sender_must_be_fresh_within_delta_plus_timeout() {
        let s = store();
        assert!(s.check(H, "k", NOW - 3 * S, None, NOW).is_ok());
        assert!(matches!(
            s.check(H, "k", NOW - 5 * S, None, NOW),
            Err(NonceError::TooOld { .. })
        ));
        assert!(s.check(H, "k", NOW - 15 * S, Some(12.0), NOW).is_ok());
        // A huge timeout does not widen the window past the cap.
        assert!(s.check(H, "k", NOW - 400 * S, Some(1e9), NOW).is_err());
        let msg = s
            .check(H, "k", NOW - 5 * S, None, NOW)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "Nonce is too old: acceptable delta is 4.00 seconds but request was 5.00 seconds old"
        );
    }

    #[test]
    fn nonces_must_increase_per_key_and_replays_fail() {
        let mut s = NonceStore::new(NoncePolicy {
            reorder_window: Duration::ZERO,
            ..NoncePolicy::default()
        });
        s.accept(H, "a", NOW, None, NOW).unwrap();
        assert_eq!(s.accept(H, "a", NOW, None, NOW), Err(NonceError::Replayed));
        assert_eq!(
            s.accept(H, "a", NOW - 1, None, NOW),
            Err(NonceError::NotIncreasing)
        );
        s.accept(H, "a", NOW + 1, None, NOW).unwrap();
        // Another uuid is another key, and so is another hotkey.
        s.accept(H, "b", NOW, None, NOW).unwrap();
        s.accept("other", "a", NOW, None, NOW).unwrap();
    }

    #[test]
    fn overtaken_calls_are_accepted_once_inside_the_reorder_window() {
        let mut s = store();
        s.accept(H, "a", NOW + 10, None, NOW).unwrap();
        // Sent earlier, arrived later: fine, once.
        s.accept(H, "a", NOW + 5, None, NOW).unwrap();
        assert_eq!(
            s.accept(H, "a", NOW + 5, None, NOW),
            Err(NonceError::Replayed)
        );
        assert_eq!(
            s.accept(H, "a", NOW + 10, None, NOW),
            Err(NonceError::Replayed)
        );
        // Below the window: refused as in Python.
        assert_eq!(
            s.accept(H, "a", NOW - 3 * S, None, NOW),
            Err(NonceError::NotIncreasing)
        );
        // The memory per key is bounded; its floor rises instead.
        for i in 0..(MAX_RECENT as u64 + 10) {
            s.accept(H, "a", NOW + 100 + i, None, NOW).unwrap();
        }
        assert_eq!(s.senders[H].uuids["a"].recent.len(), MAX_RECENT);
        assert_eq!(
            s.accept(H, "a", NOW + 101, None, NOW),
            Err(NonceError::NotIncreasing)
        );
    }

    #[test]
    fn far_future_nonces_are_refused() {
        let s = store();
        assert!(matches!(
            s.check(H, "k", NOW + 31 * S, None, NOW),
            Err(NonceError::InFuture { .. })
        ));
        assert!(s.check(H, "k", NOW + 29 * S, None, NOW).is_ok());
    }

    #[test]
    fn expired_keys_are_forgotten_and_their_replays_are_stale() {
        let mut s = store();
        s.accept(H, "a", NOW + 1, None, NOW).unwrap();
        let later = NOW + 305 * S;
        s.accept(H, "d", later, None, later).unwrap();
        assert_eq!(s.len(), 1);
        // A replay of a forgotten key's nonce is stale, not accepted, even
        // with the largest timeout a caller may claim.
        assert!(matches!(
            s.accept(H, "a", NOW + 1, Some(300.0), later),
            Err(NonceError::TooOld { .. })
        ));
    }

    /// Issue 23, finding 4: a full store evicts its oldest keys instead of
    /// refusing every new sender, and an evicted key's nonce stays refused.
    #[test]
    fn a_full_store_evicts_the_oldest_and_never_locks_new_senders_out() {
        let mut s = store();
        for (i, h) in ["a", "b", "c"].iter().enumerate() {
            s.accept(h, "u", NOW + i as u64, None, NOW).unwrap();
        }
        // Full: a new sender is still accepted; "a" (the oldest) is evicted.
        s.accept("d", "u", NOW + 10, None, NOW).unwrap();
        assert_eq!(s.len(), 3);
        assert!(!s.senders.contains_key("a"));
        // Replaying a's nonce hits the floor, it is not accepted anew.
        assert_eq!(
            s.accept("a", "u", NOW, None, NOW),
            Err(NonceError::BelowFloor)
        );
        // A fresh request from "a" passes.
        s.accept("a", "u", NOW + 20, None, NOW).unwrap();
    }

    /// A dendrite with 48 calls in flight, each on its own uuid lane, whose
    /// calls arrive in the reverse of the order they were signed: none is
    /// refused (with 16 uuids per hotkey, lane 31 was, below the floor that
    /// evicting lane 32 left).
    #[test]
    fn a_dendrites_lanes_in_flight_are_all_remembered() {
        let mut s = NonceStore::new(NoncePolicy::default());
        let lanes = 48u64;
        for round in 0..3 {
            for lane in (0..lanes).rev() {
                let nonce = NOW + round * lanes + lane;
                assert_eq!(
                    s.accept("validator", &format!("lane-{lane}"), nonce, None, NOW),
                    Ok(()),
                    "round {round}, lane {lane}"
                );
            }
        }
        assert_eq!(s.len(), lanes as usize);
    }

    /// Issue 23, finding 4: one hotkey cycling uuids only crowds out itself,
    /// and an oversized uuid is refused before it is stored.
    #[test]
    fn one_hotkey_cannot_fill_the_store_and_uuids_are_bounded() {
        let mut s = NonceStore::new(NoncePolicy::default());
        s.accept("victim", "v", NOW, None, NOW).unwrap();
        for i in 0..1000u64 {
            s.accept("flood", &format!("u{i}"), NOW + i, None, NOW)
                .unwrap();
        }
        assert_eq!(s.len(), 1 + MAX_UUIDS_PER_HOTKEY);
        assert_eq!(s.senders["flood"].uuids.len(), MAX_UUIDS_PER_HOTKEY);
        // The victim's key is untouched: its replay is still a replay.
        assert_eq!(
            s.accept("victim", "v", NOW, None, NOW),
            Err(NonceError::Replayed)
        );
        // The flooder's evicted uuids cannot be replayed.
        assert_eq!(
            s.accept("flood", "u0", NOW, None, NOW),
            Err(NonceError::BelowFloor)
        );
        let long = "x".repeat(MAX_UUID_LEN + 1);
        assert_eq!(
            s.accept("flood", &long, NOW + 5000, None, NOW),
            Err(NonceError::UuidTooLong {
                len: MAX_UUID_LEN + 1,
                max: MAX_UUID_LEN
            })
        );
    }

    /// Issue 23, finding 10: after a restart, a request captured before it is
    /// refused even when its unsigned timeout header is raised to 300 s.
    #[test]
    fn a_restarted_store_refuses_requests_from_before_its_start() {
        let captured = NOW - 60 * S;
        let s = NonceStore::started_at(NoncePolicy::default(), NOW);
        assert_eq!(
            s.check(H, "u", captured, Some(300.0), NOW),
            Err(NonceError::BelowFloor)
        );
        // Without the floor (the old behaviour) it would have passed.
        assert!(
            NonceStore::new(NoncePolicy::default())
                .check(H, "u", captured, Some(300.0), NOW)
                .is_ok()
        );
        assert!(s.check(H, "u", NOW + 1, None, NOW + 2).is_ok());
    }
}
