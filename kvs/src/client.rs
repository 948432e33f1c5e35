//! An async client for a kvs cluster: keeps the slot map (from `CLUSTER SHARDS`), follows
//! `-MOVED`, retries `-TRYAGAIN` with backoff, bounds every operation by a timeout, and tells the
//! caller whether a failed operation **definitely did not happen** or **may have happened**.
//! A linearizability history needs that distinction: the first is recorded as `fail`, the
//! second as `info`. [`ClusterClient::execute`] also says which node answered.
//!
//! Rules for that verdict:
//! - no reply was ever possible (could not connect, the request was never written): definite;
//! - `-MOVED` and `-TRYAGAIN` mean the node did not take the request: retried, and definite if
//!   retries run out;
//! - a write was written to a socket and then the connection broke or the time ran out, or the
//!   node answered `-UNKNOWN`: unknown. Such a write is never retried (it could apply twice);
//! - a read that fails is always definite: it has no effect.
//!
//! Commands: GET, SET, SET IFEQ (`cas`), DEL, INCR, INCRBY, DECR, DECRBY, SADD, SREM, SMEMBERS,
//! SISMEMBER, SCARD, and any other keyed command through [`ClusterClient::execute`].
//!
//! After a leader dies its followers name it for a while (until they notice its silence and
//! answer `-TRYAGAIN`, or elect another): a redirection that makes no progress is retried after
//! a pause and never fails the operation before its deadline (see [`ClusterClient::execute`]).

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
    /// Redirections followed at once (each to a node not seen redirecting yet) in one operation
    /// before giving up. Redirections without progress (to a node that redirected already or
    /// could not be reached) pause instead and end only at the deadline; more than this many of
    /// them make its error say "too many redirections".
    pub redirects_max: u32,
    /// First pause after `-TRYAGAIN`, an unreachable node or a redirection without progress;
    /// it doubles up to `backoff_max`.
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

/// A keyed command's result and the node its last attempt went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The reply, or why there is none (see the module rules).
    pub result: Result<Frame, ClientError>,
    /// The client address of the node the last attempt went to: the node that answered, or
    /// the one the request could not be sent to or was lost at. `None` if no attempt was made
    /// (no node was known before the deadline).
    pub node: Option<SocketAddr>,
}

/// What to do about a `-MOVED`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum OnMoved {
    /// A node that has not redirected this operation and was not found unreachable: go there
    /// now.
    Follow(SocketAddr),
    /// No progress (a node that redirected this operation already, one that could not be
    /// reached, or an address that does not parse): pause this long, refresh the slot map, then
    /// pick a target.
    Pause(Duration),
    /// More than `redirects_max` redirections followed at once: fail the operation.
    GiveUp,
}

/// One operation's memory of where it has been: the pure half of [`ClusterClient::execute`].
/// It decides which redirections to follow, when to pause and for how long, and which node to
/// try next; it never touches a socket or a clock.
struct Route {
    /// Nodes that answered this operation with a redirection: going back to one is no
    /// progress (a node that only said TRYAGAIN may lead by now, so it is not listed).
    redirected_by: Vec<SocketAddr>,
    /// Nodes this operation could not reach (or lost a read at); avoided while others remain.
    unreachable: Vec<SocketAddr>,
    /// Redirections followed at once (each to a node that had not redirected this operation).
    // Invariant: each follow leads to a node that then redirects (and is listed), fails (and is
    // listed), or ends the operation, so this stays near the cluster's size.
    redirects_followed: u32,
    /// Redirections without progress (each met with a pause).
    stalls: u32,
    /// The next pause.
    // Invariant: backoff_min <= backoff <= backoff_max.
    backoff: Duration,
    backoff_max: Duration,
    redirects_max: u32,
}

impl Route {
    fn new(options: &ClientOptions) -> Route {
        let backoff_max = options.backoff_max.max(options.backoff_min);
        Route {
            redirected_by: Vec::new(),
            unreachable: Vec::new(),
            redirects_followed: 0,
            stalls: 0,
            backoff: options.backoff_min,
            backoff_max,
            redirects_max: options.redirects_max,
        }
    }

