//! The supervisor shared by the backends: runs one child process (the job
//! itself, or the `ssh` client carrying it) in its own process group.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::capture::capture;
use super::sys::{kill_group, kill_job_tree, kill_user, new_session, pipe_inode};
use super::{ExecutorError, JobHandle, JobStatus, LogLine, Outcome, Stream};

/// Lines buffered for a slow log reader before lines are dropped.
const LOG_BUFFER: usize = 4096;

/// How long the output readers may take to reach the end of the job's pipes
/// once every process of the job has been killed.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts `cmd` and supervises it: timeout, cancellation, capture. The job
/// leads a session of its own. When it ends, however it ends, its process
/// group, every process of its session and every process anywhere that
/// still holds its output pipes (a `setsid` daemon it left behind) are
/// killed, so nothing it started outlives it or keeps it "running". `keep_stdin` keeps a pipe open to the child's stdin until then
/// (the ssh backend's remote watchdog reads it). `map_status` rewrites the
/// child's status (the ssh backend reads a remote 128 + N as signal N).
pub(crate) fn spawn(
    mut cmd: tokio::process::Command,
    program: &str,
    timeout: std::time::Duration,
    cap: usize,
    keep_stdin: bool,
    map_status: fn(JobStatus) -> JobStatus,
    job_user: Option<u32>,
) -> Result<JobHandle, ExecutorError> {
    new_session(&mut cmd);
    cmd.stdin(if keep_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| ExecutorError::Spawn {
        program: program.to_owned(),
        reason: e.to_string(),
    })?;
    let pgid = child.id();
    let stdin = child.stdin.take();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ExecutorError::Failed(
            "the child's output pipes were not created".into(),
        ));
    };
    let pipes: Vec<u64> = {
        use std::os::fd::AsRawFd as _;
        [pipe_inode(out.as_raw_fd()), pipe_inode(err.as_raw_fd())]
            .into_iter()
            .flatten()
            .collect()
    };
    let (log_tx, log_rx) = tokio::sync::mpsc::channel::<LogLine>(LOG_BUFFER);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let dropped = Arc::new(AtomicU64::new(0));
    let out_task = tokio::spawn({
        let (tx, dropped) = (log_tx.clone(), dropped.clone());
        async move { capture(out, Stream::Stdout, cap, tx, &dropped).await }
    });
    let err_task = tokio::spawn({
        let dropped = dropped.clone();
        async move { capture(err, Stream::Stderr, cap, log_tx, &dropped).await }
    });
    tokio::spawn(async move {
        let kill = move || async move {
            if let Some(pg) = pgid {
                // The group may already be gone: nothing to report then.
                let _ = kill_group(pg, libc::SIGKILL);
                // A /proc walk: off the async threads.
                let _ = tokio::task::spawn_blocking(move || {
                    kill_job_tree(pg, &pipes);
                    if let Some(uid) = job_user {
                        kill_user(uid);
                    }
                })
                .await;
            }
        };
        // A handle dropped without cancelling lets the job run its course.
        let cancelled = async {
            if cancel_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let ended = tokio::select! {
            status = child.wait() => Ok(status),
            () = tokio::time::sleep(timeout) => Err(JobStatus::TimedOut),
            () = cancelled => Err(JobStatus::Cancelled),
        };
        kill().await;
        drop(stdin);
        let status = match ended {
            Ok(Ok(s)) => match (s.code(), s.signal()) {
                (Some(code), _) => JobStatus::Exited { code },
                (None, Some(signal)) => JobStatus::Signaled { signal },
                (None, None) => JobStatus::Exited { code: -1 },
            },
            Ok(Err(e)) => {
                let _ = done_tx.send(Err(ExecutorError::io("waiting for the job", e)));
                return;
            }
            Err(ours) => {
                let _ = child.wait().await;
                ours
            }
        };
        let duration = started.elapsed();
        let drained = tokio::time::timeout(DRAIN, async { (out_task.await, err_task.await) }).await;
        let (stdout, stderr) = match drained {
            Ok((Ok(o), Ok(e))) => (o, e),
            Ok(_) => {
                let _ = done_tx.send(Err(ExecutorError::Failed("an output reader failed".into())));
                return;
            }
            Err(_) => {
                let _ = done_tx.send(Err(ExecutorError::Failed(format!(
                    "the job's output stayed open {} s after every process of the job was killed",
                    DRAIN.as_secs()
                ))));
                return;
            }
        };
        let _ = done_tx.send(Ok(Outcome {
            status: map_status(status),
            duration,
            stdout,
            stderr,
            dropped_log_lines: dropped.load(Ordering::Relaxed),
        }));
    });
    Ok(JobHandle {
        logs: log_rx,
        done: done_rx,
        cancel: Some(cancel_tx),
    })
}
