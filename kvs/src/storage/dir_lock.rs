//! An exclusive lock on a log directory, so that two processes never append to one log.

use super::StorageError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Held for as long as the log is open; the lock goes with the file descriptor (also when the
/// process dies).
#[derive(Debug)]
pub(crate) struct DirLock {
    _lock: Flock<File>,
}

impl DirLock {
    /// Takes the lock on `dir/LOCK` without waiting.
    ///
    /// # Errors
    /// `Locked` when another open log holds it; `Io` when the file cannot be opened.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(DirLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(StorageError::Locked { path }),
            Err((_, errno)) => Err(StorageError::io(&path, errno.into())),
        }
    }
}
