//! `CLUSTER SLOTS | SHARDS | NODES | KEYSLOT key | INFO`: the cluster topology as Redis Cluster
//! clients expect it. Parsing, and the replies built from a [`ClusterView`] (what the node knows:
//! the shard map, each shard's current leader, the nodes' advertised addresses).
//!
//! Redis Cluster has one master per node; here every shard has its own leader, so a node may
//! lead several shards' slot ranges and follow in others. The replies describe each shard as a
//! "master" (its leader, or its preferred leader while no leader is known — a client sent there
//! gets `MOVED` or `TRYAGAIN`) with its other replicas as "replicas".

use super::{Args, CmdError, Request};
use crate::api::Frame;
use crate::raft::types::NodeId;
use crate::shard::{key_slot, ShardInfo, ShardMap, Slot, SlotRange, SLOT_COUNT};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A `CLUSTER` subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterRequest {
    /// `CLUSTER SLOTS`: slot ranges with their leader and replicas' addresses.
    Slots,
    /// `CLUSTER SHARDS`: each shard's slots and nodes (Redis 7).
    Shards,
    /// `CLUSTER NODES`: the text listing of nodes.
    Nodes,
    /// `CLUSTER KEYSLOT key`: the key's slot, computed locally.
    KeySlot(Bytes),
    /// `CLUSTER INFO`: `cluster_state:ok` and friends.
    Info,
}

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    let Some(sub) = args.next_bytes() else {
        return Err(CmdError::WrongArity("cluster"));
    };
    let lower = sub.to_ascii_lowercase();
    let (request, arity_name) = match &lower[..] {
        b"slots" => (ClusterRequest::Slots, "cluster|slots"),
        b"shards" => (ClusterRequest::Shards, "cluster|shards"),
        b"nodes" => (ClusterRequest::Nodes, "cluster|nodes"),
        b"info" => (ClusterRequest::Info, "cluster|info"),
        b"keyslot" => {
            return match (args.remaining(), args.next_bytes()) {
                (1, Some(key)) => Ok(Request::Cluster(ClusterRequest::KeySlot(key))),
                _ => Err(CmdError::WrongArity("cluster|keyslot")),
            }
        }
        _ => {
            return Err(CmdError::UnknownSubcommand {
                command: "CLUSTER",
                sub: super::lossy_prefix(&sub),
            })
        }
    };
    if args.remaining() != 0 {
        return Err(CmdError::WrongArity(arity_name));
    }
    Ok(Request::Cluster(request))
}

pub(super) fn to_args(sub: &ClusterRequest) -> Vec<Bytes> {
    let mut out = vec![Bytes::from_static(b"CLUSTER")];
    match sub {
        ClusterRequest::Slots => out.push(Bytes::from_static(b"SLOTS")),
        ClusterRequest::Shards => out.push(Bytes::from_static(b"SHARDS")),
        ClusterRequest::Nodes => out.push(Bytes::from_static(b"NODES")),
        ClusterRequest::Info => out.push(Bytes::from_static(b"INFO")),
        ClusterRequest::KeySlot(key) => {
            out.push(Bytes::from_static(b"KEYSLOT"));
            out.push(key.clone());
        }
    }
    out
}

/// What a node knows of the cluster, from which the `CLUSTER` replies are built.
#[derive(Clone, Copy, Debug)]
pub struct ClusterView<'a> {
    /// The shard map.
    pub shard_map: &'a ShardMap,
    /// Each shard's leader as this node last heard, indexed by shard id; `None` while unknown.
    /// A missing index counts as unknown.
    pub leaders: &'a [Option<NodeId>],
    /// Each node's advertised client address. A node missing here is reported as host `?`
    /// (Redis's "unknown node"), which clients skip.
    pub client_addrs: &'a BTreeMap<NodeId, SocketAddr>,
    /// The node answering.
    pub myself: NodeId,
}

/// A node's 40-hex-digit Redis Cluster id: the numeric id, zero-padded.
#[must_use]
pub fn redis_node_id(node: NodeId) -> String {
    format!("{:040x}", node.0)
}

/// `CLUSTER KEYSLOT key`'s reply.
#[must_use]
pub fn keyslot_reply(key: &[u8]) -> Frame {
    Frame::Integer(i64::from(key_slot(key).0))
}

fn simple_bulk(text: &str) -> Frame {
    Frame::bulk(text)
}

