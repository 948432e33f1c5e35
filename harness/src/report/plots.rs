//! The run page's plots, each an inline SVG with fault bands: every op's latency at its invoke
//! time; latency quantiles over time per function; throughput over time by function and outcome;
//! and who led each shard over time.

use super::data::{Op, Outcome, RunData};
use super::svg::{ns_to_s, num, Axis, Plot};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Beyond this many ops the latency scatter keeps every k-th one (evenly) and says how many it
/// left out: a 100,000-op run's page stays small and quick to write.
pub const SCATTER_POINTS_MAX: usize = 20_000;

/// Jepsen's colours for op outcomes.
#[must_use]
pub fn outcome_color(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "#81BFFC",
        Outcome::Fail => "#FF1E90",
        Outcome::Info | Outcome::Pending => "#FFA400",
    }
}

/// The SVG symbol id that draws an op of function `f` (shape by function).
fn shape_of(f: &str) -> &'static str {
    match f {
        "read" => "sh-read",
        "write" => "sh-write",
        "cas" => "sh-cas",
        "add" => "sh-add",
        "incr" => "sh-incr",
        _ => "sh-other",
    }
}

/// The symbols the scatter draws with, one per function, at most 8 px across.
pub const SHAPE_DEFS: &str = r##"<svg width="0" height="0" style="position:absolute"><defs><symbol id="sh-read" overflow="visible"><circle r="2.6"/></symbol><symbol id="sh-write" overflow="visible"><rect x="-2.4" y="-2.4" width="4.8" height="4.8"/></symbol><symbol id="sh-cas" overflow="visible"><path d="M0 -3.2L3 2.2H-3Z"/></symbol><symbol id="sh-add" overflow="visible"><path d="M0 -3.2L3.2 0L0 3.2L-3.2 0Z"/></symbol><symbol id="sh-incr" overflow="visible"><path d="M-1 -3.2H1V-1H3.2V1H1V3.2H-1V1H-3.2V-1H-1Z"/></symbol><symbol id="sh-other" overflow="visible"><path d="M-3 -3L3 3M3 -3L-3 3" stroke-width="1.4"/></symbol><pattern id="no-leader" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="2"/></pattern></defs></svg>"##;

/// The functions in the history, in a fixed order.
fn functions(ops: &[Op]) -> Vec<String> {
    let mut fs: Vec<String> = ops.iter().map(|o| o.f.clone()).collect();
    fs.sort_by_key(|f| {
        (
            ["read", "write", "cas", "add", "incr"]
                .iter()
                .position(|k| k == f)
                .unwrap_or(9),
            f.clone(),
        )
    });
    fs.dedup();
    fs
}

fn x_axis(run: &RunData) -> Axis {
    Axis::linear(0.0, ns_to_s(run.end_ns).max(1.0))
}

fn ms_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", num(v / 1000.0, 3))
    } else {
        format!("{} ms", num(v, 3))
    }
}

