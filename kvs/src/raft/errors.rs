//! The typed errors of the Raft core's public API. Expected conditions a caller must handle are
//! values here; broken invariants inside the core are bugs and panic instead.

use super::types::NodeId;
use thiserror::Error;

/// A configuration (or the state restored with it) that the core refuses to start from.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Node id 0 is reserved to mean "nobody".
    #[error("config.id: node id 0 is reserved")]
    ZeroNodeId,
    /// The group has no voters at all.
    #[error("config.voters: the group needs at least one voter")]
    NoVoters,
    /// The node is not one of the group's voters.
    #[error("config.voters: this node ({id}) is not a voter of the group")]
    SelfNotVoter {
        /// This node's id.
        id: NodeId,
    },
    /// A voter is listed twice, or a voter has id 0.
    #[error("config.voters: voter {id} is listed twice or is invalid")]
    BadVoter {
        /// The offending voter.
        id: NodeId,
    },
    /// `heartbeat_ticks` must be at least 1.
    #[error("config.heartbeat_ticks: must be at least 1")]
    ZeroHeartbeatTicks,
    /// The election timeout must be longer than the heartbeat interval, or followers would
    /// time out between two heartbeats of a healthy leader (Raft paper §5.6).
    #[error(
        "config.election_ticks: must be greater than heartbeat_ticks ({heartbeat_ticks}), got {election_ticks}"
    )]
    ElectionTicksTooSmall {
        /// The configured election timeout.
        election_ticks: u32,
        /// The configured heartbeat interval.
        heartbeat_ticks: u32,
    },
    /// A flow-control limit is zero, so nothing could ever be sent.
    #[error("config.{field}: must be at least 1")]
    ZeroLimit {
        /// The name of the field.
        field: &'static str,
    },
    /// The restored durable state contradicts itself (a storage bug or corruption).
    #[error("restored state is inconsistent: {reason}")]
    InconsistentRestore {
        /// What is wrong with it.
        reason: String,
    },
}

/// Why `RawNode::step` refused a message. A refused message changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for {to} delivered to {id}")]
    WrongRecipient {
        /// The addressee of the message.
        to: NodeId,
        /// This node.
        id: NodeId,
    },
    /// The sender is not a voter of this group (or is this node itself).
    #[error("message from {from}, which is not a peer of this group")]
    UnknownSender {
        /// The claimed sender.
        from: NodeId,
    },
}

/// Why a proposal, read or transfer request was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts this; `leader` is the one this node knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader as far as this node knows.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress; proposals wait until it ends (thesis §3.10).
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    /// The command is larger than one AppendEntries message may carry.
    #[error("entry of {size_bytes} bytes exceeds msg_bytes_max {max_bytes}")]
    EntryTooLarge {
        /// The entry's flow-control size.
        size_bytes: u64,
        /// The configured per-message limit.
        max_bytes: u64,
    },
    /// Too many entries are appended but not yet committed; the caller should back off.
    #[error("too many uncommitted entries ({count})")]
    UncommittedLogFull {
        /// Entries appended but not committed.
        count: u64,
    },
    /// Too many reads are waiting for confirmation.
    #[error("too many pending reads ({count})")]
    ReadsPendingFull {
        /// Reads waiting.
        count: usize,
    },
    /// The transfer target is not a voter of the group.
    #[error("{id} is not a voter of this group")]
    UnknownNode {
        /// The requested node.
        id: NodeId,
    },
}
