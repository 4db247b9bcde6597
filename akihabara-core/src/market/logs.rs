//! A running job's output lines, kept by the miner for the validator that
//! submitted the job to read as they come (`JobLogs`), bounded per job and
//! in the number of jobs kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::executor::{LogLine, Stream};

/// Lines kept per job (the oldest go first).
pub const MAX_LINES: usize = 2000;
/// Bytes kept per job.
pub const MAX_BYTES: usize = 256 * 1024;
/// Lines in one answer.
pub const MAX_PER_REPLY: usize = 256;
/// Jobs whose logs are kept (the oldest ended ones go first).
pub const MAX_JOBS: usize = 256;

/// One output line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Its number, from 0, in the job's output.
    pub n: u64,
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// The line, as UTF-8 (invalid bytes replaced), at most 16 KiB.
    pub text: String,
}

/// The answer to a `JobLogs` call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsReply {
    /// Lines from the one asked for, at most [`MAX_PER_REPLY`].
    pub lines: Vec<LogEntry>,
    /// The number to ask from next.
    pub next: u64,
    /// Whether the job has ended (no line will be added).
    pub done: bool,
    /// Lines asked for that are no longer kept.
    pub dropped: u64,
    /// Whether the miner knows the job.
    pub known: bool,
}

#[derive(Debug, Default)]
struct Kept {
    lines: VecDeque<LogEntry>,
    next: u64,
    bytes: usize,
    done: bool,
    order: u64,
}

/// Jobs' logs, keyed as the job service keys jobs.
#[derive(Debug)]
pub struct Logs<K> {
    jobs: Mutex<HashMap<K, Kept>>,
    counter: Mutex<u64>,
}

impl<K: std::hash::Hash + Eq + Clone> Default for Logs<K> {
    fn default() -> Self {
        Logs {
            jobs: Mutex::new(HashMap::new()),
            counter: Mutex::new(0),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Logs<K> {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<K, Kept>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts keeping `key`'s lines (an ended job's log goes if there are
    /// too many).
    pub fn open(&self, key: &K) {
        let order = {
            let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
            *c += 1;
            *c
        };
        let mut jobs = self.jobs();
        if jobs.len() >= MAX_JOBS
            && let Some(oldest) = jobs
                .iter()
                .filter(|(_, k)| k.done)
                .min_by_key(|(_, k)| k.order)
                .map(|(key, _)| key.clone())
        {
            jobs.remove(&oldest);
        }
        jobs.insert(
            key.clone(),
            Kept {
                order,
                ..Kept::default()
            },
        );
    }

    /// Adds a line.
    pub fn push(&self, key: &K, line: LogLine) {
        let mut jobs = self.jobs();
        let Some(k) = jobs.get_mut(key) else { return };
        let mut text = String::from_utf8_lossy(&line.line).into_owned();
        if text.len() > 16 * 1024 {
            let mut end = 16 * 1024;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        k.bytes += text.len();
        k.lines.push_back(LogEntry {
            n: k.next,
            stream: line.stream,
            text,
        });
        k.next += 1;
        while k.lines.len() > MAX_LINES || k.bytes > MAX_BYTES {
            if let Some(old) = k.lines.pop_front() {
                k.bytes -= old.text.len();
            } else {
                break;
            }
        }
    }

    /// The job ended: no more lines.
    pub fn close(&self, key: &K) {
        if let Some(k) = self.jobs().get_mut(key) {
            k.done = true;
        }
    }

    /// Lines of `key` from number `from`.
    pub fn read(&self, key: &K, from: u64) -> LogsReply {
        let jobs = self.jobs();
        let Some(k) = jobs.get(key) else {
            return LogsReply {
                next: from,
                ..LogsReply::default()
            };
        };
        let first = k.lines.front().map_or(k.next, |l| l.n);
        let lines: Vec<LogEntry> = k
            .lines
            .iter()
            .filter(|l| l.n >= from)
            .take(MAX_PER_REPLY)
            .cloned()
            .collect();
        let next = lines
            .last()
            .map_or(from.max(first).min(k.next), |l| l.n + 1);
        LogsReply {
            dropped: first.saturating_sub(from),
            done: k.done && next >= k.next,
            lines,
            next,
            known: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> LogLine {
        LogLine {
            stream: Stream::Stdout,
            line: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn lines_are_read_in_pages_and_old_ones_dropped() {
        let logs: Logs<u32> = Logs::default();
        assert!(!logs.read(&1, 0).known);
        logs.open(&1);
        for i in 0..(MAX_LINES + 10) {
            logs.push(&1, line(&format!("line {i}")));
        }
        let r = logs.read(&1, 0);
        assert_eq!(
            (r.dropped, r.lines.len(), r.done),
            (10, MAX_PER_REPLY, false)
        );
        assert_eq!(r.lines[0].text, "line 10");
        assert_eq!(r.next, 10 + MAX_PER_REPLY as u64);
        logs.close(&1);
        let end = logs.read(&1, (MAX_LINES + 10) as u64);
        assert!(end.done && end.lines.is_empty());
        let last = logs.read(&1, (MAX_LINES + 9) as u64);
        assert_eq!(last.lines.len(), 1);
        assert!(last.done);
    }
}
