//! The Raft protocol state machine of one group member: roles, terms, votes, replication,
//! commitment, ReadIndex and leadership transfer. Rules cite the Raft paper (Ongaro & Ousterhout,
//! 2014, "§") or Ongaro's thesis (2014, "thesis §").
//!
//! Planted bugs (see [`crate::bugs`]), off unless [`Config::bugs`] names them, each break one
//! rule here, at the code that keeps it: `read-index-without-quorum` (`reads_release_at_once`),
//! `vote-twice` (`handle_request_vote`) and `commit-old-term` (`maybe_commit`).
//!
//! Pure: it reads no clock and does no I/O. Outputs (messages, read states, failed reads) are
//! queued here and handed out by `raw_node.rs` in a `Ready`.

use super::config::Config;
use super::errors::{ProposeError, StepError};
use super::log::RaftLog;
use super::progress::{Progress, ProgressState};
use super::rand::SplitMix64;
use super::read_only::{ReadOnly, READS_PENDING_MAX};
use super::types::{
    Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, ReadState, Role, Snapshot, Term,
};
use crate::bugs::Bug;
use bytes::Bytes;
use std::collections::BTreeMap;

/// Most entries a leader holds appended but not committed; beyond it proposals are refused with
/// `UncommittedLogFull` so a leader cut off from its followers cannot grow without bound.
pub const UNCOMMITTED_ENTRIES_MAX: u64 = 1 << 20;

/// The protocol state of one member.
///
/// Invariants: `leader == Some(id)` iff `role == Leader`; `vote`, once set in a term, never
/// changes within it (even with the planted `VoteTwice`, which grants without recording);
/// `progress` holds every voter (this node included) while leader.
#[derive(Debug)]
pub(crate) struct Raft {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    /// Voters except this node, sorted: iteration order must not depend on hashing.
    peers: Vec<NodeId>,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// Leader only: every voter's progress, this node's own being what its storage holds.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: the answers received this round.
    votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last reset: for followers since they last heard a leader, for the leader
    /// since the last check-quorum round.
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    /// This round's election timeout, drawn from `[election_ticks, 2 * election_ticks)`.
    randomized_election_ticks: u32,
    /// Leader only: the node leadership is being handed to.
    pub(crate) transfer_target: Option<NodeId>,
    read_only: ReadOnly,
    rng: SplitMix64,
    /// Ticks since start, for ageing reads.
    now_ticks: u64,
    /// Leader only: entries were appended since the last broadcast; they go out, batched, when
    /// the next `Ready` is built.
    append_pending: bool,
    pub(crate) msgs: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) failed_reads: Vec<u64>,
    match_scratch: Vec<LogIndex>,
}

