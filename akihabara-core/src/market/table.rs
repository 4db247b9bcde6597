//! The miner's table of validators' jobs: running ones, and ended ones kept
//! for `JobQuery` within a [`Retention`] budget.
//!
//! Every job a validator submits leaves an answer behind. Without a bound,
//! a validator that submits jobs for long enough grows the miner's memory
//! without end. Ended jobs are therefore kept up to a number per validator
//! (so one validator's flood evicts only its own oldest answers) and a number
//! in all (so many hotkeys cannot either); the oldest ended go first. Running
//! jobs are not counted: the fleet's executors bound them.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::AccountId;

use super::wire::JobReply;

/// How many ended jobs a miner keeps answers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Ended jobs kept in all. Default [`MAX_ENDED_JOBS`].
    pub max_ended: usize,
    /// Ended jobs kept per validator. Default [`MAX_ENDED_PER_VALIDATOR`].
    pub max_ended_per_validator: usize,
}

/// Default of [`Retention::max_ended`]: about 20 MB of answers at most.
pub const MAX_ENDED_JOBS: usize = 16_384;
/// Default of [`Retention::max_ended_per_validator`].
pub const MAX_ENDED_PER_VALIDATOR: usize = 1_024;

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_ended: MAX_ENDED_JOBS,
            max_ended_per_validator: MAX_ENDED_PER_VALIDATOR,
        }
    }
}

/// A job's id in its submitter's namespace.
pub(crate) type JobKey = (AccountId, String);

pub(crate) enum JobState {
    Running,
    Ended(Box<JobReply>),
}

struct Entry {
    state: JobState,
    /// Place in the end order, for an ended job.
    seq: Option<u64>,
}

/// Jobs by `(validator, job_id)`, ended ones bounded by a [`Retention`].
pub(crate) struct JobTable {
    entries: HashMap<JobKey, Entry>,
    /// Ended jobs, oldest first.
    order: BTreeMap<u64, JobKey>,
    /// Each validator's ended jobs, oldest first (their `seq`s).
    per_validator: HashMap<AccountId, VecDeque<u64>>,
    next_seq: u64,
    limits: Retention,
}

impl JobTable {
    pub(crate) fn new(limits: Retention) -> JobTable {
        JobTable {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            per_validator: HashMap::new(),
            next_seq: 0,
            limits,
        }
    }

    pub(crate) fn get(&self, key: &JobKey) -> Option<&JobState> {
        self.entries.get(key).map(|e| &e.state)
    }