impl ClusterView<'_> {
    /// The shard's leader if known.
    fn known_leader(&self, shard: &ShardInfo) -> Option<NodeId> {
        self.leaders.get(shard.id.0 as usize).copied().flatten()
    }

    /// The shard's replicas, the one to report as master first.
    fn ordered_replicas(&self, shard: &ShardInfo) -> Vec<NodeId> {
        let master = self.known_leader(shard).unwrap_or(shard.preferred_leader);
        let mut out = vec![master];
        out.extend(shard.replicas.iter().copied().filter(|n| *n != master));
        out
    }

    fn host_port(&self, node: NodeId) -> (String, i64) {
        match self.client_addrs.get(&node) {
            Some(addr) => (addr.ip().to_string(), i64::from(addr.port())),
            None => ("?".to_string(), 0),
        }
    }

    /// `CLUSTER SLOTS`: per shard `[start, end, [host, port, id], ...]`, master first.
    #[must_use]
    pub fn slots_reply(&self) -> Frame {
        let shards = self.shard_map.shards().iter().map(|shard| {
            let mut entry = vec![
                Frame::Integer(i64::from(shard.slots.start.0)),
                Frame::Integer(i64::from(shard.slots.end.0)),
            ];
            for node in self.ordered_replicas(shard) {
                let (host, port) = self.host_port(node);
                entry.push(Frame::Array(vec![
                    simple_bulk(&host),
                    Frame::Integer(port),
                    simple_bulk(&redis_node_id(node)),
                ]));
            }
            Frame::Array(entry)
        });
        Frame::Array(shards.collect())
    }

    /// `CLUSTER SHARDS` (Redis 7): per shard a flat map `slots [start, end] nodes [...]`, each
    /// node a flat map of `id, port, ip, endpoint, role, replication-offset, health`.
    #[must_use]
    pub fn shards_reply(&self) -> Frame {
        let shards = self.shard_map.shards().iter().map(|shard| {
            let nodes = self
                .ordered_replicas(shard)
                .into_iter()
                .enumerate()
                .map(|(i, node)| {
                    let (host, port) = self.host_port(node);
                    Frame::Array(vec![
                        simple_bulk("id"),
                        simple_bulk(&redis_node_id(node)),
                        simple_bulk("port"),
                        Frame::Integer(port),
                        simple_bulk("ip"),
                        simple_bulk(&host),
                        simple_bulk("endpoint"),
                        simple_bulk(&host),
                        simple_bulk("role"),
                        simple_bulk(if i == 0 { "master" } else { "replica" }),
                        simple_bulk("replication-offset"),
                        Frame::Integer(0),
                        simple_bulk("health"),
                        simple_bulk("online"),
                    ])
                })
                .collect();
            Frame::Array(vec![
                simple_bulk("slots"),
                Frame::Array(vec![
                    Frame::Integer(i64::from(shard.slots.start.0)),
                    Frame::Integer(i64::from(shard.slots.end.0)),
                ]),
                simple_bulk("nodes"),
                Frame::Array(nodes),
            ])
        });
        Frame::Array(shards.collect())
    }

    /// `CLUSTER NODES`: one line per node,
    /// `<id> <ip:port@cport> <flags> - 0 0 0 connected <slot ranges it leads...>`, as a bulk
    /// string. Every node is flagged `master` (it may lead some shards); the answering node also
    /// `myself`. The cluster-bus port is reported as 0: peers do not speak Redis's bus.
    #[must_use]
    pub fn nodes_reply(&self) -> Frame {
        let mut led: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for shard in self.shard_map.shards() {
            let master = self.ordered_replicas(shard)[0];
            let range = if shard.slots.start == shard.slots.end {
                shard.slots.start.0.to_string()
            } else {
                format!("{}-{}", shard.slots.start.0, shard.slots.end.0)
            };
            led.entry(master).or_default().push(range);
        }
        let mut text = String::new();
        for &node in self.shard_map.nodes() {
            let (host, port) = self.host_port(node);
            let flags = if node == self.myself {
                "myself,master"
            } else {
                "master"
            };
            text.push_str(&format!(
                "{} {host}:{port}@0 {flags} - 0 0 0 connected",
                redis_node_id(node)
            ));
            for range in led.get(&node).into_iter().flatten() {
                text.push(' ');
                text.push_str(range);
            }
            text.push('\n');
        }
        Frame::Bulk(Bytes::from(text))
    }

    /// `CLUSTER INFO`: Redis's `key:value` lines (CRLF-separated) as a bulk string.
    /// `cluster_state` is `ok` when every shard has a known leader, else `fail`; slots of
    /// shards without a known leader count as `cluster_slots_pfail`.
    #[must_use]
    pub fn info_reply(&self) -> Frame {
        let shards = self.shard_map.shards();
        let led: u32 = shards
            .iter()
            .filter(|s| self.known_leader(s).is_some())
            .map(|s| s.slots.len())
            .sum();
        let all = u32::from(SLOT_COUNT);
        let state = if led == all { "ok" } else { "fail" };
        let text = format!(
            "cluster_enabled:1\r\n\
             cluster_state:{state}\r\n\
             cluster_slots_assigned:{all}\r\n\
             cluster_slots_ok:{led}\r\n\
             cluster_slots_pfail:{}\r\n\
             cluster_slots_fail:0\r\n\
             cluster_known_nodes:{}\r\n\
             cluster_size:{}\r\n\
             cluster_current_epoch:0\r\n\
             cluster_my_epoch:0\r\n",
            all - led,
            self.shard_map.nodes().len(),
            shards.len(),
        );
        Frame::Bulk(Bytes::from(text))
    }
}

