//! Cross-validation: a share of finished jobs, drawn with the validator's
//! own randomness after the miner has reported (so a miner cannot know
//! which of its jobs will be checked), is run again on a trusted executor.
//! A different result is a penalty, kept with both results as evidence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};

use crate::executor::{ExecutorBackend, JobSpec, JobStatus};
use crate::market::volumes::{VolumePolicy, download, open_output, outputs_digest};

use super::GatewayError;
use super::jobs::{CrossCheck, Evidence, OrganicJob};
use super::service::Gateway;

/// The share of jobs checked unless configured (as ComputeHorde checks
/// about 1 to 2 %).
pub const DEFAULT_SHARE: f64 = 0.02;

/// Re-runs drawn jobs on a trusted executor.
pub struct CrossChecker {
    trusted: Arc<dyn ExecutorBackend>,
    volumes: VolumePolicy,
    share: f64,
    rng: Mutex<ChaCha20Rng>,
    /// Checks waiting or running: job id, and the client that owns it.
    running: Mutex<BTreeMap<String, String>>,
    one_at_a_time: tokio::sync::Semaphore,
}

/// Checks waiting for (or on) the trusted executor at once.
pub const MAX_WAITING_CHECKS: usize = 32;

/// Checks of one client's jobs waiting for (or on) the trusted executor at
/// once: a client whose long jobs are drawn (and, when a trusted run
/// differs, run twice) leaves room for the others' checks.
pub const MAX_WAITING_CHECKS_PER_CLIENT: usize = 8;

impl std::fmt::Debug for CrossChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossChecker")
            .field("trusted", &self.trusted.kind())
            .field("share", &self.share)
            .finish_non_exhaustive()
    }
}

