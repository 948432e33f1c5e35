//! `harness`: runs a kvs cluster as real processes behind its own proxies, breaks it on purpose,
//! records every operation and judges the history. `harness check DIR` re-judges a stored run.
//!
//! Exit codes (Jepsen's): 0 valid, 1 anomaly found, 2 unknown (the checker gave up, or the
//! history could not be judged), 254 bad arguments, 255 the run could not be carried out.

use clap::{Args, Parser, Subcommand};
use harness::check::{exit_code, CheckBudget};
use harness::client::ReadVia;
use harness::nemesis::parse_faults;
use harness::run::{run, Interrupt};
use harness::selftest::SelftestOptions;
use harness::test::TestSpec;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use workloads::WorkloadKind;

const EXIT_BAD_ARGS: u8 = 254;
const EXIT_COULD_NOT_RUN: u8 = 255;

/// Jepsen-style harness for raftkv: starts a cluster of real `kvs` processes behind TCP proxies,
/// runs a workload while a nemesis injects faults, heals, checks the recorded history for
/// linearizability (or set/counter safety) and writes a results folder.
///
/// `--seed N` replays the same fault schedule and the same op stream; the interleaving of real
/// processes and the network cannot be replayed, so two runs with one seed are alike, not equal.
///
/// Exit codes: 0 valid, 1 anomaly found, 2 unknown, 254 bad arguments, 255 the run could not be
/// carried out.
#[derive(Parser)]
#[command(name = "harness", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Re-check a stored run from its history, without rerunning it; rewrites its checker report,
    /// its summary's verdict and its page.
    Check {
        /// The run's results folder (e.g. results/latest).
        dir: PathBuf,
        /// The workload to judge it as (default: the one in its summary.json).
        #[arg(long, value_parser = parse_workload)]
        workload: Option<WorkloadKind>,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// Show that the harness catches every bug kvs can plant: for each, short runs with the
    /// workload and faults that should expose it until one is invalid or the bug's budget is
    /// spent; then the clean store under the same settings for as long, where every run must be
    /// valid. Prints a table (also in results/selftest-<time>/selftest.md); exits 1 if a bug
    /// was not caught or a clean run was not valid.
    Selftest {
        /// Seconds of runs per bug before it counts as not caught.
        #[arg(long, default_value_t = 300.0, value_parser = parse_seconds)]
        budget: f64,
        /// Only this bug (repeatable; default: every one).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Skip the clean store's runs.
        #[arg(long)]
        no_clean: bool,
        /// The folder that gets the self-test's folder.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// The kvs binary to test (default: the one next to the harness, built first if needed).
        #[arg(long)]
        kvs_bin: Option<PathBuf>,
        /// Seed of the runs' seeds (default: random; printed).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Draw the HTML pages again from stored files, without rerunning anything: each run folder
    /// given gets its `index.html`; the results folder gets its index of every run.
    Report {
        /// Run folders to render (default: none, only the index).
        dirs: Vec<PathBuf>,
        /// The folder of runs whose index to write.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// What the clients do: register (read/write/cas, linearizability), set (adds, then final
    /// reads) or counter (increments and reads).
    #[arg(long, default_value = "register", value_parser = parse_workload)]
    workload: WorkloadKind,
    /// Comma list of faults: partition (one, halves, leaders, bridge, majorities-ring, one-way),
    /// kill (SIGKILL, restart at the heal), pause (SIGSTOP/SIGCONT), slow (delay and jitter on
    /// node-to-node links), flaky (lost, duplicated, reordered peer frames), disk (SIGKILL and
    /// lose every write not fsynced, on one node, a minority or all, optionally leaving a torn
    /// write; the nodes' data lives on the harness's FUSE filesystem), depose (a leader cut off
    /// and paused until others lead, then resumed still cut off; use with --read-via node), or
    /// none.
    #[arg(long, default_value = "partition")]
    faults: String,
    /// Nodes in the cluster (5 lets every partition shape happen).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=15))]
    nodes: u64,
    /// Shards (Raft groups).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    shards: u64,
    /// Replicas per shard (at most --nodes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=15))]
    replicas: u64,
    /// Seconds the workload and the nemesis run.
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    time_limit: f64,
    /// Logical clients, each with one operation open at a time.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    concurrency: u64,
    /// register: clients sharing one key at a time (the checker's cost grows steeply with it).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=16))]
    clients_per_key: u64,
    /// register: operations on a key before it is retired for a fresh one.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    ops_per_key: u64,
    /// Cap on total operations per second (0: as fast as the clients go).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, allow_negative_numbers = true)]
    rate: f64,
    /// Seconds between a fault and its heal, and between a heal and the next fault.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    nemesis_interval: f64,
    /// Seconds the healed cluster has to serve every shard again before the final reads; a
    /// cluster that does not is reported (the run is not valid).
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    quiet_period: f64,
    /// Seconds one client operation may take (then a write is recorded as info, a read as fail).
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    op_timeout: f64,
    /// Where clients send reads first: leader (the shard's leader as the client knows it) or
    /// node (the node the client's process is bound to, as in Jepsen, which serves the read if
    /// it believes it leads and redirects otherwise; this is what finds a deposed leader that
    /// still serves reads).
    #[arg(long, default_value = "leader", value_parser = parse_read_via)]
    read_via: ReadVia,
    /// Milliseconds of delay, plus up to as much again at random, on every node-to-node link
    /// for the whole run (a slow network under every fault; 0 for none). Elections then take
    /// long enough for candidates to collide, which is what exposes a double vote.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000), allow_negative_numbers = true)]
    peer_latency: u64,
    /// Seed of the op stream, the fault schedule and the proxies' choices (default: random;
    /// printed, and in the summary).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the results into this folder (default: a new folder under results/).
    #[arg(long)]
    results: Option<PathBuf>,
    /// The kvs binary to test (default: the one next to the harness, built first if needed).
    #[arg(long)]
    kvs_bin: Option<PathBuf>,
    /// An extra argument for every `kvs serve` (repeatable).
    #[arg(long = "kvs-arg", allow_hyphen_values = true)]
    kvs_args: Vec<String>,
    /// Plant a bug in the store: NAME on every node, NAME@ID on node ID only (repeatable; see
    /// `kvs serve --help` for the names). The summary and the page say which, in red.
    #[arg(long = "bug", value_name = "NAME[@ID]")]
    bugs: Vec<String>,
    /// Log entries after which a shard snapshots (low, so that chaos exercises snapshots and
    /// their transfer to nodes that fell behind).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_entries: u64,
    /// Draw no progress bar.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    budget: BudgetArgs,
}

#[derive(Args, Clone)]
struct BudgetArgs {
    /// Seconds the checker may search before it gives up (verdict unknown, never valid).
    #[arg(long, default_value_t = 30.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    check_time_limit: f64,
    /// Search states one key may remember before the checker gives up on it.
    #[arg(long, default_value_t = 10_000_000)]
    check_states_max: u64,
    /// MiB one key's search cache may take before the checker gives up on it.
    #[arg(long, default_value_t = 1024)]
    check_cache_mib_max: u64,
}

impl BudgetArgs {
    fn budget(&self) -> CheckBudget {
        CheckBudget {
            time_limit: Duration::from_secs_f64(self.check_time_limit),
            states_max: self.check_states_max,
            cache_mib_max: self.check_cache_mib_max,
        }
    }
}

fn parse_workload(s: &str) -> Result<WorkloadKind, String> {
    s.parse()
}

fn parse_read_via(s: &str) -> Result<ReadVia, String> {
    s.parse()
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(format!("{s} is not in (0, 86400] seconds"));
    }
    Ok(v)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of operations per second"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s} is not a rate >= 0"));
    }
    Ok(v)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_ARGS } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Some(Command::Check {
            dir,
            workload,
            budget,
        }) => check_command(&dir, workload, &budget),
        Some(Command::Report { dirs, results }) => report_command(&dirs, &results),
        Some(Command::Selftest {
            budget,
            bugs,
            no_clean,
            results,
            kvs_bin,
            seed,
        }) => selftest_command(SelftestOptions {
            budget: Duration::from_secs_f64(budget),
            bugs,
            skip_clean: no_clean,
            results_root: results,
            kvs_bin,
            seed: seed.unwrap_or_else(random_seed),
        }),
        None => run_command(cli.run),
    }
}

