//! The driver: one loop per node (a task; see `node` for the thread it runs on) that steps every
//! Raft group the node hosts.
//!
//! A round: take what arrived (peer batches, client operations) and the ticks that are due, step
//! the groups, gather every group's `Ready`, write all of it to the shared WAL and `sync` once,
//! then send the messages batched per peer, apply committed entries, and answer the clients whose
//! writes committed or whose reads were confirmed. Only after the sync do messages leave: that
//! is the persistence rule of the `Ready` contract (term, vote and entries on disk before any
//! vote or append response, and before the leader counts itself toward a majority).
//!
//! Planted bugs (see [`crate::bugs`]) that live here, each guarded by its flag in
//! [`DriverConfig::bugs`]: `stale-reads` (reads without ReadIndex), `ack-before-commit` (writes
//! answered when proposed) and `forget-vote` (vote answers before the hard state is durable, and
//! no vote written).
//!
//! The driver never waits on a socket. Its inbox is bounded; when it is full, peers' batches are
//! dropped (Raft tolerates loss) and clients get `-TRYAGAIN` at once.

use super::transport::{Batch, Transport};
use super::view::{NodeView, ShardView};
use super::wal_worker::{PersistItem, WalJob};
use crate::bugs::{Bug, BugSet};
use crate::raft::{
    Entry, EntryKind, HardState, LogIndex, Message, MessageBody, NodeId, ProgressState, RawNode,
    Ready, Restored, Role, Snapshot, SnapshotMeta, Term,
};
use crate::shard::ShardId;
use crate::sm::{Command, Outcome, Query, StateMachine};
use crate::storage::GroupId;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Inputs the driver takes from the async world.
pub enum DriverInput {
    /// A batch of Raft messages from a peer.
    Peer(NodeId, Batch),
    /// An operation from a client connection.
    Client(ClientOp),
    /// Stop after persisting what is in flight.
    Shutdown,
    /// The WAL thread made every job up to this sequence number durable.
    Persisted(u64),
    /// The WAL thread failed; the node must stop.
    StorageFailed(String),
}

/// One client operation for one shard.
pub struct ClientOp {
    /// The shard the keys live in.
    pub shard: ShardId,
    /// What to do.
    pub kind: OpKind,
    /// Where the answer goes.
    pub reply: Responder,
}

/// Where an operation's answer goes: called once, on the driver's thread. One dropped without
/// an answer (the node is stopping) answers "outcome unknown", so no client waits forever.
pub struct Responder(Option<Box<dyn FnOnce(OpReply) + Send>>);

impl Responder {
    /// A responder that hands the answer to `f`.
    pub fn new(f: impl FnOnce(OpReply) + Send + 'static) -> Responder {
        Responder(Some(Box::new(f)))
    }

    /// Answers the operation.
    pub fn send(mut self, reply: OpReply) {
        if let Some(f) = self.0.take() {
            f(reply);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(OpReply::Unknown(
                "outcome unknown: the node dropped the request".into(),
            ));
        }
    }
}

/// Work that answering leaves for the end of the driver's current iteration: a connection that
/// got many answers in one iteration writes them in one system call.
pub trait Flush: Send + Sync {
    /// Does the deferred work.
    fn flush(&self);
}

thread_local! {
    static IS_DRIVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static DEFERRED: std::cell::RefCell<Vec<Arc<dyn Flush>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f.flush()` once the driver finishes its current iteration; at once when called off
/// the driver's thread.
pub fn flush_later(f: Arc<dyn Flush>) {
    if IS_DRIVER.with(std::cell::Cell::get) {
        DEFERRED.with(|d| d.borrow_mut().push(f));
    } else {
        f.flush();
    }
}

fn run_deferred() {
    let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for f in deferred {
        f.flush();
    }
}

/// Runs `f` as the driver's iteration: answers it gives are flushed when it returns. Other
/// tasks sharing the thread are not the driver, so what they answer goes out at once.
fn as_driver<T>(f: impl FnOnce() -> T) -> T {
    IS_DRIVER.with(|d| d.set(true));
    let out = f();
    run_deferred();
    IS_DRIVER.with(|d| d.set(false));
    out
}

/// The driver's inbox: peer batches, client operations, and the WAL thread's reports.
pub type Inbox = tokio::sync::mpsc::Receiver<DriverInput>;
/// Where inputs for the driver are sent.
pub type InboxSender = tokio::sync::mpsc::Sender<DriverInput>;

/// The operations a shard serves.
pub enum OpKind {
    /// A state machine command, replicated through the log.
    Write(Command),
    /// A read (GET, MGET, EXISTS, SMEMBERS, SISMEMBER, SCARD), served after ReadIndex
    /// confirms it (or locally, with the planted bug `stale-reads`).
    Read(Query),
}

/// The answer to a [`ClientOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpReply {
    /// A write committed and was applied, with its result.
    Applied(Outcome),
    /// A read was confirmed and served, with its result.
    Read(Outcome),
    /// This node does not lead the shard; `leader` is who does, if known.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The operation did not happen and may be retried (no leader, overload, lost leadership
    /// before the write was appended, a different entry committed at its index).
    TryAgain(String),
    /// The write was proposed but its fate can no longer be confirmed: it may or may not apply.
    Unknown(String),
}

/// Settings of the driver taken from the cluster configuration.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// This node.
    pub me: NodeId,
    /// The length of one tick.
    pub tick: Duration,
    /// Ticks between two heartbeats (heartbeats to a peer leave together, once an interval).
    pub heartbeat_ticks: u32,
    /// The shortest election timeout, in ticks.
    pub election_ticks: u32,
    /// Hand leadership back to each shard's preferred replica when it is up and caught up.
    pub balance_leaders: bool,
    /// A group takes a snapshot and compacts its log when it holds more entries than this.
    pub snapshot_log_entries_max: u64,
    /// How long a client's write may wait for its commit before it is answered "unknown".
    pub write_timeout: Duration,
    /// How long a read may wait for its confirmation before it is answered "try again".
    pub read_timeout: Duration,
    /// Planted bugs, empty normally; the driver acts on `StaleReads`, `AckBeforeCommit` and
    /// `ForgetVote` (the core and the storage get theirs from their own configurations).
    pub bugs: BugSet,
    /// Inputs taken in one round before the groups are stepped.
    pub round_inputs_max: usize,
}

