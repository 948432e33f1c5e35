//! The Raft consensus core: a pure, deterministic state machine in the style of etcd-io/raft's
//! `RawNode`. It reads no clock, touches no socket or file and starts no thread; time advances
//! only through `tick()` and randomness comes only from the seed in its configuration.

pub mod types;

pub use types::*;
