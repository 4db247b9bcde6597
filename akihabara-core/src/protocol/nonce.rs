//! Replay protection for the legacy scheme: a nonce per `{hotkey}:{uuid}`
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
//! Unlike the Python axon's dictionary, which keeps every key forever, this
//! store forgets a key once its last nonce is older than the freshness window
//! (`allowed_delta + max_timeout`). That is safe: any replay of a forgotten
//! nonce is older than the window and is refused as stale. The store also has
//! a hard capacity; when it is full of live keys, new senders are refused
//! until keys expire, rather than letting memory grow.

use std::collections::HashMap;

/// Most nonces remembered per key inside the reorder window.
pub const MAX_RECENT: usize = 64;
use std::time::Duration;

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
    /// The most keys held at once.
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
        /// The window.
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
        /// The bound.
        allowed_s: f64,
    },
    /// The store is full of live keys.
    #[error("too many active senders; try again later")]
    Full,
}

/// The per-sender nonce memory of one axon.
#[derive(Debug)]
pub struct NonceStore {
    policy: NoncePolicy,
    last: HashMap<String, Entry>,
    last_prune_ns: u64,
}

#[derive(Debug, Default)]
struct Entry {
    max: u64,
    /// Accepted nonces inside the reorder window, ascending.
    recent: Vec<u64>,
}

impl NonceStore {
    /// An empty store.
    pub fn new(policy: NoncePolicy) -> NonceStore {
        NonceStore {
            policy,
            last: HashMap::new(),
            last_prune_ns: 0,
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    fn horizon_ns(&self) -> u64 {
        (self.policy.allowed_delta + self.policy.max_timeout).as_nanos() as u64
    }

    /// Checks `nonce` for `key` without recording it (cheap; run it before the
    /// signature check). `timeout` is the request's, capped by the policy.
    pub fn check(
        &self,
        key: &str,
        nonce: u64,
        timeout: Option<f64>,
        now_ns: u64,
    ) -> Result<(), NonceError> {
        let future = self.policy.max_future.as_nanos() as u64;
        if nonce > now_ns.saturating_add(future) {
            return Err(NonceError::InFuture {
                ahead_s: (nonce - now_ns) as f64 / 1e9,
                allowed_s: future as f64 / 1e9,
            });
        }
        match self.last.get(key) {
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
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Checks and records `nonce` for `key` in one step; call it once the
    /// signature is known good, so forged requests cannot poison a key.
    pub fn accept(
        &mut self,
        key: &str,
        nonce: u64,
        timeout: Option<f64>,
        now_ns: u64,
    ) -> Result<(), NonceError> {
        self.check(key, nonce, timeout, now_ns)?;
        if now_ns.saturating_sub(self.last_prune_ns) > 1_000_000_000
            || self.last.len() >= self.policy.capacity
        {
            self.prune(now_ns);
        }
        let window = self.policy.reorder_window.as_nanos() as u64;
        if let Some(e) = self.last.get_mut(key) {
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
        if self.last.len() >= self.policy.capacity {
            return Err(NonceError::Full);
        }
        self.last.insert(
            key.to_owned(),
            Entry {
                max: nonce,
                recent: vec![nonce],
            },
        );
        Ok(())
    }

    /// Forgets keys whose last nonce is older than the freshness window.
    pub fn prune(&mut self, now_ns: u64) {
        let cutoff = now_ns.saturating_sub(self.horizon_ns());
        self.last.retain(|_, e| e.max > cutoff);
        self.last_prune_ns = now_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_700_000_000 * S;

    fn store() -> NonceStore {
        NonceStore::new(NoncePolicy {
            capacity: 3,
            ..NoncePolicy::default()
        })
    }

    #[test]
    fn new_sender_must_be_fresh_within_delta_plus_timeout() {
        let s = store();
        assert!(s.check("k", NOW - 3 * S, None, NOW).is_ok());
        assert!(matches!(
            s.check("k", NOW - 5 * S, None, NOW),
            Err(NonceError::TooOld { .. })
        ));
        assert!(s.check("k", NOW - 15 * S, Some(12.0), NOW).is_ok());
        // A huge timeout does not widen the window past the cap.
        assert!(s.check("k", NOW - 400 * S, Some(1e9), NOW).is_err());
        let msg = s
            .check("k", NOW - 5 * S, None, NOW)
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
        s.accept("a", NOW, None, NOW).unwrap();
        assert_eq!(s.accept("a", NOW, None, NOW), Err(NonceError::Replayed));
        assert_eq!(
            s.accept("a", NOW - 1, None, NOW),
            Err(NonceError::NotIncreasing)
        );
        s.accept("a", NOW + 1, None, NOW).unwrap();
        // Another uuid is another key.
        s.accept("b", NOW, None, NOW).unwrap();
    }

    #[test]
    fn overtaken_calls_are_accepted_once_inside_the_reorder_window() {
        let mut s = store();
        s.accept("a", NOW + 10, None, NOW).unwrap();
        // Sent earlier, arrived later: fine, once.
        s.accept("a", NOW + 5, None, NOW).unwrap();
        assert_eq!(s.accept("a", NOW + 5, None, NOW), Err(NonceError::Replayed));
        assert_eq!(
            s.accept("a", NOW + 10, None, NOW),
            Err(NonceError::Replayed)
        );
        // Below the window: refused as in Python.
        assert_eq!(
            s.accept("a", NOW - 3 * S, None, NOW),
            Err(NonceError::NotIncreasing)
        );
        // The memory per key is bounded; its floor rises instead.
        for i in 0..(MAX_RECENT as u64 + 10) {
            s.accept("a", NOW + 100 + i, None, NOW).unwrap();
        }
        assert_eq!(s.last["a"].recent.len(), MAX_RECENT);
        assert_eq!(
            s.accept("a", NOW + 101, None, NOW),
            Err(NonceError::NotIncreasing)
        );
    }

    #[test]
    fn far_future_nonces_are_refused() {
        let s = store();
        assert!(matches!(
            s.check("k", NOW + 31 * S, None, NOW),
            Err(NonceError::InFuture { .. })
        ));
        assert!(s.check("k", NOW + 29 * S, None, NOW).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_expired_keys_are_forgotten() {
        let mut s = store();
        for k in ["a", "b", "c"] {
            s.accept(k, NOW, None, NOW).unwrap();
        }
        assert_eq!(s.accept("d", NOW, None, NOW), Err(NonceError::Full));
        // Known keys still advance when full.
        s.accept("a", NOW + 1, None, NOW).unwrap();
        let later = NOW + 305 * S;
        s.accept("d", later, None, later).unwrap();
        assert_eq!(s.len(), 1);
        // A replay of a forgotten key's nonce is stale, not accepted.
        assert!(matches!(
            s.accept("a", NOW + 1, None, later),
            Err(NonceError::TooOld { .. })
        ));
    }
}
