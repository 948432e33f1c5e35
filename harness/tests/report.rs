//! The HTML pages, rendered from small results folders written here: a valid run, an invalid
//! run with a known stale read, an unknown one, and a large one. Each page must show its
//! verdict, counts and (when invalid) the failing operation; fetch nothing; plot one point per
//! completed operation up to the limit; and shade exactly the fault windows of `nemesis.jsonl`.

use harness::report::plots::SCATTER_POINTS_MAX;
use harness::report::{render_index, render_run};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A results folder being written.
struct Fixture {
    dir: PathBuf,
    history: String,
}

impl Fixture {
    fn new(root: &Path, name: &str) -> Fixture {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture {
            dir,
            history: String::new(),
        }
    }

    /// One op: invoke at `t0` ms, completion `kind` at `t1` ms, answered by `node`.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        process: u64,
        f: &str,
        key: &str,
        value: serde_json::Value,
        kind: &str,
        result: serde_json::Value,
        t0: u64,
        t1: u64,
        node: u64,
    ) {
        let _ = writeln!(
            self.history,
            "{}",
            json!({"process": process, "type": "invoke", "f": f, "key": key, "value": value, "time_ns": t0 * 1_000_000})
        );
        let value = if kind == "ok" { result } else { value };
        let _ = writeln!(
            self.history,
            "{}",
            json!({"process": process, "type": kind, "f": f, "key": key, "value": value, "time_ns": t1 * 1_000_000, "node": node})
        );
    }

    fn finish(
        self,
        verdict: &str,
        reason: &str,
        invalid_keys: &[&str],
        faults: &[(&str, &str, &str, u64, u64)],
    ) -> PathBuf {
        self.finish_as("register", verdict, reason, invalid_keys, faults)
    }

    fn finish_as(
        self,
        workload: &str,
        verdict: &str,
        reason: &str,
        invalid_keys: &[&str],
        faults: &[(&str, &str, &str, u64, u64)],
    ) -> PathBuf {
        std::fs::write(self.dir.join("history.jsonl"), &self.history).unwrap();
        let mut nemesis = String::new();
        for (name, kind, color, start, end) in faults {
            let _ = writeln!(
                nemesis,
                "{}",
                json!({"event": "start", "fault": name, "kind": kind, "color": color, "description": format!("{name} test"), "time_ns": start * 1_000_000})
            );
            let _ = writeln!(
                nemesis,
                "{}",
                json!({"event": "heal", "fault": name, "kind": kind, "color": color, "time_ns": end * 1_000_000})
            );
        }
        std::fs::write(self.dir.join("nemesis.jsonl"), nemesis).unwrap();
        let leaders = [
            json!({"time_ns": 0, "leaders": {"0": {"node": 1, "term": 1}, "1": {"node": 2, "term": 1}}}),
            json!({"time_ns": 1_000_000_000u64, "leaders": {"1": {"node": 2, "term": 1}}}),
            json!({"time_ns": 2_000_000_000u64, "leaders": {"0": {"node": 3, "term": 2}, "1": {"node": 2, "term": 1}}}),
        ];
        let leaders: String = leaders.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(self.dir.join("leaders.jsonl"), leaders).unwrap();
        let summary = json!({
            "command_line": "harness --workload register --faults partition --seed 7",
            "seed": 7,
            "started_utc": "20261201T120000Z",
            "settings": {"workload": workload, "faults": "partition", "nodes": 3, "shards": 2,
                         "replicas": 3, "time_limit_s": 4.0, "concurrency": 3, "nemesis_interval_s": 1.0},
            "counts": {"ok": 1, "fail": 0, "info": 0},
            "verdict": verdict,
            "reason": reason,
            "findings": [],
            "check": {"invalid_keys": invalid_keys, "unknown_keys": []},
        });
        std::fs::write(self.dir.join("summary.json"), summary.to_string()).unwrap();
        std::fs::write(self.dir.join("node-1.log"), "log\n").unwrap();
        self.dir
    }
}

