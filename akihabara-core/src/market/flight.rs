//! A budget for the work a job service does past its caller.
//!
//! A `JobSubmit`, `Allocate` or `Deallocate` runs to its end even when the
//! caller hangs up (a job half-accepted, or a key half-installed, would be
//! worse), so the axon's worker slots do not bound it: a caller that sends
//! calls with a tiny timeout frees its slot at once while the work goes on.
//! Each such call therefore takes a ticket first, at most
//! [`MAX_IN_FLIGHT`] in all and [`MAX_IN_FLIGHT_PER_VALIDATOR`] per caller;
//! a call without one is answered at once (503, or 429 for the caller's own
//! share), before any work starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::AccountId;
use crate::axon::HandlerError;

/// Calls worked on at once, in all.
pub const MAX_IN_FLIGHT: usize = 64;
/// Calls worked on at once for one validator.
pub const MAX_IN_FLIGHT_PER_VALIDATOR: usize = 8;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by: HashMap<AccountId, usize>,
}

/// The tickets handed out.
#[derive(Debug)]
pub(crate) struct InFlight {
    counts: Mutex<Counts>,
    max: usize,
    max_per_validator: usize,
}

/// One call's place in the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    flight: Arc<InFlight>,
    who: AccountId,
}

impl InFlight {
    pub(crate) fn new(max: usize, max_per_validator: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            counts: Mutex::default(),
            max,
            max_per_validator,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for `who`, or the refusal to answer with.
    pub(crate) fn enter(self: &Arc<Self>, who: &AccountId) -> Result<Ticket, HandlerError> {
        let mut c = self.counts();
        let mine = c.by.get(who).copied().unwrap_or(0);
        if mine >= self.max_per_validator {
            return Err(HandlerError {
                status: 429,
                message: format!(
                    "Too many requests: {mine} of your job calls are still being worked on"
                ),
            });
        }
        if c.total >= self.max {
            return Err(HandlerError {
                status: 503,
                message: format!("Service busy: {} job calls are being worked on", c.total),
            });
        }
        c.total += 1;
        *c.by.entry(*who).or_default() += 1;
        Ok(Ticket {
            flight: self.clone(),
            who: *who,
        })
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts().total
    }
}

impl Drop for Ticket {
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

    #[test]
    fn tickets_are_bounded_per_caller_and_in_all_and_given_back() {
        let flight = InFlight::new(5, 3);
        let (a, b, c) = (
            AccountId::from_bytes([1; 32]),
            AccountId::from_bytes([2; 32]),
            AccountId::from_bytes([3; 32]),
        );
        let mut held: Vec<Ticket> = (0..3).map(|_| flight.enter(&a).expect("a")).collect();
        assert_eq!(flight.enter(&a).expect_err("a's share").status, 429);
        held.push(flight.enter(&b).expect("b"));
        held.push(flight.enter(&b).expect("b"));
        let full = flight.enter(&c).expect_err("all");
        assert_eq!(full.status, 503);
        assert_eq!(
            full.message,
            "Service busy: 5 job calls are being worked on"
        );
        held.remove(0);
        assert_eq!(flight.total(), 4);
        held.push(flight.enter(&c).expect("c, once a ticket came back"));
        drop(held);
        assert_eq!(flight.total(), 0);
        assert!(flight.counts().by.is_empty());
    }
}
