//! A cluster of real `kvs serve` processes on loopback, for the integration tests, `kvs bench`
//! and people trying the store: free ports, one data dir and one log file per node, and the
//! faults a test needs (SIGKILL and restart, SIGSTOP and SIGCONT). Every process is killed when
//! the cluster is dropped.

use crate::client::{ClientOptions, ClusterClient};
use crate::config::ClusterConfig;
use crate::raft::NodeId;
use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a local cluster looks like.
#[derive(Clone, Debug)]
pub struct LocalClusterOptions {
    /// The `kvs` binary to run.
    pub bin: PathBuf,
    /// Where configs, data and logs go.
    pub dir: PathBuf,
    /// Number of nodes.
    pub node_count: usize,
    /// Number of shards.
    pub shard_count: usize,
    /// Replicas per shard.
    pub replica_count: usize,
    /// fsync the WAL (on in production and benchmarks).
    pub fsync: bool,
    /// Length of one tick in milliseconds.
    pub tick_ms: u64,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: u32,
    /// Minimum election timeout in ticks.
    pub election_ticks: u32,
    /// Log entries after which a group snapshots.
    pub snapshot_log_entries_max: u64,
    /// Extra arguments for every `kvs serve`.
    pub extra_args: Vec<String>,
    /// Extra arguments for one node's `kvs serve` only, by node id (after `extra_args`).
    pub node_args: BTreeMap<u64, Vec<String>>,
    /// I/O threads per node; `None` shares the machine's cores among the nodes.
    pub io_threads: Option<usize>,
}

impl LocalClusterOptions {
    /// Three nodes, one shard, three replicas, fast ticks, fsync on.
    #[must_use]
    pub fn new(bin: PathBuf, dir: PathBuf) -> LocalClusterOptions {
        LocalClusterOptions {
            bin,
            dir,
            node_count: 3,
            shard_count: 1,
            replica_count: 3,
            fsync: true,
            tick_ms: 20,
            heartbeat_ticks: 2,
            election_ticks: 10,
            snapshot_log_entries_max: 10_000,
            extra_args: Vec::new(),
            node_args: BTreeMap::new(),
            io_threads: None,
        }
    }
}

/// A running local cluster.
pub struct LocalCluster {
    /// The configuration every node was started with.
    pub config: ClusterConfig,
    /// Where that configuration is written.
    pub config_path: PathBuf,
    options: LocalClusterOptions,
    procs: Vec<Option<Child>>,
    /// Keeps the nodes' ports from being handed to anyone else while a node is down.
    _ports: PortReservation,
}

/// Ports on 127.0.0.1 held for nodes that will listen on them. Each is bound (not listening)
/// with `SO_REUSEADDR`, so the kernel never hands it out for another socket's port 0 and other
/// binds of it fail, while a node (whose listeners also set `SO_REUSEADDR`, as tokio's do) can
/// bind and listen on it. Without the hold, a port found free and released could be taken by
/// anything that binds port 0 in between (a proxy, another test's cluster) before the node
/// starts, and the node would exit with "address in use".
#[derive(Debug)]
pub struct PortReservation {
    sockets: Vec<tokio::net::TcpSocket>,
    ports: Vec<u16>,
}

