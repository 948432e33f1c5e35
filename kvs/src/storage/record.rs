//! The on-disk framing and encoding of one log record. Pure: bytes in, values out.
//!
//! A record is laid out little-endian as
//!
//! ```text
//! +-----------+-----------+----------+---------+------------------+
//! | len: u32  | crc: u32  | group:u64| kind:u8 | payload          |
//! +-----------+-----------+----------+---------+------------------+
//!             <------------- len bytes after the header ---------->
//! ```
//!
//! `len` counts the bytes after the 8-byte header (group, kind, payload). `crc` is CRC32C over
//! the `len` field followed by everything after the crc, so a damaged length is caught too.
//! Payloads:
//!
//! - `Entries`: `first_index: u64, count: u32`, then per entry `term: u64, kind: u8,
//!   data_len: u32, data`; the indexes are `first_index, first_index + 1, ...`.
//! - `HardState`: `term: u64, vote: u64 (0 = none; node ids start at 1), commit: u64`.
//! - `SnapshotMarker`: `index: u64, term: u64`: the group's log now starts after `index`.
//! - `Truncate`: `from: u64`: the group's entries at `from` and above are discarded. Replayed
//!   when found; the log itself never writes it today, because an `Entries` record whose first
//!   index is not past the last already replaces the suffix, atomically.

use super::GroupId;
use crate::raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};
use bytes::Bytes;
use std::borrow::Cow;

/// Bytes before the body: `len` and `crc`.
pub(crate) const HEADER_BYTES: usize = 8;
/// Bytes of the body before the payload: group id and kind.
const BODY_PREFIX_BYTES: usize = 9;

/// What one record says about one group. Entries are borrowed when writing (no copy of the
/// caller's batch) and owned when decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// Entries to append; if the first one's index is not past the group's last index, the
    /// stored suffix from there is replaced.
    Entries(Cow<'a, [Entry]>),
    /// The group's new hard state.
    HardState(HardState),
    /// The group's log now starts after `index` (a snapshot was taken or installed there).
    SnapshotMarker {
        /// Last index the snapshot covers.
        index: LogIndex,
        /// Term of that entry.
        term: Term,
    },
    /// The group's entries at `from` and above are discarded.
    Truncate {
        /// First discarded index.
        from: LogIndex,
    },
}

impl Record<'_> {
    fn kind_byte(&self) -> u8 {
        match self {
            Record::Entries(_) => 1,
            Record::HardState(_) => 2,
            Record::SnapshotMarker { .. } => 3,
            Record::Truncate { .. } => 4,
        }
    }

    /// The framed length `encode` will produce.
    pub(crate) fn encoded_len(&self) -> usize {
        HEADER_BYTES
            + BODY_PREFIX_BYTES
            + match self {
                Record::Entries(entries) => {
                    12 + entries.iter().map(|e| 13 + e.data.len()).sum::<usize>()
                }
                Record::HardState(_) => 24,
                Record::SnapshotMarker { .. } => 16,
                Record::Truncate { .. } => 8,
            }
    }

    /// A short name for listings.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Record::Entries(_) => "entries",
            Record::HardState(_) => "hard_state",
            Record::SnapshotMarker { .. } => "snapshot_marker",
            Record::Truncate { .. } => "truncate",
        }
    }
}

/// Appends the framed encoding of `record` for `group` to `out`; returns the framed length.
///
/// # Panics
/// If `Entries` is empty or not consecutive (a caller bug).
pub(crate) fn encode(group: GroupId, record: &Record, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_BYTES]);
    out.extend_from_slice(&group.0.to_le_bytes());
    out.push(record.kind_byte());
    match record {
        Record::Entries(entries) => {
            assert!(!entries.is_empty(), "an Entries record needs entries");
            out.extend_from_slice(&entries[0].index.0.to_le_bytes());
            let count = u32::try_from(entries.len()).expect("entry count fits u32");
            out.extend_from_slice(&count.to_le_bytes());
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(
                    e.index.0,
                    entries[0].index.0 + i as u64,
                    "entries of one record must be consecutive"
                );
                out.extend_from_slice(&e.term.0.to_le_bytes());
                out.push(match e.kind {
                    EntryKind::Normal => 0,
                    EntryKind::Noop => 1,
                });
                let len = u32::try_from(e.data.len()).expect("entry data fits u32");
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&e.data);
            }
        }
        Record::HardState(hs) => {
            out.extend_from_slice(&hs.term.0.to_le_bytes());
            out.extend_from_slice(&hs.vote.map_or(0, |n| n.0).to_le_bytes());
            out.extend_from_slice(&hs.commit.0.to_le_bytes());
        }
        Record::SnapshotMarker { index, term } => {
            out.extend_from_slice(&index.0.to_le_bytes());
            out.extend_from_slice(&term.0.to_le_bytes());
        }
        Record::Truncate { from } => out.extend_from_slice(&from.0.to_le_bytes()),
    }
    debug_assert_eq!(out.len() - start, record.encoded_len());
    let body_len = out.len() - start - HEADER_BYTES;
    let len = u32::try_from(body_len).expect("record fits u32");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&out[start..start + 4], &out[start + HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

fn checksum(len_field: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_field), body)
}

/// The outcome of reading the frame that starts at some offset of a buffer.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A well-formed record and its framed length.
    Valid {
        /// The group the record belongs to.
        group: GroupId,
        /// The record.
        record: Record<'static>,
        /// Header plus body bytes.
        len_bytes: usize,
    },
    /// No well-formed record starts here.
    Bad(String),
}

