//! The Raft consensus core: a pure, deterministic state machine in the style of etcd-io/raft's
//! `RawNode`. It reads no clock, touches no socket or file and starts no thread; time advances
//! only through `tick()` and randomness comes only from the seed in its configuration.
//!
//! - [`types`]: the values exchanged with storage and the node (the contract).
//! - [`RawNode`] / [`Ready`]: the driving API and the persistence contract.
//! - `raft.rs`: the protocol rules; `log.rs`, `progress.rs`, `read_only.rs`: their state.

mod config;
mod errors;
mod log;
mod progress;
#[allow(clippy::module_inception)]
mod raft;
pub mod rand;
mod raw_node;
mod read_only;
#[cfg(test)]
mod tests;
pub mod types;

pub use config::Config;
pub use errors::{ConfigError, ProposeError, StepError};
pub use log::READY_COMMITTED_BYTES_MAX;
pub use progress::ProgressState;
pub use raft::UNCOMMITTED_ENTRIES_MAX;
pub use raw_node::{PeerStatus, RawNode, Ready, Restored, Status};
pub use read_only::READS_PENDING_MAX;
pub use types::*;
