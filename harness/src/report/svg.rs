//! A small SVG plotting kit: a plot area with linear or log axes, ticks, grid, units, fault bands
//! with hover names, and a legend. Text in, text out; every string that reaches the page is
//! escaped here.

use super::data::{FaultWindow, Mark};
use std::fmt::Write as _;

/// Escapes text for HTML and SVG (element content and attribute values).
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with at most `digits` decimals, trailing zeros dropped (`1.5`, `20`, `0.001`).
#[must_use]
pub fn num(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One axis: a value range mapped onto a pixel range, linear or logarithmic.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    /// Smallest value shown. Invariant: `min < max`, and `min > 0` on a log axis.
    pub min: f64,
    /// Largest value shown.
    pub max: f64,
    /// Logarithmic (base 10).
    pub log: bool,
}

impl Axis {
    /// A linear axis over `[min, max]` (widened when empty).
    #[must_use]
    pub fn linear(min: f64, max: f64) -> Axis {
        let max = if max > min { max } else { min + 1.0 };
        Axis {
            min,
            max,
            log: false,
        }
    }

    /// A log axis over whole decades covering `[min, max]` (both positive).
    #[must_use]
    pub fn log(min: f64, max: f64) -> Axis {
        let lo = 10f64.powf(min.max(1e-9).log10().floor());
        let mut hi = 10f64.powf(max.max(lo).log10().ceil());
        if hi <= lo {
            hi = lo * 10.0;
        }
        Axis {
            min: lo,
            max: hi,
            log: true,
        }
    }

