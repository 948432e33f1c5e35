//! Snapshot files, one directory per node, newest file per group wins.
//!
//! A snapshot is written to `<group>-<index>.snap.tmp`, fsynced, renamed to
//! `<group 20 digits>-<index 20 digits>.snap`, and the directory fsynced; only then are the
//! group's older snapshot files deleted. A crash at any point leaves either the previous snapshot
//! or the new one, plus maybe a temp file, which [`SnapshotStore::open`] removes.
//!
//! File layout, little-endian: `magic "RKVSNAP1"`, `group: u64`, `index: u64`, `term: u64`,
//! `voter_count: u32`, `voters: u64 * voter_count`, `data_len: u64`, `data`, then `crc: u32`
//! (CRC32C over everything before it).

use super::record::Reader;
use super::recovery::{create_dir_durable, read_all, sync_dir};
use super::{GroupId, StorageError};
use crate::raft::{LogIndex, NodeId, Snapshot, SnapshotMeta, Term};
use bytes::Bytes;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RKVSNAP1";
const TEMP_SUFFIX: &str = ".snap.tmp";

/// The node's snapshot directory.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    fsync: bool,
}

fn file_name(group: GroupId, index: LogIndex) -> String {
    format!("{:020}-{:020}.snap", group.0, index.0)
}

fn parse_name(name: &str) -> Option<(GroupId, LogIndex)> {
    let stem = name.strip_suffix(".snap")?;
    let (group, index) = stem.split_once('-')?;
    if group.len() != 20 || index.len() != 20 {
        return None;
    }
    Some((GroupId(group.parse().ok()?), LogIndex(index.parse().ok()?)))
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory `dir` and removes temp files left by
    /// an interrupted save. `fsync: false` skips every fsync (tests and benchmarks only).
    ///
    /// # Errors
    /// `Io` when the directory cannot be created, read or cleaned.
    pub fn open(dir: &Path, fsync: bool) -> Result<SnapshotStore, StorageError> {
        create_dir_durable(dir, fsync)?;
        for item in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
            let item = item.map_err(|e| StorageError::io(dir, e))?;
            if item.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                std::fs::remove_file(item.path()).map_err(|e| StorageError::io(item.path(), e))?;
            }
        }
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
            fsync,
        })
    }

    /// Writes `snapshot` for `group` durably (temp file, fsync, rename, directory fsync), then
    /// deletes the group's older snapshot files.
    ///
    /// # Errors
    /// `Io` when any step fails; the previous snapshot is then still the newest complete one.
    pub fn save(&self, group: GroupId, snapshot: &Snapshot) -> Result<(), StorageError> {
        let meta = &snapshot.meta;
        let mut buf = Vec::with_capacity(snapshot.data.len() + 64 + meta.voters.len() * 8);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&group.0.to_le_bytes());
        buf.extend_from_slice(&meta.index.0.to_le_bytes());
        buf.extend_from_slice(&meta.term.0.to_le_bytes());
        let voter_count = u32::try_from(meta.voters.len()).expect("voters fit u32");
        buf.extend_from_slice(&voter_count.to_le_bytes());
        for v in &meta.voters {
            buf.extend_from_slice(&v.0.to_le_bytes());
        }
        buf.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
        buf.extend_from_slice(&snapshot.data);
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());

        let name = file_name(group, meta.index);
        let temp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| StorageError::io(&temp, e))?;
        f.write_all(&buf).map_err(|e| StorageError::io(&temp, e))?;
        if self.fsync {
            f.sync_all().map_err(|e| StorageError::io(&temp, e))?;
        }
        drop(f);
        std::fs::rename(&temp, &path).map_err(|e| StorageError::io(&path, e))?;
        if self.fsync {
            sync_dir(&self.dir)?;
        }
        // The new snapshot is durable: older ones can go. Two threads may save snapshots of one
        // group at once (one taken here, one received from the leader), so a file already gone
        // is fine.
        for (older, older_path) in self.files_of(group)? {
            if older < meta.index {
                match std::fs::remove_file(&older_path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io(&older_path, e)),
                }
            }
        }
        Ok(())
    }

    /// The group's newest snapshot whose file checks out, if any. A newer file that fails its
    /// checksum is skipped (it is reported by [`SnapshotStore::corrupt_files`]).
    ///
    /// # Errors
    /// `Io` when the directory or a file cannot be read (an unreadable newer file is not
    /// silently passed over).
    pub fn load(&self, group: GroupId) -> Result<Option<Snapshot>, StorageError> {
        let mut files = self.files_of(group)?;
        files.sort();
        for (_, path) in files.into_iter().rev() {
            match read_snapshot(&path, group) {
                Ok(snapshot) => return Ok(Some(snapshot)),
                Err(StorageError::SnapshotCorrupt { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Every group that has a snapshot file, in order.
    ///
    /// # Errors
    /// `Io` when the directory cannot be read.
    pub fn groups(&self) -> Result<Vec<GroupId>, StorageError> {
        let mut groups: Vec<GroupId> = self.list()?.into_iter().map(|(g, _, _)| g).collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// Snapshot files that fail their checksum or do not decode, with the reason.
    ///
    /// # Errors
    /// `Io` when the directory cannot be read.
    pub fn corrupt_files(&self) -> Result<Vec<StorageError>, StorageError> {
        let mut bad = Vec::new();
        for (group, _, path) in self.list()? {
            if let Err(e) = read_snapshot(&path, group) {
                bad.push(e);
            }
        }
        Ok(bad)
    }

    fn files_of(&self, group: GroupId) -> Result<Vec<(LogIndex, PathBuf)>, StorageError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|(g, _, _)| *g == group)
            .map(|(_, i, p)| (i, p))
            .collect())
    }

    fn list(&self) -> Result<Vec<(GroupId, LogIndex, PathBuf)>, StorageError> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(|e| StorageError::io(&self.dir, e))? {
            let item = item.map_err(|e| StorageError::io(&self.dir, e))?;
            if let Some((g, i)) = item.file_name().to_str().and_then(parse_name) {
                out.push((g, i, item.path()));
            }
        }
        Ok(out)
    }
}

fn read_snapshot(path: &Path, group: GroupId) -> Result<Snapshot, StorageError> {
    let buf = read_all(path)?;
    let bad = |reason: &str| StorageError::SnapshotCorrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if buf.len() < MAGIC.len() + 4 {
        return Err(bad("too short"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad("checksum mismatch"));
    }
    let mut r = Reader { buf: body };
    let truncated = || bad("truncated");
    if r.take(8).ok_or_else(truncated)? != MAGIC {
        return Err(bad("bad magic"));
    }
    let file_group = GroupId(r.u64().ok_or_else(truncated)?);
    let index = LogIndex(r.u64().ok_or_else(truncated)?);
    let term = Term(r.u64().ok_or_else(truncated)?);
    let voter_count = r.u32().ok_or_else(truncated)?;
    let mut voters = Vec::new();
    for _ in 0..voter_count {
        voters.push(NodeId(r.u64().ok_or_else(truncated)?));
    }
    let data_len =
        usize::try_from(r.u64().ok_or_else(truncated)?).map_err(|_| bad("data length"))?;
    let data = Bytes::copy_from_slice(r.take(data_len).ok_or_else(truncated)?);
    if !r.buf.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if file_group != group {
        return Err(bad("snapshot of another group"));
    }
    Ok(Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            voters,
        },
        data,
    })
}
