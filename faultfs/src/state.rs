//! The in-memory model of the mount: live namespace and data versus what is durable.
//!
//! Invariants:
//! - the backing tree (outside `.faultfs/`) is exactly the durable namespace: every inode has
//!   at most one durable name (`Loc::Durable`), and its backing object sits at that path;
//!   an inode without a durable name keeps its backing object in `.faultfs/<ino>`;
//! - a backing file holds the durable content and size of its inode; unsynced data lives in
//!   [`FileState`] only;
//! - the live namespace (`DirState::live`, `Inode::live_parent`) is what the mount shows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, RenameFlags};

use crate::extents::Extents;
use crate::{LossReport, Options, Stats};

/// The root inode number.
pub(crate) const ROOT: u64 = 1;
/// The hidden folder, inside the backing root, for objects that have no durable name.
pub(crate) const STASH: &str = ".faultfs";

/// Where an inode's backing object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loc {
    /// The backing root itself.
    Root,
    /// Durably named `name` in directory `parent`.
    Durable(u64, OsString),
    /// In the stash, as `.faultfs/<ino>`.
    Stash,
}

/// Unsynced state of a regular file.
#[derive(Debug, Default)]
pub(crate) struct FileState {
    /// Size of the backing file: the durable size.
    durable_size: u64,
    /// Backing content is valid below this offset; above it, what is not in an extent reads
    /// as zeros (the file was truncated below it since the last sync). Never above
    /// `durable_size` nor `size`... except that it may exceed `size` only transiently.
    floor: u64,
    /// Live size.
    size: u64,
    extents: Extents,
    /// Write requests since the last sync.
    unsynced_writes: u64,
    /// Sequence number of the first change since the last sync (for writeback order).
    dirty_since: Option<u64>,
    /// Live modification time while dirty.
    mtime: Option<SystemTime>,
    /// Open handles.
    open_count: u32,
    /// Backing file, kept open while there are open handles.
    fd: Option<File>,
}

impl FileState {
    fn new(durable_size: u64) -> FileState {
        FileState {
            durable_size,
            floor: durable_size,
            size: durable_size,
            ..FileState::default()
        }
    }

    fn is_dirty(&self) -> bool {
        !self.extents.is_empty()
            || self.size != self.durable_size
            || self.floor != self.durable_size
    }

    /// Forgets everything unsynced; returns (bytes, writes) dropped.
    fn reset(&mut self) -> (u64, u64) {
        let dropped = (self.extents.bytes(), self.unsynced_writes);
        self.extents.clear();
        self.size = self.durable_size;
        self.floor = self.durable_size;
        self.unsynced_writes = 0;
        self.dirty_since = None;
        self.mtime = None;
        dropped
    }
}

/// Entries of a directory.
#[derive(Debug, Default)]
pub(crate) struct DirState {
    live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    File(FileState),
    Dir(DirState),
}

#[derive(Debug)]
pub(crate) struct Inode {
    kind: Kind,
    /// Live name, if any (`None` for the root and for unlinked inodes).
    live_parent: Option<(u64, OsString)>,
    loc: Loc,
}

impl Inode {
    fn file(&self) -> Option<&FileState> {
        match &self.kind {
            Kind::File(f) => Some(f),
            Kind::Dir(_) => None,
        }
    }
    fn file_mut(&mut self) -> Option<&mut FileState> {
        match &mut self.kind {
            Kind::File(f) => Some(f),
            Kind::Dir(_) => None,
        }
    }
    fn dir(&self) -> Option<&DirState> {
        match &self.kind {
            Kind::Dir(d) => Some(d),
            Kind::File(_) => None,
        }
    }
    fn dir_mut(&mut self) -> Option<&mut DirState> {
        match &mut self.kind {
            Kind::Dir(d) => Some(d),
            Kind::File(_) => None,
        }
    }
    fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }
    fn file_type(&self) -> FileType {
        if self.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        }
    }
}

#[derive(Debug)]
struct Handle {
    ino: u64,
}

#[derive(Debug)]
struct LastWrite {
    ino: u64,
    off: u64,
    data: Vec<u8>,
}

/// The whole mutable state of a mount, behind one mutex.
#[derive(Debug)]
pub(crate) struct State {
    backing: PathBuf,
    stash: PathBuf,
    options: Options,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    seq: u64,
    last_write: Option<LastWrite>,
    pub(crate) stats: Stats,
}

