//! The WAL thread: owns the node's write-ahead log and snapshot files, and makes the driver's
//! persistence jobs durable in order, many jobs per `sync` (group commit).
//!
//! The driver never waits for the disk: it hands a job over, keeps stepping its groups, and
//! learns from a `Persisted(seq)` input that every job up to `seq` is on disk. Jobs are done
//! strictly in the order they were given, so a compaction never overtakes the entries it
//! covers, and `Persisted` is reported in order too.

use super::driver::{DriverInput, InboxSender};
use crate::raft::{Entry, HardState, Snapshot};
use crate::storage::{GroupId, SnapshotStore, Wal};
use std::sync::mpsc::Receiver;

/// What one group's `Ready` asks to be made durable.
pub struct PersistItem {
    /// The group.
    pub group: GroupId,
    /// A snapshot received from the leader: saved, then recorded in the log.
    pub snapshot: Option<Snapshot>,
    /// Entries to append (replacing a stored suffix from the first one on).
    pub entries: Vec<Entry>,
    /// Term, vote and commit to record.
    pub hard_state: Option<HardState>,
}

/// A unit of work for the WAL thread.
pub enum WalJob {
    /// Persist these items; report `Persisted(seq)` once they are synced.
    Persist {
        /// The driver's sequence number of this job (increasing).
        seq: u64,
        /// What to write.
        items: Vec<PersistItem>,
    },
    /// A snapshot of the group at `index` is durable: the log may forget what it covers.
    Compact {
        /// The group.
        group: GroupId,
        /// The snapshot's last index.
        index: crate::raft::LogIndex,
    },
}

/// Jobs taken together under one `sync` at most.
const JOBS_PER_SYNC_MAX: usize = 4096;

/// Saves the snapshots the driver takes, off the WAL thread (a large snapshot's write and
/// fsync must not hold up the log's syncs), then asks the WAL thread to compact up to it. The
/// entries it covers were handed to the WAL thread before the snapshot was taken, so the
/// compaction, queued after them, never overtakes them.
pub fn run_snapshotter(
    snapshots: SnapshotStore,
    jobs: Receiver<(GroupId, Snapshot)>,
    wal: std::sync::mpsc::Sender<WalJob>,
    driver: InboxSender,
) {
    while let Ok((group, snapshot)) = jobs.recv() {
        let index = snapshot.meta.index;
        if let Err(e) = snapshots.save(group, &snapshot) {
            let _ = driver.blocking_send(DriverInput::StorageFailed(format!("{e:#}")));
            return;
        }
        if wal.send(WalJob::Compact { group, index }).is_err() {
            return;
        }
    }
}

/// Runs until the driver drops its sender. A storage error is reported to the driver as
/// `StorageFailed` and stops the thread: after a failed write or fsync nothing more may be
/// promised.
pub fn run(mut wal: Wal, snapshots: SnapshotStore, jobs: Receiver<WalJob>, driver: InboxSender) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < JOBS_PER_SYNC_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_batch(&mut wal, &snapshots, batch) {
            Ok(Some(seq)) => {
                if driver.blocking_send(DriverInput::Persisted(seq)).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = driver.blocking_send(DriverInput::StorageFailed(format!("{e:#}")));
                return;
            }
        }
    }
}

fn write_batch(
    wal: &mut Wal,
    snapshots: &SnapshotStore,
    batch: Vec<WalJob>,
) -> anyhow::Result<Option<u64>> {
    let mut wrote = false;
    let mut done = None;
    for job in batch {
        match job {
            WalJob::Persist { seq, items } => {
                for item in items {
                    if let Some(snap) = &item.snapshot {
                        snapshots.save(item.group, snap)?;
                        wal.apply_snapshot(item.group, &snap.meta)?;
                    }
                    if !item.entries.is_empty() {
                        wal.append_entries(item.group, &item.entries)?;
                    }
                    if let Some(hs) = item.hard_state {
                        wal.set_hard_state(item.group, hs)?;
                    }
                    wrote = true;
                }
                done = Some(seq);
            }
            WalJob::Compact { group, index } => {
                wal.compact(group, index)?;
                wrote = true;
            }
        }
    }
    if wrote {
        wal.sync()?;
    }
    Ok(done)
}
