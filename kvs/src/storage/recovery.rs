//! Opening a log directory: scan every segment in order, replay its records into per-group
//! state, cut a torn tail off the last segment, refuse to go on at corruption.
//!
//! The torn-tail-or-corruption rule is in `segment.rs`. Nothing is ever applied from a record
//! that fails its checksum: the scan stops at the first bad record.

use super::cache::EntryCache;
use super::group_log::{GroupLog, Mode, RecordLoc};
use super::record::Record;
use super::segment::{self, SegmentEnd, SegmentSeq};
use super::{GroupId, StorageError, WalOptions};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What replay rebuilt.
pub(crate) struct Recovered {
    /// Segment files in log order, the last one open for appending.
    pub(crate) segments: BTreeMap<SegmentSeq, (PathBuf, File, u64)>,
    /// Every group seen.
    pub(crate) groups: HashMap<GroupId, GroupLog>,
    /// Recently replayed entries.
    pub(crate) cache: EntryCache,
    /// True when a new first segment was created (its directory entry needs an fsync).
    pub(crate) created_first_segment: bool,
}

/// Reads a whole file.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, StorageError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| StorageError::io(path, e))?;
    Ok(buf)
}

/// Opens `dir` (creating it and a first segment if needed), replays it, and truncates a torn
/// tail of the last segment.
pub(crate) fn recover(dir: &Path, options: &WalOptions) -> Result<Recovered, StorageError> {
    create_dir_durable(dir, options.fsync)?;
    let listed = segment::list(dir)?;
    let mut groups: HashMap<GroupId, GroupLog> = HashMap::new();
    let mut cache = EntryCache::new(options.entry_cache_bytes_max);
    let mut segments = BTreeMap::new();
    let count = listed.len();
    for (k, (seq, path)) in listed.into_iter().enumerate() {
        let is_last = k + 1 == count;
        let buf = read_all(&path)?;
        let (records, end) = segment::scan(&buf, is_last, options.record_bytes_max);
        let len_bytes = match end {
            SegmentEnd::Clean => buf.len() as u64,
            SegmentEnd::ZeroTail { offset_bytes } => offset_bytes,
            SegmentEnd::Corrupt {
                offset_bytes,
                reason,
            } => {
                return Err(StorageError::Corruption {
                    path,
                    offset_bytes,
                    reason,
                })
            }
            SegmentEnd::TornTail { offset_bytes, .. } => {
                // Never synced: cut it away before anything is appended after it.
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StorageError::io(&path, e))?;
                f.set_len(offset_bytes)
                    .map_err(|e| StorageError::io(&path, e))?;
                if options.fsync {
                    f.sync_all().map_err(|e| StorageError::io(&path, e))?;
                }
                offset_bytes
            }
        };
        for r in records {
            let loc = RecordLoc {
                segment: seq,
                offset_bytes: r.offset_bytes,
                len_bytes: r.len_bytes,
            };
            let log = groups.entry(r.group).or_default();
            match r.record {
                Record::Entries(entries) => {
                    log.apply_entries(&entries, loc, Mode::Replay)
                        .expect("replay mode accepts every entries record");
                    cache.append(r.group, &entries);
                }
                Record::HardState(hs) => log.apply_hard_state(hs),
                Record::SnapshotMarker { index, term } => log.apply_snapshot_marker(index, term),
                Record::Truncate { from } => log.apply_truncate(from),
            }
            cache.retain_range(r.group, log.first_index, log.last_index());
        }
        // Appends go to explicit offsets (`len_bytes` on), never to the file's end, which may
        // lie past preallocated zeros.
        let file = OpenOptions::new()
            .read(true)
            .write(is_last)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        if is_last {
            preallocate(&file, &path, len_bytes, options)?;
        }
        segments.insert(seq, (path, file, len_bytes));
    }
    for (group, log) in &groups {
        log.check_recovered()
            .map_err(|reason| StorageError::Corruption {
                path: dir.to_path_buf(),
                offset_bytes: 0,
                reason: format!("group {group}: {reason}"),
            })?;
    }
    let mut created_first_segment = false;
    if segments.is_empty() {
        let seq = SegmentSeq(1);
        let path = dir.join(seq.file_name());
        let file = create_segment(&path, options)?;
        segments.insert(seq, (path, file, 0));
        created_first_segment = true;
    }
    Ok(Recovered {
        segments,
        groups,
        cache,
        created_first_segment,
    })
}

/// Creates a new, empty segment file open for reading and appending.
pub(crate) fn create_segment(path: &Path, options: &WalOptions) -> Result<File, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    preallocate(&file, path, 0, options)?;
    Ok(file)
}

/// Gives the active segment its full size from `from_bytes` on (see
/// [`WalOptions::preallocate`]); a file system that cannot preallocate is simply not asked
/// again (appends then grow the file, as without the option).
fn preallocate(
    file: &File,
    path: &Path,
    from_bytes: u64,
    options: &WalOptions,
) -> Result<(), StorageError> {
    if !options.preallocate || from_bytes >= options.segment_bytes_max {
        return Ok(());
    }
    let len = options.segment_bytes_max - from_bytes;
    match nix::fcntl::posix_fallocate(
        std::os::fd::AsRawFd::as_raw_fd(file),
        from_bytes as i64,
        len as i64,
    ) {
        Ok(())
        | Err(
            nix::errno::Errno::EOPNOTSUPP
            | nix::errno::Errno::EINVAL
            | nix::errno::Errno::ENOSPC
            | nix::errno::Errno::EFBIG,
        ) => Ok(()),
        Err(e) => Err(StorageError::io(path, std::io::Error::from(e))),
    }
}

/// Creates `dir` and any missing parents, and (with `fsync`) makes each new directory's entry
/// durable by syncing its parent: a directory created and never synced into its parent can
/// vanish in a power cut with everything later written inside it, fsynced or not.
pub(crate) fn create_dir_durable(dir: &Path, fsync: bool) -> Result<(), StorageError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    if fsync {
        // Outermost first, so that each parent's entry is durable before its child's.
        for d in missing.iter().rev() {
            if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
    }
    Ok(())
}

/// Makes the directory entries of `dir` (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}
