//! An async client for a kvs cluster: keeps the slot map (from `CLUSTER SHARDS`), follows
//! `-MOVED`, retries `-TRYAGAIN` with backoff, bounds every operation by a timeout, and tells the
//! caller whether a failed operation **definitely did not happen** or **may have happened**.
//! A linearizability history needs that distinction: the first is recorded as `fail`, the
//! second as `info`.
//!
//! Rules for that verdict:
//! - no reply was ever possible (could not connect, the request was never written): definite;
//! - `-MOVED` and `-TRYAGAIN` mean the node did not take the request: retried, and definite if
//!   retries run out;
//! - a write was written to a socket and then the connection broke or the time ran out, or the
//!   node answered `-UNKNOWN`: unknown. Such a write is never retried (it could apply twice);
//! - a read that fails is always definite: it has no effect.

use crate::api::cmd::cluster::parse_shards_reply;
use crate::api::frame::{Frame, FrameLimits};
use crate::api::reply::{classify, ErrorKind};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// How a client behaves.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The whole budget of one operation, retries included.
    pub op_timeout: Duration,
    /// The budget of one connection attempt.
    pub connect_timeout: Duration,
    /// `-MOVED` redirections followed in one operation before giving up.
    pub redirects_max: u32,
    /// First pause after `-TRYAGAIN`; it doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest pause between retries.
    pub backoff_max: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            op_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_millis(500),
            redirects_max: 16,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The operation definitely did not take effect.
    #[error("failed (definitely not applied): {0}")]
    Definite(String),
    /// The operation may or may not have taken effect.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The server executed the command and answered with an error (e.g. INCR of a non-number);
    /// such a command has no effect on the data.
    #[error("server error: {0}")]
    Server(String),
}

impl ClientError {
    /// True when the operation may have taken effect.
    #[must_use]
    pub fn is_unknown(&self) -> bool {
        matches!(self, ClientError::Unknown(_))
    }
}

/// One slot range and the address of the node believed to lead it.
#[derive(Clone, Debug)]
struct SlotRange {
    start: u16,
    end: u16,
    leader: SocketAddr,
}

