//! A run's files, read back for the report: the history paired into operations (with the node
//! that answered and the error of each), the fault windows, crashes, leader samples and the
//! summary. Reading only; nothing here draws.

use crate::store::{HISTORY_FILE, LEADERS_FILE, NEMESIS_FILE, SUMMARY_FILE};
use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Took effect.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown.
    Info,
    /// Never completed before the history ended (treated as info).
    Pending,
}

impl Outcome {
    /// `ok`, `fail`, `info` or `pending`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }
}

/// One operation: its invoke and completion lines joined.
#[derive(Clone, Debug)]
pub struct Op {
    /// The logical client.
    pub process: u64,
    /// The function.
    pub f: String,
    /// The key.
    pub key: String,
    /// The invoke's value (the arguments).
    pub value: Value,
    /// The ok's value (the result), `Null` otherwise.
    pub result: Value,
    /// Invoke time, ns since the run began.
    pub start_ns: u64,
    /// Completion time (`None` if it never completed).
    pub end_ns: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// The node that answered (or lost it).
    pub node: Option<u64>,
    /// The error of a fail or an info.
    pub error: Option<String>,
    /// 1-based line of the invoke in `history.jsonl`.
    pub line: usize,
}

impl Op {
    /// Latency in ns (completion minus invoke), for completed ops.
    #[must_use]
    pub fn latency_ns(&self) -> Option<u64> {
        self.end_ns.map(|e| e.saturating_sub(self.start_ns))
    }
}

/// One fault, from its start to its heal (or the end of the run).
#[derive(Clone, Debug)]
pub struct FaultWindow {
    /// `partition-bridge`, `kill-one`, ...
    pub name: String,
    /// `partition`, `kill`, `pause`, `slow`, `flaky`.
    pub kind: String,
    /// Plot colour.
    pub color: String,
    /// What exactly was done, for hover text.
    pub detail: String,
    /// Start, ns.
    pub start_ns: u64,
    /// Heal, ns.
    pub end_ns: u64,
}

/// A point event of the nemesis log: a crash, or the final heal.
#[derive(Clone, Debug)]
pub struct Mark {
    /// When.
    pub time_ns: u64,
    /// What, for people.
    pub text: String,
}

/// One sample of who led what.
#[derive(Clone, Debug)]
pub struct LeaderSample {
    /// When.
    pub time_ns: u64,
    /// Shard -> leading node (the claim with the highest term).
    pub leaders: BTreeMap<u32, u64>,
}

/// Everything the report reads from a run folder.
#[derive(Clone, Debug)]
pub struct RunData {
    /// `summary.json` (`Null` when missing: an interrupted or crashed run).
    pub summary: Value,
    /// Operations in invoke order.
    pub ops: Vec<Op>,
    /// Fault windows in time order.
    pub faults: Vec<FaultWindow>,
    /// Crashes and the final heal.
    pub marks: Vec<Mark>,
    /// Leader samples in time order.
    pub leaders: Vec<LeaderSample>,
    /// Shards seen in the samples (or the summary's count).
    pub shard_count: u32,
    /// The last event's time: the length of the run's clock.
    pub end_ns: u64,
}