/// Every completed op's latency at its invoke time (log scale): colour by outcome, shape by
/// function. Returns the SVG and how many ops it plotted and left out.
#[must_use]
pub fn latency_scatter(run: &RunData) -> (String, usize, usize) {
    let completed: Vec<&Op> = run.ops.iter().filter(|o| o.end_ns.is_some()).collect();
    let stride = completed.len().div_ceil(SCATTER_POINTS_MAX).max(1);
    let shown: Vec<&Op> = completed.iter().step_by(stride).copied().collect();
    let lat_ms = |o: &Op| o.latency_ns().unwrap_or(0) as f64 / 1e6;
    let (lo, hi) = shown.iter().fold((f64::MAX, 0f64), |(lo, hi), o| {
        let l = lat_ms(o).max(0.01);
        (lo.min(l), hi.max(l))
    });
    let mut plot = Plot::new(340.0, x_axis(run), Axis::log(lo.min(0.1), hi.max(1.0)));
    plot.bands(&run.faults, &run.marks);
    let mut body = String::with_capacity(shown.len() * 48);
    for o in &shown {
        let _ = write!(
            body,
            r##"<use href="#{}" x="{:.1}" y="{:.1}" fill="{}"/>"##,
            shape_of(&o.f),
            plot.px(ns_to_s(o.start_ns)),
            plot.py(lat_ms(o).max(0.01)),
            outcome_color(o.outcome)
        );
    }
    plot.push(&format!(r#"<g class="points">{body}</g>"#));
    for f in functions(&run.ops) {
        plot.legend(
            &format!(r##"<use href="#{}" fill="#555"/>"##, shape_of(&f)),
            &f,
        );
    }
    for o in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
        plot.legend(
            &format!(r#"<circle r="4" fill="{}"/>"#, outcome_color(o)),
            o.name(),
        );
    }
    let ticks = plot.y_ticks(&ms_label);
    let svg = plot.finish(
        "Latency of every operation at its invoke time",
        "time since the start (s)",
        "latency (log)",
        &ticks,
    );
    (svg, shown.len(), completed.len() - shown.len())
}

/// The width of one time bucket: about a hundred buckets over the run, at least 0.25 s.
fn bucket_s(run: &RunData) -> f64 {
    let total = ns_to_s(run.end_ns).max(1.0);
    let raw = (total / 100.0).max(0.25);
    [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
        .into_iter()
        .find(|b| *b >= raw)
        .unwrap_or(60.0)
}

/// Latency quantiles (p50, p95, p99, max) over time, one small plot per function.
#[must_use]
pub fn latency_quantiles(run: &RunData) -> String {
    let dt = bucket_s(run);
    let mut out = String::new();
    let quantiles: [(&str, f64, &str); 4] = [
        ("p50", 0.50, "#2B7BB9"),
        ("p95", 0.95, "#E8A33D"),
        ("p99", 0.99, "#D6456B"),
        ("max", 1.00, "#555555"),
    ];
    for f in functions(&run.ops) {
        let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for o in run.ops.iter().filter(|o| o.f == f) {
            if let Some(l) = o.latency_ns() {
                let b = (ns_to_s(o.start_ns) / dt) as u64;
                buckets.entry(b).or_default().push(l as f64 / 1e6);
            }
        }
        // Points per quantile; a bucket with no completed op leaves a gap in the line.
        let mut series: Vec<Vec<(f64, f64)>> = vec![Vec::new(); quantiles.len()];
        let mut last_bucket: Option<u64> = None;
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for (b, mut lats) in buckets {
            lats.sort_by(f64::total_cmp);
            let t = (b as f64 + 0.5) * dt;
            if last_bucket.is_some_and(|l| b > l + 1) {
                for s in &mut series {
                    s.push((f64::NAN, f64::NAN));
                }
            }
            last_bucket = Some(b);
            for (i, (_, q, _)) in quantiles.iter().enumerate() {
                let idx = ((lats.len() as f64 * q).ceil() as usize).clamp(1, lats.len()) - 1;
                let v = lats[idx].max(0.01);
                lo = lo.min(v);
                hi = hi.max(v);
                series[i].push((t, v));
            }
        }
        if series[0].is_empty() {
            continue;
        }
        let mut plot = Plot::new(220.0, x_axis(run), Axis::log(lo.min(0.1), hi.max(1.0)));
        plot.bands(&run.faults, &run.marks);
        for (i, (name, _, color)) in quantiles.iter().enumerate() {
            plot.push(&polyline(&plot, &series[i], color, ""));
            plot.legend(&line_swatch(color, ""), name);
        }
        let ticks = plot.y_ticks(&ms_label);
        out.push_str(&plot.finish(
            &format!("Latency quantiles of {f} per {} s", num(dt, 2)),
            "time since the start (s)",
            "latency (log)",
            &ticks,
        ));
    }
    out
}

/// Throughput over time: completions per second by function (dash) and outcome (colour).
#[must_use]
pub fn throughput(run: &RunData) -> String {
    let dt = bucket_s(run);
    let buckets = (ns_to_s(run.end_ns) / dt).ceil().max(1.0) as usize;
    let dashes = ["", "6 3", "2 2", "8 3 2 3", "1 3"];
    let mut series: Vec<(String, Outcome, Vec<f64>)> = Vec::new();
    for f in functions(&run.ops) {
        for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
            let mut counts = vec![0f64; buckets];
            let mut any = false;
            for o in run.ops.iter().filter(|o| o.f == f) {
                let same = o.outcome == outcome
                    || (outcome == Outcome::Info && o.outcome == Outcome::Pending);
                if let (true, Some(end)) = (same, o.end_ns) {
                    let b = ((ns_to_s(end) / dt) as usize).min(buckets - 1);
                    counts[b] += 1.0 / dt;
                    any = true;
                }
            }
            if any {
                series.push((f.clone(), outcome, counts));
            }
        }
    }
    let hi = series
        .iter()
        .flat_map(|(_, _, c)| c.iter().copied())
        .fold(1.0f64, f64::max);
    let mut plot = Plot::new(280.0, x_axis(run), Axis::linear(0.0, hi * 1.1));
    plot.bands(&run.faults, &run.marks);
    let fs = functions(&run.ops);
    for (f, outcome, counts) in &series {
        let dash = dashes[fs.iter().position(|x| x == f).unwrap_or(0) % dashes.len()];
        let points: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| ((i as f64 + 0.5) * dt, *c))
            .collect();
        plot.push(&polyline(&plot, &points, outcome_color(*outcome), dash));
        plot.legend(
            &line_swatch(outcome_color(*outcome), dash),
            &format!("{f} {}", outcome.name()),
        );
    }
    let ticks = plot.y_ticks(&|v| num(v, 0));
    plot.finish(
        &format!("Throughput per {} s, by function and outcome", num(dt, 2)),
        "time since the start (s)",
        "operations per second",
        &ticks,
    )
}

fn polyline(plot: &Plot, points: &[(f64, f64)], color: &str, dash: &str) -> String {
    // Stretches of points between gaps (NaN); a stretch of one point is drawn as a dot, since a
    // line through one point shows nothing.
    let mut stretches: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        if x.is_nan() {
            stretches.push(Vec::new());
        } else {
            stretches
                .last_mut()
                .expect("one stretch at least")
                .push((plot.px(x), plot.py(y)));
        }
    }
    let mut d = String::new();
    let mut dots = String::new();
    for stretch in stretches.iter().filter(|s| !s.is_empty()) {
        if let [(x, y)] = stretch.as_slice() {
            let _ = write!(
                dots,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#
            );
            continue;
        }
        for (i, (x, y)) in stretch.iter().enumerate() {
            let _ = write!(d, "{}{x:.1} {y:.1}", if i == 0 { "M" } else { "L" });
        }
    }
    let dash = if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    };
    format!(r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>{dots}"#)
}

fn line_swatch(color: &str, dash: &str) -> String {
    let dash = if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    };
    format!(r#"<line x1="-6" x2="6" y1="0" y2="0" stroke="{color}" stroke-width="2"{dash}/>"#)
}

/// A distinct colour per node (nodes are numbered from 1).
#[must_use]
pub fn node_color(node: u64) -> &'static str {
    const PALETTE: [&str; 10] = [
        "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948", "#FF9DA7", "#9C755F",
        "#BAB0AC", "#E15759",
    ];
    PALETTE[(node.saturating_sub(1) % PALETTE.len() as u64) as usize]
}

