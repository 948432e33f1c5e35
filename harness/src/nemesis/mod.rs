//! The nemesis: what faults a run injects and when, planned purely from a seed.
//!
//! - [`partition`]: partition shapes as pure functions (sets of cut directed links).
//! - [`fault`]: the faults, each a package of what it breaks, how it is healed and its colour
//!   in plots; and how a planned fault picks its targets once the run knows who leads.
//! - [`schedule`]: the seeded alternation of fault and heal.
//!
//! Nothing here touches a process or a socket: the interpreter carries the plan out.

pub mod fault;
pub mod partition;
pub mod schedule;

pub use fault::{parse_faults, Fault, FaultKind, Targets};
pub use partition::{Link, NodeId, Partition, Shape};
pub use schedule::{schedule, Step};
