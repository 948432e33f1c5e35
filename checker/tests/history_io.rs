//! Reading, writing and pairing JSON-lines histories, and the line-numbered errors on bad input.

mod common;

use checker::{pair_history, read_history, write_history, Completion, HistoryError};
use common::ev;
use serde_json::{json, Value};

fn pair_text(text: &str) -> Result<Vec<checker::Operation>, HistoryError> {
    let history = read_history(text.as_bytes())?;
    pair_history(&history)
}

#[test]
fn round_trip_through_json_lines() {
    let events = vec![
        ev(0, "invoke", "cas", "k", json!([1, 2]), 10),
        ev(0, "ok", "cas", "k", json!([1, 2]), 20),
        ev(1, "invoke", "read", "k", Value::Null, 30),
        ev(1, "info", "read", "k", Value::Null, 40),
    ];
    let mut text = Vec::new();
    write_history(&mut text, &events).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"process":0,"type":"invoke","f":"cas","key":"k","value":[1,2],"time_ns":10}"#
    );
    let history = read_history(text.as_bytes()).unwrap();
    assert_eq!(history.events, events);
    assert_eq!(history.lines, vec![1, 2, 3, 4]);
}

#[test]
fn extra_fields_are_ignored_and_blank_lines_skipped() {
    let text = "\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1,\"node\":\"n1\"}\n\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"a\",\"value\":3,\"time_ns\":2,\"latency\":1}\n";
    let ops = pair_text(text).unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].line, 2);
    assert_eq!(ops[0].result(), Some(&json!(3)));
}

#[test]
fn fail_is_dropped_info_and_pending_are_indeterminate() {
    let ops = checker::pair_history(&checker::History::from_events(vec![
        ev(0, "invoke", "write", "a", json!(1), 1),
        ev(0, "fail", "write", "a", json!(1), 2),
        ev(1, "invoke", "write", "a", json!(2), 3),
        ev(1, "info", "write", "a", Value::Null, 4),
        ev(2, "invoke", "write", "a", json!(3), 5),
    ]))
    .unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].value, json!(2));
    assert_eq!(ops[0].completion, Completion::Info { time_ns: 4 });
    assert!(ops[0].is_indeterminate());
    assert_eq!(ops[1].completion, Completion::Pending);
    assert!(ops[1].is_indeterminate());
}

fn error_line(text: &str) -> (usize, String) {
    let err = pair_text(text).unwrap_err();
    (err.line().expect("a line-numbered error"), err.to_string())
}

#[test]
fn malformed_line_reports_its_number() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n{not json\n";
    let (line, message) = error_line(text);
    assert_eq!(line, 2);
    assert!(message.starts_with("line 2: malformed"), "{message}");
}

#[test]
fn missing_field_is_malformed() {
    let (line, _) = error_line(
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time_ns\":1}\n",
    );
    assert_eq!(line, 1);
}

#[test]
fn unknown_type_reports_its_number() {
    let text = "{\"process\":1,\"type\":\"start\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n";
    let err = pair_text(text).unwrap_err();
    assert!(
        matches!(err, HistoryError::UnknownType { line: 1, .. }),
        "{err}"
    );
}

#[test]
fn ok_without_invoke_reports_its_number() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n{\"process\":2,\"type\":\"ok\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":2}\n";
    let err = pair_text(text).unwrap_err();
    assert!(
        matches!(
            err,
            HistoryError::CompletionWithoutInvoke {
                line: 2,
                process: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn two_open_ops_report_both_lines() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":2}\n";
    let err = pair_text(text).unwrap_err();
    assert!(
        matches!(
            err,
            HistoryError::TwoOpenOps {
                line: 2,
                process: 1,
                open_line: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn process_reused_after_info_is_rejected() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n{\"process\":1,\"type\":\"info\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":2}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":3}\n";
    let err = pair_text(text).unwrap_err();
    assert!(
        matches!(
            err,
            HistoryError::ProcessReusedAfterInfo {
                line: 3,
                process: 1,
                info_line: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn completion_of_another_function_is_rejected() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"key\":\"a\",\"value\":null,\"time_ns\":2}\n";
    assert_eq!(error_line(text).0, 2);
}

#[test]
fn completion_before_invoke_is_rejected() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":5}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":2}\n";
    assert_eq!(error_line(text).0, 2);
}
