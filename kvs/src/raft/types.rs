//! The values the Raft core exchanges with the outside world: identifiers, log entries, hard
//! state, snapshots and messages.
//!
//! This file is the contract between the core (`raft/`), the write-ahead log (`storage/`) and the
//! node runtime (`node/`). It holds plain data only: no I/O, no clock, no encoding.

use bytes::Bytes;
use std::fmt;

/// Identifies a node (a `kvs` process) in the cluster. Node ids start at 1; 0 is never used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A Raft term (Raft paper §5.1). Terms only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// The position of an entry in a group's log. The first real entry has index 1; index 0 stands
/// for "before the log" and has term 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The index right after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index right before this one (saturating at 0).
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Term {
    /// The term right after this one.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A command proposed by the application; `data` is opaque to the core.
    Normal,
    /// The empty entry a new leader appends in its own term so that it can commit entries of
    /// earlier terms (Raft paper §5.4.2, §8). Its `data` is empty; the application skips it.
    Noop,
}

/// One entry of a replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// Normal command or leader no-op.
    pub kind: EntryKind,
    /// The command bytes; empty for a no-op.
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry weighs for flow control (payload plus a fixed header estimate).
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state that must be on stable storage before a node answers any message of the same
/// `Ready` (Raft paper Figure 2, "Persistent state on all servers"; `commit` is kept too so that a
/// restarted node need not wait for a leader to re-learn it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest log index known to be committed.
    pub commit: LogIndex,
}

/// What a snapshot covers: the log up to and including `index`, and the group's voters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The voting members of the group as of `index`.
    pub voters: Vec<NodeId>,
}

/// A state machine snapshot: its metadata and the application's opaque data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The state machine's serialized state.
    pub data: Bytes,
}

/// A linearizable read released by the core: once the application has applied up to `index`,
/// it may serve the read identified by `ctx` from its state machine (Raft thesis §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's identifier, as passed to `read_index`.
    pub ctx: u64,
    /// The commit index at the time the read was confirmed.
    pub index: LogIndex,
}

/// The role a node plays in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote round; its term has not been bumped yet.
    PreCandidate,
    /// Runs an election in a new term.
    Candidate,
    /// Leads the group.
    Leader,
}

/// A message between two members of one Raft group. The node runtime adds the group id when it
/// puts the message on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's term; for a pre-vote request, the term the sender *would* campaign in.
    pub term: Term,
    /// The kind of message and its fields.
    pub body: MessageBody,
}

/// The kinds of messages of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// RequestVote (Raft paper §5.2) or its pre-vote form (thesis §9.6).
    RequestVote {
        /// True for a pre-vote: the receiver does not change its term or vote.
        pre_vote: bool,
        /// The candidate's last log index.
        last_log_index: LogIndex,
        /// The candidate's last log term.
        last_log_term: Term,
        /// True when the election was started by a leadership transfer: receivers vote even if
        /// they heard from a leader recently (thesis §3.10).
        transfer: bool,
    },
    /// The answer to a RequestVote.
    RequestVoteResponse {
        /// Answers a pre-vote request.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// AppendEntries carrying entries (Raft paper §5.3); may be empty to probe.
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// The entries to append, consecutive from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// The answer to an AppendEntries.
    AppendEntriesResponse {
        /// False: the follower's log now matches the leader's up to `index`.
        /// True: the follower has no entry matching (`index`, its term) of the request.
        reject: bool,
        /// On success, the last index the follower's log matches the leader's at; on rejection,
        /// the `prev_log_index` that was rejected.
        index: LogIndex,
        /// On rejection, a hint for fast back-tracking: the follower's largest index `<=` the
        /// rejected one whose term is `<=` the rejected entry's term, and that term.
        reject_hint: Option<(LogIndex, Term)>,
    },
    /// The leader's heartbeat (failure detection, commit propagation, ReadIndex confirmation).
    Heartbeat {
        /// The leader's commit index, capped at what the follower is known to hold.
        commit: LogIndex,
        /// The ReadIndex round this heartbeat confirms, if any; echoed back in the response.
        read_ctx: Option<u64>,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// Echo of the heartbeat's `read_ctx`.
        read_ctx: Option<u64>,
    },
    /// InstallSnapshot (Raft paper §7): the follower's next entry was compacted away.
    InstallSnapshot {
        /// The snapshot to install.
        snapshot: Snapshot,
    },
    /// Leadership transfer: the leader tells an up-to-date target to campaign at once.
    TimeoutNow,
}

impl Message {
    /// True for heartbeats and their responses, which the transport coalesces per peer.
    #[must_use]
    pub fn is_heartbeat(&self) -> bool {
        matches!(
            self.body,
            MessageBody::Heartbeat { .. } | MessageBody::HeartbeatResponse { .. }
        )
    }
}
