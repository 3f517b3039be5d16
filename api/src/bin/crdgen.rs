//! Writes the CRD YAML of every type in [`tributary_api::crd::all`] into one
//! or more directories (default `crds/`), or with `--check` fails when the
//! files there differ from the types (CI's drift check).
//!
//! `make crds` writes both `crds/` (for `kubectl apply`) and the Helm chart's
//! `charts/tributary/crds/`, so the two can never disagree. A `*.tributary.dev.yaml`
//! file in a directory that no type produces any more (a removed CRD) is
//! deleted, and reported by `--check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The suffix of every generated file: `<plural>.tributary.dev.yaml`.
const GENERATED_SUFFIX: &str = ".tributary.dev.yaml";

fn main() -> ExitCode {
    let mut check = false;
    let mut dirs = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--check" {
            check = true;
        } else {
            dirs.push(PathBuf::from(arg));
        }
    }
    if dirs.is_empty() {
        dirs.push(PathBuf::from("crds"));
    }
    let result = generate().and_then(|files| {
        let mut stale = Vec::new();
        for dir in &dirs {
            stale.extend(sync_dir(dir, &files, check)?);
        }
        if stale.is_empty() {
            Ok(())
        } else {
            Err(format!("CRDs out of date, run `make crds`: {}", stale.join(", ")))
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            #[allow(clippy::print_stderr)] // a command-line tool's error output
            {
                eprintln!("crdgen: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Every CRD as (file name, YAML text).
fn generate() -> Result<Vec<(&'static str, String)>, String> {
    tributary_api::crd::all()
        .into_iter()
        .map(|(file, crd)| {
            tributary_api::crd::to_yaml(&crd)
                .map(|yaml| (file, yaml))
                .map_err(|e| format!("serializing {file}: {e}"))
        })
        .collect()
}

/// Makes `dir` hold exactly `files` (or, with `check`, lists what differs).
fn sync_dir(dir: &Path, files: &[(&str, String)], check: bool) -> Result<Vec<String>, String> {
    let mut stale = Vec::new();
    for (file, yaml) in files {
        let path = dir.join(file);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == *yaml {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            std::fs::write(&path, yaml).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    for path in leftovers(dir, files)? {
        if check {
            stale.push(format!("{} (no such CRD any more)", path.display()));
        } else {
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    Ok(stale)
}

/// Generated-looking files in `dir` that no type produces.
fn leftovers(dir: &Path, files: &[(&str, String)]) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(GENERATED_SUFFIX) && !files.iter().any(|(file, _)| *file == name) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}