fn io_errno(e: io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) if code != 0 => Errno::from_i32(code),
        _ => Errno::EIO,
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn meta_time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

/// splitmix64: a tiny seeded generator for the torn tail.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Result type of state operations: errno on failure.
pub(crate) type R<T> = Result<T, Errno>;

impl State {
    /// Builds the state from the backing directory's current content (all of it durable),
    /// emptying the stash.
    pub(crate) fn new(backing: &Path, options: Options) -> io::Result<State> {
        let stash = backing.join(STASH);
        match fs::remove_dir_all(&stash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir(&stash)?;
        let mut st = State {
            backing: backing.to_path_buf(),
            stash,
            options,
            inodes: HashMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            seq: 0,
            last_write: None,
            stats: Stats::default(),
        };
        st.inodes.insert(
            ROOT,
            Inode {
                kind: Kind::Dir(DirState::default()),
                live_parent: None,
                loc: Loc::Root,
            },
        );
        st.scan(ROOT, backing.to_path_buf(), 0)?;
        Ok(st)
    }

    fn scan(&mut self, dir: u64, path: PathBuf, depth: usize) -> io::Result<()> {
        if depth > 256 {
            return Err(io::Error::other("backing directory nested too deep"));
        }
        let mut entries: Vec<(OsString, fs::Metadata)> = Vec::new();
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name();
            if dir == ROOT && name == STASH {
                continue;
            }
            entries.push((name, fs::symlink_metadata(entry.path())?));
        }
        for (name, meta) in entries {
            let kind = if meta.is_dir() {
                Kind::Dir(DirState::default())
            } else if meta.is_file() {
                Kind::File(FileState::new(meta.len()))
            } else {
                // Symlinks, devices, fifos and sockets are not supported: not shown.
                continue;
            };
            let ino = self.alloc_ino();
            let is_dir = matches!(kind, Kind::Dir(_));
            self.inodes.insert(
                ino,
                Inode {
                    kind,
                    live_parent: Some((dir, name.clone())),
                    loc: Loc::Durable(dir, name.clone()),
                },
            );
            if let Some(d) = self.inodes.get_mut(&dir).and_then(Inode::dir_mut) {
                d.live.insert(name.clone(), ino);
                d.durable.insert(name.clone(), ino);
            }
            if is_dir {
                self.scan(ino, path.join(&name), depth + 1)?;
            }
        }
        Ok(())
    }

    fn alloc_ino(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn inode(&self, ino: u64) -> R<&Inode> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: u64) -> R<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> R<&DirState> {
        self.inode(ino)?.dir().ok_or(Errno::ENOTDIR)
    }

    fn dir_mut(&mut self, ino: u64) -> R<&mut DirState> {
        self.inode_mut(ino)?.dir_mut().ok_or(Errno::ENOTDIR)
    }

    fn file_mut(&mut self, ino: u64) -> R<&mut FileState> {
        let inode = self.inode_mut(ino)?;
        if inode.is_dir() {
            return Err(Errno::EISDIR);
        }
        inode.file_mut().ok_or(Errno::EIO)
    }

    /// Path of an inode's backing object.
    fn path(&self, ino: u64) -> R<PathBuf> {
        let mut names: Vec<&OsStr> = Vec::new();
        let mut cur = ino;
        let base = loop {
            if names.len() > 4096 {
                return Err(Errno::EIO);
            }
            match &self.inode(cur)?.loc {
                Loc::Root => break self.backing.clone(),
                Loc::Stash => break self.stash.join(cur.to_string()),
                Loc::Durable(parent, name) => {
                    names.push(name);
                    cur = *parent;
                }
            }
        };
        let mut path = base;
        for name in names.iter().rev() {
            path.push(name);
        }
        Ok(path)
    }

    /// Whether `ancestor` is `ino` or one of its durable ancestors.
    fn durably_inside(&self, ino: u64, ancestor: u64) -> bool {
        let mut cur = ino;
        for _ in 0..4096 {
            if cur == ancestor {
                return true;
            }
            match self.inodes.get(&cur).map(|i| &i.loc) {
                Some(Loc::Durable(parent, _)) => cur = *parent,
                _ => return false,
            }
        }
        false
    }

