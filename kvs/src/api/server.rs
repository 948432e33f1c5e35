//! The client-facing RESP server: accepts connections, parses pipelined requests, routes each key
//! to its shard, and writes replies back in request order.
//!
//! A request for a shard this node leads goes to the driver; one whose leader is elsewhere gets
//! `-MOVED <slot> <host:port>`; one whose shard has no leader yet gets `-TRYAGAIN`. A write whose
//! fate can no longer be confirmed gets `-UNKNOWN outcome unknown: ...`, which a client must
//! record as "may or may not have happened". Every limit (request size, value size, pending
//! requests per connection, connections per node) answers with a clear error.

use super::cmd::cluster::{keyslot_reply, ClusterView};
use super::cmd::info::{NodeStatus, ShardStatus};
use super::cmd::{ClusterRequest, Request};
use super::frame::{Frame, FrameError};
use super::reply;
use crate::config::ClusterConfig;
use crate::node::driver::{ClientOp, DriverInput, OpKind, OpReply, ReadQuery};
use crate::node::transport::{RemoteLeaders, TransportStats};
use crate::node::view::NodeView;
use crate::raft::{NodeId, Role};
use crate::shard::{ShardId, ShardMap, Slot};
use bytes::BytesMut;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

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
    pub inbox: SyncSender<DriverInput>,
    /// Reads bypass ReadIndex (deliberately unsafe, for the harness).
    pub unsafe_local_reads: bool,
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

/// A reply slot in the connection's ordered queue.
enum Pending {
    /// Known at once.
    Now(Frame),
    /// Comes from the driver; `shape` says how to render it.
    Later {
        rx: oneshot::Receiver<OpReply>,
        shape: Shape,
        slot: Slot,
    },
    /// Close the connection after the replies before it.
    Close,
}

/// How a driver answer becomes a RESP reply.
#[derive(Clone, Copy)]
enum Shape {
    /// GET: a bulk string or nil.
    Single,
    /// MGET: an array of bulk strings or nils.
    Array,
    /// EXISTS: an integer.
    Count,
    /// Writes: the state machine's outcome.
    Outcome,
}

