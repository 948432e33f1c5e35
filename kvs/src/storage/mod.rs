//! Durable storage: the node's write-ahead log shared by every Raft group it hosts, and the
//! snapshot files. Depends on nothing in `kvs` but the Raft core's types.
//!
//! - [`Wal`] (`wal.rs`): one log per node; framed records (`record.rs`) in segment files
//!   (`segment.rs`); group commit (`append_*` buffer, [`Wal::sync`] makes them durable with one
//!   `fdatasync`); an in-memory index per group (`group_log.rs`) and a byte-bounded cache of
//!   recent entries (`cache.rs`), so reads never rescan the files.
//! - Recovery (`recovery.rs`): the segments are scanned in order when the log is opened; a torn
//!   tail of the last segment is cut away, anything else that fails its checksum is reported as
//!   [`StorageError::Corruption`] naming the file and byte offset.
//! - [`SnapshotStore`] (`snapshot.rs`): state machine snapshots written with
//!   temp-file/fsync/rename/dir-fsync.
//! - [`dump`] (`dump.rs`): a read-only listing of every record and the recovery verdict.
//! - [`recover_group`] (`node_start.rs`): what the node builds a group's Raft core from at
//!   start, with the log and the snapshot store reconciled.
//!
//! Suggested layout of a node's data directory: `<data-dir>/wal/` for [`Wal::open`] and
//! `<data-dir>/snapshots/` for [`SnapshotStore::open`]; `kvs wal dump <data-dir>` finds `wal/`.
//!
//! How the node runtime uses it:
//!
//! ```text
//! start:   wal = Wal::open(data/wal, WalOptions::default())?
//!          store = SnapshotStore::open(data/snapshots, true)?
//!          for g in known_groups(&wal, &store)? { build core from recover_group(&mut wal, &store, g)? }
//!          wal.sync()?
//! round:   for each group's Ready: wal.set_hard_state(g, hs)?; wal.append_entries(g, &entries)?;
//!          (installed snapshot: store.save(g, &snap)?; wal.apply_snapshot(g, &snap.meta)?)
//!          wal.sync()?            // one fdatasync for every group, then send the messages
//! compact: store.save(g, &snap)?; wal.compact(g, snap.meta.index)?  // segments freed at sync
//! ```
//!
//! Any `Io` error from a write or `sync` means the node must stop (`StorageError::Failed`
//! from then on); `Corruption` at open means the data directory needs an operator.
//!
//! The node runtime must respect one ordering rule: a snapshot is saved with
//! [`SnapshotStore::save`] (durable when it returns) *before* the log is told about it with
//! [`Wal::apply_snapshot`] or [`Wal::compact`], so the log never forgets entries that no durable
//! snapshot covers.

mod cache;
mod dir_lock;
mod dump;
mod errors;
mod group_id;
mod group_log;
mod node_start;
mod options;
mod record;
mod recovery;
mod segment;
mod snapshot;
mod wal;

pub use dump::{dump, DumpVerdict};
pub use errors::StorageError;
pub use group_id::GroupId;
pub use node_start::{known_groups, recover_group, RecoveredGroup};
pub use options::WalOptions;
pub use snapshot::SnapshotStore;
pub use wal::Wal;