    /// The pause before the next retry; the one after it doubles, up to `backoff_max`.
    fn next_pause(&mut self) -> Duration {
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(self.backoff_max);
        pause
    }

    fn backoff_at_max(&self) -> bool {
        self.backoff >= self.backoff_max
    }

    /// `addr` answered: it is up.
    fn reached(&mut self, addr: SocketAddr) {
        self.unreachable.retain(|a| *a != addr);
    }

    /// `addr` could not be reached.
    fn unreachable(&mut self, addr: SocketAddr) {
        if !self.unreachable.contains(&addr) {
            self.unreachable.push(addr);
        }
    }

    /// Whether the operation spent its time bouncing between nodes: more than `redirects_max`
    /// redirections without progress (said when it times out).
    fn looped(&self) -> bool {
        self.stalls > self.redirects_max
    }

    /// `from` answered `-MOVED` to `to` (`None`: an address that does not parse). Never gives
    /// up on redirections without progress: an election, however long, ends them, and the
    /// operation's deadline bounds the wait.
    fn on_moved(&mut self, from: SocketAddr, to: Option<SocketAddr>) -> OnMoved {
        self.reached(from);
        if !self.redirected_by.contains(&from) {
            self.redirected_by.push(from);
        }
        match to {
            Some(to) if !self.redirected_by.contains(&to) && !self.unreachable.contains(&to) => {
                self.redirects_followed += 1;
                if self.redirects_followed > self.redirects_max {
                    return OnMoved::GiveUp;
                }
                OnMoved::Follow(to)
            }
            _ => {
                self.stalls += 1;
                OnMoved::Pause(self.next_pause())
            }
        }
    }

    /// The next node to try: `cached` (the slot's leader as last learned) unless it could not
    /// be reached, else the `turn`-th of the other seeds. When every seed failed, they are all
    /// given another chance (nodes restart).
    fn pick(
        &mut self,
        cached: Option<SocketAddr>,
        seeds: &[SocketAddr],
        turn: usize,
    ) -> Option<SocketAddr> {
        if let Some(c) = cached.filter(|c| !self.unreachable.contains(c)) {
            return Some(c);
        }
        let mut reachable: Vec<SocketAddr> = seeds
            .iter()
            .copied()
            .filter(|s| !self.unreachable.contains(s))
            .collect();
        if reachable.is_empty() {
            self.unreachable.clear();
            reachable = seeds.to_vec();
        }
        if reachable.is_empty() {
            return cached;
        }
        Some(reachable[turn % reachable.len()])
    }
}

