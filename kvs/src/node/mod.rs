//! The node: one `kvs serve` process hosting many Raft groups (multi-Raft).
//!
//! - `driver.rs`: the loop that steps every group and owns the state machines.
//! - `wal_worker.rs`: the thread that writes and syncs the WAL (group commit), and the one that
//!   saves snapshots.
//! - `transport.rs` and `wire.rs`: peer connections and their frame format.
//! - `view.rs`: what the driver publishes for the client-facing server.
//!
//! Threads: the runtime's `io_threads` run the connections' tasks; the driver is a task on
//! that same thread when there is one (the node is then one event loop, and handing the driver
//! a request wakes no other thread), or has a thread of its own beside a pool; the WAL and the
//! snapshot saver each have a thread, so the loop never waits for the disk.
//!
//! A request's path: its connection's task parses it and hands it to the driver; the driver
//! proposes it, writes AppendEntries to the peers' sockets itself, hands the entries to the WAL
//! thread, and, once the entry commits, writes the answer to the client's socket itself.
//! Sockets are written without waiting (what a socket does not take at once is left to the
//! connection's task), so the driver never blocks on a slow peer or client, and an answer or a
//! message costs no extra thread wake-up on this side. On this 2-core machine each thread hop
//! costs about as much as the work it carries, which is why they are avoided.
//!
//! This module is the runtime edge: it owns sockets, files, threads and the clock, and feeds the
//! pure Raft core, state machines and codecs.

pub mod driver;
pub mod transport;
pub mod view;
pub mod wal_worker;
pub mod wire;

use crate::api::server::{self, ServerContext};
use crate::bugs::{Bug, BugSet};
use crate::config::ClusterConfig;
use crate::raft::{self, NodeId, Restored};
use crate::storage::{recover_group, GroupId, RecoveredGroup, SnapshotStore, Wal, WalOptions};
use anyhow::Context as _;
use driver::{Driver, DriverConfig, DriverInput, Group};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use view::NodeView;

/// Switches for `kvs serve` beyond the cluster configuration.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Planted bugs (`--bug NAME`), each breaking one correctness rule on purpose so the harness
    /// can show that it catches real anomalies; empty normally. See [`crate::bugs`].
    pub bugs: BugSet,
}

/// The capacity of the driver's inbox (peer batches and client operations).
pub const DRIVER_INBOX_MAX: usize = 65_536;

/// A fingerprint of the cluster layout, exchanged in the peer handshake.
fn cluster_tag(config: &ClusterConfig) -> u64 {
    // FNV-1a over the layout: nodes, shard count, replica count.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for n in &config.nodes {
        eat(n.id);
    }
    eat(config.shard_count as u64);
    eat(config.replica_count as u64);
    h
}

/// Says loudly, on stderr and in the log, which planted bugs are on and the rule each breaks.
fn warn_planted_bugs(me: NodeId, bugs: BugSet) {
    if bugs.is_empty() {
        return;
    }
    tracing::warn!(
        node = me.0,
        bugs = %bugs,
        "UNSAFE: planted bugs are on; this node breaks correctness rules on purpose"
    );
    eprintln!(
        "kvs: WARNING: planted bugs are on ({bugs}); this node is NOT correct. Use it only to \
         test the checker."
    );
    for b in bugs.iter() {
        tracing::warn!(
            node = me.0,
            bug = b.name(),
            rule = b.rule(),
            "planted bug on"
        );
        eprintln!("kvs: WARNING: --bug {b} breaks the rule: {}", b.rule());
    }
}

