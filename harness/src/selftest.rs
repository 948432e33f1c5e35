//! `harness selftest`: the harness proves it has teeth. For every bug that `kvs serve --bug`
//! can plant, it runs the workload and faults that should expose it, in short runs, until a run
//! says invalid or the bug's time budget is spent; then it runs the clean store through the
//! same settings for as long, where every run must be valid (no false alarms). It prints a
//! table and keeps every run's results folder.
//!
//! Each bug's settings are in [`plan`], with the reason they expose it; they are targeted, not
//! general chaos: a bug that needs a deposed leader to be asked for a read gets the `depose`
//! fault and clients bound to nodes, one that needs colliding elections gets a slow network.

use crate::client::ReadVia;
use crate::nemesis::FaultKind;
use crate::run::{run, Interrupt};
use crate::test::{PlantedBug, TestSpec};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::{Outcome, Rng, WorkloadKind};

/// The settings of the short runs that should expose one bug.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The planted bug (`kvs serve --bug` name).
    pub bug: &'static str,
    /// What the clients do.
    pub workload: WorkloadKind,
    /// The faults.
    pub faults: Vec<FaultKind>,
    /// Nodes, shards and replicas per shard.
    pub nodes: usize,
    /// Shards.
    pub shards: usize,
    /// Replicas per shard.
    pub replicas: usize,
    /// Where reads go first.
    pub read_via: ReadVia,
    /// Delay on every node-to-node link for the whole run.
    pub peer_latency: Duration,
    /// Time between a fault and its heal.
    pub nemesis_interval: Duration,
    /// Length of one run.
    pub time_limit: Duration,
    /// Why these settings expose the bug.
    pub why: &'static str,
}

impl Trial {
    fn base(bug: &'static str, faults: Vec<FaultKind>, why: &'static str) -> Trial {
        Trial {
            bug,
            workload: WorkloadKind::Register,
            faults,
            nodes: 5,
            shards: 8,
            replicas: 3,
            read_via: ReadVia::Leader,
            peer_latency: Duration::ZERO,
            nemesis_interval: Duration::from_secs(3),
            time_limit: Duration::from_secs(20),
            why,
        }
    }

    /// The command line that runs this trial by hand (without `--seed`).
    #[must_use]
    pub fn command(&self, with_bug: bool) -> String {
        let faults: Vec<&str> = self.faults.iter().map(|f| f.name()).collect();
        let mut cmd = format!(
            "harness --workload {} --faults {} --nodes {} --shards {} --replicas {} \
             --nemesis-interval {} --time-limit {}",
            self.workload.name(),
            faults.join(","),
            self.nodes,
            self.shards,
            self.replicas,
            self.nemesis_interval.as_secs_f64(),
            self.time_limit.as_secs_f64()
        );
        if self.read_via != ReadVia::Leader {
            cmd.push_str(&format!(" --read-via {}", self.read_via.name()));
        }
        if !self.peer_latency.is_zero() {
            cmd.push_str(&format!(
                " --peer-latency {}",
                self.peer_latency.as_millis()
            ));
        }
        if with_bug {
            cmd.push_str(&format!(" --bug {}", self.bug));
        }
        cmd
    }

    fn spec(&self, with_bug: bool, seed: u64, dir: PathBuf, kvs_bin: Option<PathBuf>) -> TestSpec {
        TestSpec {
            node_count: self.nodes,
            shard_count: self.shards,
            replica_count: self.replicas,
            read_via: self.read_via,
            peer_latency: self.peer_latency,
            nemesis_interval: self.nemesis_interval,
            time_limit: self.time_limit,
            bugs: if with_bug {
                vec![PlantedBug {
                    bug: self.bug.to_string(),
                    node: None,
                }]
            } else {
                Vec::new()
            },
            results_dir: Some(dir),
            kvs_bin,
            command_line: format!("{} --seed {seed}", self.command(with_bug)),
            ..TestSpec::new(self.workload, self.faults.clone(), seed)
        }
    }
}

