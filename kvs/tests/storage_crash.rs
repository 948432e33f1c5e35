//! Crash consistency of the write-ahead log, randomized with printed seeds
//! (`KVS_STORAGE_SEED=N` replays one seed).
//!
//! A random multi-group workload runs against the log and a reference model; after every
//! operation (each writes at most one record, and records are written to the file at once) the
//! test remembers where the log ended and what the model held. A crash is simulated by copying
//! the directory and cutting the last segment at some byte offset: recovery must return exactly
//! the state of the last operation whose record ends at or before the cut. A flipped bit in the
//! last record is a torn tail (the record is dropped); a flipped bit in any earlier record must
//! be reported as corruption at that record's offset.

mod storage_support;

use kvs::storage::{StorageError, Wal};
use std::path::Path;
use storage_support::*;

/// A log position: (segment file name, byte length), ordered like the log.
type Position = (String, u64);

struct Run {
    dir: tempfile::TempDir,
    /// (where the log ended, what it held) after each operation, in order.
    checkpoints: Vec<(Position, Model)>,
    /// Where the log ended at the last `sync`.
    synced: Position,
    final_model: Model,
}

fn run_workload(
    seed: u64,
    shape: WorkloadShape,
    segment_bytes_max: u64,
    steps: usize,
    batch: usize,
    unsynced_steps: usize,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let mut wal = Wal::open(dir.path(), test_options(segment_bytes_max)).unwrap();
    let mut model = Model::default();
    let mut checkpoints = vec![(log_end(dir.path()), model.clone())];
    let mut synced = log_end(dir.path());
    for step in 0..steps + unsynced_steps {
        random_step(&mut rng, shape, &mut wal, &mut model);
        if step < steps && (step + 1) % batch == 0 {
            wal.sync().unwrap();
            synced = log_end(dir.path());
            // Garbage collection may have removed segments: positions before are still ordered.
        }
        checkpoints.push((log_end(dir.path()), model.clone()));
    }
    drop(wal);
    Run {
        dir,
        checkpoints,
        synced,
        final_model: model,
    }
}

/// The model recovery must produce when the last segment is cut at `cut`.
fn expected_at<'a>(run: &'a Run, cut: &Position) -> (Position, &'a Model) {
    let (pos, model) = run
        .checkpoints
        .iter()
        .rev()
        .find(|(pos, _)| pos <= cut)
        .expect("the empty log is a checkpoint");
    (pos.clone(), model)
}

/// Copies the log, cuts its last segment to `len` bytes, and opens it.
/// Copies the log and cuts its last segment at `len`; with `zeros_after`, the cut is padded
/// with that many zero bytes, which is what a crash leaves in a preallocated segment.
fn open_cut(
    src: &Path,
    len: u64,
    zeros_after: u64,
) -> (tempfile::TempDir, Result<Wal, StorageError>) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(src, copy.path());
    let last = segment_files(copy.path()).pop().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len).unwrap();
    f.set_len(len + zeros_after).unwrap();
    drop(f);
    let wal = Wal::open(copy.path(), test_options(u64::MAX));
    (copy, wal)
}

fn check_cut(run: &Run, len: u64, seed: u64) {
    let (name, _) = log_end(run.dir.path());
    let cut = (name.clone(), len);
    let (pos, model) = expected_at(run, &cut);
    let context = format!("seed {seed}, cut {name} at {len} (KVS_STORAGE_SEED={seed} replays)");
    // The same cut as a preallocated segment leaves it: zeros after the cut. That file is
    // byte for byte the log cut `z` bytes later, where `z` counts the zeros the log itself had
    // at the cut, so it must recover exactly what that cut does.
    let (_padded, wal) = open_cut(run.dir.path(), len, 4096);
    let wal = wal.unwrap_or_else(|e| panic!("{context}, zero-padded: open failed: {e}"));
    let original = std::fs::read(run.dir.path().join(&name)).unwrap();
    let zeros = original[len as usize..]
        .iter()
        .take_while(|b| **b == 0)
        .count() as u64;
    let (_, padded_model) = expected_at(run, &(name.clone(), len + zeros));
    assert_matches(&wal, padded_model, &format!("{context}, zero-padded"));
    drop(wal);
    let (copy, wal) = open_cut(run.dir.path(), len, 0);
    let wal = wal.unwrap_or_else(|e| panic!("{context}: open failed: {e}"));
    assert_matches(&wal, model, &context);
    // The torn tail is gone from the file: it ends at the last whole record.
    let end = log_end(copy.path());
    if pos.0 == name {
        assert_eq!(
            end.1, pos.1,
            "{context}: file not cut back to the last record"
        );
    }
}

const SMALL: WorkloadShape = WorkloadShape {
    group_count: 3,
    compact_percent: 5,
    install_percent: 2,
    data_bytes_max: 12,
};

const WIDE: WorkloadShape = WorkloadShape {
    group_count: 8,
    compact_percent: 4,
    install_percent: 1,
    data_bytes_max: 100,
};

#[test]
fn cut_at_every_offset_of_a_small_log() {
    for seed in seeds(3) {
        println!("seed {seed}");
        let run = run_workload(seed, SMALL, u64::MAX, 40, 4, 0);
        let (_, len) = log_end(run.dir.path());
        for cut in 0..=len {
            check_cut(&run, cut, seed);
        }
    }
}

