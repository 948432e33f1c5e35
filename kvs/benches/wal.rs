//! Write-ahead log throughput against the raw disk limit (`cargo bench -p kvs --bench wal`).
//!
//! For each batch size (entries per sync: 1, 16, 64, 256) it first measures a plain
//! `write` + `fdatasync` loop writing the same bytes per sync as the log does, then the log:
//! 100-byte entries appended round-robin from 8 groups, one `sync` per batch. It prints
//! entries/s and fsyncs/s and the log's ratio to the raw loop. Files live in a temp dir under
//! the target dir (same disk as the project). Each case runs for `CASE_SECS` seconds, in
//! `ROUNDS` slices that alternate raw and log so both see the same background load; the raw
//! figures are printed first.

#![allow(missing_docs)]

use bytes::Bytes;
use kvs::raft::{Entry, EntryKind, LogIndex, Term};
use kvs::storage::{GroupId, Wal, WalOptions};
use std::io::Write;
use std::time::{Duration, Instant};

const GROUP_COUNT: u64 = 8;
const ENTRY_DATA_BYTES: usize = 100;
const BATCH_SIZES: [u64; 4] = [1, 16, 64, 256];
/// Seconds each of the raw loop and the log runs per batch size, split into `ROUNDS`.
const CASE_SECS: f64 = 3.0;
const ROUNDS: u64 = 40;

/// Bytes one batch takes in the log: one `Entries` record per group that has entries
/// (8-byte header, 9-byte group and kind, 12-byte first index and count, 13 bytes per entry
/// before its data).
fn batch_bytes(batch: u64) -> usize {
    let groups = batch.min(GROUP_COUNT);
    (0..groups)
        .map(|g| {
            let n = batch / groups + u64::from(g < batch % groups);
            29 + n as usize * (13 + ENTRY_DATA_BYTES)
        })
        .sum()
}

struct Figures {
    entries_per_sec: f64,
    fsyncs_per_sec: f64,
}

/// Sync rounds and seconds spent, summed over the interleaved rounds of one case, and the
/// fsync rate of each round.
#[derive(Default)]
struct Tally {
    syncs: u64,
    secs: f64,
    round_rates: Vec<f64>,
}

