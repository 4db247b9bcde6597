//! Capped capture of one output stream: hashed in full, kept up to a cap.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{LogLine, Stream};

/// What was kept of one output stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    /// Bytes the job wrote.
    pub bytes: u64,
    /// SHA-256 of all of them, hex.
    pub sha256: String,
    /// The first bytes, up to the cap (invalid UTF-8 replaced).
    pub text: String,
    /// Whether more was written than kept.
    pub truncated: bool,
}

impl Captured {
    /// What a capture keeps of `output`: all of it hashed, its first `cap`
    /// bytes as text. For backends that produce output in memory.
    pub fn of(output: &[u8], cap: usize) -> Captured {
        let kept = &output[..output.len().min(cap)];
        Captured {
            bytes: output.len() as u64,
            sha256: hex::encode(Sha256::digest(output)),
            text: String::from_utf8_lossy(kept).into_owned(),
            truncated: output.len() > cap,
        }
    }
}

/// The longest log line sent; longer lines are split.
const MAX_LINE: usize = 64 * 1024;

/// A stream being captured: fed chunk by chunk, it hashes everything,
/// keeps `cap` bytes, and sends lines to `logs` without ever waiting for
/// their reader (a full channel drops the line and counts it in `dropped`).
pub(crate) struct Capture<'a> {
    stream: Stream,
    cap: usize,
    logs: tokio::sync::mpsc::Sender<LogLine>,
    dropped: &'a std::sync::atomic::AtomicU64,
    hash: Sha256,
    kept: Vec<u8>,
    total: u64,
    line: Vec<u8>,
}

impl<'a> Capture<'a> {
    pub(crate) fn new(
        stream: Stream,
        cap: usize,
        logs: tokio::sync::mpsc::Sender<LogLine>,
        dropped: &'a std::sync::atomic::AtomicU64,
    ) -> Capture<'a> {
        Capture {
            stream,
            cap,
            logs,
            dropped,
            hash: Sha256::new(),
            kept: Vec::with_capacity(cap.min(64 * 1024)),
            total: 0,
            line: Vec::new(),
        }
    }

    fn send(&mut self) {
        let l = LogLine {
            stream: self.stream,
            line: std::mem::take(&mut self.line),
        };
        if self.logs.try_send(l).is_err() && !self.logs.is_closed() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.hash.update(chunk);
        self.total += chunk.len() as u64;
        if self.kept.len() < self.cap {
            let room = self.cap - self.kept.len();
            self.kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
        for &b in chunk {
            if b == b'\n' {
                self.send();
            } else {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.send();
                }
            }
        }
    }

    pub(crate) fn finish(mut self) -> Captured {
        if !self.line.is_empty() {
            self.send();
        }
        Captured {
            bytes: self.total,
            sha256: hex::encode(self.hash.finalize()),
            text: String::from_utf8_lossy(&self.kept).into_owned(),
            truncated: self.total > self.kept.len() as u64,
        }
    }
}

/// Reads `reader` to its end into a [`Capture`].
pub(crate) async fn capture(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    cap: usize,
    logs: tokio::sync::mpsc::Sender<LogLine>,
    dropped: &std::sync::atomic::AtomicU64,
) -> Captured {
    let mut c = Capture::new(stream, cap, logs, dropped);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => c.push(&buf[..n]),
        }
    }
    c.finish()
}
