//! raftkv's store: a sharded key-value store whose every shard is replicated by its own Raft group.
//!
//! - [`raft`]: the consensus core, a pure deterministic state machine (no I/O, no clock).
//! - [`storage`]: the node's shared write-ahead log and snapshot files.
//! - [`api`]: the RESP2 codec and the client commands (pure).
//! - [`sm`]: the per-shard state machine, its log-entry commands and snapshots (pure).
//! - [`shard`]: key slots (Redis Cluster's CRC16) and the shard map (pure).

pub mod api;
pub mod config;
pub mod raft;
pub mod shard;
pub mod sm;
pub mod storage;
