//! The counter checker: every read lies within what the increments around it allow.
//!
//! History conventions (one counter per key, starting at 0): `incr` invokes with an integer delta
//! (null means 1; its ok value is ignored); `read` completes ok with the integer read (null means 0).
//! For a read invoked at s and returning at e:
//! - lower bound: the acknowledged increments that returned by s (they certainly took effect before
//!   the read), plus the negative parts of every other increment invoked before e;
//! - upper bound: the same acknowledged increments, plus the positive parts of every other increment
//!   invoked before e (ok, info or pending: each may have taken effect before the read).
//!
//! With non-negative deltas this is [acknowledged completed before the read began, acknowledged plus
//! possibly applied invoked before the read ended]. Pure: operations in, report out.

use serde::Serialize;
use serde_json::Value;

use crate::error::{CheckError, ModelError};
use crate::operation::{OpId, Operation};
use crate::partition::partition_by_key;
use crate::verdict::Judgement;

/// A read outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterAnomaly {
    /// The read.
    pub op: OpId,
    /// Its process.
    pub process: u64,
    /// 1-based line of its invoke (0 if unknown).
    pub line: usize,
    /// The value it returned.
    pub value: i64,
    /// The smallest value it could have returned.
    pub lower: i64,
    /// The largest value it could have returned.
    pub upper: i64,
}

/// The counter checker's result for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterKeyReport {
    /// The key.
    pub key: String,
    /// The key's judgement.
    pub judgement: Judgement,
    /// Ok reads checked.
    pub reads_checked: usize,
    /// Increments recorded (ok, info or pending).
    pub increments: usize,
    /// Reads outside their bounds, in history order.
    pub anomalies: Vec<CounterAnomaly>,
}

/// The counter checker's result for a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterReport {
    /// Invalid if any key is, else valid.
    pub judgement: Judgement,
    /// One report per key, ordered by key.
    pub keys: Vec<CounterKeyReport>,
}

/// Checks counter histories (see the module docs for the conventions).
///
/// # Errors
/// [`CheckError::Model`] for a function other than incr and read, or a non-integer delta or read.
pub fn check_counter(ops: &[Operation]) -> Result<CounterReport, CheckError> {
    let mut keys = Vec::new();
    for (key, ids) in partition_by_key(ops) {
        keys.push(check_counter_key(key, ops, &ids)?);
    }
    Ok(CounterReport {
        judgement: Judgement::combine(keys.iter().map(|k| k.judgement)),
        keys,
    })
}

fn integer(op: &Operation, value: &Value, default: i64) -> Result<i64, CheckError> {
    match value {
        Value::Null => Ok(default),
        other => other.as_i64().ok_or_else(|| CheckError::Model {
            line: op.line,
            process: op.process,
            key: op.key.clone(),
            source: ModelError::BadValue {
                f: op.f.clone(),
                expected: "an integer",
                found: other.to_string(),
            },
        }),
    }
}

/// Sorted times with prefix sums of the positive and negative parts of the deltas.
struct PrefixSums {
    times: Vec<u64>,
    // positive[i], negative[i]: sums over the first i entries.
    positive: Vec<i64>,
    negative: Vec<i64>,
}

impl PrefixSums {
    fn new(mut entries: Vec<(u64, i64)>) -> Self {
        entries.sort_unstable();
        let mut sums = PrefixSums {
            times: Vec::with_capacity(entries.len()),
            positive: vec![0],
            negative: vec![0],
        };
        for (time, delta) in entries {
            sums.times.push(time);
            let p = *sums.positive.last().expect("starts with 0");
            let n = *sums.negative.last().expect("starts with 0");
            sums.positive.push(p.saturating_add(delta.max(0)));
            sums.negative.push(n.saturating_add(delta.min(0)));
        }
        sums
    }

    /// (positive, negative) sums over entries with time <= t.
    fn up_to(&self, t: u64) -> (i64, i64) {
        let i = self.times.partition_point(|&x| x <= t);
        (self.positive[i], self.negative[i])
    }

    /// (positive, negative) sums over entries with time < t.
    fn before(&self, t: u64) -> (i64, i64) {
        let i = self.times.partition_point(|&x| x < t);
        (self.positive[i], self.negative[i])
    }
}

fn check_counter_key(
    key: &str,
    ops: &[Operation],
    ids: &[OpId],
) -> Result<CounterKeyReport, CheckError> {
    // Acknowledged increments by return time; all increments by invoke time.
    let mut acknowledged: Vec<(u64, i64)> = Vec::new();
    let mut invoked: Vec<(u64, i64)> = Vec::new();
    let mut reads: Vec<(OpId, u64, u64, i64)> = Vec::new();
    for &id in ids {
        let op = &ops[id.0];
        match op.f.as_str() {
            "incr" => {
                let delta = integer(op, &op.value, 1)?;
                invoked.push((op.invoke_ns, delta));
                if let Some(ret) = op.return_ns() {
                    acknowledged.push((ret, delta));
                }
            }
            "read" => {
                if let (Some(value), Some(ret)) = (op.result(), op.return_ns()) {
                    reads.push((id, op.invoke_ns, ret, integer(op, value, 0)?));
                }
            }
            other => {
                return Err(CheckError::Model {
                    line: op.line,
                    process: op.process,
                    key: op.key.clone(),
                    source: ModelError::UnsupportedFunction {
                        model: "counter",
                        f: other.to_string(),
                    },
                })
            }
        }
    }
    let increments = invoked.len();
    let acknowledged = PrefixSums::new(acknowledged);
    let invoked = PrefixSums::new(invoked);
    let mut anomalies = Vec::new();
    for &(id, start, end, value) in &reads {
        // Certainly applied before the read: acknowledged by its start (ties: return first).
        let (ap, an) = acknowledged.up_to(start);
        // Possibly applied before the read: invoked before its end. Includes the above.
        let (bp, bn) = invoked.before(end);
        let lower = ap.saturating_add(bn);
        let upper = an.saturating_add(bp);
        if value < lower || value > upper {
            let op = &ops[id.0];
            anomalies.push(CounterAnomaly {
                op: id,
                process: op.process,
                line: op.line,
                value,
                lower,
                upper,
            });
        }
    }
    Ok(CounterKeyReport {
        key: key.to_string(),
        judgement: if anomalies.is_empty() {
            Judgement::Valid
        } else {
            Judgement::Invalid
        },
        reads_checked: reads.len(),
        increments,
        anomalies,
    })
}
