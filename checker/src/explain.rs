//! Explanation data for an invalid key: what a timeline drawing needs.
//!
//! For each process, the operations around the failure with start and end times; the tail of the
//! longest partial linearization with the model state after each step; and the operation that could
//! not be placed. Built from values only; drawing is the harness's business.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::operation::{Completion, OpId, Operation};

/// At most this many linearization steps (the last ones) are kept in an explanation.
pub const LINEARIZATION_TAIL_MAX: usize = 64;

/// How an operation on the timeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimelineOutcome {
    /// Completed and took effect.
    Ok,
    /// Outcome unknown (the client gave up).
    Info,
    /// Never completed before the history ended.
    Pending,
}

/// One operation drawn on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineOp {
    /// The operation's id.
    pub id: OpId,
    /// The process that issued it.
    pub process: u64,
    /// A human form ("write 3", "read -> 1").
    pub description: String,
    /// Invoke time in nanoseconds.
    pub start_ns: u64,
    /// Completion time (ok or info) in nanoseconds; `None` if it never completed.
    pub end_ns: Option<u64>,
    /// How it ended.
    pub outcome: TimelineOutcome,
    /// Its position in the partial linearization shown, if it is in it.
    pub linearized_at: Option<usize>,
    /// True for the operation that could not be placed.
    pub failing: bool,
    /// 1-based line of its invoke in the history file (0 if unknown).
    pub line: usize,
}

/// One process's lane on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessLane {
    /// The process id.
    pub process: u64,
    /// Its operations in the window, by start time.
    pub ops: Vec<TimelineOp>,
}

/// One step of the partial linearization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinearizedStep {
    /// The operation placed.
    pub op: OpId,
    /// A human form of it.
    pub description: String,
    /// The model state after it.
    pub state_after: String,
}

/// Everything needed to draw why a key is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The key.
    pub key: String,
    /// Operations per process that overlap the window `[window_start_ns, window_end_ns]`.
    pub processes: Vec<ProcessLane>,
    /// Start of the time window shown.
    pub window_start_ns: u64,
    /// End of the time window shown.
    pub window_end_ns: u64,
    /// How many earlier steps of the partial linearization are not listed in `linearization`.
    pub linearization_skipped: usize,
    /// The last steps of the longest partial linearization found.
    pub linearization: Vec<LinearizedStep>,
    /// The model state the failing operation could not be applied to (after the last step).
    pub state_before_failure: String,
    /// The operation that could not be placed.
    pub failing_op: OpId,
}

/// A step of a partial linearization before rendering: operation id, description, state after.
pub type RenderedStep = (OpId, String, String);

/// Builds the explanation from the key's operations and a rendered partial linearization.
/// `describe` gives the human form of any operation of the key.
pub fn build_explanation(
    key: &str,
    ops: &[Operation],
    key_ops: &[OpId],
    steps: &[RenderedStep],
    initial_state: String,
    failing_op: OpId,
    describe: &dyn Fn(OpId) -> String,
) -> Explanation {
    let skipped = steps.len().saturating_sub(LINEARIZATION_TAIL_MAX);
    let tail = &steps[skipped..];
    let failing = &ops[failing_op.0];
    let window_start_ns = tail
        .iter()
        .map(|(id, _, _)| ops[id.0].invoke_ns)
        .chain(std::iter::once(failing.invoke_ns))
        .min()
        .unwrap_or(failing.invoke_ns);
    let window_end_ns = failing.end_ns().unwrap_or(failing.invoke_ns);
    let position: BTreeMap<OpId, usize> = tail
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| (*id, skipped + i))
        .collect();
    let mut lanes: BTreeMap<u64, Vec<TimelineOp>> = BTreeMap::new();
    for &id in key_ops {
        let op = &ops[id.0];
        let ends_before = op.end_ns().is_some_and(|end| end < window_start_ns);
        if ends_before || op.invoke_ns > window_end_ns {
            continue;
        }
        let outcome = match op.completion {
            Completion::Ok { .. } => TimelineOutcome::Ok,
            Completion::Info { .. } => TimelineOutcome::Info,
            Completion::Pending => TimelineOutcome::Pending,
        };
        lanes.entry(op.process).or_default().push(TimelineOp {
            id,
            process: op.process,
            description: describe(id),
            start_ns: op.invoke_ns,
            end_ns: op.end_ns(),
            outcome,
            linearized_at: position.get(&id).copied(),
            failing: id == failing_op,
            line: op.line,
        });
    }
    let state_before_failure = steps
        .last()
        .map_or(initial_state, |(_, _, state)| state.clone());
    Explanation {
        key: key.to_string(),
        processes: lanes
            .into_iter()
            .map(|(process, ops)| ProcessLane { process, ops })
            .collect(),
        window_start_ns,
        window_end_ns,
        linearization_skipped: skipped,
        linearization: tail
            .iter()
            .map(|(op, description, state_after)| LinearizedStep {
                op: *op,
                description: description.clone(),
                state_after: state_after.clone(),
            })
            .collect(),
        state_before_failure,
        failing_op,
    }
}