/// Checks only the frame at `buf[0..]`: plausible length, in bounds, checksum. Returns the
/// framed length when it holds. Used to look for valid records after a bad one.
pub(crate) fn frame_checks_out(buf: &[u8], record_bytes_max: u32) -> Option<usize> {
    if buf.len() < HEADER_BYTES {
        return None;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    if (len as usize) < BODY_PREFIX_BYTES || len > record_bytes_max {
        return None;
    }
    let end = HEADER_BYTES + len as usize;
    if end > buf.len() {
        return None;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    (checksum(&buf[0..4], &buf[HEADER_BYTES..end]) == crc).then_some(end)
}

/// Decodes the record framed at the start of `buf`. Nothing is returned from a record that
/// fails its checksum.
pub(crate) fn decode(buf: &[u8], record_bytes_max: u32) -> Frame {
    if buf.len() < HEADER_BYTES {
        return Frame::Bad(format!("{} bytes left, less than a header", buf.len()));
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    if (len as usize) < BODY_PREFIX_BYTES || len > record_bytes_max {
        return Frame::Bad(format!("implausible record length {len}"));
    }
    let Some(end) = frame_checks_out(buf, record_bytes_max) else {
        if HEADER_BYTES + len as usize > buf.len() {
            return Frame::Bad(format!(
                "record length {len} runs past the end ({} bytes left)",
                buf.len()
            ));
        }
        return Frame::Bad("checksum mismatch".to_string());
    };
    let body = &buf[HEADER_BYTES..end];
    let group = GroupId(u64::from_le_bytes(body[0..8].try_into().expect("8 bytes")));
    let mut r = Reader {
        buf: &body[BODY_PREFIX_BYTES..],
    };
    let record = match decode_payload(body[8], &mut r) {
        Some(record) if r.buf.is_empty() => record,
        Some(_) => return Frame::Bad("trailing bytes after payload".to_string()),
        None => return Frame::Bad(format!("undecodable payload of kind {}", body[8])),
    };
    Frame::Valid {
        group,
        record,
        len_bytes: end,
    }
}

fn decode_payload(kind: u8, r: &mut Reader<'_>) -> Option<Record<'static>> {
    Some(match kind {
        1 => {
            let first = r.u64()?;
            let count = r.u32()?;
            // Each entry takes at least 13 bytes: bound the allocation by what is there.
            let mut entries = Vec::with_capacity((count as usize).min(r.buf.len() / 13));
            for i in 0..u64::from(count) {
                let term = Term(r.u64()?);
                let kind = match r.u8()? {
                    0 => EntryKind::Normal,
                    1 => EntryKind::Noop,
                    _ => return None,
                };
                let len = r.u32()? as usize;
                let data = Bytes::copy_from_slice(r.take(len)?);
                entries.push(Entry {
                    term,
                    index: LogIndex(first.checked_add(i)?),
                    kind,
                    data,
                });
            }
            if entries.is_empty() {
                return None;
            }
            Record::Entries(Cow::Owned(entries))
        }
        2 => Record::HardState(HardState {
            term: Term(r.u64()?),
            vote: match r.u64()? {
                0 => None,
                n => Some(NodeId(n)),
            },
            commit: LogIndex(r.u64()?),
        }),
        3 => Record::SnapshotMarker {
            index: LogIndex(r.u64()?),
            term: Term(r.u64()?),
        },
        4 => Record::Truncate {
            from: LogIndex(r.u64()?),
        },
        _ => return None,
    })
}

/// Reads little-endian fields off the front of a byte slice; every read checks the length
/// first, so a short or garbled buffer gives `None`, never a panic. Shared by the record and
/// snapshot-file decoders.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &'static [u8]) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: if data.is_empty() {
                EntryKind::Noop
            } else {
                EntryKind::Normal
            },
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let records = [
            Record::Entries(Cow::Owned(vec![entry(7, 2, b""), entry(8, 3, b"hello")])),
            Record::HardState(HardState {
                term: Term(5),
                vote: Some(NodeId(3)),
                commit: LogIndex(9),
            }),
            Record::HardState(HardState::default()),
            Record::SnapshotMarker {
                index: LogIndex(10),
                term: Term(4),
            },
            Record::Truncate { from: LogIndex(3) },
        ];
        let mut buf = Vec::new();
        for r in &records {
            encode(GroupId(42), r, &mut buf);
        }
        let mut at = 0;
        for r in &records {
            match decode(&buf[at..], 1 << 20) {
                Frame::Valid {
                    group,
                    record,
                    len_bytes,
                } => {
                    assert_eq!(group, GroupId(42));
                    assert_eq!(&record, r);
                    at += len_bytes;
                }
                Frame::Bad(why) => panic!("record at {at} bad: {why}"),
            }
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(
            GroupId(1),
            &Record::Entries(Cow::Owned(vec![entry(1, 1, b"abc")])),
            &mut buf,
        );
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode(&damaged, 1 << 20), Frame::Bad(_)),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let mut buf = Vec::new();
        encode(
            GroupId(1),
            &Record::Entries(Cow::Owned(vec![entry(1, 1, b"abcdef")])),
            &mut buf,
        );
        for cut in 0..buf.len() {
            assert!(matches!(decode(&buf[..cut], 1 << 20), Frame::Bad(_)));
        }
    }
}
