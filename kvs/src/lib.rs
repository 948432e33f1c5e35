//! raftkv's store: a sharded key-value store whose every shard is replicated by its own Raft group.
//!
//! - [`raft`]: the consensus core, a pure deterministic state machine (no I/O, no clock).
//! - [`storage`]: the node's shared write-ahead log and snapshot files.

pub mod api;
pub mod raft;
pub mod storage;