/// Heartbeat intervals a follower may go without a message from the leader it knows before it
/// calls that leader silent and tells clients `-TRYAGAIN` instead of `-MOVED` to it. A leader
/// sends every follower a heartbeat once an interval, so silence this long means the leader is
/// dead, paused or cut off (sending clients there would make them bounce between the followers
/// and an unreachable node until an election ends). Three, not two, so that one heartbeat
/// delayed on a busy machine does not turn a good redirect into a retry; still well under an
/// election timeout, which is the window this covers.
pub const LEADER_SILENT_HEARTBEATS: u64 = 3;

/// How far behind the leader's log a preferred replica may be for leadership to be handed to
/// it: writes are refused while it catches up, so only a short catch-up is worth it.
const TRANSFER_LAG_MAX: u64 = 1_000;

struct PendingWrite {
    term: Term,
    reply: Responder,
    deadline: Instant,
}

struct PendingRead {
    query: Query,
    reply: Responder,
    deadline: Instant,
}

/// One Raft group hosted here, with its state machine and waiting clients.
pub struct Group {
    shard: ShardId,
    raw: RawNode,
    sm: StateMachine,
    voters: Vec<NodeId>,
    /// Writes proposed and not answered yet, by log index.
    writes: BTreeMap<LogIndex, PendingWrite>,
    /// Reads gathered this round, sent to `read_index` as one batch at the end of the round.
    reads_new: Vec<PendingRead>,
    /// Read batches waiting for their ReadIndex confirmation, by context.
    reads_unconfirmed: BTreeMap<u64, Vec<PendingRead>>,
    /// Confirmed read batches waiting for `applied` to reach their index.
    reads_confirmed: VecDeque<(LogIndex, Vec<PendingRead>)>,
    /// The index of the newest snapshot; a new one is taken when `applied` runs
    /// `snapshot_log_entries_max` past it.
    snapshot_index: LogIndex,
    /// The term of the last applied entry (the term a snapshot taken now carries).
    applied_term: Term,
    /// The term and vote last written to disk and synced.
    durable_term_vote: (Term, Option<NodeId>),
    /// Readys of this group on their way to disk whose application waits for it (one carried a
    /// snapshot; those after it keep the order). Invariant: equals the number of this group's
    /// `PendingReady`s with `apply_when_durable`.
    deferred_readies: usize,
    /// The replica that should lead this shard when it can (see [`Driver::balance_leaders`]).
    preferred_leader: NodeId,
    /// PLANTED BUG `ack-before-commit` only (else always `None`): a copy of the state machine
    /// that has applied every entry of this leader's log up to its `applied` index, in the
    /// term given, to compute the outcome of writes answered before they commit.
    speculative: Option<(Term, StateMachine)>,
    /// While this node leads: the term, and the tick at which it started leading in it.
    leading_since: Option<(Term, u64)>,
    /// The tick before which no new transfer to the preferred replica is tried.
    next_transfer_tick: u64,
    /// The driver tick at which this node last got a message in this group from the node its
    /// core names as leader (0: never). Meaningful only while that leader is another node.
    leader_heard_tick: u64,
}

impl Group {
    /// Builds a group from what recovery found on disk.
    ///
    /// # Errors
    /// The stored snapshot does not decode, or the Raft configuration is invalid.
    pub fn new(
        shard: ShardId,
        raft_config: crate::raft::Config,
        restored: Restored,
        preferred_leader: NodeId,
    ) -> anyhow::Result<Group> {
        let sm = match &restored.snapshot {
            Some(s) => StateMachine::restore(&s.data).map_err(|e| {
                anyhow::anyhow!("shard {}: stored snapshot does not decode: {e}", shard.0)
            })?,
            None => StateMachine::default(),
        };
        let (snapshot_index, applied_term) = restored
            .snapshot
            .as_ref()
            .map_or((LogIndex(0), Term(0)), |s| (s.meta.index, s.meta.term));
        let voters = raft_config.voters.clone();
        let durable_term_vote = (restored.hard_state.term, restored.hard_state.vote);
        let raw = RawNode::new(raft_config, restored)
            .map_err(|e| anyhow::anyhow!("shard {}: {e}", shard.0))?;
        Ok(Group {
            shard,
            raw,
            sm,
            voters,
            writes: BTreeMap::new(),
            reads_new: Vec::new(),
            reads_unconfirmed: BTreeMap::new(),
            reads_confirmed: VecDeque::new(),
            snapshot_index,
            applied_term,
            durable_term_vote,
            deferred_readies: 0,
            speculative: None,
            preferred_leader,
            leading_since: None,
            next_transfer_tick: 0,
            leader_heard_tick: 0,
        })
    }

