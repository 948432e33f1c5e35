//! The per-shard state machine: a map of keys to values plus the index of the last
//! applied log entry. Writes arrive as committed [`Command`]s in log order; reads are served
//! directly once ReadIndex says the local state is current.
//!
//! Pure: no I/O, no clock. Applying is deterministic, so every replica that applies the same
//! log reaches the same map — which is what Raft's state machine safety relies on (Raft paper
//! §5.4.3).

mod command;
mod snapshot;
mod wire;

pub use command::{Command, SetCondition, COMMAND_VERSION};
pub use snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use wire::DecodeError;

use crate::raft::types::LogIndex;
use bytes::Bytes;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// The error text for INCR on a value that is not a decimal `i64` (Redis's).
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// The error text for INCR past `i64::MAX` (Redis's).
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// What a client is told about an applied command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (`+OK`).
    Ok,
    /// The `SET` condition did not hold; nothing changed (a null bulk string).
    Nil,
    /// An integer reply: DEL's count, INCR's new value.
    Integer(i64),
    /// The command failed without changing anything; the full error text (`ERR ...`).
    Error(String),
}

/// One shard's data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    /// The data. A hash map: a write or read of one of many keys costs one hash instead of a
    /// descent comparing keys (which showed as a tenth of a node's time under load); the
    /// snapshot writes the keys sorted.
    map: HashMap<Bytes, Bytes>,
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

    /// Applies the committed command at `index` and says what the client gets.
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
            } => {
                // One lookup per write (entry API), whatever the condition.
                match (condition, self.map.entry(key.clone())) {
                    (SetCondition::Always | SetCondition::Nx, Entry::Vacant(slot)) => {
                        slot.insert(value.clone());
                        Outcome::Ok
                    }
                    (SetCondition::Always | SetCondition::Xx, Entry::Occupied(mut slot)) => {
                        slot.insert(value.clone());
                        Outcome::Ok
                    }
                    (SetCondition::IfEq(old), Entry::Occupied(mut slot)) if slot.get() == old => {
                        slot.insert(value.clone());
                        Outcome::Ok
                    }
                    _ => Outcome::Nil,
                }
            }
            Command::Del { keys } => {
                let mut removed = 0;
                for key in keys {
                    if self.map.remove(key).is_some() {
                        removed += 1;
                    }
                }
                Outcome::Integer(removed)
            }
            Command::Incr { key } => {
                let slot = self.map.entry(key.clone());
                let current = match &slot {
                    Entry::Vacant(_) => 0,
                    Entry::Occupied(v) => match parse_redis_i64(v.get()) {
                        Some(n) => n,
                        None => return Outcome::Error(ERR_NOT_INTEGER.to_string()),
                    },
                };
                let Some(next) = current.checked_add(1) else {
                    return Outcome::Error(ERR_OVERFLOW.to_string());
                };
                *slot.or_default() = Bytes::from(next.to_string().into_bytes());
                Outcome::Integer(next)
            }
            Command::MSet { pairs } => {
                for (key, value) in pairs {
                    self.map.insert(key.clone(), value.clone());
                }
                Outcome::Ok
            }
        }
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
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn exists(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The whole state (map and applied index) as versioned bytes: `"KVSM"`, version 1, applied
    /// index, entry count, the entries in key order, then a CRC32C of all that.
    #[must_use]
    pub fn snapshot(&self) -> Bytes {
        snapshot::encode(self)
    }

    /// Rebuilds a state machine from [`StateMachine::snapshot`]'s bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the bytes are not an intact snapshot (wrong magic or version, checksum
    /// mismatch, truncation, trailing bytes, keys out of order).
    pub fn restore(data: &[u8]) -> Result<StateMachine, DecodeError> {
        snapshot::decode(data)
    }
}

/// Parses a value as Redis's `string2ll` does: optional `-`, no `+`, no spaces, no leading zeros
/// (but `0` itself), at most 20 characters, within `i64`.
fn parse_redis_i64(v: &[u8]) -> Option<i64> {
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
