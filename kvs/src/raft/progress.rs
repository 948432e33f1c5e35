//! The leader's view of one follower's log: how much matches, what to send next, and how much is
//! in flight (etcd-io/raft's `tracker/progress.go` describes the same three-state machine).

use super::types::LogIndex;
use std::collections::VecDeque;

/// How the leader replicates to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log diverges: it sends one AppendEntries
    /// at a time and waits for the answer (or a heartbeat response) before the next.
    Probe,
    /// The follower's log matches up to `match_index`: the leader streams entries optimistically,
    /// bounded by the in-flight window.
    Replicate,
    /// The follower needs entries the leader compacted away: an InstallSnapshot is on its way;
    /// nothing else is sent until it is acknowledged (or times out).
    Snapshot,
}

/// The in-flight window: AppendEntries sent in the Replicate state and not yet acknowledged,
/// as (last index carried, bytes carried), oldest first.
///
/// Invariant: `bytes` is the sum of the byte counts in `sent`; the indexes in `sent` increase.
#[derive(Debug)]
pub(crate) struct Inflights {
    sent: VecDeque<(LogIndex, u64)>,
    bytes: u64,
    msgs_max: usize,
    bytes_max: u64,
}

impl Inflights {
    pub(crate) fn new(msgs_max: usize, bytes_max: u64) -> Inflights {
        Inflights {
            sent: VecDeque::new(),
            bytes: 0,
            msgs_max,
            bytes_max,
        }
    }

    /// True when no further message may be sent (either limit reached).
    pub(crate) fn full(&self) -> bool {
        self.sent.len() >= self.msgs_max || self.bytes >= self.bytes_max
    }

    /// Records a message carrying entries up to `last` of `bytes` bytes.
    pub(crate) fn add(&mut self, last: LogIndex, bytes: u64) {
        debug_assert!(self.sent.back().is_none_or(|&(i, _)| i < last));
        self.sent.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose entries are all acknowledged up to `index`.
    pub(crate) fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.sent.front() {
            if last > index {
                break;
            }
            self.sent.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest message: a heartbeat answer proves the follower is alive, so a window
    /// stuck full because messages were lost must not block replication forever.
    pub(crate) fn free_first_one(&mut self) {
        if let Some((_, bytes)) = self.sent.pop_front() {
            self.bytes -= bytes;
        }
    }

    pub(crate) fn reset(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }

    pub(crate) fn count(&self) -> usize {
        self.sent.len()
    }
}

/// One follower's replication progress, as the leader tracks it.
///
/// Invariant: `match_index < next_index`; in the Snapshot state `pending_snapshot > 0`.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The highest index known to match the leader's log on the follower (and be persisted
    /// there). For the leader itself: what its own storage holds.
    pub(crate) match_index: LogIndex,
    /// The next index to send.
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    /// In the Probe state: a probe is outstanding, wait for its answer or a heartbeat response.
    pub(crate) probe_sent: bool,
    /// In the Snapshot state: the index of the snapshot sent.
    pub(crate) pending_snapshot: LogIndex,
    /// In the Snapshot state: ticks since the snapshot was sent, to resend a lost one.
    pub(crate) snapshot_elapsed_ticks: u32,
    /// Heard from within the current check-quorum interval (thesis §6.2).
    pub(crate) recent_active: bool,
    pub(crate) inflights: Inflights,
}

impl Progress {
    /// A follower whose log is unknown: probe from `next_index`.
    pub(crate) fn new(next_index: LogIndex, msgs_max: usize, bytes_max: u64) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: LogIndex(0),
            snapshot_elapsed_ticks: 0,
            recent_active: false,
            inflights: Inflights::new(msgs_max, bytes_max),
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.pending_snapshot = LogIndex(0);
        self.snapshot_elapsed_ticks = 0;
        self.inflights.reset();
    }

    /// Back to probing right after what matches (or after the snapshot sent).
    pub(crate) fn become_probe(&mut self) {
        let after = if self.state == ProgressState::Snapshot {
            self.match_index.max(self.pending_snapshot)
        } else {
            self.match_index
        };
        self.reset_state(ProgressState::Probe);
        self.next_index = after.next();
    }

    /// Stream optimistically after what matches.
    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_index = self.match_index.next();
    }

    /// Wait for the snapshot at `index` to be installed.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = index;
    }

    /// True if nothing may be sent to this follower right now.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    /// The follower acknowledged a match up to `index`. Returns true if that is news.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index.next());
        updated
    }

    /// The follower rejected an AppendEntries whose previous index was `rejected`; `hint` is
    /// the highest index that may match. Returns false if the rejection is stale (answers a
    /// message sent before something newer was learnt).
    pub(crate) fn maybe_decr_to(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            // Entries up to match are known to match: a rejection at or below it is stale.
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index.next();
            return true;
        }
        // In Probe only the answer to the outstanding probe (prev = next - 1) counts.
        if self.next_index.prev() != rejected {
            return false;
        }
        self.next_index = rejected.min(hint.next()).max(self.match_index.next());
        self.probe_sent = false;
        true
    }
}
