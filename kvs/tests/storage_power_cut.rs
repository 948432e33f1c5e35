//! The write-ahead log and the snapshot store on a filesystem that loses what was not synced
//! (`faultfs`, the harness's disk fault): after a simulated power cut, with or without a torn
//! last write, recovery finds everything they synced and nothing it cannot explain. Randomized
//! with printed seeds (`KVS_STORAGE_SEED=N` replays one). Skipped, saying why, without FUSE.

mod storage_support;

use kvs::raft::{LogIndex, NodeId, Snapshot, SnapshotMeta, Term};
use kvs::storage::{GroupId, SnapshotStore, Wal, WalOptions};
use storage_support::*;

/// A fresh faultfs mount in a temporary directory, or `None` (with the reason printed) when
/// FUSE cannot be used here.
fn mounted() -> Option<(tempfile::TempDir, faultfs::Mount)> {
    if let Err(e) = faultfs::available() {
        eprintln!("skipped: {e}");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (backing, point) = (tmp.path().join("backing"), tmp.path().join("mnt"));
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&point).unwrap();
    let mount = faultfs::Mount::mount(&backing, &point, faultfs::Options::default()).unwrap();
    Some((tmp, mount))
}

#[test]
fn a_power_cut_keeps_what_the_wal_synced() {
    let shape = WorkloadShape {
        group_count: 4,
        compact_percent: 5,
        install_percent: 2,
        data_bytes_max: 300,
    };
    for seed in seeds(6) {
        let Some((_tmp, mount)) = mounted() else {
            return;
        };
        // Directories the log creates itself: their entries must be made durable too.
        let dir = mount.mountpoint().join("data").join("node-1").join("wal");
        let options = WalOptions {
            fsync: true,
            ..test_options(16 * 1024)
        };
        let mut wal = Wal::open(&dir, options.clone()).unwrap();
        let mut rng = Rng::new(seed);
        let mut model = Model::default();
        // The state at the last sync, then every state after it (a torn tail may keep any).
        let mut since_sync = vec![Model::default()];
        for _ in 0..600 {
            random_step(&mut rng, shape, &mut wal, &mut model);
            if rng.chance(8) {
                wal.sync().unwrap();
                since_sync.clear();
            }
            since_sync.push(model.clone());
        }
        drop(wal);
        let torn = rng.chance(50).then(|| rng.next_u64());
        let lost = mount.lose_unsynced(torn);
        let wal = Wal::open(&dir, options).unwrap_or_else(|e| {
            panic!("seed {seed}: the log does not open after a power cut ({lost:?}): {e}")
        });
        let got = normalized(&model_of(&wal));
        assert!(
            since_sync.iter().any(|m| normalized(m) == got),
            "seed {seed} (KVS_STORAGE_SEED={seed} replays): after a power cut ({lost:?}) the \
             log holds a state that is neither the last synced one nor a later one"
        );
    }
}

#[test]
fn a_power_cut_keeps_a_saved_snapshot() {
    let Some((_tmp, mount)) = mounted() else {
        return;
    };
    let dir = mount.mountpoint().join("node-1").join("snapshots");
    let store = SnapshotStore::open(&dir, true).unwrap();
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(42),
            term: Term(3),
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        },
        data: bytes::Bytes::from_static(b"the state machine"),
    };
    store.save(GroupId(7), &snapshot).unwrap();
    drop(store);
    let lost = mount.lose_unsynced(Some(1));
    let store = SnapshotStore::open(&dir, true).unwrap();
    let loaded = store.load(GroupId(7)).unwrap();
    assert_eq!(
        loaded
            .as_ref()
            .map(|s| (s.meta.index, s.meta.term, &s.data)),
        Some((LogIndex(42), Term(3), &snapshot.data)),
        "after a power cut ({lost:?})"
    );
}
