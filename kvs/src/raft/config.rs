//! The static configuration of one Raft group member: who it is, who votes, its timing and its
//! flow-control limits.

use super::errors::ConfigError;
use super::types::NodeId;
use crate::bugs::BugSet;

/// The configuration of one member of one Raft group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; must be one of `voters`.
    pub id: NodeId,
    /// Every voting member of the group, this node included.
    pub voters: Vec<NodeId>,
    /// The minimum election timeout in ticks; each follower draws its timeout from
    /// `[election_ticks, 2 * election_ticks)` (Raft paper §5.2). Must exceed `heartbeat_ticks`.
    pub election_ticks: u32,
    /// The leader sends heartbeats every this many ticks.
    pub heartbeat_ticks: u32,
    /// Most AppendEntries messages in flight to one follower in the Replicate state.
    pub inflight_msgs_max: usize,
    /// Most entry bytes in flight to one follower in the Replicate state.
    pub inflight_bytes_max: u64,
    /// Most entry bytes in one AppendEntries message (one entry is always allowed, so a message
    /// is never empty for want of room); also the largest proposal accepted.
    pub msg_bytes_max: u64,
    /// Run a pre-vote round before bumping the term (thesis §9.6).
    pub pre_vote: bool,
    /// Leaders step down without a live majority; followers with a live leader ignore vote
    /// requests (thesis §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Seeds the election jitter. Mixed with `id`, so one seed can serve a whole group.
    pub seed: u64,
    /// Planted bugs (see [`crate::bugs`]); empty by default. The core acts on
    /// `ReadIndexWithoutQuorum`, `VoteTwice` and `CommitOldTerm` and ignores the others.
    pub bugs: BugSet,
}

impl Config {
    /// A configuration with the defaults: election after 10 ticks, heartbeat every tick,
    /// 256 messages / 8 MiB in flight, 1 MiB per message, pre-vote and check-quorum on, no
    /// planted bug.
    #[must_use]
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            voters,
            election_ticks: 10,
            heartbeat_ticks: 1,
            inflight_msgs_max: 256,
            inflight_bytes_max: 8 << 20,
            msg_bytes_max: 1 << 20,
            pre_vote: true,
            check_quorum: true,
            seed,
            bugs: BugSet::none(),
        }
    }

    /// Checks every field; the error names the first bad one.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 {
            return Err(ConfigError::ZeroNodeId);
        }
        if self.voters.is_empty() {
            return Err(ConfigError::NoVoters);
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            if pair[0] == pair[1] {
                return Err(ConfigError::BadVoter { id: pair[0] });
            }
        }
        if sorted[0].0 == 0 {
            return Err(ConfigError::BadVoter { id: sorted[0] });
        }
        if !self.voters.contains(&self.id) {
            return Err(ConfigError::SelfNotVoter { id: self.id });
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeatTicks);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionTicksTooSmall {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.inflight_msgs_max == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "inflight_msgs_max",
            });
        }
        if self.inflight_bytes_max == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "inflight_bytes_max",
            });
        }
        if self.msg_bytes_max == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "msg_bytes_max",
            });
        }
        Ok(())
    }

    /// Votes needed for a majority of the voters.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_bad_field() {
        let ok = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)], 0);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.quorum(), 2);
        let mut c = ok.clone();
        c.id = NodeId(4);
        assert_eq!(
            c.validate(),
            Err(ConfigError::SelfNotVoter { id: NodeId(4) })
        );
        let mut c = ok.clone();
        c.voters.push(NodeId(2));
        assert_eq!(c.validate(), Err(ConfigError::BadVoter { id: NodeId(2) }));
        let mut c = ok.clone();
        c.election_ticks = 1;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ElectionTicksTooSmall {
                election_ticks: 1,
                heartbeat_ticks: 1
            })
        );
        let mut c = ok;
        c.msg_bytes_max = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroLimit {
                field: "msg_bytes_max"
            })
        );
    }
}
