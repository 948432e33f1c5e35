//! The harness: spawns a kvs cluster, breaks it on purpose and checks the recorded history.
//! Cluster orchestration, proxies and the nemesis are not built yet; this binary says so.

use clap::Parser;

/// Jepsen-style test harness for raftkv.
#[derive(Parser)]
#[command(name = "harness", version, about)]
struct Cli {
    /// The workload: register, set or counter.
    #[arg(long, default_value = "register")]
    workload: String,
    /// Comma-separated faults: partition, kill, pause, slow, none.
    #[arg(long, default_value = "partition")]
    faults: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "harness: the {} workload with faults '{}' cannot run yet: cluster orchestration, proxies \
         and the nemesis are still to be built",
        cli.workload, cli.faults
    );
    std::process::ExitCode::from(2)
}
