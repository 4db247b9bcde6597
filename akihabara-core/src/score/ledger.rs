//! Job accounting: worked seconds per (miner, validator, hardware class),
//! counted in whole intervals (10 minutes by default), so a long job that
//! is still running earns for the intervals it has completed; and declined
//! jobs, when the miner advertised free executors, as penalties.
//!
//! Times are seconds on the caller's clock (injected, so runs replay).
//! The ledger is serializable: a validator saves it and loses nothing on a
//! restart.

use std::collections::BTreeMap;

use crate::Uid;

use super::{ExecutorWork, Measurements, MinerReport, ScoreError};

/// Default accounting interval: 10 minutes.
pub const INTERVAL_SECONDS: u64 = 600;

/// One job a validator gave a miner.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// The miner running it.
    pub miner: Uid,
    /// The validator that sent it.
    pub validator: Uid,
    /// Hardware class of the executor.
    pub class: String,
    /// When it started, seconds on the caller's clock.
    pub started: u64,
    /// End, seconds, once finished.
    pub finished: Option<u64>,
}

/// The ledger of one validator (or one subnet, keyed by validator).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobLedger {
    interval: u64,
    jobs: BTreeMap<String, Job>,
    declines: BTreeMap<Uid, u32>,
}

impl Default for JobLedger {
    fn default() -> JobLedger {
        JobLedger {
            interval: INTERVAL_SECONDS,
            jobs: BTreeMap::new(),
            declines: BTreeMap::new(),
        }
    }
}

/// Key of the accounting: (miner, validator, class).
pub type WorkKey = (Uid, Uid, String);

impl JobLedger {
    /// A ledger counting in intervals of `seconds` (at least 1).
    pub fn with_interval(seconds: u64) -> Result<JobLedger, ScoreError> {
        if seconds == 0 {
            return Err(ScoreError::Config(
                "the accounting interval must be at least 1 s".into(),
            ));
        }
        Ok(JobLedger {
            interval: seconds,
            ..JobLedger::default()
        })
    }

    /// Records job `id` starting; an id already known is refused.
    pub fn start(
        &mut self,
        id: &str,
        miner: Uid,
        validator: Uid,
        class: &str,
        at: u64,
    ) -> Result<(), ScoreError> {
        if self.jobs.contains_key(id) {
            return Err(ScoreError::Config(format!("job {id} is already recorded")));
        }
        self.jobs.insert(
            id.to_owned(),
            Job {
                miner,
                validator,
                class: class.to_owned(),
                started: at,
                finished: None,
            },
        );
        Ok(())
    }

    /// Records job `id` finishing at `at` (not before it started).
    pub fn finish(&mut self, id: &str, at: u64) -> Result<(), ScoreError> {
        let job = self
            .jobs
            .get_mut(id)
            .ok_or_else(|| ScoreError::Config(format!("job {id} was never started")))?;
        if at < job.started {
            return Err(ScoreError::Config(format!(
                "job {id} cannot finish at {at}, before it started at {}",
                job.started
            )));
        }
        job.finished = Some(at);
        Ok(())
    }

    /// Records that `miner` declined a job while advertising `free`
    /// executors: a penalty when `free > 0`, nothing otherwise (a busy
    /// miner may decline).
    pub fn decline(&mut self, miner: Uid, free: u32) {
        if free > 0 {
            *self.declines.entry(miner).or_default() += 1;
        }
    }

    /// Seconds each (miner, validator, class) has earned by `now`: whole
    /// intervals of running jobs, the full length of finished ones.
    pub fn worked(&self, now: u64) -> BTreeMap<WorkKey, f64> {
        let mut out: BTreeMap<WorkKey, f64> = BTreeMap::new();
        for j in self.jobs.values() {
            let secs = match j.finished {
                Some(end) => end - j.started,
                None => now.saturating_sub(j.started) / self.interval * self.interval,
            };
            *out.entry((j.miner, j.validator, j.class.clone()))
                .or_default() += secs as f64;
        }
        out
    }