    /// Whether `ancestor` is `ino` or one of its live ancestors.
    fn live_inside(&self, ino: u64, ancestor: u64) -> bool {
        let mut cur = ino;
        for _ in 0..4096 {
            if cur == ancestor {
                return true;
            }
            match self.inodes.get(&cur).and_then(|i| i.live_parent.as_ref()) {
                Some((parent, _)) => cur = *parent,
                None => return false,
            }
        }
        false
    }

    fn is_live(&self, ino: u64) -> bool {
        match self.inodes.get(&ino) {
            Some(i) => {
                ino == ROOT || i.live_parent.is_some() || i.file().is_some_and(|f| f.open_count > 0)
            }
            None => false,
        }
    }

    fn backing_fd(&mut self, ino: u64) -> R<File> {
        if let Some(fd) = self.inode(ino)?.file().and_then(|f| f.fd.as_ref()) {
            return fd.try_clone().map_err(io_errno);
        }
        let path = self.path(ino)?;
        let fd = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .or_else(|_| File::open(&path))
            .map_err(io_errno)?;
        let f = self.file_mut(ino)?;
        if f.open_count > 0 {
            f.fd = Some(fd.try_clone().map_err(io_errno)?);
        }
        Ok(fd)
    }

    pub(crate) fn unsynced_bytes(&self) -> u64 {
        self.stats.unsynced_bytes
    }

    fn recount_unsynced(&mut self) {
        self.stats.unsynced_bytes = self
            .inodes
            .values()
            .filter_map(Inode::file)
            .map(|f| f.extents.bytes())
            .sum();
    }

    // ----- attributes -------------------------------------------------------------------

    pub(crate) fn attr(&mut self, ino: u64) -> R<FileAttr> {
        let path = self.path(ino)?;
        let inode = self.inode(ino)?;
        let meta = match inode.file().and_then(|f| f.fd.as_ref()) {
            Some(fd) => fd.metadata(),
            None => fs::symlink_metadata(&path),
        }
        .map_err(io_errno)?;
        let mut attr = FileAttr {
            ino: INodeNo(ino),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: meta_time(meta.atime(), meta.atime_nsec()),
            mtime: meta_time(meta.mtime(), meta.mtime_nsec()),
            ctime: meta_time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: inode.file_type(),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: 1,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        match &inode.kind {
            Kind::File(f) => {
                attr.size = f.size;
                attr.blocks = f.size.div_ceil(512);
                attr.nlink = u32::from(inode.live_parent.is_some());
                if let Some(m) = f.mtime {
                    attr.mtime = m;
                    attr.ctime = m;
                }
            }
            Kind::Dir(d) => {
                let subdirs = d
                    .live
                    .values()
                    .filter(|c| self.inodes.get(c).is_some_and(Inode::is_dir))
                    .count();
                attr.nlink = 2 + subdirs as u32;
                attr.size = 4096;
            }
        }
        Ok(attr)
    }

    pub(crate) fn lookup(&mut self, parent: u64, name: &OsStr) -> R<FileAttr> {
        let ino = *self.dir(parent)?.live.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn setattr(
        &mut self,
        ino: u64,
        fh: Option<u64>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> R<FileAttr> {
        if let Some(fh) = fh {
            // ftruncate & co. through a handle from before a crash must not act.
            self.check_handle(fh, ino)?;
        }
        let path = self.path(ino)?;
        if let Some(size) = size {
            self.set_size(ino, size)?;
        }
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io_errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&path, uid, gid).map_err(io_errno)?;
        }
        if atime.is_some() || mtime.is_some() {
            let mut times = fs::FileTimes::new();
            if let Some(a) = atime {
                times = times.set_accessed(a);
            }
            if let Some(m) = mtime {
                times = times.set_modified(m);
            }
            let is_dir = self.inode(ino)?.is_dir();
            let target = if is_dir {
                File::open(&path)
            } else {
                self.backing_fd(ino)
                    .map_err(|_| io::Error::from_raw_os_error(libc::EIO))
            }
            .map_err(io_errno)?;
            target.set_times(times).map_err(io_errno)?;
            if let (Some(m), Some(f)) = (mtime, self.inode_mut(ino)?.file_mut()) {
                if f.mtime.is_some() {
                    f.mtime = Some(m);
                }
            }
        }
        self.attr(ino)
    }

    fn set_size(&mut self, ino: u64, size: u64) -> R<()> {
        let seq = self.next_seq();
        let f = self.file_mut(ino)?;
        if size == f.size {
            return Ok(());
        }
        let before = f.extents.bytes();
        if size < f.size {
            f.extents.truncate(size);
            f.floor = f.floor.min(size);
        }
        f.size = size;
        f.dirty_since.get_or_insert(seq);
        f.mtime = Some(now());
        let after = f.extents.bytes();
        self.stats.unsynced_bytes = self.stats.unsynced_bytes + after - before;
        Ok(())
    }

    pub(crate) fn fallocate(&mut self, ino: u64, fh: u64, off: u64, len: u64, mode: i32) -> R<()> {
        self.check_handle(fh, ino)?;
        let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
        match mode {
            0 => {
                let size = self.file_mut(ino)?.size;
                if end > size {
                    self.set_size(ino, end)?;
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => {
                self.file_mut(ino)?;
                Ok(())
            }
            _ => Err(Errno::from_i32(libc::EOPNOTSUPP)),
        }
    }

    // ----- handles ----------------------------------------------------------------------

    fn new_handle(&mut self, ino: u64) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino });
        fh
    }

