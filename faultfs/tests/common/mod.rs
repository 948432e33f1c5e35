//! Shared fixture: a backing dir and a mount point in a fresh tempdir, a mount, and a
//! watchdog that bounds the test's time.

#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use faultfs::{Mount, Options};

pub struct Fixture {
    // Field order matters: the mount goes before the tempdir.
    pub mount: Option<Mount>,
    watchdog: Option<mpsc::Sender<()>>,
    pub backing: PathBuf,
    pub mnt: PathBuf,
    pub dir: tempfile::TempDir,
    options: Options,
}

/// Mounts a fresh fixture, or prints why FUSE is unavailable and returns None.
pub fn setup() -> Option<Fixture> {
    setup_with(Options::default())
}

pub fn setup_with(options: Options) -> Option<Fixture> {
    if let Err(why) = faultfs::available() {
        eprintln!("skipping: {why}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("mnt");
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mnt).unwrap();
    let mut f = Fixture {
        mount: None,
        watchdog: None,
        backing,
        mnt,
        dir,
        options,
    };
    f.remount();
    f.watchdog = Some(watchdog(f.mnt.clone(), Duration::from_secs(120)));
    Some(f)
}

/// After `limit`, detaches the mount and ends the process: a hung test must neither hang
/// the suite nor leave a mount behind.
fn watchdog(mnt: PathBuf, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!(
                "test exceeded {limit:?}: detaching {} and exiting",
                mnt.display()
            );
            let _ = faultfs::force_unmount(&mnt);
            std::process::exit(101);
        }
    });
    tx
}

impl Fixture {
    pub fn m(&self) -> &Mount {
        self.mount.as_ref().expect("mounted")
    }

    /// A path on the mount.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// A path in the backing directory.
    pub fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }

    pub fn crash(&self) -> faultfs::LossReport {
        let r = self.m().lose_unsynced(None);
        eprintln!("crash: {r:?}");
        r
    }

    pub fn unmount(&mut self) {
        if let Some(m) = self.mount.take() {
            m.unmount().expect("unmount");
        }
        assert!(!mounted(&self.mnt), "still mounted after unmount");
    }

    pub fn remount(&mut self) {
        self.unmount();
        self.mount =
            Some(Mount::mount(&self.backing, &self.mnt, self.options.clone()).expect("mount"));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.mount.take());
        if mounted(&self.mnt) {
            // A failed assertion between mounts may leave one: never leave it behind.
            let _ = faultfs::force_unmount(&self.mnt);
        }
        drop(self.watchdog.take());
    }
}

pub fn mounted(mnt: &Path) -> bool {
    let target = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
    fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(target.to_str().unwrap()))
}

pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Writes a file through the mount and fsyncs its data (not its directory).
pub fn write_synced(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_data().unwrap();
}

/// Writes a file without any sync.
pub fn write_unsynced(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap();
}

pub fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// Every file and directory under `root` (relative path -> Some(content) or None for a dir).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// A deterministic byte pattern.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
