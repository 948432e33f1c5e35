//! The linearizability check of a whole history: split per key, search each key in parallel,
//! assemble the verdict.
//!
//! Workers are plain scoped threads (one per available core) pulling keys from a shared counter,
//! biggest keys first. Each key's search is pure; the only shared things are the read-only
//! operations, the budget and the work counter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::budget::Budget;
use crate::entry_list::OpTimes;
use crate::error::CheckError;
use crate::explain::{build_explanation, RenderedStep};
use crate::model::{Encoded, Model, ModelOp};
use crate::operation::{OpId, Operation};
use crate::partition::partition_by_key;
use crate::search::{search, PartialLinearization, SearchOutcome};
use crate::values::ValueTable;
use crate::verdict::{Anomaly, KeyOutcome, KeyReport, LinearizabilityReport, UnknownKey, Verdict};

/// Checks that `ops` is linearizable with respect to `model`, key by key, using every core.
///
/// # Errors
/// [`CheckError::Model`] if an operation does not fit the model (the first such by key order).
pub fn check_linearizability<M: Model>(
    model: &M,
    ops: &[Operation],
    budget: &Budget,
) -> Result<LinearizabilityReport, CheckError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    check_linearizability_with_workers(model, ops, budget, workers)
}

/// As [`check_linearizability`], with an explicit number of worker threads (at least one).
///
/// # Errors
/// [`CheckError::Model`] if an operation does not fit the model.
pub fn check_linearizability_with_workers<M: Model>(
    model: &M,
    ops: &[Operation],
    budget: &Budget,
    workers: usize,
) -> Result<LinearizabilityReport, CheckError> {
    let keys: Vec<(&str, Vec<OpId>)> = partition_by_key(ops).into_iter().collect();
    // Biggest keys first, so one long key does not start last.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(keys[i].1.len()));
    let results: Mutex<Vec<Option<KeyCheck>>> = Mutex::new(vec![None; keys.len()]);
    let errors: Mutex<Vec<(usize, CheckError)>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let workers = workers.clamp(1, keys.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = order.get(slot) else {
                    break;
                };
                let (key, key_ops) = &keys[index];
                match check_key(model, key, ops, key_ops, budget) {
                    Ok(check) => results.lock().expect("no worker panics")[index] = Some(check),
                    Err(e) => errors.lock().expect("no worker panics").push((index, e)),
                }
            });
        }
    });
    let mut errors = errors.into_inner().expect("no worker panics");
    if !errors.is_empty() {
        errors.sort_by_key(|(index, _)| *index);
        return Err(errors.swap_remove(0).1);
    }
    let mut reports = Vec::with_capacity(keys.len());
    let mut anomalies = Vec::new();
    let mut unknown = Vec::new();
    for check in results.into_inner().expect("no worker panics") {
        let check = check.expect("every key was checked");
        if let KeyOutcome::Unknown { reason } = &check.report.outcome {
            unknown.push(UnknownKey {
                key: check.report.key.clone(),
                reason: reason.clone(),
            });
        }
        anomalies.extend(check.anomaly);
        reports.push(check.report);
    }
    let verdict = if !anomalies.is_empty() {
        Verdict::Invalid { anomalies }
    } else if !unknown.is_empty() {
        Verdict::Unknown { keys: unknown }
    } else {
        Verdict::Valid
    };
    Ok(LinearizabilityReport {
        verdict,
        keys: reports,
    })
}

#[derive(Clone)]
struct KeyCheck {
    report: KeyReport,
    anomaly: Option<Anomaly>,
}

