//! The system under test behind a seam (Jepsen's `db`): start, kill, restart, pause and resume a
//! node; its client endpoints; who leads each shard now; a key on each shard to probe with; its
//! logs. [`KvsDb`] is the first implementation: a cluster of real `kvs serve` processes (through
//! [`kvs::local::LocalCluster`], the one orchestrator of kvs processes) wired through the
//! harness's proxies.

use crate::nemesis::NodeId;
use crate::network::{Network, NodeAddrs};
use anyhow::Context as _;
use kvs::client::{ClientOptions, ClusterClient};
use kvs::config::ClusterConfig;
use kvs::local::{LocalCluster, LocalClusterOptions};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A boxed future, for the seam's asynchronous questions.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One node's claim to lead a shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The shard.
    pub shard: u32,
    /// The node that says it leads it.
    pub node: NodeId,
    /// In which term.
    pub term: u64,
}

/// Who leads what, as the nodes said at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeaderSample {
    /// Every node's claims to lead a shard. Two nodes may both claim a shard (a deposed leader
    /// that has not heard of the new term yet); the higher term is the real leader.
    pub claims: Vec<Claim>,
    /// Nodes that did not answer.
    pub unreachable: Vec<NodeId>,
}

impl LeaderSample {
    /// The leader of each shard that has one: the claim with the highest term.
    #[must_use]
    pub fn leaders(&self) -> std::collections::BTreeMap<u32, Claim> {
        let mut out: std::collections::BTreeMap<u32, Claim> = std::collections::BTreeMap::new();
        for c in &self.claims {
            if out.get(&c.shard).is_none_or(|best| c.term > best.term) {
                out.insert(c.shard, c.clone());
            }
        }
        out
    }

    /// The nodes that lead at least one shard.
    #[must_use]
    pub fn leader_nodes(&self) -> Vec<NodeId> {
        let nodes: BTreeSet<NodeId> = self.leaders().values().map(|c| c.node).collect();
        nodes.into_iter().collect()
    }

    /// Checks Raft's Election Safety (§5.2: at most one leader per term) against the claims seen
    /// so far: `seen` maps a shard and term to the first node seen claiming it, and grows with
    /// this sample's claims. Returns one sentence per shard and term that this sample shows with
    /// a second leader (each such pair is reported once: the first claimant stays in `seen` and
    /// the pair is marked). Two claims of one shard in *different* terms are normal (a deposed
    /// leader that has not yet heard of the new term).
    pub fn election_safety(&self, seen: &mut BTreeMap<(u32, u64), ElectionSeen>) -> Vec<String> {
        let mut found = Vec::new();
        for c in &self.claims {
            let entry = seen.entry((c.shard, c.term)).or_insert(ElectionSeen {
                first: c.node,
                reported: false,
            });
            if entry.first != c.node && !entry.reported {
                entry.reported = true;
                found.push(format!(
                    "shard {} had two leaders in term {}: nodes {} and {} (Raft's Election \
                     Safety: at most one leader per term)",
                    c.shard,
                    c.term,
                    entry.first.min(c.node),
                    entry.first.max(c.node)
                ));
            }
        }
        found
    }
}

/// What [`LeaderSample::election_safety`] remembers of one shard and term.
#[derive(Clone, Copy, Debug)]
pub struct ElectionSeen {
    /// The first node seen leading the shard in the term.
    pub first: NodeId,
    /// Whether a second leader was already reported.
    pub reported: bool,
}

/// The system under test.
pub trait Db: Send + Sync {
    /// Every node, by id.
    fn nodes(&self) -> Vec<NodeId>;
    /// Where clients reach each node.
    fn client_endpoints(&self) -> Vec<(NodeId, SocketAddr)>;
    /// SIGKILLs `node`; its pid, or `None` if it was not running.
    ///
    /// # Errors
    /// The node is unknown.
    fn kill(&self, node: NodeId) -> anyhow::Result<Option<u32>>;
    /// Starts `node` again on its data; its new pid.
    ///
    /// # Errors
    /// The process could not be started.
    fn start(&self, node: NodeId) -> anyhow::Result<u32>;
    /// SIGSTOPs `node`; its pid, or `None` if it is not running.
    fn pause(&self, node: NodeId) -> Option<u32>;
    /// SIGCONTs `node`; its pid, or `None` if it is not running.
    fn resume(&self, node: NodeId) -> Option<u32>;
    /// Whether `node`'s process runs (paused counts as running).
    fn is_running(&self, node: NodeId) -> bool;
    /// Whether `node` is paused.
    fn is_paused(&self, node: NodeId) -> bool;
    /// Asks every node which shards it leads.
    fn leaders(&self) -> BoxFuture<'_, LeaderSample>;
    /// One key on each shard: when every one of them can be read, every shard serves.
    fn probe_keys(&self) -> Vec<String>;
    /// Each node's log file.
    fn log_paths(&self) -> Vec<(NodeId, PathBuf)>;
    /// Nodes found to have exited by themselves (not killed by the harness) since the last
    /// call, with their exit status: on a clean store, every one is a bug.
    fn exited(&self) -> Vec<(NodeId, String)>;
    /// Drops every write `node` had not synced, as a power cut would (with `torn`, a seeded
    /// prefix of the last one is kept); the node must have been killed. Says what was lost.
    ///
    /// # Errors
    /// The run has no disk faults, the node is unknown or still running.
    fn lose_unsynced(&self, node: NodeId, torn: Option<u64>) -> anyhow::Result<serde_json::Value>;
    /// Stops every node (resuming paused ones first) and closes the network.
    fn teardown(&self);
}

