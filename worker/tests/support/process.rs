//! The worker binary as a real process (so it can be killed with SIGKILL).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_testkit::unique_name;

/// Starts `tributary-worker run -f <config> <args>` with the manifest `yaml`
/// written to a new file in `dir` and stderr to a new log file there.
/// `RUST_LOG` is `info,librdkafka=warn` unless `env` sets it.
pub fn start_worker(dir: &Path, yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Worker {
    let config = dir.join(format!("{}.yaml", unique_name("connector")));
    std::fs::write(&config, yaml).unwrap();
    let log = dir.join(format!("{}.log", unique_name("worker")));
    let child = Command::new(env!("CARGO_BIN_EXE_tributary-worker"))
        .args(["run", "-f"])
        .arg(&config)
        .args(args)
        .env("RUST_LOG", "info,librdkafka=warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Worker { child, log, config }
}

/// A running worker process, killed when dropped.
pub struct Worker {
    child: Child,
    pub log: PathBuf,
    /// The config file it runs (rewrite it to change `spec.state` live).
    pub config: PathBuf,
}

impl Worker {
    /// SIGKILL: no chance to flush or confirm anything.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait 30 s for a graceful exit; returns its success.
    pub fn stop(&mut self) -> bool {
        self.stop_within(Duration::from_secs(30))
    }

    /// SIGTERM and wait `timeout` for a graceful exit; returns its success.
    pub fn stop_within(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(timeout)
    }

    /// Waits for the process to exit by itself; returns its success.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Peak resident memory of the running process so far (`VmHWM` of
    /// /proc/<pid>/status), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in /proc status:\n{status}"));
        kib * 1024
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
