//! `CLUSTER SLOTS | SHARDS | NODES | KEYSLOT key | INFO`: the cluster topology as Redis Cluster
//! clients expect it. Parsing only; the node builds the replies from its shard map.

use super::{Args, CmdError, Request};
use bytes::Bytes;

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
