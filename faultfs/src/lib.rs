//! `faultfs`: a FUSE filesystem that loses what was never synced, like a disk in a power cut.
//!
//! It is our own take on Jepsen's lazyfs. A [`Mount`] shows a backing directory at a mount
//! point and passes everything through, except that durability is simulated:
//!
//! - **Data.** A `write` is visible to reads at once but only kept in memory, as per-inode
//!   dirty extents plus a live size (truncate/extend through `setattr` size or `fallocate`
//!   mode 0). `fsync`/`fdatasync` of the file writes the extents and the size to the backing
//!   file. The backing file is not itself fsynced unless [`Options::sync_backing`] is set:
//!   the crash is simulated, not real.
//! - **Namespace.** `create`, `mknod` (regular files only), `mkdir`, `unlink`, `rmdir` and
//!   `rename` are visible at once and durable when the parent directory is synced
//!   (`fsync` on an open directory). A rename across directories becomes durable when the
//!   *destination* directory is synced: until then the old name stays durable, even if the
//!   source directory is synced. A file created and fsynced but whose directory entry was
//!   never synced has durable data and no durable name: it vanishes in a crash.
//! - **Crash.** [`Mount::lose_unsynced`] reverts the namespace and every file to their
//!   durable state; with a seed it also keeps a seeded random proper prefix of the most
//!   recent unsynced write (a torn tail). Call it only once the processes using the mount
//!   are dead: handles opened before it become invalid (`EIO` on read, write and fsync;
//!   `flush` and `release` are harmless no-ops), so nothing can be resurrected through them.
//! - **No kernel caching.** Files are opened with direct I/O, entries and attributes have a
//!   zero TTL and the writeback cache is off, so nothing stale is served after a crash.
//!   Memory-mapping files is not supported in a meaningful way (the store does not mmap).
//! - **Memory bound.** When a mount holds more than [`Options::dirty_limit_bytes`] of
//!   unsynced data, the files dirty for the longest are written back (made durable, data
//!   only, like kernel writeback), counted in [`Stats::written_back_bytes`].
//!
//! The backing directory always holds exactly the durable state under the real names;
//! objects without a durable name live in a hidden `.faultfs/` folder in the backing root,
//! which the mount never shows, and which is emptied on mount, on crash and on unmount.
//! Mounting over a backing directory with content shows that content (all of it durable).
//!
//! Not supported: hard links and symlinks (`EPERM`), device nodes, fifos and sockets
//! (`mknod` gives `EPERM`; such entries already in the backing directory are not shown),
//! extended attributes (`ENOSYS`), `RENAME_WHITEOUT` (`EINVAL`). Metadata changes (mode,
//! owner, times) go straight to the backing object and are therefore always durable.
//! Permission checks are not done (the harness runs as root); `access` always succeeds.
//! POSIX and BSD locks are handled by the kernel locally.

mod extents;
mod fs;
mod state;

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fuser::{BackgroundSession, Config, MountOption};
use serde::Serialize;

use crate::fs::{lock, FaultFs};
use crate::state::State;

/// Why FUSE cannot be used on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FUSE is unavailable: {reason}; run scripts/install-fuse.sh to set it up")]
pub struct Unavailable {
    /// What is missing.
    pub reason: String,
}

/// Errors of mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// FUSE cannot be used here.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The backing directory cannot be used.
    #[error("backing directory {path}: {source}")]
    Backing {
        /// The backing directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The mount failed.
    #[error("mounting faultfs at {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The unmount failed (the mount was then detached lazily).
    #[error("unmounting faultfs at {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Above this much unsynced data, the oldest dirty files are written back. Default 256 MiB.
    pub dirty_limit_bytes: u64,
    /// Whether a sync through the mount also fsyncs the backing file or directory.
    /// Default false: the crash is simulated, a real power cut is not expected.
    pub sync_backing: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dirty_limit_bytes: 256 << 20,
            sync_backing: false,
        }
    }
}

