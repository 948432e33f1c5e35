//! The typed errors of the storage layer.

use super::GroupId;
use crate::raft::LogIndex;
use std::path::PathBuf;

/// Everything that can go wrong in `storage`. Expected conditions a caller matches on
/// (`Compacted`, `Unavailable`) are kept apart from environmental stops (`Io`, `Corruption`,
/// `SnapshotCorrupt`), which mean the data directory cannot be trusted or used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A system call on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was made on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or sync of this log failed; nothing more is written (a failed fsync
    /// cannot be retried safely). Reopen the log to recover what is on disk.
    #[error("write-ahead log {} stopped after an earlier I/O failure", path.display())]
    Failed {
        /// The log directory.
        path: PathBuf,
    },
    /// Another open log (in this or another process) holds the directory's lock.
    #[error("write-ahead log directory is in use: {} is locked", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A record of the log failed its checksum or could not be decoded, and it is not a torn tail
    /// (see `recovery.rs` for the rule), or the log's records contradict each other.
    #[error("corrupt write-ahead log: {} at byte offset {offset_bytes}: {reason}", path.display())]
    Corruption {
        /// The segment file holding the bad record.
        path: PathBuf,
        /// Where the bad record starts in that file.
        offset_bytes: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// A snapshot file that was fully written (renamed into place) fails its checksum.
    #[error("corrupt snapshot file {}: {reason}", path.display())]
    SnapshotCorrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The log was compacted up to `index` but no valid snapshot file covers it: the state
    /// machine up to there is lost.
    #[error("group {group}: log compacted to {index} but no valid snapshot covers it")]
    SnapshotMissing {
        /// The group.
        group: GroupId,
        /// The log's snapshot point.
        index: LogIndex,
    },
    /// The requested entry was discarded by log compaction; ask the snapshot instead.
    #[error("group {group}: entry {index} is compacted into a snapshot")]
    Compacted {
        /// The group asked about.
        group: GroupId,
        /// The index asked for.
        index: LogIndex,
    },
    /// The requested entry is past the end of the group's log.
    #[error("group {group}: entry {index} is not in the log yet")]
    Unavailable {
        /// The group asked about.
        group: GroupId,
        /// The index asked for.
        index: LogIndex,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}
