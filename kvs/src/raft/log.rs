//! The in-memory Raft log of one group member: the snapshot boundary, the entries after it, and
//! the cursors that say how far they are committed, persisted, handed out and applied.
//!
//! Holds no I/O: what must be written is handed out through `Ready` and acknowledged through
//! `advance` by `raw_node.rs`.

use super::types::{Entry, LogIndex, Snapshot, Term};

/// Most entry bytes handed out for applying in one `Ready`: a node that
/// restarts or catches up with a long committed backlog applies it over several batches.
pub const READY_COMMITTED_BYTES_MAX: u64 = 64 << 20;

/// The log and its cursors.
///
/// Invariants (checked by [`RaftLog::assert_invariants`] in debug builds):
/// - `entries[i].index == snapshot_index + 1 + i`, terms never decrease along the log;
/// - `applied <= applying <= committed <= last_index()`;
/// - `snapshot_index <= applying`, `snapshot_index <= persisted <= last_index()`;
/// - `snapshot_index < unstable_from <= last_index() + 1`, `persisted < unstable_from`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// The last index covered by the latest snapshot (0 with no snapshot).
    snapshot_index: LogIndex,
    /// The term of the entry at `snapshot_index`.
    snapshot_term: Term,
    /// The entries after the snapshot, consecutive.
    entries: Vec<Entry>,
    /// The latest snapshot, kept to send InstallSnapshot to followers that fell behind it.
    pub(crate) snapshot: Option<Snapshot>,
    /// A snapshot received from the leader that has not been handed out in a `Ready` yet.
    pub(crate) pending_snapshot: Option<Snapshot>,
    /// The highest index known committed (Raft paper Figure 2, `commitIndex`).
    pub(crate) committed: LogIndex,
    /// The highest index known to be on this node's stable storage.
    pub(crate) persisted: LogIndex,
    /// The first index not yet handed out in a `Ready` for persisting.
    unstable_from: LogIndex,
    /// The last committed index handed out for applying (may not be applied yet).
    applying: LogIndex,
    /// The last index the application has applied (acknowledged through `advance`).
    pub(crate) applied: LogIndex,
}