    /// Penalised declines per miner.
    pub fn declines(&self) -> &BTreeMap<Uid, u32> {
        &self.declines
    }

    /// The measurements the `hardware-class` scorer reads: worked seconds
    /// per miner and class (summed over validators) and declined jobs.
    pub fn measurements(&self, now: u64) -> Measurements {
        let mut miners: BTreeMap<Uid, MinerReport> = BTreeMap::new();
        for ((miner, _, class), secs) in self.worked(now) {
            let r = miners.entry(miner).or_insert_with(|| MinerReport {
                uid: miner,
                ..MinerReport::default()
            });
            match r.executors.iter_mut().find(|e| e.class == class) {
                Some(e) => e.worked_seconds += secs,
                None => r.executors.push(ExecutorWork {
                    class,
                    worked_seconds: secs,
                    efficiency: None,
                }),
            }
        }
        for (miner, n) in &self.declines {
            miners
                .entry(*miner)
                .or_insert_with(|| MinerReport {
                    uid: *miner,
                    ..MinerReport::default()
                })
                .declined_jobs = *n;
        }
        Measurements {
            miners: miners.into_values().collect(),
        }
    }

    /// Closes an epoch once its measurements were scored: drops the jobs
    /// that finished by `now` and the declines counted so far; running jobs
    /// stay (their next whole intervals count in the next epoch).
    ///
    /// ```
    /// use akihabara_core::score::JobLedger;
    /// use akihabara_core::Uid;
    /// let mut l = JobLedger::default();
    /// l.start("a", Uid(1), Uid(0), "cpu", 10)?;
    /// l.finish("a", 15)?;
    /// l.decline(Uid(2), 1);
    /// l.settle(20);
    /// assert!(l.measurements(20).miners.is_empty());
    /// # Ok::<(), akihabara_core::score::ScoreError>(())
    /// ```
    pub fn settle(&mut self, now: u64) {
        self.jobs.retain(|_, j| j.finished.is_none_or(|f| f > now));
        self.declines.clear();
    }

    /// Drops finished jobs that ended before `before` (after they were scored).
    pub fn prune(&mut self, before: u64) {
        self.jobs
            .retain(|_, j| j.finished.is_none_or(|f| f >= before));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_jobs_earn_whole_intervals_finished_jobs_earn_all() {
        let mut l = JobLedger::default();
        l.start("a", Uid(1), Uid(9), "h100", 1_000).expect("start");
        l.start("b", Uid(1), Uid(9), "h100", 1_000).expect("start");
        l.start("c", Uid(2), Uid(8), "a100", 1_000).expect("start");
        assert!(l.start("a", Uid(1), Uid(9), "h100", 1_000).is_err());
        l.finish("b", 1_250).expect("finish");
        assert!(l.finish("zz", 1).is_err());
        assert!(l.finish("c", 999).is_err());
        let w = l.worked(1_000 + 1_799);
        assert_eq!(w[&(Uid(1), Uid(9), "h100".to_owned())], 1_200.0 + 250.0);
        assert_eq!(w[&(Uid(2), Uid(8), "a100".to_owned())], 1_200.0);
        assert_eq!(
            l.worked(1_000 + 599)[&(Uid(2), Uid(8), "a100".to_owned())],
            0.0
        );

        l.decline(Uid(3), 0);
        l.decline(Uid(3), 2);
        l.decline(Uid(3), 1);
        assert_eq!(l.declines()[&Uid(3)], 2);
        let m = l.measurements(1_000 + 600);
        assert_eq!(m.miners.len(), 3);
        assert_eq!(m.miners[2].declined_jobs, 2);
        m.validate().expect("valid");

        l.prune(1_300);
        assert_eq!(l.worked(1_600).len(), 2);
        let json = serde_json::to_string(&l).expect("json");
        assert_eq!(serde_json::from_str::<JobLedger>(&json).expect("back"), l);
    }
}
