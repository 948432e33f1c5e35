//! The run page: `results/<run>/index.html`, one self-contained file (inline CSS and SVG, no
//! script, nothing fetched from anywhere): the verdict, the settings and counts, the plots, who
//! led what, each anomaly in words and drawn, and links to the raw files.

use super::data::{Op, Outcome, RunData};
use super::plots::{latency_quantiles, latency_scatter, leader_lanes, throughput, SHAPE_DEFS};
use super::svg::{esc, num};
use super::timeline::timeline;
use super::words;
use checker::verdict::Verdict;
use checker::{
    check_counter, check_linearizability, check_set, pair_history, read_history, Register,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Invalid keys drawn and explained on the page (the rest are listed).
pub const ANOMALIES_SHOWN_MAX: usize = 3;

/// Jepsen's colour-blind-safe verdict colours.
#[must_use]
pub fn verdict_color(verdict: &str) -> &'static str {
    match verdict {
        "valid" => "#6DB6FE",
        "invalid" => "#FEB5DA",
        _ => "#FFAA26",
    }
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0 auto;max-width:1000px;padding:0 16px 40px}
h1{font-size:20px;margin:18px 0 6px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
.verdict{padding:12px 16px;border-radius:6px;margin-top:14px}.verdict .big{font-size:22px;font-weight:700;letter-spacing:.04em}
.verdict code{display:block;margin-top:8px;background:rgba(255,255,255,.55);padding:6px 8px;border-radius:4px;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}th{background:#f6f6f6}
.n{text-align:right;font-variant-numeric:tabular-nums}
.cols{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}
nav{margin:10px 0;font-size:13px}nav a{margin-right:12px}
.note{color:#555;font-size:13px}.finding{color:#a00}
.planted{color:#fff;background:#c00;font-weight:700;padding:6px 12px;border-radius:4px}
.words{background:#fff4f8;border-left:4px solid #d6456b;padding:8px 12px;margin:8px 0}
svg.plot{display:block;margin:10px 0;max-width:100%;height:auto}
svg .title{font-size:13px;font-weight:600}svg .tick,svg .legend text{font-size:11px;fill:#444}svg .label{font-size:12px;fill:#333}
svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}svg .band{opacity:.55}svg .mark{stroke:#b00;stroke-dasharray:4 3}
svg .lane{font-size:10px;fill:#fff;font-weight:700}
svg g.op rect,svg .op-swatch{fill:#cfe3f7;stroke:#5b8fc7}svg g.op text{font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg g.op.open rect,svg .open-swatch{fill:#ffe2b3;stroke:#e39b2d}
svg g.op.failing rect,svg .failing-swatch{fill:#ff8f8f;stroke:#c00;stroke-width:2}
svg path.lin{stroke:#333;stroke-width:1.5;fill:none}svg circle.lin{fill:#333}
a{color:#1a5fb4}
"#;

/// The whole page for `run`, whose files are in `dir`.
#[must_use]
pub fn page(run: &RunData, dir: &Path) -> String {
    let s = &run.summary;
    let verdict = s["verdict"].as_str().unwrap_or("incomplete");
    let reason = s["reason"]
        .as_str()
        .unwrap_or("the run left no summary (it was stopped before it ended)");
    let title = format!(
        "{} {} under {}",
        s["settings"]["workload"].as_str().unwrap_or("run"),
        dir.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        s["settings"]["faults"].as_str().unwrap_or("?")
    );
    let mut h = String::with_capacity(1 << 20);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{}</title><style>{CSS}</style></head><body>{SHAPE_DEFS}<h1>{}</h1>"#,
        esc(&title),
        esc(&title)
    );
    let _ = write!(
        h,
        r#"<div class="verdict" style="background:{}"><span class="big">{}</span> — {}<code>{}</code></div>"#,
        verdict_color(verdict),
        esc(&verdict.to_uppercase()),
        esc(reason),
        esc(s["command_line"].as_str().unwrap_or(""))
    );
    if let Some(bugs) = s["settings"]["planted_bugs"]
        .as_array()
        .filter(|b| !b.is_empty())
    {
        let names: Vec<&str> = bugs.iter().filter_map(|b| b.as_str()).collect();
        let _ = write!(
            h,
            r#"<p class="planted">Bugs planted in the store on purpose: {}</p>"#,
            esc(&names.join(", "))
        );
    }
    let anomalous = verdict == "invalid"
        || !s["check"]["invalid_keys"]
            .as_array()
            .is_none_or(Vec::is_empty);
    let _ = write!(
        h,
        r##"<nav><a href="#settings">Settings and counts</a><a href="#plots">Latency and throughput</a><a href="#leaders">Who led what</a>{}<a href="#files">Files</a></nav>"##,
        if anomalous {
            r##"<a href="#anomalies">Anomalies</a><a href="#first-error-0">Jump to the first error</a>"##
        } else {
            ""
        }
    );
    if let Some(findings) = s["findings"].as_array().filter(|f| !f.is_empty()) {
        h.push_str("<ul>");
        for f in findings {
            let _ = write!(
                h,
                r#"<li class="finding">{}</li>"#,
                esc(f.as_str().unwrap_or(""))
            );
        }
        h.push_str("</ul>");
    }
    settings_and_counts(&mut h, run);
    plots(&mut h, run);
    let _ = write!(
        h,
        r#"<h2 id="leaders">Who led what</h2>{}"#,
        leader_lanes(run)
    );
    if anomalous {
        anomalies(&mut h, run, dir);
    }
    files(&mut h, dir);
    h.push_str("</body></html>\n");
    h
}

/// With the disk fault: each node's fault filesystem counters.
fn disks(h: &mut String, disk: &Value) {
    let Some(nodes) = disk.as_object() else {
        return;
    };
    h.push_str(
        "<table><tr><th>disk of node</th><th>writes</th><th>fsyncs</th><th>dir syncs</th>\
         <th>power cuts</th><th>unsynced at the end</th></tr>",
    );
    for (node, c) in nodes {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{} B</td></tr>"#,
            esc(node),
            text(&c["writes"]),
            text(&c["fsyncs"]),
            text(&c["dir_syncs"]),
            text(&c["crashes"]),
            text(&c["unsynced_bytes"])
        );
    }
    h.push_str("</table>");
}

fn settings_and_counts(h: &mut String, run: &RunData) {
    let st = &run.summary["settings"];
    h.push_str(r#"<h2 id="settings">Settings and counts</h2><div class="cols"><table>"#);
    let rows: [(&str, String); 8] = [
        ("workload", text(&st["workload"])),
        ("faults", text(&st["faults"])),
        ("nodes", text(&st["nodes"])),
        (
            "shards × replicas",
            format!("{} × {}", text(&st["shards"]), text(&st["replicas"])),
        ),
        ("time limit", format!("{} s", text(&st["time_limit_s"]))),
        ("concurrency", text(&st["concurrency"])),
        (
            "nemesis interval",
            format!("{} s", text(&st["nemesis_interval_s"])),
        ),
        ("seed", text(&run.summary["seed"])),
    ];
    // Settings that only some runs change are shown when they do.
    let mut extra = Vec::new();
    if st["read_via"].as_str().is_some_and(|v| v != "leader") {
        extra.push(("reads via", text(&st["read_via"])));
    }
    if st["peer_latency_ms"].as_u64().is_some_and(|ms| ms > 0) {
        extra.push((
            "peer latency",
            format!("{} ms + up to as much again", text(&st["peer_latency_ms"])),
        ));
    }
    for (k, v) in rows.into_iter().chain(extra) {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>");
    disks(h, &run.summary["disk"]);
    // Ops by function and outcome.
    let mut counts: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for o in &run.ops {
        let slot = match o.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
            Outcome::Pending => 3,
        };
        counts.entry(o.f.as_str()).or_default()[slot] += 1;
    }
    h.push_str("<table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th><th>pending</th></tr>");
    let mut total = [0u64; 4];
    for (f, c) in &counts {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(f),
            c[0],
            c[1],
            c[2],
            c[3]
        );
        for i in 0..4 {
            total[i] += c[i];
        }
    }
    let _ = write!(
        h,
        r#"<tr><th>all</th><th class="n">{}</th><th class="n">{}</th><th class="n">{}</th><th class="n">{}</th></tr></table>"#,
        total[0], total[1], total[2], total[3]
    );
    // Availability: the share of ops that succeeded, by whether a fault was in force at invoke.
    let (mut during, mut outside) = ([0u64; 2], [0u64; 2]);
    for o in &run.ops {
        let side = if run.in_fault(o.start_ns) {
            &mut during
        } else {
            &mut outside
        };
        side[1] += 1;
        side[0] += u64::from(o.outcome == Outcome::Ok);
    }
    let pct = |c: [u64; 2]| {
        if c[1] == 0 {
            "—".to_string()
        } else {
            format!("{}% of {}", num(100.0 * c[0] as f64 / c[1] as f64, 1), c[1])
        }
    };
    let _ = write!(
        h,
        "<table><tr><th>availability (ops ok)</th><th></th></tr><tr><td>during faults</td><td class=\"n\">{}</td></tr><tr><td>outside faults</td><td class=\"n\">{}</td></tr><tr><td>faults injected</td><td class=\"n\">{}</td></tr></table></div>",
        pct(during),
        pct(outside),
        run.faults.len()
    );
}

fn plots(h: &mut String, run: &RunData) {
    h.push_str(r#"<h2 id="plots">Latency and throughput</h2>"#);
    let (scatter, shown, left_out) = latency_scatter(run);
    h.push_str(&scatter);
    if left_out > 0 {
        let _ = write!(
            h,
            r#"<p class="note">The scatter shows {shown} of {} completed operations (every {}th, evenly); {left_out} are left out so that the page stays small. The other plots count every operation.</p>"#,
            shown + left_out,
            (shown + left_out).div_ceil(shown.max(1))
        );
    }
    h.push_str(&latency_quantiles(run));
    h.push_str(&throughput(run));
    h.push_str(r#"<p class="note">Shaded bands are fault windows (hover for what was done): partition, kill, pause, slow or flaky links in their own colours; dashed red lines mark crashes and the final heal.</p>"#);
}

/// The anomalies: for the first few invalid keys, the words and (for registers) the timeline.
fn anomalies(h: &mut String, run: &RunData, dir: &Path) {
    h.push_str(r#"<h2 id="anomalies">Anomalies</h2>"#);
    let workload = run.summary["settings"]["workload"].as_str().unwrap_or("");
    let ops = match load_checker_ops(dir) {
        Ok(o) => o,
        Err(e) => {
            let _ = write!(h, "<p>The history could not be read again: {}</p>", esc(&e));
            return;
        }
    };
    let by_line: HashMap<usize, &Op> = run.ops.iter().map(|o| (o.line, o)).collect();
    let op_of = |id: checker::OpId| by_line.get(&ops[id.0].line).copied();
    match workload {
        "set" => set_anomalies(h, run, &ops, &op_of),
        "counter" => counter_anomalies(h, &ops, &op_of),
        _ => register_anomalies(h, run, &ops, &by_line),
    }
}

fn load_checker_ops(dir: &Path) -> Result<Vec<checker::Operation>, String> {
    let path = dir.join(crate::store::HISTORY_FILE);
    let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let history = read_history(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    pair_history(&history).map_err(|e| e.to_string())
}

fn register_anomalies(
    h: &mut String,
    run: &RunData,
    ops: &[checker::Operation],
    by_line: &HashMap<usize, &Op>,
) {
    let invalid: Vec<String> = run.summary["check"]["invalid_keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let shown: Vec<&String> = invalid.iter().take(ANOMALIES_SHOWN_MAX).collect();
    // The checker is deterministic: searched again on these keys alone, it finds the same
    // anomalies, with the data a timeline needs.
    let key_ops: Vec<checker::Operation> = ops
        .iter()
        .filter(|o| shown.contains(&&o.key))
        .cloned()
        .collect();
    let budget = checker::budget_for(Duration::from_secs(20));
    let report = match check_linearizability(&Register, &key_ops, &budget) {
        Ok(r) => r,
        Err(e) => {
            let _ = write!(
                h,
                "<p>The checker could not search again: {}</p>",
                esc(&e.to_string())
            );
            return;
        }
    };
    let Verdict::Invalid { anomalies } = &report.verdict else {
        let _ = write!(h, "<p>Searched again alone, the keys {} were not found invalid (the budget may have run out).</p>", esc(&format!("{shown:?}")));
        return;
    };
    if invalid.len() > shown.len() {
        let _ = write!(
            h,
            r#"<p class="note">{} keys are invalid; the first {} are drawn. All: {}</p>"#,
            invalid.len(),
            shown.len(),
            esc(&invalid.join(", "))
        );
    }
    for (i, a) in anomalies.iter().enumerate() {
        let failing = &key_ops[a.failing_op.0];
        let key_hist: Vec<&Op> = run
            .ops
            .iter()
            .filter(|o| o.key == a.key && o.outcome != Outcome::Fail)
            .collect();
        let anchor = format!("first-error-{i}");
        let text = match by_line.get(&failing.line) {
            Some(f) => words::register(
                &a.key,
                &key_hist,
                f,
                &a.explanation.state_before_failure,
                a.longest_prefixes.first().map_or(0, Vec::len),
            ),
            None => format!(
                "key {}: {} could not be placed",
                a.key, a.failing_op_description
            ),
        };
        let _ = write!(
            h,
            r##"<h3>Key {}</h3><p class="words">{}.</p><p><a href="#{anchor}">Jump to the first error</a> (the red box) · history line {}</p>"##,
            esc(&a.key),
            esc(&capitalize(&text)),
            failing.line
        );
        let op_at_line = |line: usize| by_line.get(&line).map(|o| (*o).clone());
        h.push_str(&timeline(&a.explanation, &op_at_line, &run.faults, &anchor));
    }
}

fn set_anomalies<'a>(
    h: &mut String,
    run: &'a RunData,
    ops: &[checker::Operation],
    op_of: &dyn Fn(checker::OpId) -> Option<&'a Op>,
) {
    let Ok(report) = check_set(ops) else {
        h.push_str("<p>The set checker could not run again.</p>");
        return;
    };
    for k in report
        .keys
        .iter()
        .filter(|k| !k.lost.is_empty() || !k.unexpected.is_empty() || !k.duplicated.is_empty())
        .take(ANOMALIES_SHOWN_MAX)
    {
        let final_read = k.final_read.and_then(op_of);
        let reads: Vec<&Op> = run
            .ops
            .iter()
            .filter(|o| o.key == k.key && o.f == "read" && o.outcome == Outcome::Ok)
            .collect();
        let _ = write!(h, "<h3>Set {}</h3>", esc(&k.key));
        let mut sentences = Vec::new();
        if let Some(x) = k.lost.first() {
            let add = run.ops.iter().find(|o| {
                o.key == k.key && o.f == "add" && o.value == *x && o.outcome == Outcome::Ok
            });
            sentences.push(format!(
                "{}{}",
                words::set_lost(&k.key, x, add, final_read),
                words::more(k.lost.len() - 1)
            ));
        }
        if let Some(x) = k.unexpected.first() {
            let read = reads
                .iter()
                .find(|r| r.result.as_array().is_some_and(|a| a.contains(x)))
                .copied();
            sentences.push(format!(
                "{}{}",
                words::set_unexpected(&k.key, x, read),
                words::more(k.unexpected.len() - 1)
            ));
        }
        if let Some(x) = k.duplicated.first() {
            let read = reads
                .iter()
                .find(|r| {
                    r.result
                        .as_array()
                        .is_some_and(|a| a.iter().filter(|v| *v == x).count() > 1)
                })
                .copied();
            sentences.push(format!(
                "{}{}",
                words::set_duplicated(&k.key, x, read),
                words::more(k.duplicated.len() - 1)
            ));
        }
        for s in sentences {
            let _ = write!(
                h,
                r#"<p class="words"{}>{}.</p>"#,
                first_error_id(h),
                esc(&capitalize(&s))
            );
        }
    }
}

fn counter_anomalies<'a>(
    h: &mut String,
    ops: &[checker::Operation],
    op_of: &dyn Fn(checker::OpId) -> Option<&'a Op>,
) {
    let Ok(report) = check_counter(ops) else {
        h.push_str("<p>The counter checker could not run again.</p>");
        return;
    };
    for k in report
        .keys
        .iter()
        .filter(|k| !k.anomalies.is_empty())
        .take(ANOMALIES_SHOWN_MAX)
    {
        let _ = write!(h, "<h3>Counter {}</h3>", esc(&k.key));
        for a in k.anomalies.iter().take(ANOMALIES_SHOWN_MAX) {
            if let Some(read) = op_of(a.op) {
                let _ = write!(
                    h,
                    r#"<p class="words"{}>{}.</p>"#,
                    first_error_id(h),
                    esc(&capitalize(&words::counter(
                        &k.key, read, a.value, a.lower, a.upper
                    )))
                );
            }
        }
        if k.anomalies.len() > ANOMALIES_SHOWN_MAX {
            let _ = write!(
                h,
                r#"<p class="note">{} more reads of {} are out of bounds.</p>"#,
                k.anomalies.len() - ANOMALIES_SHOWN_MAX,
                esc(&k.key)
            );
        }
    }
}

fn files(h: &mut String, dir: &Path) {
    h.push_str(r#"<h2 id="files">Files</h2><ul>"#);
    let mut names: Vec<String> = [
        "summary.json",
        "history.jsonl",
        "nemesis.jsonl",
        "leaders.jsonl",
        "checker.txt",
        "checker.json",
        "cluster.yaml",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let mut logs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("node-") && n.ends_with(".log"))
        .collect();
    logs.sort();
    names.extend(logs);
    for n in names.iter().filter(|n| dir.join(n).is_file()) {
        let _ = write!(h, r#"<li><a href="{}">{}</a></li>"#, esc(n), esc(n));
    }
    h.push_str("</ul>");
}

/// ` id="first-error-0"` for the page's first explained anomaly (the target of the "jump to
/// the first error" link), nothing after it.
fn first_error_id(page_so_far: &str) -> &'static str {
    if page_so_far.contains(r#"id="first-error-0""#) {
        ""
    } else {
        r#" id="first-error-0""#
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "?".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}