/// Sleeps for `pause`, but not past `deadline`.
async fn pause(pause: Duration, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::sleep(pause.min(left)).await;
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

    /// INCRBY key delta: the new value.
    ///
    /// # Errors
    /// See the module rules.
    pub async fn incrby(&self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        let delta = delta.to_string();
        integer(self.run(&[b"INCRBY", key, delta.as_bytes()], true).await?)
    }

    /// DECR key: the new value.
    ///
    /// # Errors
    /// See the module rules.
    pub async fn decr(&self, key: &[u8]) -> Result<i64, ClientError> {
        integer(self.run(&[b"DECR", key], true).await?)
    }

    /// DECRBY key delta: the new value.
    ///
    /// # Errors
    /// See the module rules (a `delta` of `i64::MIN` is refused by the server).
    pub async fn decrby(&self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        let delta = delta.to_string();
        integer(self.run(&[b"DECRBY", key, delta.as_bytes()], true).await?)
    }

    /// SADD key member: 1 when the member was added, 0 when it was there already.
    ///
    /// # Errors
    /// See the module rules; a key holding a string is a [`ClientError::Server`] (WRONGTYPE).
    pub async fn sadd(&self, key: &[u8], member: &[u8]) -> Result<i64, ClientError> {
        integer(self.run(&[b"SADD", key, member], true).await?)
    }

    /// SREM key member: 1 when the member was removed, 0 when it was not there.
    ///
    /// # Errors
    /// See the module rules; a key holding a string is a [`ClientError::Server`] (WRONGTYPE).
    pub async fn srem(&self, key: &[u8], member: &[u8]) -> Result<i64, ClientError> {
        integer(self.run(&[b"SREM", key, member], true).await?)
    }

    /// SMEMBERS key: the members in byte order (empty when the key is absent).
    ///
    /// # Errors
    /// See the module rules; reads fail only definitely.
    pub async fn smembers(&self, key: &[u8]) -> Result<Vec<Bytes>, ClientError> {
        match self.run(&[b"SMEMBERS", key], false).await? {
            Frame::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Frame::Bulk(b) => Ok(b),
                    other => Err(unexpected(&other)),
                })
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// SISMEMBER key member: whether the member is in the set.
    ///
    /// # Errors
    /// See the module rules; reads fail only definitely.
    pub async fn sismember(&self, key: &[u8], member: &[u8]) -> Result<bool, ClientError> {
        match self.run(&[b"SISMEMBER", key, member], false).await? {
            Frame::Integer(0) => Ok(false),
            Frame::Integer(1) => Ok(true),
            other => Err(unexpected(&other)),
        }
    }

    /// SCARD key: the number of members (0 when the key is absent).
    ///
    /// # Errors
    /// See the module rules; reads fail only definitely.
    pub async fn scard(&self, key: &[u8]) -> Result<i64, ClientError> {
        integer(self.run(&[b"SCARD", key], false).await?)
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

    /// Runs a keyed command (`args[1]` is the key) with routing, redirection and retries; a
    /// thin wrapper of [`ClusterClient::execute`] for callers that do not need to know which node
    /// answered.
    ///
    /// # Errors
    /// See the module rules; `write` says whether the command changes data.
    pub async fn run(&self, args: &[&[u8]], write: bool) -> Result<Frame, ClientError> {
        self.execute(args, write).await.result
    }

    /// Runs a keyed command (`args[1]` is the key) with routing, redirection and retries, and
    /// says which node the last attempt went to: the one that answered, or the one the request
    /// was lost at (a history records it). `write` says whether the command changes data; the
    /// result follows the module rules.
    ///
    /// Redirections: a `-MOVED` to a node that has not redirected this operation yet is progress
    /// and is followed at once (more than `redirects_max` of those fail the operation). A
    /// `-MOVED` to one that has, or that could not be reached, is not: the cluster is between
    /// leaders (the followers still name a dead one), so the client pauses (exponential backoff
    /// from `backoff_min` to `backoff_max`, never past the deadline), refreshes its slot map
    /// (asking reachable nodes first) and asks again, avoiding the nodes it could not reach.
    /// Such redirections never fail the operation early: only at its deadline, and then as
    /// "too many redirections" if more than `redirects_max` of them made it loop.
    pub async fn execute(&self, args: &[&[u8]], write: bool) -> Executed {
        self.execute_via(None, args, write).await
    }

    /// [`ClusterClient::execute`], with the first attempt sent to `first` instead of the leader
    /// this client knows (`None`: the leader). A node that does not lead the key's shard
    /// redirects as usual. This is how a client bound to one node behaves (Jepsen binds each
    /// process to a node): its requests reach whichever node it is bound to first, so a node
    /// that wrongly believes it still leads gets asked.
    pub async fn execute_via(
        &self,
        first: Option<SocketAddr>,
        args: &[&[u8]],
        write: bool,
    ) -> Executed {
        let deadline = Instant::now() + self.options.op_timeout;
        let key = args.get(1).copied().unwrap_or_default();
        let slot = crate::shard::key_slot(key).0;
        let mut route = Route::new(&self.options);
        let mut target = match first {
            Some(addr) => Some(addr),
            None => self.leader_for(slot, deadline).await,
        };
        let mut node = None;
        let mut last_error = String::from("no node could be reached");
        let done = |result, node| Executed { result, node };
        while Instant::now() < deadline {
            let Some(addr) = target else {
                self.refresh_slots_avoiding(deadline, &route.unreachable)
                    .await;
                target = self.next_target(slot, &mut route).await;
                if target.is_none() {
                    pause(route.next_pause(), deadline).await;
                }
                continue;
            };
            node = Some(addr);
            match self.attempt(addr, args, deadline).await {
                Attempt::Reply(Frame::Error(e)) => match classify(&e) {
                    ErrorKind::Moved { addr: to, .. } => {
                        let to: Option<SocketAddr> = to.parse().ok();
                        match route.on_moved(addr, to) {
                            OnMoved::Follow(to) => {
                                self.learn(slot, to).await;
                                target = Some(to);
                            }
                            OnMoved::Pause(p) => {
                                pause(p, deadline).await;
                                self.refresh_slots_avoiding(deadline, &route.unreachable)
                                    .await;
                                target = self.next_target(slot, &mut route).await;
                            }
                            OnMoved::GiveUp => {
                                return done(
                                    Err(ClientError::Definite(format!(
                                        "too many redirections; last: {e}"
                                    ))),
                                    node,
                                );
                            }
                        }
                        last_error = e;
                    }
                    ErrorKind::TryAgain => {
                        last_error = e;
                        route.reached(addr);
                        pause(route.next_pause(), deadline).await;
                        // The leader may have moved while the shard had none.
                        if route.backoff_at_max() {
                            self.refresh_slots_avoiding(deadline, &route.unreachable)
                                .await;
                            target = self.leader_for_cached(slot).await.or(Some(addr));
                        }
                    }
                    ErrorKind::OutcomeUnknown => {
                        return done(Err(ClientError::Unknown(e)), node);
                    }
                    ErrorKind::CrossSlot | ErrorKind::Other => {
                        return done(Err(ClientError::Server(e)), node);
                    }
                },
                Attempt::Reply(f) => return done(Ok(f), node),
                Attempt::NotSent(e) => {
                    last_error = e;
                    // The node may be down: ask the others who leads now.
                    route.unreachable(addr);
                    pause(route.next_pause(), deadline).await;
                    self.refresh_slots_avoiding(deadline, &route.unreachable)
                        .await;
                    target = self.next_target(slot, &mut route).await;
                }
                Attempt::Lost(e) => {
                    if write {
                        // The node took the request and went silent: it may be dead, paused
                        // or cut off, and no longer the leader. Ask the others who leads now,
                        // so that the next operation does not wait on it again (a Redis cluster
                        // client refreshes its slots after a timeout too). Briefly: the outcome
                        // is unknown whatever they say.
                        let refresh = Instant::now() + self.options.op_timeout / 4;
                        self.refresh_slots_avoiding(refresh, &[addr]).await;
                        return done(Err(ClientError::Unknown(e)), node);
                    }
                    // A read has no effect: try elsewhere.
                    last_error = e;
                    route.unreachable(addr);
                    pause(route.next_pause(), deadline).await;
                    self.refresh_slots_avoiding(deadline, &route.unreachable)
                        .await;
                    target = self.next_target(slot, &mut route).await;
                }
            }
        }
        let error = if route.looped() {
            format!(
                "too many redirections: {} without progress in {:?}; last: {last_error}",
                route.stalls, self.options.op_timeout
            )
        } else {
            format!(
                "timed out after {:?}; last: {last_error}",
                self.options.op_timeout
            )
        };
        done(Err(ClientError::Definite(error)), node)
    }

    /// Where to send the operation next: the slot's leader as last learned unless this
    /// operation could not reach it, else another node, rotating so that successive failures
    /// try every node.
    async fn next_target(&self, slot: u16, route: &mut Route) -> Option<SocketAddr> {
        let cached = self.leader_for_cached(slot).await;
        let turn = self
            .rotation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        route.pick(cached, &self.seeds, turn)
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
        self.refresh_slots_avoiding(deadline, &[]).await;
    }

    /// Re-reads the slot map from the first seed that answers, asking the seeds in `avoid`
    /// (nodes this operation could not reach) last.
    async fn refresh_slots_avoiding(&self, deadline: Instant, avoid: &[SocketAddr]) {
        let mut seeds = self.seeds.clone();
        // Stable: the configured order otherwise.
        seeds.sort_by_key(|s| avoid.contains(s));
        for seed in seeds {
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

fn integer(f: Frame) -> Result<i64, ClientError> {
    match f {
        Frame::Integer(n) => Ok(n),
        other => Err(unexpected(&other)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn options() -> ClientOptions {
        ClientOptions {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(80),
            redirects_max: 3,
            ..ClientOptions::default()
        }
    }

    #[test]
    fn a_redirection_to_a_new_node_is_followed_at_once() {
        let mut route = Route::new(&options());
        assert_eq!(
            route.on_moved(addr(1), Some(addr(2))),
            OnMoved::Follow(addr(2))
        );
        assert_eq!(
            route.on_moved(addr(2), Some(addr(3))),
            OnMoved::Follow(addr(3))
        );
        // Back to a node that redirected already: a loop, so a pause (no counting yet).
        assert_eq!(
            route.on_moved(addr(3), Some(addr(1))),
            OnMoved::Pause(Duration::from_millis(10))
        );
        // An address that does not parse gives no lead either.
        assert_eq!(
            route.on_moved(addr(3), None),
            OnMoved::Pause(Duration::from_millis(20))
        );
        assert!(!route.looped());
    }

    #[test]
    fn redirections_to_an_unreachable_leader_pause_with_growing_backoff() {
        // The storm: the leader (1) was killed; followers 2 and 3 still name it.
        let mut route = Route::new(&options());
        route.unreachable(addr(1));
        let mut pauses = Vec::new();
        for i in 0..6 {
            let from = addr(2 + (i % 2));
            match route.on_moved(from, Some(addr(1))) {
                OnMoved::Pause(p) => pauses.push(p.as_millis()),
                other => panic!("redirect {i}: {other:?}"),
            }
        }
        assert_eq!(pauses, vec![10, 20, 40, 80, 80, 80]);
        // A node that only said TRYAGAIN (not a redirection) and now leads is followed at once.
        let mut route = Route::new(&options());
        route.reached(addr(2));
        assert_eq!(
            route.on_moved(addr(3), Some(addr(2))),
            OnMoved::Follow(addr(2))
        );
    }

    #[test]
    fn redirections_without_progress_never_give_up_early() {
        // However long the followers name a dead leader, the operation pauses and asks again;
        // only its deadline ends it (then said to have looped).
        let mut route = Route::new(&options());
        route.unreachable(addr(1));
        let mut slept = Duration::ZERO;
        for i in 0..1000 {
            match route.on_moved(addr(2 + (i % 2)), Some(addr(1))) {
                OnMoved::Pause(p) => slept += p,
                other => panic!("redirect {i}: {other:?}"),
            }
            assert_eq!(route.looped(), i >= 3, "redirect {i}");
        }
        assert_eq!(slept, Duration::from_millis(10 + 20 + 40 + 997 * 80));
    }

    #[test]
    fn too_many_redirections_followed_at_once_give_up() {
        let mut route = Route::new(&options());
        for port in 2..5 {
            assert_eq!(
                route.on_moved(addr(port - 1), Some(addr(port))),
                OnMoved::Follow(addr(port))
            );
        }
        assert_eq!(route.on_moved(addr(4), Some(addr(5))), OnMoved::GiveUp);
    }

    #[test]
    fn pick_avoids_unreachable_nodes_until_none_is_left() {
        let seeds = [addr(1), addr(2), addr(3)];
        let mut route = Route::new(&options());
        assert_eq!(route.pick(Some(addr(1)), &seeds, 0), Some(addr(1)));
        route.unreachable(addr(1));
        assert_eq!(route.pick(Some(addr(1)), &seeds, 0), Some(addr(2)));
        assert_eq!(route.pick(Some(addr(1)), &seeds, 1), Some(addr(3)));
        assert_eq!(route.pick(None, &seeds, 2), Some(addr(2)));
        route.unreachable(addr(2));
        route.unreachable(addr(3));
        // Every node failed: they all get another chance (they may have restarted).
        assert_eq!(route.pick(Some(addr(1)), &seeds, 4), Some(addr(2)));
        assert_eq!(route.pick(Some(addr(1)), &seeds, 0), Some(addr(1)));
        // A node that answers is reachable again.
        route.unreachable(addr(1));
        route.reached(addr(1));
        assert_eq!(route.pick(Some(addr(1)), &seeds, 0), Some(addr(1)));
        assert_eq!(Route::new(&options()).pick(None, &[], 0), None);
    }

    #[test]
    fn a_pause_never_outlasts_the_deadline() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let started = Instant::now();
        rt.block_on(pause(
            Duration::from_secs(30),
            Instant::now() + Duration::from_millis(20),
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
