//! What the harness itself can do, measured with the real thing (`harness::run`):
//!
//! 1. recorded ops/s of a no-fault register run with 50 clients (target: at least 10,000 ops/s
//!    on the shared 2-core machine), with the checker's time for that history beside it;
//! 2. the run page of that history and of a 100,000-op history: the time to write it and its
//!    size (targets: under 2 s and under 5 MB for 100,000 ops);
//! 3. the wall time of a default run (register, partition, 60 s) against its time limit plus
//!    30 s (the target).
//!
//! Run with `cargo bench -p harness --bench harness` (about two minutes). Prints figures, asserts
//! nothing about speed. `HARNESS_BENCH_SECS=N` shortens the first run; `HARNESS_BENCH_SKIP_DEFAULT=1`
//! skips the second.

use harness::nemesis::FaultKind;
use harness::run::{run, Interrupt};
use harness::test::TestSpec;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::WorkloadKind;

fn spec(dir: &std::path::Path, faults: Vec<FaultKind>, concurrency: usize, secs: u64) -> TestSpec {
    TestSpec {
        time_limit: Duration::from_secs(secs),
        concurrency,
        results_dir: Some(dir.to_path_buf()),
        results_root: dir.to_path_buf(),
        command_line: "cargo bench -p harness --bench harness".into(),
        ..TestSpec::new(WorkloadKind::Register, faults, 1)
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let secs: u64 = std::env::var("HARNESS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().expect("a temporary directory");

    let dir = tmp.path().join("throughput");
    let finished = runtime
        .block_on(run(
            spec(&dir, Vec::new(), 50, secs),
            Arc::new(Interrupt::default()),
        ))
        .unwrap_or_else(|e| panic!("the throughput run failed: {:#}", e.error));
    let s = &finished.summary;
    let ops = ["ok", "fail", "info"]
        .iter()
        .map(|k| s["counts"][k].as_u64().unwrap_or(0))
        .sum::<u64>();
    let run_s = s["timings"]["run_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "harness throughput: register, no faults, 5 nodes, 8 shards x 3, 50 clients, {secs} s"
    );
    println!(
        "  recorded {ops} ops in {run_s:.1} s: {:.0} ops/s (target: at least 10,000); verdict {}",
        ops as f64 / run_s,
        finished.outcome.name()
    );
    println!(
        "  checker: {:.2} s for {} operations over {} keys",
        s["timings"]["check_s"].as_f64().unwrap_or(f64::NAN),
        s["check"]["op_count"],
        s["check"]["key_count"]
    );

    page_figures("the throughput run", &dir);
    let synthetic = tmp.path().join("synthetic");
    write_synthetic_run(&synthetic, 100_000);
    page_figures("a 100,000-op register history", &synthetic);

    if std::env::var_os("HARNESS_BENCH_SKIP_DEFAULT").is_some() {
        return;
    }
    let dir = tmp.path().join("default");
    let started = Instant::now();
    let finished = runtime
        .block_on(run(
            spec(&dir, vec![FaultKind::Partition], 10, 60),
            Arc::new(Interrupt::default()),
        ))
        .unwrap_or_else(|e| panic!("the default run failed: {:#}", e.error));
    let wall = started.elapsed().as_secs_f64();
    let t = &finished.summary["timings"];
    println!("default run: register, partition, 5 nodes, 60 s");
    println!(
        "  {wall:.1} s in all (target: at most 90 s): setup {:.1}, run {:.1}, recovery {:.1}, final reads {:.1}, check {:.1}; verdict {}",
        t["setup_s"].as_f64().unwrap_or(0.0),
        t["run_s"].as_f64().unwrap_or(0.0),
        t["recovery_s"].as_f64().unwrap_or(0.0),
        t["final_reads_s"].as_f64().unwrap_or(0.0),
        t["check_s"].as_f64().unwrap_or(0.0),
        finished.outcome.name()
    );
}

/// Times the run page of `dir` and prints its size.
fn page_figures(what: &str, dir: &std::path::Path) {
    let started = Instant::now();
    let page = harness::report::render_run(dir).expect("a page");
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&page).map_or(0, |m| m.len());
    println!(
        "page of {what}: written in {secs:.2} s, {:.2} MB (targets for 100,000 ops: under 2 s, under 5 MB)",
        bytes as f64 / 1e6
    );
}

/// A results folder with `n` register ops (10 processes, keys of 200 ops, one fault) and a
/// summary, as a run would leave it.
fn write_synthetic_run(dir: &std::path::Path, n: u64) {
    use std::fmt::Write as _;
    std::fs::create_dir_all(dir).expect("a folder");
    let mut history = String::new();
    for i in 0..n {
        let (p, key, t) = (i % 10, format!("r{}", i / 200), i * 600_000);
        let (f, value, result) = if i % 3 == 0 {
            (
                "read",
                "null".to_string(),
                format!("\"{}\"", i.saturating_sub(1)),
            )
        } else {
            ("write", format!("\"{i}\""), format!("\"{i}\""))
        };
        let _ = writeln!(
            history,
            r#"{{"process":{p},"type":"invoke","f":"{f}","key":"{key}","value":{value},"time_ns":{t}}}"#
        );
        let _ = writeln!(
            history,
            r#"{{"process":{p},"type":"ok","f":"{f}","key":"{key}","value":{result},"time_ns":{},"node":{}}}"#,
            t + 400_000 + (i % 7) * 100_000,
            1 + i % 5
        );
    }
    std::fs::write(dir.join("history.jsonl"), history).expect("a history");
    std::fs::write(
        dir.join("nemesis.jsonl"),
        "{\"event\":\"start\",\"fault\":\"partition-halves\",\"kind\":\"partition\",\"color\":\"#E9DCA0\",\"time_ns\":10000000000}\n{\"event\":\"heal\",\"fault\":\"partition-halves\",\"kind\":\"partition\",\"color\":\"#E9DCA0\",\"time_ns\":20000000000}\n",
    )
    .expect("a nemesis log");
    std::fs::write(
        dir.join("summary.json"),
        r#"{"verdict":"valid","reason":"synthetic","settings":{"workload":"register","shards":8},"check":{"invalid_keys":[]}}"#,
    )
    .expect("a summary");
}