impl Raft {
    /// A follower in `term` (with `vote`), knowing no leader, over `log`.
    pub(crate) fn new(config: Config, term: Term, vote: Option<NodeId>, log: RaftLog) -> Raft {
        let id = config.id;
        let mut peers: Vec<NodeId> = config.voters.iter().copied().filter(|&v| v != id).collect();
        peers.sort_unstable();
        // Mix the id in so that a group configured with one seed still gets distinct timeouts.
        let rng = SplitMix64::new(config.seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut raft = Raft {
            id,
            peers,
            term,
            vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: config.election_ticks,
            transfer_target: None,
            read_only: ReadOnly::default(),
            rng,
            now_ticks: 0,
            append_pending: false,
            msgs: Vec::new(),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            match_scratch: Vec::new(),
            config,
        };
        raft.reset_randomized_election_ticks();
        raft
    }

    /// Panics if an invariant documented on [`Raft`] is broken (debug builds; called after
    /// every input).
    pub(crate) fn assert_invariants(&self) {
        debug_assert_eq!(
            self.leader == Some(self.id),
            self.role == Role::Leader,
            "leader field and role disagree"
        );
        debug_assert!(self.role != Role::Leader || self.progress.len() == self.config.voters.len());
        debug_assert!(self.role != Role::Candidate || self.vote == Some(self.id));
        self.log.assert_invariants();
    }

    pub(crate) fn is_voter(&self, id: NodeId) -> bool {
        self.config.voters.contains(&id)
    }

    fn quorum(&self) -> usize {
        self.config.quorum()
    }

    fn send(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.msgs.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }

    fn reset_randomized_election_ticks(&mut self) {
        // §5.2: randomized timeouts make split votes rare.
        let base = self.config.election_ticks;
        self.randomized_election_ticks = base + self.rng.below(u64::from(base)) as u32;
    }

    /// Common reset on any role change: a new term forgets the vote (one vote per term, §5.2).
    fn reset(&mut self, term: Term) {
        if term != self.term {
            debug_assert!(term > self.term, "terms only grow");
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_ticks();
        self.votes.clear();
        self.transfer_target = None;
        self.append_pending = false;
        // Reads held as leader can no longer be confirmed; tell the application at once.
        let failed = self.read_only.drain_all();
        self.failed_reads.extend(failed);
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
    }

    fn become_pre_candidate(&mut self) {
        // Thesis §9.6: a pre-candidate keeps its term and vote; only a won pre-vote may bump it.
        let failed = self.read_only.drain_all();
        self.failed_reads.extend(failed);
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.election_elapsed = 0;
        self.reset_randomized_election_ticks();
        self.progress.clear();
    }

    fn become_candidate(&mut self) {
        // §5.2: increment the term and vote for yourself.
        let term = self.term.next();
        self.reset(term);
        self.role = Role::Candidate;
        self.vote = Some(self.id);
        self.progress.clear();
    }

    fn become_leader(&mut self) {
        debug_assert_eq!(self.role, Role::Candidate);
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        let next = self.log.last_index().next();
        self.progress.clear();
        for &v in &self.config.voters {
            let mut pr = Progress::new(
                next,
                self.config.inflight_msgs_max,
                self.config.inflight_bytes_max,
            );
            pr.recent_active = true;
            if v == self.id {
                pr.match_index = self.log.persisted;
                pr.state = ProgressState::Replicate;
            }
            self.progress.insert(v, pr);
        }
        // §5.4.2 / §8: a leader can only commit entries of its own term, so it appends a no-op
        // at once; committing it commits everything before it and lets reads proceed (§6.4).
        self.append_entry(EntryKind::Noop, Bytes::new());
    }

    fn append_entry(&mut self, kind: EntryKind, data: Bytes) -> LogIndex {
        let index = self.log.last_index().next();
        self.log.append_leader(Entry {
            term: self.term,
            index,
            kind,
            data,
        });
        self.append_pending = true;
        index
    }

    // ---- inputs -------------------------------------------------------------------------

    /// One unit of logical time.
    pub(crate) fn tick(&mut self) {
        self.now_ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Followers and candidates: §5.2, a node that hears from no leader within its election
    /// timeout starts an election.
    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_ticks {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            // Check-quorum (thesis §6.2): a leader that has not heard from a majority within an
            // election timeout steps down, so clients stop waiting on a cut-off leader.
            if self.config.check_quorum && !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
            // Transfer (thesis §3.10): abort if the target did not take over within an election
            // timeout, so the leader accepts proposals again.
            self.transfer_target = None;
        }
        let election_ticks = u64::from(self.config.election_ticks);
        let expired = self.read_only.expire(self.now_ticks, election_ticks);
        self.failed_reads.extend(expired);
        for pr in self.progress.values_mut() {
            if pr.state == ProgressState::Snapshot {
                pr.snapshot_elapsed_ticks += 1;
            }
        }
        // §5.2: heartbeats (empty AppendEntries in the paper) keep followers from timing out.
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            let ctx = self.read_only.last_ctx();
            self.bcast_heartbeat(ctx);
        }
    }

    /// Counts the voters heard from since the last call (this node included) and starts a new
    /// interval.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.id;
        let mut active = 0;
        for (&v, pr) in &mut self.progress {
            if v == id || pr.recent_active {
                active += 1;
            }
            pr.recent_active = v == id;
        }
        active >= self.quorum()
    }

