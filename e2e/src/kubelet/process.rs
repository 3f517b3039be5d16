//! Starting a container's process and signalling it.
//!
//! The process runs as
//! `setpriv --pdeathsig KILL unshare --mount --propagation private sh -c <mounts> <program> <args>`:
//! `unshare` gives it a private mount namespace where `sh` bind-mounts the
//! pod's volume directories at their `mountPath`s (read-only where kubelet
//! mounts read-only) and then `exec`s the program, so the PID the harness
//! holds is the program's own and signals reach it directly. `setpriv
//! --pdeathsig KILL` kills it if the test process dies without cleaning up,
//! so no process outlives the tests. Each process leads its own process
//! group; signals go to the group.
//!
//! The mounts are invisible to the rest of the host. Their target
//! directories are created on the host when missing (an empty directory such
//! as `/etc/tributary` stays behind; removing it would detach the mounts of
//! processes of other harnesses).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// One bind mount of a volume directory into the process's namespace.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    pub(crate) source: PathBuf,
    pub(crate) target: PathBuf,
    pub(crate) read_only: bool,
}

/// What to start.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    pub(crate) program: &'a str,
    pub(crate) args: &'a [String],
    pub(crate) env: &'a [(String, OsString)],
    pub(crate) mounts: &'a [Mount],
    pub(crate) working_dir: &'a Path,
    pub(crate) log: &'a Path,
}

/// Tools the harness needs on the host (util-linux and a POSIX shell).
pub(crate) const REQUIRED_TOOLS: [&str; 5] = ["setpriv", "unshare", "mount", "sh", "kill"];

/// Starts the process; stdout and stderr are appended to `launch.log`.
pub(crate) fn spawn(launch: &Launch<'_>) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(launch.log)?;
    // Absolute tool paths: the pod's environment may set its own PATH.
    let mut command = Command::new(host_tool("setpriv"));
    command
        .args(["--pdeathsig", "KILL"])
        .arg(host_tool("unshare"))
        .args(["--mount", "--propagation", "private"])
        .arg(host_tool("sh"))
        .arg("-c")
        .arg(mount_script(launch.mounts, launch.working_dir))
        .arg("kubelet-mounts")
        .arg(launch.program)
        .args(launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        // The working directory may exist only inside the mounts: the script
        // changes into it.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

/// Shell commands that create the mount points, bind the volumes (parents
/// before children), make the read-only ones read-only, change into the
/// working directory (created if missing, as container runtimes do), then
/// exec the program given as `$@`.
fn mount_script(mounts: &[Mount], working_dir: &Path) -> String {
    let mut ordered: Vec<&Mount> = mounts.iter().collect();
    ordered.sort_by_key(|m| m.target.components().count());
    // The mount commands run with the host's PATH, the program with the pod's.
    let mut script = String::from(
        "set -e\npod_path=\"$PATH\"\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
    for mount in &ordered {
        let source = quote(&mount.source.to_string_lossy());
        let target = quote(&mount.target.to_string_lossy());
        // Writing to a String cannot fail.
        if mount.source.is_dir() {
            let _ = writeln!(script, "mkdir -p {target}");
        } else {
            let _ = writeln!(
                script,
                "mkdir -p \"$(dirname {target})\"; [ -e {target} ] || : > {target}"
            );
        }
        let _ = writeln!(script, "mount --bind {source} {target}");
    }
    for mount in ordered.iter().filter(|m| m.read_only) {
        let target = quote(&mount.target.to_string_lossy());
        let _ = writeln!(script, "mount -o remount,bind,ro {target}");
    }
    let dir = quote(&working_dir.to_string_lossy());
    let _ = writeln!(script, "mkdir -p {dir}; cd {dir}");
    script.push_str("PATH=\"$pod_path\"\nexec \"$@\"\n");
    script
}

/// Single-quotes `text` for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Sends `signal` (e.g. `TERM`, `KILL`) to the process group led by `pid`.
pub(crate) async fn signal(pid: u32, signal: &str) {
    let result = Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        tracing::warn!(pid, signal, %error, "cannot run kill");
    }
}

/// [`signal`] for `Drop`, where nothing can be awaited.
pub(crate) fn signal_now(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let mut command = std::process::Command::new("kill");
    command.arg(format!("-{signal}")).arg("--");
    for pid in pids {
        command.arg(format!("-{pid}"));
    }
    let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// A host port nothing listens on now, for a container's HTTP endpoint.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// `tool`'s path on the harness's own `PATH`, if it is there.
pub(crate) fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

fn host_tool(tool: &str) -> PathBuf {
    find_tool(tool).unwrap_or_else(|| PathBuf::from(tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parents_first_and_read_only_last() {
        let dir = std::env::temp_dir();
        let script = mount_script(
            &[
                Mount {
                    source: dir.clone(),
                    target: "/a/b/c".into(),
                    read_only: true,
                },
                Mount {
                    source: dir.clone(),
                    target: "/a".into(),
                    read_only: false,
                },
            ],
            Path::new("/a/work"),
        );
        let a = script.find("mount --bind").unwrap();
        assert!(script[a..].starts_with(&format!("mount --bind '{}' '/a'", dir.display())));
        assert!(script.contains(
            "mount -o remount,bind,ro '/a/b/c'\nmkdir -p '/a/work'; cd '/a/work'\nPATH=\"$pod_path\"\nexec \"$@\""
        ));
        assert!(!script.contains("remount,bind,ro '/a'\n"));
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