/// How to start a kvs cluster for a run.
#[derive(Clone, Debug)]
pub struct KvsOptions {
    /// The `kvs` binary.
    pub bin: PathBuf,
    /// The run folder: configuration, logs and data go here.
    pub dir: PathBuf,
    /// Nodes.
    pub node_count: usize,
    /// Shards.
    pub shard_count: usize,
    /// Replicas per shard.
    pub replica_count: usize,
    /// Log entries after which a group snapshots.
    pub snapshot_log_entries_max: u64,
    /// Extra arguments for every `kvs serve`.
    pub extra_args: Vec<String>,
    /// Extra arguments for one node's `kvs serve`, by node id.
    pub node_args: std::collections::BTreeMap<u64, Vec<String>>,
    /// Seed for the proxies' random choices.
    pub seed: u64,
    /// Put each node's data dir on a [`faultfs`] mount (whose durable files are kept in
    /// `disk/node-<id>` of the run folder), so that [`Db::lose_unsynced`] works.
    pub disk_faults: bool,
}

/// A kvs cluster behind the harness's proxies.
pub struct KvsDb {
    cluster: Mutex<LocalCluster>,
    network: Arc<Network>,
    config: ClusterConfig,
    paused: Mutex<BTreeSet<NodeId>>,
    /// Exits found and not reported yet.
    exits: Mutex<Vec<(NodeId, String)>>,
    /// Talks to the nodes directly (not through proxies) for leader samples.
    observer: ClusterClient,
    /// Each node's data dir mount, with disk faults. Declared after `cluster`: dropped after
    /// the nodes are stopped.
    mounts: Mutex<BTreeMap<NodeId, faultfs::Mount>>,
}

