//! The results folder of a run: `results/<UTC time>-<workload>-<faults>/` (or the folder given
//! with `--results`), and `results/latest`, a symlink to the newest run.
//!
//! What a run folder holds (the HTML report reads only these):
//!
//! | file | what |
//! |---|---|
//! | `summary.json` | command line, seed, settings, versions, counts by f and outcome, faults, verdict, per-key verdicts, timings |
//! | `history.jsonl` | every invoke and completion, in the checker's format (streamed as it happens) |
//! | `nemesis.jsonl` | every fault start and heal, with what exactly was done (streamed) |
//! | `leaders.jsonl` | who led each shard, sampled a few times a second (streamed) |
//! | `checker.json`, `checker.txt` | the checker's report, as data and as text |
//! | `cluster.yaml`, `node-<id>.log`, `data/` | the nodes' configuration, logs and data dirs |

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name of the history file in a run folder.
pub const HISTORY_FILE: &str = "history.jsonl";
/// The nemesis events.
pub const NEMESIS_FILE: &str = "nemesis.jsonl";
/// The leader samples.
pub const LEADERS_FILE: &str = "leaders.jsonl";
/// The run's summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// The checker's report as JSON.
pub const CHECKER_JSON_FILE: &str = "checker.json";
/// The checker's report as text.
pub const CHECKER_TEXT_FILE: &str = "checker.txt";

/// `YYYYMMDDTHHMMSSZ` for a time since the Unix epoch, in UTC.
#[must_use]
pub fn utc_stamp(since_epoch_secs: u64) -> String {
    let days = since_epoch_secs / 86_400;
    let secs = since_epoch_secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn now_epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates a fresh run folder `<root>/<stamp>-<workload>-<faults>` (a `-2`, `-3`... suffix if
/// two runs start in the same second).
///
/// # Errors
/// The folder could not be created.
pub fn create_run_dir(root: &Path, workload: &str, faults: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    let base = format!("{}-{workload}-{faults}", utc_stamp(now_epoch_secs()));
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is free")
}

/// Points `<root>/latest` at `run_dir` (a relative symlink, replaced atomically).
///
/// # Errors
/// The link could not be made.
pub fn point_latest(root: &Path, run_dir: &Path) -> std::io::Result<()> {
    let Some(name) = run_dir.file_name() else {
        return Ok(());
    };
    let tmp = root.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    std::fs::rename(&tmp, root.join("latest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_are_calendar_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-12-01 18:31:13 UTC.
        assert_eq!(utc_stamp(1_796_149_873), "20261201T183113Z");
        // A leap day.
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn run_dirs_are_unique_and_latest_follows() {
        let root = tempfile::tempdir().unwrap();
        let a = create_run_dir(root.path(), "register", "partition").unwrap();
        let b = create_run_dir(root.path(), "register", "partition").unwrap();
        assert_ne!(a, b);
        point_latest(root.path(), &a).unwrap();
        point_latest(root.path(), &b).unwrap();
        let latest = std::fs::canonicalize(root.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
    }
}
