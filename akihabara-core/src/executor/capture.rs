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

/// Reads `reader` to its end: hashes everything, keeps `cap` bytes, and sends
/// lines to `logs` without ever waiting for the reader of the logs (a full
/// channel drops the line and counts it in `dropped`).
pub(crate) async fn capture(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    cap: usize,
    logs: tokio::sync::mpsc::Sender<LogLine>,
    dropped: &std::sync::atomic::AtomicU64,
) -> Captured {
    let mut hash = Sha256::new();
    let mut kept = Vec::with_capacity(cap.min(64 * 1024));
    let mut total = 0u64;
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let send = |line: &mut Vec<u8>| {
        let l = LogLine {
            stream,
            line: std::mem::take(line),
        };
        if logs.try_send(l).is_err() && !logs.is_closed() {
            dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        hash.update(chunk);
        total += n as u64;
        if kept.len() < cap {
            let room = cap - kept.len();
            kept.extend_from_slice(&chunk[..room.min(n)]);
        }
        for &b in chunk {
            if b == b'\n' {
                send(&mut line);
            } else {
                line.push(b);
                if line.len() >= MAX_LINE {
                    send(&mut line);
                }
            }
        }
    }
    if !line.is_empty() {
        send(&mut line);
    }
    Captured {
        bytes: total,
        sha256: hex::encode(hash.finalize()),
        text: String::from_utf8_lossy(&kept).into_owned(),
        truncated: total > kept.len() as u64,
    }
}