/// The median over rounds of (log rate / raw rate) measured side by side: robust to the load
/// other processes put on the shared disk, which swings rates by 2x from second to second.
fn median_paired_ratio(wal: &Tally, raw: &Tally) -> f64 {
    let mut ratios: Vec<f64> = wal
        .round_rates
        .iter()
        .zip(&raw.round_rates)
        .map(|(w, r)| w / r)
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

impl Tally {
    fn figures(&self, batch: u64) -> Figures {
        Figures {
            entries_per_sec: (self.syncs * batch) as f64 / self.secs,
            fsyncs_per_sec: self.syncs as f64 / self.secs,
        }
    }
}

/// The raw limit: append the bytes of one batch, `fdatasync`, repeat.
struct RawCase {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl RawCase {
    fn new(dir: &std::path::Path, batch: u64) -> RawCase {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("raw-{batch}.bin")))
            .unwrap();
        RawCase {
            file,
            buf: vec![0x5Au8; batch_bytes(batch)],
        }
    }

    fn run(&mut self, secs: f64, tally: &mut Tally) {
        let deadline = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut syncs = 0u64;
        while start.elapsed() < deadline {
            self.file.write_all(&self.buf).unwrap();
            self.file.sync_data().unwrap();
            syncs += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        tally.syncs += syncs;
        tally.secs += secs;
        tally.round_rates.push(syncs as f64 / secs);
    }
}

/// The log: `batch` entries round-robin over the groups, one `append_entries` per group, one
/// `sync`.
struct WalCase {
    wal: Wal,
    batch: u64,
    data: Bytes,
    next_index: Vec<u64>,
    next_group: usize,
    per_group: Vec<Vec<Entry>>,
}

impl WalCase {
    fn new(dir: &std::path::Path, batch: u64, fsync: bool) -> WalCase {
        let options = WalOptions {
            fsync,
            ..WalOptions::default()
        };
        let name = format!("wal-{batch}-{}", if fsync { "fsync" } else { "nofsync" });
        WalCase {
            wal: Wal::open(&dir.join(name), options).unwrap(),
            batch,
            data: Bytes::from(vec![0x5Au8; ENTRY_DATA_BYTES]),
            next_index: vec![1; GROUP_COUNT as usize],
            next_group: 0,
            per_group: vec![Vec::new(); GROUP_COUNT as usize],
        }
    }

    fn run(&mut self, secs: f64, tally: &mut Tally) {
        let deadline = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut syncs = 0u64;
        while start.elapsed() < deadline {
            for _ in 0..self.batch {
                let g = self.next_group;
                self.next_group = (g + 1) % GROUP_COUNT as usize;
                self.per_group[g].push(Entry {
                    term: Term(1),
                    index: LogIndex(self.next_index[g]),
                    kind: EntryKind::Normal,
                    data: self.data.clone(),
                });
                self.next_index[g] += 1;
            }
            for (g, entries) in self.per_group.iter_mut().enumerate() {
                if !entries.is_empty() {
                    self.wal
                        .append_entries(GroupId(g as u64 + 1), entries)
                        .unwrap();
                    entries.clear();
                }
            }
            self.wal.sync().unwrap();
            syncs += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        tally.syncs += syncs;
        tally.secs += secs;
        tally.round_rates.push(syncs as f64 / secs);
    }
}

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    println!(
        "wal bench in {}: {GROUP_COUNT} groups, {ENTRY_DATA_BYTES}-byte entries, {CASE_SECS} s per case",
        dir.path().display()
    );
    // The machine is shared: raw and log rounds alternate so that both see the same load.
    let mut raw = Vec::new();
    let mut wal = Vec::new();
    let mut paired = Vec::new();
    for batch in BATCH_SIZES {
        let (mut raw_case, mut wal_case) = (
            RawCase::new(dir.path(), batch),
            WalCase::new(dir.path(), batch, true),
        );
        let (mut raw_tally, mut wal_tally) = (Tally::default(), Tally::default());
        for _ in 0..ROUNDS {
            raw_case.run(CASE_SECS / ROUNDS as f64, &mut raw_tally);
            wal_case.run(CASE_SECS / ROUNDS as f64, &mut wal_tally);
        }
        paired.push(median_paired_ratio(&wal_tally, &raw_tally));
        raw.push(raw_tally.figures(batch));
        wal.push(wal_tally.figures(batch));
    }
    // What the log costs without the disk: the CPU share of each sync round.
    let mut cpu = Vec::new();
    for batch in BATCH_SIZES {
        let mut tally = Tally::default();
        WalCase::new(dir.path(), batch, false).run(0.5, &mut tally);
        cpu.push(tally.secs / tally.syncs as f64 * 1e6);
    }
    println!("\nraw disk limit (write + fdatasync of the same bytes per sync):");
    for (batch, f) in BATCH_SIZES.into_iter().zip(&raw) {
        println!(
            "  batch {batch:>3} ({:>6} B/sync): {:>10.0} entries/s {:>8.0} fsyncs/s",
            batch_bytes(batch),
            f.entries_per_sec,
            f.fsyncs_per_sec
        );
    }
    println!("\nwal (append from {GROUP_COUNT} groups, one sync per batch):");
    for (((batch, f), r), p) in BATCH_SIZES.into_iter().zip(&wal).zip(&raw).zip(&paired) {
        println!(
            "  batch {batch:>3}:                  {:>10.0} entries/s {:>8.0} fsyncs/s  ratio to raw {:>5.1}% (median paired round {:>5.1}%)",
            f.entries_per_sec,
            f.fsyncs_per_sec,
            100.0 * f.fsyncs_per_sec / r.fsyncs_per_sec,
            100.0 * p
        );
    }
    println!("\nwal CPU per sync round with fsync off (append + write, no fdatasync):");
    for (batch, us) in BATCH_SIZES.into_iter().zip(&cpu) {
        println!("  batch {batch:>3}: {us:>8.1} us");
    }
    let speedup = wal[2].entries_per_sec / wal[0].entries_per_sec;
    let raw_speedup = raw[2].entries_per_sec / raw[0].entries_per_sec;
    let worst_ratio = wal
        .iter()
        .zip(&raw)
        .map(|(w, r)| w.fsyncs_per_sec / r.fsyncs_per_sec)
        .fold(f64::INFINITY, f64::min);
    let worst_paired = paired.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "\nbatch 64 vs batch 1 entries/s: wal {speedup:.1}x, raw disk {raw_speedup:.1}x (the disk's own ceiling)"
    );
    println!(
        "targets: fsyncs/s >= 90% of raw (worst {:.1}% overall, {:.1}% median paired: {}), batch 64 >= 50x batch 1 entries/s ({speedup:.1}x: {})",
        100.0 * worst_ratio,
        100.0 * worst_paired,
        if worst_ratio >= 0.9 { "met" } else if worst_paired >= 0.9 { "met by paired rounds" } else { "MISSED" },
        if speedup >= 50.0 { "met" } else { "MISSED" }
    );
}
