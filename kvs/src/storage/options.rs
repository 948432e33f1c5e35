//! Tuning knobs of the write-ahead log.

/// How the write-ahead log behaves. `WalOptions::default()` is what a node should use.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment rolls over to a new file once appending a record would make it larger than
    /// this (a single larger record still gets a segment of its own).
    pub segment_bytes_max: u64,
    /// When false, [`super::Wal::sync`] writes to the OS but never calls `fdatasync`: faster,
    /// and a power loss may lose acknowledged writes. On by default.
    pub fsync: bool,
    /// Bytes of entry payload kept in the read cache of recent entries.
    pub entry_cache_bytes_max: u64,
    /// Appended bytes buffered in memory before they are written to the segment file even
    /// without a `sync` (bounds memory between syncs).
    pub write_buffer_bytes_max: usize,
    /// The largest record accepted on write or on recovery; a length field above it is treated
    /// as damage, not as an allocation request.
    pub record_bytes_max: u32,
    /// Allocate the active segment's full size up front. Appends then write into space the file
    /// already has, so `fdatasync` flushes data without a journal commit for a growing file
    /// size (measured here: 25-40% faster syncs). The zeros after the last record of the last
    /// segment are the preallocated space, not damage. On by default.
    pub preallocate: bool,
    /// PLANTED BUG `skip-fsync` (see [`crate::bugs`]): [`super::Wal::sync`] writes to the OS
    /// and reports the records durable without calling `fdatasync`, even with `fsync` on.
    /// Off by default.
    pub bug_skip_fsync: bool,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes_max: 64 * 1024 * 1024,
            fsync: true,
            entry_cache_bytes_max: 32 * 1024 * 1024,
            write_buffer_bytes_max: 4 * 1024 * 1024,
            record_bytes_max: 256 * 1024 * 1024,
            preallocate: true,
            bug_skip_fsync: false,
        }
    }
}
