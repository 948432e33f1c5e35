//! The write-ahead log and snapshot store across restarts: round trips of many interleaved
//! groups, replacement of an uncommitted suffix, typed read errors, interrupted snapshot saves,
//! bounded disk use under a steady load with snapshots, and the `dump` listing.

mod storage_support;

use bytes::Bytes;
use kvs::raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Snapshot, SnapshotMeta, Term};
use kvs::storage::{
    dump, known_groups, recover_group, DumpVerdict, GroupId, SnapshotStore, StorageError, Wal,
    WalOptions,
};
use std::path::Path;
use storage_support::*;

fn entries(first: u64, count: u64, term: u64, tag: &str) -> Vec<Entry> {
    (first..first + count)
        .map(|i| Entry {
            term: Term(term),
            index: LogIndex(i),
            kind: EntryKind::Normal,
            data: Bytes::from(format!("{tag}-{i}")),
        })
        .collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn many_groups_interleaved_round_trip_across_restarts() {
    for seed in seeds(4) {
        println!("seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let shape = WorkloadShape {
            group_count: 16,
            compact_percent: 5,
            install_percent: 1,
            data_bytes_max: 64,
        };
        let mut rng = Rng::new(seed);
        let mut model = Model::default();
        let options = WalOptions {
            segment_bytes_max: 8 * 1024,
            fsync: seed == 1, // one seed exercises the real fsync path
            entry_cache_bytes_max: 2 * 1024, // most reads after a restart go to disk
            ..WalOptions::default()
        };
        for restart in 0..6 {
            let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
            let context = format!("seed {seed}, restart {restart}");
            assert_matches(&wal, &model, &context);
            for step in 0..300 {
                random_step(&mut rng, shape, &mut wal, &mut model);
                if step % 7 == 6 {
                    wal.sync().unwrap();
                }
            }
            // Reads before the sync see the appended, not yet durable, state too.
            assert_matches(&wal, &model, &format!("{context}, before sync"));
            wal.sync().unwrap();
        }
    }
}

#[test]
fn replaced_uncommitted_suffix_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        segment_bytes_max: 256, // the replacement lands in a later segment than the original
        ..WalOptions::default()
    };
    let g = GroupId(7);
    {
        let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
        wal.append_entries(g, &entries(1, 10, 1, "old")).unwrap();
        wal.set_hard_state(
            g,
            HardState {
                term: Term(1),
                vote: Some(NodeId(1)),
                commit: LogIndex(5),
            },
        )
        .unwrap();
        wal.sync().unwrap();
        // A new leader in term 2 replaces 7..=10 with two entries.
        wal.append_entries(g, &entries(7, 2, 2, "new")).unwrap();
        wal.sync().unwrap();
        assert!(wal.segment_count() > 1);
    }
    let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
    assert_eq!(wal.last_index(g), LogIndex(8));
    let got = wal.entries(g, LogIndex(1), LogIndex(9)).unwrap();
    assert_eq!(&got[..6], &entries(1, 6, 1, "old")[..]);
    assert_eq!(&got[6..], &entries(7, 2, 2, "new")[..]);
    assert_eq!(wal.term(g, LogIndex(9)).unwrap(), None);
    // Overwrite again after the restart, then append: the older suffixes stay gone.
    wal.append_entries(g, &entries(6, 1, 3, "newer")).unwrap();
    wal.append_entries(g, &entries(7, 3, 3, "newest")).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), options).unwrap();
    let got = wal.entries(g, LogIndex(1), LogIndex(10)).unwrap();
    assert_eq!(&got[5..6], &entries(6, 1, 3, "newer")[..]);
    assert_eq!(&got[6..], &entries(7, 3, 3, "newest")[..]);
}