/// A node of a shard as a client learns it from `CLUSTER SHARDS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// The node's 40-hex-digit id.
    pub id: String,
    /// Host or IP address to connect to (`endpoint`, else `ip`).
    pub host: String,
    /// Client port.
    pub port: u16,
    /// Whether the reply names it the shard's master (its Raft leader, or preferred leader).
    pub is_master: bool,
}

impl NodeEndpoint {
    /// `host:port`, for connecting.
    #[must_use]
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One shard as a client learns it from `CLUSTER SHARDS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRoute {
    /// The slot ranges the shard owns.
    pub slots: Vec<SlotRange>,
    /// Its nodes, in reply order.
    pub nodes: Vec<NodeEndpoint>,
}

impl ShardRoute {
    /// The node to send requests to: the master, else the first node.
    #[must_use]
    pub fn master(&self) -> Option<&NodeEndpoint> {
        self.nodes
            .iter()
            .find(|n| n.is_master)
            .or_else(|| self.nodes.first())
    }
}

/// Why a `CLUSTER SHARDS` reply could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected CLUSTER SHARDS reply: {0}")]
pub struct ShardsReplyError(pub String);

fn shards_err(msg: &str) -> ShardsReplyError {
    ShardsReplyError(msg.to_string())
}

/// A RESP2 "map" (flat array of key, value, ...) as (lower-case key, value) pairs.
fn flat_map(frame: &Frame) -> Result<Vec<(String, &Frame)>, ShardsReplyError> {
    let Frame::Array(items) = frame else {
        return Err(shards_err("expected an array of key/value pairs"));
    };
    if items.len() % 2 != 0 {
        return Err(shards_err("odd number of key/value elements"));
    }
    items
        .chunks(2)
        .map(|pair| match &pair[0] {
            Frame::Bulk(k) => Ok((String::from_utf8_lossy(k).to_ascii_lowercase(), &pair[1])),
            Frame::Simple(k) => Ok((k.to_ascii_lowercase(), &pair[1])),
            _ => Err(shards_err("a key that is not a string")),
        })
        .collect()
}

fn frame_text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses a `CLUSTER SHARDS` reply (ours, or a real Redis 7's) into shard routes, for the
/// client library. Unknown keys are ignored; nodes reported with health other than `online`
/// are kept (the client decides).
///
/// # Errors
///
/// [`ShardsReplyError`] when the reply does not have the documented shape.
pub fn parse_shards_reply(frame: &Frame) -> Result<Vec<ShardRoute>, ShardsReplyError> {
    let Frame::Array(shards) = frame else {
        return Err(shards_err("expected an array of shards"));
    };
    let mut routes = Vec::with_capacity(shards.len());
    for shard in shards {
        let mut slots = Vec::new();
        let mut nodes = Vec::new();
        for (key, value) in flat_map(shard)? {
            match key.as_str() {
                "slots" => {
                    let Frame::Array(bounds) = value else {
                        return Err(shards_err("slots is not an array"));
                    };
                    if bounds.len() % 2 != 0 {
                        return Err(shards_err("slots has an odd number of bounds"));
                    }
                    for pair in bounds.chunks(2) {
                        let slot = |f: &Frame| match f {
                            Frame::Integer(n) if (0..i64::from(SLOT_COUNT)).contains(n) => {
                                Ok(Slot(*n as u16))
                            }
                            _ => Err(shards_err("a slot bound is not an integer in 0..16384")),
                        };
                        let (start, end) = (slot(&pair[0])?, slot(&pair[1])?);
                        if start > end {
                            return Err(shards_err("a slot range ends before it starts"));
                        }
                        slots.push(SlotRange { start, end });
                    }
                }
                "nodes" => {
                    let Frame::Array(list) = value else {
                        return Err(shards_err("nodes is not an array"));
                    };
                    for node in list {
                        let (mut id, mut ip, mut endpoint, mut port, mut is_master) =
                            (String::new(), None, None, None, false);
                        for (k, v) in flat_map(node)? {
                            match (k.as_str(), v) {
                                ("id", v) => id = frame_text(v).unwrap_or_default(),
                                ("ip", v) => ip = frame_text(v),
                                ("endpoint", v) => endpoint = frame_text(v),
                                ("port", Frame::Integer(p)) => port = u16::try_from(*p).ok(),
                                ("role", v) => {
                                    is_master = frame_text(v).as_deref() == Some("master");
                                }
                                _ => {}
                            }
                        }
                        let host = endpoint
                            .filter(|h| !h.is_empty() && h != "?")
                            .or(ip)
                            .ok_or_else(|| shards_err("a node without ip or endpoint"))?;
                        let port = port.ok_or_else(|| shards_err("a node without a port"))?;
                        nodes.push(NodeEndpoint {
                            id,
                            host,
                            port,
                            is_master,
                        });
                    }
                }
                _ => {}
            }
        }
        routes.push(ShardRoute { slots, nodes });
    }
    Ok(routes)
}
