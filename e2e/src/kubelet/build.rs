//! The workspace binaries pods run, built when missing or older than the
//! workspace's sources.
//!
//! `cargo test --workspace` builds `tributary-worker` (its integration tests
//! need it) but not `tributary-operator`, and `cargo test -p tributary-e2e`
//! builds neither; a stale binary would silently test old code. So before
//! the first pod runs, the harness compares each binary with the newest
//! source file of the workspace and, if one is stale, runs `cargo build
//! --workspace --all-targets` into the target directory the test executable
//! lives in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::KubeletError;

/// Directories that never hold sources of the binaries.
const SKIP: [&str; 10] = [
    "target",
    ".git",
    "e2e",
    "testkit",
    "charts",
    "deploy",
    "docs",
    "scripts",
    "crds",
    "node_modules",
];

/// Serialises builds of parallel tests in one test executable.
static BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Builds the binaries of `binaries` that live in the workspace target
/// directory and are missing or stale.
pub(crate) async fn ensure_built(binaries: &BTreeMap<String, PathBuf>) -> Result<(), KubeletError> {
    let _guard = BUILD.lock().await;
    let root = workspace_root();
    let newest_source = newest(&root, SystemTime::UNIX_EPOCH);
    let workspace: Vec<(&String, &PathBuf)> = binaries
        .iter()
        .filter(|(name, _)| super::WORKSPACE_BINARIES.contains(&name.as_str()))
        .collect();
    let any_stale = workspace.iter().any(|(_, path)| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_or(true, |built| built < newest_source)
    });
    if !any_stale {
        return Ok(());
    }
    // <target>/<profile>/<binary>
    let Some(profile_dir) = workspace.first().and_then(|(_, path)| path.parent()) else {
        return Ok(());
    };
    let profile = profile_dir
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target_dir = profile_dir.parent().unwrap_or(profile_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The same targets as CI's `cargo test --workspace --all-targets`: the
    // same cargo feature set, so every dependency is shared with the test
    // build and usually only the binaries themselves are linked.
    command.args(["--workspace", "--all-targets"]);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    tracing::info!(binaries = ?workspace.iter().map(|(n, _)| n).collect::<Vec<_>>(), "building workspace binaries");
    let output = command
        .output()
        .await
        .map_err(|e| KubeletError::Build(format!("running cargo: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(KubeletError::Build(
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ));
    }
    Ok(())
}

/// The workspace root: this crate's parent directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The newest modification time of a `.rs`, `Cargo.toml` or `Cargo.lock`
/// file below `dir` (skipping [`SKIP`]).
fn newest(dir: &Path, mut newest_so_far: SystemTime) -> SystemTime {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest_so_far;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if !SKIP.contains(&name.as_ref()) && !name.starts_with('.') {
                newest_so_far = newest(&path, newest_so_far);
            }
        } else if (name.ends_with(".rs") || name == "Cargo.toml" || name == "Cargo.lock")
            && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
        {
            newest_so_far = newest_so_far.max(modified);
        }
    }
    newest_so_far
}
