//! Real mounts: what survives a simulated crash.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

use common::*;
use faultfs::Options;

#[test]
fn synced_write_survives() {
    let Some(f) = setup() else { return };
    write_synced(&f.p("a"), b"hello");
    sync_dir(&f.mnt);
    let r = f.crash();
    assert_eq!(read(&f.p("a")), b"hello");
    assert_eq!(r.bytes_dropped, 0);
    assert_eq!(r.files_vanished, 0);
    let s = f.m().stats();
    assert!(s.fsyncs >= 1 && s.dir_syncs >= 1 && s.crashes == 1, "{s:?}");
}

#[test]
fn unsynced_write_is_lost() {
    let Some(f) = setup() else { return };
    write_synced(&f.p("a"), b"durable");
    sync_dir(&f.mnt);
    let file = OpenOptions::new().write(true).open(f.p("a")).unwrap();
    file.write_all_at(b"XY", 2).unwrap();
    file.write_all_at(b" and more", 7).unwrap();
    drop(file);
    assert_eq!(f.m().stats().unsynced_bytes, 11);
    let r = f.crash();
    assert_eq!(read(&f.p("a")), b"durable");
    assert_eq!(r.bytes_dropped, 11);
    assert_eq!(r.writes_dropped, 2);
    assert_eq!(f.m().stats().unsynced_bytes, 0);
}

#[test]
fn reads_see_unsynced_writes() {
    let Some(f) = setup() else { return };
    write_synced(&f.p("a"), &[b'a'; 10_000]);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.p("a"))
        .unwrap();
    file.write_all_at(b"BBBB", 4094).unwrap();
    file.write_all_at(b"tail", 12_000).unwrap();
    let mut want = vec![b'a'; 10_000];
    want[4094..4098].copy_from_slice(b"BBBB");
    want.resize(12_000, 0);
    want.extend_from_slice(b"tail");
    assert_eq!(read(&f.p("a")), want);
    assert_eq!(fs::metadata(f.p("a")).unwrap().len(), 12_004);
    let mut part = [0u8; 8];
    file.read_exact_at(&mut part, 4092).unwrap();
    assert_eq!(&part, b"aaBBBBaa");
    // The backing file still holds the synced content only.
    assert_eq!(read(&f.b(".faultfs/2")).len(), 10_000);
}

#[test]
fn unsynced_truncate_and_extend_are_undone() {
    let Some(f) = setup() else { return };
    let data = pattern(1, 5000);
    write_synced(&f.p("a"), &data);
    write_synced(&f.p("b"), &data);
    sync_dir(&f.mnt);
    // Shrink then grow: the middle must read as zeros before the crash.
    let a = OpenOptions::new().write(true).open(f.p("a")).unwrap();
    a.set_len(100).unwrap();
    a.set_len(6000).unwrap();
    drop(a);
    let mut want = data[..100].to_vec();
    want.resize(6000, 0);
    assert_eq!(read(&f.p("a")), want);
    // Extend only.
    let b = OpenOptions::new().write(true).open(f.p("b")).unwrap();
    b.set_len(9000).unwrap();
    drop(b);
    assert_eq!(fs::metadata(f.p("b")).unwrap().len(), 9000);
    f.crash();
    assert_eq!(read(&f.p("a")), data);
    assert_eq!(read(&f.p("b")), data);
    // A synced truncate is kept.
    let a = OpenOptions::new().write(true).open(f.p("a")).unwrap();
    a.set_len(10).unwrap();
    a.sync_all().unwrap();
    drop(a);
    f.crash();
    assert_eq!(read(&f.p("a")), &data[..10]);
}

#[test]
fn created_and_fsynced_without_dir_sync_vanishes() {
    let Some(f) = setup() else { return };
    fs::create_dir(f.p("d")).unwrap();
    write_synced(&f.p("d/new"), b"data");
    sync_dir(&f.p("d"));
    // d itself was never durably named in the root.
    write_synced(&f.p("lonely"), b"data");
    let r = f.crash();
    assert!(!exists(&f.p("lonely")));
    assert!(!exists(&f.p("d")));
    assert_eq!(r.files_vanished, 3, "{r:?}");
    assert!(fs::read_dir(&f.mnt).unwrap().next().is_none());
    // With the directory synced it stays.
    write_synced(&f.p("kept"), b"data");
    sync_dir(&f.mnt);
    f.crash();
    assert_eq!(read(&f.p("kept")), b"data");
}

