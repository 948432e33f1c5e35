//! The state machine's snapshot encoding: what a Raft snapshot's data holds for one shard.
//!
//! Layout (version 1): `"KVSM"`, `[version u8 = 1]`, `[applied u64]`, `[count u64]`, then
//! `count` × (`[key]` `[value]`, each `u32` length + bytes) in strictly ascending key order, then
//! `[crc u32]`: the CRC32C of every byte before it (magic, version, applied index and entries).
//! All integers big-endian. Restore checks magic, version and checksum before trusting anything,
//! then rejects truncation, trailing bytes and keys out of order.

use super::wire::{put_bytes, DecodeError, Reader};
use super::StateMachine;
use crate::raft::types::LogIndex;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;

/// The first bytes of every snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 4] = b"KVSM";

/// The snapshot encoding version written by [`StateMachine::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 1;

/// Bytes of the header: magic, version, applied index, entry count.
const HEADER_BYTES: usize = 4 + 1 + 8 + 8;

/// Bytes of the trailing checksum.
const CRC_BYTES: usize = 4;

pub(super) fn encode(sm: &StateMachine) -> Bytes {
    let body_bytes: usize = sm.map.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut out = BytesMut::with_capacity(HEADER_BYTES + body_bytes + CRC_BYTES);
    out.put_slice(SNAPSHOT_MAGIC);
    out.put_u8(SNAPSHOT_VERSION);
    out.put_u64(sm.applied.0);
    out.put_u64(sm.map.len() as u64);
    // Key order, so that replicas with the same state write the same bytes.
    let mut pairs: Vec<(&Bytes, &Bytes)> = sm.map.iter().collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, value) in pairs {
        put_bytes(&mut out, key);
        put_bytes(&mut out, value);
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
    if version != SNAPSHOT_VERSION {
        return Err(DecodeError::Version(version));
    }
    let applied = LogIndex(r.u64()?);
    let count = r.u64()?;
    if count.saturating_mul(8) > r.remaining() as u64 {
        return Err(DecodeError::Invalid("entry count larger than the snapshot"));
    }
    let mut map = HashMap::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut last: Option<Bytes> = None;
    for _ in 0..count {
        let key = r.bytes()?;
        let value = r.bytes()?;
        if last.as_ref().is_some_and(|prev| *prev >= key) {
            return Err(DecodeError::Invalid("snapshot keys not strictly ascending"));
        }
        last = Some(key.clone());
        map.insert(key, value);
    }
    r.finish()?;
    Ok(StateMachine { map, applied })
}
