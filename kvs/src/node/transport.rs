//! Peer transport: one outbound TCP connection per peer, one inbound listener.
//!
//! The driver hands [`Transport::send`] a whole round's messages for a peer and the frame is
//! written to the peer's socket straight from the driver's thread, without waking a task: a
//! non-blocking write that never waits. Whatever the socket does not take at once waits in the
//! peer's backlog, which the peer's task writes out as the socket drains (later frames queue
//! behind it, so order holds). The same task dials, greets with `Hello`, and reconnects with
//! exponential backoff and jitter. While a peer is down or its backlog is over its bound, new
//! frames are dropped: Raft tolerates lost messages, and a dead peer must never stall the
//! driver. Inbound connections start with a `Hello`; a frame that fails to decode closes that
//! connection with a logged error and harms nothing else.

use super::driver::{DriverInput, InboxSender};
use super::wire::{decode_frame, encode_frame, GroupWireId, PeerFrame};
use crate::raft::{Message, NodeId, Term};
use crate::shard::ShardId;
use crate::sockets::write_without_waiting;
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Once a peer's backlog holds this many bytes, new frames for it are dropped (a frame is
/// always taken when the backlog is empty, whatever its size).
pub const PEER_BACKLOG_BYTES_MAX: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(1000);
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// A batch of messages, all for groups shared with one peer.
pub type Batch = Vec<(GroupWireId, Message)>;

/// What peers said they lead: shard -> (leader, term). Written by inbound connections, read by
/// the client-facing server for shards this node does not host.
pub type RemoteLeaders = Arc<RwLock<BTreeMap<ShardId, (NodeId, Term)>>>;

/// Counters an operator can read in INFO.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Batches dropped because a peer was unreachable or its backlog was full.
    pub batches_dropped: AtomicU64,
    /// Successful outbound connections made (reconnects included).
    pub connects: AtomicU64,
    /// Inbound connections closed because a frame failed to decode.
    pub decode_errors: AtomicU64,
    /// Inbound batches dropped because the driver's inbox was full.
    pub inbound_dropped: AtomicU64,
}

/// One peer's outbound side, shared by the driver (which writes) and the peer's task (which
/// connects and writes out the backlog).
struct Outbound {
    state: Mutex<OutState>,
    /// Wakes the peer's task: there is a backlog, or the transport is closing.
    wake: Notify,
}

#[derive(Default)]
struct OutState {
    /// The connection, once it is up and greeted.
    stream: Option<Arc<TcpStream>>,
    /// Encoded bytes the socket has not taken yet, in order.
    backlog: BytesMut,
    /// The transport was dropped: the task stops.
    closed: bool,
}

impl Outbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().expect("peer state lock poisoned")
    }
}

/// The sending half of the transport, owned by the driver.
pub struct Transport {
    peers: BTreeMap<NodeId, Arc<Outbound>>,
    /// Shared counters.
    pub stats: Arc<TransportStats>,
}

impl Transport {
    /// Starts one dialing task per peer. `routes` maps each peer to the address this node dials
    /// to reach it (which may be a proxy in front of the peer).
    #[must_use]
    pub fn start(me: NodeId, cluster_tag: u64, routes: BTreeMap<NodeId, SocketAddr>) -> Transport {
        let stats = Arc::new(TransportStats::default());
        let mut peers = BTreeMap::new();
        for (peer, addr) in routes {
            if peer == me {
                continue;
            }
            let out = Arc::new(Outbound {
                state: Mutex::new(OutState::default()),
                wake: Notify::new(),
            });
            peers.insert(peer, out.clone());
            tokio::spawn(dial_loop(me, peer, addr, cluster_tag, out, stats.clone()));
        }
        Transport { peers, stats }
    }

    /// Sends one batch to `peer`, dropping it if the peer is unreachable or too far behind.
    pub fn send(&self, peer: NodeId, batch: Batch) {
        self.send_frame(peer, PeerFrame::Batch(batch));
    }

    /// Tells every peer which shards this node leads.
    pub fn announce_leaders(&self, led: &[(GroupWireId, Term)]) {
        for peer in self.peers.keys() {
            self.send_frame(*peer, PeerFrame::Leaders(led.to_vec()));
        }
    }

