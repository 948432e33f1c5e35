//! [`Value`]: what a key holds — a byte string or a set of byte-string members — as Redis types
//! them. A command that expects one type and finds the other answers `-WRONGTYPE` and changes
//! nothing (see [`super::ERR_WRONG_TYPE`]).

use bytes::Bytes;
use std::collections::BTreeSet;

/// The value stored under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A byte string (SET, INCR, ...).
    Str(Bytes),
    /// A set of members (SADD, SREM, ...), kept in byte order so that SMEMBERS and snapshots
    /// list them the same way on every replica.
    // Invariant: never empty. Redis removes a set whose last member is removed, and so does
    // the state machine; a snapshot holding an empty set is rejected.
    Set(BTreeSet<Bytes>),
}

impl Value {
    /// The string, or `None` when the value is a set.
    #[must_use]
    pub fn as_str(&self) -> Option<&Bytes> {
        match self {
            Value::Str(s) => Some(s),
            Value::Set(_) => None,
        }
    }

    /// The set, or `None` when the value is a string.
    #[must_use]
    pub fn as_set(&self) -> Option<&BTreeSet<Bytes>> {
        match self {
            Value::Set(s) => Some(s),
            Value::Str(_) => None,
        }
    }

    /// Redis's name of the value's type, as `TYPE` would answer (`string`, `set`).
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Set(_) => "set",
        }
    }
}

impl From<Bytes> for Value {
    fn from(s: Bytes) -> Value {
        Value::Str(s)
    }
}
