//! Benchmark of the linearizability check on generated register histories.
//!
//! `cargo bench -p checker`. Histories come from the tests' simulated linearizable register:
//! 10 client processes each doing one operation at a time (reads, writes, cas), 5% of completions
//! info (the client then continues under a fresh process id; the operation takes effect later or
//! never). Prints operations checked per second and the peak resident memory of the check.
//!
//! "invoked" counts invocations; "ops" counts the operations left after pairing (a cas whose
//! comparison failed is a `fail` and dropped), which is what the rate is computed on. Peak RSS is
//! the process's VmHWM after resetting it just before the check (the first figure is absolute,
//! including the generated history; the second is the growth during the check).
//! "spoiled" cases make one read return a value never written (always invalid); "last read
//! earlier value" cases make the last read return an earlier value read on its key, which may
//! still be linearizable when that value's write was concurrent or had an unknown outcome.
//! `CHECKER_BENCH_STRESS=1` adds harder single-key cases (more info, 20 and 30 processes).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use checker::{check_linearizability, pair_history, Budget, History, Register, Verdict};
use common::{simulate, Rng, SimOptions};

/// Peak resident set size in KiB since the last reset, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak RSS counter so the next reading covers only what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// How to spoil a generated history.
#[derive(Clone, Copy, PartialEq)]
enum Spoil {
    /// Leave it linearizable.
    None,
    /// Make the ok read nearest the middle return a value never written.
    MiddleRead,
    /// Make the last ok read return an earlier value read on its key (maybe still linearizable).
    LastReadStale,
}

fn bench(name: &str, ops_count: usize, keys: usize, values: u64) {
    bench_spoiled(name, ops_count, keys, values, Spoil::None);
}

fn bench_spoiled(name: &str, ops_count: usize, keys: usize, values: u64, spoil: Spoil) {
    let options = SimOptions {
        concurrency: 10,
        ops: ops_count,
        keys,
        info_percent: 5,
        values,
        leave_pending: true,
    };
    bench_with(name, options, spoil);
}

fn bench_with(name: &str, options: SimOptions, spoil: Spoil) {
    let keys = options.keys;
    let mut rng = Rng::new(0x5EED ^ options.ops as u64 ^ (keys as u64) << 32);
    let events = simulate(&mut rng, options);
    let invoked = events
        .iter()
        .filter(|e| e.kind == checker::EventType::Invoke)
        .count();
    let mut ops = pair_history(&History::from_events(events)).expect("well-formed");
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].f == "read" && ops[i].result().is_some())
        .collect();
    let target = match spoil {
        Spoil::None => None,
        Spoil::MiddleRead => Some((reads[reads.len() / 2], serde_json::json!("never written"))),
        Spoil::LastReadStale => {
            let last = *reads.last().expect("reads");
            let key = ops[last].key.clone();
            let current = ops[last].result().cloned();
            // The previous distinct value read on that key.
            let stale = reads
                .iter()
                .rev()
                .filter(|&&i| ops[i].key == key)
                .filter_map(|&i| ops[i].result().cloned())
                .find(|v| Some(v) != current.as_ref())
                .unwrap_or(serde_json::json!("never written"));
            Some((last, stale))
        }
    };
    if let Some((i, v)) = target {
        if let checker::Completion::Ok { value, .. } = &mut ops[i].completion {
            *value = v;
        }
    }
    let info = ops.iter().filter(|op| op.is_indeterminate()).count();
    reset_peak_rss();
    let before = peak_rss_kib().unwrap_or(0);
    let started = Instant::now();
    let report = check_linearizability(&Register, &ops, &Budget::default()).expect("checks");
    let elapsed = started.elapsed().as_secs_f64();
    let peak = peak_rss_kib().unwrap_or(0);
    let states: u64 = report.keys.iter().map(|k| k.states_explored).sum();
    let verdict = match report.verdict {
        Verdict::Valid => "valid",
        Verdict::Invalid { .. } => "INVALID",
        Verdict::Unknown { .. } => "UNKNOWN",
    };
    println!(
        "{name:<42} {invoked:>7} invoked {:>7} ops ({info:>5} info) {keys:>5} keys: {elapsed:>8.3} s  {:>12.0} ops/s  {states:>9} states  peak RSS {:>7.1} MiB (+{:.1} MiB)  {verdict}",
        ops.len(),
        ops.len() as f64 / elapsed,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too. Run only under cargo bench.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("linearizability check, register model, {workers} worker threads");
    bench("10k ops / 10 keys", 10_000, 10, 1_000_000);
    bench("10k ops / 1000 keys", 10_000, 1000, 1_000_000);
    bench("100k ops / 10 keys", 100_000, 10, 1_000_000);
    bench("100k ops / 1000 keys", 100_000, 1000, 1_000_000);
    bench("10k ops / 1 key", 10_000, 1, 1_000_000);
    bench("10k ops / 1 key, values 0..5", 10_000, 1, 5);
    bench("100k ops / 10 keys, values 0..5", 100_000, 10, 5);
    bench_spoiled(
        "10k ops / 1 key, middle read spoiled",
        10_000,
        1,
        1_000_000,
        Spoil::MiddleRead,
    );
    bench_spoiled(
        "10k ops / 1 key, last read earlier value",
        10_000,
        1,
        1_000_000,
        Spoil::LastReadStale,
    );
    bench_spoiled(
        "100k ops / 10 keys, middle read spoiled",
        100_000,
        10,
        1_000_000,
        Spoil::MiddleRead,
    );
    bench_spoiled(
        "10k ops / 1 key, v0..5, last read earlier",
        10_000,
        1,
        5,
        Spoil::LastReadStale,
    );
    // Harder single-key histories: more info outcomes, more processes. Opt in, they take longer.
    if std::env::var("CHECKER_BENCH_STRESS").is_ok() {
        let cases = [
            (20, 10, 1_000_000),
            (40, 10, 1_000_000),
            (20, 10, 5),
            (5, 20, 1_000_000),
            (5, 30, 1_000_000),
            (5, 20, 5),
        ];
        bench("100k ops / 1 key", 100_000, 1, 1_000_000);
        bench("1M ops / 1000 keys", 1_000_000, 1000, 1_000_000);
        for (info_percent, concurrency, values) in cases {
            let options = SimOptions {
                concurrency,
                ops: 10_000,
                keys: 1,
                info_percent,
                values,
                leave_pending: true,
            };
            let name = format!("1 key {info_percent}% info {concurrency} procs v{values}");
            bench_with(&name, options, Spoil::None);
            bench_with(&format!("{name} earlier"), options, Spoil::LastReadStale);
        }
    }
}
