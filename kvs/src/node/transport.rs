//! Peer transport: one outbound TCP connection per peer, one inbound listener.
//!
//! The driver hands [`Transport::send`] a whole round's messages for a peer; it never waits on a
//! socket. Each peer has its own bounded queue and its own task that dials, reconnects with
//! exponential backoff and jitter, and writes queued batches (several at once when they pile
//! up). When a peer is down or slow its queue fills and new batches are dropped: Raft tolerates
//! lost messages, and a dead peer must never stall the driver. Inbound connections start with a
//! `Hello`; a frame that fails to decode closes that connection with a logged error and harms
//! nothing else.

use super::driver::DriverInput;
use super::wire::{decode_frame, encode_frame, GroupWireId, PeerFrame};
use crate::raft::{Message, NodeId, Term};
use crate::shard::ShardId;
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Batches queued for one peer before new ones are dropped.
pub const PEER_QUEUE_BATCHES_MAX: usize = 4096;
/// Bytes written to a peer in one `write_all` before yielding to check the queue again.
const WRITE_BYTES_MAX: usize = 4 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(1000);
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// A batch of messages, all for groups shared with one peer.
pub type Batch = Vec<(GroupWireId, Message)>;

/// What peers said they lead: shard -> (leader, term). Written by inbound connections, read by
/// the client-facing server for shards this node does not host.
pub type RemoteLeaders = Arc<RwLock<BTreeMap<ShardId, (NodeId, Term)>>>;

/// Where inbound batches go: the driver's bounded inbox.
pub type InboundSender = std::sync::mpsc::SyncSender<DriverInput>;

/// Counters an operator can read in INFO.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Batches dropped because a peer's queue was full.
    pub batches_dropped: AtomicU64,
    /// Successful outbound connections made (reconnects included).
    pub connects: AtomicU64,
    /// Inbound connections closed because a frame failed to decode.
    pub decode_errors: AtomicU64,
    /// Inbound batches dropped because the driver's inbox was full.
    pub inbound_dropped: AtomicU64,
}

/// The sending half of the transport, owned by the driver.
pub struct Transport {
    peers: BTreeMap<NodeId, mpsc::Sender<PeerFrame>>,
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
            let (tx, rx) = mpsc::channel(PEER_QUEUE_BATCHES_MAX);
            peers.insert(peer, tx);
            tokio::spawn(dial_loop(me, peer, addr, cluster_tag, rx, stats.clone()));
        }
        Transport { peers, stats }
    }

    /// Queues `batch` for `peer` without waiting; drops it when the peer's queue is full.
    pub fn send(&self, peer: NodeId, batch: Batch) {
        self.send_frame(peer, PeerFrame::Batch(batch));
    }

    /// Tells every peer which groups this node leads.
    pub fn announce_leaders(&self, led: &[(GroupWireId, Term)]) {
        for peer in self.peers.keys() {
            self.send_frame(*peer, PeerFrame::Leaders(led.to_vec()));
        }
    }

    fn send_frame(&self, peer: NodeId, frame: PeerFrame) {
        let Some(tx) = self.peers.get(&peer) else {
            tracing::warn!(%peer, "message for a node that is not in the configuration");
            return;
        };
        if tx.try_send(frame).is_err() {
            self.stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn dial_loop(
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    cluster_tag: u64,
    mut rx: mpsc::Receiver<PeerFrame>,
    stats: Arc<TransportStats>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut jitter = Jitter::new(me.0 ^ (peer.0 << 32));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => {
                // While the peer is unreachable, what is queued is stale: drop it, so that it
                // does not arrive long after the rounds that produced it.
                while rx.try_recv().is_ok() {}
                let pause = jitter.spread(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::time::sleep(pause).await;
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, %addr, "connected to peer");
        backoff = BACKOFF_MIN;
        let (_read_half, mut write_half) = stream.into_split();
        buf.clear();
        encode_frame(
            &PeerFrame::Hello {
                from: me,
                cluster_tag,
            },
            &mut buf,
        );
        if write_half.write_all(&buf).await.is_err() {
            continue;
        }
        loop {
            let Some(frame) = rx.recv().await else {
                return;
            };
            buf.clear();
            encode_frame(&frame, &mut buf);
            while buf.len() < WRITE_BYTES_MAX {
                match rx.try_recv() {
                    Ok(more) => encode_frame(&more, &mut buf),
                    Err(_) => break,
                }
            }
            if let Err(e) = write_half.write_all(&buf).await {
                tracing::debug!(%peer, error = %e, "peer connection lost; reconnecting");
                break;
            }
        }
    }
}

/// Accepts peer connections on `listener` and forwards every decoded batch to `inbound`.
pub async fn accept_loop(
    listener: TcpListener,
    cluster_tag: u64,
    inbound: InboundSender,
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
    inbound: InboundSender,
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
                        Err(std::sync::mpsc::TrySendError::Full(_)) => {
                            stats.inbound_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
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
