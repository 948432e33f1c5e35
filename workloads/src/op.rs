//! The operations a workload's clients perform, independent of any store's protocol, and how
//! each is written in a history in the checker's format (see the `checker` crate's docs):
//!
//! | op | `f` | invoke `value` | ok `value` |
//! |---|---|---|---|
//! | [`Op::Read`] | `read` | null | the value read (string or null; array of elements; integer or null) |
//! | [`Op::Write`] | `write` | the value | the value |
//! | [`Op::Cas`] | `cas` | `[expected, new]` | `[expected, new]` (a failed comparison is a `fail`) |
//! | [`Op::Add`] | `add` | the element | the element |
//! | [`Op::Incr`] | `incr` | the delta | the counter's new value (ignored by the checker) |

use serde_json::Value;

/// What a read returns, which decides how the client asks for it and records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadShape {
    /// A register's value: a string, or null when absent.
    Value,
    /// A set's elements: an array of integers (empty when absent).
    Members,
    /// A counter: an integer, or null when absent (0).
    Integer,
}

/// One operation of a workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read a key.
    Read {
        /// The key.
        key: String,
        /// What the key holds.
        shape: ReadShape,
    },
    /// Overwrite a register with a value no other write on the key uses.
    Write {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Compare-and-set a register: set `new` if the value is `expected`.
    Cas {
        /// The key.
        key: String,
        /// The value compared with.
        expected: String,
        /// The value installed (unique on the key).
        new: String,
    },
    /// Add a unique element to a set.
    Add {
        /// The key.
        key: String,
        /// The element (unique over the run).
        element: u64,
    },
    /// Add a delta to a counter.
    Incr {
        /// The key.
        key: String,
        /// The delta (positive).
        delta: i64,
    },
}

impl Op {
    /// The history's `f` for this op.
    #[must_use]
    pub fn f(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Cas { .. } => "cas",
            Op::Add { .. } => "add",
            Op::Incr { .. } => "incr",
        }
    }

    /// The key the op touches.
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            Op::Read { key, .. }
            | Op::Write { key, .. }
            | Op::Cas { key, .. }
            | Op::Add { key, .. }
            | Op::Incr { key, .. } => key,
        }
    }

    /// Whether the op changes nothing (a read). A read that fails or times out is a `fail`,
    /// never an `info`: whatever happened, it had no effect.
    #[must_use]
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read { .. })
    }

    /// The invoke event's `value`.
    #[must_use]
    pub fn invoke_value(&self) -> Value {
        match self {
            Op::Read { .. } => Value::Null,
            Op::Write { value, .. } => Value::String(value.clone()),
            Op::Cas { expected, new, .. } => Value::Array(vec![
                Value::String(expected.clone()),
                Value::String(new.clone()),
            ]),
            Op::Add { element, .. } => Value::from(*element),
            Op::Incr { delta, .. } => Value::from(*delta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_values_follow_the_checker_conventions() {
        let cas = Op::Cas {
            key: "k".into(),
            expected: "1".into(),
            new: "2".into(),
        };
        assert_eq!(cas.f(), "cas");
        assert_eq!(cas.invoke_value(), serde_json::json!(["1", "2"]));
        let read = Op::Read {
            key: "k".into(),
            shape: ReadShape::Value,
        };
        assert!(read.is_read());
        assert_eq!(read.invoke_value(), Value::Null);
        let add = Op::Add {
            key: "s".into(),
            element: 7,
        };
        assert_eq!((add.f(), add.invoke_value()), ("add", serde_json::json!(7)));
        let incr = Op::Incr {
            key: "c".into(),
            delta: 3,
        };
        assert_eq!(
            (incr.f(), incr.key(), incr.invoke_value()),
            ("incr", "c", serde_json::json!(3))
        );
    }
}