async fn serve_connection(mut stream: TcpStream, ctx: &Arc<ServerContext>) {
    // One task reads, dispatches and writes, so a request costs one wake-up when its answer
    // comes back (a separate writer task would be woken once more for every request).
    let (mut rd, mut wr) = stream.split();
    let pending_max = ctx.config.limits.pending_requests_max;
    let limits = ctx.config.limits.frame_limits();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    // Replies in request order; `waiting` of them are still with the driver.
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut waiting = 0usize;
    // A parsed request that must wait until the requests before it are answered.
    let mut held: Option<(Slot, OpKind, Shape)> = None;
    // Whether the last request sent to the driver was a write.
    let mut last_was_write = false;
    // No more requests are read: the client closed its side, quit, or broke the protocol.
    let mut done_reading = false;
    loop {
        // Pipelined requests execute in connection order, as in Redis: a run of writes (log
        // order) or of reads (no effects) may be in flight together, but a read after a write
        // waits until the write is applied, and a write after a read until the read is served.
        if waiting == 0 {
            if let Some((slot, kind, shape)) = held.take() {
                last_was_write = matches!(kind, OpKind::Write(_));
                let p = to_shard(ctx, slot, kind, shape, waiting, pending_max);
                waiting += usize::from(matches!(p, Pending::Later { .. }));
                queue.push_back(p);
            }
        }
        while held.is_none() && !done_reading {
            match Frame::parse(&mut buf, &limits) {
                Ok(Some(frame)) => match prepare(ctx, frame) {
                    Step::Reply(Pending::Close) => {
                        queue.push_back(Pending::Now(Frame::Simple("OK".into())));
                        queue.push_back(Pending::Close);
                        done_reading = true;
                    }
                    Step::Reply(p) => queue.push_back(p),
                    Step::Keyed { slot, kind, shape } => {
                        let is_write = matches!(kind, OpKind::Write(_));
                        if is_write != last_was_write && waiting > 0 {
                            held = Some((slot, kind, shape));
                            break;
                        }
                        last_was_write = is_write;
                        let p = to_shard(ctx, slot, kind, shape, waiting, pending_max);
                        waiting += usize::from(matches!(p, Pending::Later { .. }));
                        queue.push_back(p);
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    // Like Redis: a protocol error is answered, then the connection is closed,
                    // since the stream can no longer be framed.
                    queue.push_back(Pending::Now(protocol_error(&e)));
                    queue.push_back(Pending::Close);
                    done_reading = true;
                }
            }
        }
        // Every reply that is ready, in order, goes out in one system call.
        while let Some(front) = queue.front_mut() {
            let reply = match front {
                Pending::Now(_) => None,
                Pending::Later { rx, .. } => match rx.try_recv() {
                    Ok(reply) => Some(reply),
                    Err(oneshot::error::TryRecvError::Empty) => break,
                    Err(oneshot::error::TryRecvError::Closed) => Some(dropped()),
                },
                Pending::Close => {
                    let _ = wr.write_all(&out).await;
                    return;
                }
            };
            match (queue.pop_front(), reply) {
                (Some(Pending::Now(f)), _) => f.encode(&mut out),
                (Some(Pending::Later { shape, slot, .. }), Some(reply)) => {
                    waiting -= 1;
                    render(ctx, ctx.me, reply, shape, slot).encode(&mut out);
                }
                _ => unreachable!("the front was looked at above"),
            }
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if held.is_some() && waiting == 0 {
            continue;
        }
        let reading = !done_reading && held.is_none();
        if queue.is_empty() && !reading {
            return;
        }
        // Sleep until the oldest answer arrives or the client sends more.
        let front = match queue.front_mut() {
            Some(Pending::Later { rx, .. }) => Some(rx),
            _ => None,
        };
        let answer = async {
            match front {
                Some(rx) => rx.await.unwrap_or_else(|_| dropped()),
                None => std::future::pending().await,
            }
        };
        let woke = tokio::select! {
            biased;
            reply = answer => Woke::Answer(reply),
            read = rd.read_buf(&mut buf), if reading => Woke::Read(read),
        };
        match woke {
            Woke::Answer(reply) => {
                if let Some(Pending::Later { shape, slot, .. }) = queue.pop_front() {
                    waiting -= 1;
                    render(ctx, ctx.me, reply, shape, slot).encode(&mut out);
                }
            }
            Woke::Read(Ok(0) | Err(_)) => done_reading = true,
            Woke::Read(Ok(_)) => {}
        }
    }
}

/// What woke a connection up.
enum Woke {
    /// The oldest request's answer came back.
    Answer(OpReply),
    /// Bytes arrived (or the client went away).
    Read(std::io::Result<usize>),
}

/// The answer to a request the driver dropped without replying (it is shutting down).
fn dropped() -> OpReply {
    OpReply::Unknown("outcome unknown: the node dropped the request".into())
}

fn protocol_error(e: &FrameError) -> Frame {
    Frame::Error(format!("ERR Protocol error: {e}"))
}

/// A parsed request: answered on the spot, or bound for a shard.
enum Step {
    Reply(Pending),
    Keyed {
        slot: Slot,
        kind: OpKind,
        shape: Shape,
    },
}

fn prepare(ctx: &ServerContext, frame: Frame) -> Step {
    let request = match Request::parse(frame) {
        Ok(r) => r,
        Err(e) => return Step::Reply(Pending::Now(e.to_frame())),
    };
    let now = |f: Frame| Step::Reply(Pending::Now(f));
    let (kind, shape) = match &request {
        Request::Ping(None) => return now(Frame::Simple("PONG".into())),
        Request::Ping(Some(m)) | Request::Echo(m) => return now(Frame::Bulk(m.clone())),
        Request::Quit => return Step::Reply(Pending::Close),
        Request::DbSize => return now(Frame::Integer(dbsize(ctx))),
        Request::Info(section) => return now(info(ctx, section.as_deref())),
        Request::Cluster(c) => return now(cluster(ctx, c)),
        Request::Get(key) => (
            OpKind::Read(ReadQuery::Get(vec![key.clone()])),
            Shape::Single,
        ),
        Request::MGet(keys) => (OpKind::Read(ReadQuery::Get(keys.clone())), Shape::Array),
        Request::Exists(keys) => (OpKind::Read(ReadQuery::Exists(keys.clone())), Shape::Count),
        Request::Set(_) | Request::Del(_) | Request::Incr(_) | Request::MSet(_) => {
            if let Err(e) = request.check_value_bytes(ctx.config.limits.value_bytes_max) {
                return now(e.to_frame());
            }
            let cmd = request
                .to_command()
                .expect("writes carry a state machine command");
            (OpKind::Write(cmd), Shape::Outcome)
        }
    };
    match request.slot() {
        Ok(Some(slot)) => Step::Keyed { slot, kind, shape },
        Ok(None) => now(Frame::Error("ERR the command has no key".into())),
        Err(e) => now(e.to_frame()),
    }
}

/// Routes a keyed operation: to the driver when this node leads the keys' shard, else an
/// immediate redirect or retry answer.
fn to_shard(
    ctx: &ServerContext,
    slot: Slot,
    kind: OpKind,
    shape: Shape,
    waiting: usize,
    pending_max: usize,
) -> Pending {
    let shard = ctx.shard_map.shard_of_slot(slot);
    let (role, leader) = {
        let view = ctx.view.read().expect("view lock poisoned");
        match view.shards.get(&shard) {
            Some(s) => (Some(s.role), s.leader),
            None => (None, None),
        }
    };
    match role {
        Some(Role::Leader) => {}
        Some(_) => return Pending::Now(not_leader(ctx, slot, shard, leader)),
        // Not hosted here: send the client to the leader a peer announced, else to a replica
        // that hosts the shard (it redirects further).
        None => return Pending::Now(moved(ctx, slot, believed_leader(ctx, None, shard))),
    }
    if waiting >= pending_max {
        return Pending::Now(reply::too_many_pending(pending_max));
    }
    let (reply, rx) = oneshot::channel();
    let op = ClientOp { shard, kind, reply };
    match ctx.inbox.try_send(DriverInput::Client(op)) {
        Ok(()) => Pending::Later { rx, shape, slot },
        Err(TrySendError::Full(_)) => Pending::Now(Frame::Error(
            "TRYAGAIN the node is overloaded; retry shortly".into(),
        )),
        Err(TrySendError::Disconnected(_)) => {
            Pending::Now(Frame::Error("ERR the node is shutting down".into()))
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

fn render(ctx: &ServerContext, me: NodeId, reply: OpReply, shape: Shape, slot: Slot) -> Frame {
    match reply {
        OpReply::Applied(outcome) => Frame::from(outcome),
        OpReply::Values(mut values) => match shape {
            Shape::Single => values.pop().flatten().map_or(Frame::Null, Frame::Bulk),
            _ => Frame::Array(
                values
                    .into_iter()
                    .map(|v| v.map_or(Frame::Null, Frame::Bulk))
                    .collect(),
            ),
        },
        OpReply::Count(n) => Frame::Integer(n),
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
        unsafe_local_reads: ctx.unsafe_local_reads,
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
