//! Shared helpers of the storage tests: a seeded PRNG, a reference model of what the log must
//! hold, a random workload that drives both, and comparison of a reopened log to the model.

#![allow(dead_code)]

use bytes::Bytes;
use kvs::raft::{Entry, EntryKind, HardState, LogIndex, NodeId, SnapshotMeta, Term};
use kvs::storage::{GroupId, Wal, WalOptions};
use std::collections::BTreeMap;
use std::path::Path;

/// The project's seeded generator (`kvs::raft::rand::SplitMix64`), with a test helper.
pub struct Rng(kvs::raft::rand::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(kvs::raft::rand::SplitMix64::new(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seeds a randomized test runs: `KVS_STORAGE_SEED=N` replays one, otherwise `1..=count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("KVS_STORAGE_SEED") {
        Ok(s) => vec![s.parse().expect("KVS_STORAGE_SEED must be a number")],
        Err(_) => (1..=count).collect(),
    }
}

/// What one group's log must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupModel {
    pub hard_state: HardState,
    pub snapshot: (LogIndex, Term),
    pub entries: Vec<Entry>,
}

impl GroupModel {
    pub fn first_index(&self) -> LogIndex {
        self.snapshot.0.next()
    }
    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.snapshot.0, |e| e.index)
    }
    pub fn term_at(&self, index: LogIndex) -> Term {
        if index == self.snapshot.0 {
            return self.snapshot.1;
        }
        self.entries[(index.0 - self.first_index().0) as usize].term
    }
    fn last_term(&self) -> Term {
        self.term_at(self.last_index())
    }
}

/// What the whole log must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub groups: BTreeMap<GroupId, GroupModel>,
}

/// Knobs of the random workload.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadShape {
    pub group_count: u64,
    /// Percent of steps that compact a group up to its commit index.
    pub compact_percent: u64,
    /// Percent of steps that install a snapshot past the end of the log.
    pub install_percent: u64,
    pub data_bytes_max: u64,
}

/// Does one random operation on `wal` and mirrors it in `model`. Every operation writes at
/// most one record.
pub fn random_step(rng: &mut Rng, shape: WorkloadShape, wal: &mut Wal, model: &mut Model) {
    let group = GroupId(rng.below(shape.group_count) + 1);
    let m = model.groups.entry(group).or_default();
    let roll = rng.below(100);
    if roll < shape.compact_percent {
        let commit = m.hard_state.commit.min(m.last_index());
        if commit >= m.first_index() {
            let index = LogIndex(m.first_index().0 + rng.below(commit.0 - m.first_index().0 + 1));
            wal.compact(group, index).unwrap();
            let term = m.term_at(index);
            m.entries.retain(|e| e.index > index);
            m.snapshot = (index, term);
            return;
        }
    } else if roll < shape.compact_percent + shape.install_percent {
        let index = LogIndex(m.last_index().0 + 1 + rng.below(5));
        let term = m.hard_state.term.max(m.last_term());
        let meta = SnapshotMeta {
            index,
            term,
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        };
        wal.apply_snapshot(group, &meta).unwrap();
        m.entries.clear();
        m.snapshot = (index, term);
        return;
    } else if roll < shape.compact_percent + shape.install_percent + 15 {
        let mut hs = m.hard_state;
        if rng.chance(30) {
            hs.term = hs.term.next();
            hs.vote = None;
        }
        if hs.vote.is_none() && rng.chance(50) {
            hs.vote = Some(NodeId(rng.below(5) + 1));
        }
        let last = m.last_index();
        if last > hs.commit {
            hs.commit = LogIndex(hs.commit.0 + rng.below(last.0 - hs.commit.0 + 1));
        }
        if hs != m.hard_state {
            wal.set_hard_state(group, hs).unwrap();
            m.hard_state = hs;
        }
        return;
    }
    // Append, sometimes replacing an uncommitted suffix (a new leader's log wins).
    let last = m.last_index();
    let low = m.hard_state.commit.max(m.snapshot.0).next();
    let (start, term) = if last >= low && rng.chance(25) {
        let start = LogIndex(low.0 + rng.below(last.0 - low.0 + 1));
        (start, m.last_term().next())
    } else {
        (last.next(), m.last_term().max(m.hard_state.term))
    };
    let count = 1 + rng.below(4);
    let entries: Vec<Entry> = (0..count)
        .map(|k| {
            let len = rng.below(shape.data_bytes_max + 1) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            Entry {
                term,
                index: LogIndex(start.0 + k),
                kind: if len == 0 {
                    EntryKind::Noop
                } else {
                    EntryKind::Normal
                },
                data: Bytes::from(data),
            }
        })
        .collect();
    wal.append_entries(group, &entries).unwrap();
    m.entries.retain(|e| e.index < start);
    m.entries.extend(entries);
}

/// Asserts that `wal` holds exactly what `model` says; `context` is printed on failure.
pub fn assert_matches(wal: &Wal, model: &Model, context: &str) {
    let mut all: Vec<GroupId> = wal.groups();
    all.extend(model.groups.keys().copied());
    all.sort();
    all.dedup();
    let empty = GroupModel::default();
    for group in all {
        let m = model.groups.get(&group).unwrap_or(&empty);
        assert_eq!(
            wal.hard_state(group),
            m.hard_state,
            "{context}: {group} hard state"
        );
        assert_eq!(
            wal.snapshot_point(group),
            m.snapshot,
            "{context}: {group} snapshot"
        );
        assert_eq!(
            wal.first_index(group),
            m.first_index(),
            "{context}: {group} first"
        );
        assert_eq!(
            wal.last_index(group),
            m.last_index(),
            "{context}: {group} last"
        );
        let got = wal
            .entries(group, m.first_index(), m.last_index().next())
            .unwrap_or_else(|e| panic!("{context}: {group} entries: {e}"));
        assert_eq!(got, m.entries, "{context}: {group} entries");
        for e in &m.entries {
            assert_eq!(wal.term(group, e.index).unwrap(), Some(e.term), "{context}");
        }
    }
}

/// Options for tests: no fsync (crashes are simulated by cutting files), every record written
/// to the file at once so that file lengths mark record boundaries.
/// Options for tests that reason about file lengths: no preallocation, so a segment file is
/// exactly its records (the crash tests also check the preallocated shape, by padding cuts with
/// zeros).
pub fn test_options(segment_bytes_max: u64) -> WalOptions {
    WalOptions {
        segment_bytes_max,
        fsync: false,
        write_buffer_bytes_max: 0,
        preallocate: false,
        ..WalOptions::default()
    }
}

/// The segment files of a log directory, in order.
pub fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        std::fs::copy(item.path(), to.join(item.file_name())).unwrap();
    }
}

/// (last segment's file name, its length): where the log ends now.
pub fn log_end(dir: &Path) -> (String, u64) {
    let last = segment_files(dir).pop().expect("a segment");
    let len = std::fs::metadata(&last).unwrap().len();
    (
        last.file_name().unwrap().to_string_lossy().into_owned(),
        len,
    )
}

/// What `wal` holds, as a model (groups with nothing in them left out).
pub fn model_of(wal: &Wal) -> Model {
    let mut model = Model::default();
    for group in wal.groups() {
        let g = GroupModel {
            hard_state: wal.hard_state(group),
            snapshot: wal.snapshot_point(group),
            entries: wal
                .entries(group, wal.first_index(group), wal.last_index(group).next())
                .unwrap(),
        };
        if g != GroupModel::default() {
            model.groups.insert(group, g);
        }
    }
    model
}

/// `model` without groups that hold nothing.
pub fn normalized(model: &Model) -> Model {
    Model {
        groups: model
            .groups
            .iter()
            .filter(|(_, g)| **g != GroupModel::default())
            .map(|(k, g)| (*k, g.clone()))
            .collect(),
    }
}
