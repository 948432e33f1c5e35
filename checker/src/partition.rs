//! Splitting a multi-key history into per-key sub-histories.
//!
//! Linearizability is local (Herlihy & Wing): a history of independent objects is linearizable iff
//! each object's sub-history is. So a map of keys is checked as one register per key.

use std::collections::BTreeMap;

use crate::operation::{OpId, Operation};

/// The operations of each key, in history order, keys ordered.
pub fn partition_by_key(ops: &[Operation]) -> BTreeMap<&str, Vec<OpId>> {
    let mut keys: BTreeMap<&str, Vec<OpId>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        keys.entry(op.key.as_str()).or_default().push(OpId(i));
    }
    keys
}