#[test]
fn rename_without_dir_sync_is_undone() {
    let Some(f) = setup() else { return };
    write_synced(&f.p("old"), b"old content");
    write_synced(&f.p("target"), b"target content");
    write_synced(&f.p("x"), b"x");
    sync_dir(&f.mnt);
    fs::rename(f.p("old"), f.p("target")).unwrap();
    assert!(!exists(&f.p("old")));
    assert_eq!(read(&f.p("target")), b"old content");
    // Rename to a fresh name too.
    fs::rename(f.p("x"), f.p("y")).unwrap();
    let r = f.crash();
    assert_eq!(read(&f.p("old")), b"old content");
    assert_eq!(read(&f.p("target")), b"target content");
    assert_eq!(read(&f.p("x")), b"x");
    assert!(!exists(&f.p("y")));
    assert!(r.namespace_ops_undone >= 3, "{r:?}");
}

#[test]
fn rename_with_dir_sync_survives() {
    let Some(f) = setup() else { return };
    fs::create_dir(f.p("src")).unwrap();
    fs::create_dir(f.p("dst")).unwrap();
    sync_dir(&f.mnt);
    write_synced(&f.p("src/tmp"), b"snapshot");
    write_synced(&f.p("src/a"), b"a");
    write_synced(&f.p("src/b"), b"b");
    sync_dir(&f.p("src"));
    // Same directory: temp file renamed into place.
    fs::rename(f.p("src/tmp"), f.p("src/final")).unwrap();
    sync_dir(&f.p("src"));
    // Across directories, destination synced.
    fs::rename(f.p("src/a"), f.p("dst/a")).unwrap();
    sync_dir(&f.p("dst"));
    // Across directories, only the source synced: the old name stays durable.
    fs::rename(f.p("src/b"), f.p("dst/b")).unwrap();
    sync_dir(&f.p("src"));
    f.crash();
    assert_eq!(read(&f.p("src/final")), b"snapshot");
    assert!(!exists(&f.p("src/tmp")));
    assert_eq!(read(&f.p("dst/a")), b"a");
    assert!(!exists(&f.p("src/a")));
    assert_eq!(read(&f.p("src/b")), b"b");
    assert!(!exists(&f.p("dst/b")));
    assert_eq!(read(&f.b("src/final")), b"snapshot");
    assert_eq!(read(&f.b("dst/a")), b"a");
}

#[test]
fn unlink_without_dir_sync_is_undone() {
    let Some(f) = setup() else { return };
    write_synced(&f.p("a"), b"a");
    write_synced(&f.p("b"), b"b");
    fs::create_dir(f.p("d")).unwrap();
    sync_dir(&f.mnt);
    fs::remove_file(f.p("a")).unwrap();
    fs::remove_file(f.p("b")).unwrap();
    fs::remove_dir(f.p("d")).unwrap();
    sync_dir(&f.mnt);
    write_synced(&f.p("c"), b"c");
    sync_dir(&f.mnt);
    fs::remove_file(f.p("c")).unwrap();
    assert!(!exists(&f.p("c")));
    f.crash();
    assert!(!exists(&f.p("a")));
    assert!(!exists(&f.p("b")));
    assert!(!exists(&f.p("d")));
    assert_eq!(read(&f.p("c")), b"c");
    assert!(!exists(&f.b("a")));
}