/// Encodes, prunes and searches one key.
fn check_key<M: Model>(
    model: &M,
    key: &str,
    ops: &[Operation],
    key_ops: &[OpId],
    budget: &Budget,
) -> Result<KeyCheck, CheckError> {
    let mut values = ValueTable::new();
    let mut ids: Vec<OpId> = Vec::with_capacity(key_ops.len());
    let mut model_ops: Vec<ModelOp<M::Input, M::Output>> = Vec::with_capacity(key_ops.len());
    for &id in key_ops {
        let op = &ops[id.0];
        let encoded = model
            .encode(op, &mut values)
            .map_err(|source| CheckError::Model {
                line: op.line,
                process: op.process,
                key: key.to_string(),
                source,
            })?;
        if let Encoded::Op { input, output } = encoded {
            ids.push(id);
            model_ops.push(ModelOp { input, output });
        }
    }
    let mut removable = vec![false; model_ops.len()];
    model.mark_removable(&model_ops, &mut removable);
    let mut kept_ids = Vec::with_capacity(ids.len());
    let mut kept_ops = Vec::with_capacity(ids.len());
    let mut times = Vec::with_capacity(ids.len());
    for ((id, op), removable) in ids.into_iter().zip(model_ops).zip(removable) {
        if removable {
            continue;
        }
        let recorded = &ops[id.0];
        times.push(OpTimes {
            call_ns: recorded.invoke_ns,
            return_ns: recorded.return_ns(),
        });
        kept_ids.push(id);
        kept_ops.push(op);
    }
    let result = search(model, &kept_ops, &times, budget);
    let (outcome, anomaly) = match result.outcome {
        SearchOutcome::Linearizable => (KeyOutcome::Valid, None),
        SearchOutcome::Unknown(reason) => (KeyOutcome::Unknown { reason }, None),
        SearchOutcome::NotLinearizable(partials) => {
            let anomaly = describe_anomaly(
                model, key, ops, key_ops, &kept_ids, &kept_ops, &partials, &values,
            );
            (KeyOutcome::Invalid, Some(anomaly))
        }
    };
    Ok(KeyCheck {
        report: KeyReport {
            key: key.to_string(),
            op_count: key_ops.len(),
            searched_op_count: kept_ids.len(),
            states_explored: result.states_explored,
            outcome,
        },
        anomaly,
    })
}

/// Replays the longest partial linearization through the model to render states, and gathers the
/// explanation.
#[allow(clippy::too_many_arguments)]
fn describe_anomaly<M: Model>(
    model: &M,
    key: &str,
    ops: &[Operation],
    key_ops: &[OpId],
    kept_ids: &[OpId],
    kept_ops: &[ModelOp<M::Input, M::Output>],
    partials: &[PartialLinearization],
    values: &ValueTable,
) -> Anomaly {
    // The search always reports at least one dead end; should it not, blame the operation with the
    // earliest return, with an empty prefix, rather than panic.
    let fallback;
    let best = match partials.first() {
        Some(best) => best,
        None => {
            let earliest = kept_ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| ops[id.0].return_ns().map(|r| (r, i)))
                .min()
                .map_or(0, |(_, i)| i);
            fallback = PartialLinearization {
                steps: Vec::new(),
                failing_op: earliest,
            };
            &fallback
        }
    };
    let describe_kept =
        |i: usize| model.describe_op(&kept_ops[i].input, kept_ops[i].output.as_ref(), values);
    let mut state = model.init();
    let mut next = Vec::new();
    let mut steps: Vec<RenderedStep> = Vec::with_capacity(best.steps.len());
    for &(i, alt) in &best.steps {
        next.clear();
        model.step(
            &state,
            &kept_ops[i].input,
            kept_ops[i].output.as_ref(),
            &mut next,
        );
        state = next.swap_remove(alt);
        steps.push((
            kept_ids[i],
            describe_kept(i),
            model.describe_state(&state, values),
        ));
    }
    // Describe any operation of the key, including those the search left out.
    let kept_index: HashMap<OpId, usize> = kept_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let describe = |id: OpId| -> String {
        if let Some(&i) = kept_index.get(&id) {
            return describe_kept(i);
        }
        let op = &ops[id.0];
        let mut scratch = values.clone();
        match model.encode(op, &mut scratch) {
            Ok(Encoded::Op { input, output }) => {
                model.describe_op(&input, output.as_ref(), &scratch)
            }
            _ => format!("{} {}", op.f, op.value),
        }
    };
    let failing_op = kept_ids[best.failing_op];
    let explanation = build_explanation(
        key,
        ops,
        key_ops,
        &steps,
        model.describe_state(&model.init(), values),
        failing_op,
        &describe,
    );
    Anomaly {
        key: key.to_string(),
        failing_op,
        failing_op_description: describe_kept(best.failing_op),
        longest_prefixes: std::slice::from_ref(best)
            .iter()
            .chain(partials.iter().skip(1))
            .map(|p| p.steps.iter().map(|&(i, _)| kept_ids[i]).collect())
            .collect(),
        explanation,
    }
}
