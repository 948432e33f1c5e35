//! What a link proxy costs: round-trip latency and request/response throughput over loopback,
//! direct and through one proxy of each framing, plus one-way bulk bandwidth. Prints a table and
//! asserts nothing about speed.
//!
//! Then the figure that matters for the harness: a 3-node kvs cluster (8 shards, fsync on) under
//! `kvs bench`'s load (50 clients, SET then GET), direct and with every peer and client link
//! through a proxy, in alternating rounds; the target is at least 75% of direct throughput.
//!
//! Run with `cargo bench -p harness --bench proxy` (about a minute). Each section is an
//! `async fn` that returns table rows.

use bytes::BytesMut;
use harness::net::{Framing, Proxy};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Round trips timed per route for the latency section, after `WARMUP_TRIPS` untimed ones.
const LATENCY_TRIPS: usize = 6000;
const WARMUP_TRIPS: usize = 500;
/// The ping-pong message size.
const SMALL_MESSAGE_BYTES: usize = 32;
/// Concurrent connections, request size and run time of the throughput section.
const THROUGHPUT_CONNECTIONS: usize = 16;
const REQUEST_BYTES: usize = 64;
const THROUGHPUT_RUN: Duration = Duration::from_secs(3);
/// Run time of the bulk section.
const BULK_RUN: Duration = Duration::from_secs(1);
const BULK_WRITE_BYTES: usize = 64 * 1024;
const SEED: u64 = 42;
/// The latency and throughput sections give each route a turn in each of this many rounds.
const ROUNDS: usize = 10;

/// How the client reaches the server.
#[derive(Clone, Copy)]
enum Route {
    Direct,
    /// The least a proxy can do (`tokio::io::copy_bidirectional`, no policy): a yardstick.
    PlainCopy,
    Proxied(Framing),
}

const ROUTES: [Route; 4] = [
    Route::Direct,
    Route::PlainCopy,
    Route::Proxied(Framing::Bytes),
    Route::Proxied(Framing::PeerFrames),
];

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::PlainCopy => "plain copy",
            Route::Proxied(Framing::Bytes) => "proxy (bytes)",
            Route::Proxied(Framing::PeerFrames) => "proxy (frames)",
        }
    }

    /// The address to dial for `server`, and the proxy to keep alive while it is used.
    async fn open(self, server: SocketAddr) -> (SocketAddr, Option<Proxy>) {
        match self {
            Route::Direct => (server, None),
            Route::PlainCopy => (plain_copy_proxy(server).await, None),
            Route::Proxied(framing) => {
                let proxy = Proxy::start(self.label(), server, framing, SEED)
                    .await
                    .expect("start a proxy");
                (proxy.addr(), Some(proxy))
            }
        }
    }
}

/// A printed table: a header row and rows of cells.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn print(&self) {
        let columns = self.header.len();
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |row: &[String]| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, &w))| {
                    if i == 0 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            println!("{}", cells.join("  "));
        };
        line(&self.header);
        println!(
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (columns - 1))
        );
        for row in &self.rows {
            line(row);
        }
    }
}

/// A proxy that only copies bytes both ways; it lives as long as the runtime.
async fn plain_copy_proxy(server: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut up = connect(server).await;
                let _ = down.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    addr
}

/// Echoes whatever each connection sends, until it ends.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Reads and throws away whatever each connection sends, counting the bytes.
async fn discard_server(received: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = BytesMut::with_capacity(256 * 1024);
                loop {
                    buf.clear();
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => received.fetch_add(n as u64, Ordering::Relaxed),
                    };
                }
            });
        }
    });
    addr
}

