//! `INFO [section]`: a text report (per shard: role, term, leader, commit and applied index).
//! The section name is lower-cased; at most one section is accepted. The server section names the
//! planted bugs the node runs with (`planted_bugs:` a comma list, empty normally).

use super::{Args, CmdError, Request};
use crate::api::Frame;
use crate::bugs::BugSet;
use crate::raft::types::{LogIndex, NodeId, Role, Term};
use crate::shard::ShardId;
use bytes::Bytes;
use std::fmt::Write as _;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match args.remaining() {
        0 => Ok(Request::Info(None)),
        1 => Ok(Request::Info(
            args.next_bytes()
                .map(|s| String::from_utf8_lossy(&s).to_ascii_lowercase()),
        )),
        _ => Err(CmdError::WrongArity("info")),
    }
}

pub(super) fn to_args(section: Option<&str>) -> Vec<Bytes> {
    let mut out = vec![Bytes::from_static(b"INFO")];
    out.extend(section.map(|s| Bytes::copy_from_slice(s.as_bytes())));
    out
}

/// One Raft group's state as `INFO` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard.
    pub shard: ShardId,
    /// This node's role in the group.
    pub role: Role,
    /// This node's current term in the group.
    pub term: Term,
    /// The leader this node knows of, if any.
    pub leader: Option<NodeId>,
    /// The group's commit index as this node knows it.
    pub commit: LogIndex,
    /// The last index applied to this node's state machine.
    pub applied: LogIndex,
    /// Keys in this node's copy of the shard.
    pub key_count: usize,
}

/// What `INFO` reports about the node as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub node: NodeId,
    /// The crate version (`env!("CARGO_PKG_VERSION")`).
    pub version: &'static str,
    /// Seconds since the process started.
    pub uptime_secs: u64,
    /// Open client connections.
    pub connected_clients: usize,
    /// The planted bugs this node runs with (see [`crate::bugs`]); empty normally.
    pub planted_bugs: BugSet,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// The `INFO [section]` reply: Redis's layout (`# Section` headers, `key:value` lines, CRLF line
/// ends, a blank line between sections) as a bulk string. Sections: `server`, `clients`, `raft`
/// (one line per shard: `shard_<id>:role=..,term=..,leader=..,commit=..,applied=..,keys=..`,
/// leader 0 when unknown) and `keyspace`. No section, `all`, `everything` or `default` gives all;
/// an unknown section gives an empty string, as in Redis.
#[must_use]
pub fn reply(section: Option<&str>, node: &NodeStatus, shards: &[ShardStatus]) -> Frame {
    let wants = |name: &str| {
        matches!(section, None | Some("all" | "everything" | "default")) || section == Some(name)
    };
    let mut parts: Vec<String> = Vec::new();
    if wants("server") {
        parts.push(format!(
            "# Server\r\nkvs_version:{}\r\nnode_id:{}\r\nuptime_in_seconds:{}\r\nplanted_bugs:{}\r\n",
            node.version,
            node.node.0,
            node.uptime_secs,
            node.planted_bugs,
        ));
    }
    if wants("clients") {
        parts.push(format!(
            "# Clients\r\nconnected_clients:{}\r\n",
            node.connected_clients
        ));
    }
    if wants("raft") {
        let mut text = String::from("# Raft\r\n");
        for s in shards {
            let _ = write!(
                text,
                "shard_{}:role={},term={},leader={},commit={},applied={},keys={}\r\n",
                s.shard.0,
                role_name(s.role),
                s.term.0,
                s.leader.map_or(0, |n| n.0),
                s.commit.0,
                s.applied.0,
                s.key_count,
            );
        }
        parts.push(text);
    }
    if wants("keyspace") {
        let led: usize = shards
            .iter()
            .filter(|s| s.role == Role::Leader)
            .map(|s| s.key_count)
            .sum();
        parts.push(format!("# Keyspace\r\ndb0:keys={led}\r\n"));
    }
    Frame::Bulk(Bytes::from(parts.join("\r\n")))
}
