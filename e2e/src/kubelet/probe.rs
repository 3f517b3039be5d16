//! Startup, readiness and liveness probes, run as kubelet runs them:
//! `initialDelaySeconds`, then every `periodSeconds`, `timeoutSeconds` per
//! attempt, a result flips after `successThreshold`/`failureThreshold`
//! consecutive outcomes. Readiness and liveness start once the startup probe
//! (if any) succeeded. `httpGet` and `tcpSocket` are real requests to the
//! container's (remapped) port; `exec` and `grpc` probes always succeed here.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

#[derive(Debug)]
struct Runner {
    kind: Kind,
    probe: Probe,
    next: Instant,
    period: Duration,
    successes: i32,
    failures: i32,
}

/// What a round of probes changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// New readiness, when it changed.
    pub(crate) ready: Option<bool>,
    /// The startup or liveness probe failed for good: restart the container.
    pub(crate) restart: Option<String>,
}

/// The probes of one running container.
#[derive(Debug)]
pub(crate) struct Probes {
    runners: Vec<Runner>,
    started: bool,
    ready: bool,
    ports: BTreeMap<u16, u16>,
    named_ports: BTreeMap<String, u16>,
    http: Option<reqwest::Client>,
}

impl Probes {
    /// Probes of `container` started now; `ports` maps container ports to
    /// the host ports the process really listens on; `max_period` caps
    /// `initialDelaySeconds` and `periodSeconds` (for fast tests).
    pub(crate) fn new(
        container: &Container,
        ports: BTreeMap<u16, u16>,
        max_period: Option<Duration>,
    ) -> Self {
        let now = Instant::now();
        let cap = |d: Duration| max_period.map_or(d, |max| d.min(max));
        let seconds = |s: Option<i32>, default: u64| {
            Duration::from_secs(s.map_or(default, |s| u64::try_from(s).unwrap_or(0)))
        };
        let mut runners = Vec::new();
        for (kind, probe) in [
            (Kind::Startup, &container.startup_probe),
            (Kind::Readiness, &container.readiness_probe),
            (Kind::Liveness, &container.liveness_probe),
        ] {
            if let Some(probe) = probe {
                runners.push(Runner {
                    kind,
                    probe: probe.clone(),
                    next: now + cap(seconds(probe.initial_delay_seconds, 0)),
                    period: cap(seconds(probe.period_seconds, 10)).max(Duration::from_millis(100)),
                    successes: 0,
                    failures: 0,
                });
            }
        }
        let named_ports = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
            .collect();
        let started = !runners.iter().any(|r| r.kind == Kind::Startup);
        let ready = started && !runners.iter().any(|r| r.kind == Kind::Readiness);
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .ok();
        Self {
            runners,
            started,
            ready,
            ports,
            named_ports,
            http,
        }
    }

    /// Whether the container counts as ready right now.
    pub(crate) fn ready(&self) -> bool {
        self.ready
    }

    fn active(&self, runner: &Runner) -> bool {
        (runner.kind == Kind::Startup) != self.started
    }

    /// When the next probe is due (far away when there is none).
    pub(crate) fn next_due(&self) -> Instant {
        self.runners
            .iter()
            .filter(|r| self.active(r))
            .map(|r| r.next)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_hours(1))
    }

    /// Runs the probes that are due.
    pub(crate) async fn run_due(&mut self) -> Outcome {
        let now = Instant::now();
        let mut outcome = Outcome::default();
        for index in 0..self.runners.len() {
            if !self.active(&self.runners[index]) || self.runners[index].next > now {
                continue;
            }
            let success = self.attempt(&self.runners[index].probe).await;
            let started = self.started;
            let runner = &mut self.runners[index];
            runner.next = Instant::now() + runner.period;
            if success {
                runner.successes += 1;
                runner.failures = 0;
            } else {
                runner.failures += 1;
                runner.successes = 0;
            }
            let success_threshold = runner.probe.success_threshold.unwrap_or(1).max(1);
            let failure_threshold = runner.probe.failure_threshold.unwrap_or(3).max(1);
            match runner.kind {
                Kind::Startup if runner.successes >= 1 => {
                    self.started = true;
                    if !self.runners.iter().any(|r| r.kind == Kind::Readiness) {
                        self.ready = true;
                        outcome.ready = Some(true);
                    }
                }
                Kind::Startup | Kind::Liveness if runner.failures >= failure_threshold => {
                    let which = if runner.kind == Kind::Startup {
                        "startup"
                    } else {
                        "liveness"
                    };
                    outcome.restart = Some(format!("Container failed {which} probe, will be restarted"));
                }
                Kind::Readiness if started && runner.successes >= success_threshold && !self.ready => {
                    self.ready = true;
                    outcome.ready = Some(true);
                }
                Kind::Readiness if runner.failures >= failure_threshold && self.ready => {
                    self.ready = false;
                    outcome.ready = Some(false);
                }
                _ => {}
            }
        }
        outcome
    }

    fn port(&self, port: &IntOrString) -> Option<u16> {
        let container_port = match port {
            IntOrString::Int(p) => u16::try_from(*p).ok()?,
            IntOrString::String(name) => *self.named_ports.get(name)?,
        };
        Some(self.ports.get(&container_port).copied().unwrap_or(container_port))
    }

    async fn attempt(&self, probe: &Probe) -> bool {
        let timeout = Duration::from_secs(
            probe
                .timeout_seconds
                .map_or(1, |s| u64::try_from(s).unwrap_or(1))
                .max(1),
        );
        if let Some(get) = &probe.http_get {
            let (Some(port), Some(http)) = (self.port(&get.port), &self.http) else {
                return false;
            };
            let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
            let host = get.host.as_deref().unwrap_or("127.0.0.1");
            let path = get.path.as_deref().unwrap_or("/");
            let mut request = http
                .get(format!("{scheme}://{host}:{port}{path}"))
                .timeout(timeout);
            for header in get.http_headers.iter().flatten() {
                request = request.header(&header.name, &header.value);
            }
            return request
                .send()
                .await
                .is_ok_and(|r| r.status().is_success() || r.status().is_redirection());
        }
        if let Some(tcp) = &probe.tcp_socket {
            let Some(port) = self.port(&tcp.port) else {
                return false;
            };
            let host = tcp.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
            return tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
                .await
                .is_ok_and(|r| r.is_ok());
        }
        // exec and grpc probes: nothing to run them in; count as passing.
        true
    }
}