/// Counters of a mount since it was mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Write requests received.
    pub writes: u64,
    /// Bytes received in write requests.
    pub bytes_written: u64,
    /// File syncs (`fsync` and `fdatasync`).
    pub fsyncs: u64,
    /// Directory syncs.
    pub dir_syncs: u64,
    /// Unsynced bytes held in memory now.
    pub unsynced_bytes: u64,
    /// Bytes made durable because the dirty limit was exceeded.
    pub written_back_bytes: u64,
    /// File writebacks done because the dirty limit was exceeded.
    pub written_back_files: u64,
    /// Crashes simulated by [`Mount::lose_unsynced`].
    pub crashes: u64,
}

/// What a simulated crash dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LossReport {
    /// Unsynced bytes dropped (bytes covered by dirty extents).
    pub bytes_dropped: u64,
    /// Write requests whose data was not synced.
    pub writes_dropped: u64,
    /// Files and directories that had a name on the mount and vanished.
    pub files_vanished: u64,
    /// Directory entries reverted: each entry added, removed or re-pointed since the
    /// directory's last sync counts once (a same-directory rename counts twice).
    pub namespace_ops_undone: u64,
    /// Bytes of the most recent unsynced write kept as a torn tail.
    pub torn_bytes_kept: u64,
}

/// Checks that FUSE can be used: `/dev/fuse` exists and opens, and we can mount (root, or
/// `fusermount3`/`fusermount` on `PATH`).
///
/// # Errors
/// [`Unavailable`], whose message says what is missing and names `scripts/install-fuse.sh`.
pub fn available() -> Result<(), Unavailable> {
    let dev = Path::new("/dev/fuse");
    if !dev.exists() {
        return Err(Unavailable {
            reason: "/dev/fuse does not exist (is the fuse kernel module loaded? in a \
                     container, pass --device /dev/fuse)"
                .into(),
        });
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open(dev) {
        return Err(Unavailable {
            reason: format!("/dev/fuse cannot be opened: {e}"),
        });
    }
    if !nix::unistd::geteuid().is_root() && !on_path("fusermount3") && !on_path("fusermount") {
        return Err(Unavailable {
            reason: "not running as root and neither fusermount3 nor fusermount is on PATH".into(),
        });
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

/// A mounted faultfs. Dropping it unmounts (best effort, lazily if busy).
pub struct Mount {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mount")
            .field("mountpoint", &self.mountpoint)
            .field("mounted", &self.session.is_some())
            .finish()
    }
}

impl Mount {
    /// Mounts `backing` at `mountpoint` (an existing directory) and serves it from a
    /// background thread. Returns once the mount is usable.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when FUSE cannot be used, [`Error::Backing`] when the backing
    /// directory cannot be read, [`Error::Mount`] when mounting fails.
    #[allow(clippy::self_named_constructors)] // the name the harness calls
    pub fn mount(backing: &Path, mountpoint: &Path, options: Options) -> Result<Mount, Error> {
        available()?;
        let backing_err = |source| Error::Backing {
            path: backing.to_path_buf(),
            source,
        };
        let mount_err = |source| Error::Mount {
            path: mountpoint.to_path_buf(),
            source,
        };
        let backing = backing.canonicalize().map_err(backing_err)?;
        if !backing.is_dir() {
            return Err(backing_err(io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        // A mount left behind by a killed process answers ENOTCONN: clear it first.
        if let Err(e) = std::fs::metadata(mountpoint) {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                let _ = force_unmount(mountpoint);
            }
        }
        let mountpoint = mountpoint.canonicalize().map_err(mount_err)?;
        if backing.starts_with(&mountpoint) || mountpoint.starts_with(&backing) {
            return Err(mount_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "backing directory and mount point must not contain each other",
            )));
        }
        let before = std::fs::metadata(&mountpoint).map_err(mount_err)?;
        if !before.is_dir() {
            return Err(mount_err(io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        let state = Arc::new(Mutex::new(
            State::new(&backing, options).map_err(backing_err)?,
        ));
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("faultfs".into()), MountOption::NoAtime];
        config.n_threads = Some(1);
        let fs = FaultFs {
            state: Arc::clone(&state),
        };
        let session = fuser::spawn_mount(fs, &mountpoint, &config).map_err(mount_err)?;
        let mount = Mount {
            state,
            session: Some(session),
            mountpoint,
        };
        // The kernel answers for the mount point from now on; check it is us.
        match std::fs::metadata(&mount.mountpoint) {
            Ok(after) if after.dev() != before.dev() => Ok(mount),
            Ok(_) => Err(mount_err(io::Error::other(
                "the mount point did not change device after mounting",
            ))),
            Err(e) => Err(mount_err(e)),
        }
    }

    /// Simulates a power cut: reverts the namespace and every file to their durable state.
    /// Files created but never durably named vanish; unlinks and renames whose directory
    /// was not synced are undone. With `torn = Some(seed)`, a seeded random proper prefix
    /// (`0..len` bytes) of the most recent unsynced write on the mount is kept on the
    /// durable content of its file, if that file survives.
    ///
    /// Call it only after the processes using the mount were killed and reaped.
    pub fn lose_unsynced(&self, torn: Option<u64>) -> LossReport {
        lock(&self.state).crash(torn)
    }

    /// The counters of this mount.
    pub fn stats(&self) -> Stats {
        let st = lock(&self.state);
        let mut stats = st.stats.clone();
        stats.unsynced_bytes = st.unsynced_bytes();
        stats
    }

    /// The mount point (canonical).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts. Unsynced data is lost, as in a crash; the backing directory keeps the
    /// durable state. If the mount is busy it is detached lazily and an error is returned.
    ///
    /// # Errors
    /// [`Error::Unmount`] when the unmount failed (the mount was detached anyway).
    pub fn unmount(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => {
                lock(&self.state).remove_stash();
                Ok(())
            }
            Err(source) => {
                let _ = force_unmount(&self.mountpoint);
                Err(Error::Unmount {
                    path: self.mountpoint.clone(),
                    source,
                })
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Forcibly removes a faultfs mount left at `mountpoint` (for instance by a process that
/// was killed): aborts its FUSE connection when `/sys/fs/fuse/connections` is available and
/// detaches it lazily. Does nothing unless a faultfs mount is there.
///
/// # Errors
/// [`Error::Unmount`] when the detach fails.
pub fn force_unmount(mountpoint: &Path) -> Result<(), Error> {
    let target = mountpoint
        .canonicalize()
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let found = faultfs_mounts()
        .into_iter()
        .filter(|(point, _)| *point == target)
        .map(|(_, minor)| minor)
        .next_back();
    let Some(minor) = found else {
        return Ok(());
    };
    let abort = Path::new("/sys/fs/fuse/connections")
        .join(&minor)
        .join("abort");
    let _ = std::fs::write(abort, b"1");
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).map_err(|e| Error::Unmount {
        path: target.clone(),
        source: io::Error::from_raw_os_error(e as i32),
    })
}

/// Every faultfs mount of this mount namespace: its mount point and its FUSE connection's
/// device minor number.
fn faultfs_mounts() -> Vec<(PathBuf, String)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(dev), Some(point), Some(fstype), Some(source)) = (
            fields.get(2),
            fields.get(4),
            fields.get(sep + 1),
            fields.get(sep + 2),
        ) else {
            continue;
        };
        if fstype.starts_with("fuse") && *source == "faultfs" {
            if let Some(minor) = dev.split(':').nth(1) {
                found.push((PathBuf::from(unescape_mountinfo(point)), minor.to_owned()));
            }
        }
    }
    found
}

/// Removes every faultfs mount whose filesystem process is gone (the mount point answers
/// "transport endpoint is not connected"), as a harness killed with SIGKILL leaves them, and
/// returns their mount points. Live mounts, this process's or another's, are left alone.
pub fn clear_dead_mounts() -> Vec<PathBuf> {
    faultfs_mounts()
        .into_iter()
        .filter(|(point, _)| {
            std::fs::metadata(point).is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN))
        })
        .filter_map(|(point, _)| force_unmount(&point).ok().map(|()| point))
        .collect()
}

/// Undoes the octal escapes (`\040` for a space...) of /proc/self/mountinfo.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::Mount>();
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(super::unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(super::unescape_mountinfo("/plain"), "/plain");
        assert_eq!(super::unescape_mountinfo("/end\\"), "/end\\");
    }
}