    fn check_handle(&self, fh: u64, ino: u64) -> R<()> {
        match self.handles.get(&fh) {
            Some(h) if h.ino == ino => Ok(()),
            // A handle from before a crash (or a bogus one): never let it act.
            _ => Err(Errno::EIO),
        }
    }

    pub(crate) fn open(&mut self, ino: u64) -> R<u64> {
        let path = self.path(ino)?;
        let f = self.file_mut(ino)?;
        if f.fd.is_none() {
            let fd = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .or_else(|_| File::open(&path))
                .map_err(io_errno)?;
            f.fd = Some(fd);
        }
        f.open_count += 1;
        Ok(self.new_handle(ino))
    }

    pub(crate) fn opendir(&mut self, ino: u64) -> R<u64> {
        self.dir(ino)?;
        Ok(self.new_handle(ino))
    }

    /// Releases a file handle; unknown (pre-crash) handles are ignored.
    pub(crate) fn release(&mut self, fh: u64) {
        let Some(h) = self.handles.remove(&fh) else {
            return;
        };
        let ino = h.ino;
        let mut unlinked_closed = false;
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let live = inode.live_parent.is_some();
            if let Some(f) = inode.file_mut() {
                f.open_count = f.open_count.saturating_sub(1);
                if f.open_count == 0 {
                    f.fd = None;
                    unlinked_closed = !live;
                }
            }
        }
        if unlinked_closed {
            self.discard(ino);
            self.maybe_gc(ino);
        }
    }

    pub(crate) fn releasedir(&mut self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// Drops the unsynced data of a file nobody can reach any more.
    fn discard(&mut self, ino: u64) {
        if let Some(f) = self.inodes.get_mut(&ino).and_then(Inode::file_mut) {
            let (bytes, _) = f.reset();
            self.stats.unsynced_bytes = self.stats.unsynced_bytes.saturating_sub(bytes);
        }
    }

    // ----- data -------------------------------------------------------------------------

    pub(crate) fn read(&mut self, ino: u64, fh: u64, off: u64, size: u32) -> R<Vec<u8>> {
        self.check_handle(fh, ino)?;
        let fd = self.backing_fd(ino)?;
        let f = self.file_mut(ino)?;
        let end = off.saturating_add(u64::from(size)).min(f.size);
        if off >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - off) as usize];
        let backing_end = end.min(f.floor);
        if off < backing_end {
            let want = &mut buf[..(backing_end - off) as usize];
            let mut done = 0usize;
            while done < want.len() {
                match fd.read_at(&mut want[done..], off + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_errno(e)),
                }
            }
        }
        f.extents.overlay(off, &mut buf);
        Ok(buf)
    }

    pub(crate) fn write(&mut self, ino: u64, fh: u64, off: u64, data: &[u8]) -> R<u32> {
        self.check_handle(fh, ino)?;
        let len = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let end = off.checked_add(u64::from(len)).ok_or(Errno::EFBIG)?;
        let seq = self.next_seq();
        let f = self.file_mut(ino)?;
        let before = f.extents.bytes();
        f.extents.insert(off, data);
        let after = f.extents.bytes();
        f.size = f.size.max(end);
        f.unsynced_writes += 1;
        f.dirty_since.get_or_insert(seq);
        f.mtime = Some(now());
        self.stats.unsynced_bytes = self.stats.unsynced_bytes + after - before;
        self.stats.writes += 1;
        self.stats.bytes_written += u64::from(len);
        self.last_write = Some(LastWrite {
            ino,
            off,
            data: data.to_vec(),
        });
        self.enforce_dirty_limit();
        Ok(len)
    }

    /// Makes a file's data and size durable in its backing file.
    fn writeback(&mut self, ino: u64) -> R<u64> {
        let sync = self.options.sync_backing;
        if !self.inode(ino)?.file().ok_or(Errno::EISDIR)?.is_dirty() {
            if sync {
                self.backing_fd(ino)?.sync_all().map_err(io_errno)?;
            }
            return Ok(0);
        }
        let fd = self.backing_fd(ino)?;
        let f = self.file_mut(ino)?;
        if f.floor < f.durable_size {
            fd.set_len(f.floor).map_err(io_errno)?;
        }
        for (off, data) in f.extents.iter() {
            fd.write_all_at(data, off).map_err(io_errno)?;
        }
        fd.set_len(f.size).map_err(io_errno)?;
        if sync {
            fd.sync_all().map_err(io_errno)?;
        }
        let bytes = f.extents.bytes();
        f.durable_size = f.size;
        f.reset();
        self.stats.unsynced_bytes = self.stats.unsynced_bytes.saturating_sub(bytes);
        if self.last_write.as_ref().is_some_and(|w| w.ino == ino) {
            self.last_write = None;
        }
        Ok(bytes)
    }

    pub(crate) fn fsync(&mut self, ino: u64, fh: u64) -> R<()> {
        self.check_handle(fh, ino)?;
        self.writeback(ino)?;
        self.stats.fsyncs += 1;
        Ok(())
    }

    fn enforce_dirty_limit(&mut self) {
        while self.stats.unsynced_bytes > self.options.dirty_limit_bytes {
            let oldest = self
                .inodes
                .iter()
                .filter_map(|(&ino, i)| i.file().map(|f| (ino, f)))
                .filter(|(_, f)| !f.extents.is_empty())
                .min_by_key(|(_, f)| f.dirty_since.unwrap_or(u64::MAX))
                .map(|(ino, _)| ino);
            let Some(ino) = oldest else {
                self.recount_unsynced();
                return;
            };
            match self.writeback(ino) {
                Ok(bytes) => {
                    self.stats.written_back_bytes += bytes;
                    self.stats.written_back_files += 1;
                }
                Err(_) => return,
            }
        }
    }

    // ----- namespace --------------------------------------------------------------------

    fn check_name(&self, parent: u64, name: &OsStr) -> R<()> {
        if parent == ROOT && name == STASH {
            return Err(Errno::EPERM);
        }
        if name.len() > 255 {
            return Err(Errno::from_i32(libc::ENAMETOOLONG));
        }
        Ok(())
    }

    /// Checks that `name` may be added to `parent`: an allowed name, not taken, in a directory
    /// that is still linked.
    fn check_new_name(&self, parent: u64, name: &OsStr) -> R<()> {
        self.check_name(parent, name)?;
        if self.dir(parent)?.live.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if self.inode(parent)?.live_parent.is_none() && parent != ROOT {
            return Err(Errno::ENOENT);
        }
        Ok(())
    }

    /// Creates a regular file (O_EXCL semantics), returning its inode and a handle when asked.
    pub(crate) fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        owner: (u32, u32),
        open: bool,
    ) -> R<(FileAttr, Option<u64>)> {
        self.check_new_name(parent, name)?;
        let ino = self.alloc_ino();
        let path = self.stash.join(ino.to_string());
        let fd = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(&path)
            .map_err(io_errno)?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777));
        if owner != (0, 0) {
            let _ = std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1));
        }
        let mut f = FileState::new(0);
        if open {
            f.fd = Some(fd);
        }
        self.inodes.insert(
            ino,
            Inode {
                kind: Kind::File(f),
                live_parent: Some((parent, name.to_os_string())),
                loc: Loc::Stash,
            },
        );
        self.dir_mut(parent)?.live.insert(name.to_os_string(), ino);
        let fh = if open {
            if let Some(f) = self.inodes.get_mut(&ino).and_then(Inode::file_mut) {
                f.open_count += 1;
            }
            Some(self.new_handle(ino))
        } else {
            None
        };
        Ok((self.attr(ino)?, fh))
    }

    pub(crate) fn mkdir(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        owner: (u32, u32),
    ) -> R<FileAttr> {
        self.check_new_name(parent, name)?;
        let ino = self.alloc_ino();
        let path = self.stash.join(ino.to_string());
        fs::DirBuilder::new()
            .mode(mode & !umask & 0o7777)
            .create(&path)
            .map_err(io_errno)?;
        if owner != (0, 0) {
            let _ = std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1));
        }
        self.inodes.insert(
            ino,
            Inode {
                kind: Kind::Dir(DirState::default()),
                live_parent: Some((parent, name.to_os_string())),
                loc: Loc::Stash,
            },
        );
        self.dir_mut(parent)?.live.insert(name.to_os_string(), ino);
        self.attr(ino)
    }

    /// Takes an inode out of the live namespace (after unlink, rmdir or being replaced).
    fn detach(&mut self, ino: u64) {
        let closed = match self.inodes.get_mut(&ino) {
            Some(inode) => {
                inode.live_parent = None;
                inode.file().is_none_or(|f| f.open_count == 0)
            }
            None => return,
        };
        if closed {
            self.discard(ino);
            self.maybe_gc(ino);
        }
    }

    pub(crate) fn unlink(&mut self, parent: u64, name: &OsStr) -> R<()> {
        let ino = *self.dir(parent)?.live.get(name).ok_or(Errno::ENOENT)?;
        if self.inode(ino)?.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.dir_mut(parent)?.live.remove(name);
        self.detach(ino);
        Ok(())
    }

    pub(crate) fn rmdir(&mut self, parent: u64, name: &OsStr) -> R<()> {
        let ino = *self.dir(parent)?.live.get(name).ok_or(Errno::ENOENT)?;
        let d = self.dir(ino)?;
        if !d.live.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.dir_mut(parent)?.live.remove(name);
        self.detach(ino);
        Ok(())
    }

    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> R<()> {
        let known = RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE;
        if !known.contains(flags)
            || flags.contains(RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE)
        {
            return Err(Errno::EINVAL);
        }
        self.check_name(newparent, newname)?;
        if newparent != ROOT && self.inode(newparent)?.live_parent.is_none() {
            return Err(Errno::ENOENT);
        }
        let src = *self.dir(parent)?.live.get(name).ok_or(Errno::ENOENT)?;
        let dst = self.dir(newparent)?.live.get(newname).copied();
        let src_is_dir = self.inode(src)?.is_dir();
        if src_is_dir && self.live_inside(newparent, src) {
            return Err(Errno::EINVAL);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let dst = dst.ok_or(Errno::ENOENT)?;
            if self.inode(dst)?.is_dir() && self.live_inside(parent, dst) {
                return Err(Errno::EINVAL);
            }
            if src == dst {
                return Ok(());
            }
            self.dir_mut(parent)?.live.insert(name.to_os_string(), dst);
            self.dir_mut(newparent)?
                .live
                .insert(newname.to_os_string(), src);
            self.inode_mut(dst)?.live_parent = Some((parent, name.to_os_string()));
            self.inode_mut(src)?.live_parent = Some((newparent, newname.to_os_string()));
            return Ok(());
        }
        if let Some(dst) = dst {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            let dst_inode = self.inode(dst)?;
            match (src_is_dir, dst_inode.dir()) {
                (true, None) => return Err(Errno::ENOTDIR),
                (false, Some(_)) => return Err(Errno::EISDIR),
                (true, Some(d)) if !d.live.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir_mut(parent)?.live.remove(name);
        self.dir_mut(newparent)?
            .live
            .insert(newname.to_os_string(), src);
        self.inode_mut(src)?.live_parent = Some((newparent, newname.to_os_string()));
        if let Some(dst) = dst {
            self.detach(dst);
        }
        Ok(())
    }

    /// Directory listing: (ino, kind, name), starting with `.` and `..`.
    pub(crate) fn readdir(&self, ino: u64, fh: u64) -> R<Vec<(u64, FileType, OsString)>> {
        self.check_handle(fh, ino)?;
        let inode = self.inode(ino)?;
        let d = inode.dir().ok_or(Errno::ENOTDIR)?;
        let parent = inode.live_parent.as_ref().map_or(ino, |(p, _)| *p);
        let mut out = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        for (name, &child) in &d.live {
            if let Some(c) = self.inodes.get(&child) {
                out.push((child, c.file_type(), name.clone()));
            }
        }
        Ok(out)
    }

    /// Makes the live entries of a directory durable.
    pub(crate) fn fsyncdir(&mut self, ino: u64, fh: u64) -> R<()> {
        self.check_handle(fh, ino)?;
        let d = self.dir(ino)?;
        let old = d.durable.clone();
        let live = d.live.clone();
        let live_inos: HashSet<u64> = live.values().copied().collect();
        let mut new = live.clone();
        // An entry renamed away (still live elsewhere) keeps its old durable name until the
        // destination directory is synced.
        for (name, &child) in &old {
            if !live_inos.contains(&child)
                && !new.contains_key(name)
                && self
                    .inodes
                    .get(&child)
                    .is_some_and(|c| c.live_parent.is_some())
            {
                new.insert(name.clone(), child);
            }
        }
        // Never move a directory durably inside itself: such entries wait for another sync.
        let dir_path_inside: Vec<OsString> = new
            .iter()
            .filter(|(name, child)| {
                old.get(*name) != Some(child) && self.durably_inside(ino, **child)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in dir_path_inside {
            match old.get(&name) {
                Some(&o) => new.insert(name, o),
                None => new.remove(&name),
            };
        }
        // Phase 1: entries leaving go to the stash.
        let mut stashed = Vec::new();
        for (name, &child) in &old {
            if new.get(name) != Some(&child) {
                self.move_to_stash(child)?;
                stashed.push(child);
            }
        }
        // Phase 2: entries arriving move into place; their old durable name goes.
        let dir_path = self.path(ino)?;
        for (name, &child) in &new {
            if old.get(name) == Some(&child) {
                continue;
            }
            let from = self.path(child)?;
            let to = dir_path.join(name);
            fs::rename(&from, &to).map_err(io_errno)?;
            let prev = std::mem::replace(
                &mut self.inode_mut(child)?.loc,
                Loc::Durable(ino, name.clone()),
            );
            if let Loc::Durable(p, n) = prev {
                if let Ok(pd) = self.dir_mut(p) {
                    if pd.durable.get(&n) == Some(&child) {
                        pd.durable.remove(&n);
                    }
                }
            }
            self.dir_mut(ino)?.durable.insert(name.clone(), child);
        }
        // Phase 3: what left and is dead goes for good.
        for child in stashed {
            self.maybe_gc(child);
        }
        if self.options.sync_backing {
            File::open(&dir_path)
                .and_then(|f| f.sync_all())
                .map_err(io_errno)?;
        }
        self.stats.dir_syncs += 1;
        Ok(())
    }

    /// Moves an inode's backing object to the stash and drops its durable name.
    fn move_to_stash(&mut self, ino: u64) -> R<()> {
        let from = self.path(ino)?;
        let to = self.stash.join(ino.to_string());
        if from != to {
            fs::rename(&from, &to).map_err(io_errno)?;
        }
        let prev = std::mem::replace(&mut self.inode_mut(ino)?.loc, Loc::Stash);
        if let Loc::Durable(p, n) = prev {
            if let Ok(pd) = self.dir_mut(p) {
                if pd.durable.get(&n) == Some(&ino) {
                    pd.durable.remove(&n);
                }
            }
        }
        Ok(())
    }

    /// Deletes an inode that has neither a live nor a durable name and no open handle.
    fn maybe_gc(&mut self, ino: u64) {
        if ino == ROOT || self.is_live(ino) {
            return;
        }
        if self.inodes.get(&ino).map(|i| &i.loc) != Some(&Loc::Stash) {
            return;
        }
        self.delete(ino, 0);
    }

    /// Deletes a dead inode and what is durably inside it, saving live children.
    fn delete(&mut self, ino: u64, depth: usize) {
        let children: Vec<u64> = self
            .inodes
            .get(&ino)
            .and_then(Inode::dir)
            .map(|d| d.durable.values().copied().collect())
            .unwrap_or_default();
        for child in children {
            if self.is_live(child) || depth > 256 {
                let _ = self.move_to_stash(child);
            } else {
                self.delete(child, depth + 1);
            }
        }
        if let Ok(path) = self.path(ino) {
            let res = if self.inodes.get(&ino).is_some_and(Inode::is_dir) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            let _ = res;
        }
        if let Some(Inode {
            loc: Loc::Durable(p, n),
            ..
        }) = self.inodes.get(&ino)
        {
            let (p, n) = (*p, n.clone());
            if let Ok(pd) = self.dir_mut(p) {
                pd.durable.remove(&n);
            }
        }
        if let Some(removed) = self.inodes.remove(&ino) {
            if let Kind::File(f) = removed.kind {
                self.stats.unsynced_bytes =
                    self.stats.unsynced_bytes.saturating_sub(f.extents.bytes());
            }
        }
    }

    pub(crate) fn statfs(&self) -> R<nix::sys::statvfs::Statvfs> {
        nix::sys::statvfs::statvfs(&self.backing).map_err(|e| Errno::from_i32(e as i32))
    }

    // ----- crash ------------------------------------------------------------------------

    /// Reverts everything to its durable state; see [`crate::Mount::lose_unsynced`].
    pub(crate) fn crash(&mut self, torn: Option<u64>) -> LossReport {
        let mut report = LossReport::default();
        self.handles.clear();
        self.stats.crashes += 1;
        // What is durably reachable from the root survives.
        let mut reach = HashSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !reach.insert(ino) {
                continue;
            }
            if let Some(d) = self.inodes.get(&ino).and_then(Inode::dir) {
                stack.extend(d.durable.values().copied());
            }
        }
        let gone: Vec<u64> = self
            .inodes
            .keys()
            .copied()
            .filter(|i| !reach.contains(i))
            .collect();
        for ino in gone {
            if let Some(mut inode) = self.inodes.remove(&ino) {
                if inode.live_parent.is_some() {
                    report.files_vanished += 1;
                }
                if let Some(f) = inode.file_mut() {
                    let (b, w) = f.reset();
                    report.bytes_dropped += b;
                    report.writes_dropped += w;
                }
            }
        }
        let _ = fs::remove_dir_all(&self.stash);
        let _ = fs::create_dir(&self.stash);
        // Survivors: live namespace := durable namespace, data := durable data.
        let mut parents: Vec<(u64, u64, OsString)> = Vec::new();
        for (&ino, inode) in self.inodes.iter_mut() {
            inode.live_parent = None;
            match &mut inode.kind {
                Kind::File(f) => {
                    let (b, w) = f.reset();
                    report.bytes_dropped += b;
                    report.writes_dropped += w;
                    f.open_count = 0;
                    f.fd = None;
                }
                Kind::Dir(d) => {
                    let differing = d
                        .live
                        .iter()
                        .filter(|(n, i)| d.durable.get(*n) != Some(i))
                        .count()
                        + d.durable
                            .iter()
                            .filter(|(n, i)| d.live.get(*n) != Some(i))
                            .count();
                    report.namespace_ops_undone += differing as u64;
                    d.live = d.durable.clone();
                    for (name, &child) in &d.durable {
                        parents.push((child, ino, name.clone()));
                    }
                }
            }
        }
        for (child, parent, name) in parents {
            if let Some(c) = self.inodes.get_mut(&child) {
                c.live_parent = Some((parent, name));
            }
        }
        self.stats.unsynced_bytes = 0;
        // The torn tail of the most recent unsynced write.
        if let (Some(seed), Some(w)) = (torn, self.last_write.take()) {
            if self.inodes.contains_key(&w.ino) && !w.data.is_empty() {
                let keep = (splitmix64(seed) % w.data.len() as u64) as usize;
                if keep > 0 {
                    if let Ok(path) = self.path(w.ino) {
                        let res = OpenOptions::new().write(true).open(&path).and_then(|fd| {
                            fd.write_all_at(&w.data[..keep], w.off)?;
                            fd.metadata()
                        });
                        if let Ok(meta) = res {
                            if let Some(f) = self.inodes.get_mut(&w.ino).and_then(Inode::file_mut) {
                                f.durable_size = meta.len();
                                f.reset();
                            }
                            report.torn_bytes_kept = keep as u64;
                        }
                    }
                }
            }
        }
        self.last_write = None;
        report
    }

    /// Removes the stash (after unmount).
    pub(crate) fn remove_stash(&self) {
        let _ = fs::remove_dir_all(&self.stash);
    }
}
