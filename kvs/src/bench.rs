//! `kvs bench`: starts a local cluster of real processes (fsync on unless told otherwise), drives
//! it with concurrent clients doing SET then GET of fixed-size values on random keys for a fixed
//! time, and prints ops/s and latency percentiles, for each requested shard count.
//!
//! Each bench client keeps one connection per node and sends every request straight to the
//! leader of the key's shard (from `CLUSTER SHARDS`), pipelining `--pipeline` requests at a time.

use crate::api::frame::{Frame, FrameLimits};
use crate::client::ClientOptions;
use crate::local::{LocalCluster, LocalClusterOptions};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Options of `kvs bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Requests each client keeps in flight.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Seconds of load per phase (SET, then GET).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Shard counts to measure, comma-separated.
    #[arg(long, default_value = "1,8", value_delimiter = ',')]
    pub shards: Vec<usize>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Turn fsync off (the figures are then not comparable with the anchors).
    #[arg(long)]
    pub no_fsync: bool,
    /// Where the cluster's data and logs go (default: a fresh temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Also run `redis-benchmark --cluster` against the cluster when the tool is installed.
    #[arg(long)]
    pub redis_benchmark: bool,
}

/// Results of one phase.
#[derive(Clone, Debug)]
pub struct PhaseResult {
    /// Operations completed successfully.
    pub ops: u64,
    /// Operations answered with an error.
    pub errors: u64,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Latency percentiles in microseconds: p50, p99, p99.9.
    pub latency_us: [u64; 3],
}

impl PhaseResult {
    /// Successful operations per second.
    #[must_use]
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the benchmark and prints its table.
///
/// # Errors
/// The cluster could not be started or never became ready.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let bin = std::env::current_exe()?;
    println!(
        "kvs bench: {} nodes, fsync {}, {} clients, pipeline {}, {}-byte values, {} keys, {} s per phase",
        args.nodes,
        if args.no_fsync { "OFF" } else { "on" },
        args.clients,
        args.pipeline,
        args.value_bytes,
        args.keys,
        args.seconds
    );
    println!(
        "{:<7} {:<5} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "shards", "op", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for &shards in &args.shards {
        let tmp = tempfile::Builder::new().prefix("kvs-bench-").tempdir()?;
        let dir = args.dir.clone().map_or_else(
            || tmp.path().to_path_buf(),
            |d| d.join(format!("shards-{shards}")),
        );
        let mut options = LocalClusterOptions::new(bin.clone(), dir);
        options.node_count = args.nodes;
        options.shard_count = shards;
        options.replica_count = args.nodes.min(3);
        options.fsync = !args.no_fsync;
        options.tick_ms = 50;
        options.heartbeat_ticks = 2;
        options.election_ticks = 10;
        options.snapshot_log_entries_max = 100_000;
        let mut cluster = LocalCluster::start(options)?;
        cluster.wait_ready(Duration::from_secs(30)).await?;
        let client = cluster.client(ClientOptions::default());
        client.refresh_slots_now().await;
        let leaders = Arc::new(client.slot_leaders().await);
        for op in [Op::Set, Op::Get] {
            let r = load(&args, op, leaders.clone()).await;
            println!(
                "{:<7} {:<5} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                shards,
                op.name(),
                r.ops_per_sec(),
                r.latency_us[0] as f64 / 1000.0,
                r.latency_us[1] as f64 / 1000.0,
                r.latency_us[2] as f64 / 1000.0,
                r.errors
            );
        }
        if args.redis_benchmark {
            redis_benchmark(&args, cluster.client_addrs()[0]);
        }
        cluster.stop_all();
    }
    println!(
        "for comparison, the anchors README's figures (this machine type, 100-byte values, every \
         server fsyncs; not measured in this run, see ../shared/anchors to measure them beside \
         these): etcd 3.4 3 members put 50 clients 5,014/s p99 23 ms; linearizable get 4,675/s \
         p99 47 ms; Redis 7 1 node AOF always SET 50 clients 55,417/s P1, 294,551/s P16"
    );
    Ok(())
}

fn redis_benchmark(args: &BenchArgs, addr: SocketAddr) {
    let status = std::process::Command::new("redis-benchmark")
        .args(["--cluster", "-h", &addr.ip().to_string()])
        .args(["-p", &addr.port().to_string()])
        .args(["-c", &args.clients.to_string()])
        .args(["-P", &args.pipeline.to_string()])
        .args(["-d", &args.value_bytes.to_string()])
        .args(["-r", &args.keys.to_string()])
        .args(["-n", "200000", "-t", "set,get", "-q"])
        .status();
    if let Err(e) = status {
        println!("redis-benchmark not run: {e}");
    }
}

/// What a load phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// SET of random keys.
    Set,
    /// GET of random keys.
    Get,
}

impl Op {
    /// `SET` or `GET`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "SET",
            Op::Get => "GET",
        }
    }
}

/// One load phase: `args.clients` clients send `op` for `args.seconds` straight to each key's
/// leader (`leaders`: slot ranges and the address serving each, as [`ClusterClient::slot_leaders`]
/// gives them), pipelining `args.pipeline` requests.
///
/// [`ClusterClient::slot_leaders`]: crate::client::ClusterClient::slot_leaders
pub async fn load(
    args: &BenchArgs,
    op: Op,
    leaders: Arc<Vec<(u16, u16, SocketAddr)>>,
) -> PhaseResult {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let value = Bytes::from(vec![b'x'; args.value_bytes]);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let leaders = leaders.clone();
        let value = value.clone();
        let keys = args.keys;
        let pipeline = args.pipeline.max(1);
        tasks.push(tokio::spawn(async move {
            bench_client(c as u64, op, &leaders, value, keys, pipeline, deadline).await
        }));
    }
    let mut ops = 0;
    let mut errors = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok((o, e, l)) = t.await {
            ops += o;
            errors += e;
            latencies.extend(l);
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            0
        } else {
            latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
        }
    };
    PhaseResult {
        ops,
        errors,
        elapsed,
        latency_us: [pct(0.50), pct(0.99), pct(0.999)],
    }
}

async fn bench_client(
    seed: u64,
    op: Op,
    leaders: &[(u16, u16, SocketAddr)],
    value: Bytes,
    keys: u64,
    pipeline: usize,
    deadline: Instant,
) -> (u64, u64, Vec<u64>) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut conns: HashMap<SocketAddr, (TcpStream, BytesMut)> = HashMap::new();
    let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
    let limits = FrameLimits::default();
    let mut by_node: HashMap<SocketAddr, BytesMut> = HashMap::new();
    let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
    while Instant::now() < deadline {
        by_node.clear();
        counts.clear();
        for _ in 0..pipeline {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = Bytes::from(format!("key:{}", rng % keys));
            let slot = crate::shard::key_slot(&key).0;
            let Some(&(_, _, addr)) = leaders.iter().find(|(s, e, _)| *s <= slot && slot <= *e)
            else {
                errors += 1;
                continue;
            };
            let args = match op {
                Op::Set => vec![
                    Frame::Bulk(Bytes::from_static(b"SET")),
                    Frame::Bulk(key),
                    Frame::Bulk(value.clone()),
                ],
                Op::Get => vec![Frame::Bulk(Bytes::from_static(b"GET")), Frame::Bulk(key)],
            };
            Frame::Array(args).encode(by_node.entry(addr).or_default());
            *counts.entry(addr).or_default() += 1;
        }
        let sent = Instant::now();
        for (addr, out) in &by_node {
            if !conns.contains_key(addr) {
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        conns.insert(*addr, (s, BytesMut::with_capacity(16 * 1024)));
                    }
                    Err(_) => {
                        errors += counts[addr] as u64;
                        continue;
                    }
                }
            }
            let (s, _) = conns.get_mut(addr).expect("connected above");
            if s.write_all(out).await.is_err() {
                conns.remove(addr);
                errors += counts[addr] as u64;
            }
        }
        for (addr, n) in &counts {
            let Some((s, buf)) = conns.get_mut(addr) else {
                continue;
            };
            let mut got = 0;
            while got < *n {
                match Frame::parse(buf, &limits) {
                    Ok(Some(Frame::Error(_))) => {
                        errors += 1;
                        got += 1;
                    }
                    Ok(Some(_)) => {
                        ok += 1;
                        got += 1;
                        latencies.push(sent.elapsed().as_micros() as u64);
                    }
                    Ok(None) => match s.read_buf(buf).await {
                        Ok(0) | Err(_) => {
                            errors += (*n - got) as u64;
                            break;
                        }
                        Ok(_) => {}
                    },
                    Err(_) => {
                        errors += (*n - got) as u64;
                        break;
                    }
                }
            }
            if got < *n {
                conns.remove(addr);
            }
        }
    }
    (ok, errors, latencies)
}
