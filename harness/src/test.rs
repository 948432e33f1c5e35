//! The test spec: everything that defines a run, as the command line gave it.

use crate::check::CheckBudget;
use crate::client::ReadVia;
use crate::nemesis::FaultKind;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use workloads::WorkloadKind;

/// One run's settings.
#[derive(Clone, Debug, Serialize)]
pub struct TestSpec {
    /// What the clients do.
    pub workload: WorkloadKind,
    /// The faults the nemesis may inject (empty: none).
    pub faults: Vec<FaultKind>,
    /// Nodes in the cluster.
    pub node_count: usize,
    /// Shards.
    pub shard_count: usize,
    /// Replicas per shard.
    pub replica_count: usize,
    /// How long the clients and the nemesis run.
    pub time_limit: Duration,
    /// Logical clients.
    pub concurrency: usize,
    /// Register: clients sharing one key at a time.
    pub clients_per_key: usize,
    /// Register: ops on a key before it is retired.
    pub ops_per_key: u64,
    /// Total ops per second, 0 for as fast as the clients go.
    pub rate: f64,
    /// Time between a fault and its heal, and between a heal and the next fault.
    pub nemesis_interval: Duration,
    /// How long the healed cluster has to serve again before the final reads.
    pub quiet_period: Duration,
    /// Delay (plus up to as much again, at random) on every node-to-node link for the whole
    /// run, under the faults; zero for none.
    pub peer_latency: Duration,
    /// Where clients send their reads first.
    pub read_via: ReadVia,
    /// Budget of one client operation (then a write is `info`, a read `fail`).
    pub op_timeout: Duration,
    /// Seed of the op stream, the fault schedule and the proxies' choices.
    pub seed: u64,
    /// Log entries after which a shard snapshots (low, so that chaos exercises snapshots).
    pub snapshot_log_entries_max: u64,
    /// Extra arguments for every `kvs serve`.
    pub kvs_args: Vec<String>,
    /// Bugs planted in the store (`kvs serve --bug NAME`), on every node or on one.
    pub bugs: Vec<PlantedBug>,
    /// The checker's budget.
    pub check_budget: CheckBudget,
    /// Where results go: this folder exactly, or a new folder under `results_root`.
    pub results_dir: Option<PathBuf>,
    /// The folder holding one folder per run (and `latest`).
    pub results_root: PathBuf,
    /// The `kvs` binary, if given.
    pub kvs_bin: Option<PathBuf>,
    /// Draw a progress bar.
    pub progress: bool,
    /// The command line that reproduces this run (with its seed).
    pub command_line: String,
}

impl TestSpec {
    /// A run of `workload` under `faults` with the command line's defaults for everything else
    /// (5 nodes, 8 shards of 3 replicas, 60 s, 10 clients, 5 s between faults...), results in
    /// a new folder under `results/`.
    #[must_use]
    pub fn new(workload: WorkloadKind, faults: Vec<FaultKind>, seed: u64) -> TestSpec {
        TestSpec {
            workload,
            faults,
            node_count: 5,
            shard_count: 8,
            replica_count: 3,
            time_limit: Duration::from_secs(60),
            concurrency: 10,
            clients_per_key: 5,
            ops_per_key: 200,
            rate: 0.0,
            nemesis_interval: Duration::from_secs(5),
            quiet_period: Duration::from_secs(10),
            peer_latency: Duration::ZERO,
            read_via: ReadVia::Leader,
            op_timeout: Duration::from_secs(2),
            seed,
            snapshot_log_entries_max: 1000,
            kvs_args: Vec::new(),
            bugs: Vec::new(),
            check_budget: CheckBudget::default(),
            results_dir: None,
            results_root: PathBuf::from("results"),
            kvs_bin: None,
            progress: false,
            command_line: String::new(),
        }
    }

    /// The faults as the command line names them (`none` for none), joined with `+` for folder
    /// names or `,` for people.
    #[must_use]
    pub fn faults_name(&self, sep: &str) -> String {
        if self.faults.is_empty() {
            "none".to_string()
        } else {
            self.faults
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(sep)
        }
    }
}

/// A bug planted in the store for a run: `NAME` on every node, or `NAME@ID` on node `ID` only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlantedBug {
    /// The bug's name, as `kvs serve --bug` takes it.
    pub bug: String,
    /// The one node it is planted in, or every node.
    pub node: Option<u64>,
}

impl PlantedBug {
    /// Parses `NAME` or `NAME@ID` for a cluster of `node_count` nodes.
    ///
    /// # Errors
    /// An unknown bug name (the message lists the names) or a node id outside `1..=node_count`.
    pub fn parse(text: &str, node_count: u64) -> Result<PlantedBug, String> {
        let (name, node) = match text.split_once('@') {
            Some((name, id)) => {
                let id: u64 = id
                    .parse()
                    .map_err(|_| format!("{text:?}: {id:?} is not a node id"))?;
                if id == 0 || id > node_count {
                    return Err(format!("{text:?}: node {id} is not in 1..={node_count}"));
                }
                (name, Some(id))
            }
            None => (text, None),
        };
        let bug: kvs::bugs::Bug = name
            .parse()
            .map_err(|e: kvs::bugs::UnknownBug| e.to_string())?;
        Ok(PlantedBug {
            bug: bug.name().to_string(),
            node,
        })
    }

    /// `NAME` or `NAME@ID`.
    #[must_use]
    pub fn label(&self) -> String {
        match self.node {
            Some(n) => format!("{}@{n}", self.bug),
            None => self.bug.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PlantedBug;

    #[test]
    fn planted_bugs_parse_with_an_optional_node() {
        assert_eq!(
            PlantedBug::parse("vote-twice", 5).unwrap(),
            PlantedBug {
                bug: "vote-twice".into(),
                node: None
            }
        );
        let b = PlantedBug::parse("skip-fsync@3", 5).unwrap();
        assert_eq!((b.node, b.label()), (Some(3), "skip-fsync@3".to_string()));
        assert!(PlantedBug::parse("skip-fsync@6", 5)
            .unwrap_err()
            .contains("1..=5"));
        assert!(PlantedBug::parse("skip-fsync@x", 5)
            .unwrap_err()
            .contains("node id"));
        assert!(PlantedBug::parse("eat-writes", 5)
            .unwrap_err()
            .contains("stale-reads"));
    }
}