fn valid_run(root: &Path) -> PathBuf {
    let mut f = Fixture::new(root, "20261201T120000Z-register-partition");
    f.op(0, "write", "r0", json!("1"), "ok", json!("1"), 100, 110, 1);
    f.op(1, "read", "r0", json!(null), "ok", json!("1"), 200, 210, 1);
    f.op(
        2,
        "cas",
        "r0",
        json!(["1", "2"]),
        "ok",
        json!(["1", "2"]),
        300,
        320,
        2,
    );
    f.op(
        0,
        "write",
        "r1",
        json!("9"),
        "info",
        json!(null),
        1_200,
        3_200,
        3,
    );
    f.op(
        1,
        "read",
        "r1",
        json!(null),
        "fail",
        json!(null),
        1_300,
        3_300,
        3,
    );
    f.op(
        3,
        "read",
        "r0",
        json!(null),
        "ok",
        json!("2"),
        3_500,
        3_510,
        2,
    );
    f.finish(
        "valid",
        "all 2 keys linearizable",
        &[],
        &[("partition-halves", "partition", "#E9DCA0", 1_000, 2_000)],
    )
}

fn stale_read_run(root: &Path) -> PathBuf {
    let mut f = Fixture::new(root, "20261201T130000Z-register-partition");
    f.op(0, "write", "r0", json!("1"), "ok", json!("1"), 100, 110, 1);
    f.op(
        1,
        "write",
        "r0",
        json!("2"),
        "ok",
        json!("2"),
        1_000,
        2_000,
        1,
    );
    f.op(
        2,
        "read",
        "r0",
        json!(null),
        "ok",
        json!("1"),
        3_000,
        3_005,
        3,
    );
    f.op(
        0,
        "read",
        "r0",
        json!(null),
        "ok",
        json!("2"),
        3_100,
        3_110,
        1,
    );
    f.finish(
        "invalid",
        "1 of 1 keys not linearizable; key \"r0\": could not place read -> \"1\"",
        &["r0"],
        &[
            ("partition-one", "partition", "#E9DCA0", 1_500, 3_050),
            ("kill-one", "kill", "#E9A4A0", 3_060, 3_200),
        ],
    )
}

fn unknown_run(root: &Path) -> PathBuf {
    let mut f = Fixture::new(root, "20261201T140000Z-register-partition");
    f.op(0, "write", "r0", json!("1"), "ok", json!("1"), 100, 110, 1);
    f.finish(
        "unknown",
        "the search gave up on 1 of 1 keys (first: \"r0\", deadline)",
        &[],
        &[],
    )
}

fn page(dir: &Path) -> String {
    std::fs::read_to_string(render_run(dir).unwrap()).unwrap()
}

/// Every `href="..."` and `src="..."` on the page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(format!("{attr}{}", &rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

fn assert_self_contained(html: &str, dir: &Path) {
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "a network reference"
    );
    for r in references(html) {
        assert!(!r.starts_with("src="), "no external source: {r}");
        let target = r.trim_start_matches("href=\"");
        assert!(
            target.starts_with('#')
                || (!target.contains(':') && !target.starts_with('/') && dir.join(target).exists()),
            "a reference that is neither inside the page nor a file of the run: {r}"
        );
    }
}

fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