    fn send_frame(&self, peer: NodeId, frame: PeerFrame) {
        let Some(out) = self.peers.get(&peer) else {
            tracing::warn!(%peer, "message for a node that is not in the configuration");
            return;
        };
        let mut guard = out.lock();
        let st = &mut *guard;
        let Some(stream) = &st.stream else {
            self.stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if st.backlog.len() >= PEER_BACKLOG_BYTES_MAX {
            self.stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let idle = st.backlog.is_empty();
        encode_frame(&frame, &mut st.backlog);
        if !idle {
            // The task is already writing the backlog out; this frame follows it.
            return;
        }
        // A full socket, or a broken one, leaves the frame in the backlog: the task waits for
        // room, or finds the error and reconnects.
        let _ = write_without_waiting(stream, &mut st.backlog);
        if !st.backlog.is_empty() {
            out.wake.notify_one();
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for out in self.peers.values() {
            out.lock().closed = true;
            out.wake.notify_one();
        }
    }
}

/// Keeps the connection to one peer: dials (with backoff), greets, publishes the connection to
/// the driver, then writes out whatever backlog the driver leaves, until the connection breaks.
async fn dial_loop(
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    cluster_tag: u64,
    out: Arc<Outbound>,
    stats: Arc<TransportStats>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut jitter = Jitter::new(me.0 ^ (peer.0 << 32));
    loop {
        if out.lock().closed {
            return;
        }
        let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => {
                let pause = jitter.spread(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut hello = BytesMut::new();
        encode_frame(
            &PeerFrame::Hello {
                from: me,
                cluster_tag,
            },
            &mut hello,
        );
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        stats.connects.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, %addr, "connected to peer");
        backoff = BACKOFF_MIN;
        let stream = Arc::new(stream);
        {
            let mut st = out.lock();
            st.backlog.clear();
            st.stream = Some(stream.clone());
        }
        let error = drain(&out, &stream).await;
        let mut st = out.lock();
        st.stream = None;
        st.backlog.clear();
        if st.closed {
            return;
        }
        tracing::debug!(%peer, error = %error, "peer connection lost; reconnecting");
    }
}

/// Writes the backlog out whenever the driver leaves one, until the connection fails (the
/// error is returned) or the transport closes.
async fn drain(out: &Outbound, stream: &TcpStream) -> std::io::Error {
    loop {
        out.wake.notified().await;
        loop {
            let all_written = {
                let mut st = out.lock();
                if st.closed {
                    return std::io::Error::other("transport closed");
                }
                if st.backlog.is_empty() {
                    break;
                }
                write_without_waiting(stream, &mut st.backlog).map(|()| st.backlog.is_empty())
            };
            match all_written {
                Ok(true) => {}
                // The socket is full: wait for room.
                Ok(false) => {
                    if let Err(e) = stream.writable().await {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
    }
}

/// Accepts peer connections on `listener` and forwards every decoded batch to `inbound`.
pub async fn accept_loop(
    listener: TcpListener,
    cluster_tag: u64,
    inbound: InboxSender,
    stats: Arc<TransportStats>,
    remote_leaders: RemoteLeaders,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_peer(
            stream,
            remote,
            cluster_tag,
            inbound.clone(),
            stats.clone(),
            remote_leaders.clone(),
        ));
    }
}

async fn serve_peer(
    mut stream: TcpStream,
    remote: SocketAddr,
    cluster_tag: u64,
    inbound: InboxSender,
    stats: Arc<TransportStats>,
    remote_leaders: RemoteLeaders,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut from: Option<NodeId> = None;
    loop {
        loop {
            match decode_frame(&mut buf) {
                Ok(Some(PeerFrame::Hello {
                    from: f,
                    cluster_tag: tag,
                })) => {
                    if tag != cluster_tag {
                        tracing::error!(%remote, "peer belongs to another cluster; closing");
                        return;
                    }
                    from = Some(f);
                }
                Ok(Some(PeerFrame::Batch(batch))) => {
                    let Some(f) = from else {
                        tracing::error!(%remote, "peer sent messages before Hello; closing");
                        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    if batch.iter().any(|(_, m)| m.from != f) {
                        tracing::error!(%remote, "peer sent a message under another node's id; closing");
                        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    match inbound.try_send(DriverInput::Peer(f, batch)) {
                        Ok(()) => {}
                        // Raft tolerates a lost batch; a busy driver must not be waited on.
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            stats.inbound_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                Ok(Some(PeerFrame::Leaders(led))) => {
                    let Some(f) = from else {
                        tracing::error!(%remote, "peer sent leaders before Hello; closing");
                        return;
                    };
                    let mut known = remote_leaders.write().expect("leaders lock poisoned");
                    for (group, term) in led {
                        let e = known.entry(ShardId(group)).or_insert((f, term));
                        if term >= e.1 {
                            *e = (f, term);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(%remote, error = %e, "bad frame from peer; closing the connection");
                    stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let read = if from.is_none() {
            match tokio::time::timeout(HELLO_TIMEOUT, stream.read_buf(&mut buf)).await {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            stream.read_buf(&mut buf).await
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A small xorshift generator for reconnect jitter (the runtime layer; not used by any pure
/// module, which take their randomness from seeds).
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Jitter((seed ^ nanos) | 1)
    }

    /// A duration uniformly spread over [d/2, d].
    fn spread(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let half = d.as_micros() as u64 / 2;
        Duration::from_micros(half + self.0 % (half + 1))
    }
}