    /// Starts an election: a pre-vote round first if configured, unless this is a transfer
    /// (the old leader asked for it, so there is nobody to disrupt).
    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader {
            return;
        }
        if self.config.pre_vote && !transfer {
            self.campaign_pre_vote();
        } else {
            self.campaign_election(transfer);
        }
    }

    fn campaign_pre_vote(&mut self) {
        self.become_pre_candidate();
        self.votes.insert(self.id, true);
        if self.votes_won() {
            self.campaign_election(false);
            return;
        }
        let term = self.term.next();
        self.request_votes(term, true, false);
    }

    fn campaign_election(&mut self, transfer: bool) {
        self.become_candidate();
        self.votes.insert(self.id, true);
        if self.votes_won() {
            self.become_leader();
            return;
        }
        let term = self.term;
        self.request_votes(term, false, transfer);
    }

    fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool) {
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        for i in 0..self.peers.len() {
            let to = self.peers[i];
            self.send(
                to,
                term,
                MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    transfer,
                },
            );
        }
    }

    fn votes_won(&self) -> bool {
        self.votes.values().filter(|&&g| g).count() >= self.quorum()
    }

    fn votes_lost(&self) -> bool {
        self.votes.values().filter(|&&g| !g).count() >= self.quorum()
    }

    /// Appends a command as leader.
    pub(crate) fn propose(&mut self, data: Bytes) -> Result<(Term, LogIndex), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        // Thesis §3.10: during a transfer the leader stops taking new entries so that the
        // target can catch up and take over.
        if self.transfer_target.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        let size_bytes = data.len() as u64 + 24;
        if size_bytes > self.config.msg_bytes_max {
            return Err(ProposeError::EntryTooLarge {
                size_bytes,
                max_bytes: self.config.msg_bytes_max,
            });
        }
        let count = self.log.last_index().0 - self.log.committed.0;
        if count >= UNCOMMITTED_ENTRIES_MAX {
            return Err(ProposeError::UncommittedLogFull { count });
        }
        let index = self.append_entry(EntryKind::Normal, data);
        Ok((self.term, index))
    }

    /// ReadIndex (thesis §6.4) as leader.
    pub(crate) fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let count = self.read_only.len();
        if count >= READS_PENDING_MAX {
            return Err(ProposeError::ReadsPendingFull { count });
        }
        // §6.4 step 1: the commit index is only known to be the group's latest once this leader
        // has committed an entry of its own term; until then the read waits.
        if !self.committed_in_term() {
            self.read_only.add_awaiting(ctx, self.now_ticks);
            return Ok(());
        }
        self.record_read(ctx);
        Ok(())
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    /// Whether a recorded read is released at once, without a confirmation round: a single
    /// voter is its own majority; otherwise only with the planted bug.
    fn reads_release_at_once(&self) -> bool {
        // PLANTED BUG `read-index-without-quorum` (breaks thesis §6.4 step 3: the leader must
        // confirm it still leads by a heartbeat round acknowledged by a majority before
        // releasing a read): a deposed leader that does not know it yet serves stale reads.
        self.quorum() == 1 || self.config.bugs.contains(Bug::ReadIndexWithoutQuorum)
    }

    /// Records a read at the current commit index and starts its confirmation round (§6.4
    /// steps 2–3). A single voter is its own majority and releases at once.
    fn record_read(&mut self, ctx: u64) {
        let index = self.log.committed;
        if self.reads_release_at_once() {
            self.read_states.push(ReadState { ctx, index });
            return;
        }
        self.read_only.add(ctx, index, self.now_ticks, self.id);
        self.bcast_heartbeat(Some(ctx));
    }

    /// Leadership transfer (thesis §3.10).
    pub(crate) fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if !self.is_voter(to) {
            return Err(ProposeError::UnknownNode { id: to });
        }
        if to == self.id || self.transfer_target == Some(to) {
            return Ok(());
        }
        self.transfer_target = Some(to);
        // The abort timer: one election timeout from now (see `tick_leader`).
        self.election_elapsed = 0;
        let up_to_date = self.progress[&to].match_index == self.log.last_index();
        if up_to_date {
            self.send(to, self.term, MessageBody::TimeoutNow);
        } else {
            self.send_append(to, true);
        }
        Ok(())
    }

    /// The application took a snapshot.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        self.log.compact(snapshot);
    }

    /// The application persisted `entries` (the entries of a `Ready`).
    pub(crate) fn on_persisted(&mut self, entries: &[Entry]) {
        let before = self.log.persisted;
        self.log.stable_to(entries);
        if self.role == Role::Leader && self.log.persisted > before {
            // The leader counts itself toward a majority only for what its storage holds.
            let persisted = self.log.persisted;
            if let Some(pr) = self.progress.get_mut(&self.id) {
                pr.maybe_update(persisted);
            }
            if self.maybe_commit() {
                self.bcast_append();
            }
        }
    }

    /// Before a `Ready` is built: send the entries appended since the last broadcast, batched.
    pub(crate) fn flush_appends(&mut self) {
        if self.append_pending {
            self.append_pending = false;
            if self.role == Role::Leader {
                self.bcast_append();
            }
        }
    }

    pub(crate) fn has_pending_appends(&self) -> bool {
        self.append_pending && self.role == Role::Leader && !self.peers.is_empty()
    }

    // ---- messages -----------------------------------------------------------------------

    /// Handles one message from a peer.
    pub(crate) fn step(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.id {
            return Err(StepError::WrongRecipient {
                to: m.to,
                id: self.id,
            });
        }
        if m.from == self.id || !self.is_voter(m.from) {
            return Err(StepError::UnknownSender { from: m.from });
        }
        if m.term > self.term {
            match m.body {
                MessageBody::RequestVote {
                    pre_vote, transfer, ..
                } => {
                    // Lease (thesis §4.2.3, §9.6 with check-quorum): a node that heard from a live
                    // leader within the minimum election timeout ignores vote requests, so a
                    // partitioned node rejoining cannot disrupt a stable leader. A transfer is
                    // the leader's own wish and passes.
                    let in_lease = self.config.check_quorum
                        && self.leader.is_some()
                        && self.election_elapsed < self.config.election_ticks;
                    if in_lease && !transfer {
                        return Ok(());
                    }
                    // A pre-vote request never changes our term (thesis §9.6).
                    if !pre_vote {
                        self.become_follower(m.term, None);
                    }
                }
                // A granted pre-vote carries the term we would campaign in, not a newer term.
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    // §5.1: a newer term means a newer leader, and only a leader sends these.
                    self.become_follower(m.term, Some(m.from));
                }
                _ => {
                    // §5.1: any newer term makes us a follower of that term.
                    self.become_follower(m.term, None);
                }
            }
        } else if m.term < self.term {
            self.handle_stale_term(&m);
            return Ok(());
        }
        if let MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
            ..
        } = m.body
        {
            self.handle_request_vote(m.from, m.term, pre_vote, last_log_index, last_log_term);
            return Ok(());
        }
        match self.role {
            Role::Leader => self.step_leader(m),
            Role::Follower => self.step_follower(m),
            Role::Candidate | Role::PreCandidate => self.step_candidate(m),
        }
        Ok(())
    }

    /// §5.1: a message from an older term is rejected. Some get an answer carrying our term:
    /// a stale leader's AppendEntries/heartbeat (with check-quorum or pre-vote our higher term
    /// may come from an election it could not see, and it must learn of it to step down), and a
    /// pre-vote request (the pre-candidate must learn it is behind, or it would retry forever).
    fn handle_stale_term(&mut self, m: &Message) {
        match m.body {
            MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. }
                if self.config.check_quorum || self.config.pre_vote =>
            {
                self.send(
                    m.from,
                    self.term,
                    MessageBody::AppendEntriesResponse {
                        reject: false,
                        index: LogIndex(0),
                        reject_hint: None,
                    },
                );
            }
            MessageBody::RequestVote { pre_vote: true, .. } => {
                self.send(
                    m.from,
                    self.term,
                    MessageBody::RequestVoteResponse {
                        pre_vote: true,
                        granted: false,
                    },
                );
            }
            _ => {}
        }
    }

    /// §5.2, §5.4.1: grant at most one vote per term, and only to a candidate whose log is at
    /// least as up to date as ours. A pre-vote (thesis §9.6) is granted on the same log rule to
    /// a higher prospective term, without recording anything.
    fn handle_request_vote(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term)
            // PLANTED BUG `vote-twice` (breaks §5.2: at most one vote per term, which is what
            // makes a term's majority, and so its leader, unique): a node that already voted
            // in this term grants another candidate too. Pre-votes are unchanged.
            || (!pre_vote && self.vote.is_some() && self.config.bugs.contains(Bug::VoteTwice));
        if can_vote && self.log.is_up_to_date(last_log_index, last_log_term) {
            // The answer carries the request's term: for a pre-vote that is the prospective term,
            // so the pre-candidate can tell answers of this round from stale ones.
            self.send(
                from,
                term,
                MessageBody::RequestVoteResponse {
                    pre_vote,
                    granted: true,
                },
            );
            if !pre_vote {
                self.election_elapsed = 0;
                // Without the planted `vote-twice` the vote is unset or already `from`; with it
                // the first vote stays recorded (the hard state never changes a term's vote).
                if self.vote.is_none() {
                    self.vote = Some(from);
                }
            }
        } else {
            self.send(
                from,
                self.term,
                MessageBody::RequestVoteResponse {
                    pre_vote,
                    granted: false,
                },
            );
        }
    }

    fn step_leader(&mut self, m: Message) {
        match m.body {
            MessageBody::AppendEntriesResponse {
                reject,
                index,
                reject_hint,
            } => self.handle_append_response(m.from, reject, index, reject_hint),
            MessageBody::HeartbeatResponse { read_ctx } => {
                self.handle_heartbeat_response(m.from, read_ctx);
            }
            // Vote answers of an election already won, or messages of a leader of the same
            // term (impossible: one leader per term, §5.2): nothing to do.
            _ => {}
        }
    }

    fn handle_append_response(
        &mut self,
        from: NodeId,
        reject: bool,
        index: LogIndex,
        reject_hint: Option<(LogIndex, Term)>,
    ) {
        let first_index = self.log.first_index();
        let last_index = self.log.last_index();
        if reject {
            // §5.3 with fast back-tracking: skip every index whose term cannot match, using the
            // follower's (index, term) hint against our own log.
            let next_probe = match reject_hint {
                Some((hint_index, hint_term)) => {
                    self.log.find_conflict_by_term(hint_index, hint_term).0
                }
                None => index.prev(),
            };
            let pr = self.progress.get_mut(&from).expect("voter has progress");
            pr.recent_active = true;
            if pr.maybe_decr_to(index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from, true);
            }
            return;
        }
        if index > last_index {
            // Nobody can match entries this leader never appended; such an answer cannot come
            // from a correct peer of this term. Ignore it rather than count it.
            return;
        }
        let pr = self.progress.get_mut(&from).expect("voter has progress");
        pr.recent_active = true;
        if !pr.maybe_update(index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot => {
                // The snapshot (or something newer) arrived. If our log continues right after
                // what the follower holds, stream from there; if we compacted further in the
                // meantime, probe, which sends the newer snapshot at once.
                if pr.match_index >= pr.pending_snapshot || pr.match_index.next() >= first_index {
                    pr.become_probe();
                    if pr.match_index.next() >= first_index {
                        pr.become_replicate();
                    }
                }
            }
            ProgressState::Replicate => pr.inflights.free_to(index),
        }
        let caught_up = pr.match_index == last_index;
        if self.maybe_commit() {
            self.bcast_append();
        }
        // Pipeline: keep the window full while there is something to send.
        while self.send_append(from, false) {}
        // Thesis §3.10: once the target holds the whole log, tell it to campaign.
        if caught_up && self.transfer_target == Some(from) {
            self.send(from, self.term, MessageBody::TimeoutNow);
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, read_ctx: Option<u64>) {
        let last_index = self.log.last_index();
        let election_ticks = self.config.election_ticks;
        let pr = self.progress.get_mut(&from).expect("voter has progress");
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            pr.inflights.free_first_one();
        }
        // A snapshot unanswered for an election timeout was probably lost: probe again, which
        // resends it if the follower still needs it.
        if pr.state == ProgressState::Snapshot && pr.snapshot_elapsed_ticks >= election_ticks {
            pr.become_probe();
        }
        if pr.match_index < last_index || pr.state == ProgressState::Probe {
            self.send_append(from, true);
        }
        if let Some(ctx) = read_ctx {
            let quorum = self.quorum();
            let released = self.read_only.recv_ack(from, ctx, quorum);
            self.read_states.extend(released);
        }
    }

    fn step_follower(&mut self, m: Message) {
        match m.body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                self.heard_from_leader(m.from);
                self.handle_append_entries(m.from, prev_log_index, prev_log_term, entries, commit);
            }
            MessageBody::Heartbeat { commit, read_ctx } => {
                self.heard_from_leader(m.from);
                self.handle_heartbeat(m.from, commit, read_ctx);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.heard_from_leader(m.from);
                self.handle_snapshot(m.from, snapshot);
            }
            // Thesis §3.10: the leader hands over; campaign now, skipping pre-vote.
            MessageBody::TimeoutNow => self.hup(true),
            _ => {}
        }
    }

    fn heard_from_leader(&mut self, leader: NodeId) {
        self.election_elapsed = 0;
        self.leader = Some(leader);
    }

    fn step_candidate(&mut self, m: Message) {
        match m.body {
            // §5.2: an AppendEntries (or heartbeat, snapshot) of our term comes from the leader
            // of the term: step back to follower and accept it.
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                self.become_follower(self.term, Some(m.from));
                self.handle_append_entries(m.from, prev_log_index, prev_log_term, entries, commit);
            }
            MessageBody::Heartbeat { commit, read_ctx } => {
                self.become_follower(self.term, Some(m.from));
                self.handle_heartbeat(m.from, commit, read_ctx);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.become_follower(self.term, Some(m.from));
                self.handle_snapshot(m.from, snapshot);
            }
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                let pre_round = self.role == Role::PreCandidate;
                if pre_vote != pre_round {
                    return;
                }
                // Granted pre-votes answer with the prospective term; anything else is stale.
                if pre_vote && granted && m.term != self.term.next() {
                    return;
                }
                self.votes.entry(m.from).or_insert(granted);
                if self.votes_won() {
                    if pre_round {
                        self.campaign_election(false);
                    } else {
                        self.become_leader();
                    }
                } else if self.votes_lost() {
                    self.become_follower(self.term, None);
                }
            }
            _ => {}
        }
    }

    /// §5.3 (Figure 2, AppendEntries receiver rules).
    fn handle_append_entries(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) {
        if prev_log_index < self.log.committed {
            // Everything up to our commit index matches any leader's log (Leader Completeness);
            // tell the leader where to continue.
            let index = self.log.committed;
            self.send(
                from,
                self.term,
                MessageBody::AppendEntriesResponse {
                    reject: false,
                    index,
                    reject_hint: None,
                },
            );
            return;
        }
        let body = match self
            .log
            .maybe_append(prev_log_index, prev_log_term, commit, entries)
        {
            Some(last_new) => MessageBody::AppendEntriesResponse {
                reject: false,
                index: last_new,
                reject_hint: None,
            },
            None => {
                let probe_from = prev_log_index.min(self.log.last_index());
                let hint = self.log.find_conflict_by_term(probe_from, prev_log_term);
                MessageBody::AppendEntriesResponse {
                    reject: true,
                    index: prev_log_index,
                    reject_hint: Some(hint),
                }
            }
        };
        self.send(from, self.term, body);
    }

    fn handle_heartbeat(&mut self, from: NodeId, commit: LogIndex, read_ctx: Option<u64>) {
        // The leader caps the commit at what it knows matches here, so everything up to it is
        // ours too; the cap at our last index only guards the commit_to assertion.
        let commit = commit.min(self.log.last_index());
        self.log.commit_to(commit);
        self.send(from, self.term, MessageBody::HeartbeatResponse { read_ctx });
    }

    /// §7: install a snapshot that is ahead of our commit index.
    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        let answer = if index <= self.log.committed {
            // Old news: we already have all it covers.
            self.log.committed
        } else if self.log.match_term(index, term) {
            // §7: our log already holds the snapshot's last entry; keep what follows it and just
            // learn that it is committed.
            self.log.commit_to(index);
            index
        } else {
            self.log.install_snapshot(snapshot);
            index
        };
        self.send(
            from,
            self.term,
            MessageBody::AppendEntriesResponse {
                reject: false,
                index: answer,
                reject_hint: None,
            },
        );
    }

    // ---- leader replication -------------------------------------------------------------

    /// Sends `to` the entries from its next index (at most `msg_bytes_max` of them), or the
    /// snapshot if they were compacted away. Returns true if a message was sent.
    fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let commit = self.log.committed;
        let term = self.term;
        let pr = self.progress.get_mut(&to).expect("voter has progress");
        if pr.is_paused() {
            return false;
        }
        let prev_log_index = pr.next_index.prev();
        let prev_log_term = self.log.term(prev_log_index);
        let entries = self
            .log
            .entries_from(pr.next_index, self.config.msg_bytes_max);
        let (Some(prev_log_term), Ok(entries)) = (prev_log_term, entries) else {
            // §7: the entries this follower needs are compacted; send the snapshot instead.
            let snapshot = self
                .log
                .snapshot
                .clone()
                .expect("a compacted log has a snapshot");
            pr.become_snapshot(snapshot.meta.index);
            self.send(to, term, MessageBody::InstallSnapshot { snapshot });
            return true;
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        match pr.state {
            ProgressState::Replicate => {
                if let Some(last) = entries.last() {
                    let bytes = entries.iter().map(Entry::size_bytes).sum();
                    pr.next_index = last.index.next();
                    pr.inflights.add(last.index, bytes);
                }
            }
            ProgressState::Probe => pr.probe_sent = true,
            ProgressState::Snapshot => unreachable!("paused"),
        }
        self.send(
            to,
            term,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            },
        );
        true
    }

    /// Sends every follower what it is missing (or an empty AppendEntries carrying the commit
    /// index), then keeps streaming to those in the Replicate state while their window allows.
    fn bcast_append(&mut self) {
        for i in 0..self.peers.len() {
            let to = self.peers[i];
            if self.send_append(to, true) {
                while self.send_append(to, false) {}
            }
        }
    }

    /// Heartbeats to every follower, each carrying the commit index capped at what the follower
    /// is known to hold (it may not hold our later entries yet), and the read round `ctx`.
    fn bcast_heartbeat(&mut self, read_ctx: Option<u64>) {
        for i in 0..self.peers.len() {
            let to = self.peers[i];
            let match_index = self.progress[&to].match_index;
            let commit = self.log.committed.min(match_index);
            self.send(to, self.term, MessageBody::Heartbeat { commit, read_ctx });
        }
    }

    /// §5.3, §5.4.2: the commit index advances to the highest index held by a majority, but only
    /// if that entry is of the current term; older entries commit indirectly with it (Figure 8).
    fn maybe_commit(&mut self) -> bool {
        self.match_scratch.clear();
        self.match_scratch
            .extend(self.progress.values().map(|p| p.match_index));
        self.match_scratch.sort_unstable_by(|a, b| b.cmp(a));
        let majority_index = self.match_scratch[self.quorum() - 1];
        // PLANTED BUG `commit-old-term` (breaks §5.4.2, Figure 8): with it an entry of an earlier
        // term commits once a majority holds it, though a later leader may still overwrite it.
        let counting_allowed = self.log.term(majority_index) == Some(self.term)
            || self.config.bugs.contains(Bug::CommitOldTerm);
        if majority_index <= self.log.committed || !counting_allowed {
            return false;
        }
        self.log.commit_to(majority_index);
        // §6.4: reads that waited for this term's first commit can now record their index.
        // (Only the planted `commit-old-term` can commit here without reaching this term.)
        if !self.committed_in_term() {
            return true;
        }
        let awaiting = self.read_only.take_awaiting();
        if !awaiting.is_empty() {
            let index = self.log.committed;
            let single = self.reads_release_at_once();
            for &(ctx, _) in &awaiting {
                if single {
                    self.read_states.push(ReadState { ctx, index });
                } else {
                    self.read_only.add(ctx, index, self.now_ticks, self.id);
                }
            }
            if !single {
                // One confirmation round covers them all (the newest confirms the older ones).
                let last_ctx = awaiting.last().map(|&(ctx, _)| ctx);
                self.bcast_heartbeat(last_ctx);
            }
        }
        true
    }

    pub(crate) fn snapshot_point(&self) -> (LogIndex, Term) {
        self.log.snapshot_point()
    }
}
