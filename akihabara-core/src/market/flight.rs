//! A budget for work done past its caller, or held open for one.
//!
//! A `JobSubmit`, `Allocate` or `Deallocate` runs to its end even when the
//! caller hangs up (a job half-accepted, or a key half-installed, would be
//! worse), so the axon's worker slots do not bound it: a caller that sends
//! calls with a tiny timeout frees its slot at once while the work goes on.
//! Each such call therefore takes a [`Ticket`] first, at most
//! [`MAX_IN_FLIGHT`] in all and [`MAX_IN_FLIGHT_PER_VALIDATOR`] per caller;
//! a call without one is answered at once (503, or 429 for the caller's own
//! share), before any work starts. The gateway budgets its clients' log
//! streams the same way.
//!
//! ```
//! use akihabara_core::market::flight::{Full, InFlight};
//! let budget = InFlight::new(3, 2);
//! let a = budget.enter(&"a").unwrap();
//! let _a2 = budget.enter(&"a").unwrap();
//! assert_eq!(budget.enter(&"a").unwrap_err(), Full::Caller(2));
//! let _b = budget.enter(&"b").unwrap();
//! assert_eq!(budget.enter(&"c").unwrap_err(), Full::All(3));
//! drop(a);
//! assert!(budget.enter(&"c").is_ok());
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Job calls a miner works on at once, in all.
pub const MAX_IN_FLIGHT: usize = 64;
/// Job calls a miner works on at once for one validator.
pub const MAX_IN_FLIGHT_PER_VALIDATOR: usize = 8;

/// Why [`InFlight::enter`] gave no ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// The caller holds this many tickets already, its whole share.
    #[error("the caller holds its whole share ({0})")]
    Caller(usize),
    /// This many tickets are out, all there are.
    #[error("all {0} places are taken")]
    All(usize),
}

#[derive(Debug)]
struct Counts<K> {
    total: usize,
    by: HashMap<K, usize>,
}

/// Tickets for work in flight: a number in all, and a share per caller.
#[derive(Debug)]
pub struct InFlight<K: Hash + Eq + Clone> {
    counts: Mutex<Counts<K>>,
    max: usize,
    max_per_caller: usize,
}

/// One piece of work's place in the budget, given back when dropped.
#[derive(Debug)]
pub struct Ticket<K: Hash + Eq + Clone> {
    flight: Arc<InFlight<K>>,
    who: K,
}

impl<K: Hash + Eq + Clone> InFlight<K> {
    /// At most `max` tickets out, `max_per_caller` to one caller.
    pub fn new(max: usize, max_per_caller: usize) -> Arc<InFlight<K>> {
        Arc::new(InFlight {
            counts: Mutex::new(Counts {
                total: 0,
                by: HashMap::new(),
            }),
            max,
            max_per_caller,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts<K>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for `who`, or why there is none.
    pub fn enter(self: &Arc<Self>, who: &K) -> Result<Ticket<K>, Full> {
        self.enter_within(who, self.max)
    }

    /// [`InFlight::enter`], with at most `max` tickets out in all (or this
    /// budget's own `max`, if lower): for a caller whose own bound is
    /// smaller, such as a server with fewer connections.
    pub fn enter_within(self: &Arc<Self>, who: &K, max: usize) -> Result<Ticket<K>, Full> {
        let mut c = self.counts();
        let mine = c.by.get(who).copied().unwrap_or(0);
        if mine >= self.max_per_caller {
            return Err(Full::Caller(mine));
        }
        if c.total >= self.max.min(max) {
            return Err(Full::All(c.total));
        }
        c.total += 1;
        *c.by.entry(who.clone()).or_default() += 1;
        Ok(Ticket {
            flight: self.clone(),
            who: who.clone(),
        })
    }

    /// Tickets out now.
    pub fn out(&self) -> usize {
        self.counts().total
    }
}

impl<K: Hash + Eq + Clone> Drop for Ticket<K> {
    fn drop(&mut self) {
        let mut c = self.flight.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                c.by.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountId;

    #[test]
    fn tickets_are_bounded_per_caller_and_in_all_and_given_back() {
        let flight = InFlight::new(5, 3);
        let (a, b, c) = (
            AccountId::from_bytes([1; 32]),
            AccountId::from_bytes([2; 32]),
            AccountId::from_bytes([3; 32]),
        );
        let mut held: Vec<Ticket<AccountId>> =
            (0..3).map(|_| flight.enter(&a).expect("a")).collect();
        assert_eq!(flight.enter(&a).expect_err("a's share"), Full::Caller(3));
        held.push(flight.enter(&b).expect("b"));
        held.push(flight.enter(&b).expect("b"));
        assert_eq!(flight.enter(&c).expect_err("all"), Full::All(5));
        held.remove(0);
        assert_eq!(flight.out(), 4);
        held.push(flight.enter(&c).expect("c, once a ticket came back"));
        drop(held);
        assert_eq!(flight.out(), 0);
        assert!(flight.counts().by.is_empty());
    }
}
