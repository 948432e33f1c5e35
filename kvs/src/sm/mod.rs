//! The per-shard state machine: a map of keys to typed values (a string or a set, see
//! [`Value`]) plus the index of the last applied log entry. Writes arrive as committed
//! [`Command`]s in log order (SET with NX/XX/IFEQ, DEL, INCR, INCRBY (also DECR and DECRBY),
//! MSET, SADD, SREM); reads ([`Query`]: GET, MGET, EXISTS, SMEMBERS, SISMEMBER, SCARD) are served
//! directly once ReadIndex says the local state is current. Replies and error texts are Redis's,
//! WRONGTYPE included.
//!
//! - `command.rs`: the writes and their log encoding; `query.rs`: the reads;
//! - `value.rs`: the value types; `snapshot.rs`: the snapshot encoding; `wire.rs`: the shared
//!   binary reader and writer.
//!
//! Pure: no I/O, no clock. Applying is deterministic, so every replica that applies the same
//! log reaches the same map — which is what Raft's state machine safety relies on (Raft paper
//! §5.4.3).

mod command;
mod query;
mod snapshot;
mod value;
mod wire;

pub use command::{Command, SetCondition, COMMAND_VERSION};
pub use query::Query;
pub use snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use value::Value;
pub use wire::DecodeError;

use crate::raft::types::LogIndex;
use bytes::Bytes;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

/// The error text for INCR/INCRBY/DECR/DECRBY on a value that is not a decimal `i64`, and for an
/// increment argument that is not one (Redis's).
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// The error text for an INCR/INCRBY/DECR/DECRBY result outside `i64` (Redis's).
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// The error text for a command on a key holding the other type (Redis's).
pub const ERR_WRONG_TYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// What a client is told about an applied command or a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (`+OK`).
    Ok,
    /// The `SET` condition did not hold, or GET found no key (a null bulk string).
    Nil,
    /// An integer reply: DEL's count, INCR's new value, SADD's added members, SCARD, ...
    Integer(i64),
    /// A bulk string: GET's value.
    Bulk(Bytes),
    /// An array of bulk strings or nils: MGET's values, SMEMBERS's members.
    Array(Vec<Option<Bytes>>),
    /// The command failed without changing anything; the full error text (`ERR ...`,
    /// `WRONGTYPE ...`).
    Error(String),
}

fn wrong_type() -> Outcome {
    Outcome::Error(ERR_WRONG_TYPE.to_string())
}

/// One shard's data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    /// The data. A hash map: a write or read of one of many keys costs one hash instead of a
    /// descent comparing keys (which showed as a tenth of a node's time under load); the
    /// snapshot writes the keys sorted.
    // Invariant: no value is an empty set.
    map: HashMap<Bytes, Value>,
    /// The last log index applied (0 = nothing yet).
    // Invariant: only grows; every entry up to it has been applied exactly once.
    applied: LogIndex,
}

impl StateMachine {
    /// An empty state machine at index 0.
    #[must_use]
    pub fn new() -> StateMachine {
        StateMachine::default()
    }

    /// The index of the last entry applied.
    #[must_use]
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Applies the committed command at `index` and says what the client gets. A command that
    /// answers an error (WRONGTYPE, not an integer, overflow) changes nothing.
    ///
    /// # Panics
    ///
    /// If `index` is not greater than [`StateMachine::applied`]: applying out of order or twice
    /// would break replica agreement, so it is a bug.
    pub fn apply(&mut self, index: LogIndex, cmd: &Command) -> Outcome {
        self.advance(index);
        match cmd {
            Command::Set {
                key,
                value,
                condition,
            } => self.set(key, value, condition),
            Command::Del { keys } => {
                let mut removed = 0;
                for key in keys {
                    if self.map.remove(key).is_some() {
                        removed += 1;
                    }
                }
                Outcome::Integer(removed)
            }
            Command::Incr { key } => self.incr_by(key, 1),
            Command::IncrBy { key, delta } => self.incr_by(key, *delta),
            Command::MSet { pairs } => {
                for (key, value) in pairs {
                    self.map.insert(key.clone(), Value::Str(value.clone()));
                }
                Outcome::Ok
            }
            Command::SAdd { key, members } => self.sadd(key, members),
            Command::SRem { key, members } => self.srem(key, members),
        }
    }

