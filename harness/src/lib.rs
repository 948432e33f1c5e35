//! The harness: runs a kvs cluster as real OS processes behind its own TCP proxies, breaks it on
//! purpose, records every client operation and judges the history with the checker.
//!
//! Planning is pure and seeded ([`nemesis`], and the op streams of the `workloads` crate); one
//! interpreter ([`run`]) owns every process, socket and clock:
//!
//! - [`test`]: the run's settings; [`run`]: setup, run, heal, quiet, final reads, teardown,
//!   check, summary;
//! - [`db`]: the system under test behind a seam (kvs first); [`network`] and [`net`]: the
//!   proxies on every link and what each should do now;
//! - [`nemesis`]: partition shapes, faults, the schedule;
//! - [`client`]: an op as a kvs request, a reply as a history completion; [`history`]: the
//!   streamed history and event logs on one clock;
//! - [`check`]: judging a run from its files; [`store`]: the results folder;
//! - [`kvs_bin`]: finding (and building) the kvs binary.

pub mod check;
pub mod client;
pub mod db;
pub mod history;
pub mod kvs_bin;
pub mod nemesis;
pub mod net;
pub mod network;
pub mod report;
pub mod run;
pub mod selftest;
pub mod store;
pub mod test;