/// For each planted bug, the settings that should expose it.
#[must_use]
pub fn plan() -> Vec<Trial> {
    use FaultKind::{Depose, Disk, Kill, Partition};
    let depose = |bug, why| Trial {
        // One shard on three nodes: every key lives in the shard whose leader is deposed,
        // and a third of the clients' processes are bound to it.
        nodes: 3,
        shards: 1,
        read_via: ReadVia::Node,
        nemesis_interval: Duration::from_secs(5),
        ..Trial::base(bug, vec![Depose], why)
    };
    vec![
        depose(
            "stale-reads",
            "a deposed leader, resumed while cut off, still believes it leads for up to an \
             election timeout; clients bound to it ask it for reads, which it serves from its \
             own state without confirming it leads, while the new leader has taken writes",
        ),
        depose(
            "read-index-without-quorum",
            "as for stale-reads: the deposed leader releases the ReadIndex without the \
             heartbeat round that would have shown it no longer leads",
        ),
        Trial::base(
            "ack-before-commit",
            vec![Partition],
            "a leader cut off from its peers acknowledges writes that never commit; the new \
             leader's reads do not see them",
        ),
        Trial {
            peer_latency: Duration::from_millis(100),
            time_limit: Duration::from_secs(30),
            ..Trial::base(
                "vote-twice",
                vec![Kill],
                "killing leaders starts elections; on a slow network (100-200 ms a hop) \
                 candidates collide, and a node that votes twice makes two leaders in one \
                 term (seen in the leader samples, and by clients as diverging values)",
            )
        },
        Trial {
            peer_latency: Duration::from_millis(100),
            nemesis_interval: Duration::from_secs(2),
            time_limit: Duration::from_secs(30),
            ..Trial::base(
                "forget-vote",
                vec![Kill],
                "a node killed right after voting forgets its vote; if a second candidate of \
                 the same term reaches it after its restart it votes again: two leaders in \
                 one term",
            )
        },
        Trial {
            peer_latency: Duration::from_millis(50),
            nemesis_interval: Duration::from_secs(2),
            time_limit: Duration::from_secs(30),
            ..Trial::base(
                "commit-old-term",
                vec![Partition, Kill],
                "leaders cut off or killed leave uncommitted tails of old terms; a later leader \
                 that counts replicas for them commits entries a leader of a newer term can \
                 still overwrite (Figure 8)",
            )
        },
        Trial {
            nemesis_interval: Duration::from_secs(2),
            time_limit: Duration::from_secs(24),
            ..Trial::base(
                "skip-fsync",
                vec![Disk],
                "nodes killed with the disk fault lose what they never synced; with fsync \
                 skipped that includes entries they acknowledged. Six faults, so that every \
                 variant comes up, the power cut of the whole cluster among them (a minority's \
                 loss is often repaired by a replica that still has the entries)",
            )
        },
    ]
}

/// How the self-test runs.
#[derive(Clone, Debug)]
pub struct SelftestOptions {
    /// Per bug: time spent on runs with the bug planted before calling it not caught.
    pub budget: Duration,
    /// Only these bugs (empty: all).
    pub bugs: Vec<String>,
    /// Skip the clean-store runs.
    pub skip_clean: bool,
    /// The folder that gets this self-test's folder.
    pub results_root: PathBuf,
    /// The `kvs` binary (default: found as for a run).
    pub kvs_bin: Option<PathBuf>,
    /// Seed of the runs' seeds.
    pub seed: u64,
}

/// One bug's row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The trial.
    pub trial: Trial,
    /// Whether a run with the bug was invalid.
    pub caught: bool,
    /// Seconds from the first run's start to the end of the catching run (or all spent).
    pub secs: f64,
    /// Runs with the bug.
    pub runs: u32,
    /// The catching run's reason, in words (or what the runs said).
    pub anomaly: String,
    /// The catching run's folder.
    pub dir: Option<PathBuf>,
    /// The clean store's runs under the same settings: how many, and those not valid.
    pub clean_runs: u32,
    /// Clean runs that were not valid: folder and reason.
    pub false_alarms: Vec<(PathBuf, String)>,
    /// Runs (with the bug or clean) that could not be carried out.
    pub errors: Vec<String>,
}

/// The whole self-test.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Its folder.
    pub dir: PathBuf,
    /// One row per bug.
    pub rows: Vec<Row>,
    /// Whether it was stopped by an interrupt.
    pub interrupted: bool,
}

impl Report {
    /// Every bug caught, no false alarm, nothing that failed to run, not interrupted.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.interrupted
            && self
                .rows
                .iter()
                .all(|r| r.caught && r.false_alarms.is_empty() && r.errors.is_empty())
    }

    /// The table, as Markdown.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| bug | workload | faults | caught | time to catch | runs | anomaly found | results | clean runs |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let mut faults: Vec<String> = r
                .trial
                .faults
                .iter()
                .map(|f| f.name().to_string())
                .collect();
            if r.trial.read_via != ReadVia::Leader {
                faults.push(format!("reads via {}", r.trial.read_via.name()));
            }
            if !r.trial.peer_latency.is_zero() {
                faults.push(format!("latency {} ms", r.trial.peer_latency.as_millis()));
            }
            let clean = if r.false_alarms.is_empty() {
                format!("{} valid", r.clean_runs)
            } else {
                format!("{} of {} NOT valid", r.false_alarms.len(), r.clean_runs)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.trial.bug,
                r.trial.workload.name(),
                faults.join(", "),
                if r.caught { "yes" } else { "**no**" },
                if r.caught {
                    format!("{:.0} s", r.secs)
                } else {
                    format!("not in {:.0} s", r.secs)
                },
                r.runs,
                first_of(&r.anomaly).replace('|', "\\|"),
                r.dir
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |d| d.display().to_string()),
                clean
            ));
        }
        out
    }
}

/// The first of the findings a reason lists (`a; b; c`), with how many more there are.
fn first_of(reason: &str) -> String {
    let mut parts = reason.split("; ");
    let first = parts.next().unwrap_or_default();
    match parts.count() {
        0 => first.to_string(),
        more => format!("{first} (and {more} more)"),
    }
}

