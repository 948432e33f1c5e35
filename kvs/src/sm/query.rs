//! [`Query`]: a read of one shard's state machine, and the rules that answer it. Reads change
//! nothing and are not logged; the node serves one once ReadIndex says the local state is
//! current (Raft thesis §6.4), so they need no encoding.
//!
//! Types as in Redis: GET and the set reads answer `-WRONGTYPE` for a key of the other type,
//! MGET answers nil for a key that holds a set, EXISTS counts keys of any type.

use super::{wrong_type, Outcome, StateMachine, Value};
use bytes::Bytes;

/// A read of one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `GET key`: the string, nil when absent.
    Get(Bytes),
    /// `MGET key [key ...]`: each key's string, nil when absent or not a string.
    MGet(Vec<Bytes>),
    /// `EXISTS key [key ...]`: how many of the keys exist (repeats counted).
    Exists(Vec<Bytes>),
    /// `SMEMBERS key`: the members in byte order; an empty array when absent.
    SMembers(Bytes),
    /// `SISMEMBER key member`: 1 when `member` is in the set, else 0.
    SIsMember {
        /// The set's key.
        key: Bytes,
        /// The member looked for.
        member: Bytes,
    },
    /// `SCARD key`: the number of members; 0 when absent.
    SCard(Bytes),
}

impl StateMachine {
    /// Answers a read from the current state.
    #[must_use]
    pub fn read(&self, query: &Query) -> Outcome {
        match query {
            Query::Get(key) => match self.map.get(key) {
                None => Outcome::Nil,
                Some(Value::Str(s)) => Outcome::Bulk(s.clone()),
                Some(Value::Set(_)) => wrong_type(),
            },
            Query::MGet(keys) => Outcome::Array(
                keys.iter()
                    .map(|k| self.map.get(k).and_then(Value::as_str).cloned())
                    .collect(),
            ),
            Query::Exists(keys) => {
                Outcome::Integer(keys.iter().filter(|k| self.map.contains_key(*k)).count() as i64)
            }
            Query::SMembers(key) => match self.map.get(key) {
                None => Outcome::Array(Vec::new()),
                Some(Value::Set(members)) => {
                    Outcome::Array(members.iter().cloned().map(Some).collect())
                }
                Some(Value::Str(_)) => wrong_type(),
            },
            Query::SIsMember { key, member } => match self.map.get(key) {
                None => Outcome::Integer(0),
                Some(Value::Set(members)) => Outcome::Integer(i64::from(members.contains(member))),
                Some(Value::Str(_)) => wrong_type(),
            },
            Query::SCard(key) => match self.map.get(key) {
                None => Outcome::Integer(0),
                Some(Value::Set(members)) => {
                    Outcome::Integer(i64::try_from(members.len()).unwrap_or(i64::MAX))
                }
                Some(Value::Str(_)) => wrong_type(),
            },
        }
    }
}
