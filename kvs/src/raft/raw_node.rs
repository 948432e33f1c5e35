//! The application's handle on one Raft group member (etcd-io/raft's `RawNode` shape): inputs
//! go in through `tick`, `step`, `propose`, `read_index`, `campaign`, `transfer_leader` and
//! `compact`; everything the application must do comes out as a [`Ready`], acknowledged with
//! [`RawNode::advance`].

use super::config::Config;
use super::errors::{ConfigError, ProposeError, StepError};
use super::log::RaftLog;
use super::progress::ProgressState;
use super::raft::Raft;
use super::types::{Entry, HardState, LogIndex, Message, NodeId, ReadState, Role, Snapshot, Term};
use bytes::Bytes;

/// The durable state a node restarts from, as its storage holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// The latest persisted snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The durable log after the snapshot, consecutive from `snapshot.meta.index + 1` (or 1).
    /// No entry's term may exceed `hard_state.term`: storage must make a Ready's hard state
    /// durable no later than its entries (a torn tail keeping entries but losing the hard state
    /// record is refused as inconsistent).
    pub entries: Vec<Entry>,
}

/// One batch of work for the application. Handle it in this order, then call
/// [`RawNode::advance`] with it:
///
/// 1. Persist `hard_state` (if `Some`), `snapshot` (if `Some`) and `entries` — atomically or in
///    that order — and make them durable (fsync). Persist the snapshot before the entries: the
///    entries follow it.
/// 2. Only then send `messages`. They may promise what step 1 wrote: a vote (needs the hard
///    state's vote on disk, Raft paper §5.2) or an AppendEntries acknowledgement (needs the
///    entries on disk, §5.3). A leader's own AppendEntries are also held back until its own
///    write is done; this costs one disk write of latency and keeps the rule uniform.
/// 3. If `snapshot` is `Some`, restore the state machine from it.
/// 4. Apply `committed_entries` in order (skip the data of `Noop` entries). They are always
///    entries this node has already persisted.
/// 5. Serve each of `read_states` once the state machine has applied up to its `index`; answer
///    each of `failed_reads` with an error at once (the read may be retried at the leader).
///
/// `entries[0].index` may be at or below the last index already stored: then the stored suffix
/// from `entries[0].index` on is replaced (never a committed entry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "a Ready must be handled and handed back to advance()"]
pub struct Ready {
    /// Term, vote or commit changed: persist before sending `messages`.
    pub hard_state: Option<HardState>,
    /// Received by InstallSnapshot: persist, then restore the state machine, before `entries`.
    pub snapshot: Option<Snapshot>,
    /// Append to stable storage (replacing a stored suffix from `entries[0].index` on).
    pub entries: Vec<Entry>,
    /// Send only after the above is durable.
    pub messages: Vec<Message>,
    /// Apply in order; skip `Noop` entries' data.
    pub committed_entries: Vec<Entry>,
    /// Reads to serve once `applied >= index`.
    pub read_states: Vec<ReadState>,
    /// Read contexts abandoned (leadership lost, or not confirmable within an election timeout).
    pub failed_reads: Vec<u64>,
}

/// The leader's view of one member's replication, as reported by [`RawNode::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The member.
    pub id: NodeId,
    /// The highest index known to match the leader's log there.
    pub match_index: LogIndex,
    /// The next index to send there.
    pub next_index: LogIndex,
    /// How entries are sent there.
    pub state: ProgressState,
    /// Messages in flight in the Replicate state.
    pub inflight_count: usize,
    /// Heard from since the leader's last quorum check (once an election timeout).
    pub recent_active: bool,
}

/// A read-only summary of the member's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Its vote in `term`.
    pub vote: Option<NodeId>,
    /// The leader it knows of (itself if leader).
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: LogIndex,
    /// The last index the application acknowledged applying.
    pub applied: LogIndex,
    /// The last index on stable storage.
    pub persisted: LogIndex,
    /// The first index still held as an entry (after the snapshot).
    pub first_index: LogIndex,
    /// The last index of the log.
    pub last_index: LogIndex,
    /// The snapshot boundary (index, term).
    pub snapshot: (LogIndex, Term),
    /// Leader only: every member's progress, sorted by id (empty otherwise).
    pub progress: Vec<PeerStatus>,
    /// Leader only: the target of a leadership transfer under way.
    pub transfer_target: Option<NodeId>,
}