#[test]
fn torn_tail_keeps_a_seeded_proper_prefix() {
    let Some(f) = setup() else { return };
    let data = pattern(7, 1000);
    let mut kept = Vec::new();
    for seed in 0..8u64 {
        write_synced(&f.p("log"), b"head:");
        sync_dir(&f.mnt);
        let file = OpenOptions::new().write(true).open(f.p("log")).unwrap();
        file.write_all_at(b"unsynced", 5).unwrap();
        file.write_all_at(&data, 5).unwrap();
        drop(file);
        let r = f.m().lose_unsynced(Some(seed));
        let k = r.torn_bytes_kept as usize;
        assert!(k < data.len(), "seed {seed}: kept {k}, not a proper prefix");
        let mut want = b"head:".to_vec();
        want.extend_from_slice(&data[..k]);
        // The earlier unsynced write is lost, not torn: only the last write tears.
        assert_eq!(read(&f.p("log")), want, "seed {seed}");
        assert_eq!(r.writes_dropped, 2);
        kept.push(k);
    }
    assert!(kept.iter().any(|&k| k > 0), "{kept:?}");
    // Same seed, same outcome.
    write_synced(&f.p("log"), b"head:");
    let file = OpenOptions::new().write(true).open(f.p("log")).unwrap();
    file.write_all_at(&data, 5).unwrap();
    drop(file);
    let r = f.m().lose_unsynced(Some(3));
    assert_eq!(r.torn_bytes_kept as usize, kept[3]);
    // A torn tail never lands in a file that vanished.
    write_synced(&f.p("ghost"), b"x");
    let file = OpenOptions::new().write(true).open(f.p("ghost")).unwrap();
    file.write_all_at(&data, 1).unwrap();
    drop(file);
    let r = f.m().lose_unsynced(Some(3));
    assert_eq!(r.torn_bytes_kept, 0);
    assert!(!exists(&f.p("ghost")));
}

#[test]
fn stale_handles_cannot_resurrect_data() {
    let Some(f) = setup() else { return };
    write_synced(&f.p("a"), b"durable");
    sync_dir(&f.mnt);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.p("a"))
        .unwrap();
    file.write_all(b"lost").unwrap();
    f.crash();
    // Writes, ftruncate and fsync through the old handle fail; close is harmless.
    assert!(file.write_all_at(b"zombie", 0).is_err());
    assert!(file.set_len(1).is_err());
    assert!(file.sync_all().is_err());
    drop(file);
    f.crash();
    assert_eq!(read(&f.p("a")), b"durable");
    assert_eq!(read(&f.b("a")), b"durable");
}