/// Who led each shard over time: one lane per shard, coloured by the leading node, hatched
/// where no node claimed it, over the fault bands.
#[must_use]
pub fn leader_lanes(run: &RunData) -> String {
    let shards = run.shard_count.max(1);
    let lane_h = 18.0;
    let height = 30.0 + 40.0 + lane_h * f64::from(shards) + 8.0;
    let mut plot = Plot::new(height, x_axis(run), Axis::linear(0.0, f64::from(shards)));
    plot.bands(&run.faults, &run.marks);
    let mut body = String::new();
    let end_s = ns_to_s(run.end_ns);
    for shard in 0..shards {
        let y_top = plot.py(f64::from(shards - shard));
        let y_bottom = plot.py(f64::from(shards - shard - 1));
        let h = (y_bottom - y_top - 3.0).max(2.0);
        // Runs of equal leadership between samples.
        let mut runs: Vec<(f64, f64, Option<u64>)> = Vec::new();
        for (i, s) in run.leaders.iter().enumerate() {
            let t0 = ns_to_s(s.time_ns);
            let t1 = run.leaders.get(i + 1).map_or(end_s, |n| ns_to_s(n.time_ns));
            let who = s.leaders.get(&shard).copied();
            match runs.last_mut() {
                Some(last) if last.2 == who && (last.1 - t0).abs() < 1e-9 => last.1 = t1,
                _ => runs.push((t0, t1, who)),
            }
        }
        for (t0, t1, who) in runs {
            let x0 = plot.px(t0);
            let w = (plot.px(t1) - x0).max(0.5);
            let (fill, title) = match who {
                Some(n) => (node_color(n).to_string(), format!("node {n}")),
                None => ("url(#no-leader)".to_string(), "no leader".to_string()),
            };
            let _ = write!(
                body,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" opacity="0.82"><title>shard {shard}: {title} from {} s to {} s</title></rect>"#,
                y_top + 1.5,
                num(t0, 2),
                num(t1, 2)
            );
            if let (Some(n), true) = (who, w > 14.0) {
                let _ = write!(
                    body,
                    r#"<text class="lane" x="{:.1}" y="{:.1}" text-anchor="middle">{n}</text>"#,
                    x0 + w / 2.0,
                    y_top + 1.5 + h / 2.0 + 4.0
                );
            }
        }
    }
    plot.push(&body);
    let mut nodes: Vec<u64> = run
        .leaders
        .iter()
        .flat_map(|s| s.leaders.values().copied())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    for n in nodes {
        plot.legend(
            &format!(
                r#"<rect x="-5" y="-5" width="10" height="10" fill="{}"/>"#,
                node_color(n)
            ),
            &format!("node {n}"),
        );
    }
    plot.legend(
        r##"<rect x="-5" y="-5" width="10" height="10" fill="url(#no-leader)" stroke="#bbb"/>"##,
        "no leader",
    );
    let ticks: Vec<(f64, String)> = (0..shards)
        .map(|s| (f64::from(shards - s) - 0.5, format!("shard {s}")))
        .collect();
    plot.finish(
        "Who led each shard (sampled from every node's INFO raft twice a second)",
        "time since the start (s)",
        "",
        &ticks,
    )
}
