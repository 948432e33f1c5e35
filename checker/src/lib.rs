//! A linearizability checker for recorded client histories, in the manner of Porcupine: the Wing &
//! Gong search with Lowe's refinements, per key and in parallel, plus set and counter checkers.
//!
//! It depends on nothing in the store; the harness records histories, this crate judges them.
//!
//! # History format
//!
//! A history is a file of JSON lines, one event per line, in the order the events happened:
//!
//! ```text
//! {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 5, "time_ns": 1000}
//! {"process": 3, "type": "ok", "f": "write", "key": "k1", "value": 5, "time_ns": 2000}
//! {"process": 4, "type": "invoke", "f": "read", "key": "k1", "value": null, "time_ns": 2500}
//! {"process": 4, "type": "ok", "f": "read", "key": "k1", "value": 5, "time_ns": 2600}
//! ```
//!
//! - `process` (integer): the logical client. A process has at most one operation open at a time.
//! - `type`: `invoke` when an operation starts; then exactly one of `ok` (it took effect, `value` is
//!   its result), `fail` (it certainly did not take effect; the operation is dropped) or `info` (the
//!   outcome is unknown: it may have taken effect at any time after its invoke, or never). A process
//!   whose operation ended in `info` never appears again: the client continues under a fresh id. An
//!   invoke with no completion by the end of the history counts as `info`.
//! - `f`: the function, `key`: the key (a string), `time_ns`: a monotonic time in nanoseconds.
//!   A completion must repeat its invoke's `f` and `key`.
//! - `value` (any JSON, null if missing): see below per function. Extra fields are ignored.
//!
//! Functions of the **register** model ([`Register`]; one register per key, initially nil):
//! `read` (invoke value null; ok value: the value read, null for absent), `write` (invoke value:
//! the value written), `cas` (invoke value `[expected, new]`; ok means it swapped, a failed
//! comparison is a `fail`).
//!
//! Functions of the **set** checker ([`check_set`]; one set per key): `add` (invoke value: the
//! element) and `read` (ok value: a JSON array of the elements). The last read of a key (latest
//! invoke among ok reads) is the final read.
//!
//! Functions of the **counter** checker ([`check_counter`]; one counter per key, starting at 0):
//! `incr` (invoke value: the integer delta, null meaning 1; the ok value is ignored) and `read` (ok
//! value: the integer read, null meaning 0).
//!
//! Equal times: an operation that returned at time t precedes one invoked at the same t.
//!
//! # Verdicts and budgets
//!
//! [`check_linearizability`] splits the history per key (linearizability is local), searches every
//! key on its own, in parallel over the machine's cores, and answers [`Verdict::Valid`],
//! [`Verdict::Invalid`] (per bad key: the operation that could not be placed, the longest
//! linearizable prefixes found and an [`Explanation`] for a timeline) or [`Verdict::Unknown`] when a
//! key's search ran out of its [`Budget`] (a deadline, a number of states, cache bytes). An
//! exhausted budget is never reported as valid. Invalid wins over unknown: one proven anomaly is
//! enough.
//!
//! # The search
//!
//! [`search::search`] is Wing & Gong's algorithm with Lowe's memoization, as Porcupine runs it:
//! call and return entries in a doubly linked list ordered by time, lifted when an operation is
//! linearized and unlifted on backtracking, a bitset of linearized operations and a cache of
//! (bitset, model state) pairs already explored. Two reductions keep it small, both exact:
//! an operation that can never change the state (a read with a known result) is placed as soon as
//! it fits, without branching ([`Model::is_read_only`]); and an operation with an unknown outcome
//! whose effect nobody could have observed is dropped before the search
//! ([`Model::mark_removable`]; for the register, an info write of a value no read returned and no
//! cas expected).
//!
//! # Performance
//!
//! `cargo bench -p checker` on the shared 2-core machine (histories from a simulated register, 10
//! processes, 5% info): 100,000 invoked operations over 10 keys in about 0.03 to 0.15 s; one key
//! with 10,000 invoked operations in about 0.01 to 0.05 s (the spread is the machine's load). The
//! cost grows steeply with the number of operations concurrently open on one key: 30 processes on
//! one key take seconds and hundreds of MiB. Keep per-key concurrency modest.
//!
//! # Using it
//!
//! ```
//! use checker::{check_linearizability, pair_history, read_history, Budget, Register};
//! let text = r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1,"time_ns":1}
//! {"process":0,"type":"ok","f":"write","key":"a","value":1,"time_ns":2}
//! {"process":1,"type":"invoke","f":"read","key":"a","value":null,"time_ns":3}
//! {"process":1,"type":"ok","f":"read","key":"a","value":1,"time_ns":4}"#;
//! let history = read_history(text.as_bytes()).unwrap();
//! let ops = pair_history(&history).unwrap();
//! let report = check_linearizability(&Register, &ops, &Budget::default()).unwrap();
//! assert!(report.verdict.is_valid());
//! ```

pub mod bitset;
pub mod budget;
pub mod cache;
pub mod counter;
pub mod entry_list;
pub mod error;
pub mod event;
pub mod explain;
pub mod linearizability;
pub mod model;
pub mod operation;
pub mod partition;
pub mod register;
pub mod render;
pub mod search;
pub mod set;
pub mod values;
pub mod verdict;

pub use budget::{budget_for, Budget, Deadline, InstantDeadline};
pub use counter::{check_counter, CounterReport};
pub use error::{CheckError, HistoryError, ModelError};
pub use event::{read_history, write_history, Event, EventType, History};
pub use explain::Explanation;
pub use linearizability::{check_linearizability, check_linearizability_with_workers};
pub use model::{Encoded, Model, ModelOp};
pub use operation::{pair_history, Completion, OpId, Operation};
pub use register::Register;
pub use search::UnknownReason;
pub use set::{check_set, SetReport};
pub use verdict::{Anomaly, Judgement, KeyOutcome, KeyReport, LinearizabilityReport, Verdict};