#[derive(Deserialize)]
struct Line {
    process: u64,
    #[serde(rename = "type")]
    kind: String,
    f: String,
    key: String,
    #[serde(default)]
    value: Value,
    time_ns: u64,
    #[serde(default)]
    node: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

impl RunData {
    /// Reads the run folder `dir`.
    ///
    /// # Errors
    /// The history is missing or malformed (the message names the line).
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let summary = std::fs::read_to_string(dir.join(SUMMARY_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let ops = read_ops(&dir.join(HISTORY_FILE))?;
        let (faults, marks) = read_nemesis(&dir.join(NEMESIS_FILE));
        let leaders = read_leaders(&dir.join(LEADERS_FILE));
        let shard_count = summary["settings"]["shards"]
            .as_u64()
            .map(|s| s as u32)
            .or_else(|| {
                leaders
                    .iter()
                    .flat_map(|s| s.leaders.keys())
                    .max()
                    .map(|m| m + 1)
            })
            .unwrap_or(0);
        let end_ns = ops
            .iter()
            .map(|o| o.end_ns.unwrap_or(o.start_ns))
            .chain(faults.iter().map(|f| f.end_ns))
            .chain(marks.iter().map(|m| m.time_ns))
            .chain(leaders.iter().map(|l| l.time_ns))
            .max()
            .unwrap_or(0);
        Ok(RunData {
            summary,
            ops,
            faults,
            marks,
            leaders,
            shard_count,
            end_ns,
        })
    }

    /// Whether `t` falls in a fault window.
    #[must_use]
    pub fn in_fault(&self, t: u64) -> bool {
        self.faults.iter().any(|f| f.start_ns <= t && t <= f.end_ns)
    }
}

/// Pairs the history's lines into operations.
///
/// # Errors
/// The file cannot be read, or a line is not an event.
pub fn read_ops(path: &Path) -> anyhow::Result<Vec<Op>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ops: Vec<Op> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.with_context(|| format!("reading {}", path.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text)
            .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        if line.kind == "invoke" {
            open.insert(line.process, ops.len());
            ops.push(Op {
                process: line.process,
                f: line.f,
                key: line.key,
                value: line.value,
                result: Value::Null,
                start_ns: line.time_ns,
                end_ns: None,
                outcome: Outcome::Pending,
                node: line.node,
                error: None,
                line: i + 1,
            });
            continue;
        }
        // A completion without an open invoke is the checker's to report; the report skips it.
        let Some(index) = open.remove(&line.process) else {
            continue;
        };
        let op = &mut ops[index];
        op.end_ns = Some(line.time_ns);
        op.node = line.node.or(op.node);
        op.error = line.error;
        op.outcome = match line.kind.as_str() {
            "ok" => {
                op.result = line.value;
                Outcome::Ok
            }
            "fail" => Outcome::Fail,
            _ => Outcome::Info,
        };
    }
    Ok(ops)
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Fault windows (a start paired with the next heal) and point events.
fn read_nemesis(path: &Path) -> (Vec<FaultWindow>, Vec<Mark>) {
    let mut faults = Vec::new();
    let mut marks = Vec::new();
    let mut open: Option<FaultWindow> = None;
    for e in read_jsonl(path) {
        let t = e["time_ns"].as_u64().unwrap_or(0);
        match e["event"].as_str().unwrap_or("") {
            "start" => {
                let detail = ["description", "nodes", "pids", "links", "cuts", "lost"]
                    .iter()
                    .filter_map(|k| {
                        let v = &e[*k];
                        (!v.is_null()).then(|| match v {
                            Value::String(s) => format!("{k}: {s}"),
                            other => format!("{k}: {other}"),
                        })
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                open = Some(FaultWindow {
                    name: e["fault"].as_str().unwrap_or("fault").to_string(),
                    kind: e["kind"].as_str().unwrap_or("").to_string(),
                    color: e["color"].as_str().unwrap_or("#DDDDDD").to_string(),
                    detail,
                    start_ns: t,
                    end_ns: t,
                });
            }
            "heal" => {
                if let Some(mut f) = open.take() {
                    f.end_ns = t;
                    faults.push(f);
                }
            }
            "two-leaders" => marks.push(Mark {
                time_ns: t,
                text: e["text"]
                    .as_str()
                    .unwrap_or("two leaders in one term")
                    .to_string(),
            }),
            "resume" => marks.push(Mark {
                time_ns: t,
                text: format!(
                    "{}: nodes {} resumed, still cut off",
                    e["fault"].as_str().unwrap_or("fault"),
                    e["resumed"]
                ),
            }),
            "crash" => marks.push(Mark {
                time_ns: t,
                text: format!(
                    "node {} exited by itself ({})",
                    e["node"],
                    e["status"].as_str().unwrap_or("?")
                ),
            }),
            "heal-all" => {
                if let Some(mut f) = open.take() {
                    f.end_ns = t;
                    faults.push(f);
                }
                marks.push(Mark {
                    time_ns: t,
                    text: "final heal: every link passes, every node runs".to_string(),
                });
            }
            _ => {}
        }
    }
    // A fault still open (an interrupted run) lasts to its own start: drawn as a line.
    faults.extend(open);
    (faults, marks)
}

fn read_leaders(path: &Path) -> Vec<LeaderSample> {
    read_jsonl(path)
        .into_iter()
        .map(|e| LeaderSample {
            time_ns: e["time_ns"].as_u64().unwrap_or(0),
            leaders: e["leaders"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(shard, v)| Some((shard.parse().ok()?, v["node"].as_u64()?)))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}