/// A cluster client. Operations on one client run one at a time per node connection; use one
/// client per logical process for concurrency.
pub struct ClusterClient {
    seeds: Vec<SocketAddr>,
    options: ClientOptions,
    slots: Mutex<Vec<SlotRange>>,
    conns: Mutex<HashMap<SocketAddr, Conn>>,
    rotation: std::sync::atomic::AtomicUsize,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// The outcome of one attempt on one node.
enum Attempt {
    Reply(Frame),
    /// Could not connect or write: the request never reached the node.
    NotSent(String),
    /// Written, then no reply: it may have been executed.
    Lost(String),
}

impl ClusterClient {
    /// Makes a client that learns the cluster from `seeds` (any nodes' client addresses).
    /// It connects lazily; the slot map is fetched on first use.
    #[must_use]
    pub fn new(seeds: Vec<SocketAddr>, options: ClientOptions) -> ClusterClient {
        ClusterClient {
            seeds,
            options,
            slots: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            rotation: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// GET: the value, or `None` when the key is absent.
    ///
    /// # Errors
    /// See the module rules; reads fail only definitely.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        match self.run(&[b"GET", key], false).await? {
            Frame::Bulk(b) => Ok(Some(b)),
            Frame::Null => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// SET key value.
    ///
    /// # Errors
    /// See the module rules.
    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        match self.run(&[b"SET", key, value], true).await? {
            Frame::Simple(s) if s == "OK" => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Compare-and-set: `SET key new IFEQ expected`. True when the value was `expected` and is
    /// now `new`; false when it was something else (or absent).
    ///
    /// # Errors
    /// See the module rules.
    pub async fn cas(&self, key: &[u8], expected: &[u8], new: &[u8]) -> Result<bool, ClientError> {
        match self
            .run(&[b"SET", key, new, b"IFEQ", expected], true)
            .await?
        {
            Frame::Simple(s) if s == "OK" => Ok(true),
            Frame::Null => Ok(false),
            other => Err(unexpected(&other)),
        }
    }

    /// DEL key: how many keys were removed (0 or 1).
    ///
    /// # Errors
    /// See the module rules.
    pub async fn del(&self, key: &[u8]) -> Result<i64, ClientError> {
        match self.run(&[b"DEL", key], true).await? {
            Frame::Integer(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// INCR key: the new value.
    ///
    /// # Errors
    /// See the module rules.
    pub async fn incr(&self, key: &[u8]) -> Result<i64, ClientError> {
        match self.run(&[b"INCR", key], true).await? {
            Frame::Integer(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one command to one node, without routing (for INFO, CLUSTER, PING).
    ///
    /// # Errors
    /// The node could not be reached or did not answer in time.
    pub async fn command_at(&self, addr: SocketAddr, args: &[&[u8]]) -> Result<Frame, ClientError> {
        let deadline = Instant::now() + self.options.op_timeout;
        match self.attempt(addr, args, deadline).await {
            Attempt::Reply(f) => Ok(f),
            Attempt::NotSent(e) | Attempt::Lost(e) => Err(ClientError::Definite(e)),
        }
    }

    /// Runs a keyed command (`args[1]` is the key) with routing, redirection and retries.
    ///
    /// # Errors
    /// See the module rules; `write` says whether the command changes data.
    pub async fn run(&self, args: &[&[u8]], write: bool) -> Result<Frame, ClientError> {
        let deadline = Instant::now() + self.options.op_timeout;
        let key = args.get(1).copied().unwrap_or_default();
        let slot = crate::shard::key_slot(key).0;
        let mut target = self.leader_for(slot, deadline).await;
        let mut backoff = self.options.backoff_min;
        let mut redirects = 0;
        let mut last_error = String::from("no node could be reached");
        while Instant::now() < deadline {
            let Some(addr) = target else {
                self.refresh_slots(deadline).await;
                target = self.leader_for_cached(slot).await;
                if target.is_none() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.backoff_max);
                }
                continue;
            };
            match self.attempt(addr, args, deadline).await {
                Attempt::Reply(Frame::Error(e)) => match classify(&e) {
                    ErrorKind::Moved { addr: to, .. } => {
                        redirects += 1;
                        if redirects > self.options.redirects_max {
                            return Err(ClientError::Definite(format!(
                                "too many redirections; last: {e}"
                            )));
                        }
                        let to: Option<SocketAddr> = to.parse().ok();
                        if let Some(to) = to {
                            self.learn(slot, to).await;
                        }
                        target = to;
                        last_error = e;
                    }
                    ErrorKind::TryAgain => {
                        last_error = e;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.options.backoff_max);
                        // The leader may have moved while the shard had none.
                        if backoff >= self.options.backoff_max {
                            self.refresh_slots(deadline).await;
                            target = self.leader_for_cached(slot).await.or(Some(addr));
                        }
                    }
                    ErrorKind::OutcomeUnknown => return Err(ClientError::Unknown(e)),
                    ErrorKind::CrossSlot | ErrorKind::Other => return Err(ClientError::Server(e)),
                },
                Attempt::Reply(f) => return Ok(f),
                Attempt::NotSent(e) => {
                    last_error = e;
                    // The node may be down: ask the others who leads now.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.backoff_max);
                    self.refresh_slots(deadline).await;
                    target = self
                        .leader_for_cached(slot)
                        .await
                        .filter(|a| *a != addr)
                        .or_else(|| self.other_seed(addr));
                }
                Attempt::Lost(e) => {
                    if write {
                        return Err(ClientError::Unknown(e));
                    }
                    last_error = e;
                    self.refresh_slots(deadline).await;
                    target = self.leader_for_cached(slot).await;
                }
            }
        }
        Err(ClientError::Definite(format!(
            "timed out after {:?}; last: {last_error}",
            self.options.op_timeout
        )))
    }

    /// Another seed than `not`, rotating so that successive failures try every node.
    fn other_seed(&self, not: SocketAddr) -> Option<SocketAddr> {
        let others: Vec<&SocketAddr> = self.seeds.iter().filter(|s| **s != not).collect();
        if others.is_empty() {
            return self.seeds.first().copied();
        }
        let pick = self
            .rotation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(*others[pick % others.len()])
    }

    /// The slot ranges and the address of each range's leader, as last learned.
    pub async fn slot_leaders(&self) -> Vec<(u16, u16, SocketAddr)> {
        self.slots
            .lock()
            .await
            .iter()
            .map(|r| (r.start, r.end, r.leader))
            .collect()
    }

    async fn leader_for(&self, slot: u16, deadline: Instant) -> Option<SocketAddr> {
        if let Some(a) = self.leader_for_cached(slot).await {
            return Some(a);
        }
        self.refresh_slots(deadline).await;
        self.leader_for_cached(slot).await
    }

    async fn leader_for_cached(&self, slot: u16) -> Option<SocketAddr> {
        let slots = self.slots.lock().await;
        slots
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.leader)
    }

    async fn learn(&self, slot: u16, leader: SocketAddr) {
        let mut slots = self.slots.lock().await;
        match slots.iter_mut().find(|r| r.start <= slot && slot <= r.end) {
            Some(r) => r.leader = leader,
            None => slots.push(SlotRange {
                start: slot,
                end: slot,
                leader,
            }),
        }
    }

    /// Re-reads the slot map from the first seed that answers `CLUSTER SHARDS`.
    pub async fn refresh_slots_now(&self) {
        let deadline = Instant::now() + self.options.op_timeout;
        self.refresh_slots(deadline).await;
    }

    async fn refresh_slots(&self, deadline: Instant) {
        for seed in self.seeds.clone() {
            if Instant::now() >= deadline {
                return;
            }
            let per_seed = (Instant::now() + self.options.connect_timeout * 2).min(deadline);
            if let Attempt::Reply(f) = self.attempt(seed, &[b"CLUSTER", b"SHARDS"], per_seed).await
            {
                if let Some(map) = parse_shards(&f) {
                    *self.slots.lock().await = map;
                    return;
                }
            }
        }
    }

    async fn attempt(&self, addr: SocketAddr, args: &[&[u8]], deadline: Instant) -> Attempt {
        let mut conns = self.conns.lock().await;
        // A pooled connection the server has already closed (it crashed or restarted while the
        // connection sat idle) must not take the request: a write to it would be reported as
        // "maybe applied" although it never reached a live server.
        if conns.get(&addr).is_some_and(|c| !c.is_idle_and_open()) {
            conns.remove(&addr);
        }
        let conn = match conns.entry(addr) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let budget = self
                    .options
                    .connect_timeout
                    .min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(budget, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        v.insert(Conn {
                            stream,
                            buf: BytesMut::with_capacity(4096),
                        })
                    }
                    Ok(Err(e)) => return Attempt::NotSent(format!("connecting to {addr}: {e}")),
                    Err(_) => return Attempt::NotSent(format!("connecting to {addr}: timed out")),
                }
            }
        };
        let mut out = BytesMut::new();
        Frame::Array(
            args.iter()
                .map(|a| Frame::Bulk(Bytes::copy_from_slice(a)))
                .collect(),
        )
        .encode(&mut out);
        let budget = deadline.saturating_duration_since(Instant::now());
        let result = tokio::time::timeout(budget, async {
            if let Err(e) = conn.stream.write_all(&out).await {
                // A failed write may still have delivered the bytes.
                return Attempt::Lost(format!("writing to {addr}: {e}"));
            }
            read_reply(conn, addr).await
        })
        .await;
        let attempt = result
            .unwrap_or_else(|_| Attempt::Lost(format!("no reply from {addr} before the deadline")));
        if !matches!(attempt, Attempt::Reply(_)) {
            // The connection's state is unknown (a late reply may arrive): never reuse it.
            conns.remove(&addr);
        }
        attempt
    }
}

impl Conn {
    /// True when nothing is pending on the connection and the server has not closed it. Every
    /// reply is read whole before the connection returns to the pool, so an idle connection
    /// has nothing to read: end-of-file or stray bytes mean it is unusable.
    fn is_idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock
        ) && self.buf.is_empty()
    }
}

async fn read_reply(conn: &mut Conn, addr: SocketAddr) -> Attempt {
    let limits = FrameLimits::default();
    loop {
        match Frame::parse(&mut conn.buf, &limits) {
            Ok(Some(f)) => return Attempt::Reply(f),
            Ok(None) => {}
            Err(e) => return Attempt::Lost(format!("bad reply from {addr}: {e}")),
        }
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) => return Attempt::Lost(format!("{addr} closed the connection")),
            Ok(_) => {}
            Err(e) => return Attempt::Lost(format!("reading from {addr}: {e}")),
        }
    }
}

fn unexpected(f: &Frame) -> ClientError {
    ClientError::Server(format!("unexpected reply {f:?}"))
}

/// Reads `CLUSTER SHARDS` into slot ranges and the address of each range's master.
fn parse_shards(f: &Frame) -> Option<Vec<SlotRange>> {
    let routes = parse_shards_reply(f).ok()?;
    let mut out = Vec::new();
    for route in routes {
        let Some(leader) = route.master().and_then(|m| m.addr().parse().ok()) else {
            continue;
        };
        for r in &route.slots {
            out.push(SlotRange {
                start: r.start.0,
                end: r.end.0,
                leader,
            });
        }
    }
    Some(out)
}