/// One member of one Raft group, driven by the application.
#[derive(Debug)]
pub struct RawNode {
    pub(crate) raft: Raft,
    /// The hard state last handed out in a `Ready` (or restored): only changes are handed out.
    prev_hard_state: HardState,
}

impl RawNode {
    /// A member restarting from `restored` (an empty `Restored::default()` for a new group).
    /// It starts as a follower of the restored term, knowing no leader. After a restart the
    /// committed entries after the snapshot are handed out again for applying: the state
    /// machine is rebuilt from the snapshot.
    ///
    /// # Errors
    /// [`ConfigError`] if the configuration is invalid or the restored state inconsistent.
    pub fn new(config: Config, restored: Restored) -> Result<RawNode, ConfigError> {
        config.validate()?;
        let Restored {
            hard_state,
            snapshot,
            entries,
        } = restored;
        let snapshot_index = snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        let mut prev_term = snapshot.as_ref().map_or(Term(0), |s| s.meta.term);
        for (i, e) in entries.iter().enumerate() {
            let expected = LogIndex(snapshot_index.0 + 1 + i as u64);
            if e.index != expected {
                return Err(inconsistent(format!(
                    "entry {} found where {expected} was expected",
                    e.index
                )));
            }
            if e.term < prev_term || e.term > hard_state.term {
                return Err(inconsistent(format!(
                    "entry {} has term {} out of order (hard state term {})",
                    e.index, e.term, hard_state.term
                )));
            }
            prev_term = e.term;
        }
        let last = LogIndex(snapshot_index.0 + entries.len() as u64);
        if hard_state.commit > last {
            return Err(inconsistent(format!(
                "commit {} beyond the last stored index {last}",
                hard_state.commit
            )));
        }
        let log = RaftLog::restore(snapshot, entries, hard_state.commit);
        let raft = Raft::new(config, hard_state.term, hard_state.vote, log);
        let prev_hard_state = HardState {
            term: raft.term,
            vote: raft.vote,
            commit: raft.log.committed,
        };
        Ok(RawNode {
            raft,
            prev_hard_state,
        })
    }

    /// Advances logical time by one tick (election and heartbeat timers).
    pub fn tick(&mut self) {
        self.raft.tick();
        self.raft.assert_invariants();
    }

    /// Handles a message from a peer of the group.
    ///
    /// # Errors
    /// [`StepError`] if the message is not for this node or not from a peer; it is dropped.
    pub fn step(&mut self, msg: Message) -> Result<(), StepError> {
        let result = self.raft.step(msg);
        self.raft.assert_invariants();
        result
    }

