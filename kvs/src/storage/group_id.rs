//! The identifier of a Raft group within the node's shared log.

use std::fmt;

/// Identifies one Raft group (one shard replica set) in the shared write-ahead log. The node
/// runtime maps shard ids onto group ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}
