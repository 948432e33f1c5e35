//! Hand-made register histories with known verdicts.

mod common;

use checker::{check_linearizability, Budget, Operation, Register, Verdict};
use common::{brute_force_linearizable, ev, pair};
use serde_json::{json, Value};

fn verdict(ops: &[Operation]) -> Verdict {
    check_linearizability(&Register, ops, &Budget::unlimited())
        .expect("history fits the register model")
        .verdict
}

fn w(p: u64, v: i64, start: u64, end: u64) -> Vec<checker::Event> {
    vec![
        ev(p, "invoke", "write", "x", json!(v), start),
        ev(p, "ok", "write", "x", json!(v), end),
    ]
}

fn r(p: u64, v: Value, start: u64, end: u64) -> Vec<checker::Event> {
    vec![
        ev(p, "invoke", "read", "x", Value::Null, start),
        ev(p, "ok", "read", "x", v, end),
    ]
}

/// Sorts events by time (stable), as a recorder would have written them.
fn history(parts: Vec<Vec<checker::Event>>) -> Vec<Operation> {
    let mut events: Vec<_> = parts.into_iter().flatten().collect();
    events.sort_by_key(|e| e.time_ns);
    pair(events)
}

fn assert_valid(ops: &[Operation]) {
    assert!(brute_force_linearizable(ops), "brute force disagrees");
    assert_eq!(verdict(ops), Verdict::Valid);
}