    /// Proposes a command. On success it is appended to the leader's log at the returned
    /// (term, index); it is committed once it comes out in `Ready::committed_entries` with that
    /// term at that index (a different term there means it was lost in a leader change).
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] on a non-leader, [`ProposeError::TransferInProgress`] during a
    /// transfer, and the size and backlog limits.
    pub fn propose(&mut self, data: Bytes) -> Result<(Term, LogIndex), ProposeError> {
        self.raft.propose(data)
    }

    /// Starts a linearizable read identified by `ctx` (thesis §6.4). Its answer comes later as
    /// a `ReadState { ctx, index }` in `Ready::read_states`, or as `ctx` in `Ready::failed_reads`.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] on a non-leader; [`ProposeError::ReadsPendingFull`].
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        self.raft.read_index(ctx)
    }

    /// Starts an election now (with a pre-vote round if configured). No-op on a leader.
    pub fn campaign(&mut self) {
        self.raft.hup(false);
    }

    /// Asks the leader to hand leadership to `to` (thesis §3.10). Proposals are refused until
    /// the transfer completes or is aborted after an election timeout.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] on a non-leader; [`ProposeError::UnknownNode`].
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        self.raft.transfer_leader(to)
    }

    /// The application persisted a snapshot of its state machine at `snapshot.meta.index`:
    /// the log up to it is dropped, and the snapshot is kept to send to lagging followers.
    /// Older snapshots than the current one are ignored.
    ///
    /// # Panics
    /// If the index was not yet handed out for applying, or the term disagrees with the log.
    pub fn compact(&mut self, snapshot: Snapshot) {
        self.raft.compact(snapshot);
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.raft.term,
            vote: self.raft.vote,
            commit: self.raft.log.committed,
        }
    }

    /// True if [`RawNode::ready`] has something for the application.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        let raft = &self.raft;
        self.hard_state() != self.prev_hard_state
            || raft.log.pending_snapshot.is_some()
            || raft.log.has_unstable()
            || !raft.msgs.is_empty()
            || raft.has_pending_appends()
            || raft.log.has_next_committed()
            || !raft.read_states.is_empty()
            || !raft.failed_reads.is_empty()
    }

    /// Takes the work accumulated since the last call. Calls may be repeated before
    /// [`RawNode::advance`]; each hands out only what is new.
    pub fn ready(&mut self) -> Ready {
        self.raft.flush_appends();
        let hard_state = self.hard_state();
        let hard_state = if hard_state == self.prev_hard_state {
            None
        } else {
            // Persistence boundary: terms never go back, and a vote is never changed within a
            // term (one vote per term, Raft paper §5.2).
            assert!(
                hard_state.term >= self.prev_hard_state.term,
                "term went back"
            );
            assert!(
                hard_state.term > self.prev_hard_state.term
                    || self.prev_hard_state.vote.is_none()
                    || hard_state.vote == self.prev_hard_state.vote,
                "vote changed within term {}",
                hard_state.term
            );
            self.prev_hard_state = hard_state;
            Some(hard_state)
        };
        let raft = &mut self.raft;
        let ready = Ready {
            hard_state,
            snapshot: raft.log.pending_snapshot.take(),
            entries: raft.log.take_unstable(),
            messages: std::mem::take(&mut raft.msgs),
            committed_entries: raft.log.take_next_committed(),
            read_states: std::mem::take(&mut raft.read_states),
            failed_reads: std::mem::take(&mut raft.failed_reads),
        };
        // Persistence boundary: what goes to disk must be consistent.
        if let Some(hs) = &ready.hard_state {
            assert!(
                hs.commit <= self.raft.log.last_index(),
                "hard state commit beyond the log"
            );
        }
        assert!(
            ready
                .entries
                .windows(2)
                .all(|w| w[1].index == w[0].index.next() && w[1].term >= w[0].term),
            "entries to persist are not consecutive"
        );
        if let (Some(first), Some(snap)) = (ready.entries.first(), &ready.snapshot) {
            assert!(
                first.index > snap.meta.index,
                "entries overlap the snapshot"
            );
        }
        ready
    }

    /// The application has handled `ready` as its docs say: persisted, sent, applied.
    pub fn advance(&mut self, ready: Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.raft.log.applied_to(snapshot.meta.index);
        }
        if !ready.entries.is_empty() {
            self.raft.on_persisted(&ready.entries);
        }
        if let Some(last) = ready.committed_entries.last() {
            self.raft.log.applied_to(last.index);
        }
        self.raft.log.assert_invariants();
    }

    /// This member's role, term and known leader, without the per-peer progress `status`
    /// gathers (cheap enough for every client request).
    #[must_use]
    pub fn role(&self) -> (Role, Term, Option<NodeId>) {
        (self.raft.role, self.raft.term, self.raft.leader)
    }

    /// Commit, applied, first and last index, without allocating.
    #[must_use]
    pub fn indices(&self) -> (LogIndex, LogIndex, LogIndex, LogIndex) {
        let log = &self.raft.log;
        (
            log.committed,
            log.applied,
            log.first_index(),
            log.last_index(),
        )
    }

    /// A summary of the member's state.
    #[must_use]
    pub fn status(&self) -> Status {
        let raft = &self.raft;
        let progress = raft
            .progress
            .iter()
            .map(|(&id, pr)| PeerStatus {
                id,
                match_index: pr.match_index,
                next_index: pr.next_index,
                state: pr.state,
                inflight_count: pr.inflights.count(),
                recent_active: pr.recent_active,
            })
            .collect();
        Status {
            id: raft.id,
            role: raft.role,
            term: raft.term,
            vote: raft.vote,
            leader: raft.leader,
            commit: raft.log.committed,
            applied: raft.log.applied,
            persisted: raft.log.persisted,
            first_index: raft.log.first_index(),
            last_index: raft.log.last_index(),
            snapshot: raft.snapshot_point(),
            progress,
            transfer_target: raft.transfer_target,
        }
    }
}

fn inconsistent(reason: String) -> ConfigError {
    ConfigError::InconsistentRestore { reason }
}
