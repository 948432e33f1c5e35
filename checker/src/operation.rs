//! Operations: an invoke paired with its completion, and the pairing rules.
//!
//! A fail is known not to have happened and its operation is dropped. An info, or an invoke that
//! never completes before the history ends, leaves the operation's outcome unknown: it may have
//! taken effect at any time after its invoke, or never. Pairing is pure: it takes events and returns
//! operations or a line-numbered error.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::HistoryError;
use crate::event::{EventType, History};

/// Index of an operation in the vector returned by [`pair_history`]; stable across a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OpId(pub usize);

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Completion {
    /// It took effect; `value` is its result.
    Ok {
        /// Completion time in nanoseconds.
        time_ns: u64,
        /// The result recorded on the ok event.
        value: Value,
    },
    /// The client gave up without knowing the outcome.
    Info {
        /// Time of the info event in nanoseconds.
        time_ns: u64,
    },
    /// The history ended before the operation completed; treated exactly as info.
    Pending,
}

/// One client operation: invoke plus completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// The process that issued it.
    pub process: u64,
    /// The function (read, write, cas, add, incr, ...).
    pub f: String,
    /// The key.
    pub key: String,
    /// The invoke's value: the arguments.
    pub value: Value,
    /// Invoke time in nanoseconds.
    pub invoke_ns: u64,
    /// How it ended.
    pub completion: Completion,
    /// 1-based line of the invoke in the history file, 0 if unknown.
    pub line: usize,
}

impl Operation {
    /// The time by which the operation had certainly taken effect, or `None` (infinity) when its
    /// outcome is unknown.
    pub fn return_ns(&self) -> Option<u64> {
        match self.completion {
            Completion::Ok { time_ns, .. } => Some(time_ns),
            Completion::Info { .. } | Completion::Pending => None,
        }
    }

    /// The result value if the operation completed ok.
    pub fn result(&self) -> Option<&Value> {
        match &self.completion {
            Completion::Ok { value, .. } => Some(value),
            Completion::Info { .. } | Completion::Pending => None,
        }
    }

    /// True when the outcome is unknown (info or pending).
    pub fn is_indeterminate(&self) -> bool {
        self.return_ns().is_none()
    }

    /// Where the operation ends on a timeline: the ok or info time, `None` if still pending.
    pub fn end_ns(&self) -> Option<u64> {
        match self.completion {
            Completion::Ok { time_ns, .. } | Completion::Info { time_ns } => Some(time_ns),
            Completion::Pending => None,
        }
    }
}

/// Pairs every invoke with its completion, in invoke order.
///
/// # Errors
/// A completion without an open invoke, a second invoke while one is open, reuse of a process after
/// info, a completion naming another function or key, or a completion timed before its invoke.
pub fn pair_history(history: &History) -> Result<Vec<Operation>, HistoryError> {
    // Which operation each process has open, and which processes ended in info (and where).
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut retired: HashMap<u64, usize> = HashMap::new();
    // Slots in invoke order; `None` marks an operation that failed and is dropped.
    let mut slots: Vec<Option<Operation>> = Vec::with_capacity(history.events.len() / 2 + 1);
    for (event, &line) in history.events.iter().zip(&history.lines) {
        if let Some(&info_line) = retired.get(&event.process) {
            return Err(HistoryError::ProcessReusedAfterInfo {
                line,
                process: event.process,
                info_line,
            });
        }
        if event.kind == EventType::Invoke {
            if let Some(&slot) = open.get(&event.process) {
                let open_line = slots[slot].as_ref().map_or(0, |op| op.line);
                return Err(HistoryError::TwoOpenOps {
                    line,
                    process: event.process,
                    open_line,
                });
            }
            open.insert(event.process, slots.len());
            slots.push(Some(Operation {
                process: event.process,
                f: event.f.clone(),
                key: event.key.clone(),
                value: event.value.clone(),
                invoke_ns: event.time_ns,
                completion: Completion::Pending,
                line,
            }));
            continue;
        }
        let Some(slot) = open.remove(&event.process) else {
            return Err(HistoryError::CompletionWithoutInvoke {
                line,
                process: event.process,
            });
        };
        let op = slots[slot].as_mut().expect("open slots hold an operation");
        if op.f != event.f || op.key != event.key {
            return Err(HistoryError::MismatchedCompletion {
                line,
                process: event.process,
                invoked_f: op.f.clone(),
                invoked_key: op.key.clone(),
                completed_f: event.f.clone(),
                completed_key: event.key.clone(),
            });
        }
        if event.time_ns < op.invoke_ns {
            return Err(HistoryError::CompletionBeforeInvoke {
                line,
                process: event.process,
                invoked_ns: op.invoke_ns,
                completed_ns: event.time_ns,
            });
        }
        match event.kind {
            EventType::Ok => {
                op.completion = Completion::Ok {
                    time_ns: event.time_ns,
                    value: event.value.clone(),
                };
            }
            EventType::Info => {
                op.completion = Completion::Info {
                    time_ns: event.time_ns,
                };
                retired.insert(event.process, line);
            }
            EventType::Fail => slots[slot] = None,
            EventType::Invoke => unreachable!("invokes are handled above"),
        }
    }
    Ok(slots.into_iter().flatten().collect())
}