#[test]
fn reads_outside_the_log_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), WalOptions::default()),
        Err(StorageError::Locked { .. })
    ));
    let g = GroupId(1);
    wal.append_entries(g, &entries(1, 10, 1, "x")).unwrap();
    wal.compact(g, LogIndex(4)).unwrap();
    assert!(matches!(
        wal.entries(g, LogIndex(3), LogIndex(6)),
        Err(StorageError::Compacted {
            index: LogIndex(3),
            ..
        })
    ));
    assert!(matches!(
        wal.entries(g, LogIndex(5), LogIndex(12)),
        Err(StorageError::Unavailable { .. })
    ));
    assert!(matches!(
        wal.term(g, LogIndex(2)),
        Err(StorageError::Compacted { .. })
    ));
    assert_eq!(wal.term(g, LogIndex(4)).unwrap(), Some(Term(1)));
    assert_eq!(wal.term(g, LogIndex(11)).unwrap(), None);
    assert_eq!(wal.entries(g, LogIndex(5), LogIndex(5)).unwrap(), vec![]);
    // An unknown group is an empty log.
    assert_eq!(wal.first_index(GroupId(9)), LogIndex(1));
    assert_eq!(wal.last_index(GroupId(9)), LogIndex(0));
    assert_eq!(wal.term(GroupId(9), LogIndex(0)).unwrap(), Some(Term(0)));
}

fn snapshot(index: u64, data: &str) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(2),
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        },
        data: Bytes::from(data.to_string()),
    }
}

#[test]
fn interrupted_snapshot_save_recovers_the_previous_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(3);
    let previous = snapshot(10, "state at 10");
    let next = snapshot(20, "state at 20, a little longer");
    {
        let store = SnapshotStore::open(dir.path(), true).unwrap();
        store.save(g, &previous).unwrap();
    }
    // What a complete save of `next` would write, to cut at every byte.
    let scratch = tempfile::tempdir().unwrap();
    SnapshotStore::open(scratch.path(), false)
        .unwrap()
        .save(g, &next)
        .unwrap();
    let full_name = "00000000000000000003-00000000000000000020.snap";
    let full = std::fs::read(scratch.path().join(full_name)).unwrap();
    for cut in 0..=full.len() {
        // Crash while writing the temp file (or after, before the rename).
        let temp = dir.path().join(format!("{full_name}.tmp"));
        std::fs::write(&temp, &full[..cut]).unwrap();
        let store = SnapshotStore::open(dir.path(), false).unwrap();
        assert!(!temp.exists(), "leftover temp file not removed");
        assert_eq!(store.load(g).unwrap(), Some(previous.clone()), "cut {cut}");
    }
    // A renamed file that is damaged is skipped and reported.
    let renamed = dir.path().join(full_name);
    let mut damaged = full.clone();
    damaged[30] ^= 4;
    std::fs::write(&renamed, &damaged).unwrap();
    let store = SnapshotStore::open(dir.path(), false).unwrap();
    assert_eq!(store.load(g).unwrap(), Some(previous.clone()));
    assert_eq!(store.corrupt_files().unwrap().len(), 1);
    // A complete save replaces it and deletes the older file.
    store.save(g, &next).unwrap();
    assert_eq!(store.load(g).unwrap(), Some(next));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(store.groups().unwrap(), vec![g]);
    assert_eq!(store.load(GroupId(4)).unwrap(), None);
}

