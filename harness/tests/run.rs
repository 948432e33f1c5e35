//! The harness binary end to end: short chaos runs of each workload are valid and leave a full
//! results folder; bad arguments exit 254 naming the argument; SIGINT and SIGKILL of the harness
//! mid-run leave no `kvs` process and no proxy behind.
//!
//! Each run prints its seed (the harness prints it first, and its summary has it); a failing run
//! is replayed with `HARNESS_TEST_SEED=<seed>`.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn harness() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.arg("--no-progress");
    c
}

fn seed() -> u64 {
    std::env::var("HARNESS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        })
}

/// Starts the harness with `args`, writing its results to `results`, its output piped.
fn spawn_run(args: &[&str], results: &Path) -> Child {
    harness()
        .args(args)
        .arg("--results")
        .arg(results)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit`, then kills it (a hung harness fails the test, never hangs
/// it).
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the harness ran past {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn short_run(workload: &str) {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let seed_text = seed.to_string();
    let child = spawn_run(
        &[
            "--workload",
            workload,
            "--faults",
            "partition,kill,pause",
            "--shards",
            "4",
            "--time-limit",
            "14",
            "--nemesis-interval",
            "2",
            "--seed",
            &seed_text,
        ],
        &results,
    );
    let out = wait_bounded(child, Duration::from_secs(150));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) {
        // Keep the run's folder (logs, history, page) for whoever reads the failure.
        let kept = dir.keep();
        panic!(
            "{workload} with seed {seed} exited {:?} (HARNESS_TEST_SEED={seed} replays the plan); \
             its results are kept in {}:\n{stdout}\n{stderr}",
            out.status.code(),
            kept.display()
        );
    }
    let s = summary(&results);
    assert_eq!(s["verdict"], "valid", "{s:#}");
    assert_eq!(s["seed"], seed);
    assert!(s["counts"]["ok"].as_u64().unwrap() > 100, "{s:#}");
    assert!(s["faults"].as_array().unwrap().len() >= 3, "{s:#}");
    for file in [
        "history.jsonl",
        "nemesis.jsonl",
        "leaders.jsonl",
        "checker.json",
        "checker.txt",
        "cluster.yaml",
        "node-1.log",
    ] {
        assert!(results.join(file).is_file(), "{file} missing");
    }
    let nemesis = std::fs::read_to_string(results.join("nemesis.jsonl")).unwrap();
    assert!(nemesis.contains(r#""event":"start""#) && nemesis.contains(r#""event":"heal-all""#));
    assert!(stdout.contains("verdict: VALID"), "{stdout}");
    // The stored run checks again to the same verdict, without rerunning anything.
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("check")
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn register_under_partition_kill_pause_is_valid() {
    short_run("register");
}

#[test]
fn set_under_partition_kill_pause_is_valid() {
    short_run("set");
}

#[test]
fn counter_under_partition_kill_pause_is_valid() {
    short_run("counter");
}

#[test]
fn bad_arguments_exit_254_naming_the_argument() {
    for (args, named) in [
        (&["--faults", "partition,bogus"][..], "--faults"),
        (&["--nodes", "0"][..], "--nodes"),
        (&["--workload", "queue"][..], "--workload"),
        (&["--time-limit", "-3"][..], "--time-limit"),
        (&["--nodes", "3", "--replicas", "5"][..], "--replicas"),
        (&["--no-such-flag"][..], "--no-such-flag"),
        (&["--bug", "eat-writes"][..], "--bug"),
        (&["--bug", "vote-twice@9"][..], "--bug"),
        (&["--read-via", "sideways"][..], "--read-via"),
        (&["--peer-latency", "-5"][..], "--peer-latency"),
    ] {
        let out = harness().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    for (args, named) in [
        (&["selftest", "--bug", "eat-writes"][..], "--bug"),
        (&["selftest", "--budget", "0"][..], "--budget"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    let out = harness().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot be replayed"));
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // A zombie is dead already (its parent has not reaped it yet).
        if state.split_whitespace().nth(2) == Some("Z") {
            continue;
        }
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

/// The client and peer proxy addresses the nodes were given.
fn proxy_addrs(results: &Path) -> Vec<std::net::SocketAddr> {
    let config = kvs::config::ClusterConfig::load(&results.join("cluster.yaml")).unwrap();
    let mut out = Vec::new();
    for n in &config.nodes {
        out.extend(n.advertise_client_addr);
        out.extend(n.peer_routes.values().copied());
    }
    out
}

fn stop_mid_run(signal: nix::sys::signal::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let mut child = spawn_run(
        &[
            "--faults",
            "pause,kill",
            "--shards",
            "2",
            "--time-limit",
            "300",
            "--nemesis-interval",
            "1",
        ],
        &results,
    );
    // Wait until the cluster runs and a fault is likely in force (paused nodes included).
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::fs::read_to_string(results.join("nemesis.jsonl"))
        .is_ok_and(|t| t.contains(r#""event":"start""#))
    {
        assert!(Instant::now() < deadline, "the run never started a fault");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the harness exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let proxies = proxy_addrs(&results);
    assert!(!processes_mentioning(&results).is_empty(), "nodes run");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let out = wait_bounded(child, Duration::from_secs(60));
    // The nodes go with the harness (SIGKILL: through their parent-death signal).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(&results);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{signal}: processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for addr in proxies {
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{signal}: a proxy still listens on {addr}"
        );
    }
    if signal == nix::sys::signal::Signal::SIGINT {
        // An interrupted run still keeps what it recorded.
        let s = summary(&results);
        assert_eq!(
            s["interrupted"],
            true,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn sigint_mid_run_leaves_no_node_or_proxy() {
    stop_mid_run(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigkill_mid_run_leaves_no_node_or_proxy() {
    stop_mid_run(nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn rate_caps_the_total_ops_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let child = spawn_run(
        &[
            "--faults",
            "none",
            "--nodes",
            "3",
            "--shards",
            "2",
            "--time-limit",
            "4",
            "--rate",
            "150",
        ],
        &results,
    );
    let out = wait_bounded(child, Duration::from_secs(90));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&results);
    let ops: u64 = ["ok", "fail", "info"]
        .iter()
        .map(|k| s["counts"][k].as_u64().unwrap())
        .sum();
    // 150/s for 4 s is 600 ops, plus a final read of each of the few keys used.
    assert!((450..=700).contains(&ops), "{ops} ops: {s:#}");
}

/// Runs the harness with `args` (and a seed), bounded in time; the results folder and the
/// output. A run whose exit code is not `expected` panics, keeping its folder.
fn run_expecting(args: &[&str], expected: i32) -> (tempfile::TempDir, std::path::PathBuf) {
    let seed = seed().to_string();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let mut all = args.to_vec();
    all.extend(["--seed", &seed]);
    let out = wait_bounded(spawn_run(&all, &results), Duration::from_secs(150));
    if out.status.code() != Some(expected) {
        let kept = dir.keep();
        panic!(
            "{args:?} with seed {seed} exited {:?}, not {expected} (HARNESS_TEST_SEED={seed} \
             replays the plan); its results are kept in {}:\n{}\n{}",
            out.status.code(),
            kept.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (dir, results)
}

/// Mounts of the fault filesystem under `dir` that are still there.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("faultfs ") && l.contains(&dir))
        .map(str::to_string)
        .collect()
}

/// A 4-shard run under the disk fault with `extra` arguments, which must exit `expected` and
/// leave no mount; its folder, results and summary. `None` (saying why) without FUSE.
fn disk_run(
    extra: &[&str],
    time_limit: &str,
    expected: i32,
) -> Option<(tempfile::TempDir, std::path::PathBuf, serde_json::Value)> {
    if let Err(e) = faultfs::available() {
        eprintln!("skipped: {e}");
        return None;
    }
    let mut args = vec![
        "--faults",
        "disk",
        "--shards",
        "4",
        "--nemesis-interval",
        "2",
    ];
    args.extend(["--time-limit", time_limit]);
    args.extend(extra);
    let (dir, results) = run_expecting(&args, expected);
    assert_eq!(mounts_under(dir.path()), Vec::<String>::new());
    let s = summary(&results);
    Some((dir, results, s))
}

#[test]
fn the_store_under_disk_faults_stays_valid_and_no_mount_is_left() {
    let Some((_dir, results, s)) = disk_run(&[], "14", 0) else {
        return;
    };
    assert_eq!(s["verdict"], "valid", "{s:#}");
    // Every fault was a kill with a disk that forgot, and the run counted the syncs it saw.
    let nemesis = std::fs::read_to_string(results.join("nemesis.jsonl")).unwrap();
    assert!(nemesis.contains(r#""kind":"disk""#) && nemesis.contains(r#""lost""#));
    assert!(s["disk"]["1"]["fsyncs"].as_u64().unwrap() > 0, "{s:#}");
    // The nodes' durable files are kept beside the run.
    assert!(results.join("disk/node-1/wal").is_dir());
}

#[test]
fn skip_fsync_under_disk_faults_is_caught() {
    // Six faults, so every variant comes up once: among them the power cut of the whole
    // cluster, after which no node has the entries it acknowledged. (A minority's loss is
    // often repaired: the surviving replica has the entries and wins the election.)
    let Some((_dir, _results, s)) = disk_run(&["--bug", "skip-fsync"], "24", 1) else {
        return;
    };
    assert_eq!(s["verdict"], "invalid", "{s:#}");
    assert_eq!(s["settings"]["planted_bugs"][0], "skip-fsync");
}
