//! [`ThrottledProver`]: an honest prover slowed down on purpose, to stand
//! for slower hardware in tests and demos (several miners on one machine
//! with different measured speeds). It computes everything; it only waits.

use std::time::{Duration, Instant};

use crate::merkle::Hash;
use crate::{Challenge, Commitment, Opening, PowError, Prover, RowRef};

/// Wraps a prover so each commitment takes `1 / fraction` as long: after
/// the work it sleeps for the rest. A simulation of slower hardware, named
/// so wherever it is used.
#[derive(Debug)]
pub struct ThrottledProver<P> {
    inner: P,
    fraction: f64,
}

impl<P: Prover> ThrottledProver<P> {
    /// `fraction` of `inner`'s speed, in (0, 1].
    pub fn new(inner: P, fraction: f64) -> Result<ThrottledProver<P>, PowError> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(PowError::Setting(format!(
                "a throttle must be in (0, 1], not {fraction}"
            )));
        }
        Ok(ThrottledProver { inner, fraction })
    }
}

impl<P: Prover> Prover for ThrottledProver<P> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn device(&self) -> String {
        format!(
            "{} (throttled to {:.0}%: a simulation of slower hardware)",
            self.inner.device(),
            self.fraction * 100.0
        )
    }

    fn commit(&mut self, challenge: &Challenge) -> Result<Commitment, PowError> {
        self.commit_cancellable(challenge, &std::sync::atomic::AtomicBool::new(false))
    }

    fn commit_cancellable(
        &mut self,
        challenge: &Challenge,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Commitment, PowError> {
        let t = Instant::now();
        let c = self.inner.commit_cancellable(challenge, cancel)?;
        let worked = t.elapsed();
        let wait = (worked.mul_f64(1.0 / self.fraction) - worked).min(Duration::from_secs(600));
        // The wait stands for work: it stops when the caller goes away.
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(PowError::Cancelled);
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
        Ok(c)
    }

    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError> {
        self.inner.open(rows)
    }

    fn leaves(&self) -> &[Hash] {
        self.inner.leaves()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CpuProver, Seed};

    #[test]
    fn a_throttled_prover_commits_the_same_and_waits() {
        let ch = Challenge::new(Seed([7; 32]), 128, 1).expect("challenge");
        let a = CpuProver::new().commit(&ch).expect("commit");
        let mut slow = ThrottledProver::new(CpuProver::new(), 0.25).expect("throttle");
        let t = Instant::now();
        let b = slow.commit(&ch).expect("commit");
        assert_eq!(a.root, b.root, "the same work, the same commitment");
        // The wait is a sleep of three times the work, so the whole call
        // takes at least four times what the inner prover reports.
        assert!(
            t.elapsed() >= b.elapsed.mul_f64(4.0),
            "{:?} vs {:?}",
            t.elapsed(),
            b.elapsed
        );
        assert!(slow.device().contains("simulation"));
        assert!(ThrottledProver::new(CpuProver::new(), 0.0).is_err());
        assert!(ThrottledProver::new(CpuProver::new(), 1.5).is_err());
        assert!(ThrottledProver::new(CpuProver::new(), f64::NAN).is_err());
    }
}
