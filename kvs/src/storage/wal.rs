//! The node's write-ahead log, shared by all the Raft groups it hosts.
//!
//! Writes are group-committed: `append_entries`, `set_hard_state`, `apply_snapshot` and
//! `compact` only encode records into a buffer (written to the segment file when it fills);
//! [`Wal::sync`] writes what is buffered and makes everything appended since the previous sync
//! durable with one `fdatasync`. The node runtime calls it once per driver round, before any
//! message of that round leaves the node (Raft paper Figure 2: persistent state is updated on
//! stable storage before responding to RPCs).
//!
//! The planted bug `skip-fsync` ([`WalOptions::bug_skip_fsync`], see [`crate::bugs`]) makes
//! `sync` skip its `fdatasync` while still reporting the records durable; [`Wal::syncs_made`]
//! counts the `fdatasync` calls `sync` makes.
//!
//! Reads never scan files: every group keeps, per live entry, its term and the location of the
//! record holding it (`group_log.rs`); entry payloads come from a byte-bounded cache or one
//! positional read of that record, whose checksum is verified again.
//!
//! Segment garbage collection: when a segment rolls, the current hard state and snapshot point
//! of every group are re-written at the start of the new segment, so the newest of those records
//! always lives in the active segment. A closed segment is then needed only while some group's
//! oldest live entry is held in it or in an earlier segment; every older segment is deleted after
//! the next `sync`. At a roll, groups whose small live logs pin the oldest segment get those
//! entries copied forward so that an idle group cannot pin the disk forever.

use super::cache::EntryCache;
use super::dir_lock::DirLock;
use super::group_log::{GroupLog, Mode, RecordLoc};
use super::record::{self, Frame, Record};
use super::recovery::{self, create_segment, sync_dir};
use super::segment::SegmentSeq;
use super::{GroupId, StorageError, WalOptions};
use crate::raft::{Entry, HardState, LogIndex, SnapshotMeta, Term};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One segment file.
struct SegmentFile {
    path: PathBuf,
    file: File,
    // Invariant: for the active segment, the bytes written to the file; `pending` follows.
    len_bytes: u64,
    // Active segment, preallocated: zeros have been written (not just allocated) up to here,
    // at or past `len_bytes`. See [`zero_ahead`].
    zeroed_to_bytes: u64,
}

/// How far ahead of the records the active segment is overwritten with zeros at a time.
const ZERO_AHEAD_BYTES: u64 = 1024 * 1024;

/// The write-ahead log of one node. See the module docs.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    // Invariant: non-empty; the last one is the active segment, appended to.
    segments: BTreeMap<SegmentSeq, SegmentFile>,
    // Encoded records appended to the active segment but not yet written to its file.
    pending: Vec<u8>,
    // True when something was appended since the last `sync`.
    dirty: bool,
    // True while a segment roll is copying entries forward (no nested copy-forward).
    rolling: bool,
    // Set by the first failed write or sync: what reached the disk is unknown from then on
    // (a failed fsync cannot be retried safely), so every later write or sync fails.
    failed: bool,
    // `fdatasync` calls made by `sync` (see [`Wal::syncs_made`]).
    syncs_made: u64,
    groups: HashMap<GroupId, GroupLog>,
    cache: EntryCache,
    _lock: DirLock,
}