/// Runs the self-test. `say` gets one line per run as it ends.
///
/// # Errors
/// The self-test's folder could not be made or its report written.
pub async fn selftest(
    options: &SelftestOptions,
    interrupt: Arc<Interrupt>,
    mut say: impl FnMut(&str),
) -> anyhow::Result<Report> {
    let stamp = crate::store::utc_stamp(crate::store::now_epoch_secs());
    let dir = options.results_root.join(format!("selftest-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let mut seeds = Rng::new(options.seed);
    let trials: Vec<Trial> = plan()
        .into_iter()
        .filter(|t| options.bugs.is_empty() || options.bugs.iter().any(|b| b == t.bug))
        .collect();
    let mut rows = Vec::new();
    for trial in trials {
        if interrupt.is_set() {
            break;
        }
        let mut row = Row {
            trial: trial.clone(),
            caught: false,
            secs: 0.0,
            runs: 0,
            anomaly: String::new(),
            dir: None,
            clean_runs: 0,
            false_alarms: Vec::new(),
            errors: Vec::new(),
        };
        let started = Instant::now();
        let mut said = Vec::new();
        while started.elapsed() < options.budget && !interrupt.is_set() {
            row.runs += 1;
            let seed = seeds.next_u64() >> 16;
            let run_dir = dir.join(format!("{}-{}", trial.bug, row.runs));
            let spec = trial.spec(true, seed, run_dir.clone(), options.kvs_bin.clone());
            match run(spec, interrupt.clone()).await {
                Ok(f) => {
                    say(&format!(
                        "{} run {} (seed {seed}): {} after {:.0} s: {}",
                        trial.bug,
                        row.runs,
                        f.outcome.name().to_uppercase(),
                        started.elapsed().as_secs_f64(),
                        f.reason
                    ));
                    if f.outcome == Outcome::Invalid {
                        row.caught = true;
                        // The page's first sentence on an anomaly, else the verdict's reason.
                        row.anomaly = crate::report::anomalies_in_words(&f.dir)
                            .into_iter()
                            .next()
                            .unwrap_or(f.reason);
                        row.dir = Some(f.dir);
                        break;
                    }
                    said.push(format!("{}: {}", f.outcome.name(), f.reason));
                }
                Err(e) => {
                    let text = format!(
                        "{} run {} (seed {seed}): {:#}",
                        trial.bug, row.runs, e.error
                    );
                    say(&format!("{text} (could not be carried out)"));
                    row.errors.push(text);
                }
            }
        }
        row.secs = started.elapsed().as_secs_f64();
        if !row.caught {
            row.anomaly = said.last().cloned().unwrap_or_default();
        }
        // The clean store, same settings, for as long (at least one run).
        if !options.skip_clean {
            let spent = row.secs;
            let clean_started = Instant::now();
            while (row.clean_runs == 0 || clean_started.elapsed().as_secs_f64() < spent)
                && !interrupt.is_set()
            {
                row.clean_runs += 1;
                let seed = seeds.next_u64() >> 16;
                let run_dir = dir.join(format!("clean-{}-{}", trial.bug, row.clean_runs));
                let spec = trial.spec(false, seed, run_dir, options.kvs_bin.clone());
                match run(spec, interrupt.clone()).await {
                    Ok(f) => {
                        say(&format!(
                            "clean store, {}'s settings, run {} (seed {seed}): {}: {}",
                            trial.bug,
                            row.clean_runs,
                            f.outcome.name().to_uppercase(),
                            f.reason
                        ));
                        if f.outcome != Outcome::Valid && !interrupt.is_set() {
                            row.false_alarms.push((f.dir, f.reason));
                        }
                    }
                    Err(e) => {
                        let text = format!(
                            "clean run {} of {}'s settings (seed {seed}): {:#}",
                            row.clean_runs, trial.bug, e.error
                        );
                        say(&format!("{text} (could not be carried out)"));
                        row.errors.push(text);
                    }
                }
            }
        }
        rows.push(row);
    }
    let report = Report {
        dir: dir.clone(),
        rows,
        interrupted: interrupt.is_set(),
    };
    std::fs::write(dir.join("selftest.md"), report.table())?;
    // Each run has its page; the folder gets an index of them all.
    if let Err(e) = crate::report::render_index(&dir) {
        say(&format!(
            "the self-test's index page could not be written: {e:#}"
        ));
    }
    std::fs::write(
        dir.join("selftest.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::plan;
    use kvs::bugs::Bug;

    #[test]
    fn the_table_shows_the_first_finding_and_counts_the_others() {
        assert_eq!(super::first_of("a"), "a");
        assert_eq!(super::first_of("a; b; c"), "a (and 2 more)");
    }

    #[test]
    fn every_planted_bug_has_a_trial_whose_settings_parse() {
        let trials = plan();
        for bug in Bug::ALL {
            let t = trials
                .iter()
                .find(|t| t.bug == bug.name())
                .unwrap_or_else(|| panic!("no trial for {}", bug.name()));
            assert!(t.replicas <= t.nodes && !t.faults.is_empty() && !t.why.is_empty());
            assert!(t.command(true).ends_with(&format!("--bug {}", bug.name())));
        }
        assert_eq!(trials.len(), Bug::ALL.len());
    }
}
