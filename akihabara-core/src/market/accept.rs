//! Reference [`AcceptPolicy`]s a miner operator configures: a limit per
//! hardware class ([`ClassLimits`]), an operator's script
//! ([`ScriptPolicy`]), and both at once ([`AllOf`]).
//!
//! A [`JobRequest`] carries no price: validators pay in weights, not per
//! job. What a job costs the miner is its class and its length
//! (`timeout_s`, the wall-clock limit it may use), so the reference "price"
//! is the longest job the operator sells each class for.
//!
//! ```
//! use std::time::Duration;
//! use akihabara_core::market::accept::ClassLimits;
//! use akihabara_core::market::jobs::{AcceptPolicy, JobRequest, Refusal};
//! let limits = ClassLimits::new().max_duration("h100", Duration::from_secs(600));
//! let job = |class: &str, timeout_s| JobRequest {
//!     job_id: "j".into(),
//!     validator: akihabara_core::AccountId::from_bytes([1; 32]),
//!     hardware_class: class.into(),
//!     timeout_s,
//!     command: vec!["true".into()],
//!     requirements: Default::default(),
//!     output_dir: None,
//!     image: None,
//!     env: Default::default(),
//!     inputs: vec![],
//!     outputs: vec![],
//!     issued_at_ms: 0,
//!     signature: String::new(),
//! };
//! assert_eq!(limits.refuse(&job("h100", 600)), None);
//! assert_eq!(
//!     limits.refuse(&job("h100", 601)),
//!     Some(Refusal::TooLong { class: "h100".into(), asked_s: 601, max_s: 600 })
//! );
//! assert_eq!(limits.refuse(&job("cpu", 86_400)), None);
//! ```

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::jobs::{AcceptPolicy, JobRequest, Refusal};

/// The longest job the operator accepts per hardware class. Classes not
/// listed take any length, unless [`ClassLimits::only_listed`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassLimits {
    max: BTreeMap<String, u64>,
    only_listed: bool,
}

impl ClassLimits {
    /// No limit on any class.
    pub fn new() -> ClassLimits {
        ClassLimits::default()
    }

    /// Jobs of `class` may ask for at most `max` (whole seconds, rounded down).
    pub fn max_duration(mut self, class: impl Into<String>, max: Duration) -> ClassLimits {
        self.max.insert(class.into(), max.as_secs());
        self
    }

    /// Declines jobs of a class that has no limit set.
    pub fn only_listed(mut self, yes: bool) -> ClassLimits {
        self.only_listed = yes;
        self
    }
}

impl AcceptPolicy for ClassLimits {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        let class = &request.hardware_class;
        match self.max.get(class) {
            Some(&max_s) if request.timeout_s > max_s => Some(Refusal::TooLong {
                class: class.clone(),
                asked_s: request.timeout_s,
                max_s,
            }),
            Some(_) => None,
            None if self.only_listed => Some(Refusal::ClassNotOffered {
                class: class.clone(),
            }),
            None => None,
        }
    }
}

/// Asks an operator's executable: the request as JSON on its stdin, exit
/// status 0 accepts, anything else declines with the first line of its
/// stderr as the reason.
///
/// The script runs in a process group of its own, with a deadline
/// ([`ScriptPolicy::timeout`], 5 s by default) after which the whole group
/// is killed, and at most [`ScriptPolicy::max_output`] bytes of its stderr
/// are kept. A script that cannot start, hangs or is killed declines the
/// job with [`Refusal::ScriptFailed`]: nothing is accepted by default.
///
/// ```no_run
/// use std::time::Duration;
/// use akihabara_core::market::accept::ScriptPolicy;
/// let p = ScriptPolicy::new("/etc/akihabara/accept.sh").timeout(Duration::from_secs(2));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptPolicy {
    program: PathBuf,
    timeout: Duration,
    max_output: usize,
}

impl ScriptPolicy {
    /// Runs `program` (no arguments) for each job.
    pub fn new(program: impl Into<PathBuf>) -> ScriptPolicy {
        ScriptPolicy {
            program: program.into(),
            timeout: Duration::from_secs(5),
            max_output: 4096,
        }
    }

    /// How long the script may take (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> ScriptPolicy {
        self.timeout = timeout;
        self
    }

    /// Bytes of stderr kept (default 4096); the rest is read and dropped.
    pub fn max_output(mut self, bytes: usize) -> ScriptPolicy {
        self.max_output = bytes;
        self
    }

    /// The executable.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn run(&self, input: Vec<u8>) -> Result<Option<String>, String> {
        let mut child = Command::new(&self.program)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let pgid = child.id();
        let deadline = Instant::now() + self.timeout;
        // Writer and reader on threads of their own: a script that reads
        // nothing, or writes a lot, cannot block the decision past the deadline.
        if let Some(mut stdin) = child.stdin.take() {
            std::thread::spawn(move || {
                // A script that exits without reading its input is its business.
                let _ = stdin.write_all(&input);
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(mut stderr) = child.stderr.take() {
            let cap = self.max_output;
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let _ = stderr.by_ref().take(cap as u64).read_to_end(&mut kept);
                // Drain the rest, so the script never blocks on a full pipe.
                let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                let _ = tx.send(kept);
            });
        }
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = crate::executor::sys::kill_group(pgid, libc::SIGKILL);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not answer within {} s and was killed",
                        self.program.display(),
                        self.timeout.as_secs_f64()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    let _ = crate::executor::sys::kill_group(pgid, libc::SIGKILL);
                    let _ = child.kill();
                    return Err(format!("waiting for {}: {e}", self.program.display()));
                }
            }
        };
        // Whatever it left running dies with it.
        let _ = crate::executor::sys::kill_group(pgid, libc::SIGKILL);
        if status.success() {
            return Ok(None);
        }
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let stderr = rx.recv_timeout(grace).unwrap_or_default();
        let first = String::from_utf8_lossy(&stderr)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned);
        Ok(Some(first.unwrap_or_else(|| match status.code() {
            Some(code) => format!("the accept script exited with status {code}"),
            None => "the accept script was killed by a signal".to_owned(),
        })))
    }
}