/// Eight busy groups take a snapshot every 200 entries; one idle group wrote three entries and
/// a hard state at the start. Disk use must stay bounded, and nothing any group needs is lost.
#[test]
fn steady_load_with_snapshots_keeps_disk_use_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let snap_dir = dir.path().join("snapshots");
    let segment_bytes_max = 16 * 1024;
    let options = WalOptions {
        segment_bytes_max,
        fsync: false,
        ..WalOptions::default()
    };
    let mut wal = Wal::open(&wal_dir, options.clone()).unwrap();
    let store = SnapshotStore::open(&snap_dir, false).unwrap();
    let idle = GroupId(100);
    let idle_hs = HardState {
        term: Term(4),
        vote: Some(NodeId(2)),
        commit: LogIndex(2),
    };
    wal.append_entries(idle, &entries(1, 3, 4, "idle")).unwrap();
    wal.set_hard_state(idle, idle_hs).unwrap();
    wal.sync().unwrap();
    let busy: Vec<GroupId> = (1..=8).map(GroupId).collect();
    let mut peak_bytes = 0;
    let mut peak_segments = 0;
    let payload = Bytes::from(vec![7u8; 100]);
    for round in 1..=3000u64 {
        for &g in &busy {
            let e = Entry {
                term: Term(1),
                index: LogIndex(round),
                kind: EntryKind::Normal,
                data: payload.clone(),
            };
            wal.append_entries(g, &[e]).unwrap();
            let hs = HardState {
                term: Term(1),
                vote: Some(NodeId(1)),
                commit: LogIndex(round),
            };
            wal.set_hard_state(g, hs).unwrap();
            if round % 200 == 0 {
                // Snapshot first, durable; then tell the log (see `storage` docs).
                let snap = Snapshot {
                    meta: SnapshotMeta {
                        index: LogIndex(round - 10),
                        term: Term(1),
                        voters: vec![NodeId(1)],
                    },
                    data: Bytes::from(format!("{g} at {round}")),
                };
                store.save(g, &snap).unwrap();
                wal.compact(g, LogIndex(round - 10)).unwrap();
            }
        }
        wal.sync().unwrap();
        peak_bytes = peak_bytes.max(dir_bytes(&wal_dir));
        peak_segments = peak_segments.max(wal.segment_count());
    }
    println!("peak {peak_bytes} bytes in at most {peak_segments} segments");
    // 8 groups * up to 210 live entries * ~150 bytes ~= 250 KiB live, plus slack.
    assert!(peak_segments <= 40, "segments grew to {peak_segments}");
    assert!(
        peak_bytes <= 40 * segment_bytes_max + 4096,
        "disk grew to {peak_bytes}"
    );
    drop(wal);
    let wal = Wal::open(&wal_dir, options).unwrap();
    assert_eq!(wal.hard_state(idle), idle_hs);
    assert_eq!(
        wal.entries(idle, LogIndex(1), LogIndex(4)).unwrap(),
        entries(1, 3, 4, "idle")
    );
    for &g in &busy {
        let snap = store.load(g).unwrap().unwrap();
        assert_eq!(snap.meta.index, LogIndex(2990));
        assert_eq!(wal.snapshot_point(g), (LogIndex(2990), Term(1)));
        assert_eq!(wal.first_index(g), LogIndex(2991));
        assert_eq!(wal.last_index(g), LogIndex(3000));
        let live = wal.entries(g, LogIndex(2991), LogIndex(3001)).unwrap();
        assert!(live.iter().all(|e| e.data == payload));
        assert_eq!(wal.hard_state(g).commit, LogIndex(3000));
    }
}