fn check_command(
    dir: &std::path::Path,
    workload: Option<WorkloadKind>,
    budget: &BudgetArgs,
) -> ExitCode {
    let workload = match workload.map(Ok).unwrap_or_else(|| workload_of(dir)) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("harness check: {e}");
            return ExitCode::from(EXIT_BAD_ARGS);
        }
    };
    match harness::run::recheck(dir, workload, budget.budget()) {
        Ok((checked, outcome, reason)) => {
            print!("{}", checked.judged.text);
            println!(
                "{}: {reason} ({} operations, checked in {:.2} s)",
                outcome.name().to_uppercase(),
                checked.op_count,
                checked.check_secs
            );
            ExitCode::from(exit_code(outcome))
        }
        Err(e) => {
            eprintln!("harness check: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The multi-threaded runtime a run or a self-test needs, or the exit code saying why not.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("harness: cannot start the runtime: {e}");
            ExitCode::from(EXIT_COULD_NOT_RUN)
        })
}

fn selftest_command(options: SelftestOptions) -> ExitCode {
    for name in &options.bugs {
        if let Err(e) = name.parse::<kvs::bugs::Bug>() {
            eprintln!("error: invalid value for '--bug': {e}");
            return ExitCode::from(EXIT_BAD_ARGS);
        }
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    eprintln!(
        "harness selftest: {} s per bug, seed {}",
        options.budget.as_secs_f64(),
        options.seed
    );
    let code = runtime.block_on(async move {
        let interrupt = Arc::new(Interrupt::default());
        tokio::spawn(watch_signals(interrupt.clone()));
        match harness::selftest::selftest(&options, interrupt, |line| eprintln!("{line}")).await {
            Ok(report) => {
                println!();
                print!("{}", report.table());
                println!("results: {}", report.dir.display());
                if report.passed() {
                    println!(
                        "selftest: every planted bug was caught and every clean run was valid"
                    );
                    0
                } else {
                    println!("selftest: FAILED (see the table)");
                    1
                }
            }
            Err(e) => {
                eprintln!("harness selftest: {e:#}");
                EXIT_COULD_NOT_RUN
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    ExitCode::from(code)
}

fn report_command(dirs: &[PathBuf], results: &std::path::Path) -> ExitCode {
    let mut failed = false;
    for dir in dirs {
        match harness::report::render_run(dir) {
            Ok(page) => println!("{}", page.display()),
            Err(e) => {
                eprintln!("harness report: {}: {e:#}", dir.display());
                failed = true;
            }
        }
    }
    if results.is_dir() {
        match harness::report::render_index(results) {
            Ok(page) => println!("{}", page.display()),
            Err(e) => {
                eprintln!("harness report: {e:#}");
                failed = true;
            }
        }
    } else if dirs.is_empty() {
        eprintln!(
            "harness report: {} is not a folder of runs",
            results.display()
        );
        return ExitCode::from(EXIT_BAD_ARGS);
    }
    ExitCode::from(u8::from(failed) * 2)
}

/// The workload a stored run was, from its summary.
fn workload_of(dir: &std::path::Path) -> Result<WorkloadKind, String> {
    let path = dir.join(harness::store::SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (pass --workload to check a history without a summary)",
            path.display()
        )
    })?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    summary["settings"]["workload"]
        .as_str()
        .ok_or_else(|| format!("{}: no settings.workload", path.display()))?
        .parse()
}

fn run_command(args: RunArgs) -> ExitCode {
    let faults = match parse_faults(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: invalid value for '--faults': {e}");
            return ExitCode::from(EXIT_BAD_ARGS);
        }
    };
    if args.replicas > args.nodes {
        eprintln!(
            "error: --replicas {} exceeds --nodes {}",
            args.replicas, args.nodes
        );
        return ExitCode::from(EXIT_BAD_ARGS);
    }
    if faults.contains(&harness::nemesis::FaultKind::Disk) {
        if let Err(e) = faultfs::available() {
            eprintln!("harness: the disk fault cannot run here: {e}");
            return ExitCode::from(EXIT_COULD_NOT_RUN);
        }
    }
    let mut bugs = Vec::new();
    for text in &args.bugs {
        match harness::test::PlantedBug::parse(text, args.nodes) {
            Ok(b) => bugs.push(b),
            Err(e) => {
                eprintln!("error: invalid value for '--bug': {e}");
                return ExitCode::from(EXIT_BAD_ARGS);
            }
        }
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let command_line = reproducing_command(seed);
    let spec = TestSpec {
        workload: args.workload,
        faults,
        node_count: args.nodes as usize,
        shard_count: args.shards as usize,
        replica_count: args.replicas as usize,
        time_limit: Duration::from_secs_f64(args.time_limit),
        concurrency: args.concurrency as usize,
        clients_per_key: args.clients_per_key as usize,
        ops_per_key: args.ops_per_key,
        rate: args.rate,
        nemesis_interval: Duration::from_secs_f64(args.nemesis_interval),
        quiet_period: Duration::from_secs_f64(args.quiet_period),
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        read_via: args.read_via,
        peer_latency: Duration::from_millis(args.peer_latency),
        seed,
        snapshot_log_entries_max: args.snapshot_entries,
        kvs_args: args.kvs_args,
        bugs,
        check_budget: args.budget.budget(),
        results_dir: args.results,
        results_root: PathBuf::from("results"),
        kvs_bin: args.kvs_bin,
        progress: !args.no_progress,
        command_line,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    eprintln!(
        "harness: {} workload, faults {}, {} nodes, {} shards x {} replicas, {} s, seed {seed}",
        spec.workload,
        spec.faults_name(","),
        spec.node_count,
        spec.shard_count,
        spec.replica_count,
        spec.time_limit.as_secs_f64()
    );
    let code = runtime.block_on(async move {
        let interrupt = Arc::new(Interrupt::default());
        tokio::spawn(watch_signals(interrupt.clone()));
        match run(spec, interrupt).await {
            Ok(finished) => {
                print_summary(&finished.summary);
                exit_code(finished.outcome)
            }
            Err(e) => {
                eprintln!("harness: the run could not be carried out: {:#}", e.error);
                if let Some(dir) = e.dir {
                    eprintln!("harness: what it left is in {}", dir.display());
                }
                EXIT_COULD_NOT_RUN
            }
        }
    });
    // The nodes are gone (the run tore them down); stop the proxies' and clients' tasks now.
    runtime.shutdown_timeout(Duration::from_secs(2));
    ExitCode::from(code)
}

/// Ctrl-C or SIGTERM stops the run (it heals, tears down and keeps what it recorded); a second
/// one exits at once (every node dies with the harness).
async fn watch_signals(interrupt: Arc<Interrupt>) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    let Ok(mut int) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    else {
        return;
    };
    for round in 0.. {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if round > 0 {
            eprintln!("harness: stopping now");
            std::process::exit(i32::from(EXIT_COULD_NOT_RUN));
        }
        eprintln!("harness: interrupted; healing, stopping the cluster and keeping what was recorded (again to quit at once)");
        interrupt.trigger();
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    workloads::Rng::new(nanos ^ u64::from(std::process::id())).next_u64() >> 16
}

/// The command line as given, with `--seed` set to the seed used.
fn reproducing_command(seed: u64) -> String {
    let mut out = vec!["harness".to_string()];
    let mut skip = false;
    for arg in std::env::args().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--seed" {
            skip = true;
            continue;
        }
        if arg.starts_with("--seed=") {
            continue;
        }
        out.push(shell_quote(&arg));
    }
    out.push(format!("--seed {seed}"));
    out.join(" ")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn print_summary(summary: &serde_json::Value) {
    let verdict = summary["verdict"].as_str().unwrap_or("unknown");
    println!();
    println!(
        "verdict: {} — {}",
        verdict.to_uppercase(),
        summary["reason"].as_str().unwrap_or("")
    );
    let counts = &summary["counts"];
    println!(
        "ops: {} ok, {} fail, {} info",
        counts["ok"], counts["fail"], counts["info"]
    );
    if let Some(by_f) = counts["by_f"].as_object() {
        for (f, c) in by_f {
            println!(
                "  {f:<6} ok {:>7}  fail {:>6}  info {:>6}",
                c["ok"], c["fail"], c["info"]
            );
        }
    }
    let faults = summary["faults"].as_array().map(Vec::len).unwrap_or(0);
    let names: Vec<&str> = summary["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["fault"].as_str())
        .collect();
    println!(
        "faults injected: {faults}{}",
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    );
    if let Some(findings) = summary["findings"].as_array().filter(|f| !f.is_empty()) {
        for f in findings {
            println!("finding: {}", f.as_str().unwrap_or_default());
        }
    }
    println!(
        "results: {}",
        summary["results_dir"].as_str().unwrap_or("?")
    );
    println!(
        "replay:  {}",
        summary["command_line"].as_str().unwrap_or("")
    );
}
