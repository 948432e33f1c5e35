//! The timeline of an invalid key, in the manner of Porcupine's: one lane per process, each
//! operation a box from its invoke to its completion (an operation whose outcome is unknown stays
//! open to the right edge), fault windows as bands, the longest linearizable order the checker
//! found drawn through the boxes at linearization points, and the operation that could not be
//! placed in red. Hovering an operation gives its times, value, node and the register's state
//! before and after it.

use super::data::{FaultWindow, Op};
use super::svg::{esc, ns_to_s, num, Axis, Plot};
use super::words::{describe, secs};
use checker::explain::{Explanation, TimelineOutcome};
use std::collections::HashMap;
use std::fmt::Write as _;

const LANE_H: f64 = 30.0;

/// The SVG for `explanation`; `op_at_line` finds the history's operation (for its node and
/// values) by its invoke line; `anchor` is the id given to the failing operation, for the
/// page's "jump to the first error" link.
#[must_use]
pub fn timeline(
    explanation: &Explanation,
    op_at_line: &dyn Fn(usize) -> Option<Op>,
    faults: &[FaultWindow],
    anchor: &str,
) -> String {
    let lanes = &explanation.processes;
    let span = explanation
        .window_end_ns
        .saturating_sub(explanation.window_start_ns)
        .max(1_000_000);
    let pad = span / 20;
    let t0 = explanation.window_start_ns.saturating_sub(pad);
    let t1 = explanation.window_end_ns + pad;
    let height = 30.0 + 40.0 + LANE_H * lanes.len().max(1) as f64 + 6.0;
    let mut plot = Plot::new(
        height,
        Axis::linear(ns_to_s(t0), ns_to_s(t1)),
        Axis::linear(0.0, lanes.len().max(1) as f64),
    );
    let in_window: Vec<FaultWindow> = faults
        .iter()
        .filter(|f| f.end_ns >= t0 && f.start_ns <= t1)
        .map(|f| FaultWindow {
            start_ns: f.start_ns.max(t0),
            end_ns: f.end_ns.min(t1),
            ..f.clone()
        })
        .collect();
    plot.bands(&in_window, &[]);

    // The register's state before and after each linearized step, by position.
    let mut state_before: HashMap<usize, String> = HashMap::new();
    let mut state_after: HashMap<usize, String> = HashMap::new();
    for (i, step) in explanation.linearization.iter().enumerate() {
        let position = explanation.linearization_skipped + i;
        state_after.insert(position, step.state_after.clone());
        if i > 0 {
            state_before.insert(
                position,
                explanation.linearization[i - 1].state_after.clone(),
            );
        } else if explanation.linearization_skipped == 0 {
            state_before.insert(position, "nothing".to_string());
        }
    }

    let right_edge = plot.px(ns_to_s(t1));
    let mut boxes = String::new();
    let mut labels = String::new();
    // Linearization points: (position, x, y) of every linearized op drawn.
    let mut points: Vec<(usize, u64, u64, f64)> = Vec::new();
    let mut lane_y: HashMap<u64, f64> = HashMap::new();
    for (lane, l) in lanes.iter().enumerate() {
        let y_top = plot.py((lanes.len() - lane) as f64) + 3.0;
        let h = LANE_H - 8.0;
        lane_y.insert(l.process, y_top + h / 2.0);
        for op in &l.ops {
            let x0 = plot.px(ns_to_s(op.start_ns));
            let open = !matches!(op.outcome, TimelineOutcome::Ok);
            let x1 = match (open, op.end_ns) {
                (false, Some(e)) => plot.px(ns_to_s(e)),
                _ => right_edge,
            }
            .max(x0 + 2.0);
            let class = if op.failing {
                "op failing"
            } else if open {
                "op open"
            } else {
                "op"
            };
            let history = op_at_line(op.line);
            let node = history
                .as_ref()
                .and_then(|h| h.node)
                .map_or_else(|| "unknown".to_string(), |n| n.to_string());
            let label = history
                .as_ref()
                .map_or_else(|| op.description.clone(), describe);
            let ended = match (op.outcome, op.end_ns) {
                (TimelineOutcome::Ok, Some(e)) => format!("ok at {}", secs(e)),
                (TimelineOutcome::Info, Some(e)) => {
                    format!(
                        "outcome unknown from {} (may take effect any time after its invoke)",
                        secs(e)
                    )
                }
                _ => "never completed".to_string(),
            };
            let states = match op.linearized_at {
                Some(p) => format!(
                    "step {} of the linearization: state before {}, after {}",
                    p + 1,
                    state_before.get(&p).map_or("?", String::as_str),
                    state_after.get(&p).map_or("?", String::as_str)
                ),
                None if op.failing => format!(
                    "cannot be placed: the state before it would be {}",
                    explanation.state_before_failure
                ),
                None => "not in the linearization shown".to_string(),
            };
            let id = if op.failing {
                format!(r#" id="{}""#, esc(anchor))
            } else {
                String::new()
            };
            let _ = write!(
                boxes,
                r#"<g class="{class}"{id}><rect x="{x0:.1}" y="{y_top:.1}" width="{:.1}" height="{h:.1}" rx="3"/><title>process {}: {}&#10;invoked at {}, {}&#10;node {}&#10;{}&#10;history line {}</title></g>"#,
                x1 - x0,
                l.process,
                esc(&label),
                secs(op.start_ns),
                esc(&ended),
                esc(&node),
                esc(&states),
                op.line
            );
            // Labels go over the linearization line, drawn after it.
            let _ = write!(
                labels,
                r#"<g class="{class}"><text x="{:.1}" y="{:.1}">{}</text></g>"#,
                x0 + 6.0,
                y_top + h / 2.0 + 4.0,
                esc(&clip(&label, ((x1 - x0 - 6.0) / 6.5) as usize))
            );
            if let Some(p) = op.linearized_at {
                points.push((
                    p,
                    op.start_ns,
                    op.end_ns.unwrap_or(u64::MAX),
                    y_top + h / 2.0,
                ));
            }
        }
    }
    plot.push(&boxes);

    // The linearization drawn through its points: each at the earliest moment inside its op
    // that is not before the previous point (a valid order always has one).
    points.sort_by_key(|p| p.0);
    let mut path = String::new();
    let mut dots = String::new();
    let mut t = 0u64;
    for (i, (position, start, end, y)) in points.iter().enumerate() {
        t = t.max(*start).min(*end);
        let x = plot.px(ns_to_s(t));
        let _ = write!(path, "{}{x:.1} {y:.1}", if i == 0 { "M" } else { "L" });
        let _ = write!(
            dots,
            r#"<circle class="lin" cx="{x:.1}" cy="{y:.1}" r="3.2"><title>linearization step {}</title></circle>"#,
            position + 1
        );
    }
    plot.push(&format!(r#"<path class="lin" d="{path}"/>{dots}"#));
    plot.push(&labels);
    plot.legend(
        r#"<rect x="-6" y="-5" width="12" height="10" rx="2" class="op-swatch"/>"#,
        "ok",
    );
    plot.legend(
        r#"<rect x="-6" y="-5" width="12" height="10" rx="2" class="open-swatch"/>"#,
        "outcome unknown",
    );
    plot.legend(
        r#"<rect x="-6" y="-5" width="12" height="10" rx="2" class="failing-swatch"/>"#,
        "cannot be placed",
    );
    plot.legend(
        r#"<path d="M-7 0H7" class="lin"/><circle r="3" class="lin"/>"#,
        "linearization",
    );
    let ticks: Vec<(f64, String)> = lanes
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                (lanes.len() - i) as f64 - 0.5,
                format!("process {}", l.process),
            )
        })
        .collect();
    plot.finish(
        &format!(
            "Key {}: {} operations of {} processes, {} s to {} s",
            explanation.key,
            lanes.iter().map(|l| l.ops.len()).sum::<usize>(),
            lanes.len(),
            num(ns_to_s(explanation.window_start_ns), 3),
            num(ns_to_s(explanation.window_end_ns), 3)
        ),
        "time since the start (s)",
        "",
        &ticks,
    )
}

/// `s` cut to `max` characters (with an ellipsis).
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max <= 1 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}
