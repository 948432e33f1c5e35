//! A read-only listing of a log directory for operators: every record and the verdict of the
//! recovery scan (`segment.rs` holds the torn-tail rule). Modifies nothing.

use super::record::Record;
use super::recovery::read_all;
use super::segment::{self, SegmentEnd};
use super::{StorageError, WalOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What recovery would make of a log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpVerdict {
    /// Every segment is intact.
    Clean,
    /// The last segment ends in a torn write that recovery would cut away.
    TornTail {
        /// The last segment.
        path: PathBuf,
        /// Where the torn record starts (the file would be cut there).
        offset_bytes: u64,
    },
    /// A bad record that is not a torn tail: the node would refuse to start.
    Corruption {
        /// The segment holding it.
        path: PathBuf,
        /// Where it starts.
        offset_bytes: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Prints every record of the log in `dir` (the log directory itself, or a data directory
/// holding it as `wal/`) and the verdict of a recovery scan, without modifying anything. The
/// listing stops at the first corrupt record.
///
/// # Errors
/// `Io` when the directory or a segment cannot be read, or `out` cannot be written.
pub fn dump(dir: &Path, out: &mut dyn Write) -> Result<DumpVerdict, StorageError> {
    let nested = dir.join("wal");
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let out_err = |e| StorageError::io("<output>", e);
    let listed = segment::list(&dir)?;
    writeln!(out, "wal {}: {} segment(s)", dir.display(), listed.len()).map_err(out_err)?;
    let record_bytes_max = WalOptions::default().record_bytes_max;
    let count = listed.len();
    for (k, (_, path)) in listed.into_iter().enumerate() {
        let buf = read_all(&path)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        writeln!(out, "segment {name}: {} bytes", buf.len()).map_err(out_err)?;
        let (records, end) = segment::scan(&buf, k + 1 == count, record_bytes_max);
        for r in &records {
            let what = describe(&r.record);
            writeln!(
                out,
                "  {name} @{:<10} len {:<7} group {:<6} {:<15} {what}",
                r.offset_bytes,
                r.len_bytes,
                r.group.0,
                r.record.kind_name()
            )
            .map_err(out_err)?;
        }
        match end {
            SegmentEnd::Clean | SegmentEnd::ZeroTail { .. } => {}
            SegmentEnd::TornTail {
                offset_bytes,
                reason,
            } => {
                writeln!(
                    out,
                    "verdict: torn tail at {}:{offset_bytes} ({reason}); recovery truncates it",
                    path.display()
                )
                .map_err(out_err)?;
                return Ok(DumpVerdict::TornTail { path, offset_bytes });
            }
            SegmentEnd::Corrupt {
                offset_bytes,
                reason,
            } => {
                writeln!(
                    out,
                    "verdict: CORRUPTION at {}:{offset_bytes}: {reason}",
                    path.display()
                )
                .map_err(out_err)?;
                return Ok(DumpVerdict::Corruption {
                    path,
                    offset_bytes,
                    reason,
                });
            }
        }
    }
    writeln!(out, "verdict: clean").map_err(out_err)?;
    Ok(DumpVerdict::Clean)
}

fn describe(record: &Record) -> String {
    match record {
        Record::Entries(entries) => {
            let first = &entries[0];
            let last = &entries[entries.len() - 1];
            format!(
                "index {}..={} term {}..={} ({} entries)",
                first.index.0,
                last.index.0,
                first.term.0,
                last.term.0,
                entries.len()
            )
        }
        Record::HardState(hs) => format!(
            "term {} vote {} commit {}",
            hs.term.0,
            hs.vote.map_or_else(|| "-".to_string(), |v| v.0.to_string()),
            hs.commit.0
        ),
        Record::SnapshotMarker { index, term } => format!("index {} term {}", index.0, term.0),
        Record::Truncate { from } => format!("from index {}", from.0),
    }
}
