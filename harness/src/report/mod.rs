//! Results a person can read: every run's page (`results/<run>/index.html`) and the index of all
//! runs (`results/index.html`), rendered from the run folder's files alone, so `harness report`
//! can re-render any run without rerunning it.
//!
//! - [`data`]: the files read back; [`svg`]: the plotting kit; [`plots`]: latency, quantiles,
//!   throughput and leader lanes; [`timeline`]: an invalid key drawn as Porcupine does;
//!   [`words`]: each anomaly in words; [`page`]: the run page; [`index`]: the runs index.
//!
//! Pages are self-contained (inline CSS and SVG, no script, no fetch of any kind) and bounded:
//! the latency scatter thins evenly beyond [`plots::SCATTER_POINTS_MAX`] points and says so.

pub mod data;
pub mod index;
pub mod page;
pub mod plots;
pub mod svg;
pub mod timeline;
pub mod words;

use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The page's file name in a run folder, and the index's in the results folder.
pub const PAGE_FILE: &str = "index.html";

/// Renders `dir/index.html` from the run folder's files; returns its path.
///
/// # Errors
/// The history cannot be read, or the page cannot be written.
pub fn render_run(dir: &Path) -> anyhow::Result<PathBuf> {
    let run = data::RunData::load(dir)?;
    let html = page::page(&run, dir);
    let path = dir.join(PAGE_FILE);
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Renders `root/index.html`, listing every run folder under `root`; returns its path.
///
/// # Errors
/// The page cannot be written.
pub fn render_index(root: &Path) -> anyhow::Result<PathBuf> {
    let path = root.join(PAGE_FILE);
    std::fs::write(&path, index::index(root))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The anomalies a run's page states in words (its `words` paragraphs), first to last, as plain
/// text; empty when the page has none or cannot be read.
#[must_use]
pub fn anomalies_in_words(dir: &Path) -> Vec<String> {
    let Ok(html) = std::fs::read_to_string(dir.join(PAGE_FILE)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = html.as_str();
    while let Some(at) = rest.find(r#"<p class="words""#) {
        rest = &rest[at..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let Some(close) = rest.find("</p>") else {
            break;
        };
        out.push(unescape(&rest[open_end + 1..close]));
        rest = &rest[close..];
    }
    out
}

/// Undoes [`svg::esc`].
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
