//! Human-readable text for reports, shared by the CLI and the harness.
//!
//! Pure: reports in, `String` out; printing is the caller's business.

use std::fmt::Write;

use crate::counter::CounterReport;
use crate::operation::Operation;
use crate::set::SetReport;
use crate::verdict::{Anomaly, Judgement, LinearizabilityReport, Verdict};

/// How many linearization steps are shown before the failure.
pub const SHOWN_STEPS_MAX: usize = 20;

/// The verdict of a linearizability check: for an invalid key, the key, the operation that could
/// not be placed and the end of the longest linearizable prefix with the state after each step.
/// `ops` are the operations the report was computed from.
pub fn render_linearizability(report: &LinearizabilityReport, ops: &[Operation]) -> String {
    let mut out = String::new();
    match &report.verdict {
        Verdict::Valid => out.push_str("verdict: VALID (linearizable)\n"),
        Verdict::Unknown { keys } => {
            out.push_str("verdict: UNKNOWN (no anomaly found, but the search gave up)\n");
            for k in keys {
                let _ = writeln!(out, "  key {:?}: {}", k.key, k.reason);
            }
        }
        Verdict::Invalid { anomalies } => {
            let _ = writeln!(
                out,
                "verdict: INVALID (not linearizable) on {} key(s)",
                anomalies.len()
            );
            for anomaly in anomalies {
                render_anomaly(&mut out, anomaly, ops);
            }
        }
    }
    out
}

fn render_anomaly(out: &mut String, anomaly: &Anomaly, ops: &[Operation]) {
    let failing = &ops[anomaly.failing_op.0];
    let e = &anomaly.explanation;
    let _ = writeln!(out, "\nkey {:?}:", anomaly.key);
    let end = failing
        .end_ns()
        .map_or("never completed".to_string(), |t| format!("{t} ns"));
    let _ = writeln!(
        out,
        "  could not place: process {} {} [{} ns .. {end}] (line {})",
        failing.process, anomaly.failing_op_description, failing.invoke_ns, failing.line
    );
    let longest = anomaly.longest_prefixes.first().map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "  longest linearizable prefix: {longest} operations ({} such prefixes kept)",
        anomaly.longest_prefixes.len()
    );
    let shown = e.linearization.len().min(SHOWN_STEPS_MAX);
    let skipped = e.linearization_skipped + e.linearization.len() - shown;
    if skipped > 0 {
        let _ = writeln!(out, "    ... {skipped} earlier operations");
    }
    for step in &e.linearization[e.linearization.len() - shown..] {
        let op = &ops[step.op.0];
        let _ = writeln!(
            out,
            "    process {:>4} {:<32} -> state {}   (line {})",
            op.process, step.description, step.state_after, op.line
        );
    }
    let _ = writeln!(
        out,
        "  then {} is impossible in state {}",
        anomaly.failing_op_description, e.state_before_failure
    );
}

fn judgement_text(judgement: Judgement) -> &'static str {
    match judgement {
        Judgement::Valid => "VALID",
        Judgement::Invalid => "INVALID",
        Judgement::Unknown => "UNKNOWN",
    }
}

/// The set checker's findings per key and overall.
pub fn render_set(report: &SetReport) -> String {
    let mut out = String::new();
    for key in &report.keys {
        let _ = writeln!(
            out,
            "key {:?}: {}; {} attempted, {} acknowledged, {} recovered",
            key.key,
            judgement_text(key.judgement),
            key.attempted_count,
            key.acknowledged_count,
            key.recovered.len()
        );
        for (label, elements) in [
            ("lost", &key.lost),
            ("unexpected", &key.unexpected),
            ("duplicated", &key.duplicated),
        ] {
            if !elements.is_empty() {
                let list: Vec<String> = elements.iter().map(|v| v.to_string()).collect();
                let _ = writeln!(out, "  {label}: {}", list.join(", "));
            }
        }
        if key.final_read.is_none() && key.attempted_count > 0 {
            out.push_str("  no ok read: nothing to judge the adds by\n");
        }
    }
    let _ = writeln!(out, "verdict: {}", judgement_text(report.judgement));
    out
}

/// The counter checker's findings per key and overall.
pub fn render_counter(report: &CounterReport) -> String {
    let mut out = String::new();
    for key in &report.keys {
        let _ = writeln!(
            out,
            "key {:?}: {}; {} reads, {} increments",
            key.key,
            judgement_text(key.judgement),
            key.reads_checked,
            key.increments
        );
        for a in &key.anomalies {
            let _ = writeln!(
                out,
                "  read by process {} (line {}) returned {}, allowed [{}, {}]",
                a.process, a.line, a.value, a.lower, a.upper
            );
        }
    }
    let _ = writeln!(out, "verdict: {}", judgement_text(report.judgement));
    out
}