#[test]
fn backing_dir_after_unmount_holds_the_durable_state() {
    let Some(mut f) = setup() else { return };
    fs::create_dir(f.p("wal")).unwrap();
    fs::create_dir(f.p("tmpdir")).unwrap();
    sync_dir(&f.mnt);
    write_synced(&f.p("wal/seg1"), b"synced seg");
    sync_dir(&f.p("wal"));
    write_unsynced(&f.p("wal/seg2"), b"never synced");
    write_synced(&f.p("wal/seg3"), b"data synced, name not");
    let seg1 = OpenOptions::new()
        .append(true)
        .open(f.p("wal/seg1"))
        .unwrap();
    (&seg1).write_all(b" + unsynced tail").unwrap();
    drop(seg1);
    write_synced(&f.p("tmpdir/x"), b"x");
    sync_dir(&f.p("tmpdir"));
    fs::rename(f.p("tmpdir/x"), f.p("wal/x")).unwrap();
    f.unmount();
    let got = tree(&f.backing);
    let want: Vec<(&str, Option<&[u8]>)> = vec![
        ("tmpdir", None),
        ("tmpdir/x", Some(b"x")),
        ("wal", None),
        ("wal/seg1", Some(b"synced seg")),
    ];
    let want = want
        .into_iter()
        .map(|(p, c)| (p.into(), c.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn mount_over_existing_content_shows_it() {
    let Some(mut f) = setup() else { return };
    f.unmount();
    fs::create_dir_all(f.b("group-1/snap")).unwrap();
    fs::write(f.b("group-1/wal.log"), b"existing log").unwrap();
    fs::write(f.b("group-1/snap/1.snap"), pattern(3, 70_000)).unwrap();
    fs::write(f.b("top"), b"").unwrap();
    // A stash left behind by an earlier run is garbage.
    fs::create_dir_all(f.b(".faultfs")).unwrap();
    fs::write(f.b(".faultfs/99"), b"junk").unwrap();
    f.remount();
    assert_eq!(read(&f.p("group-1/wal.log")), b"existing log");
    assert_eq!(read(&f.p("group-1/snap/1.snap")), pattern(3, 70_000));
    assert_eq!(read(&f.p("top")), b"");
    let mut names: Vec<_> = fs::read_dir(&f.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["group-1", "top"]);
    assert!(!exists(&f.p(".faultfs")));
    // All of it is durable.
    let r = f.crash();
    assert_eq!(r, faultfs::LossReport::default());
    assert_eq!(read(&f.p("group-1/wal.log")), b"existing log");
}

#[test]
fn dirty_limit_writes_back_the_oldest() {
    let Some(f) = setup_with(Options {
        dirty_limit_bytes: 1 << 20,
        sync_backing: false,
    }) else {
        return;
    };
    write_synced(&f.p("old"), b"");
    write_synced(&f.p("new"), b"");
    sync_dir(&f.mnt);
    let old = pattern(1, 768 << 10);
    let new = pattern(2, 768 << 10);
    let mut a = OpenOptions::new().write(true).open(f.p("old")).unwrap();
    a.write_all(&old).unwrap();
    let mut b = OpenOptions::new().write(true).open(f.p("new")).unwrap();
    b.write_all(&new).unwrap();
    drop((a, b));
    let s = f.m().stats();
    assert!(s.written_back_bytes >= 768 << 10, "{s:?}");
    assert!(s.unsynced_bytes <= 1 << 20, "{s:?}");
    f.crash();
    // The oldest dirty file was written back; the newer one was not.
    assert_eq!(read(&f.p("old")), old);
    assert_eq!(read(&f.p("new")), b"");
}

#[test]
fn ordinary_filesystem_operations() {
    use std::os::unix::fs::PermissionsExt;
    let Some(f) = setup() else { return };
    // O_EXCL.
    File::create_new(f.p("x")).unwrap();
    assert_eq!(
        File::create_new(f.p("x")).unwrap_err().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    // mkdir, readdir, rmdir of a non-empty dir.
    fs::create_dir_all(f.p("a/b/c")).unwrap();
    fs::write(f.p("a/b/file"), b"1").unwrap();
    let mut names: Vec<_> = fs::read_dir(f.p("a/b"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["c", "file"]);
    assert!(fs::remove_dir(f.p("a/b")).is_err());
    assert!(fs::metadata(f.p("a/b")).unwrap().is_dir());
    // Renaming a directory into itself.
    assert!(fs::rename(f.p("a"), f.p("a/b/c/a")).is_err());
    // rename flags.
    fs::write(f.p("y"), b"y").unwrap();
    let noreplace = nix::fcntl::renameat2(
        None,
        &f.p("x"),
        None,
        &f.p("y"),
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    );
    assert_eq!(noreplace, Err(nix::errno::Errno::EEXIST));
    nix::fcntl::renameat2(
        None,
        &f.p("x"),
        None,
        &f.p("y"),
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();
    assert_eq!(read(&f.p("x")), b"y");
    assert_eq!(read(&f.p("y")), b"");
    // Modes and times.
    fs::set_permissions(f.p("y"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(
        fs::metadata(f.p("y")).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    File::options()
        .write(true)
        .open(f.p("y"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    assert_eq!(fs::metadata(f.p("y")).unwrap().modified().unwrap(), t);
    // statfs, access.
    let st = nix::sys::statvfs::statvfs(&f.mnt).unwrap();
    assert!(st.blocks() > 0);
    nix::unistd::access(&f.p("y"), nix::unistd::AccessFlags::R_OK).unwrap();
    // Hard links and symlinks are not supported.
    assert!(fs::hard_link(f.p("y"), f.p("z")).is_err());
    assert!(std::os::unix::fs::symlink("y", f.p("z")).is_err());
    // The stash name is reserved.
    assert!(fs::write(f.p(".faultfs"), b"").is_err());
    // An unlinked open file keeps working until closed.
    let h = OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.p("a/b/file"))
        .unwrap();
    fs::remove_file(f.p("a/b/file")).unwrap();
    h.write_all_at(b"23", 1).unwrap();
    let mut buf = [0u8; 3];
    h.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"123");
    drop(h);
    assert!(!exists(&f.p("a/b/file")));
}