impl KvsDb {
    /// Lays the cluster out on free ports, starts the proxies, points every node's peer routes
    /// and advertised client address at them, starts the nodes and waits until every shard has
    /// a leader (at most `ready_timeout`).
    ///
    /// # Errors
    /// Ports, proxies or processes could not be set up, or the cluster did not become ready.
    pub async fn start(options: KvsOptions, ready_timeout: Duration) -> anyhow::Result<KvsDb> {
        let mut local = LocalClusterOptions::new(options.bin.clone(), options.dir.clone());
        let defaults = ClusterConfig::local(1, 1, 1, 7000, PathBuf::from("."))?;
        local.node_count = options.node_count;
        local.shard_count = options.shard_count;
        local.replica_count = options.replica_count;
        local.tick_ms = defaults.tick_ms;
        local.heartbeat_ticks = defaults.heartbeat_ticks;
        local.election_ticks = defaults.election_ticks;
        local.snapshot_log_entries_max = options.snapshot_log_entries_max;
        local.extra_args = options.extra_args.clone();
        local.node_args = options.node_args.clone();
        let (mut config, ports) = LocalCluster::layout(&local)?;
        let addrs: Vec<NodeAddrs> = config
            .nodes
            .iter()
            .map(|n| NodeAddrs {
                id: n.id,
                client: n.client_addr,
                peer: n.peer_addr,
            })
            .collect();
        let network = Arc::new(
            Network::start(&addrs, options.seed)
                .await
                .context("starting the proxies")?,
        );
        crate::network::route_through(&mut config, &network);
        // Mounted before the nodes start; if the start fails, dropping `mounts` (after the
        // cluster, declared later) unmounts them.
        let mut mounts = BTreeMap::new();
        if options.disk_faults {
            faultfs::available().map_err(|e| anyhow::anyhow!("the disk fault needs FUSE: {e}"))?;
            // A harness killed with SIGKILL cannot unmount: clear what such runs left.
            for dead in faultfs::clear_dead_mounts() {
                eprintln!(
                    "harness: removed a dead faultfs mount left by an earlier run: {}",
                    dead.display()
                );
            }
            for n in &config.nodes {
                let backing = options.dir.join("disk").join(format!("node-{}", n.id));
                let mountpoint = config.data_dir_for(n.node_id());
                for d in [&backing, &mountpoint] {
                    std::fs::create_dir_all(d)
                        .with_context(|| format!("creating {}", d.display()))?;
                }
                let mount =
                    faultfs::Mount::mount(&backing, &mountpoint, faultfs::Options::default())
                        .with_context(|| format!("mounting node {}'s data dir", n.id))?;
                mounts.insert(n.id, mount);
            }
        }
        let mut cluster = LocalCluster::start_with_config(local, config.clone(), ports)?;
        cluster
            .wait_ready(ready_timeout)
            .await
            .context("the cluster did not become ready")?;
        // Readiness counts only the nodes that run: one that could not start is a failed setup,
        // not a crash to find later.
        for i in 0..config.nodes.len() {
            if let Some(status) = cluster.wait_exit(i, Duration::ZERO) {
                let log = std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                anyhow::bail!(
                    "node {} exited at start ({status}); its log ends with:\n{}",
                    config.nodes[i].id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        Ok(KvsDb {
            cluster: Mutex::new(cluster),
            network,
            config,
            paused: Mutex::new(BTreeSet::new()),
            exits: Mutex::new(Vec::new()),
            observer: ClusterClient::new(
                Vec::new(),
                ClientOptions {
                    op_timeout: Duration::from_millis(300),
                    connect_timeout: Duration::from_millis(200),
                    ..ClientOptions::default()
                },
            ),
            mounts: Mutex::new(mounts),
        })
    }

    /// With disk faults, each node's filesystem counters (writes, syncs, unsynced bytes...).
    #[must_use]
    pub fn disk_stats(&self) -> Option<serde_json::Value> {
        let mounts = self.mounts.lock().expect("mounts lock");
        (!mounts.is_empty()).then(|| {
            serde_json::json!(mounts
                .iter()
                .map(|(n, m)| (n.to_string(), serde_json::json!(m.stats())))
                .collect::<serde_json::Map<String, serde_json::Value>>())
        })
    }

    /// The cluster's configuration (as written to `cluster.yaml`).
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The proxies.
    #[must_use]
    pub fn network(&self) -> Arc<Network> {
        self.network.clone()
    }

    fn index(&self, node: NodeId) -> anyhow::Result<usize> {
        self.config
            .nodes
            .iter()
            .position(|n| n.id == node)
            .with_context(|| format!("node {node} is not in the cluster"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalCluster> {
        self.cluster.lock().expect("cluster lock")
    }

    /// Reaps node `i` if it exited by itself, and records why.
    fn note_exit(&self, cluster: &mut LocalCluster, i: usize) {
        if cluster.pid(i).is_none() {
            return;
        }
        if let Some(status) = cluster.wait_exit(i, Duration::ZERO) {
            let node = self.config.nodes[i].id;
            self.network.set_down(node, true);
            self.paused.lock().expect("paused lock").remove(&node);
            self.exits
                .lock()
                .expect("exits lock")
                .push((node, status.to_string()));
        }
    }
}

impl Db for KvsDb {
    fn nodes(&self) -> Vec<NodeId> {
        self.config.nodes.iter().map(|n| n.id).collect()
    }

    fn client_endpoints(&self) -> Vec<(NodeId, SocketAddr)> {
        self.network.client_endpoints()
    }

    fn kill(&self, node: NodeId) -> anyhow::Result<Option<u32>> {
        let i = self.index(node)?;
        let mut cluster = self.lock();
        // A node that already exited by itself is a finding, not a kill.
        self.note_exit(&mut cluster, i);
        let pid = cluster.pid(i);
        cluster.kill(i);
        self.paused.lock().expect("paused lock").remove(&node);
        self.network.set_down(node, true);
        Ok(pid)
    }

    fn start(&self, node: NodeId) -> anyhow::Result<u32> {
        let i = self.index(node)?;
        let mut cluster = self.lock();
        cluster.start_node(i)?;
        self.network.set_down(node, false);
        cluster.pid(i).context("the node exited at once")
    }

    fn pause(&self, node: NodeId) -> Option<u32> {
        let i = self.index(node).ok()?;
        let cluster = self.lock();
        let pid = cluster.pid(i)?;
        cluster.signal(i, nix::sys::signal::Signal::SIGSTOP);
        self.paused.lock().expect("paused lock").insert(node);
        Some(pid)
    }

    fn resume(&self, node: NodeId) -> Option<u32> {
        let i = self.index(node).ok()?;
        let cluster = self.lock();
        let pid = cluster.pid(i)?;
        cluster.signal(i, nix::sys::signal::Signal::SIGCONT);
        self.paused.lock().expect("paused lock").remove(&node);
        Some(pid)
    }

    fn is_running(&self, node: NodeId) -> bool {
        self.index(node).is_ok_and(|i| self.lock().is_running(i))
    }

    fn is_paused(&self, node: NodeId) -> bool {
        self.paused.lock().expect("paused lock").contains(&node)
    }

    fn leaders(&self) -> BoxFuture<'_, LeaderSample> {
        Box::pin(async move {
            let asks = self.config.nodes.iter().map(|n| async move {
                (
                    n.id,
                    kvs::status::info_raft(&self.observer, n.client_addr).await,
                )
            });
            let mut sample = LeaderSample::default();
            for (node, lines) in join_all(asks).await {
                let Some(lines) = lines else {
                    sample.unreachable.push(node);
                    continue;
                };
                for line in lines.iter().filter(|l| l.is_leader()) {
                    let term = line
                        .fields
                        .get("term")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    sample.claims.push(Claim {
                        shard: line.shard,
                        node,
                        term,
                    });
                }
            }
            sample.claims.sort_by_key(|c| (c.shard, c.node));
            sample
        })
    }

    fn probe_keys(&self) -> Vec<String> {
        let Ok(map) = self.config.shard_map() else {
            return Vec::new();
        };
        let mut keys: Vec<Option<String>> = vec![None; map.shard_count() as usize];
        let mut missing = keys.len();
        for i in 0u64.. {
            if missing == 0 {
                break;
            }
            let key = format!("probe-{i}");
            let shard = map.shard_of_key(key.as_bytes()).0 as usize;
            if keys[shard].is_none() {
                keys[shard] = Some(key);
                missing -= 1;
            }
        }
        keys.into_iter().flatten().collect()
    }

    fn log_paths(&self) -> Vec<(NodeId, PathBuf)> {
        let cluster = self.lock();
        (0..self.config.nodes.len())
            .map(|i| (self.config.nodes[i].id, cluster.log_path(i)))
            .collect()
    }

    fn exited(&self) -> Vec<(NodeId, String)> {
        {
            let mut cluster = self.lock();
            for i in 0..self.config.nodes.len() {
                self.note_exit(&mut cluster, i);
            }
        }
        std::mem::take(&mut *self.exits.lock().expect("exits lock"))
    }

    fn lose_unsynced(&self, node: NodeId, torn: Option<u64>) -> anyhow::Result<serde_json::Value> {
        let i = self.index(node)?;
        anyhow::ensure!(
            !self.lock().is_running(i),
            "node {node} still runs: a disk loses unsynced writes only when its node is killed"
        );
        let mounts = self.mounts.lock().expect("mounts lock");
        let mount = mounts
            .get(&node)
            .with_context(|| format!("node {node}'s data is not on the fault filesystem"))?;
        Ok(serde_json::json!(mount.lose_unsynced(torn)))
    }

    fn teardown(&self) {
        self.lock().stop_all();
        self.paused.lock().expect("paused lock").clear();
        self.network.close();
        // The nodes are gone: nothing holds the mounts.
        let mounts = std::mem::take(&mut *self.mounts.lock().expect("mounts lock"));
        for (node, mount) in mounts {
            if let Err(e) = mount.unmount() {
                tracing::warn!("unmounting node {node}'s data dir: {e}");
            }
        }
    }
}

/// Awaits every future, concurrently, in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    // Polled together: each awaits its own I/O; a sequential await would add their latencies.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(
        results
            .into_iter()
            .map(|r| r.expect("every future finished")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::{Claim, LeaderSample};
    use std::collections::BTreeMap;

    fn sample(claims: &[(u32, u64, u64)]) -> LeaderSample {
        LeaderSample {
            claims: claims
                .iter()
                .map(|&(shard, node, term)| Claim { shard, node, term })
                .collect(),
            unreachable: Vec::new(),
        }
    }

    #[test]
    fn two_leaders_in_one_term_are_reported_once_and_other_terms_are_not() {
        let mut seen = BTreeMap::new();
        // A deposed leader in term 3 beside the new one in term 4: normal.
        assert!(sample(&[(0, 1, 3), (0, 2, 4)])
            .election_safety(&mut seen)
            .is_empty());
        assert!(sample(&[(0, 2, 4), (1, 2, 4)])
            .election_safety(&mut seen)
            .is_empty());
        // Later, node 3 claims shard 0 in term 4 too.
        let found = sample(&[(0, 3, 4)]).election_safety(&mut seen);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("shard 0 had two leaders in term 4: nodes 2 and 3"));
        assert!(sample(&[(0, 3, 4), (0, 2, 4)])
            .election_safety(&mut seen)
            .is_empty());
    }
}