impl PortReservation {
    /// Reserves `n` distinct free ports.
    ///
    /// # Errors
    /// A socket could not be made or bound.
    pub fn new(n: usize) -> std::io::Result<PortReservation> {
        let mut sockets = Vec::with_capacity(n);
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            ports.push(socket.local_addr()?.port());
            sockets.push(socket);
        }
        Ok(PortReservation { sockets, ports })
    }

    /// The reserved ports, in order.
    #[must_use]
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Reserves nothing (for a cluster whose ports are someone else's business).
    #[must_use]
    pub fn none() -> PortReservation {
        PortReservation {
            sockets: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// How many ports are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// Finds `n` distinct free TCP ports on 127.0.0.1 by binding port 0 (all held at once, so the
/// kernel cannot hand out the same port twice), then releasing them.
///
/// # Errors
/// Binding failed.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl LocalCluster {
    /// Writes the configuration and starts every node.
    ///
    /// # Errors
    /// The directory, ports or processes could not be set up.
    pub fn start(options: LocalClusterOptions) -> anyhow::Result<LocalCluster> {
        let (config, ports) = LocalCluster::layout(&options)?;
        LocalCluster::start_with_config(options, config, ports)
    }

    /// The configuration [`LocalCluster::start`] would use: every node on 127.0.0.1 with free
    /// client and peer ports (held by the returned reservation until the cluster is dropped),
    /// and the options' timings. A caller may change it (route peers through proxies, advertise
    /// another client address) before [`LocalCluster::start_with_config`].
    ///
    /// # Errors
    /// No free ports, or the options make an invalid configuration.
    pub fn layout(
        options: &LocalClusterOptions,
    ) -> anyhow::Result<(ClusterConfig, PortReservation)> {
        let mut config = ClusterConfig::local(
            options.node_count as u64,
            options.shard_count as u32,
            options.replica_count,
            7000,
            options.dir.join("data"),
        )?;
        let reservation = PortReservation::new(options.node_count * 2)?;
        let ports = reservation.ports();
        for (i, node) in config.nodes.iter_mut().enumerate() {
            node.client_addr = SocketAddr::from(([127, 0, 0, 1], ports[2 * i]));
            node.peer_addr = SocketAddr::from(([127, 0, 0, 1], ports[2 * i + 1]));
        }
        config.fsync = options.fsync;
        config.tick_ms = options.tick_ms;
        config.heartbeat_ticks = options.heartbeat_ticks;
        config.election_ticks = options.election_ticks;
        config.snapshot_log_entries_max = options.snapshot_log_entries_max;
        if options.io_threads.is_some() {
            config.io_threads = options.io_threads;
        }
        config.validate().context("the generated configuration")?;
        Ok((config, reservation))
    }

    /// Writes `config` to `<dir>/cluster.yaml` and starts every node with it; `ports` (from
    /// [`LocalCluster::layout`]) stay held while the cluster lives.
    ///
    /// # Errors
    /// The configuration is invalid, or the directory or processes could not be set up.
    pub fn start_with_config(
        options: LocalClusterOptions,
        config: ClusterConfig,
        ports: PortReservation,
    ) -> anyhow::Result<LocalCluster> {
        std::fs::create_dir_all(&options.dir)?;
        config.validate().context("the cluster configuration")?;
        let config_path = options.dir.join("cluster.yaml");
        std::fs::write(&config_path, config.to_yaml())?;
        let mut cluster = LocalCluster {
            procs: (0..config.nodes.len()).map(|_| None).collect(),
            config,
            config_path,
            options,
            _ports: ports,
        };
        for i in 0..cluster.procs.len() {
            cluster.start_node(i)?;
        }
        Ok(cluster)
    }

    /// The id of the node at position `i`.
    #[must_use]
    pub fn id(&self, i: usize) -> NodeId {
        NodeId(self.config.nodes[i].id)
    }

    /// Every node's client address.
    #[must_use]
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.config.nodes.iter().map(|n| n.client_addr).collect()
    }

    /// A client that knows every node.
    #[must_use]
    pub fn client(&self, options: ClientOptions) -> ClusterClient {
        ClusterClient::new(self.client_addrs(), options)
    }

    /// The log file of node `i`.
    #[must_use]
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.options
            .dir
            .join(format!("node-{}.log", self.config.nodes[i].id))
    }

    /// The directory all of the cluster's files are in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// Starts (or restarts) node `i`.
    ///
    /// # Errors
    /// The process could not be spawned.
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let mut command = Command::new(&self.options.bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(self.config.nodes[i].id.to_string())
            // A node must not outlive whoever started it (a test killed by its timeout, a
            // harness stopped by Ctrl-C).
            .arg("--exit-with-parent")
            .arg(std::process::id().to_string())
            .args(&self.options.extra_args)
            .args(
                self.options
                    .node_args
                    .get(&self.config.nodes[i].id)
                    .into_iter()
                    .flatten(),
            )
            .env(
                "RUST_LOG",
                std::env::var("KVS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("spawning {}", self.options.bin.display()))?;
        self.procs[i] = Some(child);
        Ok(())
    }

    /// The process id of node `i`, while it runs (a paused node still has one).
    #[must_use]
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs[i].as_ref().map(Child::id)
    }

    /// SIGKILLs node `i` and waits for it to die.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILLs node `i` and starts it again on the same data dir.
    ///
    /// # Errors
    /// The process could not be spawned.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.start_node(i)
    }

    /// Sends `signal` to node `i` (SIGSTOP, SIGCONT, SIGTERM).
    pub fn signal(&self, i: usize, signal: Signal) {
        if let Some(c) = &self.procs[i] {
            let _ = kill(Pid::from_raw(c.id() as i32), signal);
        }
    }

    /// Waits up to `timeout` for node `i` to exit by itself; its exit status, or `None` if it
    /// is still running (or was not started).
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.procs[i].as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.procs[i] = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True when node `i`'s process is still running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match &mut self.procs[i] {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits until every node that runs reports `cluster_state:ok` (each hosted shard has a
    /// leader) and, when every node runs and leaders are balanced, until each shard is led by
    /// its preferred replica, so that what follows meets a settled cluster.
    ///
    /// # Errors
    /// The cluster did not become ready in `timeout`; the error names the nodes still waiting.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        self.wait_leaders(timeout).await?;
        let all_running = (0..self.procs.len()).all(|i| self.is_running(i));
        if !(all_running && self.config.balance_leaders) {
            return Ok(());
        }
        let shard_map = self.config.shard_map()?;
        let client = self.client(ClientOptions {
            op_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        });
        loop {
            // Which node leads what, one INFO per node.
            let mut led: Vec<(NodeId, u32)> = Vec::new();
            for node in &self.config.nodes {
                for line in crate::status::info_raft(&client, node.client_addr)
                    .await
                    .unwrap_or_default()
                {
                    if line.is_leader() {
                        led.push((NodeId(node.id), line.shard));
                    }
                }
            }
            let unbalanced: Vec<u32> = shard_map
                .shards()
                .iter()
                .filter(|s| !led.contains(&(s.preferred_leader, s.id.0)))
                .map(|s| s.id.0)
                .collect();
            if unbalanced.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "shards {unbalanced:?} are not led by their preferred replicas after {timeout:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_leaders(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let client = self.client(ClientOptions {
            op_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        });
        loop {
            let mut waiting = Vec::new();
            for i in 0..self.procs.len() {
                if !self.is_running(i) {
                    continue;
                }
                let addr = self.config.nodes[i].client_addr;
                let ok = match client.command_at(addr, &[b"CLUSTER", b"INFO"]).await {
                    Ok(crate::api::frame::Frame::Bulk(b)) => {
                        String::from_utf8_lossy(&b).contains("cluster_state:ok")
                    }
                    _ => false,
                };
                if !ok {
                    waiting.push(self.config.nodes[i].id);
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!("nodes {waiting:?} have shards without a leader after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every node with SIGKILL.
    pub fn stop_all(&mut self) {
        for i in 0..self.procs.len() {
            self.signal(i, Signal::SIGCONT);
            self.kill(i);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::PortReservation;

    #[test]
    fn reserved_ports_refuse_other_binds_but_take_a_reuseaddr_listener() {
        let r = PortReservation::new(2).unwrap();
        assert_eq!(r.len(), 2);
        let port = r.ports()[0];
        // A plain bind (no SO_REUSEADDR) is refused; port 0 never hands the port out.
        let plain = socket_bind(port, false);
        assert!(plain.is_err(), "a plain bind got a reserved port");
        for _ in 0..200 {
            let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            assert!(!r.ports().contains(&s.local_addr().unwrap().port()));
        }
        // A node's listener (tokio's sets SO_REUSEADDR) binds, listens and accepts.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            let _c = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            listener.accept().await.unwrap();
        });
    }

    fn socket_bind(port: u16, reuse: bool) -> std::io::Result<tokio::net::TcpSocket> {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.set_reuseaddr(reuse)?;
        s.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
        Ok(s)
    }
    // (`socket_bind(port, true)` is what a node's tokio listener does before it listens.)
}
