//! The client-facing RESP server: accepts connections, parses pipelined requests, routes each key
//! to its shard, and writes replies back in request order.
//!
//! A request for a shard this node leads goes to the driver; one whose leader is elsewhere gets
//! `-MOVED <slot> <host:port>`; one whose shard has no leader yet, or whose leader this node has
//! not heard from lately (it may be dead: see [`crate::node::view::ShardView::leader_silent`]),
//! gets `-TRYAGAIN`. A write whose fate can no longer be confirmed gets
//! `-UNKNOWN outcome unknown: ...`, which a client must record as "may or may not have
//! happened". Every limit (request size, value size, pending requests per connection,
//! connections per node) answers with a clear error.
//!
//! Reads (GET, MGET, EXISTS, SMEMBERS, SISMEMBER, SCARD) and writes (SET, DEL, INCR, INCRBY,
//! DECR, DECRBY, MSET, SADD, SREM) both go to the shard's leader; the state machine's
//! [`crate::sm::Outcome`] becomes the reply.

use super::cmd::cluster::{keyslot_reply, ClusterView};
use super::cmd::info::{NodeStatus, ShardStatus};
use super::cmd::{ClusterRequest, Request};
use super::frame::{Frame, FrameError};
use super::reply;
use crate::bugs::BugSet;
use crate::config::ClusterConfig;
use crate::node::driver::{
    flush_later, ClientOp, DriverInput, Flush, InboxSender, OpKind, OpReply, Responder,
};
use crate::node::transport::{RemoteLeaders, TransportStats};
use crate::node::view::NodeView;
use crate::raft::{NodeId, Role};
use crate::shard::{ShardId, ShardMap, Slot};
use crate::sockets::{read_draining, write_without_waiting};
use bytes::BytesMut;
use std::collections::{BTreeMap, VecDeque};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

/// Everything a connection handler needs, shared by all connections of a node.
pub struct ServerContext {
    /// This node.
    pub me: NodeId,
    /// The cluster's configuration.
    pub config: ClusterConfig,
    /// Which shard owns which slots, and where its replicas live.
    pub shard_map: ShardMap,
    /// What the driver published after its last round.
    pub view: Arc<RwLock<NodeView>>,
    /// The driver's inbox.
    pub inbox: InboxSender,
    /// The planted bugs this node runs with (for INFO's `planted_bugs`); see [`crate::bugs`].
    pub planted_bugs: BugSet,
    /// Open client connections.
    pub connections: AtomicUsize,
    /// Leaders of shards hosted elsewhere, as their leaders announced.
    pub remote_leaders: RemoteLeaders,
    /// When the node started (for INFO's uptime).
    pub started: std::time::Instant,
    /// The peer transport's counters (for INFO's stats section).
    pub transport_stats: Arc<TransportStats>,
}