/// A request that is also one peer-protocol frame, so it can cross a framed proxy.
fn framed_message(bytes: usize) -> Vec<u8> {
    let mut out = ((bytes - 4) as u32).to_be_bytes().to_vec();
    out.resize(bytes, 0xab);
    out
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// A table row: a name, then one cell per route.
fn row(name: &str, cells: impl IntoIterator<Item = String>) -> Vec<String> {
    std::iter::once(name.to_string()).chain(cells).collect()
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Round-trip latency of a small message, one connection per route, one message in flight. The
/// routes take turns in `ROUNDS` rounds, so a neighbour's load on the machine falls on all alike.
async fn latency() -> Vec<Vec<String>> {
    let server = echo_server().await;
    let message = framed_message(SMALL_MESSAGE_BYTES);
    let mut routes = Vec::new();
    for route in ROUTES {
        let (addr, proxy) = route.open(server).await;
        let mut stream = connect(addr).await;
        ping_pong(&mut stream, &message, WARMUP_TRIPS, &mut Vec::new()).await;
        routes.push((stream, proxy, Vec::with_capacity(LATENCY_TRIPS)));
    }
    for _ in 0..ROUNDS {
        for (stream, _, samples) in &mut routes {
            ping_pong(stream, &message, LATENCY_TRIPS / ROUNDS, samples).await;
        }
    }
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for (_, _, samples) in &mut routes {
        samples.sort_unstable();
        p50s.push(percentile(samples, 0.5));
        p99s.push(percentile(samples, 0.99));
    }
    let added = |values: &[Duration]| {
        let direct = values[0];
        values
            .iter()
            .map(|v| micros(v.saturating_sub(direct)))
            .collect::<Vec<_>>()
    };
    vec![
        row("round trip p50 (µs)", p50s.iter().copied().map(micros)),
        row("round trip p99 (µs)", p99s.iter().copied().map(micros)),
        row("added by the proxy, p50 (µs)", added(&p50s)),
        row("added by the proxy, p99 (µs)", added(&p99s)),
    ]
}

/// `trips` round trips of `message`, each one's time pushed onto `samples`.
async fn ping_pong(
    stream: &mut TcpStream,
    message: &[u8],
    trips: usize,
    samples: &mut Vec<Duration>,
) {
    let mut back = vec![0u8; message.len()];
    for _ in 0..trips {
        let started = Instant::now();
        stream.write_all(message).await.unwrap();
        stream.read_exact(&mut back).await.unwrap();
        samples.push(started.elapsed());
    }
}

/// Request/response operations per second over `THROUGHPUT_CONNECTIONS` connections per route,
/// the routes taking turns in `ROUNDS` rounds.
async fn throughput() -> Vec<Vec<String>> {
    let server = echo_server().await;
    let mut routes = Vec::new();
    for route in ROUTES {
        let (addr, proxy) = route.open(server).await;
        let mut streams = Vec::new();
        for _ in 0..THROUGHPUT_CONNECTIONS {
            streams.push(connect(addr).await);
        }
        routes.push((streams, proxy, 0u64));
    }
    let slice = THROUGHPUT_RUN / ROUNDS as u32;
    for _ in 0..ROUNDS {
        for (streams, _, ops) in &mut routes {
            let (back, done) = request_response(std::mem::take(streams), slice).await;
            *streams = back;
            *ops += done;
        }
    }
    let rates: Vec<f64> = routes
        .iter()
        .map(|(_, _, ops)| *ops as f64 / THROUGHPUT_RUN.as_secs_f64())
        .collect();
    vec![
        row(
            &format!("ops/s, {THROUGHPUT_CONNECTIONS} connections"),
            rates.iter().map(|r| format!("{r:.0}")),
        ),
        row(
            "of direct ops/s (%)",
            rates.iter().map(|r| format!("{:.0}", 100.0 * r / rates[0])),
        ),
    ]
}

/// Each stream does request/response as fast as it can for `run`; returns the streams and the
/// operations done.
async fn request_response(streams: Vec<TcpStream>, run: Duration) -> (Vec<TcpStream>, u64) {
    let ops = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let (ops, stop) = (ops.clone(), stop.clone());
            tokio::spawn(async move {
                let request = framed_message(REQUEST_BYTES);
                let mut back = vec![0u8; request.len()];
                while !stop.load(Ordering::Relaxed) {
                    stream.write_all(&request).await.unwrap();
                    stream.read_exact(&mut back).await.unwrap();
                    ops.fetch_add(1, Ordering::Relaxed);
                }
                stream
            })
        })
        .collect();
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    let mut streams = Vec::new();
    for client in clients {
        streams.push(client.await.unwrap());
    }
    (streams, ops.load(Ordering::Relaxed))
}

