//! The state machine's snapshot encoding: what a Raft snapshot's data holds for one shard.
//!
//! Layout (version 2, written): `"KVSM"`, `[version u8 = 2]`, `[applied u64]`, `[count u64]`,
//! then `count` entries in strictly ascending key order, each `[key]` `[type u8]` and then
//! - type 0, a string: `[value]`;
//! - type 1, a set: `[members u32]` then that many `[member]`, strictly ascending, at least one;
//!
//! then `[crc u32]`: the CRC32C of every byte before it (magic, version, applied index and
//! entries). Byte strings are `u32` length + bytes; all integers big-endian.
//!
//! Version 1 (read only, so that data dirs written before sets existed still load) has no type
//! byte: every entry is `[key]` `[value]`, a string.
//!
//! Restore checks magic, version and checksum before trusting anything, then rejects
//! truncation, trailing bytes, keys or members out of order, empty sets and unknown type tags.
//! No allocation is sized by a count before the bytes behind it are known to be there.

use super::wire::{put_bytes, DecodeError, Reader};
use super::{StateMachine, Value};
use crate::raft::types::LogIndex;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeSet, HashMap};

/// The first bytes of every snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 4] = b"KVSM";

/// The snapshot encoding version written by [`StateMachine::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 2;

/// The first version: strings only, no type byte. Still read.
const SNAPSHOT_VERSION_STRINGS_ONLY: u8 = 1;

/// Type byte of a string entry (version 2).
const TYPE_STRING: u8 = 0;

/// Type byte of a set entry (version 2).
const TYPE_SET: u8 = 1;

/// Bytes of the header: magic, version, applied index, entry count.
const HEADER_BYTES: usize = 4 + 1 + 8 + 8;

/// Bytes of the trailing checksum.
const CRC_BYTES: usize = 4;

/// The fewest bytes a version-1 entry takes: key length and value length.
const ENTRY_BYTES_MIN_V1: u64 = 8;

/// The fewest bytes a version-2 entry takes: key length, type byte, value length or member
/// count.
const ENTRY_BYTES_MIN_V2: u64 = 9;

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Str(s) => 1 + 4 + s.len(),
        Value::Set(members) => 1 + 4 + members.iter().map(|m| 4 + m.len()).sum::<usize>(),
    }
}

pub(super) fn encode(sm: &StateMachine) -> Bytes {
    let body_bytes: usize = sm
        .map
        .iter()
        .map(|(k, v)| 4 + k.len() + value_bytes(v))
        .sum();
    let mut out = BytesMut::with_capacity(HEADER_BYTES + body_bytes + CRC_BYTES);
    out.put_slice(SNAPSHOT_MAGIC);
    out.put_u8(SNAPSHOT_VERSION);
    out.put_u64(sm.applied.0);
    out.put_u64(sm.map.len() as u64);
    // Key order (and members in byte order), so that replicas with the same state write the
    // same bytes.
    let mut entries: Vec<(&Bytes, &Value)> = sm.map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, value) in entries {
        put_bytes(&mut out, key);
        match value {
            Value::Str(s) => {
                out.put_u8(TYPE_STRING);
                put_bytes(&mut out, s);
            }
            Value::Set(members) => {
                assert!(!members.is_empty(), "an empty set in the state machine");
                out.put_u8(TYPE_SET);
                out.put_u32(u32::try_from(members.len()).expect("under 2^32 members"));
                for member in members {
                    put_bytes(&mut out, member);
                }
            }
        }
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32(crc);
    out.freeze()
}

pub(super) fn decode(data: &[u8]) -> Result<StateMachine, DecodeError> {
    if data.len() < HEADER_BYTES + CRC_BYTES {
        return Err(DecodeError::Truncated {
            offset: data.len(),
            needed: HEADER_BYTES + CRC_BYTES - data.len(),
        });
    }
    if &data[..4] != SNAPSHOT_MAGIC {
        return Err(DecodeError::Magic);
    }
    let (body, crc_bytes) = data.split_at(data.len() - CRC_BYTES);
    let stored = u32::from_be_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let mut r = Reader::new(&body[4..]);
    let version = r.u8()?;
    let entry_bytes_min = match version {
        SNAPSHOT_VERSION_STRINGS_ONLY => ENTRY_BYTES_MIN_V1,
        SNAPSHOT_VERSION => ENTRY_BYTES_MIN_V2,
        other => return Err(DecodeError::Version(other)),
    };
    let applied = LogIndex(r.u64()?);
    let count = r.u64()?;
    if count.saturating_mul(entry_bytes_min) > r.remaining() as u64 {
        return Err(DecodeError::Invalid("entry count larger than the snapshot"));
    }
    let mut map = HashMap::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut last: Option<Bytes> = None;
    for _ in 0..count {
        let key = r.bytes()?;
        if last.as_ref().is_some_and(|prev| *prev >= key) {
            return Err(DecodeError::Invalid("snapshot keys not strictly ascending"));
        }
        let value = if version == SNAPSHOT_VERSION_STRINGS_ONLY {
            Value::Str(r.bytes()?)
        } else {
            decode_value(&mut r)?
        };
        last = Some(key.clone());
        map.insert(key, value);
    }
    r.finish()?;
    Ok(StateMachine { map, applied })
}

/// A version-2 value: its type byte, then a string or a set's members.
fn decode_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    match r.u8()? {
        TYPE_STRING => Ok(Value::Str(r.bytes()?)),
        TYPE_SET => {
            // Checked against the bytes left; the set itself allocates per member read.
            let count = r.count(4)?;
            if count == 0 {
                return Err(DecodeError::Invalid("an empty set in the snapshot"));
            }
            let mut members = BTreeSet::new();
            let mut last: Option<Bytes> = None;
            for _ in 0..count {
                let member = r.bytes()?;
                if last.as_ref().is_some_and(|prev| *prev >= member) {
                    return Err(DecodeError::Invalid("set members not strictly ascending"));
                }
                last = Some(member.clone());
                members.insert(member);
            }
            Ok(Value::Set(members))
        }
        tag => Err(DecodeError::Tag {
            what: "value type",
            tag,
        }),
    }
}