/// Accepts client connections until the listener fails.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<ServerContext>) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a client connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let open = ctx.connections.fetch_add(1, Ordering::Relaxed);
        if open >= ctx.config.limits.connections_max {
            ctx.connections.fetch_sub(1, Ordering::Relaxed);
            let _ = stream
                .write_all(&reply::too_many_connections().to_bytes())
                .await;
            continue;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            serve_connection(stream, &ctx).await;
            ctx.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A connection's answers, in request order.
enum Answer {
    /// Still with the driver.
    Waiting,
    /// Known; written once every answer before it is.
    Ready(Frame),
    /// Close the connection after the answers before it.
    Close,
}

/// The write side of a client connection, shared by its task and by the driver: answers take
/// their place in request order, and whoever completes the head of the line writes what is
/// ready straight to the socket (a non-blocking write; what the socket does not take waits in
/// the backlog for the connection's task). An answer from the driver thus reaches the client
/// without waking the connection's task.
struct ReplySink {
    stream: TcpStream,
    state: Mutex<SinkState>,
    /// Wakes the connection's task (see [`Flush::flush`] for when).
    wake: Notify,
}

struct SinkState {
    answers: VecDeque<Answer>,
    /// The sequence number of `answers[0]`.
    head: u64,
    /// Answers still with the driver.
    waiting: usize,
    /// Encoded answers the socket has not taken yet.
    backlog: BytesMut,
    /// The task waits for `waiting` to reach 0 (an ordering barrier, or the client left).
    task_waits_settled: bool,
    /// Writing failed: the client is gone, answers are dropped.
    broken: bool,
    /// The driver will flush this sink at the end of its iteration.
    flush_queued: bool,
}

impl ReplySink {
    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().expect("reply sink lock poisoned")
    }

    /// Appends an answer known at once, or the close marker.
    fn push(&self, answer: Answer) {
        self.lock().answers.push_back(answer);
    }

    /// Appends a slot for an answer from the driver and returns its sequence number; with
    /// `pending_max` answers awaited already, appends that error instead and returns `None`.
    fn push_waiting(&self, pending_max: usize) -> Option<u64> {
        let mut st = self.lock();
        if st.waiting >= pending_max {
            st.answers
                .push_back(Answer::Ready(reply::too_many_pending(pending_max)));
            return None;
        }
        st.waiting += 1;
        st.answers.push_back(Answer::Waiting);
        Some(st.head + st.answers.len() as u64 - 1)
    }

    /// Fills slot `seq` (a second answer for it is ignored). What became ready is written at
    /// once when no other answer is awaited; otherwise when the driver ends its iteration (see
    /// [`Flush`]), so that answers to a pipeline leave together.
    fn answer(self: &Arc<Self>, seq: u64, frame: Frame) {
        let mut st = self.lock();
        let Some(i) = seq.checked_sub(st.head) else {
            return;
        };
        let Some(slot) = st.answers.get_mut(i as usize) else {
            return;
        };
        if !matches!(slot, Answer::Waiting) {
            return;
        }
        *slot = Answer::Ready(frame);
        st.waiting -= 1;
        if st.waiting == 0 {
            // The connection's last open request (always so without pipelining): out at once.
            drop(st);
            self.flush();
        } else if !std::mem::replace(&mut st.flush_queued, true) {
            drop(st);
            flush_later(self.clone());
        }
    }
}

impl Flush for ReplySink {
    /// Writes what is ready, and wakes the task only when it has something to do: a backlog
    /// to drain, a close to carry out, or a barrier that just cleared.
    fn flush(&self) {
        let mut st = self.lock();
        st.flush_queued = false;
        self.write_ready(&mut st);
        let wake = !st.backlog.is_empty()
            || matches!(st.answers.front(), Some(Answer::Close))
            || (st.task_waits_settled && st.waiting == 0);
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }
}

impl ReplySink {
    /// Encodes the ready answers at the head of the line and, unless the task is already
    /// draining a backlog, writes them without waiting.
    fn write_ready(&self, st: &mut SinkState) {
        let idle = st.backlog.is_empty();
        while let Some(Answer::Ready(_)) = st.answers.front() {
            let Some(Answer::Ready(frame)) = st.answers.pop_front() else {
                unreachable!("the front was just looked at");
            };
            st.head += 1;
            if !st.broken {
                frame.encode(&mut st.backlog);
            }
        }
        if idle && !st.backlog.is_empty() {
            self.try_write(st);
        }
    }

    fn try_write(&self, st: &mut SinkState) {
        if write_without_waiting(&self.stream, &mut st.backlog).is_err() {
            st.broken = true;
            st.backlog.clear();
        }
    }
}

/// Room made in a connection's read buffer before each read.
const READ_CHUNK_BYTES: usize = 4096;

/// Bytes of answers a client has not read yet before its connection stops reading requests.
const UNREAD_ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