fn assert_invalid(ops: &[Operation]) -> checker::Anomaly {
    assert!(!brute_force_linearizable(ops), "brute force disagrees");
    match verdict(ops) {
        Verdict::Invalid { mut anomalies } => {
            assert_eq!(anomalies.len(), 1);
            anomalies.remove(0)
        }
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn empty_history_is_valid() {
    assert_eq!(verdict(&[]), Verdict::Valid);
}

#[test]
fn read_of_nil_before_any_write_is_valid() {
    assert_valid(&history(vec![r(0, Value::Null, 1, 2), w(1, 1, 3, 4)]));
}

#[test]
fn concurrent_write_and_reads_may_see_either_value() {
    // The write of 2 overlaps both reads: one may see 1 and the next 2.
    assert_valid(&history(vec![
        w(0, 1, 1, 2),
        w(1, 2, 3, 10),
        r(2, json!(1), 4, 5),
        r(3, json!(2), 6, 7),
        r(4, json!(2), 11, 12),
    ]));
}

#[test]
fn concurrent_reads_seeing_new_then_old_is_invalid_when_sequential() {
    // Read 2 completes, then a later read sees 1 again, with the write of 2 overlapping both:
    // after 2 was observed, 1 can never come back.
    let anomaly = assert_invalid(&history(vec![
        w(0, 1, 1, 2),
        w(1, 2, 3, 20),
        r(2, json!(2), 4, 5),
        r(3, json!(1), 6, 7),
    ]));
    assert_eq!(anomaly.key, "x");
}

#[test]
fn stale_read_is_invalid() {
    let ops = history(vec![w(0, 1, 1, 2), w(0, 2, 3, 4), r(1, json!(1), 5, 6)]);
    let anomaly = assert_invalid(&ops);
    // The stale read is the operation that cannot be placed, after both writes.
    assert_eq!(ops[anomaly.failing_op.0].f, "read");
    assert_eq!(anomaly.longest_prefixes[0].len(), 2);
    assert_eq!(anomaly.failing_op_description, "read -> 1");
    assert_eq!(anomaly.explanation.state_before_failure, "2");
}

#[test]
fn lost_write_is_invalid() {
    // The acknowledged write of 1 is never seen: the read after it returns nil.
    assert_invalid(&history(vec![w(0, 1, 1, 2), r(1, Value::Null, 3, 4)]));
}

#[test]
fn read_of_a_value_never_written_is_invalid() {
    assert_invalid(&history(vec![w(0, 1, 1, 2), r(1, json!(7), 1, 5)]));
}

#[test]
fn cas_succeeding_twice_is_invalid() {
    let ops = history(vec![
        w(0, 0, 1, 2),
        vec![
            ev(1, "invoke", "cas", "x", json!([0, 1]), 3),
            ev(2, "invoke", "cas", "x", json!([0, 2]), 4),
            ev(1, "ok", "cas", "x", json!([0, 1]), 5),
            ev(2, "ok", "cas", "x", json!([0, 2]), 6),
        ],
    ]);
    assert_invalid(&ops);
}

#[test]
fn one_cas_succeeding_and_one_failing_is_valid() {
    let ops = history(vec![
        w(0, 0, 1, 2),
        vec![
            ev(1, "invoke", "cas", "x", json!([0, 1]), 3),
            ev(2, "invoke", "cas", "x", json!([0, 2]), 4),
            ev(1, "ok", "cas", "x", json!([0, 1]), 5),
            ev(2, "fail", "cas", "x", json!([0, 2]), 6),
        ],
        r(3, json!(1), 7, 8),
    ]);
    assert_valid(&ops);
}

#[test]
fn info_write_that_must_have_applied() {
    // The only source of 5 is a write whose outcome is unknown: it must have taken effect.
    let ops = history(vec![
        vec![
            ev(0, "invoke", "write", "x", json!(5), 1),
            ev(0, "info", "write", "x", Value::Null, 2),
        ],
        r(1, json!(5), 10, 11),
    ]);
    assert_valid(&ops);
}

#[test]
fn info_write_applied_late_is_allowed() {
    // Timed out at 2, yet seen only at 20 after another write: it took effect late.
    let ops = history(vec![
        vec![
            ev(0, "invoke", "write", "x", json!(5), 1),
            ev(0, "info", "write", "x", Value::Null, 2),
        ],
        w(1, 1, 3, 4),
        r(2, json!(1), 5, 6),
        r(2, json!(5), 20, 21)
            .into_iter()
            .map(|mut e| {
                e.process = 3;
                e
            })
            .collect(),
    ]);
    assert_valid(&ops);
}

#[test]
fn info_write_that_must_not_be_assumed_applied() {
    // The write of 5 may never have happened: a read of nil after it is fine.
    let ops = history(vec![
        vec![
            ev(0, "invoke", "write", "x", json!(5), 1),
            ev(0, "info", "write", "x", Value::Null, 2),
        ],
        r(1, Value::Null, 10, 11),
    ]);
    assert_valid(&ops);
}

#[test]
fn info_write_cannot_explain_a_read_before_its_invoke() {
    let ops = history(vec![
        r(1, json!(5), 1, 2),
        vec![
            ev(0, "invoke", "write", "x", json!(5), 3),
            ev(0, "info", "write", "x", Value::Null, 4),
        ],
    ]);
    assert_invalid(&ops);
}

#[test]
fn info_write_applied_once_cannot_be_seen_to_come_back() {
    // 5 (unknown outcome) seen, then 1 written and seen, then 5 again: 5 took effect only once.
    let ops = history(vec![
        vec![
            ev(0, "invoke", "write", "x", json!(5), 1),
            ev(0, "info", "write", "x", Value::Null, 2),
        ],
        r(1, json!(5), 3, 4),
        w(2, 1, 5, 6),
        r(3, json!(1), 7, 8),
        r(4, json!(5), 9, 10),
    ]);
    assert_invalid(&ops);
}

#[test]
fn pending_invoke_counts_as_info() {
    let ops = history(vec![
        vec![ev(0, "invoke", "write", "x", json!(5), 1)],
        r(1, json!(5), 10, 11),
    ]);
    assert_valid(&ops);
}

#[test]
fn return_at_the_same_time_as_an_invoke_precedes_it() {
    // The write returns at 5 and the read is invoked at 5: the read must see it.
    let ops = history(vec![w(0, 1, 1, 5), r(1, Value::Null, 5, 6)]);
    assert_invalid(&ops);
}

#[test]
fn keys_are_independent_and_only_the_bad_key_is_reported() {
    let mut events = vec![
        ev(0, "invoke", "write", "a", json!(1), 1),
        ev(0, "ok", "write", "a", json!(1), 2),
        ev(1, "invoke", "read", "b", Value::Null, 3),
        ev(1, "ok", "read", "b", Value::Null, 4),
        ev(2, "invoke", "read", "a", Value::Null, 5),
        ev(2, "ok", "read", "a", json!(2), 6),
    ];
    events.sort_by_key(|e| e.time_ns);
    let report = check_linearizability(&Register, &pair(events), &Budget::unlimited()).unwrap();
    match report.verdict {
        Verdict::Invalid { anomalies } => {
            assert_eq!(anomalies.len(), 1);
            assert_eq!(anomalies[0].key, "a");
            let e = &anomalies[0].explanation;
            assert!(e.processes.iter().flat_map(|p| &p.ops).any(|o| o.failing));
            assert_eq!(e.linearization.len(), 1);
            serde_json::to_string(&anomalies[0]).expect("serializable");
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(report.keys.len(), 2);
}

#[test]
fn unknown_function_is_an_error_with_the_line() {
    let ops = pair(vec![
        ev(0, "invoke", "frob", "a", json!(1), 1),
        ev(0, "ok", "frob", "a", json!(1), 2),
    ]);
    let err = check_linearizability(&Register, &ops, &Budget::unlimited()).unwrap_err();
    assert!(err.to_string().starts_with("line 1:"), "{err}");
}

#[test]
fn tiny_state_budget_gives_unknown_not_valid() {
    let mut parts = Vec::new();
    for i in 0..50 {
        parts.push(w(i, i as i64, 10 * i, 10 * i + 5));
    }
    let ops = history(parts);
    let budget = Budget {
        states_max: 3,
        ..Budget::unlimited()
    };
    let report = check_linearizability(&Register, &ops, &budget).unwrap();
    assert!(
        matches!(report.verdict, Verdict::Unknown { .. }),
        "{report:?}"
    );
}

#[test]
fn tiny_cache_byte_budget_gives_unknown_not_valid() {
    let mut parts = Vec::new();
    for i in 0..50 {
        parts.push(w(i, i as i64, 10 * i, 10 * i + 5));
    }
    let budget = Budget {
        cache_bytes_max: 100,
        ..Budget::unlimited()
    };
    let report = check_linearizability(&Register, &history(parts), &budget).unwrap();
    match report.verdict {
        Verdict::Unknown { keys } => assert_eq!(
            keys[0].reason,
            checker::UnknownReason::CacheBytesMax {
                cache_bytes_max: 100
            }
        ),
        other => panic!("expected unknown, got {other:?}"),
    }
}

struct Expired;
impl checker::Deadline for Expired {
    fn expired(&self) -> bool {
        true
    }
}

#[test]
fn expired_deadline_gives_unknown_not_valid() {
    let ops = history(vec![w(0, 1, 1, 2), r(1, json!(1), 3, 4)]);
    let budget = Budget::with_deadline(std::sync::Arc::new(Expired));
    let report = check_linearizability(&Register, &ops, &budget).unwrap();
    assert!(
        matches!(report.verdict, Verdict::Unknown { .. }),
        "{report:?}"
    );
}
