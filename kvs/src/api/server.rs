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
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

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

async fn serve_connection(stream: TcpStream, ctx: &Arc<ServerContext>) {
    let (mut rd, mut wr) = stream.into_split();
    let pending_max = ctx.config.limits.pending_requests_max;
    let (tx, mut rx) = mpsc::channel::<Pending>(pending_max * 2 + 16);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let writer_in_flight = in_flight.clone();
    let settled = Arc::new(tokio::sync::Notify::new());
    let writer_settled = settled.clone();
    let me = ctx.me;
    let routes = ctx.clone();

    // The writer resolves replies strictly in request order, and writes as many as are ready
    // in one system call.
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::with_capacity(16 * 1024);
        while let Some(p) = rx.recv().await {
            let mut next = Some(p);
            while let Some(p) = next.take() {
                match p {
                    Pending::Now(f) => f.encode(&mut out),
                    Pending::Later { rx, shape, slot } => {
                        let reply = rx.await.unwrap_or_else(|_| {
                            OpReply::Unknown("outcome unknown: the node dropped the request".into())
                        });
                        writer_in_flight.fetch_sub(1, Ordering::Relaxed);
                        writer_settled.notify_one();
                        render(&routes, me, reply, shape, slot).encode(&mut out);
                    }
                    Pending::Close => {
                        let _ = wr.write_all(&out).await;
                        return;
                    }
                }
                if out.len() < 64 * 1024 {
                    next = rx.try_recv().ok();
                }
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    });

    let limits = ctx.config.limits.frame_limits();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Whether the last request sent to the driver was a write.
    let mut last_was_write = false;
    'read: loop {
        loop {
            match Frame::parse(&mut buf, &limits) {
                Ok(Some(frame)) => {
                    let p = match prepare(ctx, frame) {
                        Step::Reply(p) => p,
                        Step::Keyed { slot, kind, shape } => {
                            // Pipelined requests execute in connection order, as in Redis: a
                            // run of writes (log order) or of reads (no effects) may be in
                            // flight together, but a read after a write waits until the write
                            // is applied, and a write after a read until the read is served.
                            let is_write = matches!(kind, OpKind::Write(_));
                            if is_write != last_was_write {
                                loop {
                                    let wake = settled.notified();
                                    if in_flight.load(Ordering::Relaxed) == 0 {
                                        break;
                                    }
                                    wake.await;
                                }
                                last_was_write = is_write;
                            }
                            to_shard(ctx, slot, kind, shape, &in_flight, pending_max)
                        }
                    };
                    let close = matches!(p, Pending::Close);
                    if close {
                        let _ = tx.send(Pending::Now(Frame::Simple("OK".into()))).await;
                    }
                    if tx.send(p).await.is_err() || close {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Like Redis: a protocol error is answered, then the connection is closed,
                    // since the stream can no longer be framed.
                    let _ = tx.send(Pending::Now(protocol_error(&e))).await;
                    let _ = tx.send(Pending::Close).await;
                    break 'read;
                }
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(tx);
    let _ = writer.await;
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
    in_flight: &Arc<AtomicUsize>,
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
    if in_flight.load(Ordering::Relaxed) >= pending_max {
        return Pending::Now(reply::too_many_pending(pending_max));
    }
    let (reply, rx) = oneshot::channel();
    let op = ClientOp { shard, kind, reply };
    match ctx.inbox.try_send(DriverInput::Client(op)) {
        Ok(()) => {
            in_flight.fetch_add(1, Ordering::Relaxed);
            Pending::Later { rx, shape, slot }
        }
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
