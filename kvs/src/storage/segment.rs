//! Segment files: their names, their listing in a directory, and the scan of one segment's
//! bytes into records plus a verdict about how it ends. The scan is pure (bytes in, values out);
//! the listing is the only I/O here.
//!
//! Segments are named `<sequence number, 20 digits>.wal` so that names sort in log order.
//!
//! # Torn tail or corruption
//!
//! Scanning stops at the first record that is not well formed (short header, implausible
//! length, length running past the end, checksum mismatch, undecodable payload). The rule:
//!
//! - if **any** well-formed record (plausible length, in bounds, checksum holds) starts at any
//!   later byte offset of the same segment, the bad record is **corruption**: data that was
//!   once written and followed by more writes has changed;
//! - otherwise, in the **last** segment, it is a **torn tail**: the end of a write that never
//!   completed (and was therefore never synced); recovery cuts the file back to the end of the
//!   last good record;
//! - otherwise (a segment that is not the last) it is **corruption**: a segment is synced before
//!   the next one is created, so no earlier segment can end torn.
//!
//! The rule is conservative: if a crash persisted the pages of an unsynced write out of order (a
//! hole of stale bytes followed by valid records), the node refuses to start rather than guess;
//! `kvs wal dump` shows where.

use super::record::{self, Frame, Record};
use super::{GroupId, StorageError};
use std::path::{Path, PathBuf};

/// The sequence number of a segment file; the first segment is 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SegmentSeq(pub u64);

impl SegmentSeq {
    /// The file name of this segment.
    pub(crate) fn file_name(self) -> String {
        format!("{:020}.wal", self.0)
    }

    /// The sequence number named by `name`, if it is a segment file name.
    pub(crate) fn parse(name: &str) -> Option<SegmentSeq> {
        let digits = name.strip_suffix(".wal")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(SegmentSeq)
    }
}