#[test]
fn a_valid_run_shows_its_verdict_counts_and_fault_bands() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid_run(root.path());
    let html = page(&dir);
    assert!(html.contains(">VALID</span> — all 2 keys linearizable"));
    assert!(html.contains("#6DB6FE"), "the valid colour");
    assert!(html.contains("--seed 7"), "the command that replays it");
    // Counts by f and outcome: writes 1 ok 1 info; reads 2 ok 1 fail; cas 1 ok.
    assert!(
        html.contains(
            r#"<td>read</td><td class="n">2</td><td class="n">1</td><td class="n">0</td>"#
        ),
        "{html}"
    );
    assert!(html
        .contains(r#"<td>write</td><td class="n">1</td><td class="n">0</td><td class="n">1</td>"#));
    // One point per completed operation (6), no thinning note.
    let points = html
        .split(r#"<g class="points">"#)
        .nth(1)
        .unwrap()
        .split("</g>")
        .next()
        .unwrap();
    assert_eq!(count(points, "<use "), 6);
    assert!(!html.contains("are left out"));
    // One band per fault window on each of the plots with time on x (scatter, 3 quantile
    // plots, throughput, leader lanes), named on hover.
    assert_eq!(count(&html, r#"class="band""#), 6);
    assert!(html.contains("<title>partition-halves from 1 s to 2 s"));
    // Leadership: shard 0 had no leader between 1 s and 2 s, then node 3.
    assert!(html.contains("shard 0: no leader from 1 s to 2 s"));
    assert!(html.contains("shard 0: node 3 from 2 s"));
    assert!(!html.contains(r#"id="anomalies""#));
    assert_self_contained(&html, &dir);
}

#[test]
fn an_invalid_run_explains_and_draws_the_stale_read() {
    let root = tempfile::tempdir().unwrap();
    let dir = stale_read_run(root.path());
    let html = page(&dir);
    assert!(html.contains(">INVALID</span>"));
    assert!(html.contains("#FEB5DA"), "the invalid colour");
    assert!(
        html.contains(
            "Read of r0 at 3.000 s returned &quot;1&quot;, but write &quot;2&quot; was acknowledged at 2.000 s, \
             before the read began, and no write of &quot;1&quot; was invoked after it: a stale read, served by node 3."
        ),
        "{html}"
    );
    // The same sentence, as plain text, for whoever reports the run (the self-test's table).
    assert_eq!(
        harness::report::anomalies_in_words(&dir),
        vec![
            "Read of r0 at 3.000 s returned \"1\", but write \"2\" was acknowledged at 2.000 s, \
             before the read began, and no write of \"1\" was invoked after it: a stale read, served \
             by node 3."
                .to_string()
        ]
    );
    // The failing op is drawn in red with the anchor the link jumps to.
    assert!(html.contains(r##"<a href="#first-error-0">Jump to the first error</a>"##));
    assert!(html.contains(r#"<g class="op failing" id="first-error-0">"#));
    let failing = html.split(r#"<g class="op failing""#).nth(1).unwrap();
    assert!(
        failing.contains("read -&gt; &quot;1&quot;") && failing.contains("node 3"),
        "hover text"
    );
    assert!(
        failing.contains("cannot be placed: the state before it would be"),
        "state before"
    );
    // Two linearized ops before it: the polyline and its points.
    assert_eq!(count(&html, r#"<circle class="lin""#), 2);
    // Bands of both faults on the timeline too (each clipped to its window).
    assert!(html.contains("kill-one from"));
    assert_self_contained(&html, &dir);
}

#[test]
fn an_unknown_run_says_so() {
    let root = tempfile::tempdir().unwrap();
    let dir = unknown_run(root.path());
    let html = page(&dir);
    assert!(html.contains(">UNKNOWN</span> — the search gave up"));
    assert!(html.contains("#FFAA26"), "the unknown colour");
    assert_self_contained(&html, &dir);
}

#[test]
fn a_large_run_thins_its_scatter_evenly_and_stays_small() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fixture::new(root.path(), "20261201T150000Z-register-none");
    let n: u64 = 100_000;
    for i in 0..n {
        let key = format!("r{}", i / 200);
        f.op(
            i % 10,
            "write",
            &key,
            json!(i.to_string()),
            "ok",
            json!(i.to_string()),
            i,
            i + 1,
            1 + i % 3,
        );
    }
    let dir = f.finish(
        "valid",
        "all keys linearizable",
        &[],
        &[("pause-one", "pause", "#A0B1E9", 10_000, 20_000)],
    );
    let html = page(&dir);
    let points = html
        .split(r#"<g class="points">"#)
        .nth(1)
        .unwrap()
        .split("</g>")
        .next()
        .unwrap();
    let shown = count(points, "<use ");
    let stride = (n as usize).div_ceil(SCATTER_POINTS_MAX);
    assert_eq!(shown, (n as usize).div_ceil(stride));
    assert!(shown <= SCATTER_POINTS_MAX);
    assert!(html.contains(&format!(
        "The scatter shows {shown} of {n} completed operations"
    )));
    assert!(
        html.len() < 5 << 20,
        "the page of a 100,000-op run is {} bytes",
        html.len()
    );
    assert_self_contained(&html, &dir);
}

#[test]
fn the_index_lists_every_run_newest_first_in_verdict_colours() {
    let root = tempfile::tempdir().unwrap();
    let valid = valid_run(root.path());
    let invalid = stale_read_run(root.path());
    unknown_run(root.path());
    render_run(&valid).unwrap();
    render_run(&invalid).unwrap();
    let html = std::fs::read_to_string(render_index(root.path()).unwrap()).unwrap();
    let newest = html.find("20261201T140000Z-register").unwrap();
    let middle = html.find("20261201T130000Z-register").unwrap();
    let oldest = html.find("20261201T120000Z-register").unwrap();
    assert!(newest < middle && middle < oldest);
    assert!(html.contains(r#"<td style="background:#FEB5DA">invalid</td>"#));
    assert!(html.contains(r#"<a href="20261201T130000Z-register-partition/index.html">"#));
    assert!(html.contains("3 runs in this folder"));
    assert_self_contained(&html, root.path());
}

#[test]
fn the_index_lists_self_tests_apart_from_runs() {
    let root = tempfile::tempdir().unwrap();
    valid_run(root.path());
    let selftest = root.path().join("selftest-20261201T150000Z");
    std::fs::create_dir_all(&selftest).unwrap();
    let row = |caught: bool| json!({"caught": caught, "false_alarms": [], "errors": []});
    std::fs::write(
        selftest.join("selftest.json"),
        json!({"rows": [row(true), row(false)], "interrupted": false}).to_string(),
    )
    .unwrap();
    let html = std::fs::read_to_string(render_index(root.path()).unwrap()).unwrap();
    // Not a run: one run in the folder, and the self-test in its own table.
    assert!(html.contains("1 runs in this folder"), "{html}");
    assert!(html.contains("<h2>Self-tests</h2>"));
    assert!(html.contains(r#"<a href="selftest-20261201T150000Z/index.html">"#));
    assert!(html.contains(r#"<td class="n">1 of 2</td>"#));
    assert!(html.contains(r#"<td style="background:#FEB5DA">failed</td>"#));
}

#[test]
fn set_and_counter_anomalies_are_said_in_words() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fixture::new(root.path(), "20261201T160000Z-set-kill");
    f.op(0, "add", "s0", json!(1), "ok", json!(1), 100, 110, 1);
    f.op(1, "add", "s0", json!(2), "ok", json!(2), 200, 3_210, 2);
    f.op(
        2,
        "read",
        "s0",
        json!(null),
        "ok",
        json!([1, 1]),
        4_000,
        4_010,
        4,
    );
    let dir = f.finish_as(
        "set",
        "invalid",
        "1 acknowledged elements lost",
        &["s0"],
        &[],
    );
    let html = page(&dir);
    assert!(
        html.contains("Element 2 of s0 was added (acknowledged at 3.210 s by node 2), but the final read at 4.000 s (node 4) did not contain it: a lost element."),
        "{html}"
    );
    assert!(
        html.contains("The read of s0 at 4.000 s (node 4) returned 1 twice: a duplicated element.")
    );
    assert!(
        html.contains(r#"<p class="words" id="first-error-0">"#),
        "the jump target"
    );

    let mut f = Fixture::new(root.path(), "20261201T170000Z-counter-kill");
    f.op(0, "incr", "c0", json!(2), "ok", json!(2), 100, 110, 1);
    f.op(1, "read", "c0", json!(null), "ok", json!(5), 200, 210, 3);
    let dir = f.finish_as(
        "counter",
        "invalid",
        "1 of 1 reads outside their bounds",
        &["c0"],
        &[],
    );
    let html = page(&dir);
    assert!(
        html.contains("Read of c0 at 0.200 s returned 5, served by node 3, but the increments around it allow only 2: a counter out of bounds."),
        "{html}"
    );
    assert_self_contained(&html, &dir);
}