    /// Where `v` falls in `[0, 1]` (clamped).
    #[must_use]
    pub fn unit(&self, v: f64) -> f64 {
        let u = if self.log {
            (v.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        u.clamp(0.0, 1.0)
    }

    /// Tick values: decades on a log axis, about `count` round numbers on a linear one.
    #[must_use]
    pub fn ticks(&self, count: usize) -> Vec<f64> {
        if self.log {
            let mut out = Vec::new();
            let mut t = self.min;
            while t <= self.max * 1.0001 {
                out.push(t);
                t *= 10.0;
            }
            return out;
        }
        let raw = (self.max - self.min) / count.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(mag * 10.0);
        let mut out = Vec::new();
        let mut t = (self.min / step).ceil() * step;
        while t <= self.max + step * 1e-9 {
            out.push(t);
            t += step;
        }
        out
    }
}

/// Pixel sizes of a plot.
pub const WIDTH: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
/// The height of one row of the legend under a plot.
const LEGEND_ROW: f64 = 18.0;

/// A plot being drawn: the frame, its axes, and the SVG body so far.
pub struct Plot {
    height: f64,
    /// The x axis (seconds since the start of the run).
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    body: String,
    legend: Vec<(String, String)>,
}

impl Plot {
    /// A plot `height` pixels high with these axes.
    #[must_use]
    pub fn new(height: f64, x: Axis, y: Axis) -> Plot {
        Plot {
            height,
            x,
            y,
            body: String::new(),
            legend: Vec::new(),
        }
    }

    /// The pixel x of value `v`.
    #[must_use]
    pub fn px(&self, v: f64) -> f64 {
        LEFT + self.x.unit(v) * (WIDTH - LEFT - RIGHT)
    }

    /// The pixel y of value `v` (up is larger).
    #[must_use]
    pub fn py(&self, v: f64) -> f64 {
        self.height - BOTTOM - self.y.unit(v) * (self.height - TOP - BOTTOM)
    }

    /// The plot area's top and bottom pixel rows.
    #[must_use]
    pub fn rows(&self) -> (f64, f64) {
        (TOP, self.height - BOTTOM)
    }

    /// Appends raw SVG to the body.
    pub fn push(&mut self, svg: &str) {
        self.body.push_str(svg);
    }

    /// Adds a legend entry: a swatch (an SVG fragment drawn at the origin) and its text.
    pub fn legend(&mut self, swatch: &str, text: &str) {
        self.legend.push((swatch.to_string(), text.to_string()));
    }

    /// Shades each fault window across the plot area in its colour, named on hover, and draws
    /// each mark as a dashed line.
    pub fn bands(&mut self, faults: &[FaultWindow], marks: &[Mark]) {
        let (top, bottom) = self.rows();
        for f in faults {
            let x0 = self.px(ns_to_s(f.start_ns));
            let x1 = self.px(ns_to_s(f.end_ns)).max(x0 + 1.0);
            let _ = write!(
                self.body,
                r#"<rect class="band" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} from {} s to {} s&#10;{}</title></rect>"#,
                x0,
                x1 - x0,
                bottom - top,
                esc(&f.color),
                esc(&f.name),
                num(ns_to_s(f.start_ns), 3),
                num(ns_to_s(f.end_ns), 3),
                esc(&f.detail)
            );
        }
        for m in marks {
            let x = self.px(ns_to_s(m.time_ns));
            let _ = write!(
                self.body,
                r##"<line class="mark" x1="{x:.1}" x2="{x:.1}" y1="{top:.1}" y2="{bottom:.1}"><title>{} s: {}</title></line>"##,
                num(ns_to_s(m.time_ns), 3),
                esc(&m.text)
            );
        }
    }

    /// The height the legend takes under the plot.
    fn legend_height(&self) -> f64 {
        if self.legend.is_empty() {
            return 0.0;
        }
        let mut rows = 1.0;
        let mut x = LEFT;
        for (_, text) in &self.legend {
            let w = 26.0 + 6.6 * text.chars().count() as f64;
            if x + w > WIDTH - RIGHT && x > LEFT {
                rows += 1.0;
                x = LEFT;
            }
            x += w;
        }
        rows * LEGEND_ROW + 4.0
    }

    /// The y axis's own ticks, labelled by `fmt`.
    #[must_use]
    pub fn y_ticks(&self, fmt: &dyn Fn(f64) -> String) -> Vec<(f64, String)> {
        self.y.ticks(5).into_iter().map(|t| (t, fmt(t))).collect()
    }

    /// Finishes the SVG: grid, ticks and labels on both axes (`y_ticks`: value and label), the
    /// axis titles (with units), the legend and the body drawn so far.
    #[must_use]
    pub fn finish(
        self,
        title: &str,
        x_label: &str,
        y_label: &str,
        y_ticks: &[(f64, String)],
    ) -> String {
        let (top, bottom) = self.rows();
        let mut s = String::new();
        let total = self.height + self.legend_height();
        let _ = write!(
            s,
            r#"<svg class="plot" viewBox="0 0 {WIDTH} {total}" width="{WIDTH}" height="{total}" role="img" aria-label="{t}"><text class="title" x="{LEFT}" y="18">{t}</text>"#,
            t = esc(title)
        );
        for (t, label) in y_ticks {
            let y = self.py(*t);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(label)
            );
        }
        for t in self.x.ticks(10) {
            let x = self.px(t);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{top:.1}" y2="{bottom:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                bottom + 16.0,
                num(t, 3)
            );
        }
        s.push_str(&self.body);
        let _ = write!(
            s,
            r#"<rect class="frame" x="{LEFT}" y="{top:.1}" width="{:.1}" height="{:.1}"/><text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            WIDTH - LEFT - RIGHT,
            bottom - top,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            self.height - 6.0,
            esc(x_label),
            top + (bottom - top) / 2.0,
            esc(y_label)
        );
        // The legend, under the axis title, in as many rows as it needs.
        let mut x = LEFT;
        let mut y = self.height + 6.0;
        for (swatch, text) in &self.legend {
            let w = 26.0 + 6.6 * text.chars().count() as f64;
            if x + w > WIDTH - RIGHT && x > LEFT {
                x = LEFT;
                y += LEGEND_ROW;
            }
            let _ = write!(
                s,
                r#"<g class="legend" transform="translate({:.1} {y:.1})">{swatch}<text x="10" y="4">{}</text></g>"#,
                x + 6.0,
                esc(text)
            );
            x += w;
        }
        s.push_str("</svg>");
        s
    }
}

/// Nanoseconds as seconds.
#[must_use]
pub fn ns_to_s(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(1.500, 3), "1.5");
        assert_eq!(num(20.0, 3), "20");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            Axis::linear(0.0, 60.0).ticks(6),
            vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        );
        let log = Axis::log(0.3, 250.0);
        assert_eq!((log.min, log.max), (0.1, 1000.0));
        assert_eq!(log.ticks(5).len(), 5);
        assert!((log.unit(1.0) - 1.0 / 4.0).abs() < 1e-9);
    }
}
