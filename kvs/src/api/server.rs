//! The client-facing RESP server: accepts connections, parses pipelined requests, routes each key
//! to its shard, and writes replies back in request order.
//!
//! A request for a shard this node leads goes to the driver; one whose leader is elsewhere gets
//! `-MOVED <slot> <host:port>`; one whose shard has no leader yet gets `-TRYAGAIN`. A write whose
//! fate can no longer be confirmed gets `-UNKNOWN outcome unknown: ...`, which a client must
//! record as "may or may not have happened". Every limit (request size, value size, pending
//! requests per connection, connections per node) answers with a clear error.

use super::cmd::{ClusterRequest, Request, SetCondition};
use super::frame::{Frame, FrameError, FrameLimits};
use crate::config::ClusterConfig;
use crate::node::driver::{ClientOp, DriverInput, OpKind, OpReply, ReadQuery};
use crate::node::view::NodeView;
use crate::raft::{NodeId, Role};
use crate::shard::{key_slot, ShardId, ShardMap, Slot};
use crate::sm::{Command, Outcome};
use bytes::{Bytes, BytesMut};
use std::fmt::Write as _;
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
                .write_all(b"-ERR max number of clients reached\r\n")
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

    let limits = FrameLimits {
        request_bytes_max: ctx.config.limits.request_bytes_max,
        ..FrameLimits::default()
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    'read: loop {
        loop {
            match Frame::parse(&mut buf, &limits) {
                Ok(Some(frame)) => {
                    let p = handle(ctx, frame, &in_flight, pending_max);
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

fn handle(
    ctx: &ServerContext,
    frame: Frame,
    in_flight: &Arc<AtomicUsize>,
    pending_max: usize,
) -> Pending {
    let request = match Request::parse(frame) {
        Ok(r) => r,
        Err(e) => return Pending::Now(Frame::Error(e.to_string())),
    };
    match request {
        Request::Ping(None) => Pending::Now(Frame::Simple("PONG".into())),
        Request::Ping(Some(m)) | Request::Echo(m) => Pending::Now(Frame::Bulk(m)),
        Request::Quit => Pending::Close,
        Request::DbSize => Pending::Now(Frame::Integer(dbsize(ctx))),
        Request::Info(section) => {
            Pending::Now(Frame::Bulk(Bytes::from(info(ctx, section.as_deref()))))
        }
        Request::Cluster(c) => Pending::Now(cluster(ctx, c)),
        Request::Get(key) => to_shard(
            ctx,
            std::slice::from_ref(&key),
            OpKind::Read(ReadQuery::Get(vec![key.clone()])),
            Shape::Single,
            in_flight,
            pending_max,
        ),
        Request::MGet(keys) => {
            let kind = OpKind::Read(ReadQuery::Get(keys.clone()));
            to_shard(ctx, &keys, kind, Shape::Array, in_flight, pending_max)
        }
        Request::Exists(keys) => {
            let kind = OpKind::Read(ReadQuery::Exists(keys.clone()));
            to_shard(ctx, &keys, kind, Shape::Count, in_flight, pending_max)
        }
        Request::Set(args) => {
            let too_big = args.value.len() > ctx.config.limits.value_bytes_max
                || matches!(&args.condition, SetCondition::IfEq(old) if old.len() > ctx.config.limits.value_bytes_max);
            if too_big {
                return Pending::Now(value_too_large(ctx));
            }
            let key = args.key.clone();
            let cmd = Command::Set {
                key: args.key,
                value: args.value,
                condition: args.condition,
            };
            to_shard(
                ctx,
                std::slice::from_ref(&key),
                OpKind::Write(cmd),
                Shape::Outcome,
                in_flight,
                pending_max,
            )
        }
        Request::Del(keys) => {
            let cmd = Command::Del { keys: keys.clone() };
            to_shard(
                ctx,
                &keys,
                OpKind::Write(cmd),
                Shape::Outcome,
                in_flight,
                pending_max,
            )
        }
        Request::Incr(key) => {
            let cmd = Command::Incr { key: key.clone() };
            to_shard(
                ctx,
                std::slice::from_ref(&key),
                OpKind::Write(cmd),
                Shape::Outcome,
                in_flight,
                pending_max,
            )
        }
        Request::MSet(pairs) => {
            if pairs
                .iter()
                .any(|(_, v)| v.len() > ctx.config.limits.value_bytes_max)
            {
                return Pending::Now(value_too_large(ctx));
            }
            let keys: Vec<Bytes> = pairs.iter().map(|(k, _)| k.clone()).collect();
            let cmd = Command::MSet { pairs };
            to_shard(
                ctx,
                &keys,
                OpKind::Write(cmd),
                Shape::Outcome,
                in_flight,
                pending_max,
            )
        }
    }
}

fn value_too_large(ctx: &ServerContext) -> Frame {
    Frame::Error(format!(
        "ERR value too large: the limit is {} bytes",
        ctx.config.limits.value_bytes_max
    ))
}

/// Routes a keyed operation: to the driver when this node leads the keys' shard, else an
/// immediate redirect or retry answer.
fn to_shard(
    ctx: &ServerContext,
    keys: &[Bytes],
    kind: OpKind,
    shape: Shape,
    in_flight: &Arc<AtomicUsize>,
    pending_max: usize,
) -> Pending {
    let Some(first) = keys.first() else {
        return Pending::Now(Frame::Error("ERR wrong number of arguments".into()));
    };
    let slot = key_slot(first);
    if keys.iter().any(|k| key_slot(k) != slot) {
        return Pending::Now(Frame::Error(
            "CROSSSLOT Keys in request don't hash to the same slot".into(),
        ));
    }
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
        // Not hosted here: send the client to a replica that hosts it; it redirects further.
        None => {
            let guess = ctx.shard_map.shard(shard).preferred_leader;
            return Pending::Now(moved(ctx, slot, guess));
        }
    }
    if in_flight.load(Ordering::Relaxed) >= pending_max {
        return Pending::Now(Frame::Error(format!(
            "ERR too many pending requests on this connection (limit {pending_max})"
        )));
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
        _ => Frame::Error(format!(
            "TRYAGAIN shard {} has no leader at the moment",
            shard.0
        )),
    }
}

fn moved(ctx: &ServerContext, slot: Slot, to: NodeId) -> Frame {
    let addr = ctx
        .config
        .node(to)
        .map(|n| n.advertised_client_addr().to_string())
        .unwrap_or_default();
    Frame::Error(format!("MOVED {} {addr}", slot.0))
}

fn render(ctx: &ServerContext, me: NodeId, reply: OpReply, shape: Shape, slot: Slot) -> Frame {
    match reply {
        OpReply::Applied(outcome) => match outcome {
            Outcome::Ok => Frame::Simple("OK".into()),
            Outcome::Nil => Frame::Null,
            Outcome::Integer(i) => Frame::Integer(i),
            Outcome::Error(e) => Frame::Error(e),
        },
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
        OpReply::Unknown(msg) => Frame::Error(format!("UNKNOWN {msg}")),
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

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

fn info(ctx: &ServerContext, section: Option<&str>) -> String {
    let view = ctx.view.read().expect("view lock poisoned").clone();
    let want = |name: &str| {
        section.is_none_or(|s| s.eq_ignore_ascii_case(name) || s.eq_ignore_ascii_case("all"))
    };
    let mut s = String::new();
    if want("server") {
        let _ = write!(
            s,
            "# Server\r\nkvs_version:{}\r\nnode_id:{}\r\nunsafe_local_reads:{}\r\nconnected_clients:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            ctx.me.0,
            if ctx.unsafe_local_reads { "yes (reads are NOT linearizable)" } else { "no" },
            ctx.connections.load(Ordering::Relaxed),
        );
    }
    if want("raft") || want("replication") {
        let _ = write!(s, "# Raft\r\nshards_hosted:{}\r\n", view.shards.len());
        for (id, v) in &view.shards {
            let info = ctx.shard_map.shard(*id);
            let _ = write!(
                s,
                "shard_{}:role={},term={},leader={},commit={},applied={},first_index={},last_index={},keys={},slots={}-{}\r\n",
                id.0,
                role_name(v.role),
                v.term.0,
                v.leader.map_or(0, |l| l.0),
                v.commit.0,
                v.applied.0,
                v.first_index.0,
                v.last_index.0,
                v.keys,
                info.slots.start.0,
                info.slots.end.0,
            );
        }
        s.push_str("\r\n");
    }
    if want("stats") {
        let _ = write!(
            s,
            "# Stats\r\npeer_batches_dropped:{}\r\n\r\n",
            view.batches_dropped
        );
    }
    s
}

/// The node believed to lead `shard`: the known leader for a hosted shard, else the preferred
/// replica (a client sent there is redirected further if that guess is wrong).
fn believed_leader(ctx: &ServerContext, view: &NodeView, shard: ShardId) -> NodeId {
    view.shards
        .get(&shard)
        .and_then(|s| s.leader)
        .unwrap_or_else(|| ctx.shard_map.shard(shard).preferred_leader)
}

fn redis_node_id(id: NodeId) -> String {
    format!("{:040x}", id.0)
}

fn cluster(ctx: &ServerContext, req: ClusterRequest) -> Frame {
    let view = ctx.view.read().expect("view lock poisoned").clone();
    let bulk = |s: String| Frame::Bulk(Bytes::from(s));
    let endpoint = |id: NodeId| {
        let addr = ctx
            .config
            .node(id)
            .map(|n| n.advertised_client_addr())
            .expect("replicas are configured nodes");
        (addr.ip().to_string(), i64::from(addr.port()))
    };
    match req {
        ClusterRequest::KeySlot(key) => Frame::Integer(i64::from(key_slot(&key).0)),
        ClusterRequest::Slots => {
            let mut out = Vec::new();
            for info in ctx.shard_map.shards() {
                let leader = believed_leader(ctx, &view, info.id);
                let mut entry = vec![
                    Frame::Integer(i64::from(info.slots.start.0)),
                    Frame::Integer(i64::from(info.slots.end.0)),
                ];
                let mut order = vec![leader];
                order.extend(info.replicas.iter().copied().filter(|r| *r != leader));
                for n in order {
                    let (ip, port) = endpoint(n);
                    entry.push(Frame::Array(vec![
                        bulk(ip),
                        Frame::Integer(port),
                        bulk(redis_node_id(n)),
                    ]));
                }
                out.push(Frame::Array(entry));
            }
            Frame::Array(out)
        }
        ClusterRequest::Shards => {
            let mut out = Vec::new();
            for info in ctx.shard_map.shards() {
                let leader = believed_leader(ctx, &view, info.id);
                let applied = view.shards.get(&info.id).map_or(0, |s| s.applied.0);
                let nodes = info
                    .replicas
                    .iter()
                    .map(|n| {
                        let (ip, port) = endpoint(*n);
                        Frame::Array(vec![
                            bulk("id".into()),
                            bulk(redis_node_id(*n)),
                            bulk("port".into()),
                            Frame::Integer(port),
                            bulk("ip".into()),
                            bulk(ip.clone()),
                            bulk("endpoint".into()),
                            bulk(ip),
                            bulk("role".into()),
                            bulk(if *n == leader { "master" } else { "replica" }.into()),
                            bulk("replication-offset".into()),
                            Frame::Integer(applied as i64),
                            bulk("health".into()),
                            bulk("online".into()),
                        ])
                    })
                    .collect();
                out.push(Frame::Array(vec![
                    bulk("slots".into()),
                    Frame::Array(vec![
                        Frame::Integer(i64::from(info.slots.start.0)),
                        Frame::Integer(i64::from(info.slots.end.0)),
                    ]),
                    bulk("nodes".into()),
                    Frame::Array(nodes),
                ]));
            }
            Frame::Array(out)
        }
        ClusterRequest::Nodes => {
            let mut text = String::new();
            for n in &ctx.config.nodes {
                let id = NodeId(n.id);
                let addr = n.advertised_client_addr();
                let ranges: Vec<String> = ctx
                    .shard_map
                    .shards()
                    .iter()
                    .filter(|s| believed_leader(ctx, &view, s.id) == id)
                    .map(|s| format!("{}-{}", s.slots.start.0, s.slots.end.0))
                    .collect();
                let flags = if id == ctx.me {
                    "myself,master"
                } else {
                    "master"
                };
                let _ = write!(
                    text,
                    "{} {}:{}@{} {} - 0 0 {} connected",
                    redis_node_id(id),
                    addr.ip(),
                    addr.port(),
                    n.peer_addr.port(),
                    flags,
                    n.id,
                );
                for r in ranges {
                    text.push(' ');
                    text.push_str(&r);
                }
                text.push('\n');
            }
            bulk(text)
        }
        ClusterRequest::Info => {
            let hosted_without_leader = view.shards.values().filter(|s| s.leader.is_none()).count();
            let state = if hosted_without_leader == 0 {
                "ok"
            } else {
                "fail"
            };
            bulk(format!(
                "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_shards_hosted_here:{}\r\ncluster_shards_without_leader_here:{hosted_without_leader}\r\n",
                ctx.config.nodes.len(),
                ctx.shard_map.shards().len(),
                view.shards.len(),
            ))
        }
    }
}
