//! The harness: runs a kvs cluster as real OS processes behind its own TCP proxies, breaks it on
//! purpose, records every client operation and judges the history with the checker.

pub mod nemesis;
pub mod net;
