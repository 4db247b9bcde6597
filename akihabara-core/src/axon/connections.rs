//! Caps on connections, and on how long an answer may sit unsent: shared
//! by the axon and the other listeners a daemon runs (the gateway, the
//! `/metrics` port).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an evicted connection has to finish what it was writing before
/// it is dropped.
pub const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// Caps on open connections, in all and per caller network (an IPv4
/// address, an IPv6 /64: [`crate::addr::caller_network`]). Each admitted
/// connection holds a [`ConnectionPermit`] until it closes. Shared by the
/// axon and any other listener a daemon runs (its `/metrics` port).
///
/// At the cap in all, a new connection takes the place of the one that has
/// served no request for longest (idle keep-alive, or not one request yet):
/// that one is asked to close ([`ConnectionPermit::evicted`]). A few
/// addresses that open connections and leave them idle therefore cannot
/// hold every place; only connections with a request being served
/// ([`ConnectionTracker::serving`]) keep theirs. At the cap per caller
/// network, a new connection is refused.
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<std::net::IpAddr, usize>,
    /// Connections serving no request, by when they became idle (a
    /// sequence number: the first is the idle longest).
    idle: BTreeMap<u64, Arc<Slot>>,
    next: u64,
}

/// One connection's state; changed under the limit's lock only.
#[derive(Debug)]
struct Slot {
    ip: std::net::IpAddr,
    /// Requests being served.
    serving: AtomicUsize,
    /// Its key in `Open::idle`, 0 while serving.
    idle_key: AtomicU64,
    /// Its place was given to a newer connection.
    evicted: AtomicBool,
    evict: tokio::sync::Notify,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limit: Arc<ConnectionLimit>,
    slot: Arc<Slot>,
}

/// A request being served on a connection: while one is, the connection is
/// not evicted. Dropping it ends that.
#[derive(Debug)]
pub struct Serving {
    limit: Arc<ConnectionLimit>,
    slot: Arc<Slot>,
}

impl ConnectionLimit {
    /// At most `max` connections, `per_ip` from one caller network (each at
    /// least 1).
    pub fn new(max: usize, per_ip: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            max: max.max(1),
            per_ip: per_ip.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, or `None` when its network is at
    /// its cap, or every place is taken by a connection serving a request.
    /// At the cap in all, the connection idle longest is evicted for it.
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<ConnectionPermit> {
        let ip = crate::addr::caller_network(ip);
        let mut g = self.lock();
        if g.by_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return None;
        }
        if g.total >= self.max {
            let (_, oldest) = g.idle.pop_first()?;
            oldest.idle_key.store(0, Ordering::Relaxed);
            oldest.evicted.store(true, Ordering::Relaxed);
            g.release(oldest.ip);
            oldest.evict.notify_one();
        }
        g.total += 1;
        *g.by_ip.entry(ip).or_insert(0) += 1;
        let slot = Arc::new(Slot {
            ip,
            serving: AtomicUsize::new(0),
            idle_key: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: tokio::sync::Notify::new(),
        });
        g.make_idle(&slot);
        Some(ConnectionPermit {
            limit: self.clone(),
            slot,
        })
    }

    /// Connections open now (an evicted one no longer counts).
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

impl Open {
    fn release(&mut self, ip: std::net::IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }

    fn make_idle(&mut self, slot: &Arc<Slot>) {
        self.next += 1;
        slot.idle_key.store(self.next, Ordering::Relaxed);
        self.idle.insert(self.next, slot.clone());
    }

    fn unidle(&mut self, slot: &Slot) {
        let key = slot.idle_key.swap(0, Ordering::Relaxed);
        if key != 0 {
            self.idle.remove(&key);
        }
    }
}

impl ConnectionPermit {
    /// A handle for the connection's service, to mark the requests it
    /// serves ([`ConnectionTracker::serving`]).
    pub fn tracker(&self) -> ConnectionTracker {
        ConnectionTracker {
            limit: self.limit.clone(),
            slot: self.slot.clone(),
        }
    }

    /// Resolves once the connection's place has been given to a newer one:
    /// close it (gracefully, within [`EVICTION_GRACE`]).
    pub async fn evicted(&self) {
        self.slot.evict.notified().await;
    }
}

/// Marks the requests a connection serves (see [`ConnectionLimit`]).
#[derive(Clone, Debug)]
pub struct ConnectionTracker {
    limit: Arc<ConnectionLimit>,
    slot: Arc<Slot>,
}

impl ConnectionTracker {
    /// Marks a request being served until the returned guard drops: the
    /// connection is not evicted meanwhile.
    pub fn serving(&self) -> Serving {
        let mut g = self.limit.lock();
        g.unidle(&self.slot);
        self.slot.serving.fetch_add(1, Ordering::Relaxed);
        Serving {
            limit: self.limit.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let mut g = self.limit.lock();
        if self.slot.serving.fetch_sub(1, Ordering::Relaxed) == 1
            && !self.slot.evicted.load(Ordering::Relaxed)
        {
            g.make_idle(&self.slot);
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut g = self.limit.lock();
        g.unidle(&self.slot);
        // Evicted: its place was freed then. Marked either way, so that a
        // request still being served does not make it idle again.
        if !self.slot.evicted.swap(true, Ordering::Relaxed) {
            g.release(self.slot.ip);
        }
    }
}

/// Serves one HTTP/1 connection until it ends: when `permit` is evicted
/// ([`ConnectionLimit`]), or `stop` resolves, it is closed gracefully (the
/// request being answered is finished, no other is read); an evicted one
/// is dropped after [`EVICTION_GRACE`] if it has not closed by then.
pub async fn serve_connection<I, S, B>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    permit: &ConnectionPermit,
    stop: impl std::future::Future<Output = ()>,
) where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    let evicted = tokio::select! {
        _ = conn.as_mut() => return,
        () = permit.evicted() => true,
        () = stop => false,
    };
    conn.as_mut().graceful_shutdown();
    if evicted {
        let _ = tokio::time::timeout(EVICTION_GRACE, conn).await;
    } else {
        let _ = conn.await;
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