    /// The Raft core (for the initial campaign of a fresh cluster).
    pub fn raw_mut(&mut self) -> &mut RawNode {
        &mut self.raw
    }
}

/// A group's Ready on its way to disk.
struct PendingReady {
    shard: ShardId,
    ready: Ready,
    /// Its committed entries and reads wait for its persistence (it carries a snapshot, or
    /// follows one of the same group that does); otherwise they were handled at once.
    apply_when_durable: bool,
}

/// The driver's state: every group, the WAL, the transport, the shared view.
pub struct Driver {
    cfg: DriverConfig,
    groups: BTreeMap<ShardId, Group>,
    /// Jobs for the WAL thread, which owns the log.
    wal_jobs: std::sync::mpsc::Sender<WalJob>,
    /// Snapshots for the snapshot thread to save (it then has the WAL compacted).
    snapshot_jobs: std::sync::mpsc::Sender<(GroupId, Snapshot)>,
    /// The sequence number of the last job given to the WAL thread.
    wal_seq: u64,
    /// Rounds whose Readys wait for the WAL thread: each completes (messages sent, `advance`
    /// called) once job `seq` is durable, strictly in order.
    unpersisted: VecDeque<(u64, Vec<PendingReady>)>,
    transport: Transport,
    view: Arc<RwLock<NodeView>>,
    ticks: u64,
    next_read_ctx: u64,
    /// Heartbeats held back until the next heartbeat tick, so that each peer gets them all in
    /// one frame (coalescing across groups).
    heartbeats_held: BTreeMap<NodeId, Batch>,
    /// A heartbeat tick passed: the round flushes the held heartbeats when it ends.
    heartbeat_flush_due: bool,
    /// Role, term, leader and leader silence of each group as last published in the view.
    published_routing: BTreeMap<ShardId, Routing>,
    /// A tick passed since the view's indices were last published.
    view_stale: bool,
}

impl Driver {
    /// Assembles a driver.
    #[must_use]
    pub fn new(
        cfg: DriverConfig,
        groups: BTreeMap<ShardId, Group>,
        wal_jobs: std::sync::mpsc::Sender<WalJob>,
        snapshot_jobs: std::sync::mpsc::Sender<(GroupId, Snapshot)>,
        transport: Transport,
        view: Arc<RwLock<NodeView>>,
    ) -> Driver {
        Driver {
            cfg,
            groups,
            wal_jobs,
            snapshot_jobs,
            wal_seq: 0,
            unpersisted: VecDeque::new(),
            transport,
            view,
            ticks: 0,
            next_read_ctx: 1,
            heartbeats_held: BTreeMap::new(),
            heartbeat_flush_due: false,
            published_routing: BTreeMap::new(),
            view_stale: true,
        }
    }

    /// Runs rounds until `Shutdown` arrives or every sender is gone.
    ///
    /// The driver is a task: on a node with one I/O thread it shares that thread with the
    /// connections' tasks, so handing it a request or a peer's batch wakes no other thread.
    /// A round itself never waits (sockets are written without waiting, the WAL is another
    /// thread's), so the only await is for the next input or tick.
    ///
    /// # Errors
    /// A storage failure (the WAL or a snapshot could not be written): the node must stop, since
    /// it can no longer keep its promises.
    pub async fn run(mut self, mut inbox: Inbox) -> anyhow::Result<()> {
        let result = self.run_loop(&mut inbox).await;
        as_driver(|| drop(self));
        result
    }

    async fn run_loop(&mut self, inbox: &mut Inbox) -> anyhow::Result<()> {
        let mut next_tick = Instant::now() + self.cfg.tick;
        // The first round publishes the view and sends the bootstrap campaigns.
        as_driver(|| self.round())?;
        loop {
            let first = match tokio::time::timeout_at(next_tick.into(), inbox.recv()).await {
                Ok(Some(input)) => Some(input),
                Ok(None) => Some(DriverInput::Shutdown),
                Err(_elapsed) => None,
            };
            let shutdown = as_driver(|| self.iterate(first, inbox, &mut next_tick))?;
            if shutdown {
                tracing::info!(node = self.cfg.me.0, "driver stopped");
                return Ok(());
            }
            // Let the connections' and peers' tasks that are ready run before the next round,
            // so that their inputs are taken together.
            tokio::task::yield_now().await;
        }
    }