impl Wal {
    /// Opens the log in `dir` (created if missing), recovering every group's state from it: a
    /// torn tail of the last segment is truncated away.
    ///
    /// # Errors
    /// `Corruption` naming the file and byte offset when a record other than a torn tail fails
    /// its checksum or the records contradict each other; `Locked` when another open log holds
    /// the directory; `Io` when the directory or a file cannot be used.
    ///
    /// # Panics
    /// If `options.segment_bytes_max` is 0 or `options.record_bytes_max` is below 1 KiB.
    pub fn open(dir: &Path, options: WalOptions) -> Result<Wal, StorageError> {
        assert!(
            options.segment_bytes_max > 0,
            "segment_bytes_max must be positive"
        );
        assert!(
            options.record_bytes_max >= 1024,
            "record_bytes_max must be at least 1 KiB"
        );
        recovery::create_dir_durable(dir, options.fsync)?;
        let lock = DirLock::acquire(dir)?;
        let recovered = recovery::recover(dir, &options)?;
        if recovered.created_first_segment && options.fsync {
            sync_dir(dir)?;
        }
        let segments = recovered
            .segments
            .into_iter()
            .map(|(seq, (path, file, len_bytes))| {
                (
                    seq,
                    SegmentFile {
                        path,
                        file,
                        len_bytes,
                        zeroed_to_bytes: len_bytes,
                    },
                )
            })
            .collect();
        Ok(Wal {
            dir: dir.to_path_buf(),
            options,
            segments,
            pending: Vec::new(),
            dirty: false,
            rolling: false,
            failed: false,
            syncs_made: 0,
            groups: recovered.groups,
            cache: recovered.cache,
            _lock: lock,
        })
    }

