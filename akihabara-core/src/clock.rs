//! Injected time: what a simulation reads instead of the wall clock, so a
//! run replays exactly.
//!
//! ```
//! use std::time::Duration;
//! use akihabara_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let seen_by_the_simulation = clock.clone();
//! clock.advance(Duration::from_secs(12));
//! assert_eq!(seen_by_the_simulation.elapsed(), Duration::from_secs(12));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Monotonic time since the clock's own start. Object-safe.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time elapsed since the clock started.
    fn elapsed(&self) -> Duration;
}

/// The machine's monotonic clock, started when made.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock that starts now.
    pub fn new() -> SystemClock {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// The wall clock, counted from a fixed instant: processes given the same
/// `since` read the same time, so two daemons on one simulated chain
/// ([`SnapshotChain::with_clock`](crate::chain::SnapshotChain::with_clock))
/// see the same block. Before `since` it reads zero, and it never goes
/// back, even when the system clock is stepped back.
#[derive(Clone, Debug)]
pub struct WallClock {
    since: SystemTime,
    seen: Arc<AtomicU64>,
}

impl WallClock {
    /// A clock that reads the time since `since`.
    pub fn since(since: SystemTime) -> WallClock {
        WallClock {
            since,
            seen: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Clock for WallClock {
    fn elapsed(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(self.since)
            .unwrap_or(Duration::ZERO);
        let nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.seen.fetch_max(nanos, Ordering::Relaxed).max(nanos))
    }
}

/// A clock that moves only when told; clones share one time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `d` (saturating at about 584 years).
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(add))
            });
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn elapsed(&self) -> Duration {
        (**self).elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clocks_from_one_instant_agree_and_start_at_zero() {
        let since = SystemTime::now() - Duration::from_secs(100);
        let (a, b) = (WallClock::since(since), WallClock::since(since));
        let (ta, tb) = (a.elapsed(), b.elapsed());
        assert!(ta >= Duration::from_secs(100), "{ta:?}");
        // Read one after the other: the second is no earlier, and not far on.
        assert!(
            tb >= ta && tb - ta < Duration::from_secs(5),
            "{ta:?} {tb:?}"
        );
        let future = WallClock::since(SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(future.elapsed(), Duration::ZERO);
    }
}
