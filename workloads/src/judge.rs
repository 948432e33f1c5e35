//! How a workload's history is judged: the register workload by the linearizability checker
//! (per key, with a budget: over budget is unknown, never valid), the set and counter workloads
//! by their own checkers. Pure: paired operations in, a [`Judged`] out.

use crate::WorkloadKind;
use checker::render::{render_counter, render_linearizability, render_set};
use checker::verdict::{Judgement, KeyOutcome, Verdict};
use checker::Register;
use checker::{check_counter, check_linearizability, check_set, Budget, CheckError, Operation};
use serde::Serialize;

/// The three answers of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// No anomaly.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// The checker gave up (budget) or had too little to judge by.
    Unknown,
}

impl Outcome {
    /// `valid`, `invalid` or `unknown`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
        }
    }
}

impl From<Judgement> for Outcome {
    fn from(j: Judgement) -> Outcome {
        match j {
            Judgement::Valid => Outcome::Valid,
            Judgement::Invalid => Outcome::Invalid,
            Judgement::Unknown => Outcome::Unknown,
        }
    }
}

/// A judged history.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    /// The verdict.
    pub outcome: Outcome,
    /// One line saying why.
    pub reason: String,
    /// Keys judged.
    pub key_count: usize,
    /// Keys with an anomaly, in key order.
    pub invalid_keys: Vec<String>,
    /// Keys the checker could not judge, in key order.
    pub unknown_keys: Vec<String>,
    /// The checker's whole report, as it serializes.
    pub report: serde_json::Value,
    /// The report as text for people.
    #[serde(skip)]
    pub text: String,
}

/// Judges `ops` (paired from a history) by `kind`'s checker within `budget`.
///
/// # Errors
/// An operation that does not fit the checker's model (a history of another workload).
pub fn judge(kind: WorkloadKind, ops: &[Operation], budget: &Budget) -> Result<Judged, CheckError> {
    match kind {
        WorkloadKind::Register => {
            let report = check_linearizability(&Register, ops, budget)?;
            let text = render_linearizability(&report, ops);
            let mut invalid_keys = Vec::new();
            let mut unknown_keys = Vec::new();
            for k in &report.keys {
                match k.outcome {
                    KeyOutcome::Valid => {}
                    KeyOutcome::Invalid => invalid_keys.push(k.key.clone()),
                    KeyOutcome::Unknown { .. } => unknown_keys.push(k.key.clone()),
                }
            }
            let (outcome, reason) = match &report.verdict {
                Verdict::Valid => (
                    Outcome::Valid,
                    format!("all {} keys linearizable", report.keys.len()),
                ),
                Verdict::Invalid { anomalies } => {
                    let first = &anomalies[0];
                    (
                        Outcome::Invalid,
                        format!(
                            "{} of {} keys not linearizable; key {:?}: could not place {}",
                            anomalies.len(),
                            report.keys.len(),
                            first.key,
                            first.failing_op_description
                        ),
                    )
                }
                Verdict::Unknown { keys } => (
                    Outcome::Unknown,
                    format!(
                        "the search gave up on {} of {} keys (first: {:?}, {})",
                        keys.len(),
                        report.keys.len(),
                        keys[0].key,
                        keys[0].reason
                    ),
                ),
            };
            Ok(Judged {
                outcome,
                reason,
                key_count: report.keys.len(),
                invalid_keys,
                unknown_keys,
                report: serde_json::to_value(&report).expect("reports serialize"),
                text,
            })
        }
        WorkloadKind::Set => {
            let report = check_set(ops)?;
            let mut lost = 0;
            let mut unexpected = 0;
            let mut duplicated = 0;
            for k in &report.keys {
                lost += k.lost.len();
                unexpected += k.unexpected.len();
                duplicated += k.duplicated.len();
            }
            let reason = match report.judgement {
                Judgement::Valid => format!("all {} sets intact", report.keys.len()),
                Judgement::Invalid => format!(
                    "{lost} acknowledged elements lost, {unexpected} unexpected, {duplicated} duplicated"
                ),
                Judgement::Unknown => "a set has adds but no successful read".to_string(),
            };
            let keys = report.keys.iter().map(|k| (k.key.as_str(), k.judgement));
            Ok(judged_per_key(
                report.judgement,
                reason,
                keys,
                &report,
                render_set(&report),
            ))
        }
        WorkloadKind::Counter => {
            let report = check_counter(ops)?;
            let anomalies: usize = report.keys.iter().map(|k| k.anomalies.len()).sum();
            let reads: usize = report.keys.iter().map(|k| k.reads_checked).sum();
            let reason = match report.judgement {
                Judgement::Valid => format!("all {reads} reads within their bounds"),
                Judgement::Invalid => format!("{anomalies} of {reads} reads outside their bounds"),
                Judgement::Unknown => "too little to judge by".to_string(),
            };
            let keys = report.keys.iter().map(|k| (k.key.as_str(), k.judgement));
            Ok(judged_per_key(
                report.judgement,
                reason,
                keys,
                &report,
                render_counter(&report),
            ))
        }
    }
}

