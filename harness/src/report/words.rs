//! Each anomaly in words, in the manner of Elle's explanations: what the clients saw, in the
//! order it happened, with times, values and the nodes that answered, and the name of the
//! anomaly. Pure: operations in, sentences out.
//!
//! Register anomalies are named from the operation the checker could not place:
//! - a **read of a value never written**: no write of the value read was invoked before the
//!   read completed;
//! - a **stale read**: a write of another value was acknowledged before the read began, no write
//!   of the value read was invoked after it, and some later read did see that write (or a later
//!   value): the store had it, this read missed it;
//! - a **lost write**: as a stale read, but no read that began after the write ever saw it or a
//!   later value;
//! - otherwise the longest linearizable order and the state it leaves are described.
//!
//! Set anomalies: lost, unexpected and duplicated elements. Counter anomalies: a read outside
//! the bounds the increments around it allow.

use super::data::{Op, Outcome};
use super::svg::ns_to_s;
use serde_json::Value;

/// Seconds since the start, as people read them (`12.403 s`).
#[must_use]
pub fn secs(ns: u64) -> String {
    format!("{:.3} s", ns_to_s(ns))
}

/// A value as people read it: strings quoted, null as "nothing".
#[must_use]
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_string(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn by_node(op: &Op) -> String {
    op.node
        .map_or_else(String::new, |n| format!(", served by node {n}"))
}

/// Values a write or cas installs.
fn installs(op: &Op) -> Option<&Value> {
    match op.f.as_str() {
        "write" => Some(&op.value),
        "cas" => op.value.as_array().and_then(|a| a.get(1)),
        _ => None,
    }
}

/// Describes the register anomaly whose unplaceable operation is `failing`, among `ops` (every
/// operation on its key). `state` is the register's value after the longest linearizable order
/// the checker found, and `placed` how many operations that order has.
#[must_use]
pub fn register(key: &str, ops: &[&Op], failing: &Op, state: &str, placed: usize) -> String {
    if failing.f == "read" && failing.outcome == Outcome::Ok {
        let v = &failing.result;
        let read_end = failing.end_ns.unwrap_or(u64::MAX);
        let written = |value: &Value, after: u64, before: u64| {
            ops.iter()
                .any(|o| installs(o) == Some(value) && o.start_ns >= after && o.start_ns <= before)
        };
        if !v.is_null() && !written(v, 0, read_end) {
            return format!(
                "read of {key} at {} returned {}, but no write of {} was invoked before the read \
                 completed: a read of a value never written{}",
                secs(failing.start_ns),
                value_text(v),
                value_text(v),
                by_node(failing)
            );
        }
        // The write of another value acknowledged last before the read began.
        let last_write = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && installs(o).is_some_and(|w| w != v))
            .filter(|o| o.end_ns.is_some_and(|e| e < failing.start_ns))
            .max_by_key(|o| o.end_ns);
        if let Some(w) = last_write {
            let w_end = w.end_ns.unwrap_or(0);
            let w_value = installs(w).expect("filtered on installs");
            if !written(v, w_end, u64::MAX) {
                // Did any read that began after the write see it, or a value written later?
                let later: Vec<&Value> = ops
                    .iter()
                    .filter(|o| o.start_ns > w_end || std::ptr::eq::<Op>(**o, *w))
                    .filter_map(|o| installs(o))
                    .collect();
                let seen = ops.iter().any(|o| {
                    o.f == "read"
                        && o.outcome == Outcome::Ok
                        && o.start_ns > w_end
                        && (o.result == *w_value || later.contains(&&o.result))
                });
                // Nothing writes "nothing" back (no deletes): the clause is only for values.
                let no_rewrite = if v.is_null() {
                    String::new()
                } else {
                    format!(", and no write of {} was invoked after it", value_text(v))
                };
                return if seen {
                    format!(
                        "read of {key} at {} returned {}, but write {} was acknowledged at {}, \
                         before the read began{no_rewrite}: a stale read{}",
                        secs(failing.start_ns),
                        value_text(v),
                        value_text(w_value),
                        secs(w_end),
                        by_node(failing)
                    )
                } else {
                    format!(
                        "write {} of {key} was acknowledged at {}{}, but no read that began \
                         after it saw it or a later value: the read at {} returned {}{}: a lost \
                         write",
                        value_text(w_value),
                        secs(w_end),
                        w.node.map_or_else(String::new, |n| format!(" by node {n}")),
                        secs(failing.start_ns),
                        value_text(v),
                        by_node(failing)
                    )
                };
            }
        }
    }
    let ended = match (failing.outcome, failing.end_ns) {
        (Outcome::Ok, Some(e)) => format!("acknowledged at {}", secs(e)),
        (Outcome::Info, Some(e)) => format!("outcome unknown from {}", secs(e)),
        _ => "never completed".to_string(),
    };
    format!(
        "no order of the operations on {key} explains what the clients saw: after the longest \
         linearizable order found ({placed} operations), the register holds {state}, and {} by \
         process {} (invoked at {}, {ended}{}) cannot take effect",
        describe(failing),
        failing.process,
        secs(failing.start_ns),
        by_node(failing)
    )
}

