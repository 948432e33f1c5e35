//! The history as it happens: every operation's invoke and completion, and every nemesis event,
//! stamped on one monotonic clock and streamed to disk in JSON lines, so a crashed harness leaves
//! what it saw.
//!
//! `history.jsonl` is in the checker's format (see the `checker` crate), with two extra fields
//! the checker ignores: `node`, the id of the node that answered (or that the request was lost
//! at), and `error`, the reason of a `fail` or an `info`. Lines are written in the order their
//! times were taken (the clock is read under the writer's lock), which is the order the checker
//! expects.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::Op;

/// Bytes a history writer buffers before it writes to the file (it also flushes on
/// [`Recorder::flush`], which the run calls a few times a second).
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// The run's one clock: nanoseconds since the run began.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock that reads 0 now.
    #[must_use]
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the start.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Time since the start.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The instant `offset` after the start.
    #[must_use]
    pub fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// It took effect; the value is its result in the checker's conventions.
    Ok(Value),
    /// It certainly did not take effect.
    Fail(String),
    /// Its outcome is unknown.
    Info(String),
}

impl Completion {
    fn kind(&self) -> &'static str {
        match self {
            Completion::Ok(_) => "ok",
            Completion::Fail(_) => "fail",
            Completion::Info(_) => "info",
        }
    }
}

/// One line of `history.jsonl`.
#[derive(Serialize)]
struct Line<'a> {
    process: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    f: &'a str,
    key: &'a str,
    value: &'a Value,
    time_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Completed operations counted by function and outcome, for the progress bar and the summary.
#[derive(Debug, Default)]
pub struct Counts {
    /// ok, fail, info.
    pub ok: AtomicU64,
    /// Certainly not applied.
    pub fail: AtomicU64,
    /// Outcome unknown.
    pub info: AtomicU64,
    by_f: Mutex<BTreeMap<String, [u64; 3]>>,
}

impl Counts {
    /// Operations completed so far.
    pub fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.fail.load(Ordering::Relaxed)
            + self.info.load(Ordering::Relaxed)
    }

    /// `f -> {ok, fail, info}`.
    ///
    /// # Panics
    /// If a thread panicked while counting.
    pub fn by_f(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        self.by_f
            .lock()
            .expect("counts lock")
            .iter()
            .map(|(f, c)| {
                (
                    f.clone(),
                    BTreeMap::from([("ok", c[0]), ("fail", c[1]), ("info", c[2])]),
                )
            })
            .collect()
    }

    fn add(&self, f: &str, c: &Completion) {
        let (counter, slot) = match c {
            Completion::Ok(_) => (&self.ok, 0),
            Completion::Fail(_) => (&self.fail, 1),
            Completion::Info(_) => (&self.info, 2),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut by_f = self.by_f.lock().expect("counts lock");
        // Every completion passes here: the function's name is allocated only the first time.
        match by_f.get_mut(f) {
            Some(c) => c[slot] += 1,
            None => by_f.entry(f.to_string()).or_default()[slot] += 1,
        }
    }
}

/// Writes `history.jsonl` as operations happen.
pub struct Recorder {
    clock: Clock,
    out: Mutex<BufWriter<File>>,
    /// Completions so far.
    pub counts: Counts,
}

impl Recorder {
    /// Creates (truncates) the history file at `path`.
    ///
    /// # Errors
    /// The file could not be created.
    pub fn create(path: &Path, clock: Clock) -> std::io::Result<Arc<Recorder>> {
        let file = File::create(path)?;
        Ok(Arc::new(Recorder {
            clock,
            out: Mutex::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
            counts: Counts::default(),
        }))
    }

    /// The run's clock.
    #[must_use]
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Records that `process` invokes `op`; returns the invoke time.
    pub fn invoke(&self, process: u64, op: &Op) -> u64 {
        let value = op.invoke_value();
        self.write(process, "invoke", op, &value, None, None)
    }

    /// Records how `process`'s open `op` ended; `node` answered (or lost it). Returns the time.
    pub fn complete(
        &self,
        process: u64,
        op: &Op,
        completion: &Completion,
        node: Option<u64>,
    ) -> u64 {
        self.counts.add(op.f(), completion);
        match completion {
            Completion::Ok(value) => self.write(process, "ok", op, value, node, None),
            Completion::Fail(e) | Completion::Info(e) => {
                let value = op.invoke_value();
                self.write(process, completion.kind(), op, &value, node, Some(e))
            }
        }
    }

    fn write(
        &self,
        process: u64,
        kind: &str,
        op: &Op,
        value: &Value,
        node: Option<u64>,
        error: Option<&str>,
    ) -> u64 {
        let mut out = self.out.lock().expect("history lock");
        // The time is taken under the lock, so the file is in time order.
        let time_ns = self.clock.now_ns();
        let line = Line {
            process,
            kind,
            f: op.f(),
            key: op.key(),
            value,
            time_ns,
            node,
            error,
        };
        // A history that cannot be written makes the run worthless; the error surfaces at the
        // next flush, which the run checks.
        let _ = serde_json::to_writer(&mut *out, &line);
        let _ = out.write_all(b"\n");
        time_ns
    }

    /// Writes what is buffered to the file.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn flush(&self) -> std::io::Result<()> {
        self.out.lock().expect("history lock").flush()
    }
}

/// A JSON-lines file of events (`nemesis.jsonl`, `leaders.jsonl`), each line flushed as it is
/// written (they are few).
pub struct EventLog {
    clock: Clock,
    out: Mutex<BufWriter<File>>,
}

impl EventLog {
    /// Creates (truncates) the file at `path`.
    ///
    /// # Errors
    /// The file could not be created.
    pub fn create(path: &Path, clock: Clock) -> std::io::Result<Arc<EventLog>> {
        Ok(Arc::new(EventLog {
            clock,
            out: Mutex::new(BufWriter::new(File::create(path)?)),
        }))
    }

    /// Writes `event` (a JSON object) with `time_ns` added; returns the time.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn write(&self, mut event: serde_json::Map<String, Value>) -> std::io::Result<u64> {
        let mut out = self.out.lock().expect("event log lock");
        let time_ns = self.clock.now_ns();
        event.insert("time_ns".into(), Value::from(time_ns));
        serde_json::to_writer(&mut *out, &event)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(time_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::ReadShape;

    #[test]
    fn the_file_is_checker_input_with_node_and_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(&path, Clock::start()).unwrap();
        let write = Op::Write {
            key: "r0".into(),
            value: "1".into(),
        };
        let read = Op::Read {
            key: "r0".into(),
            shape: ReadShape::Value,
        };
        rec.invoke(0, &write);
        rec.invoke(1, &read);
        rec.complete(0, &write, &Completion::Info("timed out".into()), Some(3));
        rec.complete(1, &read, &Completion::Fail("refused".into()), None);
        // Process 0 ended in info: its client goes on as a fresh process.
        rec.invoke(10, &write);
        rec.complete(10, &write, &Completion::Ok("1".into()), Some(2));
        rec.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let history = checker::read_history(text.as_bytes()).unwrap();
        let ops = checker::pair_history(&history).unwrap();
        assert_eq!(ops.len(), 2, "the failed read is dropped");
        assert!(text.contains(r#""node":3"#) && text.contains(r#""error":"timed out""#));
        let times: Vec<u64> = history.events.iter().map(|e| e.time_ns).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(rec.counts.total(), 3);
        assert_eq!(rec.counts.by_f()["write"]["info"], 1);
    }
}