    /// Every group the log knows about, in order.
    #[must_use]
    pub fn groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self.groups.keys().copied().collect();
        groups.sort();
        groups
    }

    /// The group's newest hard state (the default for an unknown group).
    #[must_use]
    pub fn hard_state(&self, group: GroupId) -> HardState {
        self.groups
            .get(&group)
            .map_or_else(HardState::default, |g| g.hard_state)
    }

    /// The point the group's log was compacted to: (last index, its term) of its snapshot, or
    /// (0, 0) when it has none.
    #[must_use]
    pub fn snapshot_point(&self, group: GroupId) -> (LogIndex, Term) {
        self.groups.get(&group).map_or((LogIndex(0), Term(0)), |g| {
            (g.snapshot_index, g.snapshot_term)
        })
    }

    /// The index of the group's first live entry (`snapshot index + 1`; 1 for a new group).
    #[must_use]
    pub fn first_index(&self, group: GroupId) -> LogIndex {
        self.groups
            .get(&group)
            .map_or(LogIndex(1), |g| g.first_index)
    }

    /// The index of the group's last entry (the snapshot index when the log is empty).
    #[must_use]
    pub fn last_index(&self, group: GroupId) -> LogIndex {
        self.groups
            .get(&group)
            .map_or(LogIndex(0), GroupLog::last_index)
    }

    /// The term of the entry at `index`: `Some` for a live entry or the snapshot point, `None`
    /// past the last index.
    ///
    /// # Errors
    /// `Compacted` when `index` is below the snapshot point.
    pub fn term(&self, group: GroupId, index: LogIndex) -> Result<Option<Term>, StorageError> {
        let (snapshot_index, _) = self.snapshot_point(group);
        if index < snapshot_index {
            return Err(StorageError::Compacted { group, index });
        }
        Ok(self.groups.get(&group).map_or_else(
            || (index == LogIndex(0)).then_some(Term(0)),
            |g| g.term_at(index),
        ))
    }

    /// The group's entries with indexes in `low..high_exclusive`.
    ///
    /// # Errors
    /// `Compacted` when `low` is below the first index, `Unavailable` when `high_exclusive` is
    /// past `last_index + 1`, `Io`/`Corruption` when a record cannot be read back intact.
    ///
    /// # Panics
    /// If `low > high_exclusive`.
    pub fn entries(
        &self,
        group: GroupId,
        low: LogIndex,
        high_exclusive: LogIndex,
    ) -> Result<Vec<Entry>, StorageError> {
        assert!(low <= high_exclusive, "empty range {low}..{high_exclusive}");
        if low < self.first_index(group) {
            return Err(StorageError::Compacted { group, index: low });
        }
        if high_exclusive > self.last_index(group).next() {
            return Err(StorageError::Unavailable {
                group,
                index: high_exclusive.prev(),
            });
        }
        let mut out = Vec::with_capacity((high_exclusive.0 - low.0) as usize);
        let mut index = low;
        while index < high_exclusive {
            if let Some(e) = self.cache.get(group, index) {
                out.push(e.clone());
                index = index.next();
                continue;
            }
            // Not cached: read the record holding `index` and take every wanted entry it
            // still holds (consecutive indexes share a record).
            let log = &self.groups[&group];
            let loc = log.meta(index).expect("index is live").loc;
            let Record::Entries(entries) = self.read_record(group, loc)? else {
                return Err(self.corrupt(loc, "expected an entries record".to_string()));
            };
            let taken_before = out.len();
            for e in entries.into_owned() {
                if e.index == index
                    && index < high_exclusive
                    && log.meta(index).is_some_and(|m| m.loc == loc)
                {
                    assert_eq!(e.term, log.meta(index).expect("live").term, "term mismatch");
                    out.push(e);
                    index = index.next();
                }
            }
            if out.len() == taken_before {
                return Err(self.corrupt(loc, format!("record does not hold entry {index}")));
            }
        }
        for (k, e) in out.iter().enumerate() {
            debug_assert_eq!(e.index.0, low.0 + k as u64);
        }
        Ok(out)
    }

    /// Appends `entries` (consecutive indexes) to the group's log. When the first index is not
    /// past the last stored index, the stored suffix from there is replaced. The replacement is
    /// one `Entries` record whose first index is not past the last: replay truncates and appends
    /// in one step, so a crash can never leave the suffix removed but its replacement missing, and
    /// recovery never resurrects the old suffix. Durable after `sync`.
    ///
    /// # Errors
    /// `Io` when the segment cannot be written.
    ///
    /// # Panics
    /// If the entries are not consecutive, do not attach to the log (start below the first index
    /// or leave a gap), or have decreasing terms; or if one entry alone is larger than
    /// `record_bytes_max`.
    pub fn append_entries(
        &mut self,
        group: GroupId,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let log = self.groups.entry(group).or_default();
        let last = log.last_index();
        assert!(
            first.index >= log.first_index && first.index <= last.next(),
            "group {group}: entries from {} do not attach to log {}..={last}",
            first.index,
            log.first_index
        );
        let term_before = log.term_at(first.index.prev()).unwrap_or(Term(0));
        assert!(
            first.term >= term_before,
            "group {group}: term goes down at {}",
            first.index
        );
        for pair in entries.windows(2) {
            assert_eq!(
                pair[1].index,
                pair[0].index.next(),
                "entries not consecutive"
            );
            assert!(
                pair[1].term >= pair[0].term,
                "terms go down at {}",
                pair[1].index
            );
        }
        // Split so that every record stays within `record_bytes_max`.
        let budget_bytes = u64::from(self.options.record_bytes_max) - 64;
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0u64;
            while end < entries.len()
                && (end == start || bytes + entries[end].size_bytes() <= budget_bytes)
            {
                bytes += entries[end].size_bytes();
                end += 1;
            }
            assert!(
                bytes <= budget_bytes,
                "entry {} of {bytes} bytes exceeds record_bytes_max",
                entries[start].index
            );
            self.write(group, Record::Entries(Cow::Borrowed(&entries[start..end])))?;
            start = end;
        }
        Ok(())
    }

    /// Records the group's new hard state (skipped when unchanged). Durable after `sync`.
    ///
    /// # Errors
    /// `Io` when the segment cannot be written.
    ///
    /// # Panics
    /// If the term or the commit index goes down, or the vote changes within a term.
    pub fn set_hard_state(
        &mut self,
        group: GroupId,
        hard_state: HardState,
    ) -> Result<(), StorageError> {
        let old = self.hard_state(group);
        if old == hard_state && self.groups.contains_key(&group) {
            return Ok(());
        }
        assert!(hard_state.term >= old.term, "group {group}: term goes down");
        assert!(
            hard_state.commit >= old.commit,
            "group {group}: commit goes down"
        );
        assert!(
            hard_state.term > old.term || old.vote.is_none() || old.vote == hard_state.vote,
            "group {group}: vote changed within {}",
            old.term
        );
        self.write(group, Record::HardState(hard_state))
    }

    /// Records that the group installed (or took) a snapshot covering `meta.index`: its log now
    /// starts after it. A live entry at `meta.index` with `meta.term` keeps the entries after
    /// it; otherwise the whole log is discarded (Raft paper §7). The snapshot itself must
    /// already be durable in the [`super::SnapshotStore`]. Durable after `sync`.
    ///
    /// # Errors
    /// `Io` when the segment cannot be written.
    ///
    /// # Panics
    /// If `meta.index` is below the group's current snapshot point.
    pub fn apply_snapshot(
        &mut self,
        group: GroupId,
        meta: &SnapshotMeta,
    ) -> Result<(), StorageError> {
        let (snapshot_index, snapshot_term) = self.snapshot_point(group);
        assert!(
            meta.index >= snapshot_index,
            "group {group}: snapshot at {} is older than {snapshot_index}",
            meta.index
        );
        if meta.index == snapshot_index {
            assert_eq!(
                meta.term, snapshot_term,
                "group {group}: snapshot term differs"
            );
            return Ok(());
        }
        let (index, term) = (meta.index, meta.term);
        self.write(group, Record::SnapshotMarker { index, term })
    }

    /// Discards the group's entries up to and including `index`, which a durable snapshot
    /// covers. Durable after `sync`; the segments no group needs any more are deleted then.
    ///
    /// # Errors
    /// `Io` when the segment cannot be written.
    ///
    /// # Panics
    /// If `index` is past the last index.
    pub fn compact(&mut self, group: GroupId, index: LogIndex) -> Result<(), StorageError> {
        let (snapshot_index, _) = self.snapshot_point(group);
        if index <= snapshot_index {
            return Ok(());
        }
        assert!(
            index <= self.last_index(group),
            "group {group}: compact past the log"
        );
        let term = self.groups[&group].term_at(index).expect("live index");
        self.write(group, Record::SnapshotMarker { index, term })
    }

    /// Makes everything appended since the previous sync durable: one write of the buffered
    /// records and one `fdatasync` (none when `fsync` is off). Then deletes the segments no
    /// group needs any more.
    ///
    /// # Errors
    /// `Io` when writing or syncing fails; the node must then stop (what reached the disk is
    /// unknown), and every later write or sync returns `Failed`.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_not_failed()?;
        let result = self.sync_and_collect();
        self.failed |= result.is_err();
        result
    }

    fn sync_and_collect(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.flush()?;
            // PLANTED BUG `skip-fsync` (breaks the durability rule: what `sync` reports durable
            // is on stable storage, Raft paper Figure 2): the records reached the kernel with
            // write() above, but a power loss or kernel crash may still lose them.
            if self.options.fsync && !self.options.bug_skip_fsync {
                let active = self.active();
                active
                    .file
                    .sync_data()
                    .map_err(|e| StorageError::io(&active.path, e))?;
                self.syncs_made += 1;
            }
            self.dirty = false;
        }
        self.collect_garbage()
    }

    /// How many `fdatasync` calls [`Wal::sync`] has made since the log was opened (a `sync`
    /// with nothing new appended makes none). For tests and diagnostics.
    #[must_use]
    pub fn syncs_made(&self) -> u64 {
        self.syncs_made
    }

    /// Bytes the segment files take, including buffered appends.
    #[must_use]
    pub fn disk_usage_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len_bytes).sum::<u64>() + self.pending.len() as u64
    }

    /// How many segment files exist.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn active(&self) -> &SegmentFile {
        self.segments
            .values()
            .next_back()
            .expect("always one segment")
    }

    fn active_seq(&self) -> SegmentSeq {
        *self
            .segments
            .keys()
            .next_back()
            .expect("always one segment")
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let preallocate = self.options.preallocate;
        let segment_bytes_max = self.options.segment_bytes_max;
        let active = self.segments.values_mut().next_back().expect("one segment");
        if preallocate {
            zero_ahead(active, pending.len() as u64, segment_bytes_max)?;
        }
        std::os::unix::fs::FileExt::write_all_at(&active.file, &pending, active.len_bytes)
            .map_err(|e| StorageError::io(&active.path, e))?;
        active.len_bytes += pending.len() as u64;
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// Encodes `record`, appends it to the active segment (rolling first when full) and applies
    /// it to the group's in-memory state.
    fn write(&mut self, group: GroupId, record: Record<'_>) -> Result<(), StorageError> {
        self.check_not_failed()?;
        let result = self.write_unchecked(group, record);
        self.failed |= result.is_err();
        result
    }

    fn check_not_failed(&self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn write_unchecked(&mut self, group: GroupId, record: Record<'_>) -> Result<(), StorageError> {
        let len = record.encoded_len();
        assert!(
            len <= self.options.record_bytes_max as usize,
            "record too large"
        );
        let used = self.active().len_bytes + self.pending.len() as u64;
        if used > 0 && used + len as u64 > self.options.segment_bytes_max {
            self.roll()?;
        }
        let loc = RecordLoc {
            segment: self.active_seq(),
            offset_bytes: self.active().len_bytes + self.pending.len() as u64,
            len_bytes: u32::try_from(len).expect("bounded"),
        };
        record::encode(group, &record, &mut self.pending);
        self.dirty = true;
        self.apply(group, &record, loc);
        if self.pending.len() >= self.options.write_buffer_bytes_max {
            self.flush()?;
        }
        Ok(())
    }

    fn apply(&mut self, group: GroupId, record: &Record<'_>, loc: RecordLoc) {
        let log = self.groups.entry(group).or_default();
        match record {
            Record::Entries(entries) => {
                log.apply_entries(entries, loc, Mode::Write)
                    .unwrap_or_else(|why| panic!("group {group}: {why}"));
                self.cache.append(group, entries);
            }
            Record::HardState(hs) => log.apply_hard_state(*hs),
            Record::SnapshotMarker { index, term } => log.apply_snapshot_marker(*index, *term),
            Record::Truncate { from } => log.apply_truncate(*from),
        }
        self.cache
            .retain_range(group, log.first_index, log.last_index());
    }

    /// Closes the active segment (written and synced), starts the next one, re-writes every
    /// group's hard state and snapshot point into it, and copies small pinning logs forward.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        {
            let active = self.active();
            // Only the last segment may end in zeros (preallocated space; recovery reads zeros
            // anywhere else as damage): trim the closing one to what it holds.
            active
                .file
                .set_len(active.len_bytes)
                .map_err(|e| StorageError::io(&active.path, e))?;
            if self.options.fsync {
                active
                    .file
                    .sync_all()
                    .map_err(|e| StorageError::io(&active.path, e))?;
            }
        }
        let seq = SegmentSeq(self.active_seq().0 + 1);
        let path = self.dir.join(seq.file_name());
        let file = create_segment(&path, &self.options)?;
        if self.options.fsync {
            sync_dir(&self.dir)?;
        }
        self.segments.insert(
            seq,
            SegmentFile {
                path,
                file,
                len_bytes: 0,
                zeroed_to_bytes: 0,
            },
        );
        // The newest hard state and snapshot point of every group now live in the active
        // segment, so older segments are needed only for live entries.
        let mut groups: Vec<(&GroupId, &GroupLog)> = self.groups.iter().collect();
        groups.sort_by_key(|(g, _)| **g);
        for (group, log) in groups {
            if log.hard_state != HardState::default() {
                record::encode(
                    *group,
                    &Record::HardState(log.hard_state),
                    &mut self.pending,
                );
            }
            if log.snapshot_index > LogIndex(0) {
                let marker = Record::SnapshotMarker {
                    index: log.snapshot_index,
                    term: log.snapshot_term,
                };
                record::encode(*group, &marker, &mut self.pending);
            }
        }
        self.dirty = true;
        if !self.rolling {
            self.rolling = true;
            let copied = self.copy_forward_small_pinners();
            self.rolling = false;
            copied?;
        }
        Ok(())
    }

    /// The oldest segment still needed: the one holding the oldest live entry of any group.
    fn oldest_needed(&self) -> SegmentSeq {
        self.groups
            .values()
            .filter_map(|g| g.entries.front().map(|m| m.loc.segment))
            .min()
            .unwrap_or(self.active_seq())
            .min(self.active_seq())
    }

    /// When the groups pinning the oldest segment have small live logs in total (at most a
    /// quarter segment), re-appends those logs so that the segment can go. Each copy is one
    /// `Entries` record that replaces the log with itself, so a torn copy changes nothing.
    fn copy_forward_small_pinners(&mut self) -> Result<(), StorageError> {
        let oldest = *self.segments.keys().next().expect("one segment");
        if oldest == self.active_seq() {
            return Ok(());
        }
        let mut pinners = Vec::new();
        let mut bytes = 0u64;
        for (group, log) in &self.groups {
            if log.entries.front().is_some_and(|m| m.loc.segment == oldest) {
                pinners.push(*group);
                bytes += log.entries.iter().map(|m| m.size_bytes).sum::<u64>();
            }
        }
        // Each log must fit one record: the copy replaces the log atomically on replay.
        let record_budget_bytes = u64::from(self.options.record_bytes_max) / 2;
        if pinners.is_empty()
            || bytes > self.options.segment_bytes_max / 4
            || bytes > record_budget_bytes
        {
            return Ok(());
        }
        pinners.sort();
        for group in pinners {
            let (first, last) = (self.first_index(group), self.last_index(group));
            let entries = self.entries(group, first, last.next())?;
            self.append_entries(group, &entries)?;
        }
        Ok(())
    }

    fn collect_garbage(&mut self) -> Result<(), StorageError> {
        let oldest_needed = self.oldest_needed();
        let doomed: Vec<SegmentSeq> = self
            .segments
            .range(..oldest_needed)
            .map(|(s, _)| *s)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for seq in doomed {
            let segment = self.segments.remove(&seq).expect("listed");
            std::fs::remove_file(&segment.path).map_err(|e| StorageError::io(&segment.path, e))?;
        }
        if self.options.fsync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn read_record(&self, group: GroupId, loc: RecordLoc) -> Result<Record<'static>, StorageError> {
        let segment = self
            .segments
            .get(&loc.segment)
            .expect("a live entry's segment is never deleted");
        let len = loc.len_bytes as usize;
        let buf = if loc.segment == self.active_seq() && loc.offset_bytes >= segment.len_bytes {
            let at = (loc.offset_bytes - segment.len_bytes) as usize;
            self.pending[at..at + len].to_vec()
        } else {
            let mut buf = vec![0u8; len];
            segment
                .file
                .read_exact_at(&mut buf, loc.offset_bytes)
                .map_err(|e| StorageError::io(&segment.path, e))?;
            buf
        };
        match record::decode(&buf, self.options.record_bytes_max) {
            Frame::Valid {
                group: g, record, ..
            } if g == group => Ok(record),
            Frame::Valid { group: g, .. } => {
                Err(self.corrupt(loc, format!("record of {g}, expected {group}")))
            }
            Frame::Bad(why) => Err(self.corrupt(loc, why)),
        }
    }

    fn corrupt(&self, loc: RecordLoc, reason: String) -> StorageError {
        StorageError::Corruption {
            path: self.dir.join(loc.segment.file_name()),
            offset_bytes: loc.offset_bytes,
            reason,
        }
    }
}

/// Before `append_bytes` more bytes go to the active segment: overwrites the preallocated space
/// ahead of them with zeros, [`ZERO_AHEAD_BYTES`] at a time. Space that `posix_fallocate` only
/// reserved is "unwritten" to the file system, and the first write into it changes the file's
/// extent map, which costs every `fdatasync` a journal commit. Writing the zeros first makes
/// that happen once per chunk instead (measured here: 126 → 95 µs per 3 KB write + sync). The
/// file reads the same either way, so recovery is unchanged.
fn zero_ahead(
    active: &mut SegmentFile,
    append_bytes: u64,
    segment_bytes_max: u64,
) -> Result<(), StorageError> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let end = active.len_bytes + append_bytes;
    if end <= active.zeroed_to_bytes {
        return Ok(());
    }
    let mut at = active.zeroed_to_bytes.max(active.len_bytes);
    let to = segment_bytes_max.min(end + ZERO_AHEAD_BYTES);
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        std::os::unix::fs::FileExt::write_all_at(&active.file, &ZEROS[..n], at)
            .map_err(|e| StorageError::io(&active.path, e))?;
        at += n as u64;
    }
    active.zeroed_to_bytes = to.max(end);
    Ok(())
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}
