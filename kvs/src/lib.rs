//! raftkv's store: a sharded key-value store whose every shard is replicated by its own Raft group.
//!
//! - [`raft`]: the consensus core, a pure deterministic state machine (no I/O, no clock).
//! - [`storage`]: the node's shared write-ahead log and snapshot files.
//! - [`sm`]: the per-shard state machine; [`shard`]: slots and replica placement.
//! - [`api`]: the RESP codec, the commands and the client-facing server.
//! - [`node`]: the runtime that hosts many groups (driver, peer transport).
//! - [`client`]: the async cluster client; [`config`]: the YAML configuration.
//! - [`local`], [`bench`], [`status`]: local clusters of real processes, the benchmark, `kvs status`.
//! - [`bugs`]: planted bugs (`kvs serve --bug NAME`), off by default, each breaking one rule.
//! - [`sockets`]: non-blocking socket helpers shared by the server, the transport and the harness.

pub mod api;
pub mod bench;
pub mod bugs;
pub mod client;
pub mod config;
pub mod local;
pub mod node;
pub mod raft;
pub mod shard;
pub mod sm;
pub mod sockets;
pub mod status;
pub mod storage;
