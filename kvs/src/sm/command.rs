//! [`Command`]: a write to a shard's state machine, the payload of a Raft log entry, and its
//! compact binary encoding.
//!
//! Encoding (version 1): `[version = 1][tag]` then per tag —
//! `1 SET: [cond][old?][key][value]` with cond 0 Always, 1 NX, 2 XX, 3 IFEQ (then `old`);
//! `2 DEL: [count u32][key]*`; `3 INCR: [key]`; `4 MSET: [count u32]([key][value])*`;
//! `5 SADD: [key][count u32][member]*`; `6 SREM: [key][count u32][member]*`;
//! `7 INCRBY: [key][delta i64]` (DECR and DECRBY are INCRBY with the delta negated).
//! Tags only ever get added: an old tag keeps its meaning, so every log written before stays
//! readable. Byte strings are `u32` big-endian length + bytes, integers big-endian. Decoding
//! rejects unknown versions and tags, truncation, trailing bytes and empty key or member lists,
//! and never panics.

use super::wire::{put_bytes, DecodeError, Reader};
use bytes::{BufMut, Bytes, BytesMut};

/// The encoding version written by [`Command::encode`].
pub const COMMAND_VERSION: u8 = 1;

const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_INCR: u8 = 3;
const TAG_MSET: u8 = 4;
const TAG_SADD: u8 = 5;
const TAG_SREM: u8 = 6;
const TAG_INCRBY: u8 = 7;

/// When a `SET` takes effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SetCondition {
    /// Always.
    #[default]
    Always,
    /// Only if the key is absent (`NX`).
    Nx,
    /// Only if the key is present (`XX`).
    Xx,
    /// Only if the key's current value equals this one (`IFEQ old`); an absent key equals none.
    IfEq(Bytes),
}

/// A write to one shard's state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to `value` if `condition` holds.
    Set {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// When to set it.
        condition: SetCondition,
    },
    /// Remove keys (at least one).
    Del {
        /// The keys, in request order, repeats allowed.
        keys: Vec<Bytes>,
    },
    /// Add one to an integer value (absent = 0).
    Incr {
        /// The key.
        key: Bytes,
    },
    /// Set every pair, in order (a later pair wins for a repeated key).
    MSet {
        /// The pairs (at least one).
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// Add `delta` to an integer value (absent = 0): INCRBY, and DECR/DECRBY negated.
    IncrBy {
        /// The key.
        key: Bytes,
        /// What to add (negative to subtract).
        delta: i64,
    },
    /// Add members to a set (created when absent).
    SAdd {
        /// The set's key.
        key: Bytes,
        /// The members (at least one), repeats allowed.
        members: Vec<Bytes>,
    },
    /// Remove members from a set (removed itself when left empty).
    SRem {
        /// The set's key.
        key: Bytes,
        /// The members (at least one), repeats allowed.
        members: Vec<Bytes>,
    },
}

impl Command {
    /// The command's bytes for a log entry.
    ///
    /// # Panics
    ///
    /// If a key or value is 4 GiB or longer, or a list has 2^32 items (limits make that a bug).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len_hint());
        out.put_u8(COMMAND_VERSION);
        match self {
            Command::Set {
                key,
                value,
                condition,
            } => {
                out.put_u8(TAG_SET);
                match condition {
                    SetCondition::Always => out.put_u8(0),
                    SetCondition::Nx => out.put_u8(1),
                    SetCondition::Xx => out.put_u8(2),
                    SetCondition::IfEq(old) => {
                        out.put_u8(3);
                        put_bytes(&mut out, old);
                    }
                }
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Command::Del { keys } => {
                out.put_u8(TAG_DEL);
                out.put_u32(u32::try_from(keys.len()).expect("under 2^32 keys"));
                for key in keys {
                    put_bytes(&mut out, key);
                }
            }
            Command::Incr { key } => {
                out.put_u8(TAG_INCR);
                put_bytes(&mut out, key);
            }
            Command::MSet { pairs } => {
                out.put_u8(TAG_MSET);
                out.put_u32(u32::try_from(pairs.len()).expect("under 2^32 pairs"));
                for (key, value) in pairs {
                    put_bytes(&mut out, key);
                    put_bytes(&mut out, value);
                }
            }
            Command::IncrBy { key, delta } => {
                out.put_u8(TAG_INCRBY);
                put_bytes(&mut out, key);
                out.put_i64(*delta);
            }
            Command::SAdd { key, members } | Command::SRem { key, members } => {
                out.put_u8(if matches!(self, Command::SAdd { .. }) {
                    TAG_SADD
                } else {
                    TAG_SREM
                });
                put_bytes(&mut out, key);
                out.put_u32(u32::try_from(members.len()).expect("under 2^32 members"));
                for member in members {
                    put_bytes(&mut out, member);
                }
            }
        }
        out.freeze()
    }

