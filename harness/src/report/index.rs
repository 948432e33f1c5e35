//! The index of every run: `results/index.html`, newest first, with each run's time, workload,
//! faults, size, duration, ops, verdict (in the verdict colours), seed and a link to its page.

use super::page::verdict_color;
use super::svg::esc;
use crate::store::SUMMARY_FILE;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The index page for the runs under `root`.
#[must_use]
pub fn index(root: &Path) -> String {
    let mut runs: Vec<(String, Value)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir() && e.file_name() != "latest")
        .filter(|e| !e.path().join(SELFTEST_FILE).is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let summary = std::fs::read_to_string(e.path().join(SUMMARY_FILE))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            (name, summary)
        })
        .collect();
    // Newest first: by the time the run began (folder names begin with it too).
    runs.sort_by(|a, b| {
        let started = |s: &Value| s["started_utc"].as_str().unwrap_or("").to_string();
        (started(&b.1), &b.0).cmp(&(started(&a.1), &a.0))
    });
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>raftkv harness runs</title><style>body{{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}}td:first-child{{white-space:normal;word-break:break-all;max-width:240px}}td.faults{{white-space:normal}}th{{background:#f6f6f6}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}</style></head><body><h1>Harness runs</h1><p>{} runs in this folder, newest first.</p><table><tr><th>run</th><th>started (UTC)</th><th>workload</th><th>faults</th><th>nodes/shards</th><th>duration</th><th>ops</th><th>verdict</th><th>seed</th></tr>"#,
        runs.len()
    );
    for (name, s) in &runs {
        let st = &s["settings"];
        let ops: u64 = ["ok", "fail", "info"]
            .iter()
            .filter_map(|k| s["counts"][k].as_u64())
            .sum();
        let verdict = s["verdict"].as_str().unwrap_or("incomplete");
        let page = Path::new(name).join("index.html");
        let link = if root.join(&page).is_file() {
            format!(
                r#"<a href="{}">{}</a>"#,
                esc(&page.to_string_lossy()),
                esc(name)
            )
        } else {
            esc(name)
        };
        let _ = write!(
            h,
            r#"<tr><td>{link}</td><td>{}</td><td>{}</td><td class="faults">{}</td><td>{} / {}</td><td class="n">{}</td><td class="n">{}</td><td style="background:{}">{}</td><td class="n">{}</td></tr>"#,
            esc(&readable_stamp(s["started_utc"].as_str().unwrap_or("?"))),
            esc(st["workload"].as_str().unwrap_or("?")),
            esc(&st["faults"].as_str().unwrap_or("?").replace(',', ", ")),
            st["nodes"]
                .as_u64()
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            st["shards"]
                .as_u64()
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            st["time_limit_s"]
                .as_f64()
                .map_or_else(|| "?".to_string(), |t| format!("{t} s")),
            ops,
            verdict_color(verdict),
            esc(verdict),
            s["seed"]
        );
    }
    h.push_str("</table>");
    selftests(&mut h, root);
    h.push_str("</body></html>\n");
    h
}

/// A self-test's report, in its folder.
const SELFTEST_FILE: &str = "selftest.json";

/// The self-tests under `root` (folders with a `selftest.json`), newest first: how many planted
/// bugs each caught, and whether it passed.
fn selftests(h: &mut String, root: &Path) {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join(SELFTEST_FILE)).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                serde_json::from_str(&text).ok()?,
            ))
        })
        .collect();
    if found.is_empty() {
        return;
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    h.push_str(
        "<h2>Self-tests</h2><table><tr><th>self-test</th><th>planted bugs caught</th>\
         <th>clean runs not valid</th><th>verdict</th></tr>",
    );
    for (name, r) in &found {
        let rows = r["rows"].as_array().cloned().unwrap_or_default();
        let caught = rows.iter().filter(|x| x["caught"] == true).count();
        let alarms: usize = rows
            .iter()
            .map(|x| x["false_alarms"].as_array().map_or(0, Vec::len))
            .sum();
        let errors = rows
            .iter()
            .any(|x| x["errors"].as_array().is_some_and(|e| !e.is_empty()));
        let passed = caught == rows.len() && alarms == 0 && !errors && r["interrupted"] != true;
        let (verdict, color) = if passed {
            ("passed", verdict_color("valid"))
        } else {
            ("failed", verdict_color("invalid"))
        };
        let _ = write!(
            h,
            r#"<tr><td><a href="{}">{}</a></td><td class="n">{caught} of {}</td><td class="n">{alarms}</td><td style="background:{color}">{verdict}</td></tr>"#,
            esc(&Path::new(name).join("index.html").to_string_lossy()),
            esc(name),
            rows.len()
        );
    }
    h.push_str("</table>");
}

/// `20261201T192408Z` as `2026-12-01 19:24:08`.
fn readable_stamp(stamp: &str) -> String {
    let d: Vec<char> = stamp.chars().collect();
    if d.len() != 16 || d[8] != 'T' {
        return stamp.to_string();
    }
    let part = |a: usize, b: usize| d[a..b].iter().collect::<String>();
    format!(
        "{}-{}-{} {}:{}:{}",
        part(0, 4),
        part(4, 6),
        part(6, 8),
        part(9, 11),
        part(11, 13),
        part(13, 15)
    )
}