impl AcceptPolicy for ScriptPolicy {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        let input = match serde_json::to_vec(request) {
            Ok(v) => v,
            Err(e) => return Some(Refusal::ScriptFailed(format!("cannot encode the job: {e}"))),
        };
        match self.run(input) {
            Ok(None) => None,
            Ok(Some(reason)) => Some(Refusal::Script(reason)),
            Err(why) => Some(Refusal::ScriptFailed(why)),
        }
    }
}

/// Every policy must accept; the first refusal wins.
#[derive(Clone, Default)]
pub struct AllOf(pub Vec<Arc<dyn AcceptPolicy>>);

impl std::fmt::Debug for AllOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AllOf({} policies)", self.0.len())
    }
}

impl AcceptPolicy for AllOf {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        self.0.iter().find_map(|p| p.refuse(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::Keypair;

    fn job(class: &str, timeout_s: u64) -> JobRequest {
        JobRequest {
            job_id: "job-1".into(),
            validator: Keypair::from_uri("//validator1").expect("key").account(),
            hardware_class: class.into(),
            timeout_s,
            command: vec!["echo".into(), "hi".into()],
            requirements: Default::default(),
            output_dir: None,
            image: None,
            env: Default::default(),
            inputs: vec![],
            outputs: vec![],
            issued_at_ms: 1,
            signature: String::new(),
        }
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join("accept.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    #[test]
    fn class_limits_decline_long_jobs_and_unlisted_classes() {
        let l = ClassLimits::new().max_duration("h100", Duration::from_secs(600));
        assert_eq!(l.refuse(&job("h100", 600)), None);
        assert_eq!(
            l.refuse(&job("h100", 601)),
            Some(Refusal::TooLong {
                class: "h100".into(),
                asked_s: 601,
                max_s: 600
            })
        );
        assert_eq!(
            l.refuse(&job("h100", 601)).map(|r| r.to_string()),
            Some("a h100 job may run at most 600 s; this one asks for 601 s".into())
        );
        assert_eq!(l.refuse(&job("cpu", 1_000_000)), None);
        let only = l.only_listed(true);
        assert_eq!(
            only.refuse(&job("cpu", 1)),
            Some(Refusal::ClassNotOffered {
                class: "cpu".into()
            })
        );
    }

    #[test]
    fn a_script_accepts_declines_and_reads_the_request() {
        let dir = tempfile::tempdir().expect("dir");
        // Accepts cpu jobs only, by the request on stdin.
        let p = script(
            dir.path(),
            r#"grep -q '"hardware_class":"cpu"' || { echo "only cpu here" >&2; echo second >&2; exit 3; }"#,
        );
        let s = ScriptPolicy::new(&p);
        assert_eq!(s.refuse(&job("cpu", 10)), None);
        assert_eq!(
            s.refuse(&job("h100", 10)),
            Some(Refusal::Script("only cpu here".into()))
        );
        let silent = script(dir.path(), "exit 1");
        assert_eq!(
            ScriptPolicy::new(&silent).refuse(&job("cpu", 10)),
            Some(Refusal::Script(
                "the accept script exited with status 1".into()
            ))
        );
    }

    #[test]
    fn a_script_that_hangs_or_cannot_start_declines() {
        let dir = tempfile::tempdir().expect("dir");
        let p = script(dir.path(), "sleep 30 & sleep 30");
        let t = Instant::now();
        let r = ScriptPolicy::new(&p)
            .timeout(Duration::from_millis(300))
            .refuse(&job("cpu", 10));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(
            r,
            Some(Refusal::ScriptFailed(format!(
                "{} did not answer within 0.3 s and was killed",
                p.display()
            )))
        );
        let missing = dir.path().join("missing.sh");
        let r = ScriptPolicy::new(&missing).refuse(&job("cpu", 10));
        assert_eq!(
            r,
            Some(Refusal::ScriptFailed(format!(
                "cannot start {}: No such file or directory (os error 2)",
                missing.display()
            )))
        );
        // A flood of stderr is capped, and its first line is the reason.
        let loud = script(dir.path(), "echo flood >&2; yes >&2 & sleep 0.2; exit 2");
        let r = ScriptPolicy::new(&loud)
            .max_output(64)
            .refuse(&job("cpu", 10));
        assert_eq!(r, Some(Refusal::Script("flood".into())));
    }

    #[test]
    fn all_of_takes_the_first_refusal() {
        let both = AllOf(vec![
            Arc::new(ClassLimits::new().max_duration("cpu", Duration::from_secs(5))),
            Arc::new(ClassLimits::new().only_listed(true)),
        ]);
        assert!(matches!(
            both.refuse(&job("cpu", 6)),
            Some(Refusal::TooLong { .. })
        ));
        assert_eq!(
            both.refuse(&job("cpu", 5)),
            Some(Refusal::ClassNotOffered {
                class: "cpu".into()
            })
        );
    }
}