/// An operation as people read it: `read -> "3"`, `write "4"`, `cas "1" -> "2"`, `add 7`.
#[must_use]
pub fn describe(op: &Op) -> String {
    match op.f.as_str() {
        "read" => match op.outcome {
            Outcome::Ok => format!("read -> {}", value_text(&op.result)),
            _ => "read".to_string(),
        },
        "cas" => match op.value.as_array().map(Vec::as_slice) {
            Some([e, n]) => format!("cas {} -> {}", value_text(e), value_text(n)),
            _ => format!("cas {}", op.value),
        },
        f => format!("{f} {}", value_text(&op.value)),
    }
}

/// A lost set element: acknowledged `add`, missing from the `final_read`.
#[must_use]
pub fn set_lost(key: &str, element: &Value, add: Option<&Op>, final_read: Option<&Op>) -> String {
    let added = add.map_or_else(
        || "was added".to_string(),
        |a| {
            format!(
                "was added (acknowledged at {}{})",
                secs(a.end_ns.unwrap_or(a.start_ns)),
                a.node.map_or_else(String::new, |n| format!(" by node {n}"))
            )
        },
    );
    let read = final_read.map_or_else(
        || "the final read".to_string(),
        |r| {
            format!(
                "the final read at {}{}",
                secs(r.start_ns),
                r.node.map_or_else(String::new, |n| format!(" (node {n})"))
            )
        },
    );
    format!("element {element} of {key} {added}, but {read} did not contain it: a lost element")
}

/// An element a read returned although no add of it was invoked before the read completed.
#[must_use]
pub fn set_unexpected(key: &str, element: &Value, read: Option<&Op>) -> String {
    match read {
        Some(r) => format!(
            "the read of {key} at {}{} returned {element}, but no add of {element} was invoked \
             before that read completed: an unexpected element",
            secs(r.start_ns),
            r.node.map_or_else(String::new, |n| format!(" (node {n})"))
        ),
        None => format!(
            "a read of {key} returned {element}, which was never added: an unexpected element"
        ),
    }
}

/// An element one read returned twice.
#[must_use]
pub fn set_duplicated(key: &str, element: &Value, read: Option<&Op>) -> String {
    match read {
        Some(r) => format!(
            "the read of {key} at {}{} returned {element} twice: a duplicated element",
            secs(r.start_ns),
            r.node.map_or_else(String::new, |n| format!(" (node {n})"))
        ),
        None => format!("a read of {key} returned {element} twice: a duplicated element"),
    }
}

/// A counter read outside `[lower, upper]`.
#[must_use]
pub fn counter(key: &str, read: &Op, value: i64, lower: i64, upper: i64) -> String {
    let allowed = if lower == upper {
        format!("only {lower}")
    } else {
        format!("only {lower} to {upper}")
    };
    format!(
        "read of {key} at {} returned {value}{}, but the increments around it allow {allowed}: a \
         counter out of bounds",
        secs(read.start_ns),
        by_node(read)
    )
}