/// A [`Judged`] from a checker that judges key by key (set, counter).
fn judged_per_key<'a>(
    judgement: Judgement,
    reason: String,
    keys: impl Iterator<Item = (&'a str, Judgement)>,
    report: &impl Serialize,
    text: String,
) -> Judged {
    let mut key_count = 0;
    let mut invalid_keys = Vec::new();
    let mut unknown_keys = Vec::new();
    for (key, j) in keys {
        key_count += 1;
        match j {
            Judgement::Valid => {}
            Judgement::Invalid => invalid_keys.push(key.to_string()),
            Judgement::Unknown => unknown_keys.push(key.to_string()),
        }
    }
    Judged {
        outcome: judgement.into(),
        reason,
        key_count,
        invalid_keys,
        unknown_keys,
        report: serde_json::to_value(report).expect("reports serialize"),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{pair_history, read_history};

    fn ops(text: &str) -> Vec<Operation> {
        pair_history(&read_history(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn a_stale_register_read_is_invalid_and_named() {
        let h = r#"{"process":0,"type":"invoke","f":"write","key":"r0","value":"1","time_ns":1}
{"process":0,"type":"ok","f":"write","key":"r0","value":"1","time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"r0","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"r0","value":null,"time_ns":4}"#;
        let j = judge(WorkloadKind::Register, &ops(h), &Budget::default()).unwrap();
        assert_eq!(j.outcome, Outcome::Invalid);
        assert_eq!(j.invalid_keys, vec!["r0".to_string()]);
        assert!(j.reason.contains("r0"), "{}", j.reason);
    }

    #[test]
    fn a_lost_set_element_and_a_counter_read_out_of_bounds_are_invalid() {
        let h = r#"{"process":0,"type":"invoke","f":"add","key":"s0","value":1,"time_ns":1}
{"process":0,"type":"ok","f":"add","key":"s0","value":1,"time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"s0","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"s0","value":[],"time_ns":4}"#;
        let j = judge(WorkloadKind::Set, &ops(h), &Budget::default()).unwrap();
        assert_eq!(j.outcome, Outcome::Invalid);
        assert!(
            j.reason.contains("1 acknowledged elements lost"),
            "{}",
            j.reason
        );
        let h = r#"{"process":0,"type":"invoke","f":"incr","key":"c0","value":2,"time_ns":1}
{"process":0,"type":"ok","f":"incr","key":"c0","value":2,"time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"c0","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"c0","value":5,"time_ns":4}"#;
        let j = judge(WorkloadKind::Counter, &ops(h), &Budget::default()).unwrap();
        assert_eq!(j.outcome, Outcome::Invalid);
        assert_eq!(j.invalid_keys, vec!["c0".to_string()]);
    }

    #[test]
    fn an_exhausted_budget_is_unknown_never_valid() {
        let h = r#"{"process":0,"type":"invoke","f":"write","key":"r0","value":"1","time_ns":1}
{"process":0,"type":"ok","f":"write","key":"r0","value":"1","time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"r0","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"r0","value":"1","time_ns":4}"#;
        let budget = Budget {
            states_max: 0,
            ..Budget::default()
        };
        let j = judge(WorkloadKind::Register, &ops(h), &budget).unwrap();
        assert_ne!(j.outcome, Outcome::Valid);
    }
}
