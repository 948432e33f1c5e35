//! The `kvs` binary: the server (`kvs serve`), a config generator, a small client CLI for people,
//! the WAL inspector and the benchmark.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kvs::client::{ClientError, ClientOptions, ClusterClient};
use kvs::config::ClusterConfig;
use kvs::raft::NodeId;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// raftkv's store and its tools.
#[derive(Parser)]
#[command(name = "kvs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster.
    Serve {
        /// The cluster's YAML configuration.
        #[arg(long)]
        config: PathBuf,
        /// This node's id in the configuration.
        #[arg(long)]
        id: u64,
        /// DANGER: plant a bug that breaks one correctness rule (repeatable), only to show that
        /// the harness catches anomalies. `stale-reads` serves reads without ReadIndex.
        #[arg(long = "bug", value_name = "NAME", value_enum)]
        bugs: Vec<kvs::bugs::Bug>,
        /// Exit (SIGKILL) when the thread that started this node exits, provided the parent's
        /// pid is PID; test clusters and the harness use it so that no node outlives them.
        #[arg(long, value_name = "PID")]
        exit_with_parent: Option<i32>,
    },
    /// Print a ready configuration for a local cluster.
    ClusterConfig {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Number of shards.
        #[arg(long, default_value_t = 8)]
        shards: u32,
        /// Replicas per shard.
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Client ports are derived from this base (see the printed file).
        #[arg(long, default_value_t = 7000)]
        port_base: u16,
        /// The data directory (one sub-directory per node).
        #[arg(long, default_value = "./data")]
        dir: PathBuf,
    },
    /// GET a key.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// SET a key.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// DEL a key.
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Compare-and-set: set KEY to NEW only if it is OLD.
    Cas {
        /// The key.
        key: String,
        /// The value expected.
        old: String,
        /// The value to set.
        new: String,
        #[command(flatten)]
        target: Target,
    },
    /// Every shard's leader, term and commit index, and which nodes are unreachable.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Benchmark a 3-node cluster on loopback with fsync on.
    Bench(kvs::bench::BenchArgs),
    /// Inspect a node's write-ahead log.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Print every record and the recovery verdict; exit 1 when the log is corrupt.
    Dump {
        /// The node's data directory (or its `wal/` directory).
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct Target {
    /// Any node's client address (host:port); the rest is learned from it.
    #[arg(long, default_value = "127.0.0.1:7000")]
    cluster: String,
}

impl Target {
    fn client(&self) -> anyhow::Result<ClusterClient> {
        let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&self.cluster)
            .with_context(|| format!("--cluster {}: not a host:port", self.cluster))?
            .collect();
        Ok(ClusterClient::new(addrs, ClientOptions::default()))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A node's configuration says how many I/O threads it runs, so it is read first.
    let mut node_config = None;
    if let Command::Serve {
        exit_with_parent: Some(parent),
        ..
    } = &cli.command
    {
        // Asked for first, then checked: the parent may have exited before the request.
        let asked = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        if asked.is_err() || nix::unistd::getppid().as_raw() != *parent {
            eprintln!("kvs: the parent process {parent} is gone (or cannot be watched); exiting");
            return ExitCode::from(2);
        }
    }
    if let Command::Serve { config, .. } = &cli.command {
        match ClusterConfig::load(config) {
            Ok(c) => {
                node_config = Some(c);
            }
            Err(e) => {
                eprintln!("kvs: configuration {}: {e:#}", config.display());
                return ExitCode::from(2);
            }
        }
    }
    // One I/O thread: the node is one event loop (its driver runs on it too, see
    // `node::serve`); more: a pool of that many threads.
    let mut builder = match node_config.as_ref().and_then(|c| c.io_threads) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kvs: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli, node_config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kvs: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli, node_config: Option<ClusterConfig>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { id, bugs, .. } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .init();
            let config = node_config.expect("a node's configuration is loaded before the runtime");
            kvs::node::serve(
                config,
                NodeId(id),
                kvs::node::ServeOptions {
                    bugs: bugs.into_iter().collect(),
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ClusterConfig {
            nodes,
            shards,
            replicas,
            port_base,
            dir,
        } => {
            let config = ClusterConfig::local(nodes, shards, replicas, port_base, dir)?;
            print!("{}", config.to_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { key, target } => {
            let v = target.client()?.get(key.as_bytes()).await;
            report(v.map(|v| match v {
                Some(b) => String::from_utf8_lossy(&b).into_owned(),
                None => "(nil)".into(),
            }))
        }
        Command::Set { key, value, target } => report(
            target
                .client()?
                .set(key.as_bytes(), value.as_bytes())
                .await
                .map(|()| "OK".to_string()),
        ),
        Command::Del { key, target } => report(
            target
                .client()?
                .del(key.as_bytes())
                .await
                .map(|n| format!("(integer) {n}")),
        ),
        Command::Cas {
            key,
            old,
            new,
            target,
        } => report(
            target
                .client()?
                .cas(key.as_bytes(), old.as_bytes(), new.as_bytes())
                .await
                .map(|ok| if ok { "OK" } else { "(nil) value differs" }.to_string()),
        ),
        Command::Status { target } => {
            let client = target.client()?;
            let text = kvs::status::cluster_status(&client, &target.cluster).await?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            kvs::bench::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Wal {
            command: WalCommand::Dump { dir },
        } => {
            let verdict = kvs::storage::dump(&dir, &mut std::io::stdout().lock())?;
            Ok(
                if matches!(verdict, kvs::storage::DumpVerdict::Corruption { .. }) {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
    }
}

/// Prints a client result; exit 0 on success, 1 on a definite failure or server error, 3 when
/// the outcome is unknown.
fn report(result: Result<String, ClientError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(s) => {
            println!("{s}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ClientError::Unknown(_)) => {
            eprintln!("{e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}
