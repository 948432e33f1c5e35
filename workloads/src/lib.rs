//! Workloads: what the harness's logical clients do, and which checker judges the history.
//!
//! - [`op`]: the abstract operations (read, write, cas, add, incr) and how each is written in a
//!   history in the checker's format.
//! - [`generator`]: pure, seeded op streams for the three workloads: `register` (reads, unique
//!   writes and compare-and-set over many short-lived keys, a few clients per key, as Jepsen's
//!   `independent`), `set` (adds of unique elements to a few sets) and `counter` (increments by
//!   random positive deltas, and reads), each with its final reads.
//! - [`judge`]: runs the workload's checker over a paired history with a budget.
//! - [`rng`]: the small seeded generator every plan in the harness draws from.
//!
//! Nothing here does I/O or reads a clock: a stream is a function of its seed, so a run's op
//! stream can be replayed, and the judge is a function of the history and its budget.

pub mod generator;
pub mod judge;
pub mod op;
pub mod rng;

pub use generator::{Generator, WorkloadSpec};
pub use judge::{judge, Judged, Outcome};
pub use op::{Op, ReadShape};
pub use rng::Rng;

use std::fmt;
use std::str::FromStr;

/// The workloads the harness knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Read, write and compare-and-set on registers; judged linearizable per key.
    Register,
    /// Adds to sets, then final reads; judged by the set checker (lost, unexpected, duplicated).
    Set,
    /// Increments and reads of counters; judged by the counter checker (reads within bounds).
    Counter,
}

impl WorkloadKind {
    /// Every workload, in the order `--help` lists them.
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Register,
        WorkloadKind::Set,
        WorkloadKind::Counter,
    ];

    /// The name used on the command line and in results.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Set => "set",
            WorkloadKind::Counter => "counter",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = String;

    fn from_str(s: &str) -> Result<WorkloadKind, String> {
        WorkloadKind::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?} (expected register, set or counter)"))
    }
}