    /// SET: plain, NX and XX replace a value of any type (as Redis does); IFEQ compares with a
    /// string and answers WRONGTYPE for a set.
    fn set(&mut self, key: &Bytes, value: &Bytes, condition: &SetCondition) -> Outcome {
        // One lookup per write (entry API), whatever the condition.
        match (condition, self.map.entry(key.clone())) {
            (SetCondition::Always | SetCondition::Nx, Entry::Vacant(slot)) => {
                slot.insert(Value::Str(value.clone()));
                Outcome::Ok
            }
            (SetCondition::Always | SetCondition::Xx, Entry::Occupied(mut slot)) => {
                slot.insert(Value::Str(value.clone()));
                Outcome::Ok
            }
            (SetCondition::IfEq(old), Entry::Occupied(mut slot)) => match slot.get() {
                Value::Str(current) if current == old => {
                    slot.insert(Value::Str(value.clone()));
                    Outcome::Ok
                }
                Value::Str(_) => Outcome::Nil,
                Value::Set(_) => wrong_type(),
            },
            _ => Outcome::Nil,
        }
    }

    /// INCR, INCRBY, DECR and DECRBY (the last two arrive with the delta negated): an absent
    /// key counts as 0.
    fn incr_by(&mut self, key: &Bytes, delta: i64) -> Outcome {
        let slot = self.map.entry(key.clone());
        let current = match &slot {
            Entry::Vacant(_) => 0,
            Entry::Occupied(v) => match v.get() {
                Value::Str(s) => match parse_integer(s) {
                    Some(n) => n,
                    None => return Outcome::Error(ERR_NOT_INTEGER.to_string()),
                },
                Value::Set(_) => return wrong_type(),
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return Outcome::Error(ERR_OVERFLOW.to_string());
        };
        let value = Value::Str(Bytes::from(next.to_string().into_bytes()));
        match slot {
            Entry::Vacant(v) => {
                v.insert(value);
            }
            Entry::Occupied(mut o) => {
                o.insert(value);
            }
        }
        Outcome::Integer(next)
    }

    /// SADD: creates the set when absent; answers how many members were not there before.
    fn sadd(&mut self, key: &Bytes, members: &[Bytes]) -> Outcome {
        debug_assert!(!members.is_empty(), "SADD without members");
        let set = match self.map.entry(key.clone()) {
            Entry::Vacant(v) => match v.insert(Value::Set(BTreeSet::new())) {
                Value::Set(set) => set,
                Value::Str(_) => unreachable!("a set was just inserted"),
            },
            Entry::Occupied(o) => match o.into_mut() {
                Value::Set(set) => set,
                Value::Str(_) => return wrong_type(),
            },
        };
        let added = members.iter().filter(|m| set.insert((*m).clone())).count();
        debug_assert!(!set.is_empty());
        Outcome::Integer(added as i64)
    }

    /// SREM: answers how many members were there; a set left empty is removed (as in Redis).
    fn srem(&mut self, key: &Bytes, members: &[Bytes]) -> Outcome {
        let Entry::Occupied(mut slot) = self.map.entry(key.clone()) else {
            return Outcome::Integer(0);
        };
        let Value::Set(set) = slot.get_mut() else {
            return wrong_type();
        };
        let removed = members.iter().filter(|m| set.remove(*m)).count();
        if set.is_empty() {
            slot.remove();
        }
        Outcome::Integer(removed as i64)
    }

    /// Records that the entry at `index` carried no command (a leader's no-op, or an entry the
    /// node skips), so that [`StateMachine::applied`] keeps pace with the log.
    ///
    /// # Panics
    ///
    /// If `index` is not greater than [`StateMachine::applied`].
    pub fn apply_noop(&mut self, index: LogIndex) {
        self.advance(index);
    }

    fn advance(&mut self, index: LogIndex) {
        assert!(
            index > self.applied,
            "apply out of order: index {index} after applied {}",
            self.applied
        );
        self.applied = index;
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn exists(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// The number of keys, of any type.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The whole state (map and applied index) as versioned bytes: `"KVSM"`, version 2, applied
    /// index, entry count, the typed entries in key order, then a CRC32C of all that (see
    /// `snapshot.rs` for the layout).
    #[must_use]
    pub fn snapshot(&self) -> Bytes {
        snapshot::encode(self)
    }

    /// Rebuilds a state machine from [`StateMachine::snapshot`]'s bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the bytes are not an intact snapshot of version 1 (strings only) or 2
    /// (wrong magic or version, checksum mismatch, truncation, trailing bytes, keys or members
    /// out of order, an empty set, an unknown type tag).
    pub fn restore(data: &[u8]) -> Result<StateMachine, DecodeError> {
        snapshot::decode(data)
    }
}

/// Parses bytes as a signed 64-bit decimal the way Redis's `string2ll` does: optional `-`, no
/// `+`, no spaces, no leading zeros (but `0` itself), at most 20 characters, within `i64`. Used for
/// stored values (INCR) and for increment arguments (INCRBY) alike.
#[must_use]
pub fn parse_integer(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    if v == b"0" {
        return Some(0);
    }
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    // No leading zero (and no bare `-`): Redis rejects `01` and `-0`.
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    crate::api::frame::parse_i64(v)
}

#[cfg(test)]
mod tests;
