//! Typed errors of the checker library: bad history input and operations a model cannot read.
//!
//! Every history error carries the 1-based line number of the offending line so a person can find
//! it; none of these conditions panics.

use thiserror::Error;

/// Why a history could not be read or paired into operations.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// Reading the underlying file or stream failed.
    #[error("reading the history failed: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a JSON object with the required fields of the right types.
    #[error("line {line}: malformed event: {message}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// The `type` field is not one of invoke, ok, fail, info.
    #[error("line {line}: unknown event type {found:?} (expected invoke, ok, fail or info)")]
    UnknownType {
        /// 1-based line number.
        line: usize,
        /// The type found on the line.
        found: String,
    },
    /// An ok, fail or info event arrived for a process with no open invocation.
    #[error("line {line}: process {process} completes an operation it never invoked")]
    CompletionWithoutInvoke {
        /// 1-based line number.
        line: usize,
        /// The process id.
        process: u64,
    },
    /// A process invoked a second operation while its first was still open.
    #[error("line {line}: process {process} invokes an operation while its operation from line {open_line} is still open")]
    TwoOpenOps {
        /// 1-based line number of the second invoke.
        line: usize,
        /// The process id.
        process: u64,
        /// 1-based line number of the invoke still open.
        open_line: usize,
    },
    /// A process whose operation ended in info issued another event; it must take a fresh id.
    #[error("line {line}: process {process} is used again after its operation ended in info on line {info_line}")]
    ProcessReusedAfterInfo {
        /// 1-based line number.
        line: usize,
        /// The process id.
        process: u64,
        /// 1-based line number of the info event.
        info_line: usize,
    },
    /// A completion names a different function or key than its invoke.
    #[error("line {line}: process {process} completes {completed_f:?} on key {completed_key:?} but invoked {invoked_f:?} on key {invoked_key:?}")]
    MismatchedCompletion {
        /// 1-based line number of the completion.
        line: usize,
        /// The process id.
        process: u64,
        /// The invoked function.
        invoked_f: String,
        /// The invoked key.
        invoked_key: String,
        /// The completed function.
        completed_f: String,
        /// The completed key.
        completed_key: String,
    },
    /// A completion is timed before its own invoke.
    #[error("line {line}: process {process} completes at {completed_ns} ns, before its invoke at {invoked_ns} ns")]
    CompletionBeforeInvoke {
        /// 1-based line number of the completion.
        line: usize,
        /// The process id.
        process: u64,
        /// Invoke time.
        invoked_ns: u64,
        /// Completion time.
        completed_ns: u64,
    },
}

impl HistoryError {
    /// The 1-based line number the error points at, if it is about a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            HistoryError::Io(_) => None,
            HistoryError::Malformed { line, .. }
            | HistoryError::UnknownType { line, .. }
            | HistoryError::CompletionWithoutInvoke { line, .. }
            | HistoryError::TwoOpenOps { line, .. }
            | HistoryError::ProcessReusedAfterInfo { line, .. }
            | HistoryError::MismatchedCompletion { line, .. }
            | HistoryError::CompletionBeforeInvoke { line, .. } => Some(*line),
        }
    }
}

/// Why a model could not interpret one operation.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    /// The model has no such function.
    #[error("the {model} model does not support f = {f:?}")]
    UnsupportedFunction {
        /// The model's name.
        model: &'static str,
        /// The function found.
        f: String,
    },
    /// The arguments or the result do not have the shape the function needs.
    #[error("f = {f:?} expects {expected}, found {found}")]
    BadValue {
        /// The function.
        f: String,
        /// What shape was expected.
        expected: &'static str,
        /// The JSON found.
        found: String,
    },
}

/// Why a check could not be carried out (as opposed to a verdict).
#[derive(Debug, Error)]
pub enum CheckError {
    /// An operation does not fit the model; `line` is its invoke line (0 if unknown).
    #[error("line {line}: operation by process {process} on key {key:?}: {source}")]
    Model {
        /// 1-based line of the operation's invoke, 0 when it was not read from a file.
        line: usize,
        /// The process id.
        process: u64,
        /// The key.
        key: String,
        /// What the model said.
        #[source]
        source: ModelError,
    },
}
