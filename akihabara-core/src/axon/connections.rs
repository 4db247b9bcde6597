//! Caps on connections, and on how long an answer may sit unsent: shared
//! by the axon and the other listeners a daemon runs (the gateway, the
//! `/metrics` port).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Caps on open connections, in all and per caller network (an IPv4
/// address, an IPv6 /64: [`crate::addr::caller_network`]). Each admitted
/// connection holds a [`ConnectionPermit`] until it closes. Shared by the
/// axon and any other listener a daemon runs (its `/metrics` port).
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    per_ip: usize,
    open: Mutex<(usize, HashMap<std::net::IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limit: Arc<ConnectionLimit>,
    ip: std::net::IpAddr,
}

impl ConnectionLimit {
    /// At most `max` connections, `per_ip` from one caller network (each at
    /// least 1).
    pub fn new(max: usize, per_ip: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            max: max.max(1),
            per_ip: per_ip.max(1),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<ConnectionPermit> {
        let ip = crate::addr::caller_network(ip);
        let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_ip) = &mut *g;
        let mine = by_ip.get(&ip).copied().unwrap_or(0);
        if *total >= self.max || mine >= self.per_ip {
            return None;
        }
        *total += 1;
        by_ip.insert(ip, mine + 1);
        Some(ConnectionPermit {
            limit: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut g = self.limit.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_ip) = &mut *g;
        *total = total.saturating_sub(1);
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// Makes the kernel close `stream` when what we send it sits unacknowledged,
/// or unsent because the peer's receive window stays shut, for longer than
/// `after` (`TCP_USER_TIMEOUT`; Linux only, elsewhere nothing is set).
///
/// hyper's timers run while it reads a request, not while it writes an
/// answer: a client that pipelines requests and never reads the answers
/// would otherwise hold its connection, and its place under the caps, for
/// as long as the listener keeps connections. A peer that reads, however
/// slowly, keeps its connection.
pub fn limit_stuck_sends(stream: &tokio::net::TcpStream, after: Duration) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        socket2::SockRef::from(stream).set_tcp_user_timeout(Some(after))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, after);
        Ok(())
    }
}

/// Test support, not API: an attacker on `addr` that writes `request`
/// `count` times (pipelined, within 5 s) with a 4 KiB receive window and
/// reads nothing for 4 s. Then it reads for at most 5 s: `Ok(bytes)` when
/// the listener closed the connection meanwhile, `Err(bytes)` when it was
/// still sending.
#[doc(hidden)]
pub async fn pipeline_and_stop_reading(
    addr: std::net::SocketAddr,
    request: &[u8],
    count: usize,
) -> std::io::Result<Result<usize, usize>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut conn = socket.connect(addr).await?;
    let requests = request.repeat(count);
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.write_all(&requests)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0usize;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    Ok(if closed.is_ok() { Ok(read) } else { Err(read) })
}