    pub(crate) fn contains(&self, key: &JobKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Marks `key` running unless the table has it (then false).
    pub(crate) fn claim(&mut self, key: &JobKey) -> bool {
        if self.entries.contains_key(key) {
            return false;
        }
        self.entries.insert(
            key.clone(),
            Entry {
                state: JobState::Running,
                seq: None,
            },
        );
        true
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &JobKey) {
        if let Some(Entry { seq: Some(seq), .. }) = self.entries.remove(key) {
            self.unorder(&key.0, seq);
        }
    }

    /// Records `key`'s answer as its newest ended job, then evicts the
    /// oldest ended jobs beyond the budget.
    pub(crate) fn end(&mut self, key: JobKey, reply: JobReply) {
        if let Some(Entry { seq: Some(seq), .. }) = self.entries.get(&key) {
            let seq = *seq;
            self.unorder(&key.0, seq);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.per_validator.entry(key.0).or_default().push_back(seq);
        let validator = key.0;
        self.entries.insert(
            key,
            Entry {
                state: JobState::Ended(Box::new(reply)),
                seq: Some(seq),
            },
        );
        self.evict(Some(validator));
    }

    /// Ended jobs kept now.
    #[cfg(test)]
    pub(crate) fn ended(&self) -> usize {
        self.order.len()
    }

    fn evict(&mut self, validator: Option<AccountId>) {
        if let Some(v) = validator {
            while let Some(queue) = self.per_validator.get_mut(&v)
                && queue.len() > self.limits.max_ended_per_validator
            {
                let Some(seq) = queue.pop_front() else { break };
                if let Some(key) = self.order.remove(&seq) {
                    self.entries.remove(&key);
                }
            }
            if self.per_validator.get(&v).is_some_and(VecDeque::is_empty) {
                self.per_validator.remove(&v);
            }
        }
        while self.order.len() > self.limits.max_ended {
            let Some((seq, key)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&key);
            self.drop_seq(&key.0, seq);
        }
    }

    /// Takes `seq` out of the end order.
    fn unorder(&mut self, validator: &AccountId, seq: u64) {
        self.order.remove(&seq);
        self.drop_seq(validator, seq);
    }

    fn drop_seq(&mut self, validator: &AccountId, seq: u64) {
        if let Some(queue) = self.per_validator.get_mut(validator) {
            // Usually the front (the validator's oldest); any place otherwise.
            if queue.front() == Some(&seq) {
                queue.pop_front();
            } else if let Some(i) = queue.iter().position(|s| *s == seq) {
                queue.remove(i);
            }
            if queue.is_empty() {
                self.per_validator.remove(validator);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u8) -> AccountId {
        AccountId::from_bytes([n; 32])
    }

    fn k(n: u8, id: &str) -> JobKey {
        (v(n), id.to_owned())
    }

    fn done(table: &mut JobTable, key: JobKey) {
        table.end(key, JobReply::Unknown);
    }

    fn kept(table: &JobTable, n: u8, ids: &[&str]) -> Vec<bool> {
        ids.iter().map(|id| table.contains(&k(n, id))).collect()
    }

    #[test]
    fn one_validators_flood_evicts_only_its_own_oldest() {
        let mut t = JobTable::new(Retention {
            max_ended: 10,
            max_ended_per_validator: 3,
        });
        done(&mut t, k(2, "b0"));
        for i in 0..100 {
            done(&mut t, k(1, &format!("a{i}")));
        }
        assert_eq!(
            kept(&t, 1, &["a96", "a97", "a98", "a99"]),
            [false, true, true, true]
        );
        assert!(t.contains(&k(2, "b0")));
        assert_eq!(t.ended(), 4);
        // Running jobs are not counted, and never evicted.
        assert!(t.claim(&k(1, "run")));
        for i in 100..110 {
            done(&mut t, k(1, &format!("a{i}")));
        }
        assert!(matches!(t.get(&k(1, "run")), Some(JobState::Running)));
        assert!(!t.claim(&k(1, "run")));
    }

    #[test]
    fn many_validators_are_bounded_in_all_oldest_first() {
        let mut t = JobTable::new(Retention {
            max_ended: 5,
            max_ended_per_validator: 3,
        });
        for n in 0..8u8 {
            done(&mut t, k(n, "x"));
        }
        assert_eq!(t.ended(), 5);
        let kept: Vec<bool> = (0..8u8).map(|n| t.contains(&k(n, "x"))).collect();
        assert_eq!(kept, [false, false, false, true, true, true, true, true]);
        // Nothing is left behind for an evicted validator.
        assert_eq!(t.per_validator.len(), 5);
        assert_eq!(t.entries.len(), 5);
    }

    #[test]
    fn ending_again_makes_a_job_the_newest_and_removal_unorders_it() {
        let mut t = JobTable::new(Retention {
            max_ended: 100,
            max_ended_per_validator: 2,
        });
        done(&mut t, k(1, "a"));
        done(&mut t, k(1, "b"));
        // `a` ends again (an accepted receipt, then its finished one).
        done(&mut t, k(1, "a"));
        done(&mut t, k(1, "c"));
        assert_eq!(kept(&t, 1, &["a", "b", "c"]), [true, false, true]);
        t.remove(&k(1, "a"));
        t.remove(&k(1, "c"));
        assert_eq!(t.ended(), 0);
        assert!(t.per_validator.is_empty());
        assert!(t.entries.is_empty());
    }
}