    fn encoded_len_hint(&self) -> usize {
        6 + match self {
            Command::Set {
                key,
                value,
                condition,
            } => {
                let old = match condition {
                    SetCondition::IfEq(old) => old.len() + 4,
                    _ => 0,
                };
                key.len() + value.len() + 8 + old
            }
            Command::Del { keys } => keys.iter().map(|k| k.len() + 4).sum(),
            Command::Incr { key } => key.len() + 4,
            Command::MSet { pairs } => pairs.iter().map(|(k, v)| k.len() + v.len() + 8).sum(),
            Command::IncrBy { key, .. } => key.len() + 12,
            Command::SAdd { key, members } | Command::SRem { key, members } => {
                key.len() + 8 + members.iter().map(|m| m.len() + 4).sum::<usize>()
            }
        }
    }

    /// Decodes a command written by [`Command::encode`].
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for anything that is not exactly one valid encoded command.
    pub fn decode(data: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader::new(data);
        let version = r.u8()?;
        if version != COMMAND_VERSION {
            return Err(DecodeError::Version(version));
        }
        let command = match r.u8()? {
            TAG_SET => {
                let condition = match r.u8()? {
                    0 => SetCondition::Always,
                    1 => SetCondition::Nx,
                    2 => SetCondition::Xx,
                    3 => SetCondition::IfEq(r.bytes()?),
                    tag => {
                        return Err(DecodeError::Tag {
                            what: "set condition",
                            tag,
                        })
                    }
                };
                let key = r.bytes()?;
                let value = r.bytes()?;
                Command::Set {
                    key,
                    value,
                    condition,
                }
            }
            TAG_DEL => {
                let count = r.count(4)?;
                if count == 0 {
                    return Err(DecodeError::Invalid("DEL without keys"));
                }
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(r.bytes()?);
                }
                Command::Del { keys }
            }
            TAG_INCR => Command::Incr { key: r.bytes()? },
            TAG_MSET => {
                let count = r.count(8)?;
                if count == 0 {
                    return Err(DecodeError::Invalid("MSET without pairs"));
                }
                let mut pairs = Vec::with_capacity(count);
                for _ in 0..count {
                    let key = r.bytes()?;
                    let value = r.bytes()?;
                    pairs.push((key, value));
                }
                Command::MSet { pairs }
            }
            TAG_INCRBY => {
                let key = r.bytes()?;
                let delta = r.i64()?;
                Command::IncrBy { key, delta }
            }
            tag @ (TAG_SADD | TAG_SREM) => {
                let key = r.bytes()?;
                let count = r.count(4)?;
                if count == 0 {
                    return Err(DecodeError::Invalid("SADD or SREM without members"));
                }
                let mut members = Vec::with_capacity(count);
                for _ in 0..count {
                    members.push(r.bytes()?);
                }
                if tag == TAG_SADD {
                    Command::SAdd { key, members }
                } else {
                    Command::SRem { key, members }
                }
            }
            tag => {
                return Err(DecodeError::Tag {
                    what: "command",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(command)
    }
}