#[test]
fn cut_at_random_offsets_of_a_larger_log() {
    for seed in seeds(6) {
        println!("seed {seed}");
        let run = run_workload(seed, WIDE, u64::MAX, 400, 16, 0);
        let (_, len) = log_end(run.dir.path());
        let mut rng = Rng::new(seed ^ 0xC0FFEE);
        for _ in 0..60 {
            check_cut(&run, rng.below(len + 1), seed);
        }
        check_cut(&run, len, seed);
    }
}

#[test]
fn unsynced_tail_cut_with_rolling_segments_and_garbage_collection() {
    for seed in seeds(6) {
        println!("seed {seed}");
        let shape = WorkloadShape {
            compact_percent: 10,
            ..WIDE
        };
        let run = run_workload(seed, shape, 4096, 600, 8, 40);
        let (name, len) = log_end(run.dir.path());
        let first_segment = &segment_files(run.dir.path())[0];
        assert!(
            !first_segment.ends_with("00000000000000000001.wal"),
            "seed {seed}: no segment was ever collected"
        );
        let mut names: Vec<&String> = run.checkpoints.iter().map(|((n, _), _)| n).collect();
        names.dedup();
        assert!(names.len() > 5, "seed {seed}: segments did not roll");
        // Everything synced survives a full reopen.
        let wal = Wal::open(run.dir.path(), test_options(4096)).unwrap();
        assert_matches(&wal, &run.final_model, &format!("seed {seed}, reopen"));
        drop(wal);
        let low = if run.synced.0 == name {
            run.synced.1
        } else {
            0
        };
        let mut rng = Rng::new(seed ^ 0xBEEF);
        for _ in 0..40 {
            let cut = low + rng.below(len - low + 1);
            check_cut(&run, cut, seed);
        }
    }
}

#[test]
fn bit_flips_in_the_tail_are_torn_writes_and_before_it_corruption() {
    for seed in seeds(6) {
        println!("seed {seed}");
        let run = run_workload(seed, WIDE, u64::MAX, 200, 8, 0);
        let (name, len) = log_end(run.dir.path());
        // Record boundaries: where the log ended after each operation.
        let mut starts: Vec<u64> = run.checkpoints.iter().map(|((_, l), _)| *l).collect();
        starts.dedup();
        let mut rng = Rng::new(seed ^ 0xF11F);
        for flip in 0..80 {
            // Half the flips land in the last record, half anywhere.
            let last_start = starts[starts.len() - 2];
            let at = if flip % 2 == 0 {
                last_start + rng.below(len - last_start)
            } else {
                rng.below(len)
            };
            let bit = rng.below(8);
            let record_start = *starts.iter().rev().find(|s| **s <= at).unwrap();
            let copy = tempfile::tempdir().unwrap();
            copy_dir(run.dir.path(), copy.path());
            let path = copy.path().join(&name);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[at as usize] ^= 1 << bit;
            std::fs::write(&path, &bytes).unwrap();
            let context = format!(
                "seed {seed}, flip bit {bit} of byte {at} in record at {record_start} \
                 (KVS_STORAGE_SEED={seed} replays)"
            );
            match Wal::open(copy.path(), test_options(u64::MAX)) {
                Ok(wal) => {
                    assert_eq!(
                        record_start, last_start,
                        "{context}: corruption was skipped"
                    );
                    let (_, model) = expected_at(&run, &(name.clone(), record_start));
                    assert_matches(&wal, model, &context);
                }
                Err(StorageError::Corruption {
                    path: bad_path,
                    offset_bytes,
                    ..
                }) => {
                    assert_ne!(record_start, last_start, "{context}: torn tail refused");
                    assert_eq!(bad_path, path, "{context}");
                    assert_eq!(offset_bytes, record_start, "{context}");
                }
                Err(e) => panic!("{context}: unexpected error {e}"),
            }
        }
    }
}

#[test]
fn any_flipped_bit_in_an_earlier_segment_is_corruption() {
    for seed in seeds(4) {
        println!("seed {seed}");
        let shape = WorkloadShape {
            compact_percent: 0, // nothing compacted: every segment stays
            install_percent: 0,
            ..WIDE
        };
        let run = run_workload(seed, shape, 4096, 200, 8, 0);
        let files = segment_files(run.dir.path());
        assert!(files.len() > 2, "seed {seed}: segments did not roll");
        let mut rng = Rng::new(seed ^ 0xABCD);
        for _ in 0..30 {
            let victim = rng.below(files.len() as u64 - 1) as usize;
            let copy = tempfile::tempdir().unwrap();
            copy_dir(run.dir.path(), copy.path());
            let path = copy.path().join(files[victim].file_name().unwrap());
            let mut bytes = std::fs::read(&path).unwrap();
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
            std::fs::write(&path, &bytes).unwrap();
            match Wal::open(copy.path(), test_options(4096)) {
                Err(StorageError::Corruption {
                    path: bad_path,
                    offset_bytes,
                    ..
                }) => {
                    assert_eq!(bad_path, path, "seed {seed}");
                    assert!(offset_bytes <= at as u64, "seed {seed}");
                }
                Ok(_) => panic!("seed {seed}: flip at {at} of {} skipped", path.display()),
                Err(e) => panic!("seed {seed}: unexpected {e}"),
            }
        }
    }
}