#[test]
fn dump_lists_records_and_gives_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    // The file is edited byte by byte below: no preallocated zeros after the records.
    let mut wal = Wal::open(
        &wal_dir,
        WalOptions {
            preallocate: false,
            ..WalOptions::default()
        },
    )
    .unwrap();
    for g in 1..=3 {
        wal.append_entries(GroupId(g), &entries(1, 4, 1, "d"))
            .unwrap();
        wal.set_hard_state(
            GroupId(g),
            HardState {
                term: Term(1),
                vote: None,
                commit: LogIndex(2),
            },
        )
        .unwrap();
    }
    wal.compact(GroupId(2), LogIndex(2)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let mut out = Vec::new();
    assert_eq!(dump(dir.path(), &mut out).unwrap(), DumpVerdict::Clean);
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert!(text.contains("entries") && text.contains("index 1..=4 term 1..=1"));
    assert!(text.contains("snapshot_marker") && text.contains("verdict: clean"));
    assert_eq!(text.lines().filter(|l| l.contains(" group ")).count(), 7);

    let segment = segment_files(&wal_dir).pop().unwrap();
    let clean = std::fs::read(&segment).unwrap();
    // A torn tail: half a record at the end.
    let mut torn = clean.clone();
    torn.extend_from_slice(&clean[..20]);
    std::fs::write(&segment, &torn).unwrap();
    let verdict = dump(dir.path(), &mut Vec::new()).unwrap();
    assert_eq!(
        verdict,
        DumpVerdict::TornTail {
            path: segment.clone(),
            offset_bytes: clean.len() as u64
        }
    );
    // dump changed nothing.
    assert_eq!(std::fs::read(&segment).unwrap(), torn);

    // A flipped bit in the first record, followed by good ones: corruption, exit 1.
    let mut bad = clean.clone();
    bad[12] ^= 1;
    std::fs::write(&segment, &bad).unwrap();
    let verdict = dump(dir.path(), &mut Vec::new()).unwrap();
    assert!(matches!(
        verdict,
        DumpVerdict::Corruption {
            offset_bytes: 0,
            ..
        }
    ));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kvs"))
        .args(["wal", "dump"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("CORRUPTION"));
    match Wal::open(&wal_dir, WalOptions::default()) {
        Err(StorageError::Corruption {
            path, offset_bytes, ..
        }) => {
            assert_eq!(path, segment);
            assert_eq!(offset_bytes, 0);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    std::fs::write(&segment, &clean).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kvs"))
        .args(["wal", "dump"])
        .arg(&wal_dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A crash after a snapshot is saved but before the log records it: the node's start-up load
/// brings the log up to the snapshot; a log compacted past every snapshot file is refused.
#[test]
fn start_up_reconciles_the_log_with_the_snapshot_store() {
    let dir = tempfile::tempdir().unwrap();
    let (wal_dir, snap_dir) = (dir.path().join("wal"), dir.path().join("snapshots"));
    let (local, installed, lost) = (GroupId(1), GroupId(2), GroupId(3));
    {
        let mut wal = Wal::open(&wal_dir, WalOptions::default()).unwrap();
        let store = SnapshotStore::open(&snap_dir, true).unwrap();
        for g in [local, installed, lost] {
            wal.append_entries(g, &entries(1, 20, 1, "e")).unwrap();
        }
        wal.sync().unwrap();
        // Local snapshot at 15 and an installed one at 30: saved, then the crash.
        store.save(local, &snapshot_at(15, 1)).unwrap();
        store.save(installed, &snapshot_at(30, 2)).unwrap();
        // A group whose snapshot file will vanish after the log was compacted.
        store.save(lost, &snapshot_at(10, 1)).unwrap();
        wal.compact(lost, LogIndex(10)).unwrap();
        wal.sync().unwrap();
        std::fs::remove_file(snap_dir.join("00000000000000000003-00000000000000000010.snap"))
            .unwrap();
    }
    let mut wal = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    let store = SnapshotStore::open(&snap_dir, true).unwrap();
    assert_eq!(
        known_groups(&wal, &store).unwrap(),
        vec![local, installed, lost]
    );
    let g = recover_group(&mut wal, &store, local).unwrap();
    assert_eq!(g.snapshot.unwrap().meta.index, LogIndex(15));
    assert_eq!(g.entries, entries(16, 5, 1, "e"));
    let g = recover_group(&mut wal, &store, installed).unwrap();
    assert_eq!(g.snapshot.unwrap().meta.index, LogIndex(30));
    assert!(g.entries.is_empty());
    assert!(matches!(
        recover_group(&mut wal, &store, lost),
        Err(StorageError::SnapshotMissing {
            index: LogIndex(10),
            ..
        })
    ));
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    assert_eq!(wal.snapshot_point(local), (LogIndex(15), Term(1)));
    assert_eq!(wal.first_index(installed), LogIndex(31));
}

fn snapshot_at(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
            voters: vec![NodeId(1)],
        },
        data: Bytes::from(format!("state at {index}")),
    }
}

/// A batch larger than one record is split into several; an overwrite that spans records and
/// segments still replays to exactly the new log.
#[test]
fn large_batches_split_into_records_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        segment_bytes_max: 4096,
        record_bytes_max: 1024,
        entry_cache_bytes_max: 0,
        ..WalOptions::default()
    };
    let g = GroupId(5);
    let mut expected = entries(1, 300, 1, "first");
    {
        let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
        wal.append_entries(g, &expected).unwrap();
        wal.append_entries(g, &entries(101, 150, 2, "second"))
            .unwrap();
        wal.sync().unwrap();
        assert!(wal.segment_count() > 2);
        expected.truncate(100);
        expected.extend(entries(101, 150, 2, "second"));
        assert_eq!(
            wal.entries(g, LogIndex(1), LogIndex(251)).unwrap(),
            expected
        );
    }
    let wal = Wal::open(dir.path(), options).unwrap();
    assert_eq!(wal.last_index(g), LogIndex(250));
    assert_eq!(
        wal.entries(g, LogIndex(1), LogIndex(251)).unwrap(),
        expected
    );
}

#[test]
fn preallocated_segments_recover_cleanly_roll_trimmed_and_keep_appending() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        segment_bytes_max: 64 * 1024,
        preallocate: true,
        fsync: false,
        ..WalOptions::default()
    };
    let entries = |from: u64, n: u64| -> Vec<Entry> {
        (from..from + n)
            .map(|i| Entry {
                term: Term(1),
                index: LogIndex(i),
                kind: EntryKind::Normal,
                data: bytes::Bytes::from(vec![b'x'; 100]),
            })
            .collect()
    };
    let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
    wal.append_entries(GroupId(1), &entries(1, 10)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    // The active segment has its full size: zeros after the records.
    let active = segment_files(dir.path()).pop().unwrap();
    assert_eq!(std::fs::metadata(&active).unwrap().len(), 64 * 1024);
    // Reopening sees a clean log, not damage, and appends after the last record.
    let mut out = Vec::new();
    assert_eq!(dump(dir.path(), &mut out).unwrap(), DumpVerdict::Clean);
    let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
    assert_eq!(wal.last_index(GroupId(1)), LogIndex(10));
    // Enough to roll several times: closed segments are trimmed to their records.
    let mut next = 11;
    for _ in 0..40 {
        wal.append_entries(GroupId(1), &entries(next, 20)).unwrap();
        wal.sync().unwrap();
        next += 20;
    }
    drop(wal);
    let files = segment_files(dir.path());
    assert!(files.len() > 1, "the log never rolled");
    for closed in &files[..files.len() - 1] {
        let bytes = std::fs::read(closed).unwrap();
        assert_ne!(bytes.last(), Some(&0), "{} keeps zeros", closed.display());
    }
    let wal = Wal::open(dir.path(), options).unwrap();
    assert_eq!(wal.last_index(GroupId(1)), LogIndex(next - 1));
    let got = wal
        .entries(GroupId(1), LogIndex(next - 20), LogIndex(next))
        .unwrap();
    assert_eq!(got, entries(next - 20, 20));
}

#[test]
fn planted_skip_fsync_reports_durable_without_syncing() {
    for bug in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            fsync: true,
            bug_skip_fsync: bug,
            ..WalOptions::default()
        };
        let g = GroupId(3);
        {
            let mut wal = Wal::open(dir.path(), options.clone()).unwrap();
            wal.append_entries(g, &entries(1, 5, 1, "e")).unwrap();
            wal.sync().unwrap();
            wal.append_entries(g, &entries(6, 5, 1, "e")).unwrap();
            wal.sync().unwrap();
            wal.sync().unwrap(); // nothing new: no sync either way
            let expected = if bug { 0 } else { 2 };
            assert_eq!(wal.syncs_made(), expected, "bug {bug}");
        }
        // The records still reached the kernel with write(): a process restart (not a power
        // loss) finds them.
        let wal = Wal::open(dir.path(), options).unwrap();
        assert_eq!(wal.last_index(g), LogIndex(10), "bug {bug}");
    }
}