/// One-way bandwidth of one connection writing as fast as it can.
async fn bulk() -> Vec<Vec<String>> {
    let received = Arc::new(AtomicU64::new(0));
    let server = discard_server(received.clone()).await;
    // A stream of 64 KiB frames, so the framed proxy sees the peer protocol.
    let chunk = framed_message(BULK_WRITE_BYTES);
    let mut rates = Vec::new();
    for route in ROUTES {
        let (addr, _proxy) = route.open(server).await;
        let mut stream = connect(addr).await;
        let before = received.load(Ordering::Relaxed);
        let started = Instant::now();
        while started.elapsed() < BULK_RUN {
            stream.write_all(&chunk).await.unwrap();
        }
        let bytes = received.load(Ordering::Relaxed) - before;
        rates.push(bytes as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    vec![
        row(
            "bulk one way (MB/s)",
            rates.iter().map(|r| format!("{r:.0}")),
        ),
        row(
            "of direct bandwidth (%)",
            rates.iter().map(|r| format!("{:.0}", 100.0 * r / rates[0])),
        ),
    ]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let mut table = Table {
        header: std::iter::once("measure")
            .chain(ROUTES.iter().map(|r| r.label()))
            .map(String::from)
            .collect(),
        rows: Vec::new(),
    };
    runtime.block_on(async {
        table.rows.extend(latency().await);
        table.rows.extend(throughput().await);
        table.rows.extend(bulk().await);
    });
    println!();
    table.print();
    runtime.block_on(kvs_cluster());
    println!(
        "\n{LATENCY_TRIPS} round trips of {SMALL_MESSAGE_BYTES} B per route; \
         {THROUGHPUT_CONNECTIONS} connections of {REQUEST_BYTES} B request/response for \
         {THROUGHPUT_RUN:?}; bulk {BULK_WRITE_BYTES} B writes for {BULK_RUN:?}; \
         2 runtime threads; took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Seconds of load per phase, and rounds of (direct, proxied) in the kvs section.
const KVS_PHASE_SECS: u64 = 5;
const KVS_ROUNDS: usize = 2;

/// A 3-node kvs cluster direct and through proxies, under `kvs bench`'s load.
async fn kvs_cluster() {
    let bin = match harness::kvs_bin::find(None) {
        Ok(b) => b,
        Err(e) => {
            println!("\nkvs cluster section skipped: {e:#}");
            return;
        }
    };
    let args = kvs::bench::BenchArgs {
        clients: 50,
        pipeline: 1,
        seconds: KVS_PHASE_SECS,
        shards: vec![8],
        value_bytes: 100,
        keys: 100_000,
        nodes: 3,
        no_fsync: false,
        dir: None,
        redis_benchmark: false,
    };
    let mut results: Vec<(&str, kvs::bench::Op, kvs::bench::PhaseResult)> = Vec::new();
    for _ in 0..KVS_ROUNDS {
        for proxied in [false, true] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let (cluster, _network) = kvs_start(&bin, dir.path(), proxied).await;
            let client = kvs::client::ClusterClient::new(
                advertised(&cluster.config),
                kvs::client::ClientOptions::default(),
            );
            client.refresh_slots_now().await;
            let leaders = Arc::new(client.slot_leaders().await);
            for op in [kvs::bench::Op::Set, kvs::bench::Op::Get] {
                let r = kvs::bench::load(&args, op, leaders.clone()).await;
                results.push((if proxied { "proxied" } else { "direct" }, op, r));
            }
            drop(cluster);
        }
    }
    println!(
        "\nkvs cluster: 3 nodes, 8 shards x 3 replicas, fsync on, 50 clients, 100-byte values, \
         {KVS_PHASE_SECS} s per phase, {KVS_ROUNDS} alternating rounds"
    );
    println!(
        "{:<9} {:<4} {:>10} {:>8} {:>8} {:>7}",
        "route", "op", "ops/s", "p50 ms", "p99 ms", "errors"
    );
    for (route, op, r) in &results {
        println!(
            "{:<9} {:<4} {:>10.0} {:>8.2} {:>8.2} {:>7}",
            route,
            op.name(),
            r.ops_per_sec(),
            r.latency_us[0] as f64 / 1000.0,
            r.latency_us[1] as f64 / 1000.0,
            r.errors
        );
    }
    for op in [kvs::bench::Op::Set, kvs::bench::Op::Get] {
        let mean = |route: &str| {
            let rates: Vec<f64> = results
                .iter()
                .filter(|(r, o, _)| *r == route && *o == op)
                .map(|(_, _, p)| p.ops_per_sec())
                .collect();
            rates.iter().sum::<f64>() / rates.len().max(1) as f64
        };
        println!(
            "{}: through proxies {:.0}% of direct throughput (target: at least 75%)",
            op.name(),
            100.0 * mean("proxied") / mean("direct").max(1.0)
        );
    }
}

/// Starts the cluster, with every link through a proxy when `proxied`.
async fn kvs_start(
    bin: &std::path::Path,
    dir: &std::path::Path,
    proxied: bool,
) -> (kvs::local::LocalCluster, Option<harness::network::Network>) {
    let mut options = kvs::local::LocalClusterOptions::new(bin.to_path_buf(), dir.to_path_buf());
    options.shard_count = 8;
    options.tick_ms = 50;
    options.heartbeat_ticks = 2;
    options.election_ticks = 10;
    options.snapshot_log_entries_max = 100_000;
    let (mut config, ports) = kvs::local::LocalCluster::layout(&options).expect("a layout");
    let network = if proxied {
        let addrs: Vec<harness::network::NodeAddrs> = config
            .nodes
            .iter()
            .map(|n| harness::network::NodeAddrs {
                id: n.id,
                client: n.client_addr,
                peer: n.peer_addr,
            })
            .collect();
        let network = harness::network::Network::start(&addrs, SEED)
            .await
            .expect("proxies");
        harness::network::route_through(&mut config, &network);
        Some(network)
    } else {
        None
    };
    let mut cluster =
        kvs::local::LocalCluster::start_with_config(options, config, ports).expect("a cluster");
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("a ready cluster");
    (cluster, network)
}

/// Every node's advertised client address (its proxy, when proxied).
fn advertised(config: &kvs::config::ClusterConfig) -> Vec<SocketAddr> {
    config
        .nodes
        .iter()
        .map(kvs::config::NodeConfig::advertised_client_addr)
        .collect()
}