/// Lists the segment files of `dir` in log order. Other files are ignored.
///
/// # Errors
/// `Io` if the directory cannot be read.
pub(crate) fn list(dir: &Path) -> Result<Vec<(SegmentSeq, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    let read_dir = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for item in read_dir {
        let item = item.map_err(|e| StorageError::io(dir, e))?;
        if let Some(seq) = item.file_name().to_str().and_then(SegmentSeq::parse) {
            segments.push((seq, item.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// One well-formed record found by a scan.
#[derive(Debug)]
pub(crate) struct ScannedRecord {
    /// Where its frame starts in the segment.
    pub(crate) offset_bytes: u64,
    /// Its framed length.
    pub(crate) len_bytes: u32,
    /// Its group.
    pub(crate) group: GroupId,
    /// Its content.
    pub(crate) record: Record<'static>,
}

/// How a scanned segment ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    /// Every byte belongs to a well-formed record.
    Clean,
    /// Well-formed records up to `offset_bytes`, then only zeros to the end of the last
    /// segment: space preallocated for appends (or a torn write that left nothing but zeros;
    /// either way nothing is lost by starting the next append there).
    ZeroTail {
        /// End of the last good record.
        offset_bytes: u64,
    },
    /// A torn write from `offset_bytes` to the end of the last segment.
    TornTail {
        /// End of the last good record.
        offset_bytes: u64,
        /// What was wrong with the record starting there.
        reason: String,
    },
    /// A bad record at `offset_bytes` that is not a torn tail.
    Corrupt {
        /// Where the bad record starts.
        offset_bytes: u64,
        /// What was wrong with it.
        reason: String,
    },
}

/// Scans `buf`, the whole content of a segment, applying the rule in the module docs.
pub(crate) fn scan(
    buf: &[u8],
    is_last_segment: bool,
    record_bytes_max: u32,
) -> (Vec<ScannedRecord>, SegmentEnd) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        match record::decode(&buf[at..], record_bytes_max) {
            Frame::Valid {
                group,
                record,
                len_bytes,
            } => {
                records.push(ScannedRecord {
                    offset_bytes: at as u64,
                    len_bytes: u32::try_from(len_bytes).expect("bounded by record_bytes_max"),
                    group,
                    record,
                });
                at += len_bytes;
            }
            Frame::Bad(reason) => {
                let offset_bytes = at as u64;
                if is_last_segment && buf[at..].iter().all(|&b| b == 0) {
                    return (records, SegmentEnd::ZeroTail { offset_bytes });
                }
                if let Some(later) = first_valid_frame_after(buf, at, record_bytes_max) {
                    let reason = format!("{reason}; a valid record follows at byte {later}");
                    return (
                        records,
                        SegmentEnd::Corrupt {
                            offset_bytes,
                            reason,
                        },
                    );
                }
                let end = if is_last_segment {
                    SegmentEnd::TornTail {
                        offset_bytes,
                        reason,
                    }
                } else {
                    SegmentEnd::Corrupt {
                        offset_bytes,
                        reason: format!("{reason}, in a segment that is not the last"),
                    }
                };
                return (records, end);
            }
        }
    }
    (records, SegmentEnd::Clean)
}

fn first_valid_frame_after(buf: &[u8], bad_at: usize, record_bytes_max: u32) -> Option<usize> {
    (bad_at + 1..buf.len())
        .find(|&p| record::frame_checks_out(&buf[p..], record_bytes_max).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{LogIndex, Term};

    fn two_records() -> (Vec<u8>, usize) {
        let mut buf = Vec::new();
        let first = record::encode(
            GroupId(1),
            &Record::SnapshotMarker {
                index: LogIndex(3),
                term: Term(1),
            },
            &mut buf,
        );
        record::encode(
            GroupId(1),
            &Record::Truncate { from: LogIndex(9) },
            &mut buf,
        );
        (buf, first)
    }

    #[test]
    fn names_sort_in_log_order() {
        assert_eq!(SegmentSeq(12).file_name(), "00000000000000000012.wal");
        assert_eq!(
            SegmentSeq::parse("00000000000000000012.wal"),
            Some(SegmentSeq(12))
        );
        assert_eq!(SegmentSeq::parse("12.wal"), None);
        assert!(SegmentSeq(9).file_name() < SegmentSeq(10).file_name());
    }

    #[test]
    fn damage_in_last_record_is_a_torn_tail() {
        let (mut buf, first) = two_records();
        buf[first + 9] ^= 0x10;
        let (records, end) = scan(&buf, true, 1 << 20);
        assert_eq!(records.len(), 1);
        assert!(
            matches!(end, SegmentEnd::TornTail { offset_bytes, .. } if offset_bytes == first as u64)
        );
    }

    #[test]
    fn damage_followed_by_a_record_is_corruption() {
        let (mut buf, _) = two_records();
        buf[10] ^= 0x01;
        let (records, end) = scan(&buf, true, 1 << 20);
        assert!(records.is_empty());
        assert!(matches!(
            end,
            SegmentEnd::Corrupt {
                offset_bytes: 0,
                ..
            }
        ));
    }

    #[test]
    fn trailing_zeros_are_free_space_only_in_the_last_segment() {
        let (mut buf, _) = two_records();
        let len = buf.len();
        buf.extend_from_slice(&[0; 100]);
        let (records, end) = scan(&buf, true, 1 << 20);
        assert_eq!(records.len(), 2);
        assert!(matches!(end, SegmentEnd::ZeroTail { offset_bytes } if offset_bytes == len as u64));
        // A half-written record before the zeros is still a torn tail.
        buf[len] = 7;
        let (_, end) = scan(&buf, true, 1 << 20);
        assert!(
            matches!(end, SegmentEnd::TornTail { offset_bytes, .. } if offset_bytes == len as u64)
        );
        buf[len] = 0;
        let (_, end) = scan(&buf, false, 1 << 20);
        assert!(matches!(end, SegmentEnd::Corrupt { .. }));
    }
}
