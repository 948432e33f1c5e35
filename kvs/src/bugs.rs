//! Planted bugs: switches, all off by default, that each break one named correctness rule at the
//! place where the rule lives, so that the harness and the checker can show they catch real
//! anomalies. `kvs serve --bug NAME` (repeatable) turns one on; a node with any on says so loudly
//! (stderr, the log, and `planted_bugs:` in `INFO`).
//!
//! Where each one lives (grep for its variant to find the guarded change):
//! - [`Bug::StaleReads`]: `node/driver.rs`, reads served without ReadIndex.
//! - [`Bug::ReadIndexWithoutQuorum`]: `raft/raft.rs`, ReadIndex released without its heartbeat
//!   round (thesis §6.4).
//! - [`Bug::AckBeforeCommit`]: `node/driver.rs`, writes answered once proposed.
//! - [`Bug::VoteTwice`]: `raft/raft.rs`, a second vote granted in one term (§5.2).
//! - [`Bug::ForgetVote`]: `node/driver.rs`, vote answers sent before the hard state is durable,
//!   and the vote never written.
//! - [`Bug::CommitOldTerm`]: `raft/raft.rs`, old-term entries committed by counting (§5.4.2).
//! - [`Bug::SkipFsync`]: `storage/wal.rs` and the snapshot store, `sync` without `fdatasync`.
//!
//! Invariant: with an empty [`BugSet`] (the default everywhere) no behaviour changes.

use std::fmt;
use std::str::FromStr;

/// One planted bug. Command-line names are the kebab-case forms given by [`Bug::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Bug {
    /// Reads are served from the leader's local state without ReadIndex.
    StaleReads,
    /// A ReadIndex request is released at once, without the
    /// heartbeat round that confirms the leader still leads.
    ReadIndexWithoutQuorum,
    /// A write is answered as soon as the leader has proposed it, before a
    /// majority holds it.
    AckBeforeCommit,
    /// A node grants a vote to a second candidate in a term it already voted in.
    VoteTwice,
    /// Vote answers leave before term and vote are durable, and the vote is
    /// never written, so a restarted node can vote again in the same term.
    ForgetVote,
    /// A leader commits entries of earlier terms by counting replicas.
    CommitOldTerm,
    /// The WAL's `sync` (and a snapshot's save) reports data durable without
    /// calling `fdatasync`/`fsync`.
    SkipFsync,
}

impl Bug {
    /// Every bug, in declaration order (the order [`BugSet`] lists them in).
    pub const ALL: [Bug; 7] = [
        Bug::StaleReads,
        Bug::ReadIndexWithoutQuorum,
        Bug::AckBeforeCommit,
        Bug::VoteTwice,
        Bug::ForgetVote,
        Bug::CommitOldTerm,
        Bug::SkipFsync,
    ];

    /// The command-line name, e.g. `vote-twice`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Bug::StaleReads => "stale-reads",
            Bug::ReadIndexWithoutQuorum => "read-index-without-quorum",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::VoteTwice => "vote-twice",
            Bug::ForgetVote => "forget-vote",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::SkipFsync => "skip-fsync",
        }
    }

    /// One line: the rule this bug breaks.
    #[must_use]
    pub fn rule(self) -> &'static str {
        match self {
            Bug::StaleReads => {
                "reads are linearizable: a leader confirms it still leads (ReadIndex) before \
                 serving one"
            }
            Bug::ReadIndexWithoutQuorum => {
                "ReadIndex releases a read only after a majority acknowledged a heartbeat sent \
                 after it was recorded (Raft thesis §6.4)"
            }
            Bug::AckBeforeCommit => {
                "a write is acknowledged only once committed, i.e. held by a majority (Raft §5.3)"
            }
            Bug::VoteTwice => "a node grants at most one vote per term (Raft §5.2)",
            Bug::ForgetVote => {
                "term and vote are on stable storage before a vote is answered (Raft Figure 2)"
            }
            Bug::CommitOldTerm => {
                "a leader commits by counting replicas only entries of its own term (Raft \
                 §5.4.2, Figure 8)"
            }
            Bug::SkipFsync => {
                "what sync reports durable is on stable storage (fdatasync before answering)"
            }
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a bug's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown bug {name:?}; the bugs are: {}", bug_names())]
pub struct UnknownBug {
    /// The name given.
    pub name: String,
}

fn bug_names() -> String {
    Bug::ALL.map(Bug::name).join(", ")
}

impl FromStr for Bug {
    type Err = UnknownBug;

    fn from_str(s: &str) -> Result<Bug, UnknownBug> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBug {
                name: s.to_string(),
            })
    }
}

/// A set of planted bugs (a bitset), passed down to every place where one of the rules lives.
/// The default is empty: every rule kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BugSet(u8);

impl BugSet {
    /// The empty set.
    #[must_use]
    pub const fn none() -> BugSet {
        BugSet(0)
    }

    /// Whether `bug` is on.
    #[must_use]
    pub fn contains(self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// Turns `bug` on.
    pub fn insert(&mut self, bug: Bug) {
        self.0 |= bug.bit();
    }

    /// This set with `bug` on.
    #[must_use]
    pub fn with(mut self, bug: Bug) -> BugSet {
        self.insert(bug);
        self
    }

    /// Whether no bug is on.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bugs on, in [`Bug::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |&b| self.contains(b))
    }
}

impl FromIterator<Bug> for BugSet {
    fn from_iter<I: IntoIterator<Item = Bug>>(iter: I) -> BugSet {
        let mut set = BugSet::none();
        for b in iter {
            set.insert(b);
        }
        set
    }
}

/// The names, comma-separated, in [`Bug::ALL`] order (empty when none): the `INFO` form.
impl fmt::Display for BugSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(b.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_clap() {
        use clap::ValueEnum as _;
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>(), Ok(b));
            let clap_name = b.to_possible_value().expect("not skipped");
            assert_eq!(clap_name.get_name(), b.name());
            assert!(!b.rule().is_empty());
        }
        let err = "vote-thrice".parse::<Bug>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("vote-thrice"), "{text}");
        for b in Bug::ALL {
            assert!(text.contains(b.name()), "{text}");
        }
    }

    #[test]
    fn set_lists_in_declaration_order() {
        let set: BugSet = [Bug::SkipFsync, Bug::VoteTwice].into_iter().collect();
        assert!(set.contains(Bug::VoteTwice) && set.contains(Bug::SkipFsync));
        assert!(!set.contains(Bug::StaleReads));
        assert_eq!(set.to_string(), "vote-twice,skip-fsync");
        assert_eq!(BugSet::default().to_string(), "");
        assert!(BugSet::default().is_empty());
        assert_eq!(BugSet::none().with(Bug::CommitOldTerm).iter().count(), 1);
    }
}