impl RaftLog {
    /// A log restored from storage: `entries` follow the snapshot and are all persisted.
    pub(crate) fn restore(
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        committed: LogIndex,
    ) -> RaftLog {
        let (snapshot_index, snapshot_term) = snapshot
            .as_ref()
            .map_or((LogIndex(0), Term(0)), |s| (s.meta.index, s.meta.term));
        let last = LogIndex(snapshot_index.0 + entries.len() as u64);
        let log = RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
            snapshot,
            pending_snapshot: None,
            committed: committed.max(snapshot_index),
            persisted: last,
            unstable_from: last.next(),
            // The application rebuilds its state machine from the snapshot and re-applies the
            // committed entries after it, so nothing after the snapshot counts as applied.
            applying: snapshot_index,
            applied: snapshot_index,
        };
        log.assert_invariants();
        log
    }

    /// Panics if a documented invariant does not hold (debug builds only: this is a hot path).
    pub(crate) fn assert_invariants(&self) {
        debug_assert!(
            self.applied <= self.applying,
            "applied > applying: {self:?}"
        );
        debug_assert!(self.applying <= self.committed);
        debug_assert!(self.committed <= self.last_index());
        debug_assert!(self.snapshot_index <= self.applying);
        debug_assert!(self.snapshot_index <= self.persisted && self.persisted <= self.last_index());
        debug_assert!(self.snapshot_index < self.unstable_from);
        debug_assert!(self.unstable_from <= self.last_index().next());
        debug_assert!(self.persisted < self.unstable_from);
        debug_assert!(self
            .entries
            .first()
            .is_none_or(|e| e.index == self.snapshot_index.next()));
    }

    /// The first index still held as an entry (the one after the snapshot).
    pub(crate) fn first_index(&self) -> LogIndex {
        self.snapshot_index.next()
    }

    /// The index of the last entry (the snapshot index for an empty log).
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + self.entries.len() as u64)
    }

    /// The term of the last entry.
    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// The snapshot boundary (index, term).
    pub(crate) fn snapshot_point(&self) -> (LogIndex, Term) {
        (self.snapshot_index, self.snapshot_term)
    }

    /// The term of the entry at `index`: `None` if it was compacted away or is past the end.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.snapshot_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[self.offset(index)].term)
    }

    fn offset(&self, index: LogIndex) -> usize {
        (index.0 - self.snapshot_index.0 - 1) as usize
    }

    /// True if the log holds an entry at `index` of term `term`.
    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Election restriction (Raft paper §5.4.1): a log ending in (`last_index`, `last_term`) is at
    /// least as up to date as ours if its last term is higher, or equal with an index at least
    /// as large.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let our_term = self.last_term();
        last_term > our_term || (last_term == our_term && last_index >= self.last_index())
    }

    /// Fast back-tracking (thesis §5.3 optimisation, etcd's `findConflictByTerm`): the largest
    /// index `<= index` whose term is `<= term`, and that term. Stops at the snapshot boundary
    /// when the terms below it are unknown.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t <= term => return (i, t),
                Some(_) if i.0 > 0 => i = i.prev(),
                Some(t) => return (i, t),
                None => return (i, Term(0)),
            }
        }
    }

    /// Appends entries the leader created; they continue the log exactly.
    pub(crate) fn append_leader(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index().next());
        debug_assert!(entry.term >= self.last_term());
        self.entries.push(entry);
    }

    /// A follower's AppendEntries consistency check and append (Raft paper §5.3, Figure 2 rules
    /// 2–5). Returns the index of the last new entry, or `None` if our log has no entry
    /// (`prev_index`, `prev_term`). A conflicting suffix is replaced; a committed entry is never
    /// replaced (Log Matching plus Leader Completeness guarantee a leader never asks for it).
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        leader_commit: LogIndex,
        mut entries: Vec<Entry>,
    ) -> Option<LogIndex> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        // Skip the entries we already hold; the first one that differs (or is new) starts the
        // part to write. Entries below our snapshot are committed, hence already ours.
        let conflict = entries.iter().position(|e| {
            debug_assert!(e.index.0 > prev_index.0);
            !(e.index <= self.snapshot_index || self.match_term(e.index, e.term))
        });
        if let Some(pos) = conflict {
            let first_new = entries[pos].index;
            assert!(
                first_new > self.committed,
                "leader asked to overwrite committed entry {first_new} (committed {})",
                self.committed
            );
            let tail = entries.split_off(pos);
            self.truncate_and_append(tail);
        }
        self.commit_to(leader_commit.min(last_new));
        Some(last_new)
    }

    /// Replaces everything from `tail[0].index` on with `tail`.
    fn truncate_and_append(&mut self, tail: Vec<Entry>) {
        let first = tail[0].index;
        assert!(first > self.committed, "truncating committed entry {first}");
        debug_assert!(first > self.snapshot_index && first <= self.last_index().next());
        if first <= self.last_index() {
            let keep = self.offset(first);
            self.entries.truncate(keep);
            self.persisted = self.persisted.min(first.prev());
            self.unstable_from = self.unstable_from.min(first);
        }
        self.entries.extend(tail);
        self.assert_invariants();
    }

    /// Clones entries from `from` on, at most `bytes_max` of them but always at least one.
    /// `Err(())` if `from` was compacted away.
    pub(crate) fn entries_from(&self, from: LogIndex, bytes_max: u64) -> Result<Vec<Entry>, ()> {
        if from <= self.snapshot_index {
            return Err(());
        }
        if from > self.last_index() {
            return Ok(Vec::new());
        }
        let slice = &self.entries[self.offset(from)..];
        let mut bytes = 0;
        let mut count = 0;
        for e in slice {
            bytes += e.size_bytes();
            if count > 0 && bytes > bytes_max {
                break;
            }
            count += 1;
        }
        Ok(slice[..count].to_vec())
    }

    /// Raises the commit index (never lowers it).
    ///
    /// # Panics
    /// If `index` is past the end of the log: committing an entry one does not hold is a bug.
    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// True if a `Ready` should carry entries for persisting.
    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Hands out the entries not yet handed out for persisting.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        if !self.has_unstable() {
            return Vec::new();
        }
        let out = self.entries[self.offset(self.unstable_from)..].to_vec();
        self.unstable_from = self.last_index().next();
        out
    }

    /// The application persisted entries up to (`index`, `term`) — possibly an older version of
    /// our log. What still matches and has not been handed out again counts as persisted.
    pub(crate) fn stable_to(&mut self, entries: &[Entry]) {
        // Log Matching: if our entry at i still has the persisted term, so does every entry
        // before it; so the highest still-matching index bounds what is durable.
        for e in entries.iter().rev() {
            if e.index < self.unstable_from && self.match_term(e.index, e.term) {
                self.persisted = self.persisted.max(e.index);
                break;
            }
        }
        self.assert_invariants();
    }

    /// The upper end of the entries that may be handed out for applying: committed *and*
    /// persisted here (we only apply what we would still hold after a crash).
    fn apply_limit(&self) -> LogIndex {
        self.committed.min(self.persisted)
    }

    /// True if committed entries wait to be handed out.
    pub(crate) fn has_next_committed(&self) -> bool {
        self.apply_limit() > self.applying
    }

    /// Hands out the committed, persisted entries not handed out yet, at most
    /// [`READY_COMMITTED_BYTES_MAX`] of them (always at least one); the rest follow in the next
    /// `Ready`.
    pub(crate) fn take_next_committed(&mut self) -> Vec<Entry> {
        let hi = self.apply_limit();
        if hi <= self.applying {
            return Vec::new();
        }
        let slice = &self.entries[self.offset(self.applying.next())..=self.offset(hi)];
        let mut bytes = 0;
        let mut count = 0;
        for e in slice {
            bytes += e.size_bytes();
            if count > 0 && bytes > READY_COMMITTED_BYTES_MAX {
                break;
            }
            count += 1;
        }
        let out = slice[..count].to_vec();
        self.applying = out.last().expect("at least one entry").index;
        out
    }

    /// The application applied everything up to `index`.
    pub(crate) fn applied_to(&mut self, index: LogIndex) {
        if index > self.applied {
            assert!(
                index <= self.applying,
                "applied {index} was never handed out"
            );
            self.applied = index;
        }
    }

    /// Resets the log to a snapshot received from the leader (Raft paper §7: discard the whole
    /// log; the snapshot's state replaces it).
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        assert!(
            index > self.committed,
            "installing a snapshot at or below commit"
        );
        self.entries.clear();
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.committed = index;
        self.applying = index;
        self.persisted = index;
        self.unstable_from = index.next();
        self.snapshot = Some(snapshot.clone());
        self.pending_snapshot = Some(snapshot);
        self.assert_invariants();
    }

    /// The application took a snapshot at `snapshot.meta.index` (already applied): drop the
    /// entries it covers and keep it for followers that fall behind.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if index <= self.snapshot_index {
            return;
        }
        assert!(
            index <= self.applying,
            "compacting to {index}, past what was handed out for applying ({})",
            self.applying
        );
        assert_eq!(
            self.term(index),
            Some(snapshot.meta.term),
            "snapshot term disagrees with the log at {index}"
        );
        let drop = self.offset(index) + 1;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = snapshot.meta.term;
        self.snapshot = Some(snapshot);
        self.assert_invariants();
    }
}
