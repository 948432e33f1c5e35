//! History events and their JSON-lines encoding (reading and writing).
//!
//! This module only converts between text and [`Event`] values; pairing invokes with their
//! completions lives in [`crate::operation`]. Reading works on any [`std::io::BufRead`]; the module
//! opens no files itself.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HistoryError;

/// The kind of a history event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A client started an operation.
    Invoke,
    /// The operation completed and took effect; the value is its result.
    Ok,
    /// The operation is known not to have taken effect.
    Fail,
    /// The outcome is unknown: it may have taken effect at any time after its invoke, or never.
    Info,
}

impl EventType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "invoke" => Some(EventType::Invoke),
            "ok" => Some(EventType::Ok),
            "fail" => Some(EventType::Fail),
            "info" => Some(EventType::Info),
            _ => None,
        }
    }
}

/// One line of a history: an invoke or a completion of one client operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The logical client process; one process has at most one operation open at a time.
    pub process: u64,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The function: read, write, cas, add, incr, ...
    pub f: String,
    /// The key the operation touches.
    pub key: String,
    /// Arguments on an invoke, the result on an ok (see the crate docs for each function).
    pub value: Value,
    /// Monotonic time of the event in nanoseconds.
    pub time_ns: u64,
}

/// The shape of a line before its `type` is validated; extra fields are ignored.
#[derive(Deserialize)]
struct RawEvent {
    process: u64,
    #[serde(rename = "type")]
    kind: String,
    f: String,
    key: String,
    #[serde(default)]
    value: Value,
    time_ns: u64,
}

impl Event {
    /// Builds an event.
    pub fn new(
        process: u64,
        kind: EventType,
        f: impl Into<String>,
        key: impl Into<String>,
        value: Value,
        time_ns: u64,
    ) -> Self {
        Event {
            process,
            kind,
            f: f.into(),
            key: key.into(),
            value,
            time_ns,
        }
    }

    /// Parses one line of a history; `line` (1-based) is only used in errors.
    ///
    /// # Errors
    /// [`HistoryError::Malformed`] if the line is not a JSON object with the required fields,
    /// [`HistoryError::UnknownType`] if `type` is not invoke, ok, fail or info.
    pub fn parse_line(text: &str, line: usize) -> Result<Event, HistoryError> {
        let raw: RawEvent = serde_json::from_str(text).map_err(|e| HistoryError::Malformed {
            line,
            message: e.to_string(),
        })?;
        let kind = EventType::parse(&raw.kind).ok_or(HistoryError::UnknownType {
            line,
            found: raw.kind.clone(),
        })?;
        Ok(Event {
            process: raw.process,
            kind,
            f: raw.f,
            key: raw.key,
            value: raw.value,
            time_ns: raw.time_ns,
        })
    }

    /// Encodes the event as one JSON line (without the trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }
}

/// A history as read from a file: events in file order with the line each came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The events, in the order of the file.
    pub events: Vec<Event>,
    /// `lines[i]` is the 1-based line number of `events[i]`.
    pub lines: Vec<usize>,
}

impl History {
    /// Wraps events built in code; their line numbers are their 1-based positions.
    pub fn from_events(events: Vec<Event>) -> Self {
        let lines = (1..=events.len()).collect();
        History { events, lines }
    }
}

/// Reads a JSON-lines history. Blank lines are skipped (but still counted for line numbers).
///
/// # Errors
/// [`HistoryError::Io`] if reading fails, or the first line that does not parse (see
/// [`Event::parse_line`]).
pub fn read_history(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut history = History::default();
    for (index, text) in reader.lines().enumerate() {
        let text = text?;
        let line = index + 1;
        if text.trim().is_empty() {
            continue;
        }
        history.events.push(Event::parse_line(&text, line)?);
        history.lines.push(line);
    }
    Ok(history)
}

/// Writes events as JSON lines, one per event.
///
/// # Errors
/// Whatever the writer returns.
pub fn write_history<'a>(
    mut writer: impl Write,
    events: impl IntoIterator<Item = &'a Event>,
) -> std::io::Result<()> {
    for event in events {
        writeln!(writer, "{}", event.to_json_line())?;
    }
    Ok(())
}