impl CrossChecker {
    /// Checks `share` (0 to 1) of the deterministic jobs on `trusted`, drawn
    /// from a generator seeded by the operating system.
    pub fn new(
        trusted: Arc<dyn ExecutorBackend>,
        share: f64,
    ) -> Result<CrossChecker, GatewayError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(GatewayError::Setting(format!(
                "a cross-check share of {share} is not in [0, 1]"
            )));
        }
        let seed = crate::gpu::Seed::random().map_err(GatewayError::Randomness)?;
        Ok(CrossChecker {
            trusted,
            volumes: VolumePolicy::default(),
            share,
            rng: Mutex::new(ChaCha20Rng::from_seed(seed.0)),
            running: Mutex::new(BTreeMap::new()),
            one_at_a_time: tokio::sync::Semaphore::new(1),
        })
    }

    /// What the trusted run's input downloads may be (whether their URLs may
    /// reach private addresses, as the miners were allowed).
    pub fn volumes(self, volumes: VolumePolicy) -> CrossChecker {
        CrossChecker { volumes, ..self }
    }

    /// Draws from a generator seeded with `seed`, so a simulation replays.
    pub fn seeded(self, seed: u64) -> CrossChecker {
        CrossChecker {
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
            ..self
        }
    }

    /// Whether the next finished job is checked.
    pub fn draw(&self) -> bool {
        let x = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_u64();
        ((x >> 11) as f64 / (1u64 << 53) as f64) < self.share
    }

    /// Starts checking `job` (once, however often it is asked), one check at
    /// a time. At most [`MAX_WAITING_CHECKS`] wait for the trusted executor,
    /// [`MAX_WAITING_CHECKS_PER_CLIENT`] of one client's jobs: a job drawn
    /// beyond them is marked unverifiable at once (clients whose long jobs
    /// are drawn cannot grow the queue without end, nor fill it).
    pub fn start(self: &Arc<Self>, gateway: Arc<Gateway>, job: OrganicJob) {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(&job.id) {
                return;
            }
            let theirs = running.values().filter(|o| **o == job.owner).count();
            let full = if running.len() >= MAX_WAITING_CHECKS {
                Some(format!(
                    "not checked: {MAX_WAITING_CHECKS} checks were already waiting for the \
                     trusted executor"
                ))
            } else if theirs >= MAX_WAITING_CHECKS_PER_CLIENT {
                Some(format!(
                    "not checked: {MAX_WAITING_CHECKS_PER_CLIENT} checks of this client's jobs \
                     were already waiting for the trusted executor"
                ))
            } else {
                None
            };
            if let Some(reason) = full {
                drop(running);
                let id = job.id;
                tokio::spawn(async move {
                    let marked = gateway
                        .transition(&id, |j| {
                            // Only a check still waiting: never a verdict.
                            if j.cross_check != Some(CrossCheck::Pending) {
                                return false;
                            }
                            j.cross_check = Some(CrossCheck::Unverifiable { reason });
                            true
                        })
                        .await;
                    if let Err(e) = marked {
                        tracing::warn!(job = %id, error = %e, "marking a job unverifiable");
                    }
                });
                return;
            }
            running.insert(job.id.clone(), job.owner.clone());
        }
        let me = self.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            if let Err(e) = me.check(&gateway, job).await {
                tracing::warn!(job = %id, error = %e, "cross-checking a job");
            }
            me.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    /// Whether a check is running now.
    pub fn busy(&self) -> bool {
        !self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    async fn check(&self, gateway: &Gateway, job: OrganicJob) -> Result<(), GatewayError> {
        let _one = self.one_at_a_time.acquire().await;
        let verdict = self.verdict(&job).await;
        let now = gateway.now_ms();
        if let CrossCheck::Mismatch {
            detail,
            trusted_stdout_sha256,
            trusted_exit_code,
        } = &verdict
            && let Some(miner) = job.miner
        {
            tracing::warn!(
                job = %job.id,
                %miner,
                reason = %detail,
                "cross-check: the miner's result differs from the trusted executor's; penalised"
            );
            gateway.book().penalise(&Evidence {
                job_id: job.id.clone(),
                miner,
                reason: detail.clone(),
                miner_stdout_sha256: job.stdout_sha256.clone(),
                miner_exit_code: job.exit_code,
                trusted_stdout_sha256: trusted_stdout_sha256.clone(),
                trusted_exit_code: *trusted_exit_code,
                receipts: job.receipts.clone(),
                at_ms: now,
            })?;
        }
        gateway
            .transition(&job.id, |j| {
                j.cross_check = Some(verdict);
                true
            })
            .await?;
        Ok(())
    }

    /// A fresh work directory with the job's inputs in it.
    async fn prepare(&self, job: &OrganicJob) -> Result<tempfile::TempDir, String> {
        let dir = tempfile::Builder::new()
            .prefix("akihabara-cross-check-")
            .tempdir()
            .map_err(|e| format!("no work directory for the trusted run: {e}"))?;
        for (i, input) in job.order.inputs.iter().enumerate() {
            download(input, i, dir.path(), &self.volumes)
                .await
                .map_err(|e| format!("fetching the inputs again: {e}"))?;
        }
        Ok(dir)
    }

    /// Runs `job` on the trusted executor and compares (a mismatch is
    /// confirmed by a second trusted run).
    pub(super) async fn verdict(&self, job: &OrganicJob) -> CrossCheck {
        // An input without a digest is whatever its URL served: the client
        // could serve the miner one file and this check another.
        if let Some(input) = job.order.inputs.iter().find(|i| i.sha256.is_none()) {
            return CrossCheck::Unverifiable {
                reason: format!(
                    "input {} has no sha256: the file the miner fetched may not be the one a \
                     trusted run would fetch",
                    input.path
                ),
            };
        }
        let first = match self.trusted_run(job).await {
            Ok(r) => r,
            Err(reason) => return CrossCheck::Unverifiable { reason },
        };
        let differs = first.differences(job);
        if differs.is_empty() {
            return CrossCheck::Matched;
        }
        // Before blaming the miner: a job whose own trusted runs differ is
        // not deterministic, whatever its order says (a client could
        // otherwise get honest miners penalised with `date +%N`).
        match self.trusted_run(job).await {
            Err(reason) => return CrossCheck::Unverifiable { reason },
            Ok(second) if second != first => {
                return CrossCheck::Unverifiable {
                    reason: format!(
                        "the job is not deterministic: two trusted runs differ ({})",
                        first.differences_from(&second).join("; ")
                    ),
                };
            }
            Ok(_) => {}
        }
        CrossCheck::Mismatch {
            detail: differs.join("; "),
            trusted_stdout_sha256: first.stdout_sha256,
            trusted_exit_code: first.exit_code,
        }
    }

    /// Runs `job` once on the trusted executor, in a fresh work directory
    /// when it has files; the reason when that run cannot decide.
    async fn trusted_run(&self, job: &OrganicJob) -> Result<TrustedRun, String> {
        let mut parts = job.order.command.iter().cloned();
        let mut spec = JobSpec::command(
            parts.next().unwrap_or_default(),
            parts,
            Duration::from_secs(job.order.timeout_s),
        );
        spec.image = job.order.image.clone();
        spec.env = job.order.env.clone();
        // A job with files runs in a work directory of its own, with its
        // inputs fetched again; its outputs are digested, never uploaded
        // (the client's URLs hold the miner's).
        let work = if job.order.inputs.is_empty() && job.order.outputs.is_empty() {
            None
        } else {
            Some(self.prepare(job).await?)
        };
        spec.volume = work.as_ref().map(|d| d.path().to_path_buf());
        let outcome = match self.trusted.run(spec).await {
            Ok(handle) => handle.wait().await,
            Err(e) => Err(e),
        };
        let outputs = match &work {
            Some(d) => {
                let outputs = job.order.outputs.clone();
                let (dir, max) = (d.path().to_path_buf(), self.volumes.max_output_bytes);
                // Off the async threads: hashing may read up to `max` bytes.
                Some(
                    tokio::task::spawn_blocking(move || outputs_of(&outputs, &dir, max))
                        .await
                        .unwrap_or_else(|e| Err(format!("hashing the outputs failed: {e}"))),
                )
            }
            None => None,
        };
        let outcome = outcome.map_err(|e| format!("the trusted executor could not run it: {e}"))?;
        let JobStatus::Exited { code } = outcome.status else {
            return Err(format!("the trusted run ended {:?}", outcome.status));
        };
        Ok(TrustedRun {
            exit_code: Some(code),
            stdout_sha256: outcome.stdout.sha256,
            outputs,
        })
    }
}

