//! A counting semaphore whose waiters are served by priority (highest first,
//! then first come), as the Python axon's priority thread pool intends.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Limits concurrent requests; hands free slots to the highest priority.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    seq: u64,
    waiters: BinaryHeap<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    priority: f64,
    seq: u64,
    tx: oneshot::Sender<Permit>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Waiter) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Waiter) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Waiter) -> Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A held slot; dropping it passes the slot on.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Option<Arc<Gate>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl Gate {
    pub(crate) fn new(slots: usize) -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State {
                free: slots,
                seq: 0,
                waiters: BinaryHeap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves counts that are still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot. Cancel-safe: a slot granted to a waiter that has
    /// gone is passed on when the channel drops it.
    pub(crate) async fn acquire(self: &Arc<Gate>, priority: f64) -> Option<Permit> {
        let rx = {
            let mut st = self.lock();
            if st.free > 0 {
                st.free -= 1;
                return Some(Permit {
                    gate: Some(self.clone()),
                });
            }
            let (tx, rx) = oneshot::channel();
            st.seq += 1;
            let seq = st.seq;
            st.waiters.push(Waiter { priority, seq, tx });
            rx
        };
        rx.await.ok()
    }

    fn release(self: &Arc<Gate>) {
        let mut st = self.lock();
        while let Some(w) = st.waiters.pop() {
            if w.tx.is_closed() {
                continue;
            }
            match w.tx.send(Permit {
                gate: Some(self.clone()),
            }) {
                Ok(()) => return,
                Err(mut unused) => {
                    unused.gate = None;
                }
            }
        }
        st.free += 1;
    }

    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.lock().free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn highest_priority_waiter_goes_first_and_slots_are_not_lost() {
        let gate = Gate::new(1);
        let held = gate.acquire(0.0).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, prio) in [("low", 1.0), ("high", 9.0), ("mid", 5.0)] {
            let (g, o) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = g.acquire(prio).await;
                o.lock().unwrap().push(name);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A waiter that gives up must not swallow a slot.
        let quitter = tokio::time::timeout(Duration::from_millis(5), gate.acquire(100.0)).await;
        assert!(quitter.is_err());
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["high", "mid", "low"]);
        assert_eq!(gate.free(), 1);
    }
}
