//! What a node loads for one group when it starts: the log and the snapshot store, reconciled.
//!
//! The node saves a snapshot durably before it tells the log ([`Wal::apply_snapshot`] or
//! [`Wal::compact`]), so after a crash the snapshot store may be one step ahead of the log,
//! never behind: a snapshot newer than the log's snapshot point is applied to the log here
//! (Raft paper §7 rules: matching entries after it are kept). A log whose snapshot point no
//! snapshot file covers has lost data that is nowhere else, and is reported.

use super::{GroupId, SnapshotStore, StorageError, Wal};
use crate::raft::{Entry, HardState, LogIndex, Snapshot};

/// Everything the Raft core of one group is built from at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredGroup {
    /// The group's hard state (term, vote, commit).
    pub hard_state: HardState,
    /// The newest snapshot, if the group has one; the log starts right after it.
    pub snapshot: Option<Snapshot>,
    /// Every entry after the snapshot, in index order.
    pub entries: Vec<Entry>,
}

/// Every group known to the log or the snapshot store, in order.
///
/// # Errors
/// `Io` when the snapshot directory cannot be read.
pub fn known_groups(wal: &Wal, store: &SnapshotStore) -> Result<Vec<GroupId>, StorageError> {
    let mut groups = wal.groups();
    groups.extend(store.groups()?);
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// Loads `group`'s state, first bringing the log up to the newest snapshot if a crash came
/// between saving the snapshot and recording it in the log (the fix is appended; call
/// [`Wal::sync`] before serving).
///
/// # Errors
/// `SnapshotMissing` when the log was compacted past every valid snapshot file; `Io` or
/// `Corruption` when reading fails.
pub fn recover_group(
    wal: &mut Wal,
    store: &SnapshotStore,
    group: GroupId,
) -> Result<RecoveredGroup, StorageError> {
    let snapshot = store.load(group)?;
    let snapshot_index = snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
    let (log_snapshot_index, _) = wal.snapshot_point(group);
    if snapshot_index < log_snapshot_index {
        return Err(StorageError::SnapshotMissing {
            group,
            index: log_snapshot_index,
        });
    }
    if let Some(s) = &snapshot {
        if s.meta.index > log_snapshot_index {
            wal.apply_snapshot(group, &s.meta)?;
        }
    }
    let entries = wal.entries(group, wal.first_index(group), wal.last_index(group).next())?;
    let first = snapshot_index.next();
    assert!(
        entries.first().is_none_or(|e| e.index == first),
        "group {group}: log does not start right after its snapshot"
    );
    Ok(RecoveredGroup {
        hard_state: wal.hard_state(group),
        snapshot,
        entries,
    })
}