/// What one trusted run of a job came to.
#[derive(Debug, PartialEq)]
struct TrustedRun {
    exit_code: Option<i32>,
    stdout_sha256: String,
    /// The outputs' digest (or why there is none); `None` for a job
    /// without files.
    outputs: Option<Result<String, String>>,
}

impl TrustedRun {
    /// How the miner's result of `job` differs from this run, in words.
    fn differences(&self, job: &OrganicJob) -> Vec<String> {
        let mut differs = Vec::new();
        if job.exit_code != self.exit_code {
            differs.push(format!(
                "exit code {:?}, trusted {:?}",
                job.exit_code, self.exit_code
            ));
        }
        if job.stdout_sha256.as_deref() != Some(self.stdout_sha256.as_str()) {
            differs.push(format!(
                "stdout SHA-256 {}, trusted {}",
                job.stdout_sha256.as_deref().unwrap_or("none"),
                self.stdout_sha256
            ));
        }
        match &self.outputs {
            Some(Err(why)) if job.output_sha256.is_some() => {
                differs.push(format!("the trusted run left no such outputs ({why})"));
            }
            Some(Ok(digest)) if job.output_sha256.as_deref() != Some(digest.as_str()) => {
                differs.push(format!(
                    "output digest {}, trusted {digest}",
                    job.output_sha256.as_deref().unwrap_or("none")
                ));
            }
            _ => {}
        }
        differs
    }

    /// How another trusted run differs from this one, in words.
    fn differences_from(&self, other: &TrustedRun) -> Vec<String> {
        let mut differs = Vec::new();
        if self.exit_code != other.exit_code {
            differs.push(format!(
                "exit code {:?}, then {:?}",
                self.exit_code, other.exit_code
            ));
        }
        if self.stdout_sha256 != other.stdout_sha256 {
            differs.push(format!(
                "stdout SHA-256 {}, then {}",
                self.stdout_sha256, other.stdout_sha256
            ));
        }
        if self.outputs != other.outputs {
            differs.push("the outputs differ".into());
        }
        differs
    }
}

/// The outputs digest of what a trusted run left in `dir`, as a miner signs
/// it ([`outputs_digest`]). It opens them as a miner's upload does
/// ([`open_output`]: only regular files of at most `max` bytes; a job can
/// leave a FIFO, which would block a plain open, or a huge sparse file), and
/// hashes them as a stream.
fn outputs_of(
    outputs: &[crate::market::volumes::OutputFile],
    dir: &std::path::Path,
    max: u64,
) -> Result<String, String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut files = Vec::new();
    for output in outputs {
        let named = |e: String| format!("{}: {e}", output.path);
        let (file, _) = open_output(dir, &output.path, max).map_err(named)?;
        let mut hasher = sha2::Sha256::new();
        let read = std::io::copy(&mut file.take(max + 1), &mut hasher)
            .map_err(|e| named(e.to_string()))?;
        if read > max {
            return Err(named(format!("grew past the {max} bytes an output may be")));
        }
        files.push((output.path.clone(), hex::encode(hasher.finalize())));
    }
    Ok(outputs_digest(&files))
}

#[cfg(test)]
mod tests {
    use super::outputs_of;
    use crate::market::volumes::{OutputFile, outputs_digest};

    fn out(path: &str) -> Vec<OutputFile> {
        vec![OutputFile {
            path: path.into(),
            put_url: "https://127.0.0.1/unused".into(),
        }]
    }

    /// A trusted run's outputs are hashed only when they are regular files
    /// within the bound: a FIFO would block the open forever, and a huge file
    /// would be read for as long as it is.
    #[cfg(unix)]
    #[test]
    fn trusted_outputs_are_regular_files_within_the_bound() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ten"), b"0123456789").expect("write");
        let digest = outputs_of(&out("ten"), dir.path(), 10).expect("within the bound");
        assert_eq!(
            digest,
            outputs_digest(&[(
                "ten".into(),
                hex::encode(sha2::Sha256::digest(b"0123456789"))
            )])
        );
        assert_eq!(
            outputs_of(&out("ten"), dir.path(), 9),
            Err("ten: 10 bytes, more than the 9 an output may be".into())
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        assert_eq!(
            outputs_of(&out("fifo"), dir.path(), 10),
            Err("fifo: not a regular file".into())
        );
        let e = outputs_of(&out("missing"), dir.path(), 10).expect_err("missing");
        assert!(e.starts_with("missing: the job left no such file ("), "{e}");
    }
}
