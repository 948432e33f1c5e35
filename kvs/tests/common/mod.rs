//! Shared helpers of the process-level integration tests: start a cluster of the real `kvs`
//! binary on free ports, find shard leaders, talk raw RESP.

#![allow(dead_code, missing_docs)]

use kvs::api::frame::{Frame, FrameLimits};
use kvs::client::{ClientOptions, ClusterClient};
use kvs::local::{LocalCluster, LocalClusterOptions};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ticks of 20 ms, election timeout 10..20 ticks: 200–400 ms.
pub const TICK_MS: u64 = 20;
pub const ELECTION_TICKS: u32 = 10;

pub fn election_timeout_max() -> Duration {
    Duration::from_millis(TICK_MS * u64::from(ELECTION_TICKS) * 2)
}

pub struct TestCluster {
    pub cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.cluster
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.cluster.stop_all();
        if std::thread::panicking() {
            // Keep the logs where a person can read them.
            let keep = self._dir.path().to_path_buf();
            eprintln!("test failed; node logs:");
            for i in 0..self.cluster.config.nodes.len() {
                let log = self.cluster.log_path(i);
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!("--- {} (last 40 lines)", log.display());
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
            let _ = keep;
        }
    }
}

pub async fn start(
    nodes: usize,
    shards: usize,
    snapshot_log_entries_max: u64,
    extra_args: &[&str],
) -> TestCluster {
    start_with(nodes, shards, snapshot_log_entries_max, extra_args, None).await
}

/// As [`start`], with `io_threads` runtime threads per node (`None`: the machine's cores
/// shared among the nodes).
pub async fn start_with(
    nodes: usize,
    shards: usize,
    snapshot_log_entries_max: u64,
    extra_args: &[&str],
    io_threads: Option<usize>,
) -> TestCluster {
    start_tuned(nodes, shards, snapshot_log_entries_max, |options| {
        options.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        options.io_threads = io_threads;
    })
    .await
}

/// As [`start`], with the test's defaults then `tune` applied to the options (e.g. a longer
/// election timeout).
pub async fn start_tuned(
    nodes: usize,
    shards: usize,
    snapshot_log_entries_max: u64,
    tune: impl FnOnce(&mut LocalClusterOptions),
) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix("kvs-it-")
        .tempdir()
        .expect("temp dir");
    let mut options =
        LocalClusterOptions::new(env!("CARGO_BIN_EXE_kvs").into(), dir.path().to_path_buf());
    options.node_count = nodes;
    options.shard_count = shards;
    options.replica_count = nodes.min(3);
    options.tick_ms = TICK_MS;
    options.election_ticks = ELECTION_TICKS;
    options.heartbeat_ticks = 2;
    options.snapshot_log_entries_max = snapshot_log_entries_max;
    tune(&mut options);
    let mut cluster = LocalCluster::start(options).expect("cluster starts");
    cluster
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("every shard elects a leader");
    TestCluster { cluster, _dir: dir }
}

pub fn client(cluster: &LocalCluster) -> ClusterClient {
    cluster.client(ClientOptions {
        op_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    })
}

/// `INFO raft` of node `i`, as (shard, field map) lines; None when the node does not answer.
pub async fn info_raft(cluster: &LocalCluster, i: usize) -> Option<Vec<kvs::status::ShardLine>> {
    let addr = cluster.config.nodes[i].client_addr;
    let reply = tokio::time::timeout(
        Duration::from_millis(500),
        raw_command(addr, &["INFO", "raft"]),
    )
    .await
    .ok()??;
    match reply {
        Frame::Bulk(b) => Some(kvs::status::parse_info_raft(&String::from_utf8_lossy(&b))),
        _ => None,
    }
}

/// The position of the node that leads `shard` in the highest term, among those answering.
pub async fn leader_of(cluster: &LocalCluster, shard: u32) -> Option<(usize, u64)> {
    let mut best: Option<(usize, u64)> = None;
    for i in 0..cluster.config.nodes.len() {
        let Some(lines) = info_raft(cluster, i).await else {
            continue;
        };
        for l in lines {
            if l.shard == shard && l.is_leader() {
                let term: u64 = l.fields["term"].parse().unwrap_or(0);
                if best.is_none_or(|(_, t)| term > t) {
                    best = Some((i, term));
                }
            }
        }
    }
    best
}

/// Waits until some node other than `not` leads `shard`, returning it and how long it took.
pub async fn wait_new_leader(
    cluster: &LocalCluster,
    shard: u32,
    not: usize,
    timeout: Duration,
) -> Option<(usize, Duration)> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some((i, _)) = leader_of(cluster, shard).await {
            if i != not {
                return Some((i, start.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// One command on a fresh connection; None when the node cannot be reached.
pub async fn raw_command(addr: SocketAddr, args: &[&str]) -> Option<Frame> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let mut out = bytes::BytesMut::new();
    Frame::Array(
        args.iter()
            .map(|a| Frame::Bulk(bytes::Bytes::copy_from_slice(a.as_bytes())))
            .collect(),
    )
    .encode(&mut out);
    s.write_all(&out).await.ok()?;
    read_frame(&mut s, &mut bytes::BytesMut::new()).await
}

pub async fn read_frame(s: &mut TcpStream, buf: &mut bytes::BytesMut) -> Option<Frame> {
    loop {
        if let Ok(Some(f)) = Frame::parse(buf, &FrameLimits::default()) {
            return Some(f);
        }
        match s.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Writes raw bytes and reads everything the server sends until it closes or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// SIGKILLs every node, starts them all again on their data and waits until the cluster is
/// ready.
pub async fn restart_all(c: &mut TestCluster) {
    let n = c.config.nodes.len();
    for i in 0..n {
        c.kill(i);
    }
    for i in 0..n {
        c.start_node(i).expect("restart");
    }
    c.wait_ready(Duration::from_secs(20))
        .await
        .expect("ready again");
}
