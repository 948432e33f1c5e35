//! The set checker: every acknowledged add appears in the final read, and nothing appears that
//! was never added.
//!
//! History conventions (one set per key): `add` invokes with the element; `read` completes ok with a
//! JSON array of the elements. The final read of a key is its ok read with the latest invoke.
//! An acknowledged add that returned before the final read began must appear in it (else it is
//! *lost*); an add with an unknown outcome may or may not appear (if it does it is *recovered*).
//! An element in any read for which no add was invoked before that read returned is *unexpected*;
//! an element listed twice in one read is *duplicated*. A key with adds but no ok read is unknown.
//! Pure: operations in, report out.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::error::{CheckError, ModelError};
use crate::operation::{OpId, Operation};
use crate::partition::partition_by_key;
use crate::verdict::Judgement;

/// The set checker's result for one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetKeyReport {
    /// The key.
    pub key: String,
    /// The key's judgement.
    pub judgement: Judgement,
    /// The final read, if the key has an ok read.
    pub final_read: Option<OpId>,
    /// Distinct elements whose add was attempted (ok, info or pending).
    pub attempted_count: usize,
    /// Distinct elements whose add was acknowledged.
    pub acknowledged_count: usize,
    /// Acknowledged before the final read began, missing from it.
    pub lost: Vec<Value>,
    /// Present in some read although no add of it was invoked before that read returned.
    pub unexpected: Vec<Value>,
    /// Listed more than once in one read.
    pub duplicated: Vec<Value>,
    /// Adds with an unknown outcome that the final read shows took effect.
    pub recovered: Vec<Value>,
}

/// The set checker's result for a history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetReport {
    /// Invalid if any key is, else unknown if any key is, else valid.
    pub judgement: Judgement,
    /// One report per key, ordered by key.
    pub keys: Vec<SetKeyReport>,
}

/// Checks set histories (see the module docs for the conventions).
///
/// # Errors
/// [`CheckError::Model`] for a function other than add and read, or a read result that is not an
/// array.
pub fn check_set(ops: &[Operation]) -> Result<SetReport, CheckError> {
    let mut keys = Vec::new();
    for (key, ids) in partition_by_key(ops) {
        keys.push(check_set_key(key, ops, &ids)?);
    }
    Ok(SetReport {
        judgement: Judgement::combine(keys.iter().map(|k| k.judgement)),
        keys,
    })
}

fn model_error(op: &Operation, source: ModelError) -> CheckError {
    CheckError::Model {
        line: op.line,
        process: op.process,
        key: op.key.clone(),
        source,
    }
}

/// What is known about one element's adds.
struct AddInfo {
    value: Value,
    earliest_invoke_ns: u64,
    // Earliest ok return, if any add of it was acknowledged.
    earliest_ack_ns: Option<u64>,
    acknowledged: bool,
}

fn check_set_key(key: &str, ops: &[Operation], ids: &[OpId]) -> Result<SetKeyReport, CheckError> {
    let mut adds: HashMap<String, AddInfo> = HashMap::new();
    let mut reads: Vec<(OpId, u64, u64, &Vec<Value>)> = Vec::new();
    for &id in ids {
        let op = &ops[id.0];
        match op.f.as_str() {
            "add" => {
                let info = adds.entry(op.value.to_string()).or_insert(AddInfo {
                    value: op.value.clone(),
                    earliest_invoke_ns: op.invoke_ns,
                    earliest_ack_ns: None,
                    acknowledged: false,
                });
                info.earliest_invoke_ns = info.earliest_invoke_ns.min(op.invoke_ns);
                if let Some(ret) = op.return_ns() {
                    info.acknowledged = true;
                    info.earliest_ack_ns = Some(info.earliest_ack_ns.map_or(ret, |a| a.min(ret)));
                }
            }
            "read" => match (op.result(), op.return_ns()) {
                (Some(Value::Array(elements)), Some(ret)) => {
                    reads.push((id, op.invoke_ns, ret, elements));
                }
                (Some(other), _) => {
                    return Err(model_error(
                        op,
                        ModelError::BadValue {
                            f: op.f.clone(),
                            expected: "an array of elements",
                            found: other.to_string(),
                        },
                    ))
                }
                // A read with an unknown result tells nothing.
                (None, _) => {}
            },
            other => {
                return Err(model_error(
                    op,
                    ModelError::UnsupportedFunction {
                        model: "set",
                        f: other.to_string(),
                    },
                ))
            }
        }
    }
    let mut unexpected: BTreeMap<String, Value> = BTreeMap::new();
    let mut duplicated: BTreeMap<String, Value> = BTreeMap::new();
    for &(_, _, ret, elements) in &reads {
        let mut seen: HashSet<String> = HashSet::with_capacity(elements.len());
        for element in elements {
            let canonical = element.to_string();
            if !seen.insert(canonical.clone()) {
                duplicated.insert(canonical.clone(), element.clone());
            }
            let possible = adds
                .get(&canonical)
                .is_some_and(|a| a.earliest_invoke_ns <= ret);
            if !possible {
                unexpected.insert(canonical, element.clone());
            }
        }
    }
    // The final read: the latest invoke; among equal invokes, the later one in the history.
    let final_read = reads.iter().max_by_key(|&&(id, invoke, _, _)| (invoke, id));
    let mut lost: BTreeMap<String, Value> = BTreeMap::new();
    let mut recovered: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(&(_, invoke, _, elements)) = final_read {
        let present: HashSet<String> = elements.iter().map(|e| e.to_string()).collect();
        for (canonical, info) in &adds {
            let is_present = present.contains(canonical);
            match info.earliest_ack_ns {
                Some(ack) if ack <= invoke && !is_present => {
                    lost.insert(canonical.clone(), info.value.clone());
                }
                _ => {}
            }
            if !info.acknowledged && is_present {
                recovered.insert(canonical.clone(), info.value.clone());
            }
        }
    }
    let anomalous = !(lost.is_empty() && unexpected.is_empty() && duplicated.is_empty());
    let judgement = if anomalous {
        Judgement::Invalid
    } else if final_read.is_none() && !adds.is_empty() {
        Judgement::Unknown
    } else {
        Judgement::Valid
    };
    Ok(SetKeyReport {
        key: key.to_string(),
        judgement,
        final_read: final_read.map(|r| r.0),
        attempted_count: adds.len(),
        acknowledged_count: adds.values().filter(|a| a.acknowledged).count(),
        lost: lost.into_values().collect(),
        unexpected: unexpected.into_values().collect(),
        duplicated: duplicated.into_values().collect(),
        recovered: recovered.into_values().collect(),
    })
}
