//! The test spec: everything that defines a run, as the command line gave it.

use crate::check::CheckBudget;
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
    /// Budget of one client operation (then a write is `info`, a read `fail`).
    pub op_timeout: Duration,
    /// Seed of the op stream, the fault schedule and the proxies' choices.
    pub seed: u64,
    /// Log entries after which a shard snapshots (low, so that chaos exercises snapshots).
    pub snapshot_log_entries_max: u64,
    /// Extra arguments for every `kvs serve`.
    pub kvs_args: Vec<String>,
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
