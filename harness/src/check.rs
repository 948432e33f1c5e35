//! Judging a run from its files: read `history.jsonl`, pair it, run the workload's checker
//! within a budget (time, states and memory; over budget is unknown, never valid), and write
//! `checker.json` and `checker.txt`. The run itself and `harness check DIR` both come here, so a
//! stored run is judged exactly as it was when it ran.

use crate::store::{CHECKER_JSON_FILE, CHECKER_TEXT_FILE, HISTORY_FILE};
use anyhow::Context as _;
use checker::{budget_for, pair_history, read_history, Budget};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use workloads::{judge, Judged, Outcome, WorkloadKind};

/// What the checker may spend on one run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CheckBudget {
    /// Wall time of the whole check.
    #[serde(rename = "time_limit_s", serialize_with = "seconds")]
    pub time_limit: Duration,
    /// Search states remembered per key.
    pub states_max: u64,
    /// Memory of one key's cache of search states, in MiB.
    pub cache_mib_max: u64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for CheckBudget {
    fn default() -> Self {
        CheckBudget {
            time_limit: Duration::from_secs(30),
            states_max: 10_000_000,
            cache_mib_max: 1024,
        }
    }
}

/// The outcome of checking a run's history.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    /// The judge's verdict and report.
    pub judged: Judged,
    /// Operations in the history (fails dropped).
    pub op_count: usize,
    /// Seconds spent checking.
    pub check_secs: f64,
}

/// Checks the history in `dir` as `workload` and writes the checker's report files there.
///
/// # Errors
/// The history cannot be read or is not a well-formed history of that workload (the message
/// names the line); writing the report failed.
pub fn check_dir(
    dir: &Path,
    workload: WorkloadKind,
    budget: CheckBudget,
) -> anyhow::Result<Checked> {
    let started = Instant::now();
    let path = dir.join(HISTORY_FILE);
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let history = read_history(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let ops = pair_history(&history).with_context(|| format!("{}", path.display()))?;
    let checker_budget = Budget {
        states_max: budget.states_max,
        cache_bytes_max: budget.cache_mib_max.saturating_mul(1 << 20),
        ..budget_for(budget.time_limit)
    };
    let judged = judge(workload, &ops, &checker_budget)
        .with_context(|| format!("checking {}", path.display()))?;
    std::fs::write(
        dir.join(CHECKER_JSON_FILE),
        serde_json::to_vec_pretty(&judged).context("encoding the checker's report")?,
    )?;
    std::fs::write(dir.join(CHECKER_TEXT_FILE), &judged.text)?;
    Ok(Checked {
        judged,
        op_count: ops.len(),
        check_secs: started.elapsed().as_secs_f64(),
    })
}

/// The exit code of a verdict: 0 valid, 1 invalid, 2 unknown.
#[must_use]
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Valid => 0,
        Outcome::Invalid => 1,
        Outcome::Unknown => 2,
    }
}
