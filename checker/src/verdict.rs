//! Verdicts of the linearizability check: valid, invalid (with the evidence) or unknown.
//!
//! Plain serializable data; the harness stores it in its results and draws the explanation.

use serde::Serialize;

use crate::explain::Explanation;
use crate::operation::OpId;
use crate::search::UnknownReason;

/// The answer for a whole history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Valid,
    /// At least one key's sub-history is not; one anomaly per such key, ordered by key. Takes
    /// precedence over unknown keys.
    Invalid {
        /// The evidence, per invalid key.
        anomalies: Vec<Anomaly>,
    },
    /// No key is invalid but at least one search gave up.
    Unknown {
        /// The keys whose search gave up, and why.
        keys: Vec<UnknownKey>,
    },
}

impl Verdict {
    /// True for [`Verdict::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }

    /// True for [`Verdict::Invalid`].
    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid { .. })
    }
}

/// A key whose search gave up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownKey {
    /// The key.
    pub key: String,
    /// Why.
    pub reason: UnknownReason,
}

/// Evidence that one key's sub-history is not linearizable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The key.
    pub key: String,
    /// The operation that could not be placed after the longest linearizable prefix.
    pub failing_op: OpId,
    /// A human form of the failing operation.
    pub failing_op_description: String,
    /// The longest linearizable prefixes found (operation ids in order), longest first.
    pub longest_prefixes: Vec<Vec<OpId>>,
    /// What a timeline needs to show the anomaly.
    pub explanation: Explanation,
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum KeyOutcome {
    /// Linearizable.
    Valid,
    /// Not linearizable.
    Invalid,
    /// The search gave up.
    Unknown {
        /// Why.
        reason: UnknownReason,
    },
}

/// Per-key statistics and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// Operations recorded on the key (fails excluded).
    pub op_count: usize,
    /// Operations left for the search after dropping those that cannot matter.
    pub searched_op_count: usize,
    /// Distinct (linearized set, state) pairs explored.
    pub states_explored: u64,
    /// The key's outcome.
    pub outcome: KeyOutcome,
}

/// The full result of a linearizability check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearizabilityReport {
    /// The overall verdict.
    pub verdict: Verdict,
    /// One report per key, ordered by key.
    pub keys: Vec<KeyReport>,
}

/// The three answers a simpler checker (set, counter) gives for a key or a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// No anomaly.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// Not enough information to judge (for instance, no final read).
    Unknown,
}

impl Judgement {
    /// Combines per-key judgements: invalid beats unknown beats valid.
    pub fn combine(judgements: impl IntoIterator<Item = Judgement>) -> Judgement {
        let mut overall = Judgement::Valid;
        for j in judgements {
            match j {
                Judgement::Invalid => return Judgement::Invalid,
                Judgement::Unknown => overall = Judgement::Unknown,
                Judgement::Valid => {}
            }
        }
        overall
    }
}
