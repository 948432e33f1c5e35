//! What the driver publishes for the client-facing side after every round: each hosted shard's
//! role, leader, term, indices, and whether its leader has gone silent. Connection handlers read
//! it to route keys (serve, `-MOVED`, `-TRYAGAIN`) and to answer INFO and CLUSTER without asking
//! the driver. It is read on every keyed request, so it holds plain values only.

use crate::raft::{LogIndex, NodeId, Role, Term};
use crate::shard::ShardId;
use std::collections::BTreeMap;

/// One hosted shard as of the driver's last round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardView {
    /// This node's role in the shard's group.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The group's current term as this node sees it.
    pub term: Term,
    /// This node's commit index.
    pub commit: LogIndex,
    /// This node's applied index.
    pub applied: LogIndex,
    /// Keys in this node's copy of the shard.
    pub keys: u64,
    /// This node follows `leader` (another node) but has not heard from it for more than
    /// [`crate::node::driver::LEADER_SILENT_HEARTBEATS`] heartbeat intervals: it may be dead or
    /// cut off, so a client is told `-TRYAGAIN` rather than `-MOVED` to it.
    // Invariant: false when `role` is leader or `leader` is unknown.
    pub leader_silent: bool,
}

/// Every hosted shard.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    /// Hosted shards by id.
    pub shards: BTreeMap<ShardId, ShardView>,
}