async fn serve_connection(stream: TcpStream, ctx: &Arc<ServerContext>) {
    let sink = Arc::new(ReplySink {
        stream,
        state: Mutex::new(SinkState {
            answers: VecDeque::new(),
            head: 0,
            waiting: 0,
            backlog: BytesMut::new(),
            task_waits_settled: false,
            broken: false,
            flush_queued: false,
        }),
        wake: Notify::new(),
    });
    let stream = &sink.stream;
    let pending_max = ctx.config.limits.pending_requests_max;
    let limits = ctx.config.limits.frame_limits();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // A parsed request that must wait until the requests before it are answered.
    let mut held: Option<(Slot, OpKind)> = None;
    // Whether the last request sent to the driver was a write.
    let mut last_was_write = false;
    // No more requests are read: the client closed its side, quit, or broke the protocol.
    let mut done_reading = false;
    loop {
        // Pipelined requests execute in connection order, as in Redis: a run of writes (log
        // order) or of reads (no effects) may be in flight together, but a read after a write
        // waits until the write is applied, and a write after a read until the read is served.
        if held.is_some() && sink.lock().waiting == 0 {
            let (slot, kind) = held.take().expect("checked above");
            last_was_write = matches!(kind, OpKind::Write(_));
            to_shard(ctx, &sink, slot, kind, pending_max);
        }
        while held.is_none() && !done_reading {
            match Frame::parse(&mut buf, &limits) {
                Ok(Some(frame)) => match prepare(ctx, frame) {
                    Step::Now(f) => {
                        sink.push(Answer::Ready(f));
                    }
                    Step::Close => {
                        sink.push(Answer::Ready(Frame::Simple("OK".into())));
                        sink.push(Answer::Close);
                        done_reading = true;
                    }
                    Step::Keyed { slot, kind } => {
                        let is_write = matches!(kind, OpKind::Write(_));
                        if is_write != last_was_write && sink.lock().waiting > 0 {
                            held = Some((slot, kind));
                            break;
                        }
                        last_was_write = is_write;
                        to_shard(ctx, &sink, slot, kind, pending_max);
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    // Like Redis: a protocol error is answered, then the connection is closed,
                    // since the stream can no longer be framed.
                    sink.push(Answer::Ready(protocol_error(&e)));
                    sink.push(Answer::Close);
                    done_reading = true;
                }
            }
        }
        // What is ready goes out now; then decide what to wait for.
        let (drain, reading) = {
            let mut st = sink.lock();
            sink.write_ready(&mut st);
            if st.broken {
                return;
            }
            let closing = matches!(st.answers.front(), Some(Answer::Close));
            let drained = st.backlog.is_empty();
            if drained && (closing || (done_reading && st.answers.is_empty())) {
                return;
            }
            if held.is_some() && st.waiting == 0 {
                continue;
            }
            st.task_waits_settled = held.is_some() || done_reading;
            // A client that sends but does not read is not read from either, once its unread
            // answers pass a bound (backpressure through TCP, as Redis's output buffer limit).
            let room = st.backlog.len() < UNREAD_ANSWER_BYTES_MAX;
            (!drained, !done_reading && held.is_none() && room)
        };
        tokio::select! {
            () = sink.wake.notified() => {}
            ready = stream.writable(), if drain => {
                if ready.is_err() {
                    return;
                }
                let mut st = sink.lock();
                sink.try_write(&mut st);
            }
            ready = stream.readable(), if reading => {
                if ready.is_err() {
                    done_reading = true;
                    continue;
                }
                buf.reserve(READ_CHUNK_BYTES);
                // A read that drains the socket drops its readiness (see `read_draining`).
                match read_draining(stream, &mut buf) {
                    Ok(0) => done_reading = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => done_reading = true,
                }
            }
        }
    }
}

fn protocol_error(e: &FrameError) -> Frame {
    Frame::Error(format!("ERR Protocol error: {e}"))
}

/// A parsed request: answered on the spot, or bound for a shard.
enum Step {
    Now(Frame),
    Close,
    Keyed { slot: Slot, kind: OpKind },
}

fn prepare(ctx: &ServerContext, frame: Frame) -> Step {
    let request = match Request::parse(frame) {
        Ok(r) => r,
        Err(e) => return Step::Now(e.to_frame()),
    };
    let now = Step::Now;
    let kind = match &request {
        Request::Ping(None) => return now(Frame::Simple("PONG".into())),
        Request::Ping(Some(m)) | Request::Echo(m) => return now(Frame::Bulk(m.clone())),
        Request::Quit => return Step::Close,
        Request::DbSize => return now(Frame::Integer(dbsize(ctx))),
        Request::Info(section) => return now(info(ctx, section.as_deref())),
        Request::Cluster(c) => return now(cluster(ctx, c)),
        _ => {
            if let Some(query) = request.to_query() {
                OpKind::Read(query)
            } else if let Some(cmd) = request.to_command() {
                if let Err(e) = request.check_value_bytes(ctx.config.limits.value_bytes_max) {
                    return now(e.to_frame());
                }
                OpKind::Write(cmd)
            } else {
                unreachable!(
                    "{} is neither answered here, a read nor a write",
                    request.name()
                )
            }
        }
    };
    match request.slot() {
        Ok(Some(slot)) => Step::Keyed { slot, kind },
        Ok(None) => now(Frame::Error("ERR the command has no key".into())),
        Err(e) => now(e.to_frame()),
    }
}

/// Routes a keyed operation: to the driver when this node leads the keys' shard (its answer
/// fills a slot in the connection's line), else an immediate redirect or retry answer.
fn to_shard(
    ctx: &Arc<ServerContext>,
    sink: &Arc<ReplySink>,
    slot: Slot,
    kind: OpKind,
    pending_max: usize,
) {
    let shard = ctx.shard_map.shard_of_slot(slot);
    let (role, leader, leader_silent) = {
        let view = ctx.view.read().expect("view lock poisoned");
        match view.shards.get(&shard) {
            Some(s) => (Some(s.role), s.leader, s.leader_silent),
            None => (None, None, false),
        }
    };
    let now = match role {
        Some(Role::Leader) => None,
        // The leader this node follows has gone quiet: sending the client there would likely
        // bounce it off a dead node and back here until an election ends.
        Some(_) if leader_silent => Some(reply::leader_silent()),
        Some(_) => Some(not_leader(ctx, slot, shard, leader)),
        // Not hosted here: send the client to the leader a peer announced, else to a replica
        // that hosts the shard (it redirects further).
        None => Some(moved(ctx, slot, believed_leader(ctx, None, shard))),
    };
    if let Some(frame) = now {
        sink.push(Answer::Ready(frame));
        return;
    }
    // The slot exists before the driver can answer it.
    let Some(seq) = sink.push_waiting(pending_max) else {
        return;
    };
    let reply = {
        let (ctx, sink) = (ctx.clone(), sink.clone());
        Responder::new(move |reply| sink.answer(seq, render(&ctx, reply, slot)))
    };
    let op = ClientOp { shard, kind, reply };
    // A refused op is answered here; its responder, dropped with it just after, then finds
    // the slot filled and its own "unknown" answer is ignored.
    match ctx.inbox.try_send(DriverInput::Client(op)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => sink.answer(
            seq,
            Frame::Error("TRYAGAIN the node is overloaded; retry shortly".into()),
        ),
        Err(TrySendError::Closed(_)) => {
            sink.answer(seq, Frame::Error("ERR the node is shutting down".into()));
        }
    }
}

fn not_leader(ctx: &ServerContext, slot: Slot, shard: ShardId, leader: Option<NodeId>) -> Frame {
    match leader {
        Some(l) if l != ctx.me => moved(ctx, slot, l),
        _ => {
            tracing::trace!(shard = shard.0, "no leader; client told to try again");
            reply::try_again()
        }
    }
}

fn moved(ctx: &ServerContext, slot: Slot, to: NodeId) -> Frame {
    let addr = ctx
        .config
        .node(to)
        .expect("leaders are configured nodes")
        .advertised_client_addr();
    reply::moved(slot, addr)
}

fn render(ctx: &ServerContext, reply: OpReply, slot: Slot) -> Frame {
    let me = ctx.me;
    match reply {
        OpReply::Applied(outcome) | OpReply::Read(outcome) => Frame::from(outcome),
        OpReply::NotLeader { leader } => {
            let shard = ctx.shard_map.shard_of_slot(slot);
            match leader {
                Some(l) if l != me => moved(ctx, slot, l),
                _ => not_leader(ctx, slot, shard, None),
            }
        }
        OpReply::TryAgain(msg) => Frame::Error(format!("TRYAGAIN {msg}")),
        OpReply::Unknown(msg) => reply::outcome_unknown(&msg),
    }
}

/// Keys in the shards this node leads (each key is counted by exactly one node).
fn dbsize(ctx: &ServerContext) -> i64 {
    let view = ctx.view.read().expect("view lock poisoned");
    view.shards
        .values()
        .filter(|s| s.role == Role::Leader)
        .map(|s| s.keys as i64)
        .sum()
}

fn info(ctx: &ServerContext, section: Option<&str>) -> Frame {
    let view = ctx.view.read().expect("view lock poisoned");
    let shards: Vec<ShardStatus> = view
        .shards
        .iter()
        .map(|(id, v)| ShardStatus {
            shard: *id,
            role: v.role,
            term: v.term,
            leader: v.leader,
            commit: v.commit,
            applied: v.applied,
            key_count: v.keys as usize,
        })
        .collect();
    let node = NodeStatus {
        node: ctx.me,
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: ctx.started.elapsed().as_secs(),
        connected_clients: ctx.connections.load(Ordering::Relaxed),
        planted_bugs: ctx.planted_bugs,
    };
    let mut reply = super::cmd::info::reply(section, &node, &shards);
    if matches!(
        section,
        None | Some("all" | "everything" | "default" | "stats")
    ) {
        if let Frame::Bulk(text) = &reply {
            let t = &ctx.transport_stats;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let mut out = String::from_utf8_lossy(text).into_owned();
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            out.push_str(&format!(
                "# Stats\r\npeer_batches_dropped:{}\r\npeer_inbound_dropped:{}\r\npeer_decode_errors:{}\r\npeer_connects:{}\r\n",
                load(&t.batches_dropped),
                load(&t.inbound_dropped),
                load(&t.decode_errors),
                load(&t.connects),
            ));
            reply = Frame::Bulk(out.into());
        }
    }
    reply
}

/// The node believed to lead `shard`: the leader this node knows for a hosted shard, the one a
/// peer announced for a shard hosted elsewhere, else the preferred replica (a client sent there
/// is redirected further if the guess is wrong).
fn believed_leader(ctx: &ServerContext, view: Option<&NodeView>, shard: ShardId) -> NodeId {
    let local = match view {
        Some(v) => v.shards.get(&shard).map(|s| s.leader),
        None => ctx
            .view
            .read()
            .expect("view lock poisoned")
            .shards
            .get(&shard)
            .map(|s| s.leader),
    };
    let remote = || {
        ctx.remote_leaders
            .read()
            .expect("leaders lock poisoned")
            .get(&shard)
            .map(|(n, _)| *n)
    };
    match local {
        Some(leader) => leader,
        None => remote(),
    }
    .unwrap_or_else(|| ctx.shard_map.shard(shard).preferred_leader)
}

fn cluster(ctx: &ServerContext, req: &ClusterRequest) -> Frame {
    let view = ctx.view.read().expect("view lock poisoned").clone();
    let leaders: Vec<Option<NodeId>> = ctx
        .shard_map
        .shards()
        .iter()
        .map(|s| match view.shards.get(&s.id) {
            Some(local) => local.leader,
            None => ctx
                .remote_leaders
                .read()
                .expect("leaders lock poisoned")
                .get(&s.id)
                .map(|(n, _)| *n),
        })
        .collect();
    let client_addrs: BTreeMap<NodeId, std::net::SocketAddr> = ctx.config.advertised_client_addrs();
    let cv = ClusterView {
        shard_map: &ctx.shard_map,
        leaders: &leaders,
        client_addrs: &client_addrs,
        myself: ctx.me,
    };
    match req {
        ClusterRequest::KeySlot(key) => keyslot_reply(key),
        ClusterRequest::Slots => cv.slots_reply(),
        ClusterRequest::Shards => cv.shards_reply(),
        ClusterRequest::Nodes => cv.nodes_reply(),
        ClusterRequest::Info => cv.info_reply(),
    }
}