/// ` (and n more)` after a sentence about the first of several, nothing for none.
#[must_use]
pub fn more(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" (and {n} more)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(process: u64, f: &str, value: Value, result: Value, span: (u64, u64), node: u64) -> Op {
        Op {
            process,
            f: f.into(),
            key: "k".into(),
            value,
            result,
            start_ns: span.0 * 1_000_000,
            end_ns: Some(span.1 * 1_000_000),
            outcome: Outcome::Ok,
            node: Some(node),
            error: None,
            line: 0,
        }
    }

    #[test]
    fn a_stale_read() {
        let ops = [
            op(
                1,
                "write",
                json!("4-17"),
                json!("4-17"),
                (12_000, 12_010),
                1,
            ),
            op(2, "write", json!("7-2"), json!("7-2"), (12_300, 12_390), 1),
            op(3, "read", Value::Null, json!("4-17"), (12_403, 12_410), 3),
            op(4, "read", Value::Null, json!("7-2"), (12_500, 12_510), 1),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(
            register("k", &refs, &ops[2], "\"7-2\"", 2),
            "read of k at 12.403 s returned \"4-17\", but write \"7-2\" was acknowledged at \
             12.390 s, before the read began, and no write of \"4-17\" was invoked after it: a \
             stale read, served by node 3"
        );
    }

    #[test]
    fn a_stale_read_of_nothing() {
        let ops = [
            op(1, "write", json!("2"), json!("2"), (2, 2), 1),
            op(2, "read", Value::Null, Value::Null, (3, 4), 5),
            op(3, "read", Value::Null, json!("2"), (5, 6), 1),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(
            register("r0", &refs, &ops[1], "\"2\"", 1),
            "read of r0 at 0.003 s returned nothing, but write \"2\" was acknowledged at 0.002 s, \
             before the read began: a stale read, served by node 5"
        );
    }

    #[test]
    fn a_lost_write() {
        let ops = [
            op(1, "write", json!("1"), json!("1"), (1_000, 1_010), 1),
            op(2, "write", json!("2"), json!("2"), (2_000, 2_020), 2),
            op(3, "read", Value::Null, json!("1"), (3_000, 3_005), 4),
            op(4, "read", Value::Null, json!("1"), (4_000, 4_005), 4),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(
            register("k", &refs, &ops[2], "\"2\"", 2),
            "write \"2\" of k was acknowledged at 2.020 s by node 2, but no read that began \
             after it saw it or a later value: the read at 3.000 s returned \"1\", served by \
             node 4: a lost write"
        );
    }

    #[test]
    fn a_read_of_a_value_never_written() {
        let ops = [
            op(1, "write", json!("1"), json!("1"), (1_000, 1_010), 1),
            op(2, "read", Value::Null, json!("9"), (2_000, 2_005), 5),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(
            register("k", &refs, &ops[1], "\"1\"", 1),
            "read of k at 2.000 s returned \"9\", but no write of \"9\" was invoked before the \
             read completed: a read of a value never written, served by node 5"
        );
    }

    #[test]
    fn anything_else_names_the_order_and_the_state() {
        let mut cas = op(
            1,
            "cas",
            json!(["5", "6"]),
            json!(["5", "6"]),
            (1_000, 1_010),
            2,
        );
        cas.process = 7;
        let refs = [&cas];
        assert_eq!(
            register("k", &refs, &cas, "nothing", 0),
            "no order of the operations on k explains what the clients saw: after the longest \
             linearizable order found (0 operations), the register holds nothing, and cas \"5\" \
             -> \"6\" by process 7 (invoked at 1.000 s, acknowledged at 1.010 s, served by node \
             2) cannot take effect"
        );
    }

    #[test]
    fn set_and_counter_anomalies() {
        let add = op(1, "add", json!(17), json!(17), (3_000, 3_210), 2);
        let read = op(
            2,
            "read",
            Value::Null,
            json!([1, 5, 5]),
            (61_200, 61_300),
            4,
        );
        assert_eq!(
            set_lost("s0", &json!(17), Some(&add), Some(&read)),
            "element 17 of s0 was added (acknowledged at 3.210 s by node 2), but the final read \
             at 61.200 s (node 4) did not contain it: a lost element"
        );
        assert_eq!(
            set_duplicated("s0", &json!(5), Some(&read)),
            "the read of s0 at 61.200 s (node 4) returned 5 twice: a duplicated element"
        );
        assert_eq!(
            set_unexpected("s0", &json!(1), Some(&read)),
            "the read of s0 at 61.200 s (node 4) returned 1, but no add of 1 was invoked before \
             that read completed: an unexpected element"
        );
        let read = op(3, "read", Value::Null, json!(42), (5_100, 5_110), 2);
        assert_eq!(
            counter("c0", &read, 42, 10, 30),
            "read of c0 at 5.100 s returned 42, served by node 2, but the increments around it \
             allow only 10 to 30: a counter out of bounds"
        );
    }
}