    /// One iteration: what arrived, the ticks that fell due, a round. Returns whether to stop.
    fn iterate(
        &mut self,
        first: Option<DriverInput>,
        inbox: &mut Inbox,
        next_tick: &mut Instant,
    ) -> anyhow::Result<bool> {
        let mut shutdown = false;
        if let Some(input) = first {
            shutdown |= self.take(input)?;
        }
        for _ in 1..self.cfg.round_inputs_max {
            match inbox.try_recv() {
                Ok(input) => shutdown |= self.take(input)?,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    shutdown = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        // Ticks that fell due; after a long stall (SIGSTOP) at most a few are replayed so
        // that a node waking up does not fire a burst of elections at once.
        let mut due = 0;
        while *next_tick <= now {
            *next_tick += self.cfg.tick;
            due += 1;
        }
        if due > 3 {
            *next_tick = now + self.cfg.tick;
            due = 3;
        }
        for _ in 0..due {
            self.tick(now);
        }
        self.round()?;
        Ok(shutdown)
    }

    fn take(&mut self, input: DriverInput) -> anyhow::Result<bool> {
        match input {
            DriverInput::Peer(from, batch) => {
                for (group, msg) in batch {
                    let shard = ShardId(group);
                    let Some(g) = self.groups.get_mut(&shard) else {
                        tracing::debug!(shard = group, %from, "message for a shard not hosted here");
                        continue;
                    };
                    if let Err(e) = g.raw.step(msg) {
                        tracing::debug!(shard = group, %from, error = %e, "message rejected");
                    }
                    // Heard from the leader (after the step, which may have named it).
                    if g.raw.role().2 == Some(from) {
                        g.leader_heard_tick = self.ticks;
                    }
                }
                Ok(false)
            }
            DriverInput::Client(op) => {
                self.take_client(op);
                Ok(false)
            }
            DriverInput::Persisted(seq) => {
                while self.unpersisted.front().is_some_and(|(s, _)| *s <= seq) {
                    let (_, readies) = self.unpersisted.pop_front().expect("front exists");
                    self.complete(readies)?;
                }
                run_deferred();
                Ok(false)
            }
            DriverInput::StorageFailed(e) => {
                Err(anyhow::anyhow!("the write-ahead log failed: {e}"))
            }
            DriverInput::Shutdown => Ok(true),
        }
    }

    fn take_client(&mut self, op: ClientOp) {
        let Some(g) = self.groups.get_mut(&op.shard) else {
            op.reply.send(OpReply::NotLeader { leader: None });
            return;
        };
        let (role, _, leader) = g.raw.role();
        if role != Role::Leader {
            let reply = if leader_silent(g, self.cfg.me, self.ticks, self.cfg.heartbeat_ticks) {
                OpReply::TryAgain(format!(
                    "shard {}'s leader has not been heard from lately",
                    g.shard.0
                ))
            } else {
                OpReply::NotLeader { leader }
            };
            op.reply.send(reply);
            return;
        }
        let now = Instant::now();
        match op.kind {
            OpKind::Write(cmd) => match g.raw.propose(cmd.encode()) {
                Ok((term, index)) => {
                    if self.cfg.bugs.contains(Bug::AckBeforeCommit) {
                        if let Some(outcome) = speculate(g, term, index, &cmd) {
                            op.reply.send(OpReply::Applied(outcome));
                            return;
                        }
                    }
                    g.writes.insert(
                        index,
                        PendingWrite {
                            term,
                            reply: op.reply,
                            deadline: now + self.cfg.write_timeout,
                        },
                    );
                }
                Err(e) => {
                    op.reply.send(OpReply::TryAgain(format!(
                        "shard {} could not take the write: {e}",
                        g.shard.0
                    )));
                }
            },
            OpKind::Read(query) => {
                if self.cfg.bugs.contains(Bug::StaleReads) {
                    // PLANTED BUG `stale-reads` (breaks linearizable reads, Raft thesis §6.4): no
                    // confirmation that this node still leads, so a deposed leader that does
                    // not know it yet answers from stale state.
                    let reply = serve_read(&g.sm, &query);
                    op.reply.send(reply);
                } else {
                    g.reads_new.push(PendingRead {
                        query,
                        reply: op.reply,
                        deadline: now + self.cfg.read_timeout,
                    });
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.ticks += 1;
        self.view_stale = true;
        for g in self.groups.values_mut() {
            g.raw.tick();
            expire_waiters(g, now);
            let (role, term, _) = g.raw.role();
            g.leading_since = match g.leading_since {
                Some((t, since)) if role == Role::Leader && t == term => Some((t, since)),
                _ if role == Role::Leader => Some((term, self.ticks)),
                _ => None,
            };
        }
        if self
            .ticks
            .is_multiple_of(u64::from(self.cfg.heartbeat_ticks.max(1)))
        {
            self.heartbeat_flush_due = true;
            if self.cfg.balance_leaders {
                self.balance_leaders();
            }
            let led: Vec<(u32, Term)> = self
                .groups
                .iter()
                .filter_map(|(shard, g)| {
                    let (role, term, _) = g.raw.role();
                    (role == Role::Leader).then_some((shard.0, term))
                })
                .collect();
            self.transport.announce_leaders(&led);
        }
    }

    /// Leader balancing: a shard led here whose preferred replica is another node hands its
    /// leadership over (Raft thesis §3.10) once that replica has been heard from lately and is
    /// close behind the log, so the transfer is quick and refuses writes only briefly. The
    /// placement spreads preferred replicas evenly, so this undoes the pile-up of leaders that
    /// elections leave behind (after a start, a crash or a partition). A node leads for a few
    /// election timeouts before it hands over, and a transfer that did not happen is tried
    /// again only ten election timeouts later, so an unhealthy replica does not make the
    /// shard flap.
    fn balance_leaders(&mut self) {
        let election = u64::from(self.cfg.election_ticks);
        for g in self.groups.values_mut() {
            let Some((_, since)) = g.leading_since else {
                continue;
            };
            let target = g.preferred_leader;
            if target == self.cfg.me
                || self.ticks < since + 3 * election
                || self.ticks < g.next_transfer_tick
            {
                continue;
            }
            let status = g.raw.status();
            // Heard from lately and streaming entries: it holds the log up to what is in flight
            // (the core sends the final TimeoutNow once it has everything).
            let ready = status.transfer_target.is_none()
                && status.progress.iter().any(|p| {
                    p.id == target
                        && p.recent_active
                        && p.state == ProgressState::Replicate
                        && status.last_index.0.saturating_sub(p.match_index.0) <= TRANSFER_LAG_MAX
                });
            if !ready {
                continue;
            }
            g.next_transfer_tick = self.ticks + 10 * election;
            tracing::info!(
                node = self.cfg.me.0,
                shard = g.shard.0,
                term = status.term.0,
                to = target.0,
                "handing leadership to the shard's preferred replica"
            );
            if let Err(e) = g.raw.transfer_leader(target) {
                tracing::warn!(
                    node = self.cfg.me.0,
                    shard = g.shard.0,
                    error = %e,
                    "leadership transfer refused"
                );
            }
        }
    }

    /// Steps every group's `Ready`: persist, send, apply, answer.
    fn round(&mut self) -> anyhow::Result<()> {
        // Each group's reads of this round become one ReadIndex request.
        for g in self.groups.values_mut() {
            if g.reads_new.is_empty() {
                continue;
            }
            let reads = std::mem::take(&mut g.reads_new);
            let ctx = self.next_read_ctx;
            self.next_read_ctx += 1;
            match g.raw.read_index(ctx) {
                Ok(()) => {
                    g.reads_unconfirmed.insert(ctx, reads);
                }
                Err(e) => {
                    for r in reads {
                        r.reply.send(OpReply::TryAgain(format!(
                            "shard {} cannot confirm the read: {e}",
                            g.shard.0
                        )));
                    }
                }
            }
        }

        let mut readies: Vec<(ShardId, Ready)> = Vec::new();
        for (shard, g) in &mut self.groups {
            if g.raw.has_ready() {
                readies.push((*shard, g.raw.ready()));
            }
        }
        if readies.is_empty() {
            self.flush_heartbeats_if_due();
            self.publish_view();
            return Ok(());
        }

        // 1. Some messages may leave before this round's disk write, provided the term and
        //    vote they carry are durable already (a node must never act in a term it could
        //    forget in a crash):
        //    - a leader's AppendEntries (Raft thesis §10.2.1): the core counts the leader
        //      toward a majority only for entries it has persisted (after `advance`), so
        //      followers writing in parallel cannot make an entry commit early;
        //    - heartbeats and their responses, which promise nothing about the log (this keeps
        //      ReadIndex confirmation off the disk's critical path).
        let mut early: Vec<(ShardId, Message)> = Vec::new();
        let forget_vote = self.cfg.bugs.contains(Bug::ForgetVote);
        for (shard, ready) in &mut readies {
            let g = &self.groups[shard];
            if forget_vote {
                // PLANTED BUG `forget-vote` (breaks Raft Figure 2: currentTerm and votedFor are
                // on stable storage before responding to RPCs): vote answers leave now, before
                // this round's hard state is written, and a vote not already on disk is never
                // written (`forget_new_vote`), so a node that restarts can vote again in the
                // term.
                ready.hard_state = ready
                    .hard_state
                    .map(|hs| forget_new_vote(hs, g.durable_term_vote));
                early.extend(
                    ready
                        .messages
                        .extract_if(.., |m| {
                            matches!(
                                m.body,
                                MessageBody::RequestVoteResponse {
                                    pre_vote: false,
                                    ..
                                }
                            )
                        })
                        .map(|m| (*shard, m)),
                );
            }
            let term_vote_durable = ready
                .hard_state
                .is_none_or(|hs| (hs.term, hs.vote) == g.durable_term_vote);
            if term_vote_durable && ready.snapshot.is_none() {
                early.extend(
                    ready
                        .messages
                        .extract_if(.., |m| {
                            matches!(
                                m.body,
                                MessageBody::AppendEntries { .. }
                                    | MessageBody::Heartbeat { .. }
                                    | MessageBody::HeartbeatResponse { .. }
                            ) && m.term == g.durable_term_vote.0
                        })
                        .map(|m| (*shard, m)),
                );
            }
        }
        if !early.is_empty() {
            self.send(early);
        }

        // 2. Apply at once what the core released: committed entries are already durable
        //    here (the core releases only persisted entries), so a client can be answered now
        //    rather than after this round's own disk write. A Ready with a snapshot is applied
        //    only once the snapshot is on disk, and so is every later Ready of that group.
        let mut items = Vec::new();
        let mut pending = Vec::with_capacity(readies.len());
        for (shard, ready) in readies {
            let g = self
                .groups
                .get_mut(&shard)
                .expect("ready from a hosted group");
            let apply_when_durable = ready.snapshot.is_some() || g.deferred_readies > 0;
            if apply_when_durable {
                g.deferred_readies += 1;
            } else {
                apply_ready(g, &ready)?;
                serve_confirmed_reads(g);
            }
            if ready.snapshot.is_some() || !ready.entries.is_empty() || ready.hard_state.is_some() {
                items.push(PersistItem {
                    group: GroupId(u64::from(shard.0)),
                    snapshot: ready.snapshot.clone(),
                    entries: ready.entries.clone(),
                    hard_state: ready.hard_state,
                });
            }
            pending.push(PendingReady {
                shard,
                ready,
                apply_when_durable,
            });
        }

        // Answers go out before the WAL thread is woken (which may take this core).
        run_deferred();

        // 3. Hand the writes to the WAL thread (one sync covers many rounds); the rest of the
        //    messages leave, and `advance` is called, once they are durable.
        if !items.is_empty() {
            self.wal_seq += 1;
            self.wal_jobs
                .send(WalJob::Persist {
                    seq: self.wal_seq,
                    items,
                })
                .map_err(|_| anyhow::anyhow!("the WAL thread stopped"))?;
            self.unpersisted.push_back((self.wal_seq, pending));
        } else if self.unpersisted.is_empty() {
            self.complete(pending)?;
        } else {
            // Nothing to write, but earlier Readys are still on their way to disk: messages
            // keep their order behind them.
            self.unpersisted.push_back((self.wal_seq, pending));
        }
        self.flush_heartbeats_if_due();
        self.publish_view();
        Ok(())
    }

    /// Finishes Readys whose writes are durable: sends their messages, applies what was
    /// deferred, hands them back to the core, and snapshots groups whose log grew long.
    fn complete(&mut self, mut readies: Vec<PendingReady>) -> anyhow::Result<()> {
        for p in &readies {
            if let Some(hs) = p.ready.hard_state {
                let g = self
                    .groups
                    .get_mut(&p.shard)
                    .expect("ready from a hosted group");
                g.durable_term_vote = (hs.term, hs.vote);
            }
        }
        let rest: Vec<(ShardId, Message)> = readies
            .iter_mut()
            .flat_map(|p| {
                let shard = p.shard;
                p.ready.messages.drain(..).map(move |m| (shard, m))
            })
            .collect();
        self.send(rest);
        for p in readies {
            let g = self
                .groups
                .get_mut(&p.shard)
                .expect("ready from a hosted group");
            if p.apply_when_durable {
                g.deferred_readies -= 1;
                apply_ready(g, &p.ready)?;
            }
            g.raw.advance(p.ready);
            serve_confirmed_reads(g);
            // No snapshot while a received one still waits to be applied: the state machine is
            // then behind the core's log.
            let log_entries = g.sm.applied().0.saturating_sub(g.snapshot_index.0);
            if g.deferred_readies == 0
                && log_entries > self.cfg.snapshot_log_entries_max.max(g.sm.len() as u64)
            {
                self.take_snapshot(p.shard)?;
            }
        }
        Ok(())
    }

    /// Sends messages batched per peer. Plain heartbeats (no ReadIndex context) are held and
    /// leave at the end of a round in which a heartbeat tick passed, so that a peer gets the
    /// heartbeats of all the groups two nodes share in one frame once an interval; held ones
    /// also ride along with anything else sent to the peer earlier.
    fn send(&mut self, msgs: Vec<(ShardId, Message)>) {
        let mut out: BTreeMap<NodeId, Batch> = BTreeMap::new();
        for (shard, msg) in msgs {
            let to = msg.to;
            let plain_heartbeat = matches!(msg.body, MessageBody::Heartbeat { read_ctx: None, .. });
            if plain_heartbeat {
                self.heartbeats_held
                    .entry(to)
                    .or_default()
                    .push((shard.0, msg));
            } else {
                out.entry(to).or_default().push((shard.0, msg));
            }
        }
        for (to, mut batch) in out {
            if let Some(held) = self.heartbeats_held.remove(&to) {
                batch.extend(held);
            }
            self.transport.send(to, batch);
        }
    }

    fn flush_heartbeats_if_due(&mut self) {
        if std::mem::take(&mut self.heartbeat_flush_due) {
            for (to, batch) in std::mem::take(&mut self.heartbeats_held) {
                self.transport.send(to, batch);
            }
        }
    }

    fn take_snapshot(&mut self, shard: ShardId) -> anyhow::Result<()> {
        let g = self.groups.get_mut(&shard).expect("hosted group");
        let index = g.sm.applied();
        let term = g.applied_term;
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                voters: g.voters.clone(),
            },
            data: g.sm.snapshot(),
        };
        let group = GroupId(u64::from(shard.0));
        tracing::info!(
            node = self.cfg.me.0,
            shard = shard.0,
            term = term.0,
            index = index.0,
            bytes = snapshot.data.len(),
            "snapshot taken; log compacted"
        );
        g.raw.compact(snapshot.clone());
        g.snapshot_index = index;
        // The snapshot thread saves it, then has the WAL compacted behind every earlier write.
        self.snapshot_jobs
            .send((group, snapshot))
            .map_err(|_| anyhow::anyhow!("the snapshot thread stopped"))?;
        Ok(())
    }

    /// Publishes the groups' state for the client-facing side. Routing (role, term, leader) is
    /// published as soon as it changes; the indices and key counts, which only INFO reads, at
    /// most once a tick, so that client requests rarely meet the write lock.
    fn publish_view(&mut self) {
        let (me, ticks, heartbeat_ticks) = (self.cfg.me, self.ticks, self.cfg.heartbeat_ticks);
        let routing = |g: &Group| Routing {
            role: g.raw.role(),
            leader_silent: leader_silent(g, me, ticks, heartbeat_ticks),
        };
        let routing_changed = self
            .groups
            .iter()
            .any(|(shard, g)| self.published_routing.get(shard) != Some(&routing(g)));
        if !routing_changed && !std::mem::take(&mut self.view_stale) {
            return;
        }
        for (shard, g) in &self.groups {
            self.published_routing.insert(*shard, routing(g));
        }
        let mut view = self.view.write().expect("view lock poisoned");
        for (shard, g) in &self.groups {
            let (role, term, leader) = g.raw.role();
            let leader_silent = leader_silent(g, me, ticks, heartbeat_ticks);
            let (commit, applied, _, _) = g.raw.indices();
            let before = view.shards.get(shard);
            if before.is_some_and(|b| b.leader_silent != leader_silent) {
                tracing::info!(
                    node = me.0,
                    shard = shard.0,
                    term = term.0,
                    leader = leader.map_or(0, |l| l.0),
                    silent = leader_silent,
                    "leader silence changed; clients get TRYAGAIN while it lasts"
                );
            }
            if before.is_none_or(|b| b.role != role || b.term != term || b.leader != leader) {
                tracing::info!(
                    node = self.cfg.me.0,
                    shard = shard.0,
                    term = term.0,
                    role = ?role,
                    leader = leader.map_or(0, |l| l.0),
                    commit = commit.0,
                    "raft state changed"
                );
            }
            view.shards.insert(
                *shard,
                ShardView {
                    role,
                    leader,
                    term,
                    commit,
                    applied,
                    keys: g.sm.len() as u64,
                    leader_silent,
                },
            );
        }
    }
}

/// What routing a group's clients depends on, as published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Routing {
    role: (Role, Term, Option<NodeId>),
    leader_silent: bool,
}

/// Whether `g` follows a leader (another node) that it has not heard from for more than
/// [`LEADER_SILENT_HEARTBEATS`] heartbeat intervals, as of driver tick `ticks`.
fn leader_silent(g: &Group, me: NodeId, ticks: u64, heartbeat_ticks: u32) -> bool {
    let (role, _, leader) = g.raw.role();
    let silence_ticks_max = LEADER_SILENT_HEARTBEATS * u64::from(heartbeat_ticks.max(1));
    role != Role::Leader
        && leader.is_some_and(|l| l != me)
        && ticks.saturating_sub(g.leader_heard_tick) > silence_ticks_max
}

/// PLANTED BUG `forget-vote`: the hard state as written to disk. A vote is never written unless
/// the same term's vote is already there (`durable` is the term and vote on disk), so what the
/// node granted this term is forgotten in a crash. Keeping a vote already on disk (written by a
/// run without the bug) keeps the WAL's own check that a term's vote never changes.
fn forget_new_vote(hs: HardState, durable: (Term, Option<NodeId>)) -> HardState {
    let vote = if hs.term == durable.0 {
        durable.1
    } else {
        None
    };
    HardState { vote, ..hs }
}

/// PLANTED BUG `ack-before-commit` (breaks Raft §5.3/§8: a write is acknowledged only once
/// committed, i.e. held by a majority): the outcome the write proposed at `index` in `term` will
/// have if this leader's log commits through it, for answering the client now, before a single
/// replica (this one included) has it on disk.
///
/// The outcome is exact, not guessed: it is computed on a copy of the state machine that has
/// applied every entry of the log before `index` (kept in `g.speculative` and extended write by
/// write). When no such copy can be had (entries before `index` are neither applied nor in the
/// copy: the term's no-op, or writes proposed while the copy was stale), it returns `None` and
/// the write waits for its commit as usual.
fn speculate(g: &mut Group, term: Term, index: LogIndex, cmd: &Command) -> Option<Outcome> {
    let in_step = g
        .speculative
        .as_ref()
        .is_some_and(|(t, sm)| *t == term && sm.applied().next() == index);
    if !in_step {
        // Entries up to `applied` are committed, so by Leader Completeness (§5.4) they are this
        // leader's log: a copy of the state machine is the log's state just before `index`.
        if g.sm.applied().next() != index {
            g.speculative = None;
            return None;
        }
        g.speculative = Some((term, g.sm.clone()));
    }
    let (_, sm) = g.speculative.as_mut().expect("set above");
    Some(sm.apply(index, cmd))
}

/// Applies a Ready's snapshot and committed entries to the state machine and answers the writes
/// that committed.
fn apply_ready(g: &mut Group, ready: &Ready) -> anyhow::Result<()> {
    if let Some(snap) = &ready.snapshot {
        g.sm = StateMachine::restore(&snap.data).map_err(|e| {
            anyhow::anyhow!(
                "shard {}: snapshot received from the leader does not decode: {e}",
                g.shard.0
            )
        })?;
        g.snapshot_index = snap.meta.index;
        g.applied_term = snap.meta.term;
        tracing::info!(
            shard = g.shard.0,
            index = snap.meta.index.0,
            term = snap.meta.term.0,
            bytes = snap.data.len(),
            "snapshot installed from the leader"
        );
        // Writes waiting at or below the snapshot point can no longer be matched to entries.
        let later = g.writes.split_off(&snap.meta.index.next());
        for (_, w) in std::mem::replace(&mut g.writes, later) {
            w.reply.send(OpReply::Unknown(
                "outcome unknown: the node installed a snapshot past the write".into(),
            ));
        }
    }
    for entry in &ready.committed_entries {
        let outcome = apply_entry(g, entry)?;
        g.applied_term = entry.term;
        if let Some(w) = g.writes.remove(&entry.index) {
            let reply = if w.term == entry.term {
                OpReply::Applied(outcome.unwrap_or(Outcome::Ok))
            } else {
                // Another leader's entry committed at this index: by log matching, ours never
                // will (Raft paper §5.3), so the write definitely did not happen.
                OpReply::TryAgain("leadership changed before the write committed".into())
            };
            w.reply.send(reply);
        }
    }
    for rs in &ready.read_states {
        if let Some(reads) = g.reads_unconfirmed.remove(&rs.ctx) {
            g.reads_confirmed.push_back((rs.index, reads));
        }
    }
    for ctx in &ready.failed_reads {
        if let Some(reads) = g.reads_unconfirmed.remove(ctx) {
            for r in reads {
                r.reply.send(OpReply::TryAgain(
                    "leadership lost before the read was confirmed".into(),
                ));
            }
        }
    }
    Ok(())
}

fn apply_entry(g: &mut Group, entry: &Entry) -> anyhow::Result<Option<Outcome>> {
    match entry.kind {
        EntryKind::Noop => {
            g.sm.apply_noop(entry.index);
            Ok(None)
        }
        EntryKind::Normal => {
            let cmd = Command::decode(&entry.data).map_err(|e| {
                anyhow::anyhow!(
                    "shard {}: committed entry {} does not decode: {e}",
                    g.shard.0,
                    entry.index.0
                )
            })?;
            Ok(Some(g.sm.apply(entry.index, &cmd)))
        }
    }
}

fn serve_confirmed_reads(g: &mut Group) {
    let applied = g.sm.applied();
    while let Some((index, _)) = g.reads_confirmed.front() {
        if *index > applied {
            break;
        }
        let (_, reads) = g.reads_confirmed.pop_front().expect("front exists");
        for r in reads {
            let reply = serve_read(&g.sm, &r.query);
            r.reply.send(reply);
        }
    }
}

fn serve_read(sm: &StateMachine, query: &Query) -> OpReply {
    OpReply::Read(sm.read(query))
}

/// Answers the waiters whose deadline passed: writes become "unknown" (they may still commit),
/// reads "try again" (a read has no effect, so failing it is always safe).
fn expire_waiters(g: &mut Group, now: Instant) {
    let expired: Vec<LogIndex> = g
        .writes
        .iter()
        .filter(|(_, w)| w.deadline <= now)
        .map(|(i, _)| *i)
        .collect();
    for i in expired {
        if let Some(w) = g.writes.remove(&i) {
            w.reply.send(OpReply::Unknown(format!(
                "outcome unknown: the write was proposed at index {} but not confirmed in time",
                i.0
            )));
        }
    }
    let fail_read = |r: PendingRead| {
        r.reply.send(OpReply::TryAgain(
            "the read could not be confirmed in time".into(),
        ));
    };
    let stale: Vec<u64> = g
        .reads_unconfirmed
        .iter()
        .filter(|(_, rs)| rs.first().is_some_and(|r| r.deadline <= now))
        .map(|(c, _)| *c)
        .collect();
    for c in stale {
        for r in g.reads_unconfirmed.remove(&c).unwrap_or_default() {
            fail_read(r);
        }
    }
    while g
        .reads_confirmed
        .front()
        .is_some_and(|(_, rs)| rs.first().is_some_and(|r| r.deadline <= now))
    {
        let (_, rs) = g.reads_confirmed.pop_front().expect("front exists");
        for r in rs {
            fail_read(r);
        }
    }
}
