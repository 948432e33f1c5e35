//! Linearizable reads by ReadIndex (Raft thesis §6.4): the leader records its commit index for a
//! read, confirms it is still leader by a heartbeat round acknowledged by a majority, then
//! releases the read, to be served once the state machine has applied up to that index.

use super::types::{LogIndex, NodeId, ReadState};
use std::collections::VecDeque;

/// Most reads waiting at once (recorded or waiting for the term's first commit); beyond it
/// `read_index` answers `ReadsPendingFull` (every queue has a bound).
pub const READS_PENDING_MAX: usize = 4096;

/// A read whose index is recorded and whose leadership confirmation is under way.
#[derive(Debug)]
struct PendingRead {
    ctx: u64,
    /// The leader's commit index when the read was recorded.
    index: LogIndex,
    /// The tick at which it was recorded, to give up on it after an election timeout.
    issued_tick: u64,
    /// Voters that acknowledged a heartbeat sent after the read was recorded (sorted, unique).
    acks: Vec<NodeId>,
}

/// The reads a leader holds.
///
/// Invariant: `pending` is in the order the reads were recorded, so confirmation of a later read
/// confirms every earlier one (its heartbeat round started after they were recorded).
#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term: their index cannot
    /// be recorded yet, because the commit index may still lag the previous leader's (§6.4 step 1).
    awaiting_term_commit: VecDeque<(u64, u64)>,
}

impl ReadOnly {
    pub(crate) fn len(&self) -> usize {
        self.pending.len() + self.awaiting_term_commit.len()
    }

    /// Holds `ctx` until the leader's first commit in its term.
    pub(crate) fn add_awaiting(&mut self, ctx: u64, now_tick: u64) {
        self.awaiting_term_commit.push_back((ctx, now_tick));
    }

    /// Takes the reads that waited for the term's first commit.
    pub(crate) fn take_awaiting(&mut self) -> Vec<(u64, u64)> {
        self.awaiting_term_commit.drain(..).collect()
    }

    /// Records a read at `index`, acknowledged by the leader itself.
    pub(crate) fn add(&mut self, ctx: u64, index: LogIndex, issued_tick: u64, leader: NodeId) {
        self.pending.push_back(PendingRead {
            ctx,
            index,
            issued_tick,
            acks: vec![leader],
        });
    }

    /// The context of the newest recorded read, carried by periodic heartbeats so that a read
    /// whose own heartbeat round was lost still gets confirmed.
    pub(crate) fn last_ctx(&self) -> Option<u64> {
        self.pending.back().map(|r| r.ctx)
    }

    /// `from` acknowledged the heartbeat round of `ctx`. Returns the reads now confirmed by a
    /// majority (`quorum` acks), oldest first.
    pub(crate) fn recv_ack(&mut self, from: NodeId, ctx: u64, quorum: usize) -> Vec<ReadState> {
        let Some(pos) = self.pending.iter().position(|r| r.ctx == ctx) else {
            return Vec::new();
        };
        let read = &mut self.pending[pos];
        if let Err(at) = read.acks.binary_search(&from) {
            read.acks.insert(at, from);
        }
        if read.acks.len() < quorum {
            return Vec::new();
        }
        self.pending
            .drain(..=pos)
            .map(|r| ReadState {
                ctx: r.ctx,
                index: r.index,
            })
            .collect()
    }

    /// Gives up on reads issued `age_max_ticks` or more ago; returns their contexts.
    pub(crate) fn expire(&mut self, now_tick: u64, age_max_ticks: u64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(&(ctx, issued)) = self.awaiting_term_commit.front() {
            if now_tick - issued < age_max_ticks {
                break;
            }
            out.push(ctx);
            self.awaiting_term_commit.pop_front();
        }
        while let Some(r) = self.pending.front() {
            if now_tick - r.issued_tick < age_max_ticks {
                break;
            }
            out.push(r.ctx);
            self.pending.pop_front();
        }
        out
    }

    /// Drops every read (leadership lost); returns their contexts.
    pub(crate) fn drain_all(&mut self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .awaiting_term_commit
            .drain(..)
            .map(|(c, _)| c)
            .collect();
        out.extend(self.pending.drain(..).map(|r| r.ctx));
        out
    }
}
