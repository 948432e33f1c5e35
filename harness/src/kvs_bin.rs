//! Finding the `kvs` binary to test: `--kvs-bin` if given; else the `kvs` of the same build
//! profile next to the harness's own executable, first built (or brought up to date) with the
//! cargo that built the harness, so that `cargo run -p harness` alone is enough.
//!
//! Cargo decides staleness itself (it is a no-op when the binary is fresh). When no cargo or no
//! workspace can be found (an installed harness), an existing `kvs` next to the harness is used
//! as it is.

use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the harness was built from: the workspace manifest at compile time.
const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");

/// The `kvs` binary to run.
///
/// # Errors
/// `--kvs-bin` names no file; the build failed; or no binary can be found or built (the message
/// says how to build one).
pub fn find(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--kvs-bin {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("finding the harness's own executable")?;
    let mut dir = exe
        .parent()
        .context("the harness's executable has no directory")?
        .to_path_buf();
    // Test binaries live in target/<profile>/deps.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let candidate = dir.join("kvs");
    let manifest = Path::new(WORKSPACE_MANIFEST);
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO").map(PathBuf::from))
        .filter(|c| c.exists());
    match (cargo, manifest.is_file(), dir.parent()) {
        (Some(cargo), true, Some(target_dir)) => {
            build(&cargo, manifest, target_dir, &dir)?;
            if candidate.is_file() {
                return Ok(candidate);
            }
            bail!(
                "cargo built kvs but {} does not exist (is CARGO_BUILD_TARGET set?); pass --kvs-bin",
                candidate.display()
            )
        }
        _ if candidate.is_file() => Ok(candidate),
        _ => bail!(
            "no kvs binary next to the harness ({}), and no cargo to build one with; build it \
             with `cargo build --release -p kvs` or pass --kvs-bin PATH",
            candidate.display()
        ),
    }
}

/// `cargo build -p kvs --bin kvs` for the profile whose output directory is `profile_dir`.
fn build(
    cargo: &Path,
    manifest: &Path,
    target_dir: &Path,
    profile_dir: &Path,
) -> anyhow::Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest)
        .args(["-p", "kvs", "--bin", "kvs"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    eprintln!("harness: making sure the kvs binary is built ({profile} profile)...");
    let status = command
        .status()
        .with_context(|| format!("running {}", cargo.display()))?;
    if !status.success() {
        bail!(
            "building kvs failed ({status}); fix the build, or pass --kvs-bin PATH to test another binary"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_must_exist() {
        let e = find(Some(Path::new("/nonexistent/kvs"))).unwrap_err();
        assert!(e.to_string().contains("--kvs-bin /nonexistent/kvs"), "{e}");
    }
}
