//! One group's view of the shared log, kept in memory: hard state, snapshot point and where each
//! live entry's record lies on disk. Pure: the same `apply_*` code runs when a record is written
//! and when it is replayed on recovery, so the state after a restart is the state before it.

use super::segment::SegmentSeq;
use crate::raft::{Entry, HardState, LogIndex, Term};
use std::collections::VecDeque;

/// Where a record lies on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordLoc {
    /// The segment holding it.
    pub(crate) segment: SegmentSeq,
    /// Where its frame starts in the segment.
    pub(crate) offset_bytes: u64,
    /// Its framed length.
    pub(crate) len_bytes: u32,
}

/// What the log knows about one live entry without reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryMeta {
    /// The entry's term.
    pub(crate) term: Term,
    /// The `Entries` record that holds it.
    pub(crate) loc: RecordLoc,
    /// `Entry::size_bytes` of the entry.
    pub(crate) size_bytes: u64,
}

/// Whether a record is being written now (the caller has checked its preconditions) or replayed
/// from disk, where segments deleted by garbage collection can leave a group's surviving records
/// starting in the middle of its history (see [`GroupLog::check_recovered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Appending a new record.
    Write,
    /// Replaying a record found on disk.
    Replay,
}

/// One group's log state.
#[derive(Clone, Debug)]
pub(crate) struct GroupLog {
    /// The newest hard state written.
    pub(crate) hard_state: HardState,
    /// The last index covered by the group's snapshot (0: none).
    pub(crate) snapshot_index: LogIndex,
    /// The term of `snapshot_index`.
    pub(crate) snapshot_term: Term,
    // Invariant: first_index == snapshot_index + 1, except transiently during replay.
    /// The index of `entries[0]` (or of the next entry when `entries` is empty).
    pub(crate) first_index: LogIndex,
    // Invariant: entries[k] has index first_index + k; terms never decrease; record locations
    // never decrease with the index (an entry is rewritten only after a truncation that also
    // removed every entry after it).
    /// The live entries, oldest first.
    pub(crate) entries: VecDeque<EntryMeta>,
}

impl Default for GroupLog {
    fn default() -> GroupLog {
        GroupLog {
            hard_state: HardState::default(),
            snapshot_index: LogIndex(0),
            snapshot_term: Term(0),
            first_index: LogIndex(1),
            entries: VecDeque::new(),
        }
    }
}

impl GroupLog {
    /// The index of the last live entry, or `first_index - 1` when there is none.
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.entries.len() as u64 - 1)
    }

    /// The term of `index` if the log still knows it (live entry or snapshot point).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.meta(index).map(|m| m.term)
    }

    /// The live entry at `index`.
    pub(crate) fn meta(&self, index: LogIndex) -> Option<&EntryMeta> {
        let offset = index.0.checked_sub(self.first_index.0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    fn clear_entries_from(&mut self, from: LogIndex) {
        let from = from.max(self.first_index);
        let keep = (from.0 - self.first_index.0) as usize;
        self.entries.truncate(keep);
    }

    fn reset_to(&mut self, first: LogIndex) {
        self.entries.clear();
        self.first_index = first;
    }

    /// Applies an `Entries` record held at `loc`.
    ///
    /// # Errors
    /// In `Write` mode, a reason when the entries do not attach to the log (a caller bug, which
    /// the caller turns into a panic).
    pub(crate) fn apply_entries(
        &mut self,
        entries: &[Entry],
        loc: RecordLoc,
        mode: Mode,
    ) -> Result<(), String> {
        let first = entries[0].index;
        let last = self.last_index();
        if first < self.first_index || first > last.next() {
            if mode == Mode::Write {
                return Err(format!(
                    "entries starting at {first} do not attach to a log holding {}..={last}",
                    self.first_index
                ));
            }
            // Replay only: the records in between lived in deleted segments.
            self.reset_to(first);
        } else {
            self.clear_entries_from(first);
        }
        for e in entries {
            debug_assert_eq!(e.index, self.last_index().next());
            self.entries.push_back(EntryMeta {
                term: e.term,
                loc,
                size_bytes: e.size_bytes(),
            });
        }
        Ok(())
    }

    /// Applies a `Truncate` record.
    pub(crate) fn apply_truncate(&mut self, from: LogIndex) {
        if from < self.first_index {
            // Replay only (writes never truncate below the first index): see `apply_entries`.
            self.reset_to(from);
        } else {
            self.clear_entries_from(from);
        }
    }

    /// Applies a `SnapshotMarker` record: the log now starts after `index` (Raft paper §7: a
    /// live entry at `index` with the same term keeps the entries after it; otherwise the whole
    /// log is discarded).
    pub(crate) fn apply_snapshot_marker(&mut self, index: LogIndex, term: Term) {
        if index <= self.snapshot_index {
            // A marker re-written when a segment rolled, or an older one.
            return;
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
        if index < self.first_index {
            // Replay only, after a gap: the surviving entries are all above `index`; a later
            // marker (or `check_recovered`) settles whether the gap is covered.
            return;
        }
        if self.meta(index).is_some_and(|m| m.term == term) {
            let drop_count = (index.0 - self.first_index.0 + 1) as usize;
            self.entries.drain(..drop_count);
            self.first_index = index.next();
        } else {
            self.reset_to(index.next());
        }
    }

    /// Applies a `HardState` record.
    pub(crate) fn apply_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// After replay: the log must start right after the snapshot point. A failure means entries
    /// that no snapshot covers are missing from the surviving segments.
    ///
    /// # Errors
    /// A description of the gap.
    pub(crate) fn check_recovered(&self) -> Result<(), String> {
        if self.first_index != self.snapshot_index.next() {
            return Err(format!(
                "log starts at {} but the snapshot point is {}: entries are missing",
                self.first_index, self.snapshot_index
            ));
        }
        let mut term = self.snapshot_term;
        for (k, m) in self.entries.iter().enumerate() {
            if m.term < term {
                let index = self.first_index.0 + k as u64;
                return Err(format!("term goes down at index {index}"));
            }
            term = m.term;
        }
        Ok(())
    }
}