/// Runs node `me` of `config` until SIGTERM or Ctrl-C.
///
/// # Errors
/// The data directory cannot be opened or is corrupt, a listen address cannot be bound, or the
/// WAL fails while running; the message says which.
pub async fn serve(config: ClusterConfig, me: NodeId, options: ServeOptions) -> anyhow::Result<()> {
    let node = config
        .node(me)
        .with_context(|| format!("node {} is not in the configuration", me.0))?
        .clone();
    let bugs = options.bugs;
    warn_planted_bugs(me, bugs);
    let dir = config.data_dir_for(me);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let mut wal = Wal::open(
        &dir.join("wal"),
        WalOptions {
            fsync: config.fsync,
            bug_skip_fsync: bugs.contains(Bug::SkipFsync),
            ..WalOptions::default()
        },
    )
    .with_context(|| format!("opening the write-ahead log in {}", dir.display()))?;
    // PLANTED BUG `skip-fsync` also saves snapshots without their fsyncs (file and directory).
    let snapshot_fsync = config.fsync && !bugs.contains(Bug::SkipFsync);
    let snapshots = SnapshotStore::open(&dir.join("snapshots"), snapshot_fsync)
        .with_context(|| format!("opening the snapshots in {}", dir.display()))?;

    let shard_map = config.shard_map().context("placing the shards")?;
    let seed_base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);

    let mut groups = BTreeMap::new();
    for shard in shard_map.shards_of_node(me) {
        let info = shard_map.shard(shard);
        let group = GroupId(u64::from(info.id.0));
        let RecoveredGroup {
            hard_state,
            snapshot,
            entries,
        } = recover_group(&mut wal, &snapshots, group)
            .with_context(|| format!("recovering shard {}", info.id.0))?;
        let fresh =
            hard_state == raft::HardState::default() && entries.is_empty() && snapshot.is_none();
        let mut raft_config = raft::Config::new(
            me,
            info.replicas.clone(),
            seed_base ^ (me.0 << 40) ^ u64::from(info.id.0),
        );
        raft_config.election_ticks = config.election_ticks;
        raft_config.heartbeat_ticks = config.heartbeat_ticks;
        raft_config.bugs = bugs;
        let mut g = Group::new(
            info.id,
            raft_config,
            Restored {
                hard_state,
                snapshot,
                entries,
            },
            info.preferred_leader,
        )?;
        // A new cluster: the preferred replica campaigns at once, so that leaders start out
        // spread over the nodes instead of wherever the first timeout fires (when its peers
        // are not up yet, leader balancing hands the shard over later).
        if fresh && info.preferred_leader == me {
            g.raw_mut().campaign();
        }
        groups.insert(info.id, g);
    }
    // recover_group may have appended a fix-up (a snapshot recorded after a crash between
    // saving it and logging it): make it durable before anything is served.
    wal.sync()
        .context("syncing the recovered write-ahead log")?;
    tracing::info!(node = me.0, shards = groups.len(), "recovered; starting");

    let client_listener = tokio::net::TcpListener::bind(node.client_addr)
        .await
        .with_context(|| format!("binding the client address {}", node.client_addr))?;
    let peer_listener = tokio::net::TcpListener::bind(node.peer_addr)
        .await
        .with_context(|| format!("binding the peer address {}", node.peer_addr))?;

    let tag = cluster_tag(&config);
    let routes: BTreeMap<NodeId, std::net::SocketAddr> = config
        .nodes
        .iter()
        .filter(|n| n.id != me.0)
        .filter_map(|n| Some((NodeId(n.id), config.route_to(me, NodeId(n.id))?)))
        .collect();
    let transport = transport::Transport::start(me, tag, routes);
    let transport_stats = transport.stats.clone();
    let (inbox_tx, inbox_rx) = tokio::sync::mpsc::channel(DRIVER_INBOX_MAX);
    let remote_leaders = transport::RemoteLeaders::default();
    tokio::spawn(transport::accept_loop(
        peer_listener,
        tag,
        inbox_tx.clone(),
        transport.stats.clone(),
        remote_leaders.clone(),
    ));

    let view = Arc::new(RwLock::new(NodeView::default()));
    let driver_config = DriverConfig {
        me,
        tick: Duration::from_millis(config.tick_ms),
        heartbeat_ticks: config.heartbeat_ticks,
        election_ticks: config.election_ticks,
        balance_leaders: config.balance_leaders,
        snapshot_log_entries_max: config.snapshot_log_entries_max,
        write_timeout: Duration::from_millis(config.tick_ms * u64::from(config.election_ticks) * 4),
        read_timeout: Duration::from_millis(config.tick_ms * u64::from(config.election_ticks) * 2),
        bugs,
        round_inputs_max: 4096,
    };
    let (wal_jobs, wal_rx) = std::sync::mpsc::channel();
    let (snapshot_jobs, snapshot_rx) = std::sync::mpsc::channel();
    let snapshotter = {
        let store = snapshots.clone();
        let wal_jobs = wal_jobs.clone();
        let inbox = inbox_tx.clone();
        std::thread::Builder::new()
            .name(format!("kvs-snap-{}", me.0))
            .spawn(move || wal_worker::run_snapshotter(store, snapshot_rx, wal_jobs, inbox))
            .context("starting the snapshot thread")?
    };
    let worker_inbox = inbox_tx.clone();
    let wal_thread = std::thread::Builder::new()
        .name(format!("kvs-wal-{}", me.0))
        .spawn(move || wal_worker::run(wal, snapshots, wal_rx, worker_inbox))
        .context("starting the WAL thread")?;
    let driver = Driver::new(
        driver_config,
        groups,
        wal_jobs,
        snapshot_jobs,
        transport,
        view.clone(),
    );
    let driver_done = spawn_driver(driver, inbox_rx, me)?;

    let ctx = Arc::new(ServerContext {
        me,
        config: config.clone(),
        shard_map,
        view,
        inbox: inbox_tx.clone(),
        planted_bugs: bugs,
        connections: AtomicUsize::new(0),
        remote_leaders,
        started: std::time::Instant::now(),
        transport_stats,
    });
    tokio::spawn(server::accept_loop(client_listener, ctx));
    tracing::info!(
        node = me.0,
        client = %node.client_addr,
        peer = %node.peer_addr,
        "serving"
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::pin!(driver_done);
    tokio::select! {
        _ = term.recv() => tracing::info!(node = me.0, "SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!(node = me.0, "Ctrl-C: shutting down"),
        joined = &mut driver_done => {
            return match joined {
                Ok(result) => result.context("the driver stopped"),
                Err(_) => Err(anyhow::anyhow!("the driver panicked")),
            };
        }
    }
    let _ = inbox_tx.send(DriverInput::Shutdown).await;
    let result = match driver_done.await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("the driver panicked")),
    };
    // The driver is gone, so the WAL thread's job queue is closed: it finishes what it was
    // given and stops.
    drop(inbox_tx);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = snapshotter.join();
        wal_thread.join()
    })
    .await;
    result
}

/// Starts the driver. On a runtime with one thread (what `kvs cluster-config` gives nodes that
/// share a machine with few cores) the driver is a task on that thread, beside the connections' tasks: a request
/// or a peer's batch reaches it without waking another thread. On a runtime with several
/// threads it gets a thread of its own, since a round would otherwise hold up the tasks queued
/// behind it on a worker.
fn spawn_driver(
    driver: Driver,
    inbox: driver::Inbox,
    me: NodeId,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        tracing::info!(node = me.0, "the driver runs on the I/O thread");
        tokio::spawn(async move {
            let _ = done_tx.send(driver.run(inbox).await);
        });
    } else {
        tracing::info!(node = me.0, "the driver runs on a thread of its own");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("starting the driver's runtime")?;
        std::thread::Builder::new()
            .name(format!("kvs-driver-{}", me.0))
            .spawn(move || {
                let _ = done_tx.send(runtime.block_on(driver.run(inbox)));
            })
            .context("starting the driver thread")?;
    }
    Ok(done_rx)
}
