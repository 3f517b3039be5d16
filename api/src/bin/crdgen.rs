//! Writes the CRD YAML into a directory (default `crds/`), or with `--check`
//! fails when the files there differ from the types (CI's drift check).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from("crds");
    for arg in std::env::args().skip(1) {
        if arg == "--check" {
            check = true;
        } else {
            dir = PathBuf::from(arg);
        }
    }
    match run(&dir, check) {
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

fn run(dir: &std::path::Path, check: bool) -> Result<(), String> {
    let mut stale = Vec::new();
    for (file, crd) in tributary_api::crd::all() {
        let yaml = tributary_api::crd::to_yaml(&crd).map_err(|e| format!("serializing {file}: {e}"))?;
        let path = dir.join(file);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            std::fs::write(&path, yaml).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!("CRDs out of date, run `make crds`: {}", stale.join(", ")))
    }
}
